// The fault list of the hardening issue: peers and hubs killed with kill -9, a reconnect storm,
// and a reader that vanishes in the middle of a write. Processes that get killed are helper
// programs of their own (bus_peer.cc, hub_peer.cc), spawned, never forked.
//
// Latency bounds are the figures the issue names (100 ms from EOF, 1 s to settle, 6 s to
// reconnect); what these tests measure is far below them (see each test's output), so the
// figures themselves are the margin for a loaded CI machine.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <numeric>
#include <thread>

#include "client.h"
#include "hub.h"
#include "spawn_support.h"
#include "test_support.h"
#include "transport.h"

namespace switchboard::testing {
namespace {

using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

// A Client whose recorder also notes when each E_CONNECTION_LOST arrived.
struct TimedClient {
  TestClient tc;
  std::mutex mutex;
  std::vector<Clock::time_point> lost_at;

  TimedClient(const std::string& endpoint, const std::string& token, ClientOptions opt = {})
      : tc(endpoint, token, true, std::move(opt)) {
    tc.rec.set_on_envelope([this](const Envelope& e) {
      if (e.kind == Kind::error && e.topic == "E_CONNECTION_LOST") {
        std::lock_guard lock(mutex);
        lost_at.push_back(Clock::now());
      }
    });
  }
  std::vector<Clock::time_point> losses() {
    std::lock_guard lock(mutex);
    return lost_at;
  }
};

// --- A caller killed mid-invoke --------------------------------------------------------------

// Each round spawns a caller process that subscribes, registers a handler and invokes a method
// that never answers; once the invoke has reached its handler the caller is killed with kill -9.
// The hub must forget all of it, every time, and hold no descriptor for it.
TEST(Faults, ACallerKilledMidInvokeAThousandTimesLeavesNoTrace) {
  const int rounds = (kSanitized ? 50 : 1000) * soak_factor();
  if (soak_factor() > 1) std::printf("[ soak ] %d rounds\n", rounds);
  if (kSanitized) {
    std::printf(
        "[ scaled ] %d rounds instead of 1000: every spawned process starts several "
        "times slower under a sanitizer\n",
        rounds);
  }
  HubFixture f;
  TestClient server(*f.hub);
  ASSERT_EQ(server.request(Kind::register_, "work")->kind, Kind::result);
  const HubStats base = f.hub->stats();
  ASSERT_EQ(base.peers, 1u);
  ASSERT_EQ(base.handlers, 1u);
  const std::size_t fds_base = fd_count();
  std::size_t fds_max = fds_base;
  const std::string endpoint = f.hub->endpoint();
  auto started = Clock::now();
  for (int i = 0; i < rounds; ++i) {
    {
      Spawned caller(SWITCHBOARD_BUS_PEER, {"call", endpoint, "test-token", "{fd}", "work"});
      ASSERT_TRUE(caller.started());
      ASSERT_EQ(caller.next(), 'r') << "round " << i << ": the caller did not join";
      ASSERT_TRUE(server.rec.wait_count(Kind::invoke, static_cast<std::size_t>(i + 1)))
          << "round " << i;
      // Mid-invoke: the hub holds the call, the caller's subscription and its handler.
      HubStats during = f.hub->stats();
      ASSERT_EQ(during.pending_invokes, base.pending_invokes + 1) << "round " << i;
      ASSERT_EQ(during.subscriptions, base.subscriptions + 1) << "round " << i;
      ASSERT_EQ(during.handlers, base.handlers + 1) << "round " << i;
      fds_max = std::max(fds_max, fd_count());
      ASSERT_TRUE(caller.kill(SIGKILL));
      int status = caller.wait();
      ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "round " << i;
    }
    // The hub saw the EOF: it told the handler to stop and reported the departure (after
    // updating its gauges).
    ASSERT_TRUE(server.rec.wait_count(Kind::cancel, static_cast<std::size_t>(i + 1)))
        << "round " << i;
    ASSERT_TRUE(f.peers.wait(PeerEvent::Type::left, static_cast<std::size_t>(i + 1)))
        << "round " << i;
    HubStats after = f.hub->stats();
    ASSERT_EQ(after.peers, base.peers) << "round " << i;
    ASSERT_EQ(after.handshaking, 0u) << "round " << i;
    ASSERT_EQ(after.pending_invokes, base.pending_invokes) << "round " << i;
    ASSERT_EQ(after.subscriptions, base.subscriptions) << "round " << i;
    ASSERT_EQ(after.handlers, base.handlers) << "round " << i;
    ASSERT_EQ(fd_count(), fds_base) << "round " << i << ": descriptors grew";
  }
  std::printf(
      "[ measured ] %d callers killed mid-invoke in %.0f ms; fds %zu before, %zu after, "
      "%zu at most while a caller was connected\n",
      rounds, ms_between(started, Clock::now()), fds_base, fd_count(), fds_max);
  EXPECT_EQ(f.hub->stats().invokes_routed, static_cast<std::uint64_t>(rounds));
}

// --- The callee killed ---------------------------------------------------------------------

TEST(Faults, EveryCallerOfAKilledCalleeGetsConnectionLostOnceWithin100msOfEof) {
  HubFixture f;
  Spawned callee(SWITCHBOARD_BUS_PEER, {"serve", f.hub->endpoint(), "test-token", "{fd}", "work"});
  ASSERT_TRUE(callee.started());
  ASSERT_EQ(callee.next(), 'r');
  constexpr int kCallers = 8;
  constexpr int kCallsEach = 3;
  std::vector<std::unique_ptr<TimedClient>> callers;
  for (int c = 0; c < kCallers; ++c) {
    callers.push_back(std::make_unique<TimedClient>(f.hub->endpoint(), "test-token"));
    for (int k = 1; k <= kCallsEach; ++k) {
      ASSERT_TRUE(callers.back()->tc.send(make(Kind::invoke, "work", k)).ok());
    }
  }
  // The hub's own process calls too, through its in-process port.
  Recorder local_rec;
  std::mutex local_mutex;
  std::vector<Clock::time_point> local_lost;
  local_rec.set_on_envelope([&](const Envelope& e) {
    if (e.kind == Kind::error && e.topic == "E_CONNECTION_LOST") {
      std::lock_guard lock(local_mutex);
      local_lost.push_back(Clock::now());
    }
  });
  auto local = f.hub->connect_local(LocalPeerInfo{}, local_rec.callbacks());
  ASSERT_NE(local, nullptr);
  std::vector<Envelope> local_calls;
  for (int k = 1; k <= kCallsEach; ++k) local_calls.push_back(make(Kind::invoke, "work", k));
  ASSERT_TRUE(local->submit(std::move(local_calls)).ok());
  for (int n = 0; n < (kCallers + 1) * kCallsEach; ++n) {
    ASSERT_EQ(callee.next(), 'i') << "only " << n << " invokes reached the callee";
  }
  ASSERT_EQ(f.hub->stats().pending_invokes,
            static_cast<std::uint64_t>((kCallers + 1) * kCallsEach));

  auto killed_at = Clock::now();
  ASSERT_TRUE(callee.kill(SIGKILL));
  for (auto& c : callers) {
    for (int k = 1; k <= kCallsEach; ++k) {
      auto r = c->tc.rec.wait_reply(k, 2000ms);
      ASSERT_TRUE(r.has_value()) << "a caller was not released";
      EXPECT_EQ(r->kind, Kind::error);
      EXPECT_EQ(r->topic, "E_CONNECTION_LOST");
      EXPECT_EQ(r->flags & kFlagFromHub, kFlagFromHub);
    }
  }
  for (int k = 1; k <= kCallsEach; ++k) {
    auto r = local_rec.wait_reply(k, 2000ms);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->topic, "E_CONNECTION_LOST");
  }
  callee.wait();
  // Exactly once: a round trip after the failures proves nothing else was on its way.
  double worst = 0;
  for (auto& c : callers) {
    c->tc.subscribe("marker");
    EXPECT_EQ(c->tc.rec.count(Kind::error), static_cast<std::size_t>(kCallsEach));
    for (auto t : c->losses()) worst = std::max(worst, ms_between(killed_at, t));
  }
  EXPECT_EQ(local_rec.count(Kind::error), static_cast<std::size_t>(kCallsEach));
  {
    std::lock_guard lock(local_mutex);
    for (auto t : local_lost) worst = std::max(worst, ms_between(killed_at, t));
  }
  std::printf("[ measured ] %d callers (%d calls) released %.2f ms after kill -9 at worst\n",
              kCallers + 1, (kCallers + 1) * kCallsEach, worst);
  EXPECT_LT(worst, 100.0) << "a caller waited longer than 100 ms after the callee's EOF";
  EXPECT_EQ(f.hub->stats().pending_invokes, 0u);
  EXPECT_EQ(f.hub->stats().handlers, 0u);
  local->close();
}

// --- The hub killed ------------------------------------------------------------------------

// 50 clients with a subscription each and an invoke in flight; the hub process is killed with
// kill -9, stays down for a second, and comes back on the same endpoint with the same token.
TEST(Faults, AKilledHubSettlesInFlightInvokesAndItsClientsReturnWithTheirSubscriptions) {
  constexpr int kClients = 50;
  TempDir dir;
  const std::string endpoint = dir.file("hub.sock");
  const std::string token = "restart-token";
  auto hub = std::make_unique<Spawned>(
      SWITCHBOARD_HUB_PEER,
      std::vector<std::string>{endpoint, token, "{fd}", "stall", std::to_string(kClients)});
  ASSERT_TRUE(hub->started());
  ASSERT_EQ(hub->next(), 'r');
  std::vector<std::unique_ptr<TimedClient>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<TimedClient>(endpoint, token));  // default backoff
    clients.back()->tc.subscribe("news:" + std::to_string(i));
    ASSERT_TRUE(clients.back()->tc.send(make(Kind::invoke, "stall", 7)).ok());
  }
  ASSERT_EQ(hub->next(), 'i') << "not every invoke reached the hub";

  auto killed_at = Clock::now();
  ASSERT_TRUE(hub->kill(SIGKILL));
  double settle_worst = 0;
  for (auto& c : clients) {
    auto r = c->tc.rec.wait_reply(7, 3000ms);
    ASSERT_TRUE(r.has_value()) << "an in-flight invoke did not settle";
    EXPECT_EQ(r->topic, "E_CONNECTION_LOST");
  }
  for (auto& c : clients) {
    auto losses = c->losses();
    EXPECT_EQ(losses.size(), 1u) << "settled more than once";
    for (auto t : losses) settle_worst = std::max(settle_worst, ms_between(killed_at, t));
  }
  EXPECT_LT(settle_worst, 1000.0);
  hub->wait();
  hub.reset();
  // The outage itself, not a synchronisation: long enough for the clients to fail a few
  // attempts and back off (100, 200, 400 ms...).
  std::this_thread::sleep_for(1000ms);
  std::uint64_t attempts_down = 0;
  for (auto& c : clients) attempts_down += c->tc.client->stats().attempts;

  hub = std::make_unique<Spawned>(SWITCHBOARD_HUB_PEER,
                                  std::vector<std::string>{endpoint, token, "{fd}", "stall", "0"});
  ASSERT_TRUE(hub->started());
  ASSERT_EQ(hub->next(), 'r');
  auto restarted_at = Clock::now();
  for (auto& c : clients) {
    ASSERT_TRUE(c->tc.rec.wait_connects(2, 10000ms)) << "a client did not come back";
  }
  double reconnect_all = ms_between(restarted_at, Clock::now());
  // Each client's restored subscription is processed before its later request: after these
  // acks the hub holds all fifty.
  for (auto& c : clients) c->tc.subscribe("sync");
  TestClient publisher(endpoint, token);
  for (int i = 0; i < kClients; ++i) {
    ASSERT_TRUE(publisher.send(make(Kind::event, "news:" + std::to_string(i), 0, "back")).ok());
  }
  for (auto& c : clients) {
    ASSERT_TRUE(c->tc.rec.wait_count(Kind::event, 1)) << "a subscription was not restored";
    EXPECT_EQ(c->tc.rec.of_kind(Kind::event)[0].payload, "back");
  }
  std::printf(
      "[ measured ] %d in-flight invokes settled %.1f ms after kill -9 at worst; "
      "%llu connection attempts during the 1 s outage; all %d clients back %.0f ms "
      "after the restart\n",
      kClients, settle_worst, static_cast<unsigned long long>(attempts_down), kClients,
      reconnect_all);
  EXPECT_LT(reconnect_all, 6000.0);
}

// --- Reconnect storm -----------------------------------------------------------------------

// 64 clients and 20 hub restarts. The first reconnect attempt after each loss is timed against
// the loss (every failed attempt reports `reconnecting` again): with jitter, the delays spread
// over [50, 100] ms instead of landing together.
TEST(Faults, AReconnectStormOfSixtyFourClientsGrowsNoFdsAndIsSpreadByJitter) {
  constexpr int kClients = 64;
  const int restarts = (kSanitized ? 8 : 20) * soak_factor();
  if (soak_factor() > 1) std::printf("[ soak ] %d restarts\n", restarts);
  if (kSanitized) std::printf("[ scaled ] %d restarts instead of 20 under a sanitizer\n", restarts);
  TempDir dir;
  HubOptions opt;
  opt.endpoint = dir.file("hub.sock");
  opt.token = "storm-token";
  auto hub = std::make_unique<Hub>(opt);
  ASSERT_TRUE(hub->start().ok());

  struct StormClient {
    Waiter waiter;
    std::vector<std::pair<PortState, Clock::time_point>> states;
    std::unique_ptr<Client> client;
    std::size_t count(PortState s) {
      return static_cast<std::size_t>(std::count_if(states.begin(), states.end(),
                                                    [s](const auto& st) { return st.first == s; }));
    }
  };
  std::vector<std::unique_ptr<StormClient>> clients;
  for (int i = 0; i < kClients; ++i) {
    auto c = std::make_unique<StormClient>();
    PortCallbacks cb;
    cb.on_state = [sc = c.get()](PortState s, const Status&) {
      sc->waiter.update([&] { sc->states.emplace_back(s, Clock::now()); });
    };
    ClientOptions copt;  // default backoff: 100 ms doubling to 5 s, jittered
    copt.endpoint = opt.endpoint;
    copt.token = opt.token;
    c->client = std::make_unique<Client>(copt, std::move(cb));
    ASSERT_TRUE(c->client->start().ok());
    clients.push_back(std::move(c));
  }
  auto wait_all = [&](PortState s, std::size_t n, std::chrono::milliseconds deadline) {
    for (auto& c : clients) {
      if (!c->waiter.wait_for([&] { return c->count(s) >= n; }, deadline)) return false;
    }
    return true;
  };
  ASSERT_TRUE(wait_all(PortState::connected, 1, 10000ms));
  const std::size_t fds_base = fd_count();
  std::vector<double> delays;
  std::vector<double> spans;
  double slowest_return = 0;
  std::size_t fds_max = fds_base;
  for (int r = 0; r < restarts; ++r) {
    std::vector<std::size_t> seen(clients.size());
    for (std::size_t i = 0; i < clients.size(); ++i) {
      std::lock_guard lock(clients[i]->waiter.mutex());
      seen[i] = clients[i]->states.size();
    }
    hub->close();  // sends GOAWAY and removes the socket file: attempts fail at once
    hub.reset();
    // Every client reports the loss, then its first attempt (which fails: no file).
    for (std::size_t i = 0; i < clients.size(); ++i) {
      auto& c = *clients[i];
      ASSERT_TRUE(c.waiter.wait_for([&] { return c.states.size() >= seen[i] + 2; }, 5000ms))
          << "restart " << r << ": client " << i << " made no attempt";
      std::lock_guard lock(c.waiter.mutex());
      ASSERT_EQ(c.states[seen[i]].first, PortState::reconnecting);
      ASSERT_EQ(c.states[seen[i] + 1].first, PortState::reconnecting);
    }
    std::vector<double> round;
    for (std::size_t i = 0; i < clients.size(); ++i) {
      std::lock_guard lock(clients[i]->waiter.mutex());
      round.push_back(
          ms_between(clients[i]->states[seen[i]].second, clients[i]->states[seen[i] + 1].second));
    }
    std::sort(round.begin(), round.end());
    spans.push_back(round[round.size() * 9 / 10] - round[round.size() / 10]);
    delays.insert(delays.end(), round.begin(), round.end());

    hub = std::make_unique<Hub>(opt);
    ASSERT_TRUE(hub->start().ok()) << "restart " << r;
    auto back_at = Clock::now();
    ASSERT_TRUE(wait_all(PortState::connected, static_cast<std::size_t>(r + 2), 10000ms))
        << "restart " << r << ": not every client came back";
    slowest_return = std::max(slowest_return, ms_between(back_at, Clock::now()));
    fds_max = std::max(fds_max, fd_count());
    EXPECT_EQ(fd_count(), fds_base) << "restart " << r << ": descriptors grew";
  }
  EXPECT_EQ(hub->stats().peers, static_cast<std::uint64_t>(kClients));
  std::sort(delays.begin(), delays.end());
  double mean =
      std::accumulate(delays.begin(), delays.end(), 0.0) / static_cast<double>(delays.size());
  double var = 0;
  for (double d : delays) var += (d - mean) * (d - mean);
  double sd = std::sqrt(var / static_cast<double>(delays.size()));
  std::sort(spans.begin(), spans.end());
  std::printf(
      "[ measured ] %d restarts x %d clients: first-attempt delay min %.1f, p10 %.1f, "
      "median %.1f, p90 %.1f, max %.1f ms (sd %.1f ms); p10-p90 span per restart "
      "%.1f..%.1f ms; all back within %.0f ms of a restart; fds %zu before, %zu after, "
      "%zu at most\n",
      restarts, kClients, delays.front(), delays[delays.size() / 10], delays[delays.size() / 2],
      delays[delays.size() * 9 / 10], delays.back(), sd, spans.front(), spans.back(),
      slowest_return, fds_base, fd_count(), fds_max);
  // Timers never fire early: the first attempt waits at least half the 100 ms ceiling.
  EXPECT_GE(delays.front(), 49.0);
  // Jittered uniformly over [50, 100] ms: sd about 14 ms and a p10-p90 span of about 40 ms in
  // every restart. Without jitter every client would retry at the same instant (sd ~ 0).
  EXPECT_GT(sd, 8.0);
  EXPECT_GT(spans.front(), 15.0);
  EXPECT_EQ(fd_count(), fds_base);
}

// --- EPIPE in the middle of a write --------------------------------------------------------

// A write to a reader that has gone must come back as an error, not as SIGPIPE: this process
// keeps SIGPIPE's default action (terminate) while these tests run.
class DefaultSigpipe : public ::testing::Test {
 protected:
  void SetUp() override {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    ASSERT_EQ(::sigaction(SIGPIPE, &dfl, &saved_), 0);
    struct sigaction now {};
    ASSERT_EQ(::sigaction(SIGPIPE, nullptr, &now), 0);
    ASSERT_EQ(now.sa_handler, SIG_DFL);
  }
  void TearDown() override { ::sigaction(SIGPIPE, &saved_, nullptr); }
  struct sigaction saved_ {};
};

TEST_F(DefaultSigpipe, AStreamWriteToAVanishedReaderIsAnErrorNotASignal) {
  TempDir dir;
  const std::string path = dir.file("plain.sock");
  int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 1), 0);
  asio::io_context io;
  std::unique_ptr<Stream> stream;
  connect_endpoint(io, path, [&](Status s, std::unique_ptr<Stream> st) {
    EXPECT_TRUE(s.ok()) << s.to_string();
    stream = std::move(st);
  });
  io.run();
  ASSERT_NE(stream, nullptr);
  int reader = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(reader, 0);
  // Four 1 MiB buffers in one gathered write: far more than the socket buffer takes.
  std::vector<std::string> chunks(4, std::string(1u << 20, 'x'));
  std::vector<IoVec> iov;
  for (auto& c : chunks) iov.push_back(IoVec{c.data(), c.size()});
  IoResult first = stream->try_write(iov);
  ASSERT_EQ(first.state, IoState::ok);
  ASSERT_GT(first.bytes, 0u);
  ASSERT_LT(first.bytes, 4u << 20) << "the write was not partial";
  ::close(reader);  // the reader vanishes with most of the batch unsent
  // Go on from where the first write stopped, as the batcher would.
  std::size_t skip = first.bytes;
  std::vector<IoVec> rest;
  for (auto& v : iov) {
    if (skip >= v.iov_len) {
      skip -= v.iov_len;
      continue;
    }
    rest.push_back(IoVec{static_cast<char*>(v.iov_base) + skip, v.iov_len - skip});
    skip = 0;
  }
  IoResult second = stream->try_write(rest);
  ASSERT_EQ(second.state, IoState::error);
  EXPECT_NE(second.error.message().find("Broken pipe"), std::string::npos)
      << second.error.to_string();
  std::printf("[ measured ] first write took %zu of %u bytes; the next one failed with: %s\n",
              first.bytes, 4u << 20, second.error.to_string().c_str());
  ::close(listener);
}

// Subscribers that stop reading with big events queued, then close with the hub in the middle of
// writing to them. The hub survives, and a bystander gets every event.
TEST_F(DefaultSigpipe, TheHubSurvivesSubscribersVanishingMidWrite) {
  HubOptions opt;
  opt.high_water_mark = 64u << 20;  // everything stays queued: the writes stay in progress
  HubFixture f(opt);
  constexpr int kVanishing = 8;
  constexpr int kEvents = 4;
  std::vector<std::unique_ptr<RawPeer>> raws;
  for (int i = 0; i < kVanishing; ++i) {
    raws.push_back(std::make_unique<RawPeer>(f.hub->endpoint()));
    ASSERT_EQ(raws.back()->handshake("test-token")->kind, Kind::welcome);
    ASSERT_TRUE(raws.back()->write(frame_bytes(make(Kind::subscribe, "big", 1))));
    auto ack = raws.back()->read_frame();
    ASSERT_TRUE(ack && ack->kind == Kind::result);
  }
  TestClient bystander(*f.hub);
  bystander.subscribe("big");
  TestClient publisher(*f.hub);
  std::string payload(1u << 20, 'b');
  for (int i = 0; i < kEvents; ++i) {
    ASSERT_TRUE(publisher.send(make(Kind::event, "big", 0, payload)).ok());
  }
  ASSERT_TRUE(bystander.rec.wait_count(Kind::event, kEvents, 10000ms));
  // Take a little, so each connection stops in the middle of a frame, then vanish.
  for (auto& raw : raws) {
    char buf[4096];
    ASSERT_GT(::recv(raw->fd(), buf, sizeof buf, 0), 0);
    raw->close();
  }
  ASSERT_TRUE(f.peers.wait(PeerEvent::Type::left, kVanishing));
  int by_write = 0;
  for (const auto& ev : f.peers.of_type(PeerEvent::Type::left)) {
    if (ev.reason.message().find("sendmsg") != std::string::npos) ++by_write;
  }
  std::printf(
      "[ measured ] %d of %d vanished subscribers were noticed by a failing write "
      "(EPIPE), the rest by EOF on read\n",
      by_write, kVanishing);
  // The hub is alive and routing.
  ASSERT_TRUE(publisher.send(make(Kind::event, "big", 0, "after")).ok());
  ASSERT_TRUE(bystander.rec.wait_count(Kind::event, kEvents + 1));
  EXPECT_EQ(f.hub->stats().peers, 2u);
}

// A client in the middle of sending a large event when its hub dies.
TEST_F(DefaultSigpipe, AClientSurvivesItsHubVanishingMidWrite) {
  TempDir dir;
  const std::string endpoint = dir.file("hub.sock");
  Spawned hub(SWITCHBOARD_HUB_PEER, {endpoint, "t", "{fd}", "unused", "0"});
  ASSERT_TRUE(hub.started());
  ASSERT_EQ(hub.next(), 'r');
  TestClient client(endpoint, "t");
  ASSERT_TRUE(hub.kill(SIGSTOP));  // stops reading: the client's writes stay in progress
  std::string payload(8u << 20, 'c');
  ASSERT_TRUE(client.send(make(Kind::event, "nobody", 0, payload)).ok());
  // Wait until the client has written what the socket takes and is blocked on the rest.
  auto deadline = Clock::now() + 5s;
  while (client.client->stats().writev_calls < 2 && Clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_TRUE(hub.kill(SIGKILL));
  hub.wait();
  ASSERT_TRUE(client.rec.wait_state(PortState::reconnecting));
  std::printf("[ measured ] the client noticed with: %s\n",
              client.rec.last_status().to_string().c_str());
  EXPECT_NE(client.client->stats().state, PortState::closed);
}

}  // namespace
}  // namespace switchboard::testing
