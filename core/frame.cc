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
  // Once a body is under way its header has been consumed, but it is still part of the frame.
  return body_ ? kFrameHeaderSize + body_->size() : header_have_;
}

Status FrameDecoder::start_body(std::uint32_t length) {
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
  body_ = std::make_shared<Buffer>();
  body_length_ = length;
  return {};
}

Status FrameDecoder::feed(std::span<const std::uint8_t> data, std::vector<SharedBuffer>& out) {
  if (!error_.ok()) return error_;
  const std::uint8_t* p = data.data();
  std::size_t left = data.size();
  while (left > 0) {
    if (!body_) {
      std::size_t take = std::min(left, kFrameHeaderSize - header_have_);
      std::memcpy(header_ + header_have_, p, take);
      header_have_ += take;
      p += take;
      left -= take;
      if (header_have_ < kFrameHeaderSize) break;
      header_have_ = 0;
      if (Status s = start_body(get_frame_header(header_)); !s.ok()) {
        error_ = s;
        return s;
      }
    }
    std::size_t have = body_->size();
    std::size_t take = std::min(left, body_length_ - have);
    std::size_t need = have + take;
    if (need > body_->capacity()) {
      // Reserve what has arrived plus at most one chunk, never the whole claimed length.
      body_->reserve(std::min(body_length_, need + kGrowChunk));
    }
    body_->append(p, take);
    p += take;
    left -= take;
    if (body_->size() == body_length_) {
      out.push_back(std::move(body_));
      body_.reset();
      body_length_ = 0;
    }
  }
  return {};
}

}  // namespace switchboard
