// Liveness: the hub PINGs its socket peers (HubOptions::ping_interval) and declares dead a peer
// from which nothing arrives for ping_misses intervals: a process stopped with SIGSTOP keeps its
// socket open, so only silence gives it away.
//
// The intervals here are short (100-200 ms) to keep the tests fast; the upper bounds allow a
// second of CI scheduling delay on top of what the options promise, the lower bounds none
// (timers never fire early).
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "hub.h"
#include "spawn_support.h"
#include "test_support.h"

namespace switchboard::testing {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point from) {
  return std::chrono::duration<double, std::milli>(Clock::now() - from).count();
}

HubOptions pinging(std::chrono::milliseconds interval, int misses) {
  HubOptions opt;
  opt.ping_interval = interval;
  opt.ping_misses = misses;
  return opt;
}

TEST(Liveness, DefaultsArePingsEveryFiveSecondsAndTwoMisses) {
  HubOptions opt;
  EXPECT_EQ(opt.ping_interval, std::chrono::milliseconds(5000));
  EXPECT_EQ(opt.ping_misses, 2);
}

TEST(Liveness, BadPingOptionsAreRefused) {
  TempDir dir;
  for (auto [interval, misses] : {std::pair{-1, 2}, std::pair{100, 0}}) {
    HubOptions opt = pinging(std::chrono::milliseconds(interval), misses);
    opt.endpoint = dir.file("hub.sock");
    Hub hub(opt);
    Status s = hub.start();
    EXPECT_EQ(s.code(), Errc::invalid_argument) << interval << " ms x " << misses;
    EXPECT_NE(s.message().find("ping"), std::string::npos) << s.message();
  }
}

// A raw peer that never answers: it gets PINGs, then GOAWAY E_CONNECTION_LOST, then EOF.
TEST(Liveness, ASilentPeerIsPingedThenDeclaredDead) {
  constexpr auto kInterval = 100ms;
  HubFixture f(pinging(kInterval, 2));
  RawPeer raw(f.hub->endpoint());
  ASSERT_EQ(raw.handshake("test-token")->kind, Kind::welcome);
  auto silent_since = Clock::now();  // its last frame was the HELLO
  int pings = 0;
  std::optional<Envelope> frame;
  for (;;) {
    frame = raw.read_frame();
    ASSERT_TRUE(frame.has_value()) << "connection ended without GOAWAY";
    if (frame->kind != Kind::ping) break;
    EXPECT_NE(frame->id, 0u);
    ++pings;
  }
  double dead_after = ms_since(silent_since);
  ASSERT_EQ(frame->kind, Kind::goaway);
  EXPECT_EQ(frame->topic, "E_CONNECTION_LOST");
  EXPECT_NE(decode_message(frame->payload).find("declared dead"), std::string::npos);
  EXPECT_TRUE(raw.read_until_eof());
  ASSERT_TRUE(f.peers.wait(PeerEvent::Type::left, 1));
  EXPECT_EQ(f.peers.of_type(PeerEvent::Type::left)[0].reason.code(), Errc::connection_lost);
  EXPECT_EQ(f.hub->stats().declared_dead, 1u);
  std::printf(
      "[ measured ] silent peer: %d pings, declared dead %.0f ms after its last frame "
      "(interval 100 ms, 2 misses: 200 to 300 ms promised)\n",
      pings, dead_after);
  EXPECT_EQ(pings, 2);
  EXPECT_GE(dead_after, 200.0);
  EXPECT_LT(dead_after, 300.0 + 1000.0);
}

// Answering PINGs (or sending anything at all) keeps a peer alive however long it is idle.
TEST(Liveness, PeersThatAnswerStayForManyIntervals) {
  constexpr auto kInterval = 50ms;
  HubFixture f(pinging(kInterval, 2));
  TestClient client(*f.hub);  // answers on its I/O thread
  RawPeer raw(f.hub->endpoint());
  ASSERT_EQ(raw.handshake("test-token")->kind, Kind::welcome);
  int answered = 0;
  while (answered < 10) {  // ten intervals: five times the two misses allowed
    auto ping = raw.read_frame();
    ASSERT_TRUE(ping.has_value());
    ASSERT_EQ(ping->kind, Kind::ping) << "got " << kind_name(ping->kind);
    ASSERT_TRUE(raw.write(frame_bytes(make(Kind::pong, "", ping->id))));
    ++answered;
  }
  EXPECT_EQ(f.hub->stats().peers, 2u);
  EXPECT_EQ(f.hub->stats().declared_dead, 0u);
  EXPECT_TRUE(f.peers.of_type(PeerEvent::Type::left).empty());
  // The client is still there and working.
  client.subscribe("still-here");
}

TEST(Liveness, ZeroIntervalSendsNoPings) {
  HubFixture f(pinging(0ms, 2));
  RawPeer raw(f.hub->endpoint());
  ASSERT_EQ(raw.handshake("test-token")->kind, Kind::welcome);
  // Nothing but the reply to our own PING may arrive.
  ASSERT_TRUE(raw.write(frame_bytes(make(Kind::ping, "", 77))));
  auto pong = raw.read_frame();
  ASSERT_TRUE(pong.has_value());
  EXPECT_EQ(pong->kind, Kind::pong);
  EXPECT_EQ(pong->id, 77u);
}

// A handler process stopped with SIGSTOP: its socket stays open, so no EOF ever comes. The hub
// declares it dead after missed pings, and its callers get E_CONNECTION_LOST; an idle client
// next to it is left alone.
TEST(Liveness, AStoppedPeerIsDeclaredDeadAndItsCallersReleased) {
  constexpr auto kInterval = 200ms;
  constexpr int kMisses = 2;
  HubFixture f(pinging(kInterval, kMisses));
  Spawned server(SWITCHBOARD_BUS_PEER, {"serve", f.hub->endpoint(), "test-token", "{fd}", "work"});
  ASSERT_TRUE(server.started());
  ASSERT_EQ(server.next(), 'r');
  TestClient idle(*f.hub);
  constexpr int kCallers = 3;
  std::vector<std::unique_ptr<TestClient>> callers;
  for (int i = 0; i < kCallers; ++i) {
    callers.push_back(std::make_unique<TestClient>(*f.hub));
    ASSERT_TRUE(callers.back()->send(make(Kind::invoke, "work", 5)).ok());
  }
  for (int i = 0; i < kCallers; ++i) ASSERT_EQ(server.next(), 'i');
  // A few intervals with the server alive: its client answers the PINGs, so nothing happens.
  std::this_thread::sleep_for(3 * kInterval);
  ASSERT_EQ(f.hub->stats().pending_invokes, static_cast<std::uint64_t>(kCallers))
      << "a live peer was declared dead";

  auto stopped_at = Clock::now();
  ASSERT_TRUE(server.kill(SIGSTOP));
  for (auto& c : callers) {
    auto r = c->rec.wait_reply(5, 5000ms);
    ASSERT_TRUE(r.has_value()) << "a caller was not released";
    EXPECT_EQ(r->kind, Kind::error);
    EXPECT_EQ(r->topic, "E_CONNECTION_LOST");
    EXPECT_NE(r->payload.find("declared dead"), std::string::npos) << r->payload;
  }
  double released_after = ms_since(stopped_at);
  ASSERT_TRUE(f.peers.wait(PeerEvent::Type::left, 1));
  auto left = f.peers.of_type(PeerEvent::Type::left);
  ASSERT_EQ(left.size(), 1u) << "only the stopped peer leaves";
  EXPECT_EQ(left[0].role, "server");
  EXPECT_EQ(left[0].reason.code(), Errc::connection_lost);
  HubStats s = f.hub->stats();
  EXPECT_EQ(s.declared_dead, 1u);
  EXPECT_EQ(s.pending_invokes, 0u);
  EXPECT_EQ(s.handlers, 0u);
  EXPECT_EQ(s.peers, 1u + kCallers);  // the idle client and the callers stay
  idle.subscribe("still-here");
  std::printf(
      "[ measured ] stopped peer declared dead and its %d callers released %.0f ms "
      "after SIGSTOP (interval 200 ms, 2 misses: at most 600 ms promised)\n",
      kCallers, released_after);
  EXPECT_LT(released_after, (kMisses + 1) * 200.0 + 1000.0);
  server.kill(SIGCONT);
}

}  // namespace
}  // namespace switchboard::testing
