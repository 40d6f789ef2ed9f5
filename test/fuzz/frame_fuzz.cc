// Fuzz target: the frame reassembler (core/frame.h) with the chunking chosen by the fuzzer.
//
// The input is split by FuzzedDataProvider into a limit, a sequence of chunk sizes (taken from the
// end of the input) and the stream bytes (from the front). The stream is fed to a FrameDecoder in
// those chunks and checked against a one-shot reading of the same bytes by an obviously correct
// model, so any dependence on where reads split the stream shows up as a difference. Checked:
// - the same frames, byte for byte, and the same error (code) as the model;
// - never a frame over the limit, never an empty one;
// - memory bounded: the reserve never exceeds the claimed frame, nor twice the bytes received
//   plus kGrowChunk, whatever length the peer claims;
// - a poisoned decoder stays poisoned.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "frame.h"
#include "fuzz_check.h"

namespace {

using switchboard::Errc;
using switchboard::kFrameHeaderSize;

struct ModelResult {
  std::vector<std::vector<std::uint8_t>> frames;
  Errc error = Errc::ok;
};

// Reads whole frames from the complete stream; a trailing partial frame is simply left over.
ModelResult model(const std::vector<std::uint8_t>& s, std::size_t max_frame) {
  ModelResult r;
  std::size_t at = 0;
  while (s.size() - at >= kFrameHeaderSize) {
    std::size_t len = switchboard::get_frame_header(s.data() + at);
    if (len == 0) {
      r.error = Errc::protocol_error;
      return r;
    }
    if (len > max_frame) {
      r.error = Errc::frame_too_large;
      return r;
    }
    if (s.size() - at - kFrameHeaderSize < len) return r;
    auto body = s.begin() + static_cast<std::ptrdiff_t>(at + kFrameHeaderSize);
    r.frames.emplace_back(body, body + static_cast<std::ptrdiff_t>(len));
    at += kFrameHeaderSize + len;
  }
  return r;
}

// Limits worth exercising: tiny ones (so random lengths hit both sides), the pre-handshake limit,
// the production default, and the 32-bit ceiling.
constexpr std::array<std::size_t, 8> kLimits = {1,
                                                7,
                                                64,
                                                300,
                                                switchboard::kHandshakeMaxFrame,
                                                1u << 20,
                                                switchboard::kDefaultMaxFrame,
                                                switchboard::kMaxFrameLimit};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider fdp(data, size);
  const std::size_t max_frame = kLimits[fdp.ConsumeIntegralInRange<std::size_t>(0, 7)];
  switchboard::FrameDecoder decoder(max_frame);
  FUZZ_CHECK(decoder.at_boundary() && decoder.buffered() == 0, "a new decoder holds nothing");

  std::vector<std::uint8_t> stream;
  std::vector<switchboard::Slice> frames;
  switchboard::Status error;
  std::size_t consumed = 0;  // stream bytes handed out as frames, headers included
  while (fdp.remaining_bytes() > 0) {
    // Chunks of 0 bytes (a read that returned nothing new) up to a whole socket read.
    auto chunk_size = fdp.ConsumeIntegralInRange<std::size_t>(0, 70000);
    std::vector<std::uint8_t> chunk = fdp.ConsumeBytes<std::uint8_t>(chunk_size);
    stream.insert(stream.end(), chunk.begin(), chunk.end());
    std::size_t frames_before = frames.size();
    switchboard::Status s = decoder.feed(chunk, frames);
    if (!error.ok()) {
      FUZZ_CHECK(s.code() == error.code() && frames.size() == frames_before,
                 "a poisoned decoder returns its first error and no frame");
      continue;
    }
    error = s;
    for (std::size_t i = frames_before; i < frames.size(); ++i) {
      const switchboard::Slice& f = frames[i];
      FUZZ_CHECK(f.owner && f.size > kFrameHeaderSize, "no empty frame");
      FUZZ_CHECK(switchboard::get_frame_header(f.data) == f.size - kFrameHeaderSize,
                 "a frame starts at its own length prefix");
      FUZZ_CHECK(f.size - kFrameHeaderSize <= max_frame, "no frame over the limit");
      FUZZ_CHECK(f.data >= f.owner->data() && f.data + f.size <= f.owner->data() + f.owner->size(),
                 "a frame lies inside the buffer it shares");
      consumed += f.size;
    }
    if (error.ok()) {
      FUZZ_CHECK(decoder.buffered() == stream.size() - consumed,
                 "every byte received is in a frame or buffered");
      FUZZ_CHECK(decoder.reserved() <= 2 * decoder.buffered() + switchboard::kGrowChunk,
                 "memory bounded by twice the bytes received plus one chunk");
      FUZZ_CHECK(decoder.reserved() <= kFrameHeaderSize + max_frame, "no reserve beyond the limit");
      FUZZ_CHECK(decoder.at_boundary() == (decoder.buffered() == 0), "at_boundary is exact");
    }
  }

  ModelResult want = model(stream, max_frame);
  FUZZ_CHECK(error.code() == want.error, "the same error as a one-shot reading");
  FUZZ_CHECK(frames.size() == want.frames.size(), "the same number of frames");
  for (std::size_t i = 0; i < frames.size(); ++i) {
    const switchboard::Slice body = switchboard::frame_body(frames[i]);
    FUZZ_CHECK(std::equal(body.bytes().begin(), body.bytes().end(), want.frames[i].begin(),
                          want.frames[i].end()),
               "the same frame bytes");
  }
  return 0;
}
