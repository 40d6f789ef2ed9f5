#include "frame.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace switchboard {

void put_frame_header(std::uint8_t* out, std::size_t body_size) {
  auto n = static_cast<std::uint32_t>(body_size);
  out[0] = static_cast<std::uint8_t>(n >> 24);
  out[1] = static_cast<std::uint8_t>(n >> 16);
  out[2] = static_cast<std::uint8_t>(n >> 8);
  out[3] = static_cast<std::uint8_t>(n);
}

std::uint32_t get_frame_header(const std::uint8_t* in) {
  return (std::uint32_t{in[0]} << 24) | (std::uint32_t{in[1]} << 16) | (std::uint32_t{in[2]} << 8) |
         std::uint32_t{in[3]};
}

FrameDecoder::FrameDecoder(std::size_t max_frame) {
  set_max_frame(max_frame);
}

void FrameDecoder::set_max_frame(std::size_t max_frame) {
  max_frame_ = std::min(max_frame, kMaxFrameLimit);
}

std::size_t FrameDecoder::buffered() const {
  return body_ ? body_->size() : header_have_;
}

Status FrameDecoder::check_length(std::uint32_t length) const {
  // Compare in size_t: length is at most 2^32-1 and max_frame_ is capped to the same, so neither
  // side can wrap.
  if (length == 0) {
    return Status(Errc::protocol_error, "zero-length frame: every frame carries an envelope");
  }
  if (std::size_t{length} > max_frame_) {
    return Status(Errc::frame_too_large, "frame of " + std::to_string(length) +
                                             " bytes exceeds the limit of " +
                                             std::to_string(max_frame_) + " bytes");
  }
  return {};
}

void FrameDecoder::grow_body(std::size_t need) {
  if (need <= body_->capacity()) return;
  std::size_t have = body_->size();
  // Never the whole claimed length: at most twice what has arrived, plus one chunk. Growing
  // geometrically keeps the copies linear in the frame's size (by fixed chunks, a 64 MiB frame
  // was copied 128 times over).
  std::size_t want = std::min(frame_length_, std::max(need + kGrowChunk, 2 * have));
  if (frame_length_ >= kPooledFrame) {
    // A bulk frame: recycled memory (block_pool.h); fresh pages cost more than the copy.
    body_->reserve_pooled(want, std::max(want, 2 * need + kGrowChunk));
  } else {
    body_->reserve(want);
  }
}

std::span<std::uint8_t> FrameDecoder::body_room() {
  if (!error_.ok() || !body_ || frame_length_ < kPooledFrame) return {};
  std::size_t have = body_->size();
  grow_body(have + 1);  // room for at least one byte; as much as feed() would allow
  std::size_t room = std::min(body_->capacity(), frame_length_) - have;
  return {body_->data() + have, room};
}

void FrameDecoder::commit_body(std::size_t n, std::vector<Slice>& out) {
  body_->resize(body_->size() + n);  // within the capacity body_room() gave: no reallocation
  if (body_->size() == frame_length_) {
    out.emplace_back(SharedBuffer(std::move(body_)));
    body_.reset();
    frame_length_ = 0;
  }
}

Status FrameDecoder::feed(std::span<const std::uint8_t> data, std::vector<Slice>& out) {
  if (!error_.ok()) return error_;
  const std::uint8_t* p = data.data();
  std::size_t left = data.size();
  while (left > 0) {
    if (!body_ && header_have_ == 0) {
      // The run of whole frames starting here is copied once and handed out as views of that
      // copy. Only whole frames are copied, so a view never keeps a partial frame's bytes alive.
      std::size_t run = 0;
      Status bad;
      while (left - run >= kFrameHeaderSize) {
        std::uint32_t length = get_frame_header(p + run);
        if (bad = check_length(length); !bad.ok()) break;
        std::size_t whole = kFrameHeaderSize + std::size_t{length};
        if (whole > left - run) break;
        run += whole;
      }
      if (run > 0) {
        auto shared = std::make_shared<const Buffer>(p, run);
        for (std::size_t at = 0; at < run;) {
          std::size_t whole = kFrameHeaderSize + std::size_t{get_frame_header(shared->data() + at)};
          out.emplace_back(shared, shared->data() + at, whole);
          at += whole;
        }
        p += run;
        left -= run;
      }
      if (!bad.ok()) {
        error_ = bad;
        return bad;
      }
      if (left == 0) break;
    }
    if (!body_) {
      std::size_t take = std::min(left, kFrameHeaderSize - header_have_);
      std::memcpy(header_ + header_have_, p, take);
      header_have_ += take;
      p += take;
      left -= take;
      if (header_have_ < kFrameHeaderSize) break;
      header_have_ = 0;
      std::uint32_t length = get_frame_header(header_);
      if (Status s = check_length(length); !s.ok()) {
        error_ = s;
        return s;
      }
      body_ = std::make_shared<Buffer>();
      body_->append(header_, kFrameHeaderSize);
      frame_length_ = kFrameHeaderSize + std::size_t{length};
    }
    std::size_t have = body_->size();
    std::size_t take = std::min(left, frame_length_ - have);
    grow_body(have + take);
    body_->append(p, take);
    p += take;
    left -= take;
    if (body_->size() == frame_length_) {
      out.emplace_back(SharedBuffer(std::move(body_)));
      body_.reset();
      frame_length_ = 0;
    }
  }
  return {};
}

}  // namespace switchboard
