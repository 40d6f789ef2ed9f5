// Large byte blocks recycled within the process instead of being handed back to the OS.
//
// Why: a block of a megabyte or more that malloc maps afresh and unmaps on free costs far more
// than the copy into it. Measured on the 2-core benchmark VM (paravirtualised page tables):
// copying 1 MiB into fresh pages takes 4.2-4.5 ms, into resident pages 70 us. The bulk path
// (issue 4, S4) allocated four such blocks per megabyte moved (the submit copy, the receive
// reassembly, B's JavaScript buffer, the decoded value), so page faults were nearly all of its
// cost. Blocks taken here are mapped once and reused.
//
// Contract:
// - take() and give() may be called from any thread (one mutex; called once per large frame,
//   never per byte).
// - take(min, max) returns a block of at least `min` usable bytes whose mapping is at most `max`
//   bytes when a cached block fits; a new block is `min` rounded up to whole pages. The caller
//   owns the block until it gives it back, exactly once, with the `mapped` size it received.
// - Idle blocks are bounded: at most kMaxIdleBytes of address space are kept, and of those at
//   most kMaxResidentIdleBytes stay resident; the rest are returned to the OS page by page
//   (MADV_DONTNEED keeps the mapping, so reusing them refaults cheaply, without a new mapping).
//   Anything over the first bound is unmapped.
// - Under AddressSanitizer idle blocks are poisoned, so a use after give() is reported.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace switchboard {

class BlockPool {
 public:
  // Requests below this size are not worth a mapping of their own: callers use malloc.
  static constexpr std::size_t kMinBlock = 64u << 10;
  static constexpr std::size_t kMaxIdleBytes = 128u << 20;
  static constexpr std::size_t kMaxResidentIdleBytes = 64u << 20;

  struct Block {
    std::uint8_t* data = nullptr;
    std::size_t mapped = 0;  // the size to give back
  };

  // The process's pool. Never destroyed (a Buffer may be freed by a thread that outlives static
  // destruction, e.g. a JavaScript finalizer at exit); its idle blocks go with the process.
  static BlockPool& shared();

  BlockPool() = default;
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;
  // Unmaps the idle blocks. Blocks still taken must not be given back afterwards.
  ~BlockPool();

  // Aborts on out-of-memory like operator new (std::bad_alloc).
  Block take(std::size_t min, std::size_t max);
  void give(Block block);

  // For tests and stats.
  std::size_t idle_bytes() const;
  std::size_t idle_blocks() const;

 private:
  struct Idle {
    Block block;
    bool resident;
  };
  mutable std::mutex mutex_;
  std::vector<Idle> idle_;  // most recently given last
  std::size_t idle_bytes_ = 0;
  std::size_t resident_bytes_ = 0;
};

}  // namespace switchboard
