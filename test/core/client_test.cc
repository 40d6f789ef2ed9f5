// The client's promises: handshake, reconnect with backoff, re-subscribe and re-register, the
// bounded offline queue, and in-flight invokes failing as connection-lost.
#include "client.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "test_support.h"

namespace switchboard::testing {
namespace {

HubOptions fixed(const TempDir& dir) {
  HubOptions opt;
  opt.endpoint = dir.file("hub.sock");
  opt.token = "restart-token";
  return opt;
}

ClientOptions quick_backoff() {
  ClientOptions opt;
  opt.backoff_initial = std::chrono::milliseconds(20);
  opt.backoff_max = std::chrono::milliseconds(200);
  return opt;
}

TEST(Client, ConnectsAndIsWelcomed) {
  HubFixture f;
  TestClient c(*f.hub);
  EXPECT_NE(c.client->peer_id(), 0u);
  EXPECT_EQ(c.client->stats().state, PortState::connected);
  EXPECT_EQ(c.client->stats().connects, 1u);
  c.client->close();
  EXPECT_EQ(c.client->stats().state, PortState::closed);
  ASSERT_TRUE(f.peers.wait(PeerEvent::Type::left, 1));
  f.expect_clean_teardown(1);
}

TEST(Client, WrongTokenGivesUpWithAnAuthErrorInsteadOfRetrying) {
  HubFixture f;
  TestClient c(f.hub->endpoint(), "wrong", false);
  ASSERT_TRUE(c.rec.wait_state(PortState::closed));
  EXPECT_EQ(c.rec.last_status().code(), Errc::auth_failed);
  EXPECT_EQ(c.client->stats().attempts, 1u);
  EXPECT_EQ(c.client->submit({}).code(), Errc::closed);
  ASSERT_TRUE(f.peers.wait(PeerEvent::Type::rejected, 1));
}

TEST(Client, GivesUpAfterMaxAttemptsWhenToldTo) {
  TempDir dir;
  ClientOptions opt = quick_backoff();
  opt.max_attempts = 2;
  TestClient c(dir.file("nobody.sock"), "t", false, opt);
  ASSERT_TRUE(c.rec.wait_state(PortState::closed));
  EXPECT_EQ(c.client->stats().attempts, 3u);  // the first try and two retries
}

TEST(Client, KeepsRetryingByDefaultAndConnectsWhenTheHubAppears) {
  TempDir dir;
  TestClient c(dir.file("hub.sock"), "restart-token", false, quick_backoff());
  ASSERT_TRUE(c.rec.wait_state(PortState::reconnecting));
  Hub hub(fixed(dir));
  ASSERT_TRUE(hub.start().ok());
  ASSERT_TRUE(c.rec.wait_connects(1));
  EXPECT_GE(c.client->stats().attempts, 2u);
}

TEST(Client, HubRestartReconnectsResubscribesAndReceivesAgain) {
  TempDir dir;
  PeerLog peers;  // declared before the hub that reports into it
  auto hub = std::make_unique<Hub>(fixed(dir));
  ASSERT_TRUE(hub->start().ok());
  TestClient pub(hub->endpoint(), hub->token(), true, quick_backoff());
  TestClient sub(hub->endpoint(), hub->token(), true, quick_backoff());
  sub.subscribe("news");
  auto r = sub.request(Kind::register_, "svc");
  ASSERT_TRUE(r && r->kind == Kind::result);
  ASSERT_TRUE(pub.send(make(Kind::event, "news", 0, "before")).ok());
  ASSERT_TRUE(sub.rec.wait_count(Kind::event, 1));

  hub->close();
  ASSERT_TRUE(pub.rec.wait_state(PortState::reconnecting));
  ASSERT_TRUE(sub.rec.wait_state(PortState::reconnecting));
  HubOptions opt = fixed(dir);
  opt.on_peer = peers.hook();
  hub = std::make_unique<Hub>(opt);
  ASSERT_TRUE(hub->start().ok());
  ASSERT_TRUE(pub.rec.wait_connects(2));
  ASSERT_TRUE(sub.rec.wait_connects(2));
  // The subscription and the handler were restored without the application asking. WELCOME
  // comes before the restoring frames reach the hub, so wait for the hub to count them (a probe
  // racing them could take the name first).
  for (auto until = std::chrono::steady_clock::now() + 5s;
       hub->stats().handlers < 1 && std::chrono::steady_clock::now() < until;) {
    std::this_thread::sleep_for(1ms);
  }
  RawPeer probe(hub->endpoint());
  ASSERT_EQ(probe.handshake("restart-token")->kind, Kind::welcome);
  ASSERT_TRUE(probe.write(frame_bytes(make(Kind::register_, "svc", 5))));
  auto taken = probe.read_frame();
  ASSERT_TRUE(taken.has_value());
  EXPECT_EQ(taken->topic, "E_ALREADY_REGISTERED");
  ASSERT_TRUE(pub.send(make(Kind::event, "news", 0, "after")).ok());
  ASSERT_TRUE(sub.rec.wait_count(Kind::event, 2));
  EXPECT_EQ(sub.rec.of_kind(Kind::event)[1].payload, "after");
}

TEST(Client, EventsEmittedWhileDisconnectedArriveAfterReconnect) {
  TempDir dir;
  auto hub = std::make_unique<Hub>(fixed(dir));
  ASSERT_TRUE(hub->start().ok());
  TestClient pub(hub->endpoint(), hub->token(), true, quick_backoff());
  hub->close();
  ASSERT_TRUE(pub.rec.wait_state(PortState::reconnecting));
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(pub.send(make(Kind::event, "queued", 0, std::to_string(i))).ok());
  }
  EXPECT_EQ(pub.client->stats().offline_queued, 10u);
  // The new hub's own process subscribes before any client can reconnect.
  hub = std::make_unique<Hub>(fixed(dir));
  ASSERT_TRUE(hub->start().ok());
  Recorder local_rec;
  auto local = hub->connect_local({"main", "main", 0}, local_rec.callbacks());
  std::vector<Envelope> sub;
  sub.push_back(make(Kind::subscribe, "queued", 1));
  ASSERT_TRUE(local->submit(std::move(sub)).ok());
  ASSERT_TRUE(local_rec.wait_reply(1).has_value());
  ASSERT_TRUE(local_rec.wait_count(Kind::event, 10));
  auto got = local_rec.of_kind(Kind::event);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(got[i].payload, std::to_string(i));
  EXPECT_EQ(pub.client->stats().offline_queued, 0u);
  local->close();
}

TEST(Client, AFullOfflineQueueFailsLoudly) {
  TempDir dir;
  ClientOptions opt = quick_backoff();
  opt.offline_max_frames = 5;
  TestClient c(dir.file("nobody.sock"), "t", false, opt);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(c.send(make(Kind::event, "e")).ok());
  Status full = c.send(make(Kind::event, "e"));
  EXPECT_EQ(full.code(), Errc::offline_queue_full);
  EXPECT_NE(full.message().find("offline queue is full"), std::string::npos);
  // A batch that does not fit is refused whole.
  EXPECT_EQ(c.client->stats().offline_queued, 5u);
}

TEST(Client, InFlightInvokesFailAsConnectionLostExactlyOnceWhenTheHubDies) {
  TempDir dir;
  auto hub = std::make_unique<Hub>(fixed(dir));
  ASSERT_TRUE(hub->start().ok());
  TestClient server(hub->endpoint(), hub->token(), true, quick_backoff());
  TestClient caller(hub->endpoint(), hub->token(), true, quick_backoff());
  ASSERT_EQ(server.request(Kind::register_, "never")->kind, Kind::result);
  ASSERT_TRUE(caller.send(make(Kind::invoke, "never", 31)).ok());
  ASSERT_TRUE(server.rec.wait_count(Kind::invoke, 1));
  EXPECT_EQ(caller.client->stats().in_flight, 1u);
  hub->close();
  auto r = caller.rec.wait_reply(31);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->kind, Kind::error);
  EXPECT_EQ(r->topic, "E_CONNECTION_LOST");
  EXPECT_EQ(r->flags & kFlagFromHub, kFlagFromHub);
  ASSERT_TRUE(caller.rec.wait_state(PortState::reconnecting));
  caller.client->close();  // nothing more can arrive now
  EXPECT_EQ(caller.rec.of_kind(Kind::error).size(), 1u);
  EXPECT_EQ(caller.client->stats().in_flight, 0u);
}

TEST(Client, AFrameOverTheHubsLimitIsRefusedLocallyAndItsInvokeAnswered) {
  HubOptions opt;
  opt.max_frame = 1024;
  HubFixture f(opt);
  TestClient c(*f.hub);
  ASSERT_TRUE(c.send(make(Kind::invoke, "big", 41, std::string(2048, 'x'))).ok());
  auto r = c.rec.wait_reply(41);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->topic, "E_FRAME_TOO_LARGE");
  // The connection survived: the hub never saw the oversize frame.
  auto ok = c.request(Kind::subscribe, "still-here");
  ASSERT_TRUE(ok && ok->kind == Kind::result);
  EXPECT_EQ(c.client->stats().connects, 1u);
}

TEST(Client, CloseSendsEverythingSubmittedBeforeIt) {
  HubFixture f;
  TestClient sub(*f.hub);
  sub.subscribe("last-words");
  auto pub = std::make_unique<TestClient>(*f.hub);
  constexpr int kEvents = 2000;
  std::vector<Envelope> batch;
  for (int i = 0; i < kEvents; ++i)
    batch.push_back(make(Kind::event, "last-words", 0, std::string(200, 'x')));
  ASSERT_TRUE(pub->client->submit(std::move(batch)).ok());
  pub->client->close();  // at once: nothing submitted before it may be lost
  ASSERT_TRUE(sub.rec.wait_count(Kind::event, kEvents));
}

TEST(Client, AnOversizeResultReachesItsCallerAsAnError) {
  HubOptions opt;
  opt.max_frame = 1024;
  HubFixture f(opt);
  TestClient caller(*f.hub), server(*f.hub);
  Client* raw = server.client.get();
  server.rec.set_on_envelope([raw](const Envelope& e) {
    if (e.kind != Kind::invoke) return;
    std::vector<Envelope> reply;
    reply.push_back(make(Kind::result, "", e.id, std::string(4096, 'r')));
    (void)raw->submit(std::move(reply));
  });
  ASSERT_EQ(server.request(Kind::register_, "big-answer")->kind, Kind::result);
  ASSERT_TRUE(caller.send(make(Kind::invoke, "big-answer", 51)).ok());
  auto r = caller.rec.wait_reply(51);
  ASSERT_TRUE(r.has_value()) << "the caller must not be left waiting";
  EXPECT_EQ(r->kind, Kind::error);
  EXPECT_EQ(r->topic, "E_FRAME_TOO_LARGE");
  EXPECT_EQ(f.hub->stats().pending_invokes, 0u);
}

TEST(Client, AnOversizeEventIsReportedToItsSender) {
  HubOptions opt;
  opt.max_frame = 1024;
  HubFixture f(opt);
  TestClient c(*f.hub);
  ASSERT_TRUE(c.send(make(Kind::event, "huge", 0, std::string(4096, 'e'))).ok());
  auto r = c.rec.wait_reply(0);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->topic, "E_FRAME_TOO_LARGE");
  EXPECT_EQ(c.client->stats().connects, 1u);  // and the connection lives on
}

TEST(Client, CloseFromAnyThreadStopsCallbacksAndJoins) {
  HubFixture f;
  auto c = std::make_unique<TestClient>(*f.hub);
  std::thread closer([&] { c->client->close(); });
  closer.join();
  EXPECT_EQ(c->client->stats().state, PortState::closed);
  EXPECT_EQ(c->client->submit({}).code(), Errc::closed);
  c.reset();
  ASSERT_TRUE(f.peers.wait(PeerEvent::Type::left, 1));
  f.expect_clean_teardown(1);
}

}  // namespace
}  // namespace switchboard::testing
