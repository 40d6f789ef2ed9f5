// Flow control in the hub (issue 11; docs/DESIGN.md, "Promises"): a live subscriber loses nothing,
// because the hub stops reading from the publishers whose traffic waits for it instead of dropping;
// only a stalled subscriber (over its mark, no progress for stall_timeout) loses events, counted
// per topic and told with one DROPPED frame (policy drop), or is disconnected (policy disconnect).
//
// Subscribers that "do not read" are raw sockets the test simply does not read from; publishers
// are Clients (whose submit() queues without blocking) or the hub's local port. Every wait is on
// a condition with a deadline. The marks are small (256 KiB) so that a few MiB are far beyond a
// mark plus the kernel's socket buffers (~200 KiB each way on Linux), and each test takes well
// under a second outside the sanitizers.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "test_support.h"

namespace switchboard::testing {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kMark = 256u << 10;
constexpr std::size_t kPayload = 16u << 10;
// One frame of kPayload: the payload, the envelope before it and the length prefix.
constexpr std::size_t kFrame = kPayload + 128;
// Long enough that no test meant to stay below it reaches it, even under TSan on a loaded machine.
constexpr std::chrono::milliseconds kNoStall{60000};
constexpr std::chrono::milliseconds kShortStall{300};

HubOptions flow_options(std::chrono::milliseconds stall = kNoStall,
                        OverflowPolicy overflow = OverflowPolicy::drop) {
  HubOptions opt;
  opt.high_water_mark = kMark;
  opt.stall_timeout = stall;
  opt.overflow = overflow;
  // Raw peers here do not answer PINGs (they do not read), and liveness is not under test.
  opt.ping_interval = std::chrono::milliseconds(0);
  return opt;
}

// Polls `pred` until it holds or `deadline` passes. For state only the hub can see (its stats);
// the polling interval never decides the outcome.
template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds deadline = 10000ms) {
  const auto end = Clock::now() + deadline;
  while (!pred()) {
    if (Clock::now() > end) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

std::string describe(const HubStats& s) {
  return "paused " + std::to_string(s.paused) + ", parked_bytes " + std::to_string(s.parked_bytes) +
         ", stalled " + std::to_string(s.stalled) + ", stalls " + std::to_string(s.stalls) +
         ", pauses " + std::to_string(s.pauses) + ", queued_bytes " +
         std::to_string(s.queued_bytes) + ", peak_queued_bytes " +
         std::to_string(s.peak_queued_bytes) + ", events_dropped " +
         std::to_string(s.events_dropped);
}

HubPeerStats peer_of(const Hub& hub, std::uint64_t id) {
  for (const HubPeerStats& p : hub.peer_stats()) {
    if (p.id == id) return p;
  }
  return HubPeerStats{};
}

// Nothing paused, parked, stalled or queued: where every test must end.
void expect_flow_baseline(const Hub& hub) {
  EXPECT_TRUE(eventually([&] {
    HubStats s = hub.stats();
    return s.paused == 0 && s.parked_bytes == 0 && s.stalled == 0 && s.queued_bytes == 0;
  })) << describe(hub.stats());
}

// An event numbered `seq` (its first 8 payload bytes), `size` bytes in all.
Envelope event(const std::string& topic, std::uint64_t seq, std::size_t size = kPayload) {
  std::string payload(std::max<std::size_t>(size, 8), 'p');
  std::memcpy(payload.data(), &seq, 8);
  return make(Kind::event, topic, 0, payload);
}

std::uint64_t seq_of(const Slice& payload) {
  std::uint64_t seq = 0;
  if (payload.size >= 8) std::memcpy(&seq, payload.data, 8);
  return seq;
}
std::uint64_t seq_of(const std::string& payload) {
  std::uint64_t seq = 0;
  if (payload.size() >= 8) std::memcpy(&seq, payload.data(), 8);
  return seq;
}

// Submits events numbered [first, first + n) in batches of 25, each on topic_of(seq).
void publish(Port& port, std::uint64_t first, std::uint64_t n,
             const std::function<std::string(std::uint64_t)>& topic_of,
             std::size_t size = kPayload) {
  for (std::uint64_t seq = first; seq < first + n;) {
    std::vector<Envelope> batch;
    for (int k = 0; k < 25 && seq < first + n; ++k, ++seq) {
      batch.push_back(event(topic_of(seq), seq, size));
    }
    ASSERT_TRUE(port.submit(std::move(batch)).ok());
  }
}
auto on(const std::string& topic) {
  return [topic](std::uint64_t) { return topic; };
}

// What a raw subscriber read: events per topic (in order?), DROPPED notices, everything else.
struct Tally {
  std::map<std::string, std::uint64_t> events;
  std::map<std::string, std::uint64_t> last_seq;
  std::uint64_t out_of_order = 0;
  std::vector<DroppedNotice> dropped;
  std::vector<Envelope> others;

  std::uint64_t total() const {
    std::uint64_t n = 0;
    for (auto& [topic, count] : events) n += count;
    return n;
  }
  std::uint64_t dropped_total() const {
    std::uint64_t n = 0;
    for (auto& d : dropped) n += d.count;
    return n;
  }
  void add(const Envelope& e) {
    if (e.kind == Kind::event) {
      std::uint64_t seq = seq_of(e.payload);
      if (seq <= last_seq[e.topic]) ++out_of_order;
      last_seq[e.topic] = seq;
      ++events[e.topic];
    } else if (e.kind == Kind::dropped) {
      DroppedNotice notice;
      Status s = decode_dropped(e.payload, notice);
      EXPECT_TRUE(s.ok()) << s.to_string();
      dropped.push_back(std::move(notice));
    } else {
      others.push_back(e);
    }
  }
};

// Reads frames into `tally` until `done` holds; false on EOF, an error or a 5 s silence.
bool read_until(RawPeer& peer, Tally& tally, const std::function<bool(const Tally&)>& done) {
  while (!done(tally)) {
    auto e = peer.read_frame();
    if (!e) return false;
    tally.add(*e);
  }
  return true;
}

// A subscriber on a raw socket: it reads only when the test reads.
struct RawSubscriber {
  RawPeer peer;
  std::uint64_t id = 0;
  std::uint64_t next_request = 1;

  RawSubscriber(const Hub& hub, const std::vector<std::string>& topics) : peer(hub.endpoint()) {
    auto w = peer.handshake(hub.token());
    EXPECT_TRUE(w && w->kind == Kind::welcome);
    Welcome welcome;
    if (w && decode_welcome(w->payload, welcome).ok()) id = welcome.peer_id;
    for (const std::string& topic : topics) {
      auto ack = request(Kind::subscribe, topic);
      EXPECT_TRUE(ack && ack->kind == Kind::result) << "subscribe " << topic;
    }
  }
  // Sends a request and reads up to its reply, skipping anything before it (only for a peer that
  // has nothing else coming).
  std::optional<Envelope> request(Kind kind, const std::string& topic) {
    std::uint64_t rid = next_request++;
    if (!peer.write(frame_bytes(make(kind, topic, rid)))) return std::nullopt;
    for (;;) {
      auto e = peer.read_frame();
      if (!e || ((e->kind == Kind::result || e->kind == Kind::error) && e->id == rid)) return e;
    }
  }
};

// Runs until destroyed, recording the largest queue the hub holds for peer `id`.
class QueueSampler {
 public:
  QueueSampler(const Hub& hub, std::uint64_t id) {
    thread_ = std::thread([this, &hub, id] {
      while (!stop_.load()) {
        std::uint64_t q = peer_of(hub, id).queued_bytes;
        max_.store(std::max(max_.load(), q));
        std::this_thread::sleep_for(2ms);
      }
    });
  }
  ~QueueSampler() { stop(); }
  std::uint64_t stop() {
    if (thread_.joinable()) {
      stop_.store(true);
      thread_.join();
    }
    return max_.load();
  }

 private:
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> max_{0};
};

// --- A live slow subscriber --------------------------------------------------------------------

TEST(FlowControl, ASubscriberThatDoesNotReadPausesThePublisherAndLosesNothing) {
  HubFixture f(flow_options());
  RawSubscriber slow(*f.hub, {"t"});
  TestClient publisher(*f.hub);
  QueueSampler sampler(*f.hub, slow.id);
  // 6.4 MiB for a 256 KiB mark.
  constexpr std::uint64_t kEvents = 400;
  publish(*publisher.client, 1, kEvents, on("t"));

  ASSERT_TRUE(eventually([&] { return f.hub->stats().paused == 1; })) << describe(f.hub->stats());
  HubStats s = f.hub->stats();
  EXPECT_GE(s.pauses, 1u);
  EXPECT_EQ(s.stalled, 0u);
  EXPECT_TRUE(peer_of(*f.hub, publisher.client->peer_id()).paused);
  EXPECT_FALSE(peer_of(*f.hub, slow.id).paused) << "the receiver is not the one paused";
  // Backpressure reaches the publisher's process: what the hub does not read waits there.
  EXPECT_TRUE(eventually([&] { return publisher.client->outbound_bytes() > 0; }));

  // Now it reads: every event arrives, in order, none dropped.
  Tally got;
  ASSERT_TRUE(read_until(slow.peer, got, [&](const Tally& t) { return t.total() >= kEvents; }))
      << "received " << got.total() << " of " << kEvents;
  const std::uint64_t max_queued = sampler.stop();
  EXPECT_EQ(got.total(), kEvents);
  EXPECT_EQ(got.last_seq["t"], kEvents);
  EXPECT_EQ(got.out_of_order, 0u);
  EXPECT_TRUE(got.dropped.empty());
  s = f.hub->stats();
  EXPECT_EQ(s.events_dropped, 0u);
  EXPECT_EQ(s.stalls, 0u);
  // The hub's queue for it stayed at the mark plus one message, by sampling and by the hub's own
  // high-water figure.
  EXPECT_LE(max_queued, kMark + kFrame);
  EXPECT_LE(s.peak_queued_bytes, kMark + kFrame);
  EXPECT_GT(s.peak_queued_bytes, kMark / 2) << "the queue never filled: nothing was tested";
  expect_flow_baseline(*f.hub);
  EXPECT_TRUE(eventually([&] { return publisher.client->outbound_bytes() == 0; }));
}

// --- A stalled subscriber ----------------------------------------------------------------------

struct StallRun {
  std::unique_ptr<RawSubscriber> slow;
  std::unique_ptr<TestClient> fast;
  std::unique_ptr<TestClient> publisher;
  std::uint64_t sent_a = 0, sent_b = 0;
};

// A slow raw subscriber and a fast client subscriber on topics "a" and "b"; a publisher sends
// `events` alternately on "a" and "b", and the fast one receives all of them.
void run_stall(HubFixture& f, StallRun& run, std::uint64_t events) {
  run.slow = std::make_unique<RawSubscriber>(*f.hub, std::vector<std::string>{"a", "b"});
  run.fast = std::make_unique<TestClient>(*f.hub);
  run.fast->subscribe("a");
  run.fast->subscribe("b");
  run.publisher = std::make_unique<TestClient>(*f.hub);
  auto topic_of = [](std::uint64_t seq) { return std::string(seq % 2 ? "a" : "b"); };
  publish(*run.publisher->client, 1, events, topic_of);
  run.sent_a = (events + 1) / 2;
  run.sent_b = events / 2;
  // The publisher goes on after the stall timeout: the fast one gets everything.
  ASSERT_TRUE(run.fast->rec.wait_count(Kind::event, events, 20s))
      << "the fast subscriber got " << run.fast->rec.count(Kind::event) << " of " << events << "; "
      << describe(f.hub->stats());
  std::uint64_t last = 0;
  for (const Received& r : run.fast->rec.of_kind(Kind::event)) {
    ASSERT_EQ(seq_of(r.payload), last + 1) << "the fast subscriber lost or reordered an event";
    last = seq_of(r.payload);
  }
}

TEST(FlowControl, AStalledSubscriberUnderTheDropPolicyIsToldExactlyWhatItMissedPerTopic) {
  HubFixture f(flow_options(kShortStall, OverflowPolicy::drop));
  StallRun run;
  constexpr std::uint64_t kEvents = 600;  // 9.6 MiB
  run_stall(f, run, kEvents);
  if (::testing::Test::HasFatalFailure()) return;

  HubStats s = f.hub->stats();
  EXPECT_EQ(s.stalls, 1u) << describe(s);
  EXPECT_EQ(s.stalled, 1u) << "still stalled: it has not read";
  EXPECT_GE(s.pauses, 1u) << "paused first, until the stall timeout";
  EXPECT_GT(s.events_dropped, 0u);
  EXPECT_TRUE(eventually([&] { return f.hub->stats().paused == 0; })) << describe(f.hub->stats());
  HubPeerStats slow_stats = peer_of(*f.hub, run.slow->id);
  EXPECT_TRUE(slow_stats.stalled);
  EXPECT_EQ(slow_stats.events_dropped, s.events_dropped) << "nobody else lost anything";
  EXPECT_LE(s.peak_queued_bytes, kMark + kFrame);

  // It reads again: what was queued for it, then one notice of the rest.
  Tally got;
  ASSERT_TRUE(read_until(run.slow->peer, got, [](const Tally& t) { return !t.dropped.empty(); }))
      << "no DROPPED notice after " << got.total() << " events";
  // Then nothing more: a request's reply comes next.
  auto fence = run.slow->request(Kind::subscribe, "fence");
  ASSERT_TRUE(fence && fence->kind == Kind::result);
  EXPECT_EQ(got.dropped.size(), 1u) << "one notice per stall";
  EXPECT_EQ(got.out_of_order, 0u);
  const DroppedNotice& notice = got.dropped.front();
  EXPECT_EQ(notice.count, kEvents - got.total());
  EXPECT_EQ(notice.count, slow_stats.events_dropped);
  auto missed = [&](const std::string& topic) {
    auto it = notice.topics.find(topic);
    return it == notice.topics.end() ? 0 : it->second;
  };
  EXPECT_EQ(missed("a"), run.sent_a - got.events["a"]);
  EXPECT_EQ(missed("b"), run.sent_b - got.events["b"]);
  for (auto& [topic, n] : notice.topics) {
    EXPECT_TRUE(topic == "a" || topic == "b") << "a topic it never subscribed to: " << topic;
  }
  EXPECT_EQ(f.hub->stats().stalls, 1u);
  expect_flow_baseline(*f.hub);
}

TEST(FlowControl, AStalledSubscriberUnderTheDisconnectPolicyIsDisconnected) {
  HubFixture f(flow_options(kShortStall, OverflowPolicy::disconnect));
  StallRun run;
  constexpr std::uint64_t kEvents = 600;
  run_stall(f, run, kEvents);
  if (::testing::Test::HasFatalFailure()) return;

  ASSERT_TRUE(f.peers.wait(PeerEvent::Type::left, 1));
  auto left = f.peers.of_type(PeerEvent::Type::left);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].id, run.slow->id);
  EXPECT_EQ(left[0].reason.code(), Errc::slow_consumer) << left[0].reason.to_string();
  HubStats s = f.hub->stats();
  EXPECT_EQ(s.stalls, 1u) << describe(s);
  EXPECT_EQ(s.events_dropped, 0u) << "disconnected, not dropped";
  EXPECT_EQ(s.peers, 2u);
  // Its socket ends; whatever reached it is in order, and if the GOAWAY got through (it cannot
  // while the kernel's buffer is full) it says why.
  Tally got;
  while (auto e = run.slow->peer.read_frame()) got.add(*e);
  EXPECT_EQ(got.out_of_order, 0u);
  EXPECT_TRUE(got.dropped.empty());
  EXPECT_LT(got.total(), kEvents);
  for (const Envelope& e : got.others) {
    if (e.kind == Kind::goaway) {
      EXPECT_EQ(e.topic, "E_SLOW_CONSUMER");
    }
  }
  expect_flow_baseline(*f.hub);
}

// --- Who waits for whom ------------------------------------------------------------------------

TEST(FlowControl, PausingIsPerFeed) {
  HubFixture f(flow_options());
  RawSubscriber slow(*f.hub, {"to-slow"});
  TestClient fast(*f.hub);
  fast.subscribe("to-fast");
  TestClient feeds_slow(*f.hub), feeds_fast(*f.hub);
  constexpr std::uint64_t kEvents = 400;
  publish(*feeds_slow.client, 1, kEvents, on("to-slow"));
  ASSERT_TRUE(eventually([&] { return peer_of(*f.hub, feeds_slow.client->peer_id()).paused; }))
      << describe(f.hub->stats());
  const std::uint64_t pauses = f.hub->stats().pauses;

  // While that one is paused, the other feed goes on and is never paused. It sends 8 events at a
  // time (128 KiB, half the mark) and waits for them, so that its own subscriber, fast as it is,
  // never has a reason to hold it up.
  std::atomic<bool> sampling{true}, fast_feed_paused{false};
  std::thread watch([&] {
    while (sampling.load()) {
      if (peer_of(*f.hub, feeds_fast.client->peer_id()).paused) fast_feed_paused = true;
      std::this_thread::sleep_for(1ms);
    }
  });
  bool all_arrived = true;
  for (std::uint64_t first = 1; first <= kEvents && all_arrived; first += 8) {
    publish(*feeds_fast.client, first, 8, on("to-fast"));
    all_arrived = fast.rec.wait_count(Kind::event, first + 7);
  }
  sampling = false;
  watch.join();
  ASSERT_TRUE(all_arrived) << fast.rec.count(Kind::event) << " of " << kEvents;
  EXPECT_FALSE(fast_feed_paused.load());
  HubStats s = f.hub->stats();
  EXPECT_EQ(s.paused, 1u) << "the slow feed is still paused: " << describe(s);
  EXPECT_EQ(s.pauses, pauses) << "nobody else was paused meanwhile";
  EXPECT_TRUE(peer_of(*f.hub, feeds_slow.client->peer_id()).paused);

  Tally got;
  ASSERT_TRUE(read_until(slow.peer, got, [&](const Tally& t) { return t.total() >= kEvents; }));
  EXPECT_EQ(got.out_of_order, 0u);
  EXPECT_EQ(f.hub->stats().events_dropped, 0u);
  expect_flow_baseline(*f.hub);
}

TEST(FlowControl, InvokesQueuedForASlowCalleePauseTheCallerAndItsRepliesStillArrive) {
  HubFixture f(flow_options());
  RawSubscriber callee(*f.hub, {});
  auto reg = callee.request(Kind::register_, "work");
  ASSERT_TRUE(reg && reg->kind == Kind::result);
  TestClient caller(*f.hub);
  constexpr std::uint64_t kCalls = 100;  // 1.6 MiB of requests
  for (std::uint64_t id = 1; id <= kCalls; ++id) {
    std::string payload(kPayload, 'w');
    std::memcpy(payload.data(), &id, 8);
    ASSERT_TRUE(caller.send(make(Kind::invoke, "work", id, payload)).ok());
  }
  ASSERT_TRUE(eventually([&] { return peer_of(*f.hub, caller.client->peer_id()).paused; }))
      << describe(f.hub->stats());
  EXPECT_LE(peer_of(*f.hub, callee.id).queued_bytes, kMark + kFrame);

  auto answer = [&](const Envelope& invoke) {
    return callee.peer.write(frame_bytes(make(Kind::result, "", invoke.id, "done")));
  };
  // The callee takes one request and answers it: the reply reaches the caller although the hub
  // reads nothing from the caller now (replies are never held).
  auto first = callee.peer.read_frame();
  ASSERT_TRUE(first && first->kind == Kind::invoke);
  EXPECT_EQ(seq_of(first->payload), 1u);
  ASSERT_TRUE(answer(*first));
  auto reply = caller.rec.wait_reply(1);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->kind, Kind::result);
  EXPECT_TRUE(peer_of(*f.hub, caller.client->peer_id()).paused)
      << "the callee's queue is still over the low mark";

  // It works through the rest: every call arrives in order and is answered; no invoke is lost.
  for (std::uint64_t n = 2; n <= kCalls; ++n) {
    auto inv = callee.peer.read_frame();
    ASSERT_TRUE(inv && inv->kind == Kind::invoke) << "call " << n;
    ASSERT_EQ(seq_of(inv->payload), n);
    ASSERT_TRUE(answer(*inv));
  }
  for (std::uint64_t id = 1; id <= kCalls; ++id) {
    auto r = caller.rec.wait_reply(id);
    ASSERT_TRUE(r && r->kind == Kind::result) << "call " << id;
  }
  HubStats s = f.hub->stats();
  EXPECT_EQ(s.pending_invokes, 0u);
  EXPECT_GE(s.pauses, 1u);
  EXPECT_LE(s.peak_queued_bytes, kMark + kFrame);
  expect_flow_baseline(*f.hub);
}

TEST(FlowControl, RepliesToAReceiverOverItsMarkAreQueuedNeverHeld) {
  HubFixture f(flow_options());
  RawSubscriber slow(*f.hub, {"t"});
  TestClient publisher(*f.hub);
  TestClient server(*f.hub);
  Client* serving = server.client.get();
  server.rec.set_on_envelope([serving](const Envelope& e) {
    if (e.kind != Kind::invoke) return;
    (void)serving->submit(one(make(Kind::result, "", e.id, "echo")));
  });
  auto reg = server.request(Kind::register_, "echo");
  ASSERT_TRUE(reg && reg->kind == Kind::result);
  constexpr std::uint64_t kEvents = 200;
  publish(*publisher.client, 1, kEvents, on("t"));
  ASSERT_TRUE(eventually([&] { return f.hub->stats().paused == 1; })) << describe(f.hub->stats());

  // The full receiver calls the server; the reply goes to it over its mark.
  ASSERT_TRUE(slow.peer.write(frame_bytes(make(Kind::invoke, "echo", 5))));
  ASSERT_TRUE(server.rec.wait_count(Kind::invoke, 1));
  // The server's frames are still read: its own request is answered after the reply was routed.
  auto after = server.request(Kind::subscribe, "after");
  ASSERT_TRUE(after && after->kind == Kind::result) << "the server was paused for its reply";
  EXPECT_FALSE(peer_of(*f.hub, server.client->peer_id()).paused);
  EXPECT_EQ(f.hub->stats().paused, 1u) << "only the publisher waits";

  Tally got;
  ASSERT_TRUE(read_until(slow.peer, got, [&](const Tally& t) {
    return t.total() >= kEvents &&
           std::any_of(t.others.begin(), t.others.end(),
                       [](const Envelope& e) { return e.kind == Kind::result && e.id == 5; });
  }));
  EXPECT_EQ(got.out_of_order, 0u);
  EXPECT_EQ(f.hub->stats().events_dropped, 0u);
  expect_flow_baseline(*f.hub);
}

// --- Leaving while paused ----------------------------------------------------------------------

TEST(FlowControl, APausedPublisherResumesWhenItsSubscriberLeaves) {
  HubFixture f(flow_options());
  auto slow = std::make_unique<RawSubscriber>(*f.hub, std::vector<std::string>{"t"});
  TestClient publisher(*f.hub);
  publish(*publisher.client, 1, 400, on("t"));
  ASSERT_TRUE(eventually([&] { return f.hub->stats().paused == 1; })) << describe(f.hub->stats());
  EXPECT_GT(f.hub->stats().parked_bytes + publisher.client->outbound_bytes(), 0u);
  slow.reset();  // closes its socket
  ASSERT_TRUE(f.peers.wait(PeerEvent::Type::left, 1));
  expect_flow_baseline(*f.hub);
  // Read again: its next request is answered.
  auto r = publisher.request(Kind::subscribe, "after");
  ASSERT_TRUE(r && r->kind == Kind::result);
  EXPECT_TRUE(eventually([&] { return publisher.client->outbound_bytes() == 0; }));
  EXPECT_FALSE(peer_of(*f.hub, publisher.client->peer_id()).paused);
}

TEST(FlowControl, APausedPublisherThatLeavesLeavesNothingBehind) {
  HubFixture f(flow_options());
  RawSubscriber slow(*f.hub, {"t"});
  auto publisher = std::make_unique<TestClient>(*f.hub);
  const std::uint64_t publisher_id = publisher->client->peer_id();
  constexpr std::uint64_t kEvents = 400;
  publish(*publisher->client, 1, kEvents, on("t"));
  ASSERT_TRUE(eventually([&] { return f.hub->stats().paused == 1; })) << describe(f.hub->stats());
  // It goes (its close lingers up to 1 s for the hub to take what it queued, in vain).
  publisher->client->close();
  publisher.reset();
  // What the hub took from it before it went reaches the subscriber, in order and without a gap,
  // then the hub sees the end of its socket and tells the subscriber it left (a PEER frame, queued
  // behind every event of it).
  Tally got;
  for (;;) {
    auto e = slow.peer.read_frame(/*keep_peers=*/true);
    ASSERT_TRUE(e.has_value()) << "the subscriber's stream ended or went silent with the "
                                  "publisher still a peer; "
                               << describe(f.hub->stats());
    if (e->kind == Kind::peer) {
      PeerInfo info;
      ASSERT_TRUE(decode_peer_info(e->payload, info).ok());
      if (info.id == publisher_id && !info.up) break;
      continue;
    }
    got.add(*e);
  }
  ASSERT_TRUE(f.peers.wait(PeerEvent::Type::left, 1));
  auto left = f.peers.of_type(PeerEvent::Type::left);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].id, publisher_id);
  EXPECT_EQ(got.out_of_order, 0u);
  EXPECT_EQ(got.last_seq["t"], got.total())
      << "a gap: events 1.." << got.last_seq["t"] << " but only " << got.total() << " arrived";
  EXPECT_EQ(f.hub->stats().events_dropped, 0u);
  expect_flow_baseline(*f.hub);
  EXPECT_EQ(f.hub->stats().peers, 1u);
}

TEST(FlowControl, AStalledSubscriberReleasesAPublisherThatLeftWithoutAnyoneReading) {
  // As above, but the subscriber never reads again: the stall timeout alone brings the hub back
  // to its baseline (the paused publisher's socket is read, its end seen, its frames dropped for
  // the stalled one).
  HubFixture f(flow_options(kShortStall, OverflowPolicy::drop));
  RawSubscriber slow(*f.hub, {"t"});
  auto publisher = std::make_unique<TestClient>(*f.hub);
  publish(*publisher->client, 1, 400, on("t"));
  ASSERT_TRUE(eventually([&] { return f.hub->stats().pauses >= 1; })) << describe(f.hub->stats());
  publisher->client->close();
  publisher.reset();
  ASSERT_TRUE(f.peers.wait(PeerEvent::Type::left, 1, 10000ms)) << describe(f.hub->stats());
  EXPECT_TRUE(eventually([&] {
    HubStats s = f.hub->stats();
    return s.paused == 0 && s.parked_bytes == 0;
  })) << describe(f.hub->stats());
  EXPECT_EQ(f.hub->stats().peers, 1u);
  EXPECT_EQ(f.hub->stats().stalls, 1u);
}

// Runs `body(stop)` on a thread until destroyed (then `stop` turns true and it is joined), so
// that a failed assertion in the test cannot leave a thread running.
class Background {
 public:
  explicit Background(std::function<void(const std::atomic<bool>&)> body)
      : thread_([this, body = std::move(body)] { body(stop_); }) {}
  ~Background() { join(); }
  void join() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST(FlowControl, APausedPublisherIsNotDeclaredDeadForPongsTheHubDoesNotRead) {
  // Liveness on: a publisher the hub does not read from cannot have its PONGs heard, and must not
  // be taken for dead because of it. The subscriber proves itself alive by writing PINGs.
  HubOptions opt = flow_options();
  opt.ping_interval = std::chrono::milliseconds(100);
  opt.ping_misses = 2;
  HubFixture f(opt);
  RawSubscriber slow(*f.hub, {"t"});
  Background keepalive([&](const std::atomic<bool>& stop) {
    for (std::uint64_t id = 1; !stop; ++id) {
      (void)slow.peer.write(frame_bytes(make(Kind::ping, "", id)));
      std::this_thread::sleep_for(10ms);
    }
  });
  // A witness that answers every PING from the start, so that the test can count the hub's
  // liveness ticks.
  RawPeer witness(f.hub->endpoint());
  ASSERT_EQ(witness.handshake(f.hub->token())->kind, Kind::welcome);
  std::atomic<int> ticks{0};
  Background answering([&](const std::atomic<bool>& stop) {
    while (!stop) {
      auto e = witness.read_frame();
      if (!e) return;
      if (e->kind != Kind::ping) continue;
      if (!witness.write(frame_bytes(make(Kind::pong, "", e->id)))) return;
      ++ticks;
    }
  });
  TestClient publisher(*f.hub);
  publish(*publisher.client, 1, 400, on("t"));
  ASSERT_TRUE(eventually([&] { return f.hub->stats().paused == 1; })) << describe(f.hub->stats());
  // Ten ticks with the publisher paused: five times what declares a silent peer dead.
  const int at_pause = ticks;
  ASSERT_TRUE(eventually([&] { return ticks >= at_pause + 10; }));
  EXPECT_EQ(f.hub->stats().declared_dead, 0u);
  EXPECT_TRUE(peer_of(*f.hub, publisher.client->peer_id()).paused);
  EXPECT_EQ(publisher.client->stats().connects, 1u);
  // Then the subscriber reads everything: nothing lost. (It goes on writing PINGs meanwhile: it
  // answers none of the hub's, and reading 6.4 MiB under TSan can outlast two ticks.)
  Tally got;
  ASSERT_TRUE(read_until(slow.peer, got, [](const Tally& t) { return t.total() >= 400; }))
      << got.total() << " of 400; " << describe(f.hub->stats());
  EXPECT_EQ(got.out_of_order, 0u);
  EXPECT_EQ(f.hub->stats().declared_dead, 0u);
  // The witness's reader stops at the end of its stream.
  ::shutdown(witness.fd(), SHUT_RDWR);
  answering.join();
}

// A publisher waits only for receivers its traffic goes to: when the full one unsubscribes, the
// publisher's traffic goes only to others, so it must go on then, not at the stall timeout.
TEST(FlowControl, APublisherWaitingForASubscriberThatUnsubscribesGoesOn) {
  HubFixture f(flow_options());
  RawSubscriber slow(*f.hub, {"t"});
  TestClient other(*f.hub);
  other.subscribe("t");
  TestClient publisher(*f.hub);
  constexpr std::uint64_t kEvents = 400;
  publish(*publisher.client, 1, kEvents, on("t"));
  ASSERT_TRUE(eventually([&] { return peer_of(*f.hub, publisher.client->peer_id()).paused; }))
      << describe(f.hub->stats());
  // The slow one leaves the topic (the hub reads its frames: it is a receiver, not paused); it
  // still reads nothing, so its queue stays over the mark.
  ASSERT_TRUE(slow.peer.write(frame_bytes(make(Kind::unsubscribe, "t", 0))));
  ASSERT_TRUE(other.rec.wait_count(Kind::event, kEvents, 5s))
      << "the publisher still waits for a receiver it no longer sends to: "
      << other.rec.count(Kind::event) << " of " << kEvents << "; " << describe(f.hub->stats());
  HubStats s = f.hub->stats();
  EXPECT_EQ(s.stalls, 0u);
  EXPECT_EQ(s.events_dropped, 0u);
  EXPECT_FALSE(peer_of(*f.hub, publisher.client->peer_id()).paused);
  // What was queued for it before it left the topic is still there for it, in order.
  Tally got;
  ASSERT_TRUE(eventually([&] { return peer_of(*f.hub, slow.id).queued_bytes > 0; }));
  ASSERT_TRUE(read_until(slow.peer, got, [&](const Tally& t) {
    return t.total() > 0 && peer_of(*f.hub, slow.id).queued_bytes == 0;
  }));
  EXPECT_EQ(got.out_of_order, 0u);
  EXPECT_EQ(got.last_seq["t"], got.total());
  expect_flow_baseline(*f.hub);
}

// The same for invokes: a caller waiting for a callee that stops serving the name goes on, and
// its calls still parked end at once with E_NO_HANDLER instead of waiting for that callee.
TEST(FlowControl, ACallerWaitingForACalleeThatUnregistersGoesOn) {
  HubFixture f(flow_options());
  RawSubscriber callee(*f.hub, {});
  auto reg = callee.request(Kind::register_, "work");
  ASSERT_TRUE(reg && reg->kind == Kind::result);
  TestClient caller(*f.hub);
  constexpr std::uint64_t kCalls = 100;
  for (std::uint64_t id = 1; id <= kCalls; ++id) {
    ASSERT_TRUE(caller.send(make(Kind::invoke, "work", id, std::string(kPayload, 'w'))).ok());
  }
  ASSERT_TRUE(eventually([&] { return peer_of(*f.hub, caller.client->peer_id()).paused; }))
      << describe(f.hub->stats());
  const std::uint64_t delivered = f.hub->stats().invokes_routed;
  ASSERT_TRUE(callee.peer.write(frame_bytes(make(Kind::unregister, "work", 0))));
  ASSERT_TRUE(caller.rec.wait_count(Kind::error, kCalls - delivered, 5s))
      << caller.rec.count(Kind::error) << " of the " << kCalls - delivered
      << " parked calls ended; " << describe(f.hub->stats());
  for (const Received& r : caller.rec.of_kind(Kind::error)) {
    EXPECT_EQ(r.topic, "E_NO_HANDLER");
    EXPECT_GT(r.id, delivered) << "a call the callee has was failed";
  }
  EXPECT_FALSE(peer_of(*f.hub, caller.client->peer_id()).paused);
  // The callee answers the calls it has: they end too.
  for (std::uint64_t n = 1; n <= delivered; ++n) {
    auto inv = callee.peer.read_frame();
    ASSERT_TRUE(inv && inv->kind == Kind::invoke);
    ASSERT_TRUE(callee.peer.write(frame_bytes(make(Kind::result, "", inv->id, "done"))));
  }
  ASSERT_TRUE(caller.rec.wait_count(Kind::result, delivered));
  EXPECT_EQ(f.hub->stats().pending_invokes, 0u);
  expect_flow_baseline(*f.hub);
}

// --- Cycles --------------------------------------------------------------------------------------

// `n` processes flood each other in a ring (0 -> 1 -> ... -> n-1 -> 0) while none takes anything
// in (their consumers are busy: the ports stop reading). Each waits for the next: a cycle of
// pauses, which the stall timeout breaks. Then all go on, and each, once it reads again,
// accounts for every event: received, or counted in its one DROPPED notice.
void run_cycle(int n) {
  HubFixture f(flow_options(kShortStall, OverflowPolicy::drop));
  struct Side {
    Recorder rec;
    std::atomic<bool> busy{false};
    std::unique_ptr<Client> client;
  };
  std::vector<std::unique_ptr<Side>> sides;
  for (int i = 0; i < n; ++i) {
    auto side = std::make_unique<Side>();
    PortCallbacks cb = side->rec.callbacks();
    cb.backlogged = [s = side.get()] { return s->busy.load(); };
    ClientOptions opt;
    opt.endpoint = f.hub->endpoint();
    opt.token = f.hub->token();
    side->client = std::make_unique<Client>(std::move(opt), std::move(cb));
    ASSERT_TRUE(side->client->start().ok());
    ASSERT_TRUE(side->rec.wait_connects(1));
    ASSERT_TRUE(
        side->client->submit(one(make(Kind::subscribe, "to-" + std::to_string(i), 1))).ok());
    ASSERT_TRUE(side->rec.wait_reply(1).has_value());
    sides.push_back(std::move(side));
  }
  for (auto& side : sides) side->busy = true;
  constexpr std::uint64_t kEvents = 300;  // 4.8 MiB each
  const auto start = Clock::now();
  for (int i = 0; i < n; ++i) {
    publish(*sides[i]->client, 1, kEvents, on("to-" + std::to_string((i + 1) % n)));
  }
  // All paused (each waits for the next), then all stalled: nobody is paused any more.
  ASSERT_TRUE(eventually([&] { return f.hub->stats().stalls == static_cast<std::uint64_t>(n); }))
      << describe(f.hub->stats());
  ASSERT_TRUE(eventually([&] {
    HubStats s = f.hub->stats();
    return s.paused == 0 && s.parked_bytes == 0;
  })) << describe(f.hub->stats());
  const double broken_after = std::chrono::duration<double>(Clock::now() - start).count();
  EXPECT_GE(f.hub->stats().pauses, static_cast<std::uint64_t>(n));
  for (auto& side : sides) {
    side->busy = false;
    side->client->resume_reading();
  }
  for (int i = 0; i < n; ++i) {
    Side& side = *sides[i];
    ASSERT_TRUE(side.rec.wait_count(Kind::dropped, 1, 10s))
        << "side " << i << "; " << describe(f.hub->stats());
    auto notices = side.rec.of_kind(Kind::dropped);
    ASSERT_EQ(notices.size(), 1u);
    DroppedNotice notice;
    ASSERT_TRUE(decode_dropped(Slice::copy_of(notices[0].payload), notice).ok());
    // What its publisher sent after the notice (it was still sending when the stall ended) comes
    // after it: wait for all of it.
    ASSERT_TRUE(side.rec.wait_count(Kind::event, kEvents - notice.count, 10s))
        << "side " << i << ": " << side.rec.count(Kind::event) << " events and " << notice.count
        << " missed of " << kEvents;
    auto events = side.rec.of_kind(Kind::event);
    EXPECT_EQ(events.size() + notice.count, kEvents);
    // In order, and the events missing from the sequence are exactly the ones it was told of.
    std::uint64_t last = 0, gaps = 0;
    for (const Received& r : events) {
      ASSERT_GT(seq_of(r.payload), last);
      gaps += seq_of(r.payload) - last - 1;
      last = seq_of(r.payload);
    }
    gaps += kEvents - last;
    EXPECT_EQ(gaps, notice.count) << "side " << i;
  }
  std::printf(
      "[ figure ] a cycle of %d pauses was broken %.3f s after the floods began (stall timeout "
      "%lld ms)\n",
      n, broken_after, static_cast<long long>(kShortStall.count()));
  expect_flow_baseline(*f.hub);
  for (auto& side : sides) side->client->close();
}

TEST(FlowControl, TwoProcessesFloodingEachOtherUnreadAreFreedByTheStallTimeout) {
  run_cycle(2);
}

TEST(FlowControl, ThreeProcessesFloodingInACycleUnreadAreFreedByTheStallTimeout) {
  run_cycle(3);
}

// --- The hub's own process (the local port) ----------------------------------------------------

TEST(FlowControl, TheLocalPortAsPublisherBuffersWhilePausedAndIsToldWhenDrained) {
  HubFixture f(flow_options());
  RawSubscriber slow(*f.hub, {"t"});
  Recorder rec;
  PortCallbacks cb = rec.callbacks();
  Waiter drained;
  int drains = 0;
  std::uint64_t outbound_at_drain = ~std::uint64_t{0};
  std::unique_ptr<Port> local;
  cb.on_drain = [&] {
    drained.update([&] {
      ++drains;
      outbound_at_drain = local ? local->outbound_bytes() : 0;
    });
  };
  local = f.hub->connect_local({"main", "main", 0, nullptr}, std::move(cb));
  ASSERT_TRUE(local);
  EXPECT_EQ(local->outbound_bytes(), 0u);

  constexpr std::uint64_t kEvents = 200;
  publish(*local, 1, kEvents, on("t"));
  ASSERT_TRUE(eventually([&] { return f.hub->stats().paused == 1; })) << describe(f.hub->stats());
  EXPECT_TRUE(peer_of(*f.hub, local->peer_id()).paused);
  const std::size_t before = local->outbound_bytes();
  EXPECT_GT(before, kMark) << "most of 3.2 MiB waits in its outbound buffer";
  // More while paused: the buffer grows by what was submitted.
  publish(*local, kEvents + 1, 10, on("t"));
  EXPECT_GE(local->outbound_bytes(), before + 10 * kPayload);

  local->notify_drain(0);
  {
    std::lock_guard lock(drained.mutex());
    EXPECT_EQ(drains, 0) << "nothing was routed yet";
  }
  Tally got;
  ASSERT_TRUE(
      read_until(slow.peer, got, [&](const Tally& t) { return t.total() >= kEvents + 10; }));
  EXPECT_EQ(got.out_of_order, 0u);
  ASSERT_TRUE(drained.wait_for([&] { return drains >= 1; }));
  EXPECT_EQ(outbound_at_drain, 0u);
  EXPECT_EQ(local->outbound_bytes(), 0u);
  // Once only.
  ASSERT_TRUE(local->submit(one(make(Kind::subscribe, "fence", 9))).ok());
  ASSERT_TRUE(rec.wait_reply(9).has_value());
  {
    std::lock_guard lock(drained.mutex());
    EXPECT_EQ(drains, 1);
  }
  // Asked when already drained: at once.
  local->notify_drain(0);
  EXPECT_TRUE(drained.wait_for([&] { return drains >= 2; }));
  expect_flow_baseline(*f.hub);
  local->close();
}

TEST(FlowControl, TheLocalPortAsReceiverPausesPublishersWhileItsConsumerIsBacklogged) {
  HubFixture f(flow_options());
  Recorder rec;
  PortCallbacks cb = rec.callbacks();
  std::atomic<std::size_t> backlog{0};
  cb.backlog_bytes = [&backlog] { return backlog.load(); };
  auto local = f.hub->connect_local({"main", "main", 0, nullptr}, std::move(cb));
  ASSERT_TRUE(local);
  ASSERT_TRUE(local->submit(one(make(Kind::subscribe, "t", 1))).ok());
  ASSERT_TRUE(rec.wait_reply(1).has_value());

  // Its JavaScript is busy: far more than the mark waits for it.
  backlog = 64u << 20;
  TestClient publisher(*f.hub);
  constexpr std::uint64_t kEvents = 200;
  publish(*publisher.client, 1, kEvents, on("t"));
  ASSERT_TRUE(eventually([&] { return f.hub->stats().paused == 1; })) << describe(f.hub->stats());
  EXPECT_TRUE(peer_of(*f.hub, publisher.client->peer_id()).paused);
  EXPECT_LT(rec.count(Kind::event), kEvents);

  // It catches up.
  backlog = 0;
  local->resume_reading();
  ASSERT_TRUE(rec.wait_count(Kind::event, kEvents, 10s))
      << rec.count(Kind::event) << " of " << kEvents << "; " << describe(f.hub->stats());
  std::uint64_t last = 0;
  for (const Received& r : rec.of_kind(Kind::event)) {
    ASSERT_EQ(seq_of(r.payload), last + 1);
    last = seq_of(r.payload);
  }
  EXPECT_EQ(f.hub->stats().events_dropped, 0u);
  expect_flow_baseline(*f.hub);
  local->close();
}

// The hub's own process stops taking what waits for it (its JavaScript is busy) for longer than
// the stall timeout. Under the drop policy it is told what it missed once it catches up.
TEST(FlowControl, TheLocalPortAsAStalledReceiverIsToldWhatItMissed) {
  HubFixture f(flow_options(kShortStall, OverflowPolicy::drop));
  Recorder rec;
  PortCallbacks cb = rec.callbacks();
  std::atomic<std::size_t> backlog{0};
  std::atomic<std::uint64_t> consumed{0};
  cb.backlog_bytes = [&backlog] { return backlog.load(); };
  cb.consumed_bytes = [&consumed] { return consumed.load(); };
  auto local = f.hub->connect_local({"main", "main", 0, nullptr}, std::move(cb));
  ASSERT_TRUE(local);
  ASSERT_TRUE(local->submit(one(make(Kind::subscribe, "t", 1))).ok());
  ASSERT_TRUE(rec.wait_reply(1).has_value());
  TestClient fast(*f.hub);
  fast.subscribe("t");

  backlog = 64u << 20;  // busy, and taking nothing (consumed stays put)
  TestClient publisher(*f.hub);
  constexpr std::uint64_t kEvents = 200;
  publish(*publisher.client, 1, kEvents, on("t"));
  ASSERT_TRUE(fast.rec.wait_count(Kind::event, kEvents, 10s)) << describe(f.hub->stats());
  HubStats s = f.hub->stats();
  EXPECT_EQ(s.stalls, 1u) << describe(s);
  EXPECT_GT(s.events_dropped, 0u);
  EXPECT_EQ(f.peers.of_type(PeerEvent::Type::left).size(), 0u);

  // It catches up: what was routed to it before the stall, then one notice of the rest.
  backlog = 0;
  consumed = 1;
  local->resume_reading();
  ASSERT_TRUE(rec.wait_count(Kind::dropped, 1)) << describe(f.hub->stats());
  const std::uint64_t got = rec.count(Kind::event);
  auto notices = rec.of_kind(Kind::dropped);
  ASSERT_EQ(notices.size(), 1u);
  DroppedNotice notice;
  ASSERT_TRUE(decode_dropped(Slice::copy_of(notices[0].payload), notice).ok());
  EXPECT_EQ(notice.count + got, kEvents);
  EXPECT_EQ(notice.topics["t"], notice.count);
  EXPECT_EQ(notice.count, s.events_dropped);
  expect_flow_baseline(*f.hub);
  local->close();
}

// The same under the disconnect policy: the hub cannot disconnect its own process (a local port
// has no connection to lose and never reconnects; its emits would vanish), so it is treated as
// under the drop policy instead. Socket peers are still disconnected.
TEST(FlowControl, TheLocalPortIsNeverDisconnectedForStalling) {
  HubFixture f(flow_options(kShortStall, OverflowPolicy::disconnect));
  Recorder rec;
  PortCallbacks cb = rec.callbacks();
  std::atomic<std::size_t> backlog{0};
  cb.backlog_bytes = [&backlog] { return backlog.load(); };
  cb.consumed_bytes = [] { return std::uint64_t{0}; };
  auto local = f.hub->connect_local({"main", "main", 0, nullptr}, std::move(cb));
  ASSERT_TRUE(local);
  ASSERT_TRUE(local->submit(one(make(Kind::subscribe, "t", 1))).ok());
  ASSERT_TRUE(rec.wait_reply(1).has_value());
  TestClient fast(*f.hub);
  fast.subscribe("t");

  backlog = 64u << 20;
  TestClient publisher(*f.hub);
  constexpr std::uint64_t kEvents = 200;
  publish(*publisher.client, 1, kEvents, on("t"));
  // The publisher goes on after the stall timeout, as it would for a disconnected socket peer.
  ASSERT_TRUE(fast.rec.wait_count(Kind::event, kEvents, 10s)) << describe(f.hub->stats());
  EXPECT_EQ(f.hub->stats().stalls, 1u);
  EXPECT_TRUE(f.peers.of_type(PeerEvent::Type::left).empty())
      << "left: " << f.peers.of_type(PeerEvent::Type::left)[0].reason.to_string();
  EXPECT_EQ(local->stats().state, PortState::connected);
  // It still has a bus: a request is answered.
  ASSERT_TRUE(local->submit(one(make(Kind::subscribe, "after", 2))).ok());
  EXPECT_TRUE(rec.wait_reply(2).has_value());
  backlog = 0;
  local->resume_reading();
  EXPECT_TRUE(rec.wait_count(Kind::dropped, 1));
  expect_flow_baseline(*f.hub);
  local->close();
}

}  // namespace
}  // namespace switchboard::testing
