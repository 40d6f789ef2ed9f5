#include "bytes.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <utility>

#include "block_pool.h"

namespace switchboard {

Buffer::Buffer(const void* data, std::size_t size) {
  append(data, size);
}

Buffer::Buffer(Buffer&& other) noexcept
    : data_(std::move(other.data_)),
      size_(std::exchange(other.size_, 0)),
      capacity_(std::exchange(other.capacity_, 0)) {}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  data_ = std::move(other.data_);
  size_ = std::exchange(other.size_, 0);
  capacity_ = std::exchange(other.capacity_, 0);
  return *this;
}

void Buffer::Free::operator()(std::uint8_t* p) const {
  if (mapped != 0) {
    BlockPool::shared().give({p, mapped});
  } else {
    std::free(p);
  }
}

void Buffer::reserve_pooled(std::size_t min, std::size_t max) {
  if (min <= capacity_) return;
  BlockPool::Block block = BlockPool::shared().take(min, max);
  if (size_ > 0) std::memcpy(block.data, data_.get(), size_);
  data_ = std::unique_ptr<std::uint8_t, Free>(block.data, Free{block.mapped});
  // What was asked for, unless a recycled block is larger: a new block's page rounding is slack
  // like malloc's, not a reservation.
  capacity_ = block.mapped <= std::max(min, max) ? block.mapped : min;
}

void Buffer::reserve(std::size_t capacity) {
  if (capacity <= capacity_) return;
  if (pooled()) {
    reserve_pooled(capacity, capacity);
    return;
  }
  void* grown = std::realloc(data_.get(), capacity);
  if (grown == nullptr) throw std::bad_alloc();  // same contract as operator new
  (void)data_.release();
  data_.reset(static_cast<std::uint8_t*>(grown));
  capacity_ = capacity;
}

void Buffer::resize(std::size_t size) {
  reserve(size);
  size_ = size;
}

void Buffer::append(const void* data, std::size_t size) {
  if (size == 0) return;
  std::size_t old = size_;
  resize(old + size);
  std::memcpy(data_.get() + old, data, size);
}

Slice Slice::copy_of(std::string_view bytes) {
  auto buf = std::make_shared<Buffer>(bytes.data(), bytes.size());
  return Slice(std::move(buf));
}

Slice Slice::copy_of(std::span<const std::uint8_t> bytes) {
  auto buf = std::make_shared<Buffer>(bytes.data(), bytes.size());
  return Slice(std::move(buf));
}

}  // namespace switchboard
