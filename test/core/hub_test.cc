// The hub's promises, tested over real Unix sockets in private temporary directories.
#include "hub.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <msgpack.hpp>

#include <chrono>
#include <future>
#include <memory>
#include <thread>

#include "test_support.h"

namespace switchboard::testing {
namespace {

using Clock = std::chrono::steady_clock;

std::string goaway_reason(const std::optional<Envelope>& env) {
  if (!env) return "(connection ended without a frame)";
  if (env->kind != Kind::goaway) return "(got " + std::string(kind_name(env->kind)) + ")";
  return env->topic;
}

// --- Handshake -----------------------------------------------------------------------------

TEST(Handshake, GoodTokenIsWelcomedWithAPeerId) {
  HubFixture f;
  RawPeer peer(f.hub->endpoint());
  ASSERT_TRUE(peer.connected());
  auto reply = peer.handshake("test-token");
  ASSERT_TRUE(reply.has_value());
  ASSERT_EQ(reply->kind, Kind::welcome);
  Welcome w;
  ASSERT_TRUE(decode_welcome(reply->payload, w).ok());
  EXPECT_EQ(w.protocol, kProtocolVersion);
  EXPECT_NE(w.peer_id, 0u);
  EXPECT_EQ(w.hub_pid, static_cast<std::uint64_t>(::getpid()));
  EXPECT_EQ(w.max_frame, kDefaultMaxFrame);
  ASSERT_TRUE(f.peers.wait(PeerEvent::Type::joined, 1));
  auto joined = f.peers.of_type(PeerEvent::Type::joined);
  EXPECT_EQ(joined[0].role, "test");
  EXPECT_EQ(joined[0].pid, static_cast<std::uint64_t>(::getpid()));  // from SO_PEERCRED
  peer.close();
  ASSERT_TRUE(f.peers.wait(PeerEvent::Type::left, 1));
  f.expect_clean_teardown(1);
}

TEST(Handshake, WrongTokenGetsGoawayAndTheConnectionCloses) {
  HubFixture f;
  RawPeer peer(f.hub->endpoint());
  auto reply = peer.handshake("not-the-token");
  EXPECT_EQ(goaway_reason(reply), "E_AUTH");
  EXPECT_TRUE(peer.read_until_eof());
  ASSERT_TRUE(f.peers.wait(PeerEvent::Type::rejected, 1));
  EXPECT_EQ(f.peers.of_type(PeerEvent::Type::rejected)[0].reason.code(), Errc::auth_failed);
  EXPECT_EQ(f.hub->stats().rejected, 1u);
  f.expect_clean_teardown(1);
}

TEST(Handshake, WrongProtocolVersionInHelloIsRefused) {
  HubFixture f;
  RawPeer peer(f.hub->endpoint());
  ASSERT_TRUE(peer.write(hello_frame("test-token", kProtocolVersion + 1)));
  EXPECT_EQ(goaway_reason(peer.read_frame()), "E_VERSION");
  EXPECT_TRUE(peer.read_until_eof());
  f.expect_clean_teardown(1);
}

TEST(Handshake, WrongEnvelopeVersionIsRefused) {
  HubFixture f;
  RawPeer peer(f.hub->endpoint());
  msgpack::sbuffer body;
  msgpack::packer<msgpack::sbuffer> pk(body);
  pk.pack_array(7);
  pk.pack(2);  // version
  pk.pack(static_cast<int>(Kind::hello));
  pk.pack(0);
  pk.pack(std::string());
  pk.pack(0);
  pk.pack(0);
  pk.pack_nil();
  std::string frame(4, '\0');
  put_frame_header(reinterpret_cast<std::uint8_t*>(frame.data()), body.size());
  frame.append(body.data(), body.size());
  ASSERT_TRUE(peer.write(frame));
  EXPECT_EQ(goaway_reason(peer.read_frame()), "E_VERSION");
  f.expect_clean_teardown(1);
}

TEST(Handshake, AnythingButHelloFirstIsRefused) {
  HubFixture f;
  RawPeer peer(f.hub->endpoint());
  ASSERT_TRUE(peer.write(frame_bytes(make(Kind::subscribe, "t", 1))));
  EXPECT_EQ(goaway_reason(peer.read_frame()), "E_AUTH");
  EXPECT_TRUE(peer.read_until_eof());
  f.expect_clean_teardown(1);
}

TEST(Handshake, SilentConnectionIsClosedAtTwoSeconds) {
  HubFixture f;
  RawPeer peer(f.hub->endpoint());
  auto start = Clock::now();
  auto reply = peer.read_frame();  // blocks until the hub gives up on us
  auto waited = Clock::now() - start;
  EXPECT_EQ(goaway_reason(reply), "E_HANDSHAKE_TIMEOUT");
  EXPECT_TRUE(peer.read_until_eof());
  EXPECT_GE(waited, 1900ms);
  EXPECT_LT(waited, 3000ms);
  f.expect_clean_teardown(1);
}

TEST(Handshake, OversizeFrameBeforeAuthenticationIsRefusedFromItsHeader) {
  HubFixture f;
  TestClient bystander_a(*f.hub);
  TestClient bystander_b(*f.hub);
  bystander_b.subscribe("still-working");
  RawPeer peer(f.hub->endpoint());
  std::string header(4, '\0');
  put_frame_header(reinterpret_cast<std::uint8_t*>(header.data()), kHandshakeMaxFrame + 1);
  ASSERT_TRUE(peer.write(header));  // no body follows: the header alone must be enough
  EXPECT_EQ(goaway_reason(peer.read_frame()), "E_FRAME_TOO_LARGE");
  EXPECT_TRUE(peer.read_until_eof());
  ASSERT_TRUE(bystander_a.send(make(Kind::event, "still-working", 0, "yes")).ok());
  EXPECT_TRUE(bystander_b.rec.wait_count(Kind::event, 1));
  bystander_a.client->close();
  bystander_b.client->close();
  ASSERT_TRUE(f.peers.wait(PeerEvent::Type::left, 2));
  f.expect_clean_teardown(3);
}

// --- Routing -------------------------------------------------------------------------------

TEST(Routing, OnlySubscribersGetAnEvent) {
  HubFixture f;
  TestClient a(*f.hub), b(*f.hub), c(*f.hub);
  b.subscribe("t");
  b.subscribe("end");
  c.subscribe("end");
  ASSERT_TRUE(a.send(make(Kind::event, "t", 0, "x")).ok());
  ASSERT_TRUE(a.send(make(Kind::event, "u", 0, "y")).ok());
  ASSERT_TRUE(a.send(make(Kind::event, "end")).ok());
  ASSERT_TRUE(b.rec.wait_count(Kind::event, 2));
  ASSERT_TRUE(c.rec.wait_count(Kind::event, 1));
  auto got_b = b.rec.of_kind(Kind::event);
  ASSERT_EQ(got_b.size(), 2u);
  EXPECT_EQ(got_b[0].topic, "t");
  EXPECT_EQ(got_b[0].payload, "x");
  EXPECT_EQ(got_b[1].topic, "end");
  auto got_c = c.rec.of_kind(Kind::event);
  ASSERT_EQ(got_c.size(), 1u);  // "end" only: c never subscribed to "t"
  EXPECT_EQ(got_c[0].topic, "end");
}

TEST(Routing, TheHubStampsTheSenderAndIgnoresClaims) {
  HubFixture f;
  TestClient a(*f.hub), b(*f.hub);
  b.subscribe("t");
  Envelope e = make(Kind::event, "t");
  e.sender = 999;
  e.flags = kFlagFromHub | kFlagRawPayload;
  ASSERT_TRUE(a.send(std::move(e)).ok());
  ASSERT_TRUE(b.rec.wait_count(Kind::event, 1));
  auto got = b.rec.of_kind(Kind::event)[0];
  EXPECT_EQ(got.sender, a.client->peer_id());
  EXPECT_EQ(got.flags, kFlagRawPayload);  // a peer cannot pose as the hub
}

TEST(Routing, PatternsMatchByPrefix) {
  HubFixture f;
  TestClient a(*f.hub), b(*f.hub);
  b.subscribe("job:*");
  b.subscribe("end");
  for (const char* t : {"job:1", "jobs", "other", "job:", "job:2:x", "end"}) {
    ASSERT_TRUE(a.send(make(Kind::event, t)).ok());
  }
  ASSERT_TRUE(b.rec.wait_count(Kind::event, 4));
  std::vector<std::string> topics;
  for (auto& r : b.rec.of_kind(Kind::event)) topics.push_back(r.topic);
  EXPECT_EQ(topics, (std::vector<std::string>{"job:1", "job:", "job:2:x", "end"}));
}

TEST(Routing, ExactAndPatternSubscriptionsDeliverOnce) {
  HubFixture f;
  TestClient a(*f.hub), b(*f.hub);
  b.subscribe("job:1");
  b.subscribe("job:*");
  b.subscribe("*");
  ASSERT_TRUE(a.send(make(Kind::event, "job:1")).ok());
  ASSERT_TRUE(a.send(make(Kind::event, "last")).ok());
  ASSERT_TRUE(b.rec.wait_count(Kind::event, 2));
  EXPECT_EQ(b.rec.of_kind(Kind::event)[0].topic, "job:1");
  EXPECT_EQ(b.rec.of_kind(Kind::event)[1].topic, "last");
}

TEST(Routing, UnsubscribeStopsDelivery) {
  HubFixture f;
  TestClient a(*f.hub), b(*f.hub);
  b.subscribe("t");
  b.subscribe("end");
  ASSERT_TRUE(a.send(make(Kind::event, "t", 0, "1")).ok());
  ASSERT_TRUE(b.rec.wait_count(Kind::event, 1));
  auto r = b.request(Kind::unsubscribe, "t");
  ASSERT_TRUE(r && r->kind == Kind::result);
  ASSERT_TRUE(a.send(make(Kind::event, "t", 0, "2")).ok());
  ASSERT_TRUE(a.send(make(Kind::event, "end")).ok());
  ASSERT_TRUE(b.rec.wait_count(Kind::event, 2));
  auto got = b.rec.of_kind(Kind::event);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].payload, "1");
  EXPECT_EQ(got[1].topic, "end");
}

TEST(Routing, EventsAreNotEchoedToTheirSender) {
  HubFixture f;
  TestClient a(*f.hub), b(*f.hub);
  a.subscribe("t");
  b.subscribe("t");
  ASSERT_TRUE(a.send(make(Kind::event, "t")).ok());
  ASSERT_TRUE(b.send(make(Kind::event, "t")).ok());
  ASSERT_TRUE(a.rec.wait_count(Kind::event, 1));
  ASSERT_TRUE(b.rec.wait_count(Kind::event, 1));
  EXPECT_EQ(a.rec.of_kind(Kind::event)[0].sender, b.client->peer_id());
  EXPECT_EQ(b.rec.of_kind(Kind::event)[0].sender, a.client->peer_id());
}

TEST(Routing, PerSenderOrderHoldsAcrossBatches) {
  HubFixture f;
  TestClient a(*f.hub), b(*f.hub);
  b.subscribe("n");
  constexpr int kTotal = 20000;
  for (int start = 0; start < kTotal; start += 500) {
    std::vector<Envelope> batch;
    for (int i = start; i < start + 500; ++i) {
      batch.push_back(make(Kind::event, "n", 0, std::to_string(i)));
    }
    ASSERT_TRUE(a.client->submit(std::move(batch)).ok());
  }
  ASSERT_TRUE(b.rec.wait_count(Kind::event, kTotal, 20000ms));
  auto got = b.rec.of_kind(Kind::event);
  for (int i = 0; i < kTotal; ++i) ASSERT_EQ(got[i].payload, std::to_string(i)) << "at " << i;
}

TEST(Routing, BadSubscriptionPatternIsRefusedWithAnError) {
  HubFixture f;
  TestClient a(*f.hub);
  auto r = a.request(Kind::subscribe, "a*b");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->kind, Kind::error);
  EXPECT_EQ(r->topic, "E_INVALID_ARGUMENT");
  EXPECT_EQ(r->flags & kFlagFromHub, kFlagFromHub);
}

TEST(Routing, ReservedKindsAreAnsweredWithProtocolError) {
  HubFixture f;
  TestClient a(*f.hub);
  auto r = a.request(Kind::stream_open, "s");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->topic, "E_PROTOCOL");
  // ...and the connection lives on.
  auto ok = a.request(Kind::subscribe, "t");
  ASSERT_TRUE(ok && ok->kind == Kind::result);
}

TEST(Routing, AnUnnamedReservedKindIsAnsweredNotDisconnected) {
  HubFixture f;
  RawPeer peer(f.hub->endpoint());
  ASSERT_EQ(peer.handshake("test-token")->kind, Kind::welcome);
  ASSERT_TRUE(peer.write(frame_bytes(make(static_cast<Kind>(29), "future", 5))));
  auto reply = peer.read_frame();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->kind, Kind::error);
  EXPECT_EQ(reply->id, 5u);
  EXPECT_EQ(reply->topic, "E_PROTOCOL");
  ASSERT_TRUE(peer.write(frame_bytes(make(Kind::ping, "", 6))));
  EXPECT_EQ(peer.read_frame()->kind, Kind::pong);
}

TEST(Routing, PeersLearnWhoJoinsAndLeaves) {
  HubFixture f;
  TestClient a(*f.hub);
  ClientOptions named;
  named.role = "worker";
  named.name = "crunch";
  auto b = std::make_unique<TestClient>(f.hub->endpoint(), f.hub->token(), true, named);
  std::uint64_t b_id = b->client->peer_id();
  ASSERT_TRUE(a.rec.wait_count(Kind::peer, 1));
  ASSERT_TRUE(b->rec.wait_count(Kind::peer, 1));
  auto told_a = a.rec.of_kind(Kind::peer)[0];
  PeerInfo info;
  ASSERT_TRUE(decode_peer_info(Slice::copy_of(told_a.payload), info).ok());
  EXPECT_EQ(info.id, b_id);
  EXPECT_EQ(info.role, "worker");
  EXPECT_EQ(info.name, "crunch");
  EXPECT_EQ(info.pid, static_cast<std::uint64_t>(::getpid()));  // from SO_PEERCRED
  EXPECT_TRUE(info.up);
  auto told_b = b->rec.of_kind(Kind::peer)[0];
  EXPECT_EQ(told_b.id, a.client->peer_id());  // b learns who was already there
  b.reset();
  ASSERT_TRUE(a.rec.wait_count(Kind::peer, 2));
  PeerInfo gone;
  ASSERT_TRUE(decode_peer_info(Slice::copy_of(a.rec.of_kind(Kind::peer)[1].payload), gone).ok());
  EXPECT_EQ(gone.id, b_id);
  EXPECT_FALSE(gone.up);
}

TEST(Routing, PingIsAnsweredWithPong) {
  HubFixture f;
  RawPeer peer(f.hub->endpoint());
  ASSERT_EQ(peer.handshake("test-token")->kind, Kind::welcome);
  ASSERT_TRUE(peer.write(frame_bytes(make(Kind::ping, "", 42))));
  auto pong = peer.read_frame();
  ASSERT_TRUE(pong.has_value());
  EXPECT_EQ(pong->kind, Kind::pong);
  EXPECT_EQ(pong->id, 42u);
}

// --- Invoke --------------------------------------------------------------------------------

// Serves `name` by answering every INVOKE through `answer`.
void serve(TestClient& server, const std::string& name,
           std::function<Envelope(const Envelope&)> answer) {
  Client* client = server.client.get();
  server.rec.set_on_envelope([client, answer](const Envelope& e) {
    if (e.kind != Kind::invoke) return;
    std::vector<Envelope> reply;
    reply.push_back(answer(e));
    (void)client->submit(std::move(reply));
  });
  auto r = server.request(Kind::register_, name);
  ASSERT_TRUE(r && r->kind == Kind::result);
}

TEST(Invoke, ResultComesBackToTheCaller) {
  HubFixture f;
  TestClient caller(*f.hub), server(*f.hub);
  serve(server, "echo", [](const Envelope& in) {
    return make(Kind::result, "", in.id, "echo:" + std::string(in.payload.view()));
  });
  ASSERT_TRUE(caller.send(make(Kind::invoke, "echo", 7, "hi")).ok());
  auto r = caller.rec.wait_reply(7);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->kind, Kind::result);
  EXPECT_EQ(r->payload, "echo:hi");
  EXPECT_EQ(r->sender, server.client->peer_id());
  auto seen = server.rec.of_kind(Kind::invoke);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].sender, caller.client->peer_id());
  EXPECT_EQ(f.hub->stats().pending_invokes, 0u);
}

TEST(Invoke, RemoteErrorComesBackUnchangedAndNotAsTheHub) {
  HubFixture f;
  TestClient caller(*f.hub), server(*f.hub);
  serve(server, "fail", [](const Envelope& in) {
    Envelope e = make(Kind::error, "RangeError", in.id, "encoded-error-value");
    e.flags = kFlagFromHub;  // a handler trying to pose as the hub
    return e;
  });
  ASSERT_TRUE(caller.send(make(Kind::invoke, "fail", 8)).ok());
  auto r = caller.rec.wait_reply(8);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->kind, Kind::error);
  EXPECT_EQ(r->topic, "RangeError");
  EXPECT_EQ(r->payload, "encoded-error-value");
  EXPECT_EQ(r->flags & kFlagFromHub, 0u);
}

TEST(Invoke, NoHandlerIsAnsweredAtOnce) {
  HubFixture f;
  TestClient caller(*f.hub);
  auto start = Clock::now();
  ASSERT_TRUE(caller.send(make(Kind::invoke, "nobody", 9)).ok());
  auto r = caller.rec.wait_reply(9);
  ASSERT_TRUE(r.has_value());
  EXPECT_LT(Clock::now() - start, 500ms);  // a reply, not a timeout
  EXPECT_EQ(r->kind, Kind::error);
  EXPECT_EQ(r->topic, "E_NO_HANDLER");
  EXPECT_EQ(r->flags & kFlagFromHub, kFlagFromHub);
}

TEST(Invoke, ASecondPeerCannotTakeARegisteredName) {
  HubFixture f;
  TestClient a(*f.hub), b(*f.hub);
  ASSERT_EQ(a.request(Kind::register_, "svc")->kind, Kind::result);
  auto r = b.request(Kind::register_, "svc");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->kind, Kind::error);
  EXPECT_EQ(r->topic, "E_ALREADY_REGISTERED");
}

TEST(Invoke, CancelReachesTheCalleeAndALateReplyIsDropped) {
  HubFixture f;
  TestClient caller(*f.hub), server(*f.hub);
  ASSERT_EQ(server.request(Kind::register_, "slow")->kind, Kind::result);
  ASSERT_TRUE(caller.send(make(Kind::invoke, "slow", 11)).ok());
  ASSERT_TRUE(server.rec.wait_count(Kind::invoke, 1));
  std::uint64_t call = server.rec.of_kind(Kind::invoke)[0].id;
  ASSERT_TRUE(caller.send(make(Kind::cancel, "", 11)).ok());
  ASSERT_TRUE(server.rec.wait_count(Kind::cancel, 1));
  EXPECT_EQ(server.rec.of_kind(Kind::cancel)[0].id, call);
  ASSERT_TRUE(server.send(make(Kind::result, "", call, "late")).ok());
  // A marker after the late reply proves the hub has processed it.
  caller.subscribe("marker");
  ASSERT_TRUE(server.send(make(Kind::event, "marker")).ok());
  ASSERT_TRUE(caller.rec.wait_count(Kind::event, 1));
  EXPECT_EQ(caller.rec.count(Kind::result), 1u);  // only the subscribe ack
  EXPECT_EQ(f.hub->stats().pending_invokes, 0u);
}

// The handler's process dies mid-call: its callers fail at once, not at a timeout.
TEST(Invoke, KilledHandlerProcessFailsItsCallersWithin100ms) {
  HubFixture f;
  TestClient caller(*f.hub);
  // The handler runs in its own program (test/core/handler_peer.cc), spawned, not forked.
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  std::string fd = std::to_string(ready[1]);
  std::string endpoint = f.hub->endpoint();
  char* args[] = {const_cast<char*>(SWITCHBOARD_HANDLER_PEER),
                  endpoint.data(),
                  const_cast<char*>("test-token"),
                  const_cast<char*>("work"),
                  fd.data(),
                  nullptr};
  pid_t child = 0;
  ASSERT_EQ(::posix_spawn(&child, SWITCHBOARD_HANDLER_PEER, nullptr, nullptr, args, environ), 0);
  ::close(ready[1]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ASSERT_EQ(c, 'r');
  ASSERT_TRUE(caller.send(make(Kind::invoke, "work", 21)).ok());
  ASSERT_TRUE(caller.send(make(Kind::invoke, "work", 22)).ok());
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ASSERT_EQ(c, 'i');
  ASSERT_TRUE(f.peers.wait(PeerEvent::Type::joined, 2));
  auto killed_at = Clock::now();
  ASSERT_EQ(::kill(child, SIGKILL), 0);
  auto r21 = caller.rec.wait_reply(21, 1000ms);
  auto r22 = caller.rec.wait_reply(22, 1000ms);
  auto elapsed = Clock::now() - killed_at;
  int status = 0;
  ::waitpid(child, &status, 0);
  ::close(ready[0]);
  ASSERT_TRUE(r21.has_value());
  ASSERT_TRUE(r22.has_value());
  EXPECT_EQ(r21->topic, "E_CONNECTION_LOST");
  EXPECT_EQ(r22->topic, "E_CONNECTION_LOST");
  EXPECT_LT(elapsed, 100ms)
      << "callers failed after "
      << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count() << " ms";
  EXPECT_EQ(caller.rec.count(Kind::error), 2u);  // exactly once each
  EXPECT_EQ(f.hub->stats().pending_invokes, 0u);
  EXPECT_EQ(f.hub->stats().handlers, 0u);
}

// --- Slow peer -----------------------------------------------------------------------------

// A subscriber that never reads, beside one that does. The publisher sends `count` events of
// `size` bytes in rounds of 100 and waits for the reader after each round. Under flow control
// (issue 11; flow_control_test.cc has the rest) the peer that stopped reading first pauses the
// publisher, so the reader waits too, until it is stalled (stall_timeout, short here): then its
// policy applies and the publisher goes on.
struct SlowPeerRun {
  std::unique_ptr<RawPeer> slow;
  std::unique_ptr<TestClient> publisher, reader;
};

SlowPeerRun run_slow_peer(HubFixture& f, int count, std::size_t size) {
  SlowPeerRun run;
  run.slow = std::make_unique<RawPeer>(f.hub->endpoint());
  EXPECT_EQ(run.slow->handshake("test-token")->kind, Kind::welcome);
  EXPECT_TRUE(run.slow->write(frame_bytes(make(Kind::subscribe, "flood", 1))));
  EXPECT_EQ(run.slow->read_frame()->kind, Kind::result);
  run.publisher = std::make_unique<TestClient>(*f.hub);
  run.reader = std::make_unique<TestClient>(*f.hub);
  run.reader->subscribe("flood");
  std::string payload(size, 'p');
  for (int i = 0; i < count; i += 100) {
    std::vector<Envelope> batch;
    int n = std::min(100, count - i);
    for (int j = 0; j < n; ++j) batch.push_back(make(Kind::event, "flood", 0, payload));
    EXPECT_TRUE(run.publisher->client->submit(std::move(batch)).ok());
    EXPECT_TRUE(run.reader->rec.wait_count(Kind::event, static_cast<std::size_t>(i + n)));
  }
  return run;
}

TEST(SlowPeer, AStalledPeerUnderTheDropPolicyLosesCountedEventsWhileOthersGetEverything) {
  // The flood is far beyond the mark plus the kernel's socket buffer.
  HubOptions opt;
  opt.high_water_mark = 4u << 20;
  opt.stall_timeout = std::chrono::milliseconds(200);
  opt.overflow = OverflowPolicy::drop;
  HubFixture f(opt);
  constexpr int kCount = 20000;  // 20 MB
  auto run = run_slow_peer(f, kCount, 1000);
  HubStats s = f.hub->stats();
  EXPECT_GT(s.events_dropped, 0u);
  EXPECT_EQ(s.events_routed + s.events_dropped, 2u * kCount);  // every delivery accounted for
  EXPECT_EQ(s.peers, 3u);                                      // the slow peer is still there
  EXPECT_EQ(s.stalls, 1u);
  auto got = run.reader->rec.of_kind(Kind::event);
  EXPECT_EQ(got.size(), static_cast<std::size_t>(kCount));
}

TEST(SlowPeer, TheDisconnectPolicyEvictsOnlyTheStalledPeer) {
  HubOptions opt;
  opt.high_water_mark = 4u << 20;
  opt.stall_timeout = std::chrono::milliseconds(200);
  opt.overflow = OverflowPolicy::disconnect;
  HubFixture f(opt);
  auto run = run_slow_peer(f, 10000, 1000);  // 10 MB
  ASSERT_TRUE(f.peers.wait(PeerEvent::Type::left, 1));
  auto left = f.peers.of_type(PeerEvent::Type::left);
  EXPECT_EQ(left[0].reason.code(), Errc::slow_consumer);
  EXPECT_EQ(f.hub->stats().peers, 2u);
  EXPECT_EQ(f.hub->stats().events_dropped, 0u);
}

TEST(SlowPeer, ABurstUnderTheMarkIsNeverDropped) {
  HubOptions opt;
  opt.high_water_mark = 4u << 20;
  HubFixture f(opt);
  auto run = run_slow_peer(f, 3000, 1000);  // 3 MB, under the 4 MiB mark
  EXPECT_EQ(f.hub->stats().events_dropped, 0u);
  // The slow peer really has all of it waiting: read it now.
  std::size_t events = 0;
  while (events < 3000) {
    auto e = run.slow->read_frame();
    ASSERT_TRUE(e.has_value());
    if (e->kind == Kind::event) ++events;
  }
  EXPECT_EQ(events, 3000u);
}

TEST(SlowPeer, AnEventLargerThanTheMarkReachesAPeerWithNothingQueued) {
  // Messages may be up to max_frame (64 MiB); the 1 MiB mark must not make a 3 MiB event
  // undeliverable to a peer that keeps up.
  HubOptions opt;
  opt.high_water_mark = 1u << 20;
  HubFixture f(opt);
  TestClient publisher(*f.hub);
  TestClient reader(*f.hub);
  reader.subscribe("big");
  const std::string payload(3u << 20, 'b');
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(publisher.send(make(Kind::event, "big", 0, payload)).ok());
    ASSERT_TRUE(reader.rec.wait_count(Kind::event, static_cast<std::size_t>(i + 1)));
  }
  EXPECT_EQ(reader.rec.of_kind(Kind::event).back().payload, payload);
  EXPECT_EQ(f.hub->stats().events_dropped, 0u);
}

TEST(SlowPeer, ASecondLargeEventBehindAnUnreadOneWaitsUntilThePeerStallsThenIsDropped) {
  // The first 3 MiB event is taken although it is over the mark (nothing was queued); the peer
  // never reads, so most of it is still queued when the second arrives: that one waits (the
  // publisher is paused) until the peer is stalled, and is then dropped.
  HubOptions opt;
  opt.high_water_mark = 1u << 20;
  opt.stall_timeout = std::chrono::milliseconds(200);
  HubFixture f(opt);
  RawPeer stalled(f.hub->endpoint());
  ASSERT_EQ(stalled.handshake(f.hub->token())->kind, Kind::welcome);
  ASSERT_TRUE(stalled.write(frame_bytes(make(Kind::subscribe, "big", 1))));
  ASSERT_EQ(stalled.read_frame()->kind, Kind::result);
  TestClient publisher(*f.hub);
  const std::string payload(3u << 20, 'b');
  ASSERT_TRUE(publisher.send(make(Kind::event, "big", 0, payload)).ok());
  ASSERT_TRUE(publisher.send(make(Kind::event, "big", 0, payload)).ok());
  // The hub handles one publisher's frames in order: once a request sent after both is
  // answered, both events have been routed or dropped. Until the stall it is not answered.
  auto held = Clock::now();
  ASSERT_TRUE(publisher.request(Kind::subscribe, "fence").has_value());
  EXPECT_GE(Clock::now() - held, opt.stall_timeout / 2) << "the second event did not wait";
  HubStats s = f.hub->stats();
  EXPECT_EQ(s.events_routed, 1u);
  EXPECT_EQ(s.events_dropped, 1u);
  EXPECT_EQ(s.pauses, 1u);
  EXPECT_EQ(s.stalls, 1u);
  std::uint64_t queued = 0;
  for (const HubPeerStats& p : f.hub->peer_stats()) queued = std::max(queued, p.queued_bytes);
  EXPECT_LE(queued, opt.high_water_mark + payload.size() + 64);
}

// --- Load and batching ---------------------------------------------------------------------

TEST(Load, HundredConcurrentClientsAllReceiveAndInvoke) {
  HubFixture f;
  constexpr int kClients = 100;
  TestClient server(*f.hub);
  serve(server, "id", [](const Envelope& in) { return make(Kind::result, "", in.id, "ok"); });
  std::vector<std::unique_ptr<TestClient>> clients;
  for (int i = 0; i < kClients; ++i) {
    ClientOptions opt;
    opt.name = "load-" + std::to_string(i);
    clients.push_back(std::make_unique<TestClient>(f.hub->endpoint(), f.hub->token(), true, opt));
    clients.back()->subscribe("broadcast");
  }
  EXPECT_EQ(f.hub->stats().peers, static_cast<std::uint64_t>(kClients + 1));
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(server.send(make(Kind::event, "broadcast", 0, std::to_string(i))).ok());
  }
  for (int i = 0; i < kClients; ++i) {
    ASSERT_TRUE(clients[i]->send(make(Kind::invoke, "id", 1)).ok());
  }
  for (int i = 0; i < kClients; ++i) {
    ASSERT_TRUE(clients[i]->rec.wait_count(Kind::event, 50)) << "client " << i;
    auto r = clients[i]->rec.wait_reply(1);
    ASSERT_TRUE(r && r->kind == Kind::result && r->payload == "ok") << "client " << i;
  }
  for (auto& c : clients) c->client->close();
  server.client->close();
  ASSERT_TRUE(f.peers.wait(PeerEvent::Type::left, kClients + 1, 10000ms));
  f.expect_clean_teardown(101);
}

TEST(Batching, ManyFramesLeaveInEachWritevUnderLoad) {
  HubFixture f;
  TestClient a(*f.hub), b(*f.hub);
  b.subscribe("burst");
  HubStats before = f.hub->stats();
  constexpr int kEvents = 20000;
  std::vector<Envelope> batch;
  for (int i = 0; i < kEvents; ++i) batch.push_back(make(Kind::event, "burst", 0, "0123456789"));
  ASSERT_TRUE(a.client->submit(std::move(batch)).ok());
  ASSERT_TRUE(b.rec.wait_count(Kind::event, kEvents, 20000ms));
  HubStats after = f.hub->stats();
  PortStats sender = a.client->stats();
  double hub_ratio = double(after.frames_out - before.frames_out) /
                     double(after.writev_calls - before.writev_calls);
  double client_ratio = double(sender.frames_out) / double(sender.writev_calls);
  RecordProperty("hub_frames_per_writev", std::to_string(hub_ratio));
  RecordProperty("client_frames_per_writev", std::to_string(client_ratio));
  std::printf("frames per writev: hub %.1f, sending client %.1f\n", hub_ratio, client_ratio);
  EXPECT_GT(hub_ratio, 10.0);
  EXPECT_GT(client_ratio, 10.0);
  // ...and the receiver got them in few wake-ups, not one per frame.
  EXPECT_LT(b.rec.batches(), static_cast<std::size_t>(kEvents / 10));
}

// --- Local peer ------------------------------------------------------------------------------

TEST(LocalPeer, TheHubsOwnProcessJoinsWithoutASocket) {
  HubFixture f;
  Recorder local_rec;
  auto local = f.hub->connect_local({"main", "main", 0, nullptr}, local_rec.callbacks());
  ASSERT_NE(local, nullptr);
  EXPECT_NE(local->peer_id(), 0u);
  TestClient remote(*f.hub);
  serve(remote, "remote:add", [](const Envelope& in) {
    return make(Kind::result, "", in.id, std::string(in.payload.view()) + "+1");
  });
  std::vector<Envelope> batch;
  batch.push_back(make(Kind::subscribe, "from-remote", 1));
  batch.push_back(make(Kind::register_, "local:ping", 2));
  batch.push_back(make(Kind::invoke, "remote:add", 3, "41"));
  ASSERT_TRUE(local->submit(std::move(batch)).ok());
  auto r = local_rec.wait_reply(3);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->payload, "41+1");
  ASSERT_TRUE(remote.send(make(Kind::event, "from-remote", 0, "hello")).ok());
  ASSERT_TRUE(local_rec.wait_count(Kind::event, 1));
  EXPECT_EQ(local_rec.of_kind(Kind::event)[0].sender, remote.client->peer_id());
  EXPECT_EQ(f.hub->stats().peers, 2u);
  local->close();
  remote.client->close();
  ASSERT_TRUE(f.peers.wait(PeerEvent::Type::left, 2));
  f.expect_clean_teardown(2);
}

TEST(LocalPeer, AnOversizeInvokeFailsAtOnceInsteadOfReachingSocketPeers) {
  HubOptions opt;
  opt.max_frame = 1024;
  HubFixture f(opt);
  TestClient remote(*f.hub);
  ASSERT_EQ(remote.request(Kind::register_, "svc")->kind, Kind::result);
  Recorder local_rec;
  auto local = f.hub->connect_local({"main", "main", 0, nullptr}, local_rec.callbacks());
  std::vector<Envelope> batch;
  batch.push_back(make(Kind::invoke, "svc", 9, std::string(4096, 'q')));
  ASSERT_TRUE(local->submit(std::move(batch)).ok());
  auto r = local_rec.wait_reply(9);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->topic, "E_FRAME_TOO_LARGE");
  EXPECT_EQ(remote.rec.count(Kind::invoke), 0u);
  local->close();
}

TEST(LocalPeer, WithAcceptDeferredAKnockingClientFindsTheOwnerSetUp) {
  // A restarted hub: a client is already knocking, with an event and an invoke queued for the
  // hub's own process. Accepting only once the owner has subscribed and registered, the hub gives
  // the client's queue nobody to miss.
  TempDir dir;
  HubOptions opt;
  opt.endpoint = dir.file("hub.sock");
  opt.token = "restart-token";
  opt.accept_at_start = false;
  ClientOptions copt;
  copt.backoff_initial = std::chrono::milliseconds(5);
  copt.backoff_max = std::chrono::milliseconds(20);
  TestClient knocking(opt.endpoint, opt.token, false, copt);
  ASSERT_TRUE(knocking.send(make(Kind::event, "early", 0, "queued")).ok());
  ASSERT_TRUE(knocking.send(make(Kind::invoke, "owner:greet", 5, "w")).ok());
  ASSERT_TRUE(knocking.rec.wait_state(PortState::reconnecting)) << "it found no hub at first";

  PeerLog peers;  // declared before the hub that reports into it
  opt.on_peer = peers.hook();
  Hub hub(opt);
  ASSERT_TRUE(hub.start().ok());
  Recorder owner;
  auto local = hub.connect_local({"main", "main", 0, nullptr}, owner.callbacks());
  ASSERT_NE(local, nullptr);
  std::vector<Envelope> setup;
  setup.push_back(make(Kind::subscribe, "early", 1));
  setup.push_back(make(Kind::register_, "owner:greet", 2));
  ASSERT_TRUE(local->submit(std::move(setup)).ok());
  EXPECT_EQ(hub.stats().peers, 1u) << "a socket peer was admitted before accept_peers()";
  EXPECT_EQ(hub.stats().handshaking, 0u) << "a connection was accepted before accept_peers()";
  hub.accept_peers();

  ASSERT_TRUE(owner.wait_count(Kind::event, 1)) << "the queued event was lost";
  EXPECT_EQ(owner.of_kind(Kind::event)[0].payload, "queued");
  ASSERT_TRUE(owner.wait_count(Kind::invoke, 1)) << "the queued invoke did not reach the handler";
  Received call = owner.of_kind(Kind::invoke)[0];
  ASSERT_TRUE(local->submit(one(make(Kind::result, "", call.id, "hello " + call.payload))).ok());
  auto reply = knocking.rec.wait_reply(5);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->kind, Kind::result);
  EXPECT_EQ(reply->payload, "hello w");
  hub.accept_peers();  // idempotent
  knocking.client->close();
  local->close();
  ASSERT_TRUE(peers.wait(PeerEvent::Type::left, 2));
  hub.close();
}

// --- The local peer routes on its own thread (Hub::Impl::route_now) --------------------------

TEST(LocalPeer, ABatchIsRoutedAndWrittenOnTheSubmittingThread) {
  HubFixture f;
  TestClient sub(*f.hub);
  sub.subscribe("now");
  Recorder local_rec;
  auto local = f.hub->connect_local({"main", "main", 0, nullptr}, local_rec.callbacks());
  const std::uint64_t before = f.hub->stats().direct_writes;
  std::vector<Envelope> batch;
  for (int i = 0; i < 10; ++i) batch.push_back(make(Kind::event, "now", 0, std::to_string(i)));
  ASSERT_TRUE(local->submit(std::move(batch)).ok());
  // Written by submit() itself: one writev for the batch, before submit() returned.
  EXPECT_EQ(f.hub->stats().direct_writes, before + 1);
  ASSERT_TRUE(sub.rec.wait_count(Kind::event, 10));
  auto events = sub.rec.of_kind(Kind::event);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(events[i].payload, std::to_string(i));
  local->close();
}

TEST(LocalPeer, ABatchNeverOvertakesOneThatWaitsForTheIoThread) {
  HubFixture f;
  TestClient sub(*f.hub);
  sub.subscribe("order");
  TestClient poker(*f.hub);
  Recorder local_rec;
  auto local = f.hub->connect_local({"main", "main", 0, nullptr}, local_rec.callbacks());
  Port* port = local.get();
  ASSERT_TRUE(port->submit(one(make(Kind::subscribe, "poke", 1))).ok());
  ASSERT_TRUE(local_rec.wait_reply(1).has_value());
  // On the hub's I/O thread (a callback of the local port): submit "first", which must take the
  // posted way, then hold the I/O thread so that it cannot drain it yet.
  auto submitted = std::make_shared<std::promise<void>>();
  auto go = std::make_shared<std::promise<void>>();
  std::shared_future<void> released = go->get_future().share();
  local_rec.set_on_envelope([port, submitted, released](const Envelope& e) {
    if (e.kind != Kind::event) return;
    (void)port->submit(one(make(Kind::event, "order", 0, "first")));
    submitted->set_value();
    released.wait();
  });
  ASSERT_TRUE(poker.send(make(Kind::event, "poke")).ok());
  ASSERT_EQ(submitted->get_future().wait_for(5s), std::future_status::ready);
  // "second" comes from another thread while "first" waits: it must not be routed before it.
  ASSERT_TRUE(port->submit(one(make(Kind::event, "order", 0, "second"))).ok());
  go->set_value();
  ASSERT_TRUE(sub.rec.wait_count(Kind::event, 2));
  auto events = sub.rec.of_kind(Kind::event);
  EXPECT_EQ(events[0].payload, "first");
  EXPECT_EQ(events[1].payload, "second");
  local->close();
}

TEST(LocalPeer, SubmitsFromSeveralThreadsAtOnceArriveWholeAndInEachThreadsOrder) {
  HubOptions opt;
  opt.ping_interval = std::chrono::milliseconds(1);  // the I/O thread writes PINGs in between
  opt.ping_misses = 1000;
  HubFixture f(opt);
  TestClient sub(*f.hub);
  sub.subscribe("many");
  TestClient remote(*f.hub);  // a socket publisher routed by the I/O thread meanwhile
  Recorder local_rec;
  auto local = f.hub->connect_local({"main", "main", 0, nullptr}, local_rec.callbacks());
  constexpr int kThreads = 4;  // thread kThreads publishes through the socket client
  const int per_thread = kSanitized ? 500 : 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t <= kThreads; ++t) {
    threads.emplace_back([&, t] {
      Port* port = t == kThreads ? static_cast<Port*>(remote.client.get()) : local.get();
      for (int i = 0; i < per_thread;) {
        std::vector<Envelope> batch;
        for (int k = 0; k < 1 + i % 3 && i < per_thread; ++k, ++i) {
          batch.push_back(
              make(Kind::event, "many", 0, std::to_string(t) + ":" + std::to_string(i)));
        }
        EXPECT_TRUE(port->submit(std::move(batch)).ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  const std::size_t total = static_cast<std::size_t>((kThreads + 1) * per_thread);
  ASSERT_TRUE(sub.rec.wait_count(Kind::event, total, 20s));
  std::vector<int> next(kThreads + 1, 0);
  for (const Received& r : sub.rec.of_kind(Kind::event)) {
    auto colon = r.payload.find(':');
    auto t = static_cast<std::size_t>(std::stoi(r.payload.substr(0, colon)));
    ASSERT_EQ(std::stoi(r.payload.substr(colon + 1)), next[t]) << "source " << t;
    ++next[t];
  }
  EXPECT_GT(f.hub->stats().direct_writes, 0u);
  local->close();
}

TEST(LocalPeer, AStalledPeerEvictedWhileTheLocalPortWaitsForItIsRemovedAndTheHubGoesOn) {
  HubOptions opt;
  opt.high_water_mark = 1u << 20;
  opt.stall_timeout = std::chrono::milliseconds(200);
  opt.overflow = OverflowPolicy::disconnect;
  HubFixture f(opt);
  RawPeer slow(f.hub->endpoint());  // subscribes, then never reads
  ASSERT_TRUE(slow.handshake("test-token").has_value());
  ASSERT_TRUE(slow.write(frame_bytes(make(Kind::subscribe, "flood", 1))));
  auto ack = slow.read_frame();  // the subscription is in force once it is acknowledged
  ASSERT_TRUE(ack && ack->kind == Kind::result);
  Recorder local_rec;
  auto local = f.hub->connect_local({"main", "main", 0, nullptr}, local_rec.callbacks());
  // 400 x 16 KiB = 6.4 MiB, far over the 1 MiB mark: routed on this thread until the peer's
  // queue is full, then parked (the local port waits); the stall evicts the peer on the I/O
  // thread and the local port goes on.
  constexpr int kEvents = 400;
  for (int i = 0; i < kEvents; ++i) {
    ASSERT_TRUE(local->submit(one(make(Kind::event, "flood", 0, std::string(16384, 'f')))).ok());
  }
  ASSERT_TRUE(f.peers.wait(PeerEvent::Type::left, 1));
  auto left = f.peers.of_type(PeerEvent::Type::left);
  EXPECT_EQ(left[0].reason.code(), Errc::slow_consumer);
  EXPECT_GT(f.hub->stats().direct_writes, 0u);
  // The hub goes on: the local port still gets its acknowledgements.
  ASSERT_TRUE(local->submit(one(make(Kind::subscribe, "after", 77))).ok());
  auto r = local_rec.wait_reply(77);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->kind, Kind::result);
  EXPECT_EQ(f.hub->stats().peers, 1u);
  local->close();
}

TEST(LocalPeer, IsToldWhenTheHubCloses) {
  HubFixture f;
  Recorder local_rec;
  auto local = f.hub->connect_local({"main", "main", 0, nullptr}, local_rec.callbacks());
  f.hub->close();
  ASSERT_TRUE(local_rec.wait_state(PortState::closed));
  EXPECT_EQ(local_rec.last_status().code(), Errc::shutting_down);
  EXPECT_EQ(local->submit({}).code(), Errc::closed);
}

}  // namespace
}  // namespace switchboard::testing
