// The outbound queue of one connection, and the gathering of its frames into one writev.
//
// Contract:
// - Not thread-safe: its owner serialises every call (Connection's write mutex), except
//   queued_bytes(), which any thread may read meanwhile (the hub checks its high-water mark on
//   every event without taking that mutex).
// - push() shares the frame's buffers (no copy). gather() describes as many queued bytes as fit
//   in `max_iov` iovecs, starting where the last partial write stopped; the iovecs point into
//   buffers the queue keeps alive until consume() retires them.
// - consume(n) retires n written bytes and returns how many whole frames that completed.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

#include "envelope.h"
#include "transport.h"

namespace switchboard {

class Batcher {
 public:
  // Linux's IOV_MAX.
  static constexpr std::size_t kMaxIov = 1024;

  void push(WireFrame frame);
  bool empty() const { return frames_.empty(); }
  std::size_t queued_frames() const { return frames_.size(); }
  std::size_t queued_bytes() const { return queued_bytes_.load(std::memory_order_relaxed); }

  // Replaces the contents of `iov` with the next bytes to write.
  void gather(std::vector<IoVec>& iov, std::size_t max_iov = kMaxIov) const;
  std::size_t consume(std::size_t bytes);
  void clear();

 private:
  std::deque<WireFrame> frames_;
  // Written only by the serialised calls, so a relaxed load and store suffice (no locked add).
  std::atomic<std::size_t> queued_bytes_{0};
  std::size_t front_offset_ = 0;  // bytes of frames_.front() already written
};

}  // namespace switchboard
