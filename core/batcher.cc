#include "batcher.h"

#include <utility>

namespace switchboard {

void Batcher::push(WireFrame frame) {
  queued_bytes_.store(queued_bytes() + frame.size(), std::memory_order_relaxed);
  frames_.push_back(std::move(frame));
}

void Batcher::gather(std::vector<IoVec>& iov, std::size_t max_iov) const {
  iov.clear();
  std::size_t skip = front_offset_;
  for (const WireFrame& f : frames_) {
    const std::uint8_t* parts[2] = {f.head ? f.head->data() : nullptr, f.payload.data};
    std::size_t sizes[2] = {f.head ? f.head->size() : 0, f.payload.size};
    for (int i = 0; i < 2; ++i) {
      std::size_t size = sizes[i];
      const std::uint8_t* data = parts[i];
      if (skip >= size) {
        skip -= size;
        continue;
      }
      data += skip;
      size -= skip;
      skip = 0;
      // Frames that lie back to back in one buffer (a submitted batch, a received run) go out
      // as one iovec.
      if (!iov.empty() &&
          static_cast<const std::uint8_t*>(iov.back().iov_base) + iov.back().iov_len == data) {
        iov.back().iov_len += size;
        continue;
      }
      if (iov.size() == max_iov) return;
      iov.push_back(IoVec{const_cast<std::uint8_t*>(data), size});
    }
  }
}

std::size_t Batcher::consume(std::size_t bytes) {
  std::size_t completed = 0;
  queued_bytes_.store(queued_bytes() - bytes, std::memory_order_relaxed);
  bytes += front_offset_;
  while (!frames_.empty() && bytes >= frames_.front().size()) {
    bytes -= frames_.front().size();
    frames_.pop_front();
    ++completed;
  }
  front_offset_ = bytes;
  return completed;
}

void Batcher::clear() {
  frames_.clear();
  queued_bytes_.store(0, std::memory_order_relaxed);
  front_offset_ = 0;
}

}  // namespace switchboard
