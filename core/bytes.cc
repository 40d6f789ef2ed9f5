#include "bytes.h"

#include <cstring>
#include <new>
#include <utility>

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

void Buffer::reserve(std::size_t capacity) {
  if (capacity <= capacity_) return;
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
