// Tests for core/batcher.h: the outbound queue, gathering into iovecs, and partial writes.
#include "batcher.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace switchboard {
namespace {

WireFrame frame_of(std::string_view head, std::string_view payload) {
  WireFrame f;
  f.head = std::make_shared<const Buffer>(head.data(), head.size());
  if (!payload.empty()) f.payload = Slice::copy_of(payload);
  return f;
}

std::string concat(const std::vector<IoVec>& iov) {
  std::string out;
  for (const IoVec& v : iov) out.append(static_cast<const char*>(v.iov_base), v.iov_len);
  return out;
}

struct Sample {
  std::vector<WireFrame> frames;
  std::string bytes;              // every frame's bytes, in order
  std::vector<std::size_t> ends;  // offset just past each frame
};

// Five frames with distinct bytes; one has an empty payload.
Sample sample() {
  Sample s;
  const std::pair<std::string_view, std::string_view> parts[] = {
      {"H1", "payload-one"}, {"HEAD2", "p2"}, {"H3", ""}, {"H4", "fourth payload"}, {"h5", "5"}};
  for (const auto& [head, payload] : parts) {
    s.frames.push_back(frame_of(head, payload));
    s.bytes.append(head);
    s.bytes.append(payload);
    s.ends.push_back(s.bytes.size());
  }
  return s;
}

void push_all(Batcher& b, const Sample& s) {
  for (const WireFrame& f : s.frames) b.push(f);
}

std::size_t frames_ending_by(const Sample& s, std::size_t offset) {
  std::size_t n = 0;
  for (std::size_t end : s.ends) n += end <= offset ? 1 : 0;
  return n;
}

TEST(Batcher, StartsEmpty) {
  Batcher b;
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.queued_frames(), 0u);
  EXPECT_EQ(b.queued_bytes(), 0u);
  std::vector<IoVec> iov(3);
  b.gather(iov);
  EXPECT_TRUE(iov.empty());
}

TEST(Batcher, GatherCoversExactlyTheQueuedBytesInOrder) {
  const Sample s = sample();
  Batcher b;
  push_all(b, s);
  std::vector<IoVec> iov;
  b.gather(iov);
  EXPECT_EQ(concat(iov), s.bytes);
  EXPECT_EQ(b.queued_bytes(), s.bytes.size());
  EXPECT_EQ(b.queued_frames(), s.frames.size());
}

TEST(Batcher, GatherPointsIntoTheQueuedBuffersWithoutCopying) {
  WireFrame f = frame_of("HEAD", "PAYLOAD");
  Batcher b;
  b.push(f);
  std::vector<IoVec> iov;
  b.gather(iov);
  ASSERT_EQ(iov.size(), 2u);
  EXPECT_EQ(iov[0].iov_base, static_cast<const void*>(f.head->data()));
  EXPECT_EQ(iov[0].iov_len, 4u);
  EXPECT_EQ(iov[1].iov_base, static_cast<const void*>(f.payload.data));
  EXPECT_EQ(iov[1].iov_len, 7u);
}

TEST(Batcher, FramesBackToBackInOneBufferGoOutAsOneIovec) {
  // Three frames of one submitted batch, views of one buffer (as FrameDecoder and the addon
  // hand them out), then one frame elsewhere.
  auto whole = std::make_shared<const Buffer>("aaaabbbbbbcc", 12);
  Batcher b;
  for (auto [at, n] : {std::pair{0, 4}, std::pair{4, 6}, std::pair{10, 2}}) {
    WireFrame f;
    f.payload = Slice(whole, whole->data() + at, static_cast<std::size_t>(n));
    b.push(f);
  }
  b.push(frame_of("X", "Y"));
  std::vector<IoVec> iov;
  b.gather(iov);
  ASSERT_EQ(iov.size(), 3u);
  EXPECT_EQ(iov[0].iov_base, static_cast<const void*>(whole->data()));
  EXPECT_EQ(iov[0].iov_len, 12u);
  EXPECT_EQ(concat(iov), "aaaabbbbbbccXY");
  // A partial write restarts inside the merged run.
  EXPECT_EQ(b.consume(5), 1u);
  b.gather(iov);
  EXPECT_EQ(concat(iov), "bbbbbccXY");
}

TEST(Batcher, GatherReplacesThePreviousContents) {
  Batcher b;
  b.push(frame_of("ab", "cd"));
  std::vector<IoVec> iov;
  b.gather(iov);
  b.gather(iov);
  EXPECT_EQ(concat(iov), "abcd");
}

TEST(Batcher, KeepsQueuedBuffersAliveAfterTheCallerDropsThem) {
  Batcher b;
  b.push(frame_of("head", "payload"));  // the temporary WireFrame is gone after this line
  std::vector<IoVec> iov;
  b.gather(iov);
  EXPECT_EQ(concat(iov), "headpayload");
}

TEST(Batcher, ZeroLengthPayloadProducesNoEmptyIovec) {
  Batcher b;
  b.push(frame_of("A", ""));
  b.push(frame_of("BB", ""));
  b.push(frame_of("C", "c"));
  std::vector<IoVec> iov;
  b.gather(iov);
  ASSERT_EQ(iov.size(), 4u);
  for (const IoVec& v : iov) EXPECT_GT(v.iov_len, 0u);
  EXPECT_EQ(concat(iov), "ABBCc");
}

TEST(Batcher, PartialWriteAtEveryOffsetRestartsGatherAtTheRightByte) {
  const Sample s = sample();
  for (std::size_t k = 0; k <= s.bytes.size(); ++k) {
    Batcher b;
    push_all(b, s);
    EXPECT_EQ(b.consume(k), frames_ending_by(s, k)) << "offset " << k;
    EXPECT_EQ(b.queued_bytes(), s.bytes.size() - k) << "offset " << k;
    EXPECT_EQ(b.queued_frames(), s.frames.size() - frames_ending_by(s, k)) << "offset " << k;
    std::vector<IoVec> iov;
    b.gather(iov);
    EXPECT_EQ(concat(iov), s.bytes.substr(k)) << "offset " << k;
    for (const IoVec& v : iov) EXPECT_GT(v.iov_len, 0u) << "offset " << k;
    // Writing the rest completes every remaining frame.
    EXPECT_EQ(b.consume(s.bytes.size() - k), s.frames.size() - frames_ending_by(s, k));
    EXPECT_TRUE(b.empty()) << "offset " << k;
    EXPECT_EQ(b.queued_bytes(), 0u);
  }
}

TEST(Batcher, ConsumingOneByteAtATimeCountsEachFrameOnce) {
  const Sample s = sample();
  Batcher b;
  push_all(b, s);
  std::size_t completed = 0;
  for (std::size_t k = 1; k <= s.bytes.size(); ++k) {
    completed += b.consume(1);
    EXPECT_EQ(completed, frames_ending_by(s, k)) << "after " << k << " bytes";
    std::vector<IoVec> iov;
    b.gather(iov);
    EXPECT_EQ(concat(iov), s.bytes.substr(k)) << "after " << k << " bytes";
  }
  EXPECT_EQ(completed, s.frames.size());
  EXPECT_TRUE(b.empty());
}

TEST(Batcher, TwoPartialWritesAtEveryPairOfOffsets) {
  const Sample s = sample();
  for (std::size_t first = 0; first <= s.bytes.size(); ++first) {
    for (std::size_t second = first; second <= s.bytes.size(); ++second) {
      Batcher b;
      push_all(b, s);
      std::size_t done = b.consume(first);
      done += b.consume(second - first);
      ASSERT_EQ(done, frames_ending_by(s, second)) << first << "+" << (second - first);
      std::vector<IoVec> iov;
      b.gather(iov);
      ASSERT_EQ(concat(iov), s.bytes.substr(second)) << first << "+" << (second - first);
    }
  }
}

TEST(Batcher, GatherRespectsMaxIov) {
  const Sample s = sample();  // 9 non-empty pieces: the third frame has no payload
  Batcher b;
  push_all(b, s);
  std::vector<IoVec> iov;
  b.gather(iov, 3);
  ASSERT_EQ(iov.size(), 3u);
  EXPECT_EQ(concat(iov), "H1payload-oneHEAD2");

  // After a write that stops inside a piece, the cap still counts from the restart point.
  b.consume(4);  // "H1pa"
  b.gather(iov, 2);
  ASSERT_EQ(iov.size(), 2u);
  EXPECT_EQ(concat(iov), "yload-oneHEAD2");

  b.gather(iov, 1);
  ASSERT_EQ(iov.size(), 1u);
  EXPECT_EQ(concat(iov), "yload-one");

  b.gather(iov, 100);
  EXPECT_EQ(concat(iov), s.bytes.substr(4));
}

TEST(Batcher, GatherCapsAtLinuxIovMaxByDefault) {
  Batcher b;
  for (int i = 0; i < 600; ++i) b.push(frame_of("h", "p"));
  std::vector<IoVec> iov;
  b.gather(iov);
  EXPECT_EQ(iov.size(), Batcher::kMaxIov);
  EXPECT_EQ(Batcher::kMaxIov, 1024u);
  EXPECT_EQ(b.queued_bytes(), 1200u);
}

TEST(Batcher, QueuedBytesAccountsForPushesAndConsumes) {
  Batcher b;
  b.push(frame_of("abc", "defg"));
  EXPECT_EQ(b.queued_bytes(), 7u);
  b.push(frame_of("h", ""));
  EXPECT_EQ(b.queued_bytes(), 8u);
  EXPECT_EQ(b.queued_frames(), 2u);
  EXPECT_EQ(b.consume(5), 0u);
  EXPECT_EQ(b.queued_bytes(), 3u);
  EXPECT_EQ(b.queued_frames(), 2u);
  EXPECT_EQ(b.consume(2), 1u);
  EXPECT_EQ(b.queued_bytes(), 1u);
  EXPECT_EQ(b.queued_frames(), 1u);
  b.push(frame_of("ij", "k"));
  EXPECT_EQ(b.queued_bytes(), 4u);
  EXPECT_EQ(b.consume(4), 2u);
  EXPECT_EQ(b.queued_bytes(), 0u);
  EXPECT_TRUE(b.empty());
}

TEST(Batcher, ConsumeOfZeroBytesCompletesNothing) {
  Batcher b;
  b.push(frame_of("ab", "cd"));
  EXPECT_EQ(b.consume(0), 0u);
  EXPECT_EQ(b.queued_bytes(), 4u);
  EXPECT_FALSE(b.empty());
}

TEST(Batcher, ClearDropsEverythingIncludingThePartialWriteOffset) {
  Batcher b;
  b.push(frame_of("abc", "def"));
  b.push(frame_of("ghi", "jkl"));
  b.consume(2);
  b.clear();
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.queued_frames(), 0u);
  EXPECT_EQ(b.queued_bytes(), 0u);
  std::vector<IoVec> iov;
  b.gather(iov);
  EXPECT_TRUE(iov.empty());

  b.push(frame_of("new", "frame"));
  b.gather(iov);
  EXPECT_EQ(concat(iov), "newframe");
  EXPECT_EQ(b.queued_bytes(), 8u);
  EXPECT_EQ(b.consume(8), 1u);
}

TEST(Batcher, ClearReleasesTheQueuedBuffers) {
  WireFrame f = frame_of("head", "payload");
  std::weak_ptr<const Buffer> head = f.head;
  std::weak_ptr<const Buffer> payload = f.payload.owner;
  Batcher b;
  b.push(std::move(f));
  f = WireFrame{};
  EXPECT_FALSE(head.expired());
  b.clear();
  EXPECT_TRUE(head.expired());
  EXPECT_TRUE(payload.expired());
}

TEST(Batcher, ConsumeReleasesCompletedFramesOnly) {
  WireFrame first = frame_of("a", "b");
  WireFrame second = frame_of("c", "d");
  std::weak_ptr<const Buffer> first_head = first.head;
  std::weak_ptr<const Buffer> second_head = second.head;
  Batcher b;
  b.push(std::move(first));
  b.push(std::move(second));
  first = WireFrame{};
  second = WireFrame{};
  EXPECT_EQ(b.consume(3), 1u);
  EXPECT_TRUE(first_head.expired());
  EXPECT_FALSE(second_head.expired());
}

TEST(Batcher, GatherOfRealEncodedFramesMatchesTheirBytes) {
  Batcher b;
  std::string expected;
  for (int i = 0; i < 3; ++i) {
    Envelope env;
    env.kind = Kind::event;
    env.id = static_cast<std::uint64_t>(i);
    env.topic = "topic:" + std::to_string(i);
    env.payload = Slice::copy_of(std::string(static_cast<std::size_t>(i) * 10, 'x'));
    WireFrame f;
    ASSERT_TRUE(encode_frame(env, f).ok());
    expected.append(reinterpret_cast<const char*>(f.head->data()), f.head->size());
    expected.append(f.payload.view());
    b.push(f);
  }
  std::vector<IoVec> iov;
  b.gather(iov);
  EXPECT_EQ(concat(iov), expected);
  EXPECT_EQ(b.queued_bytes(), expected.size());
}

}  // namespace
}  // namespace switchboard
