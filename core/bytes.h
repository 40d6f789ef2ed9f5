// Byte buffers shared between the reader, the hub's queues and the consumers.
//
// Ownership: a Buffer is written by one thread (the I/O thread while a frame is being received)
// and then frozen behind a `std::shared_ptr<const Buffer>`; from then on any number of threads
// may read it, and it lives as long as the last Slice that points into it. This is how one
// inbound payload fans out to many subscribers without a copy per subscriber.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>
#include <string_view>

namespace switchboard {

// A growable byte array on malloc/realloc, or on a recycled block of the BlockPool
// (block_pool.h) for the bulk path: reserve_pooled() moves the bytes into a pooled block, and the
// block goes back to the pool when the Buffer is destroyed, on whichever thread that happens.
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(std::size_t size) { resize(size); }
  Buffer(const void* data, std::size_t size);
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&& other) noexcept;
  ~Buffer() = default;

  std::uint8_t* data() { return data_.get(); }
  const std::uint8_t* data() const { return data_.get(); }
  std::size_t size() const { return size_; }
  std::size_t capacity() const { return capacity_; }
  bool empty() const { return size_ == 0; }

  // Changes the size; never over-allocates (capacity becomes at least `size`, exactly `size`
  // when growing). Aborts on out-of-memory like operator new would.
  void resize(std::size_t size);
  void reserve(std::size_t capacity);
  // Moves the bytes into a pooled block of at least `min` bytes, at most `max` if a recycled
  // block fits (for a caller that bounds what it reserves). No-op when `min` <= capacity().
  // From then on the Buffer stays on pooled blocks: growing it again copies into another one.
  void reserve_pooled(std::size_t min, std::size_t max);
  bool pooled() const { return data_.get_deleter().mapped != 0; }
  void append(const void* data, std::size_t size);

  std::span<const std::uint8_t> bytes() const { return {data(), size_}; }

 private:
  struct Free {
    Free() noexcept : mapped(0) {}
    explicit Free(std::size_t pooled_size) noexcept : mapped(pooled_size) {}
    std::size_t mapped;  // non-zero: a BlockPool block of this size
    void operator()(std::uint8_t* p) const;
  };
  std::unique_ptr<std::uint8_t, Free> data_;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

using SharedBuffer = std::shared_ptr<const Buffer>;

// A view into a shared buffer that keeps the buffer alive.
struct Slice {
  SharedBuffer owner;
  const std::uint8_t* data = nullptr;
  std::size_t size = 0;

  Slice() = default;
  Slice(SharedBuffer buf) : owner(std::move(buf)) {  // NOLINT: implicit on purpose
    if (owner) {
      data = owner->data();
      size = owner->size();
    }
  }
  Slice(SharedBuffer buf, const std::uint8_t* d, std::size_t n)
      : owner(std::move(buf)), data(d), size(n) {}

  static Slice copy_of(std::string_view bytes);
  static Slice copy_of(std::span<const std::uint8_t> bytes);

  bool empty() const { return size == 0; }
  std::span<const std::uint8_t> bytes() const { return {data, size}; }
  std::string_view view() const { return {reinterpret_cast<const char*>(data), size}; }
};

}  // namespace switchboard
