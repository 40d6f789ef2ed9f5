#include "block_pool.h"

#include <algorithm>
#include <cstdlib>
#include <new>

#if defined(_WIN32)
#include <malloc.h>
#else
#include <sys/mman.h>
#include <unistd.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define SWITCHBOARD_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define SWITCHBOARD_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
#define SWITCHBOARD_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define SWITCHBOARD_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#endif
#endif
#ifndef SWITCHBOARD_POISON
#define SWITCHBOARD_POISON(p, n) ((void)(p), (void)(n))
#define SWITCHBOARD_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace switchboard {
namespace {

std::size_t page_size() {
#if defined(_WIN32)
  return 4096;
#else
  static const std::size_t size = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return size;
#endif
}

#if !defined(_WIN32)
// Transparent huge pages, where the system offers them on request: one fault per 2 MiB instead
// of 512. Measured on the benchmark VM: 0.18 ms per MiB into fresh huge pages, 4.5 ms into
// fresh 4 KiB pages.
constexpr std::size_t kHugePage = 2u << 20;
#endif

std::uint8_t* map_block(std::size_t size) {
#if defined(_WIN32)
  void* p = std::malloc(size);
  if (p == nullptr) throw std::bad_alloc();
  return static_cast<std::uint8_t*>(p);
#else
  if (size < kHugePage) {
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();  // same contract as operator new
    return static_cast<std::uint8_t*>(p);
  }
  // Map a huge page more than needed, keep the aligned part, unmap the rest.
  std::size_t span = size + kHugePage;
  void* p = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  auto base = reinterpret_cast<std::uintptr_t>(p);
  std::uintptr_t aligned = (base + kHugePage - 1) & ~std::uintptr_t{kHugePage - 1};
  if (aligned > base) munmap(p, aligned - base);
  std::uintptr_t tail = aligned + size;
  if (base + span > tail) munmap(reinterpret_cast<void*>(tail), base + span - tail);
#if defined(MADV_HUGEPAGE)
  madvise(reinterpret_cast<void*>(aligned), size, MADV_HUGEPAGE);  // advice only: may be off
#endif
  return reinterpret_cast<std::uint8_t*>(aligned);
#endif
}

void unmap_block(const BlockPool::Block& b) {
  SWITCHBOARD_UNPOISON(b.data, b.mapped);
#if defined(_WIN32)
  std::free(b.data);
#else
  munmap(b.data, b.mapped);
#endif
}

// Gives the pages back but keeps the mapping: reusing it later costs a cheap refault.
void release_pages(const BlockPool::Block& b) {
#if !defined(_WIN32)
  madvise(b.data, b.mapped, MADV_DONTNEED);
#else
  (void)b;
#endif
}

}  // namespace

BlockPool& BlockPool::shared() {
  // Deliberately never destroyed (see the header): a union member's destructor runs only when
  // the union's own destructor calls it, and this one does not.
  union NeverDestroyed {
    BlockPool pool;
    NeverDestroyed() : pool() {}
    ~NeverDestroyed() {}
  };
  static NeverDestroyed holder;
  return holder.pool;
}

BlockPool::~BlockPool() {
  for (const Idle& idle : idle_) unmap_block(idle.block);
}

BlockPool::Block BlockPool::take(std::size_t min, std::size_t max) {
  max = std::max(min, max);
  {
    std::lock_guard lock(mutex_);
    // The smallest idle block that fits; among equals the most recent (likely still in cache).
    std::size_t best = idle_.size();
    for (std::size_t i = idle_.size(); i-- > 0;) {
      const Idle& c = idle_[i];
      if (c.block.mapped < min || c.block.mapped > max) continue;
      if (best == idle_.size() || c.block.mapped < idle_[best].block.mapped ||
          (c.block.mapped == idle_[best].block.mapped && c.resident && !idle_[best].resident)) {
        best = i;
      }
    }
    if (best != idle_.size()) {
      Idle found = idle_[best];
      idle_.erase(idle_.begin() + static_cast<std::ptrdiff_t>(best));
      idle_bytes_ -= found.block.mapped;
      if (found.resident) resident_bytes_ -= found.block.mapped;
      SWITCHBOARD_UNPOISON(found.block.data, found.block.mapped);
      return found.block;
    }
  }
  const std::size_t page = page_size();
  Block b;
  b.mapped = (min + page - 1) / page * page;
  b.data = map_block(b.mapped);
  return b;
}

void BlockPool::give(Block block) {
  if (block.data == nullptr) return;
  std::vector<Block> unmap;
  {
    std::lock_guard lock(mutex_);
    if (block.mapped > kMaxIdleBytes) {
      unmap.push_back(block);
    } else {
      // Oldest first out, so that what is kept is what was used last.
      while (idle_bytes_ + block.mapped > kMaxIdleBytes && !idle_.empty()) {
        Idle& old = idle_.front();
        idle_bytes_ -= old.block.mapped;
        if (old.resident) resident_bytes_ -= old.block.mapped;
        unmap.push_back(old.block);
        idle_.erase(idle_.begin());
      }
      SWITCHBOARD_POISON(block.data, block.mapped);
      idle_.push_back({block, true});
      idle_bytes_ += block.mapped;
      resident_bytes_ += block.mapped;
      for (Idle& old : idle_) {
        if (resident_bytes_ <= kMaxResidentIdleBytes) break;
        if (!old.resident) continue;
        release_pages(old.block);
        old.resident = false;
        resident_bytes_ -= old.block.mapped;
      }
    }
  }
  for (const Block& b : unmap) unmap_block(b);
}

std::size_t BlockPool::idle_bytes() const {
  std::lock_guard lock(mutex_);
  return idle_bytes_;
}

std::size_t BlockPool::idle_blocks() const {
  std::lock_guard lock(mutex_);
  return idle_.size();
}

}  // namespace switchboard
