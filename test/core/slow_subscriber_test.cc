// A subscriber that stops reading (issue 5, "Slow subscriber"): ten subscribers, one stalls
// while 1,000,000 events of 100 bytes are published. Its queue stays at its cap, the hub's
// queued bytes and the process's growth stay under 16 MiB, the other nine get every event in order
// at no less than 90 % of their normal rate, and the stalled peer's drop counter is exact.
//
// The publisher paces itself on what the nine have received (a window of events in flight).
// The hub does not push back on a publisher for the sake of a slow-but-live subscriber (a known
// gap, docs/SECURITY.md); without pacing, a publisher faster than the readers would fill their
// queues too, and the hub would rightly drop for them as well.
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
#include <fstream>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "attack_support.h"
#include "test_support.h"

namespace switchboard::testing {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kSubscribers = 10;
// A sanitizer build runs a tenth of the events: still far beyond the mark.
constexpr std::uint64_t kScale = kSanitized ? 10 : 1;
constexpr std::uint64_t kWarmUp = 50000 / kScale;    // all ten reading, before the stall
constexpr std::uint64_t kEvents = 1000000 / kScale;  // published while the tenth is stalled
constexpr std::uint64_t kSegment = 10000 / kScale;   // events per rate measurement
constexpr std::size_t kPayload = 100;
constexpr std::uint64_t kChunk = 1000;   // events per publisher write
constexpr std::uint64_t kWindow = 4000;  // events in flight ahead of the slowest live reader

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  std::size_t n = v.size();
  return n == 0 ? 0.0 : n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double mib(std::uint64_t bytes) {
  return static_cast<double>(bytes) / 1048576.0;
}

std::uint64_t rss_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
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
  std::uint64_t gaps = 0;  // events skipped (dropped) between two received ones
  bool failed = false;
};

// Reads every non-stalled reader's socket on one thread, so ten readers cost one core at most.
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
  void stall(int i, bool on) { stalled_[i].store(on); }
  // Waits until every reader for which `live(i)` holds has received event `n` or a later one.
  bool wait_received(std::uint64_t n, const std::function<bool(int)>& live,
                     std::chrono::milliseconds deadline = std::chrono::milliseconds(20000)) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, deadline, [&] {
      for (int i = 0; i < kSubscribers; ++i) {
        if (live(i) && last_seq_[i] < n) return false;
      }
      return true;
    });
  }
  // Waits until reader `i` has received at least `n` events in all.
  bool wait_count(int i, std::uint64_t n,
                  std::chrono::milliseconds deadline = std::chrono::milliseconds(20000)) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, deadline, [&] { return received_[i] >= n; });
  }
  std::uint64_t received(int i) {
    std::lock_guard lock(mutex_);
    return received_[i];
  }

 private:
  void run() {
    std::vector<std::uint8_t> buf(256u << 10);
    while (!stop_.load()) {
      std::vector<pollfd> fds;
      std::vector<int> which;
      for (int i = 0; i < kSubscribers; ++i) {
        if (stalled_[i].load() || readers_[i].failed) continue;
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
          if (env.kind != Kind::event || env.payload.size < 8) continue;
          std::uint64_t seq = 0;
          std::memcpy(&seq, env.payload.data, 8);
          if (seq <= r.last_seq)
            ++r.out_of_order;
          else
            r.gaps += seq - r.last_seq - 1;
          r.last_seq = seq;
          ++r.received;
        }
        {
          std::lock_guard lock(mutex_);
          received_[which[k]] = r.received;
          last_seq_[which[k]] = r.last_seq;
        }
        cv_.notify_all();
      }
    }
  }

  std::vector<Reader>& readers_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> stalled_[kSubscribers] = {};
  std::mutex mutex_;
  std::condition_variable cv_;
  std::uint64_t received_[kSubscribers] = {};
  std::uint64_t last_seq_[kSubscribers] = {};
};

TEST(SlowSubscriber, OneStalledOfTenCostsTheOthersNothingAndItsDropsAreCountedExactly) {
  // Defaults (8 MiB high-water mark, drop policy), except liveness: these raw peers read but
  // never answer a PING, and on a loaded machine the run outlasts two ping intervals.
  HubOptions opt;
  opt.ping_interval = std::chrono::milliseconds(0);
  HubFixture f(opt);
  const std::size_t mark = HubOptions{}.high_water_mark;
  std::vector<Reader> readers(kSubscribers);
  for (auto& r : readers) {
    r.peer = std::make_unique<RawPeer>(f.hub->endpoint());
    auto w = r.peer->handshake(f.hub->token());
    ASSERT_TRUE(w && w->kind == Kind::welcome);
    Welcome welcome;
    ASSERT_TRUE(decode_welcome(w->payload, welcome).ok());
    r.peer_id = welcome.peer_id;
    ASSERT_TRUE(r.peer->write(frame_bytes(make(Kind::subscribe, "t", 1))));
    auto ack = r.peer->read_frame();
    ASSERT_TRUE(ack && ack->kind == Kind::result);
  }
  RawPeer publisher(f.hub->endpoint());
  ASSERT_EQ(publisher.handshake(f.hub->token())->kind, Kind::welcome);
  constexpr int kSlow = kSubscribers - 1;
  ReadLoop loop(readers);

  // Events numbered from 1 in the first 8 payload bytes, written kChunk at a time.
  std::uint64_t next_seq = 1;
  std::string chunk;
  auto the_nine = [](int i) { return i != kSlow; };
  // Paced on the nine (the tenth, when it reads, reads as fast as they do; that it then loses
  // nothing is checked), and done once every reader in `live` has the last event.
  auto publish = [&](std::uint64_t count, const std::function<bool(int)>& live) {
    std::uint64_t end = next_seq + count;
    while (next_seq < end) {
      std::uint64_t n = std::min(kChunk, end - next_seq);
      // Room for this chunk: the slowest of the nine is no more than kWindow behind after it.
      if (next_seq + n > kWindow) {
        if (!loop.wait_received(next_seq + n - 1 - kWindow, the_nine)) return false;
      }
      chunk.clear();
      for (std::uint64_t i = 0; i < n; ++i) {
        std::string payload(kPayload, 'p');
        std::uint64_t seq = next_seq + i;
        std::memcpy(payload.data(), &seq, 8);
        chunk += frame_bytes(make(Kind::event, "t", 0, payload));
      }
      if (!publisher.write(chunk)) return false;
      next_seq += n;
    }
    return loop.wait_received(end - 1, live);
  };
  auto everyone = [](int) { return true; };

  auto rate_of = [&](std::uint64_t events, const std::function<bool(int)>& live,
                     std::vector<double>& rates) {
    auto t = Clock::now();
    if (!publish(events, live)) return false;
    rates.push_back(static_cast<double>(events) /
                    std::chrono::duration<double>(Clock::now() - t).count());
    return true;
  };
  auto slow_stats = [&] {
    for (const HubPeerStats& p : f.hub->peer_stats()) {
      if (p.id == readers[kSlow].peer_id) return p;
    }
    return HubPeerStats{};
  };
  // The tenth leaves or rejoins the topic between two segments (id 0: no acknowledgement, so
  // nothing is queued for it beyond events). The switch is in force once the hub counts it.
  auto set_tenth_subscribed = [&](bool on) {
    EXPECT_TRUE(readers[kSlow].peer->write(
        frame_bytes(make(on ? Kind::subscribe : Kind::unsubscribe, "t", 0))));
    const std::uint64_t want = on ? kSubscribers : kSubscribers - 1;
    auto deadline = Clock::now() + std::chrono::seconds(10);
    while (f.hub->stats().subscriptions != want && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return f.hub->stats().subscriptions == want;
  };

  // All ten read at first.
  std::uint64_t routed_to_tenth = 0;
  std::vector<double> all_ten_rates, filling_rates, normal_rates, stalled_rates;
  ASSERT_TRUE(rate_of(kWarmUp, everyone, all_ten_rates));
  routed_to_tenth += kWarmUp;

  // A sampler watches the hub's queues from the stall on.
  loop.stall(kSlow, true);
  std::atomic<bool> sampling{true};
  std::uint64_t max_total_queued = 0, max_slow_queued = 0, rss_before = rss_bytes(), max_rss = 0;
  std::thread sampler([&] {
    while (sampling.load()) {
      std::uint64_t total = 0;
      for (const HubPeerStats& p : f.hub->peer_stats()) {
        total += p.queued_bytes + p.receive_reserved;
        if (p.id == readers[kSlow].peer_id) {
          max_slow_queued = std::max(max_slow_queued, p.queued_bytes);
        }
      }
      max_total_queued = std::max(max_total_queued, total);
      max_rss = std::max(max_rss, rss_bytes());
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });

  // The tenth stops reading. Until its queue first reaches the cap the hub still takes on its
  // share (the filling segments, whose rate is printed); from then on, the state the stall stays
  // in, the hub only counts its drops. That state's rate is compared with the nine's normal rate
  // (the tenth off the topic, its full queue left as it is) in alternating segments, so drifts
  // in a loaded machine's speed hit both alike, and medians shrug off a segment it stalls whole.
  std::uint64_t stalled_events = 0, min_slow_queued_at_cap = mark;
  bool ok = true, at_cap = false;
  while (ok && stalled_events < kEvents) {
    ok = rate_of(kSegment, the_nine, at_cap ? stalled_rates : filling_rates);
    stalled_events += kSegment;
    routed_to_tenth += kSegment;
    std::uint64_t queued = slow_stats().queued_bytes;
    if (at_cap) min_slow_queued_at_cap = std::min(min_slow_queued_at_cap, queued);
    at_cap = at_cap || queued >= mark - 1024;
    if (at_cap && ok && stalled_events < kEvents) {
      ok = set_tenth_subscribed(false) && rate_of(kSegment, the_nine, normal_rates) &&
           set_tenth_subscribed(true);
    }
  }
  const std::uint64_t slow_dropped = slow_stats().events_dropped;
  sampling.store(false);
  sampler.join();
  ASSERT_TRUE(ok) << "the nine did not receive every event in time";
  const std::uint64_t total = next_seq - 1;

  // The stalled one: its queue at the mark, never beyond; the hub's growth bounded.
  EXPECT_LE(max_slow_queued, mark);
  EXPECT_GE(min_slow_queued_at_cap, mark - 1024) << "its queue sits at the cap";
  EXPECT_LE(max_total_queued, 16u << 20);
  // The whole process (hub and these test readers) grows by at most 16 MiB: frames are queued as
  // views of the bytes read, with no allocation of their own (measured 12-14 MiB). A sanitizer's
  // allocator keeps freed memory, so there the figure is only printed.
  if (!kSanitized) {
    EXPECT_LE(max_rss - std::min(max_rss, rss_before), std::uint64_t{16} << 20)
        << "process RSS growth";
  } else {
    std::printf("[ scaled ] RSS growth not asserted under a sanitizer\n");
  }
  EXPECT_GT(slow_dropped, 0u);
  EXPECT_EQ(f.hub->stats().events_dropped, slow_dropped) << "nobody else lost anything";

  // Exact drop count: nothing is published meanwhile, so its drops are final; once it reads
  // again and has drained, received + dropped == what was routed to it, exactly.
  loop.stall(kSlow, false);
  EXPECT_TRUE(loop.wait_count(kSlow, routed_to_tenth - slow_dropped));
  loop.stop();
  EXPECT_EQ(slow_stats().events_dropped, slow_dropped);
  EXPECT_EQ(readers[kSlow].received + slow_dropped, routed_to_tenth);
  EXPECT_EQ(readers[kSlow].out_of_order, 0u);
  // The nine: everything, in order.
  for (int i = 0; i < kSlow; ++i) {
    EXPECT_EQ(readers[i].received, total) << "reader " << i;
    EXPECT_EQ(readers[i].out_of_order, 0u);
    EXPECT_EQ(readers[i].gaps, 0u);
  }

  // Each stalled segment against the normal one right after it, then the median of those ratios.
  std::vector<double> paired;
  for (std::size_t k = 0; k < std::min(normal_rates.size(), stalled_rates.size()); ++k) {
    paired.push_back(stalled_rates[k] / normal_rates[k]);
  }
  double normal = median(normal_rates), stalled = median(stalled_rates), ratio = median(paired);
  std::printf(
      "[ figure ] the nine's median rate: alone %.0f events/s, beside the stalled tenth at "
      "its cap %.0f events/s: median paired ratio %.2f (%zu pairs; while its queue filled "
      "%.0f events/s; all ten reading %.0f events/s)\n",
      normal, stalled, stalled / normal, stalled_rates.size(), median(filling_rates),
      median(all_ten_rates));
  std::printf(
      "[ figure ] hub queued bytes at most %.2f MiB (stalled peer %.2f MiB, mark %.2f MiB); "
      "process RSS growth %.2f MiB; stalled peer dropped %llu of %llu published while it was "
      "stalled\n",
      mib(max_total_queued), mib(max_slow_queued), mib(mark),
      mib(max_rss > rss_before ? max_rss - rss_before : 0),
      static_cast<unsigned long long>(slow_dropped), static_cast<unsigned long long>(kEvents));
  if (kSanitized) {
    std::printf(
        "[ note ] sanitizer build: %llu events instead of 1000000, and the rate ratio is "
        "printed, not asserted\n",
        static_cast<unsigned long long>(kEvents));
  } else {
    EXPECT_GE(ratio, 0.9);
  }
}

}  // namespace
}  // namespace switchboard::testing
