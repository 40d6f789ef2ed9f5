// Frames: a 4-byte unsigned length in network byte order (big-endian), then that many bytes of
// body. The body is one msgpack envelope (envelope.h).
//
// Contract:
// - FrameDecoder is not thread-safe; one connection's I/O thread owns it.
// - A length above the current limit is rejected as soon as the 4 header bytes are in, before
//   any body byte is read or any body memory is reserved.
// - A body grows only as its bytes arrive: the decoder never holds more than twice the bytes
//   received plus kGrowChunk, whatever length the peer claims.
// - Each completed frame is handed out as a Slice that starts at its 4-byte length prefix
//   (frame_body() gives the body). The frames that lie wholly inside one feed() share one copy of
//   those bytes, made once per feed rather than once per frame; a frame that spans feeds is
//   reassembled in a buffer of its own (from kPooledFrame on, a recycled BlockPool block). The
//   decoder keeps no pointer into what it hands out.
// - Forwarding a frame therefore costs no copy and no allocation per frame: a hop can queue the
//   received bytes as they are.
// - After feed() returns an error the decoder is poisoned: every later feed() returns the same
//   error. The connection is expected to close.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "bytes.h"
#include "status.h"

namespace switchboard {

inline constexpr std::size_t kFrameHeaderSize = 4;
// Largest body after the handshake unless configured otherwise (DESIGN.md: 64 MiB).
inline constexpr std::size_t kDefaultMaxFrame = 64u << 20;
// Largest body before the peer has authenticated: HELLO is small, and an unauthenticated peer
// must not make the hub reserve memory.
inline constexpr std::size_t kHandshakeMaxFrame = 4u << 10;
// The length field is 32 bits, so no limit can exceed this.
inline constexpr std::size_t kMaxFrameLimit = 0xffffffffu;
// How far ahead of the received bytes a growing body may be reserved.
inline constexpr std::size_t kGrowChunk = 256u << 10;
// Frames from this size on are reassembled in recycled blocks (block_pool.h), each in a block
// of its own that the consumer may keep (a JavaScript buffer is made over it, addon/).
inline constexpr std::size_t kPooledFrame = 64u << 10;

// Writes the 4-byte big-endian length prefix. `body_size` must be <= kMaxFrameLimit.
void put_frame_header(std::uint8_t* out, std::size_t body_size);
// Reads a 4-byte big-endian length prefix.
std::uint32_t get_frame_header(const std::uint8_t* in);
// The body of a whole frame (the Slice FrameDecoder hands out), sharing its owner.
inline Slice frame_body(const Slice& frame) {
  return Slice(frame.owner, frame.data + kFrameHeaderSize, frame.size - kFrameHeaderSize);
}

class FrameDecoder {
 public:
  explicit FrameDecoder(std::size_t max_frame = kDefaultMaxFrame);

  // Raising or lowering the limit applies from the next header on (the hub raises it from
  // kHandshakeMaxFrame to the configured maximum once a peer is welcomed).
  void set_max_frame(std::size_t max_frame);
  std::size_t max_frame() const { return max_frame_; }

  // Consumes all of `data`, appending each completed frame to `out`. Returns the first error
  // (frame_too_large, or protocol_error for a zero-length frame); frames completed before the
  // bad header are still appended.
  Status feed(std::span<const std::uint8_t> data, std::vector<Slice>& out);

  // While a frame of kPooledFrame bytes or more is partly received: the memory where its next
  // bytes go, so that a reader can receive them there directly instead of through feed() (which
  // copies). Never beyond the frame's end, so a read into it cannot take the next frame's bytes.
  // Grows the body as feed() would (at most twice what has arrived, plus kGrowChunk). Empty
  // otherwise. After reading n bytes into it, call commit_body(n, out) before anything else.
  std::span<std::uint8_t> body_room();
  void commit_body(std::size_t n, std::vector<Slice>& out);

  // Bytes of an incomplete frame held now (header bytes plus body bytes received).
  std::size_t buffered() const;
  // Memory reserved for the incomplete body now.
  std::size_t reserved() const { return body_ ? body_->capacity() : 0; }
  // True between frames, i.e. when the stream could end here without truncating a frame.
  bool at_boundary() const { return header_have_ == 0 && !body_; }

 private:
  Status check_length(std::uint32_t length) const;
  void grow_body(std::size_t need);

  std::size_t max_frame_;
  std::uint8_t header_[kFrameHeaderSize] = {};
  std::size_t header_have_ = 0;
  std::shared_ptr<Buffer> body_;  // set while a frame spanning feeds is received: prefix + body
  std::size_t frame_length_ = 0;  // of that frame, prefix included
  Status error_;
};

}  // namespace switchboard
