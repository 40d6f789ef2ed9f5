// The client's promises: handshake, reconnect with backoff, re-subscribe and re-register, the
// bounded offline queue, and in-flight invokes failing as connection-lost.
#include "client.h"

#include <gtest/gtest.h>

#include <atomic>
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
  // 'connected' means the restoring frames were sent, not that the hub has read them: the ack
  // of a later request on the same connection does (without it the probe can win the race).
  sub.subscribe("sync");
  // The subscription and the handler were restored without the application asking.
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
  // The first retry comes 500 to 1000 ms after the loss: time enough for the new hub's own
  // process to subscribe first, even on a loaded machine (with 20 ms it lost that race under
  // TSan, and the queued events went to nobody).
  ClientOptions slow_retry;
  slow_retry.backoff_initial = std::chrono::milliseconds(1000);
  slow_retry.backoff_max = std::chrono::milliseconds(1000);
  TestClient pub(hub->endpoint(), hub->token(), true, slow_retry);
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

TEST(Client, StopsReadingWhileItsConsumerIsBackloggedAndLosesNothing) {
  HubFixture f;
  // A consumer that keeps up until the flood starts, then says it has fallen behind.
  std::atomic<bool> behind{false};
  Recorder rec;
  PortCallbacks cb = rec.callbacks();
  cb.backlogged = [&behind] { return behind.load(); };
  ClientOptions opt;
  opt.endpoint = f.hub->endpoint();
  opt.token = f.hub->token();
  auto sub = std::make_unique<Client>(std::move(opt), std::move(cb));
  ASSERT_TRUE(sub->start().ok());
  ASSERT_TRUE(rec.wait_connects(1));
  std::vector<Envelope> req;
  req.push_back(make(Kind::subscribe, "flood", 7));
  ASSERT_TRUE(sub->submit(std::move(req)).ok());
  ASSERT_TRUE(rec.wait_reply(7).has_value());
  // Behind from the first event on (join announcements before it must not count).
  std::atomic<bool> flooded{false};
  rec.set_on_envelope([&](const Envelope& e) {
    if (e.kind == Kind::event && !flooded.exchange(true)) behind = true;
  });

  // 4 MiB: far more than one readiness event reads (16 x 64 KiB) plus the socket buffers, and
  // under the hub's default high-water mark (8 MiB), so the hub drops none of it.
  TestClient pub(*f.hub);
  constexpr int kEvents = 4096;
  std::vector<Envelope> batch;
  for (int i = 0; i < kEvents; ++i) {
    batch.push_back(make(Kind::event, "flood", 0, std::to_string(i) + std::string(1024, 'x')));
  }
  ASSERT_TRUE(pub.client->submit(std::move(batch)).ok());
  ASSERT_TRUE(rec.wait_count(Kind::event, 1));
  // Paused after the first batch: the count stops growing while the consumer is behind.
  std::this_thread::sleep_for(300ms);
  const std::size_t paused_at = rec.count(Kind::event);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(rec.count(Kind::event), paused_at);
  EXPECT_LT(paused_at, static_cast<std::size_t>(kEvents));

  behind = false;
  sub->resume_reading();
  ASSERT_TRUE(rec.wait_count(Kind::event, kEvents, 10s));
  auto events = rec.of_kind(Kind::event);
  for (int i = 0; i < kEvents; ++i) {
    ASSERT_EQ(events[i].payload.substr(0, events[i].payload.size() - 1024), std::to_string(i));
  }
  sub->close();
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
