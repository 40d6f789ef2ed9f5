// Tests for core/frame.h: the length-prefixed frame codec and its memory bounds.
#include "frame.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace switchboard {
namespace {

using Bytes = std::vector<std::uint8_t>;

// A body of `size` bytes whose content depends on `seed`, so frames are told apart.
Bytes make_body(std::size_t size, std::uint8_t seed) {
  Bytes body(size);
  for (std::size_t i = 0; i < size; ++i) {
    body[i] = static_cast<std::uint8_t>((i * 31u + seed * 7u + 1u) & 0xffu);
  }
  return body;
}

Bytes header_of(std::size_t length) {
  Bytes h(kFrameHeaderSize);
  put_frame_header(h.data(), length);
  return h;
}

void append_frame(Bytes& stream, const Bytes& body) {
  Bytes h = header_of(body.size());
  stream.insert(stream.end(), h.begin(), h.end());
  stream.insert(stream.end(), body.begin(), body.end());
}

// Bodies that cover single-byte frames, bodies shorter and longer than a header, and a length
// whose second-lowest header byte is non-zero.
std::vector<Bytes> sample_bodies() {
  std::vector<Bytes> bodies;
  const std::size_t sizes[] = {1, 3, 4, 5, 17, 255, 256, 300};
  std::uint8_t seed = 0;
  for (std::size_t s : sizes) bodies.push_back(make_body(s, seed++));
  return bodies;
}

Bytes stream_of(const std::vector<Bytes>& bodies) {
  Bytes stream;
  for (const Bytes& b : bodies) append_frame(stream, b);
  return stream;
}

Bytes bytes_of(const Slice& frame) {
  Slice body = frame_body(frame);
  return Bytes(body.data, body.data + body.size);
}

void expect_bodies(const std::vector<Slice>& got, const std::vector<Bytes>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    ASSERT_TRUE(got[i].owner);
    ASSERT_GE(got[i].size, kFrameHeaderSize);
    EXPECT_EQ(get_frame_header(got[i].data), got[i].size - kFrameHeaderSize) << "frame " << i;
    EXPECT_EQ(bytes_of(got[i]), want[i]) << "frame " << i;
  }
}

TEST(FrameHeader, PutWritesBigEndianLength) {
  std::uint8_t out[4] = {};
  put_frame_header(out, 0x01020304u);
  EXPECT_EQ(out[0], 0x01);
  EXPECT_EQ(out[1], 0x02);
  EXPECT_EQ(out[2], 0x03);
  EXPECT_EQ(out[3], 0x04);

  put_frame_header(out, 5);
  EXPECT_EQ(Bytes(out, out + 4), (Bytes{0x00, 0x00, 0x00, 0x05}));

  put_frame_header(out, 0x100);
  EXPECT_EQ(Bytes(out, out + 4), (Bytes{0x00, 0x00, 0x01, 0x00}));

  put_frame_header(out, kMaxFrameLimit);
  EXPECT_EQ(Bytes(out, out + 4), (Bytes{0xff, 0xff, 0xff, 0xff}));
}

TEST(FrameHeader, GetReadsBigEndianLength) {
  const std::uint8_t a[4] = {0xde, 0xad, 0xbe, 0xef};
  EXPECT_EQ(get_frame_header(a), 0xdeadbeefu);
  const std::uint8_t b[4] = {0x00, 0x00, 0x00, 0x2a};
  EXPECT_EQ(get_frame_header(b), 42u);
  const std::uint8_t c[4] = {0x80, 0x00, 0x00, 0x00};
  EXPECT_EQ(get_frame_header(c), 0x80000000u);
}

TEST(FrameHeader, PutThenGetRoundTrips) {
  const std::size_t lengths[] = {0, 1, 255, 256, 65535, 65536, kDefaultMaxFrame, kMaxFrameLimit};
  for (std::size_t n : lengths) {
    std::uint8_t h[4] = {};
    put_frame_header(h, n);
    EXPECT_EQ(get_frame_header(h), n);
  }
}

TEST(FrameDecoder, DecodesSeveralFramesFedAllAtOnce) {
  const auto bodies = sample_bodies();
  const Bytes stream = stream_of(bodies);
  FrameDecoder d;
  std::vector<Slice> out;
  ASSERT_TRUE(d.feed(stream, out).ok());
  expect_bodies(out, bodies);
  EXPECT_TRUE(d.at_boundary());
  EXPECT_EQ(d.buffered(), 0u);
  EXPECT_EQ(d.reserved(), 0u);
}

TEST(FrameDecoder, DecodesSeveralFramesFedOneByteAtATime) {
  const auto bodies = sample_bodies();
  const Bytes stream = stream_of(bodies);
  FrameDecoder d;
  std::vector<Slice> out;
  for (std::size_t i = 0; i < stream.size(); ++i) {
    ASSERT_TRUE(d.feed(std::span(stream).subspan(i, 1), out).ok()) << "at byte " << i;
  }
  expect_bodies(out, bodies);
  EXPECT_TRUE(d.at_boundary());
}

TEST(FrameDecoder, DecodesTheSameFramesWhateverTheSplitPoint) {
  const auto bodies = sample_bodies();
  const Bytes stream = stream_of(bodies);
  const std::span<const std::uint8_t> all(stream);
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    FrameDecoder d;
    std::vector<Slice> out;
    ASSERT_TRUE(d.feed(all.first(cut), out).ok()) << "cut " << cut;
    ASSERT_TRUE(d.feed(all.subspan(cut), out).ok()) << "cut " << cut;
    expect_bodies(out, bodies);
    ASSERT_TRUE(d.at_boundary()) << "cut " << cut;
    if (::testing::Test::HasFailure()) FAIL() << "first failing cut: " << cut;
  }
}

TEST(FrameDecoder, EmptyFeedChangesNothing) {
  FrameDecoder d;
  std::vector<Slice> out;
  EXPECT_TRUE(d.feed({}, out).ok());
  EXPECT_TRUE(out.empty());
  EXPECT_TRUE(d.at_boundary());
  EXPECT_EQ(d.buffered(), 0u);
}

TEST(FrameDecoder, HandsOutBodiesItNoLongerReferences) {
  Bytes stream;
  append_frame(stream, make_body(10, 1));
  FrameDecoder d;
  std::vector<Slice> out;
  ASSERT_TRUE(d.feed(stream, out).ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].owner.use_count(), 1);
}

TEST(FrameDecoder, WholeFramesOfOneFeedShareOneCopyThatHoldsNoPartialFrame) {
  Bytes stream;
  append_frame(stream, make_body(10, 1));
  append_frame(stream, make_body(20, 2));
  Bytes partial;
  append_frame(partial, make_body(1000, 3));
  stream.insert(stream.end(), partial.begin(), partial.begin() + 100);
  FrameDecoder d;
  std::vector<Slice> out;
  ASSERT_TRUE(d.feed(stream, out).ok());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].owner, out[1].owner);
  // Two views and nothing else: the decoder keeps no reference, and the copy holds exactly the
  // two whole frames, not the start of the third (a view must not pin a partial frame).
  EXPECT_EQ(out[0].owner.use_count(), 2);
  EXPECT_EQ(out[0].owner->size(), 4u + 10u + 4u + 20u);
  EXPECT_EQ(d.buffered(), 100u);
  ASSERT_TRUE(d.feed(std::span(partial).subspan(100), out).ok());
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(bytes_of(out[2]), make_body(1000, 3));
}

TEST(FrameDecoder, RejectsOversizeLengthBeforeReadingBody) {
  FrameDecoder d;
  std::vector<Slice> out;
  const Bytes h = header_of(kDefaultMaxFrame + 1);
  // The first three header bytes cannot be judged yet.
  ASSERT_TRUE(d.feed(std::span(h).first(3), out).ok());
  Status s = d.feed(std::span(h).subspan(3), out);
  EXPECT_EQ(s.code(), Errc::frame_too_large);
  EXPECT_EQ(d.reserved(), 0u);
  EXPECT_TRUE(out.empty());
}

TEST(FrameDecoder, RejectsOversizeLengthFromTheHeaderAloneInOneFeed) {
  FrameDecoder d;
  std::vector<Slice> out;
  Status s = d.feed(header_of(kDefaultMaxFrame + 1), out);
  EXPECT_EQ(s.code(), Errc::frame_too_large);
  EXPECT_EQ(d.reserved(), 0u);
  EXPECT_TRUE(out.empty());
}

TEST(FrameDecoder, RejectsEveryLengthAboveTheDefaultLimit) {
  const std::size_t lengths[] = {kDefaultMaxFrame + 1, std::size_t{1} << 31, kMaxFrameLimit};
  for (std::size_t n : lengths) {
    FrameDecoder d;
    std::vector<Slice> out;
    Status s = d.feed(header_of(n), out);
    EXPECT_EQ(s.code(), Errc::frame_too_large) << "length " << n;
    EXPECT_EQ(d.reserved(), 0u) << "length " << n;
  }
}

TEST(FrameDecoder, AcceptsALengthExactlyAtTheLimitWithoutReservingIt) {
  FrameDecoder d;
  std::vector<Slice> out;
  ASSERT_TRUE(d.feed(header_of(kDefaultMaxFrame), out).ok());
  EXPECT_FALSE(d.at_boundary());
  EXPECT_LE(d.reserved(), kGrowChunk);
  EXPECT_TRUE(out.empty());
}

TEST(FrameDecoder, RejectsZeroLengthFrameAsProtocolError) {
  FrameDecoder d;
  std::vector<Slice> out;
  Status s = d.feed(header_of(0), out);
  EXPECT_EQ(s.code(), Errc::protocol_error);
  EXPECT_TRUE(out.empty());
}

TEST(FrameDecoder, KeepsFramesCompletedBeforeABadHeader) {
  const Bytes first = make_body(8, 3);
  Bytes stream;
  append_frame(stream, first);
  Bytes zero = header_of(0);
  stream.insert(stream.end(), zero.begin(), zero.end());
  FrameDecoder d;
  std::vector<Slice> out;
  Status s = d.feed(stream, out);
  EXPECT_EQ(s.code(), Errc::protocol_error);
  expect_bodies(out, {first});
}

TEST(FrameDecoder, TruncatedFrameIsNotAtBoundaryAndCountsTheBytesFed) {
  Bytes stream;
  append_frame(stream, make_body(20, 4));
  const std::size_t half = stream.size() / 2;  // 12: the header and 8 body bytes
  FrameDecoder d;
  std::vector<Slice> out;
  ASSERT_TRUE(d.feed(std::span(stream).first(half), out).ok());
  EXPECT_TRUE(out.empty());
  EXPECT_FALSE(d.at_boundary());
  EXPECT_EQ(d.buffered(), half);
}

TEST(FrameDecoder, TruncatedHeaderIsNotAtBoundaryAndCountsTheBytesFed) {
  FrameDecoder d;
  std::vector<Slice> out;
  const Bytes h = header_of(20);
  ASSERT_TRUE(d.feed(std::span(h).first(2), out).ok());
  EXPECT_FALSE(d.at_boundary());
  EXPECT_EQ(d.buffered(), 2u);
}

TEST(FrameDecoder, BufferedCountsHeaderAndBodyBytesAtEveryTruncation) {
  Bytes stream;
  append_frame(stream, make_body(20, 5));
  for (std::size_t cut = 1; cut < stream.size(); ++cut) {
    FrameDecoder d;
    std::vector<Slice> out;
    ASSERT_TRUE(d.feed(std::span(stream).first(cut), out).ok());
    EXPECT_TRUE(out.empty()) << "cut " << cut;
    EXPECT_FALSE(d.at_boundary()) << "cut " << cut;
    EXPECT_EQ(d.buffered(), cut) << "cut " << cut;
  }
}

TEST(FrameDecoder, StaysPoisonedAfterAnError) {
  FrameDecoder d;
  std::vector<Slice> out;
  Status first = d.feed(header_of(kDefaultMaxFrame + 1), out);
  ASSERT_EQ(first.code(), Errc::frame_too_large);

  Bytes valid;
  append_frame(valid, make_body(6, 6));
  for (int i = 0; i < 3; ++i) {
    Status again = d.feed(valid, out);
    EXPECT_EQ(again.code(), Errc::frame_too_large);
    EXPECT_EQ(again.message(), first.message());
  }
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(d.reserved(), 0u);
}

TEST(FrameDecoder, StaysPoisonedAfterAZeroLengthFrame) {
  FrameDecoder d;
  std::vector<Slice> out;
  ASSERT_EQ(d.feed(header_of(0), out).code(), Errc::protocol_error);
  Bytes valid;
  append_frame(valid, make_body(6, 7));
  EXPECT_EQ(d.feed(valid, out).code(), Errc::protocol_error);
  EXPECT_TRUE(out.empty());
}

TEST(FrameDecoder, HandshakeLimitRejectsOneByteMore) {
  FrameDecoder d(kHandshakeMaxFrame);
  EXPECT_EQ(d.max_frame(), kHandshakeMaxFrame);
  std::vector<Slice> out;
  EXPECT_EQ(d.feed(header_of(kHandshakeMaxFrame + 1), out).code(), Errc::frame_too_large);
  EXPECT_EQ(d.reserved(), 0u);
}

TEST(FrameDecoder, SetMaxFrameRaisesTheLimitFromTheNextHeader) {
  FrameDecoder d(kHandshakeMaxFrame);
  std::vector<Slice> out;
  const Bytes hello = make_body(kHandshakeMaxFrame, 8);
  Bytes stream;
  append_frame(stream, hello);
  ASSERT_TRUE(d.feed(stream, out).ok());

  d.set_max_frame(kDefaultMaxFrame);
  EXPECT_EQ(d.max_frame(), kDefaultMaxFrame);
  const Bytes big = make_body(100u << 10, 9);
  stream.clear();
  append_frame(stream, big);
  ASSERT_TRUE(d.feed(stream, out).ok());
  expect_bodies(out, {hello, big});
  EXPECT_TRUE(d.at_boundary());
}

TEST(FrameDecoder, LoweringTheLimitMidFrameFinishesTheCurrentFrame) {
  FrameDecoder d;
  std::vector<Slice> out;
  const Bytes body = make_body(10u << 10, 10);
  Bytes stream;
  append_frame(stream, body);
  ASSERT_TRUE(d.feed(std::span(stream).first(100), out).ok());
  d.set_max_frame(kHandshakeMaxFrame);
  ASSERT_TRUE(d.feed(std::span(stream).subspan(100), out).ok());
  expect_bodies(out, {body});
  EXPECT_EQ(d.feed(header_of(kHandshakeMaxFrame + 1), out).code(), Errc::frame_too_large);
}

TEST(FrameDecoder, LimitIsCappedAtTheLargest32BitLength) {
  FrameDecoder d(kDefaultMaxFrame);
  d.set_max_frame(std::size_t{1} << 40);
  EXPECT_EQ(d.max_frame(), kMaxFrameLimit);
  std::vector<Slice> out;
  ASSERT_TRUE(d.feed(header_of(kMaxFrameLimit), out).ok());
  EXPECT_LE(d.reserved(), kGrowChunk);
}

TEST(FrameDecoder, ReservesOnlyReceivedBytesPlusOneChunkForAHugeClaim) {
  FrameDecoder d;
  std::vector<Slice> out;
  const std::size_t claimed = 64u << 20;
  ASSERT_TRUE(d.feed(header_of(claimed), out).ok());
  const Bytes kib = make_body(1024, 11);
  ASSERT_TRUE(d.feed(kib, out).ok());
  EXPECT_TRUE(out.empty());
  // Received: the length prefix and the body bytes so far (the frame is held prefix first).
  EXPECT_GE(d.reserved(), kFrameHeaderSize + kib.size());
  EXPECT_LE(d.reserved(), kFrameHeaderSize + kib.size() + kGrowChunk);
}

TEST(FrameDecoder, ReservationTracksReceivedBytesWhileAHugeFrameArrives) {
  FrameDecoder d;
  std::vector<Slice> out;
  const std::size_t claimed = 64u << 20;
  ASSERT_TRUE(d.feed(header_of(claimed), out).ok());
  const Bytes chunk = make_body(64u << 10, 12);
  std::size_t received = kFrameHeaderSize;
  while (received < (10u << 20)) {
    ASSERT_TRUE(d.feed(chunk, out).ok());
    received += chunk.size();
    ASSERT_GE(d.reserved(), received);
    ASSERT_LE(d.reserved(), 2 * received + kGrowChunk) << "after " << received << " bytes";
  }
  EXPECT_TRUE(out.empty());
  EXPECT_FALSE(d.at_boundary());
}

// --- Bulk frames (issue 4): pooled reassembly and direct reads into the body ------------------

// Feeds `stream` in chunks of `chunk` bytes, checking the reservation bound after each.
void feed_in_chunks(FrameDecoder& d, const Bytes& stream, std::size_t chunk,
                    std::vector<Slice>& out) {
  for (std::size_t at = 0; at < stream.size(); at += chunk) {
    std::size_t n = std::min(chunk, stream.size() - at);
    ASSERT_TRUE(d.feed(std::span(stream).subspan(at, n), out).ok());
    ASSERT_LE(d.reserved(), 2 * (at + n) + kGrowChunk);
  }
}

TEST(FrameDecoder, ABulkFrameArrivesInAPooledBufferOfItsOwn) {
  FrameDecoder d;
  std::vector<Slice> out;
  const Bytes body = make_body((1u << 20) + 29, 21);
  const Bytes small = make_body(10, 22);
  Bytes stream;
  append_frame(stream, body);
  append_frame(stream, small);
  feed_in_chunks(d, stream, 64u << 10, out);
  expect_bodies(out, {body, small});
  ASSERT_EQ(out.size(), 2u);
  // The whole buffer is the frame: the consumer may keep it (or hand it on) alone.
  EXPECT_TRUE(out[0].owner->pooled());
  EXPECT_EQ(out[0].data, out[0].owner->data());
  EXPECT_EQ(out[0].size, out[0].owner->size());
  EXPECT_TRUE(d.at_boundary());
}

TEST(FrameDecoder, ASmallFrameSpanningFeedsIsNotPooled) {
  FrameDecoder d;
  std::vector<Slice> out;
  const Bytes body = make_body(kPooledFrame / 2, 23);
  Bytes stream;
  append_frame(stream, body);
  feed_in_chunks(d, stream, 1000, out);
  expect_bodies(out, {body});
  EXPECT_FALSE(out[0].owner->pooled());
}

TEST(FrameDecoder, BodyRoomIsEmptyBetweenFramesAndForSmallFrames) {
  FrameDecoder d;
  std::vector<Slice> out;
  EXPECT_TRUE(d.body_room().empty());
  ASSERT_TRUE(d.feed(header_of(100), out).ok());
  EXPECT_TRUE(d.body_room().empty());
}

// Receives `stream` as Connection does: through body_room() while a bulk frame is partly in,
// through feed() otherwise, `chunk` bytes at most per "read".
std::vector<Slice> receive_directly(FrameDecoder& d, const Bytes& stream, std::size_t chunk) {
  std::vector<Slice> out;
  std::size_t at = 0;
  while (at < stream.size()) {
    std::span<std::uint8_t> room = d.body_room();
    std::size_t n = std::min(chunk, stream.size() - at);
    if (!room.empty()) {
      n = std::min(n, room.size());
      std::memcpy(room.data(), stream.data() + at, n);
      d.commit_body(n, out);
    } else {
      EXPECT_TRUE(d.feed(std::span(stream).subspan(at, n), out).ok());
    }
    at += n;
    EXPECT_LE(d.reserved(), 2 * at + kGrowChunk) << "after " << at << " bytes";
  }
  return out;
}

TEST(FrameDecoder, BodyRoomReceivesBulkFramesWithoutTakingTheNextFramesBytes) {
  const Bytes one_mib = make_body(1u << 20, 24);
  const Bytes tiny = make_body(3, 25);
  const Bytes sixteen_mib = make_body(16u << 20, 26);
  Bytes stream;
  append_frame(stream, one_mib);
  append_frame(stream, tiny);
  append_frame(stream, sixteen_mib);
  append_frame(stream, tiny);
  // Read sizes that do and do not divide the frames, and larger than a frame's remainder.
  for (std::size_t chunk : {std::size_t{4096}, std::size_t{65536 + 7}, std::size_t{3u << 20}}) {
    FrameDecoder d;
    std::vector<Slice> out = receive_directly(d, stream, chunk);
    expect_bodies(out, {one_mib, tiny, sixteen_mib, tiny});
    EXPECT_TRUE(d.at_boundary()) << "chunk " << chunk;
  }
}

TEST(FrameDecoder, BodyRoomNeverReservesMoreThanFeedWouldForAHugeClaim) {
  FrameDecoder d;
  std::vector<Slice> out;
  ASSERT_TRUE(d.feed(header_of(64u << 20), out).ok());
  std::size_t received = kFrameHeaderSize;
  const Bytes chunk = make_body(64u << 10, 27);
  while (received < (8u << 20)) {
    std::span<std::uint8_t> room = d.body_room();
    ASSERT_FALSE(room.empty());
    std::size_t n = std::min(room.size(), chunk.size());
    std::memcpy(room.data(), chunk.data(), n);
    d.commit_body(n, out);
    received += n;
    ASSERT_GE(d.reserved(), received);
    ASSERT_LE(d.reserved(), 2 * received + kGrowChunk) << "after " << received << " bytes";
  }
  EXPECT_TRUE(out.empty());
}

}  // namespace
}  // namespace switchboard
