// Ten subscribers on one topic, one of which stops reading (docs/DESIGN.md, "Promises", under the
// flow control of issue 11):
// - while it is merely slow (it stops for less than the stall timeout), it loses nothing: the hub
//   pauses the publisher instead, so every subscriber of that publisher waits for it, and once it
//   reads again all ten get every event in order. The hub's queue for it stays at the mark plus
//   one message.
// - once it is stalled (over its mark with no progress for the stall timeout), the drop policy
//   applies: the publisher goes on, the nine get everything, and the stalled one, when it reads
//   again, gets what was queued for it and then exactly one DROPPED notice whose count is what it
//   missed, exactly.
//
// The readers are raw sockets read by one thread (so ten readers cost one core at most); the
// publisher is a Client, whose submit() never blocks: it buffers while the hub holds it back.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "test_support.h"

namespace switchboard::testing {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kSubscribers = 10;
constexpr int kSlow = kSubscribers - 1;
// A sanitizer build runs a tenth of the events: still several times the mark.
constexpr std::uint64_t kScale = kSanitized ? 10 : 1;
constexpr std::uint64_t kEvents = 100000 / kScale;
constexpr std::size_t kPayload = 100;
constexpr std::uint64_t kChunk = 1000;  // events per submit
// 13 MB of events against a 1 MiB mark (1.3 MB against 128 KiB under a sanitizer).
constexpr std::size_t kMark = kSanitized ? (128u << 10) : (1u << 20);
constexpr std::size_t kFrameBound = kPayload + 64;

double mib(std::uint64_t bytes) {
  return static_cast<double>(bytes) / 1048576.0;
}
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds deadline = std::chrono::milliseconds(20000)) {
  const auto end = Clock::now() + deadline;
  while (!pred()) {
    if (Clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// One subscriber's receiving side: its decoder, and what it has seen.
struct Reader {
  std::unique_ptr<RawPeer> peer;
  std::uint64_t peer_id = 0;
  FrameDecoder decoder{kDefaultMaxFrame};
  std::vector<Slice> frames;
  std::uint64_t received = 0;
  std::uint64_t last_seq = 0;  // seq numbers start at 1
  std::uint64_t out_of_order = 0;
  std::uint64_t gaps = 0;  // events skipped between two received ones
  std::vector<DroppedNotice> notices;
  std::uint64_t events_after_notice = 0;
  bool failed = false;
};

// Reads every reader's socket that is not stopped on one thread.
class ReadLoop {
 public:
  explicit ReadLoop(std::vector<Reader>& readers) : readers_(readers) {
    for (auto& r : readers_) {
      int fl = ::fcntl(r.peer->fd(), F_GETFL);
      ::fcntl(r.peer->fd(), F_SETFL, fl | O_NONBLOCK);
    }
    thread_ = std::thread([this] { run(); });
  }
  ~ReadLoop() { stop(); }
  void stop() {
    if (!thread_.joinable()) return;
    stop_.store(true);
    thread_.join();
  }
  void stop_reading(int i, bool on) { stopped_[i].store(on); }
  // Waits until every reader for which `which(i)` holds has received event `n` (or a later one).
  bool wait_received(std::uint64_t n, const std::function<bool(int)>& which,
                     std::chrono::milliseconds deadline = std::chrono::milliseconds(30000)) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, deadline, [&] {
      for (int i = 0; i < kSubscribers; ++i) {
        if (which(i) && last_seq_[i] < n) return false;
      }
      return true;
    });
  }
  // Waits until reader `i` has accounted for `n` events: received, or missed per a notice.
  bool wait_accounted(int i, std::uint64_t n,
                      std::chrono::milliseconds deadline = std::chrono::milliseconds(30000)) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, deadline, [&] { return accounted_[i] >= n; });
  }

 private:
  void run() {
    std::vector<std::uint8_t> buf(256u << 10);
    while (!stop_.load()) {
      std::vector<pollfd> fds;
      std::vector<int> which;
      for (int i = 0; i < kSubscribers; ++i) {
        if (stopped_[i].load() || readers_[i].failed) continue;
        fds.push_back({readers_[i].peer->fd(), POLLIN, 0});
        which.push_back(i);
      }
      if (::poll(fds.data(), fds.size(), 20) <= 0) continue;
      for (std::size_t k = 0; k < fds.size(); ++k) {
        if (!(fds[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        Reader& r = readers_[which[k]];
        ssize_t n = ::recv(fds[k].fd, buf.data(), buf.size(), 0);
        if (n <= 0) {
          if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) r.failed = true;
          continue;
        }
        r.frames.clear();
        if (!r.decoder.feed({buf.data(), static_cast<std::size_t>(n)}, r.frames).ok()) {
          r.failed = true;
          continue;
        }
        for (const Slice& frame : r.frames) {
          Envelope env;
          if (!decode_frame(frame, env).ok()) {
            r.failed = true;
            break;
          }
          if (env.kind == Kind::dropped) {
            DroppedNotice notice;
            if (!decode_dropped(env.payload, notice).ok()) r.failed = true;
            r.notices.push_back(std::move(notice));
            continue;
          }
          if (env.kind != Kind::event || env.payload.size < 8) continue;
          std::uint64_t seq = 0;
          std::memcpy(&seq, env.payload.data, 8);
          if (seq <= r.last_seq)
            ++r.out_of_order;
          else
            r.gaps += seq - r.last_seq - 1;
          r.last_seq = seq;
          ++r.received;
          if (!r.notices.empty()) ++r.events_after_notice;
        }
        {
          std::lock_guard lock(mutex_);
          last_seq_[which[k]] = r.last_seq;
          std::uint64_t missed = 0;
          for (const DroppedNotice& d : r.notices) missed += d.count;
          accounted_[which[k]] = r.received + missed;
        }
        cv_.notify_all();
      }
    }
  }

  std::vector<Reader>& readers_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> stopped_[kSubscribers] = {};
  std::mutex mutex_;
  std::condition_variable cv_;
  std::uint64_t last_seq_[kSubscribers] = {};
  std::uint64_t accounted_[kSubscribers] = {};
};

// Ten raw subscribers to "t" and a Client publisher on a hub with the given stall settings.
struct TenSubscribers {
  HubFixture f;
  std::vector<Reader> readers{kSubscribers};
  std::unique_ptr<TestClient> publisher;

  explicit TenSubscribers(HubOptions opt) : f(std::move(opt)) {
    for (auto& r : readers) {
      r.peer = std::make_unique<RawPeer>(f.hub->endpoint());
      auto w = r.peer->handshake(f.hub->token());
      EXPECT_TRUE(w && w->kind == Kind::welcome);
      Welcome welcome;
      if (w) {
        EXPECT_TRUE(decode_welcome(w->payload, welcome).ok());
      }
      r.peer_id = welcome.peer_id;
      EXPECT_TRUE(r.peer->write(frame_bytes(make(Kind::subscribe, "t", 1))));
      auto ack = r.peer->read_frame();
      EXPECT_TRUE(ack && ack->kind == Kind::result);
    }
    publisher = std::make_unique<TestClient>(*f.hub);
  }
  // Submits every event, numbered from 1 in its first 8 payload bytes; never blocks.
  void publish() {
    for (std::uint64_t seq = 1; seq <= kEvents;) {
      std::vector<Envelope> batch;
      for (std::uint64_t k = 0; k < kChunk && seq <= kEvents; ++k, ++seq) {
        std::string payload(kPayload, 'p');
        std::memcpy(payload.data(), &seq, 8);
        batch.push_back(make(Kind::event, "t", 0, payload));
      }
      ASSERT_TRUE(publisher->client->submit(std::move(batch)).ok());
    }
  }
  HubPeerStats stats_of(int i) {
    for (const HubPeerStats& p : f.hub->peer_stats()) {
      if (p.id == readers[i].peer_id) return p;
    }
    return HubPeerStats{};
  }
};

HubOptions hub_options(std::chrono::milliseconds stall) {
  HubOptions opt;
  opt.high_water_mark = kMark;
  opt.stall_timeout = stall;
  opt.overflow = OverflowPolicy::drop;
  // These raw peers read but never answer a PING.
  opt.ping_interval = std::chrono::milliseconds(0);
  return opt;
}

TEST(SlowSubscriber, OneOfTenThatStopsForLessThanTheStallTimeoutLosesNothing) {
  // A stall timeout far beyond the test: the tenth is slow, never stalled.
  TenSubscribers t(hub_options(std::chrono::milliseconds(60000)));
  ReadLoop loop(t.readers);
  loop.stop_reading(kSlow, true);
  const auto start = Clock::now();
  t.publish();
  // The tenth's queue fills to the mark and the publisher is paused: everyone waits for it.
  ASSERT_TRUE(eventually([&] { return t.f.hub->stats().paused == 1; }))
      << "the publisher was never paused";
  const double to_pause = seconds_since(start);
  const HubPeerStats at_pause = t.stats_of(kSlow);
  EXPECT_LE(at_pause.queued_bytes, kMark + kFrameBound);
  EXPECT_EQ(t.f.hub->stats().events_dropped, 0u);

  // It reads again: all ten get everything, in order.
  const auto resumed = Clock::now();
  loop.stop_reading(kSlow, false);
  ASSERT_TRUE(loop.wait_received(kEvents, [](int) { return true; }))
      << "not every subscriber got every event";
  const double after_resume = seconds_since(resumed);
  loop.stop();
  for (int i = 0; i < kSubscribers; ++i) {
    EXPECT_EQ(t.readers[i].received, kEvents) << "reader " << i;
    EXPECT_EQ(t.readers[i].out_of_order, 0u) << "reader " << i;
    EXPECT_EQ(t.readers[i].gaps, 0u) << "reader " << i;
    EXPECT_TRUE(t.readers[i].notices.empty()) << "reader " << i;
  }
  HubStats s = t.f.hub->stats();
  EXPECT_EQ(s.events_dropped, 0u);
  EXPECT_EQ(s.stalls, 0u);
  EXPECT_GE(s.pauses, 1u);
  EXPECT_LE(s.peak_queued_bytes, kMark + kFrameBound) << "the mark plus one message, per peer";
  EXPECT_TRUE(eventually([&] {
    HubStats now = t.f.hub->stats();
    return now.paused == 0 && now.parked_bytes == 0 && now.queued_bytes == 0;
  }));
  std::printf(
      "[ figure ] %llu events to ten subscribers, the tenth stopped: publisher paused after "
      "%.3f s with %.2f MiB queued for it (mark %.2f MiB); all ten had everything %.3f s after "
      "it read again; %llu pauses, peak queue %.2f MiB\n",
      static_cast<unsigned long long>(kEvents), to_pause, mib(at_pause.queued_bytes), mib(kMark),
      after_resume, static_cast<unsigned long long>(s.pauses), mib(s.peak_queued_bytes));
}

TEST(SlowSubscriber, OneStalledOfTenIsDroppedTheNineGetEverythingAndItLearnsItsExactLoss) {
  constexpr auto kStall = std::chrono::milliseconds(500);
  TenSubscribers t(hub_options(kStall));
  ReadLoop loop(t.readers);
  loop.stop_reading(kSlow, true);
  const auto start = Clock::now();
  t.publish();
  auto the_nine = [](int i) { return i != kSlow; };
  // Paused until the stall timeout, then the publisher goes on without the tenth.
  ASSERT_TRUE(loop.wait_received(kEvents, the_nine)) << "the nine did not get every event";
  const double nine_done = seconds_since(start);
  HubStats s = t.f.hub->stats();
  EXPECT_EQ(s.stalls, 1u);
  EXPECT_EQ(s.stalled, 1u);
  EXPECT_GT(s.events_dropped, 0u);
  EXPECT_LE(s.peak_queued_bytes, kMark + kFrameBound);
  const HubPeerStats slow = t.stats_of(kSlow);
  EXPECT_TRUE(slow.stalled);
  EXPECT_EQ(slow.events_dropped, s.events_dropped) << "nobody else lost anything";
  EXPECT_LE(slow.queued_bytes, kMark + kFrameBound);

  // It reads again: what was queued for it, in order, then one notice of exactly the rest.
  loop.stop_reading(kSlow, false);
  ASSERT_TRUE(loop.wait_accounted(kSlow, kEvents)) << "its events and its notice do not add up";
  loop.stop();
  const Reader& r = t.readers[kSlow];
  ASSERT_EQ(r.notices.size(), 1u);
  const DroppedNotice& notice = r.notices.front();
  EXPECT_EQ(r.received + notice.count, kEvents);
  EXPECT_EQ(notice.count, slow.events_dropped);
  ASSERT_EQ(notice.topics.size(), 1u);
  EXPECT_EQ(notice.topics.at("t"), notice.count);
  // What it received is a prefix: the events queued before the stall, without a gap; everything
  // after them was dropped.
  EXPECT_EQ(r.last_seq, r.received);
  EXPECT_EQ(r.gaps, 0u);
  EXPECT_EQ(r.out_of_order, 0u);
  EXPECT_EQ(r.events_after_notice, 0u);
  for (int i = 0; i < kSlow; ++i) {
    EXPECT_EQ(t.readers[i].received, kEvents) << "reader " << i;
    EXPECT_EQ(t.readers[i].gaps, 0u) << "reader " << i;
    EXPECT_EQ(t.readers[i].out_of_order, 0u) << "reader " << i;
    EXPECT_TRUE(t.readers[i].notices.empty()) << "reader " << i;
  }
  EXPECT_TRUE(eventually([&] {
    HubStats now = t.f.hub->stats();
    return now.paused == 0 && now.parked_bytes == 0 && now.stalled == 0 && now.queued_bytes == 0;
  }));
  std::printf(
      "[ figure ] %llu events, stall timeout %lld ms: the nine had everything after %.3f s; the "
      "stalled tenth received %llu and was told it missed %llu\n",
      static_cast<unsigned long long>(kEvents), static_cast<long long>(kStall.count()), nine_done,
      static_cast<unsigned long long>(r.received), static_cast<unsigned long long>(notice.count));
}

}  // namespace
}  // namespace switchboard::testing
