// Hostile bytes at the socket of a real hub (issue 5, "Bad input"). Each test runs its attack
// over and over, one hostile connection at a time, while a well-behaved bystander does PING
// round trips; the bystander's rate under attack is compared with its rate beside a thread that
// only burns CPU, in interleaved windows of the same length (attack_support.h says why).
//
// The promise checked every time: the hub ends each hostile connection (never hangs on it, never
// crashes), every other peer goes on, and nothing the attacker did stays behind in the hub.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "attack_support.h"
#include "test_support.h"

namespace switchboard::testing {
namespace {

using Clock = std::chrono::steady_clock;

// The bystander keeps at least this share of its rate under attack (issue 5). Both sides of the
// ratio are measured in the same test, in alternating windows, so it compares like with like.
constexpr double kMinRatio = 0.9;

struct Attack {
  HubFixture& f;
  std::atomic<std::size_t> connections{0};

  // One hostile connection: optionally authenticated, then `bytes`, then our side of the stream
  // ends. The hub must end the connection.
  void hostile(std::string_view bytes, bool authenticate) {
    RawPeer c(f.hub->endpoint());
    ASSERT_TRUE(c.connected());
    connections.fetch_add(1);
    if (authenticate) {
      auto w = c.handshake(f.hub->token());
      ASSERT_TRUE(w && w->kind == Kind::welcome);
    }
    write_best_effort(c.fd(), bytes);
    ::shutdown(c.fd(), SHUT_WR);
    EXPECT_TRUE(wait_closed_by_hub(c.fd())) << "the hub did not end a hostile connection";
  }

  // Waits for every hostile connection to be gone and checks nothing of them stayed.
  void expect_nothing_left() {
    EXPECT_TRUE(f.peers.wait_departed(connections.load(), std::chrono::milliseconds(10000)));
    HubStats s = f.hub->stats();
    EXPECT_EQ(s.peers, 1u) << "only the bystander is left";
    EXPECT_EQ(s.handshaking, 0u);
    EXPECT_EQ(s.subscriptions, 0u);
    EXPECT_EQ(s.handlers, 0u);
    EXPECT_EQ(s.pending_invokes, 0u);
  }
};

// Runs `step` under measurement, then once more over every case (so each case has run at least
// once whatever the windows allowed), and checks the bystander and the hub.
void run_attack(const char* name, HubFixture& f, Attack& attack, Bystander& bystander,
                const std::function<void(std::size_t)>& step, std::size_t cases) {
  std::atomic<std::size_t> next{0};
  RateRatio r = measure_under_attack(bystander, [&] { step(next.fetch_add(1) % cases); });
  for (std::size_t i = 0; i < cases; ++i) step(i);
  std::printf(
      "[ figure ] %s: steady bystander %llu round trips quiet, %llu beside a CPU burner, "
      "%llu under attack: median ratio %.2f\n",
      name, static_cast<unsigned long long>(r.quiet[1]),
      static_cast<unsigned long long>(r.burner[1]), static_cast<unsigned long long>(r.attacked[1]),
      r.ratio());
  std::printf(
      "[ figure ] %s: saturating bystander %llu quiet, %llu burner, %llu attack: ratio "
      "%.2f against the burner, %.2f against quiet; %zu hostile connections\n",
      name, static_cast<unsigned long long>(r.quiet[0]),
      static_cast<unsigned long long>(r.burner[0]), static_cast<unsigned long long>(r.attacked[0]),
      r.saturated_ratio(), r.saturated_raw_ratio(), attack.connections.load());
  EXPECT_GT(r.burner[1], 0u);
  if (kSanitized) {
    std::printf(
        "[ note ] %s: sanitizer build: the ratio is printed, not asserted (instrumented "
        "code is too slow for the bystander's fixed load)\n",
        name);
  } else {
    EXPECT_GE(r.ratio(), kMinRatio) << name << ": the bystander slowed down under attack";
  }
  EXPECT_EQ(bystander.failures(), 0u);
  bystander.stop();
  attack.expect_nothing_left();
  (void)f;
}

std::string length_claim(std::uint32_t n) {
  std::string s;
  put_u32(s, n);
  return s;
}

TEST(BadInput, GarbageBytesCloseOnlyThatConnection) {
  HubFixture f;
  Bystander bystander(*f.hub);
  Attack attack{f};
  // Deterministic garbage: the same bytes on every run, of lengths from 1 byte to 8 KiB, sent
  // before and after authenticating.
  std::vector<std::string> inputs;
  std::mt19937 rng(5);
  for (std::size_t len : {1u, 3u, 4u, 5u, 17u, 100u, 1000u, 4096u, 8192u}) {
    std::string s(len, '\0');
    for (char& c : s) c = static_cast<char>(rng());
    inputs.push_back(s);
  }
  run_attack(
      "garbage", f, attack, bystander,
      [&](std::size_t i) { attack.hostile(inputs[i / 2], i % 2 == 1); }, inputs.size() * 2);
}

TEST(BadInput, HugeLengthClaimsAreRefusedFromTheHeaderAlone) {
  HubFixture f;
  Bystander bystander(*f.hub);
  Attack attack{f};
  // Before the handshake the limit is 4 KiB, after it 64 MiB.
  struct Claim {
    std::uint32_t length;
    bool authenticate;
  };
  std::vector<Claim> claims = {{kHandshakeMaxFrame + 1, false},
                               {0x80000000u, false},
                               {0xffffffffu, false},
                               {static_cast<std::uint32_t>(kDefaultMaxFrame + 1), true},
                               {0x80000000u, true},
                               {0xffffffffu, true}};
  // Each claim, checked closely once: no body memory is reserved while the header arrives, and
  // the answer is GOAWAY E_FRAME_TOO_LARGE as soon as its fourth byte is in.
  for (const Claim& c : claims) {
    RawPeer p(f.hub->endpoint());
    attack.connections.fetch_add(1);
    if (c.authenticate) {
      ASSERT_EQ(p.handshake(f.hub->token())->kind, Kind::welcome);
    }
    std::string header = length_claim(c.length);
    ASSERT_TRUE(p.write(header.substr(0, 3)));
    // Once the hub holds those three bytes, it holds them and nothing more.
    auto deadline = Clock::now() + std::chrono::seconds(5);
    std::uint64_t buffered = 0, reserved = 0;
    while (buffered != 3 && Clock::now() < deadline) {
      buffered = reserved = 0;
      for (const HubPeerStats& s : f.hub->peer_stats()) {
        buffered += s.receive_buffered;
        reserved += s.receive_reserved;
      }
    }
    EXPECT_EQ(buffered, 3u);
    EXPECT_EQ(reserved, 0u);
    ASSERT_TRUE(p.write(header.substr(3) + "body bytes that never get read"));
    auto reply = p.read_frame();
    ASSERT_TRUE(reply.has_value()) << c.length;
    EXPECT_EQ(reply->kind, Kind::goaway);
    EXPECT_EQ(reply->topic, "E_FRAME_TOO_LARGE");
    EXPECT_NE(decode_message(reply->payload).find(std::to_string(c.length)), std::string::npos);
    EXPECT_TRUE(wait_closed_by_hub(p.fd()));
    for (const HubPeerStats& s : f.hub->peer_stats()) EXPECT_EQ(s.receive_reserved, 0u);
  }
  run_attack(
      "length claims", f, attack, bystander,
      [&](std::size_t i) {
        attack.hostile(length_claim(claims[i].length) + std::string(64, 'x'),
                       claims[i].authenticate);
      },
      claims.size());
}

TEST(BadInput, EveryFrameKindTruncatedAtEveryOffsetIsClosed) {
  HubFixture f;
  Bystander bystander(*f.hub);
  Attack attack{f};
  std::vector<std::pair<std::string, bool>> inputs;  // bytes, authenticate first
  for (const RawFrame& frame : every_frame_kind(f.hub->token())) {
    bool auth = frame.kind != Kind::hello;
    for (std::size_t cut = 1; cut < frame.bytes.size(); ++cut) {
      inputs.emplace_back(frame.bytes.substr(0, cut), auth);
    }
  }
  run_attack(
      "truncation", f, attack, bystander,
      [&](std::size_t i) { attack.hostile(inputs[i].first, inputs[i].second); }, inputs.size());
  // Each truncation ended inside a frame, and the hub said so.
  std::size_t inside = 0;
  for (const auto& e : f.peers.of_type(PeerEvent::Type::left)) {
    inside += e.reason.message().find("inside a frame") != std::string::npos ? 1 : 0;
  }
  for (const auto& e : f.peers.of_type(PeerEvent::Type::rejected)) {
    inside += e.reason.message().find("inside a frame") != std::string::npos ? 1 : 0;
  }
  EXPECT_GE(inside, inputs.size());
}

TEST(BadInput, MutantsOfEveryFrameKindNeverHurtTheHub) {
  HubFixture f;
  Bystander bystander(*f.hub);
  Attack attack{f};
  std::vector<std::pair<std::string, bool>> inputs;
  for (const RawFrame& frame : every_frame_kind(f.hub->token())) {
    bool auth = frame.kind != Kind::hello;
    // Every length field: off by 1 to 3 either way, and set to 0, 1 and 2^32-1.
    for (std::size_t at : frame.length_fields) {
      std::uint32_t v = get_u32(frame.bytes, at);
      std::vector<std::uint32_t> values = {0u, 1u, 0xffffffffu};
      for (std::uint32_t d = 1; d <= 3; ++d) {
        values.push_back(v + d);
        values.push_back(v - d);  // wraps for small fields: another huge claim
      }
      for (std::uint32_t nv : values) {
        std::string m = frame.bytes;
        set_u32(m, at, nv);
        inputs.emplace_back(m, auth);
      }
    }
    // Every byte flipped, one at a time.
    for (std::size_t i = 0; i < frame.bytes.size(); ++i) {
      std::string m = frame.bytes;
      m[i] = static_cast<char>(~m[i]);
      inputs.emplace_back(m, auth);
    }
  }
  run_attack(
      "mutants", f, attack, bystander,
      [&](std::size_t i) { attack.hostile(inputs[i].first, inputs[i].second); }, inputs.size());
}

TEST(BadInput, DeepNestingCountClaimsAndExtTypesAreRefused) {
  HubFixture f;
  Bystander bystander(*f.hub);
  Attack attack{f};
  auto body_frame = [](std::string body) {
    std::string s = length_claim(static_cast<std::uint32_t>(body.size()));
    return s + body;
  };
  struct Input {
    std::string bytes;
    bool authenticate;
    const char* what;
  };
  std::vector<Input> inputs;
  // An envelope nested 100,000 arrays deep, and a HELLO as deep as the 4 KiB pre-handshake frame
  // allows (its payload map nested inside arrays).
  inputs.push_back({body_frame(std::string(100000, '\x91') + '\xc0'), true, "nested 100000"});
  {
    std::string deep = std::string(4000, '\x91') + '\xc0';
    inputs.push_back({raw_frame(Kind::hello, "", 0, deep).bytes, false, "deep HELLO payload"});
    inputs.push_back({body_frame(std::string(4000, '\x91') + '\xc0'), false, "deep HELLO"});
  }
  // Count claims larger than the frame: an envelope array of 2^32-1, a topic str32 of 1e9
  // bytes, a payload bin32 of 2^32-1, and a HELLO map of 2^32-1 keys.
  {
    RawFrame e = raw_frame(Kind::event, "t", 0, "x");
    std::string a = e.bytes, t = e.bytes, b = e.bytes;
    set_u32(a, e.length_fields[1], 0xffffffffu);
    set_u32(t, e.length_fields[2], 1000000000u);
    set_u32(b, e.length_fields[3], 0xffffffffu);
    inputs.push_back({a, true, "array claim"});
    inputs.push_back({t, true, "str claim"});
    inputs.push_back({b, true, "bin claim"});
    inputs.push_back(
        {raw_frame(Kind::hello, "", 0, "\xdf\xff\xff\xff\xff\xa1k").bytes, false, "map claim"});
    inputs.push_back({raw_frame(Kind::hello, "", 0, "\xdd\xff\xff\xff\xff\xc0").bytes, false,
                      "array claim in HELLO"});
  }
  // Unknown ext types where the envelope has a topic or a payload, and inside a HELLO.
  {
    // [1, EVENT, 0, <fixext1 type 127>, 0, 0, bin8 of 0 bytes]
    std::string topic_ext("\x97\x01\x05\x00\xd4\x7f\x00\x00\x00\xc4\x00", 11);
    inputs.push_back({body_frame(topic_ext), true, "ext topic"});
    // [1, EVENT, 0, "t", 0, 0, <ext8 type 99 of 2 bytes>]
    std::string payload_ext("\x97\x01\x05\x00\xa1t\x00\x00\xc7\x02\x63\x01\x02", 13);
    inputs.push_back({body_frame(payload_ext), true, "ext payload"});
    // HELLO whose token is <fixext1 type 99>
    std::string hello_ext("\x81\xa5token\xd4\x63\x00", 10);
    inputs.push_back({raw_frame(Kind::hello, "", 0, hello_ext).bytes, false, "ext in HELLO"});
  }
  // Every input, checked closely once: GOAWAY with E_PROTOCOL (or E_FRAME_TOO_LARGE for the deep
  // HELLO that does not fit the pre-handshake frame).
  for (const Input& in : inputs) {
    RawPeer p(f.hub->endpoint());
    attack.connections.fetch_add(1);
    if (in.authenticate) {
      ASSERT_EQ(p.handshake(f.hub->token())->kind, Kind::welcome);
    }
    write_best_effort(p.fd(), in.bytes);
    auto reply = p.read_frame();
    ASSERT_TRUE(reply.has_value()) << in.what;
    EXPECT_EQ(reply->kind, Kind::goaway) << in.what;
    EXPECT_TRUE(reply->topic == "E_PROTOCOL" || reply->topic == "E_FRAME_TOO_LARGE" ||
                reply->topic == "E_AUTH")
        << in.what << ": " << reply->topic;
    EXPECT_TRUE(wait_closed_by_hub(p.fd())) << in.what;
  }
  run_attack(
      "nesting, claims, ext", f, attack, bystander,
      [&](std::size_t i) { attack.hostile(inputs[i].bytes, inputs[i].authenticate); },
      inputs.size());
}

TEST(BadInput, AnythingButHelloBeforeAuthenticationIsRefused) {
  HubFixture f;
  Bystander bystander(*f.hub);
  Attack attack{f};
  std::vector<RawFrame> frames = every_frame_kind(f.hub->token());
  frames.erase(frames.begin());  // HELLO
  for (const RawFrame& frame : frames) {
    RawPeer p(f.hub->endpoint());
    attack.connections.fetch_add(1);
    ASSERT_TRUE(p.write(frame.bytes));
    auto reply = p.read_frame();
    ASSERT_TRUE(reply.has_value()) << kind_name(frame.kind);
    EXPECT_EQ(reply->kind, Kind::goaway);
    EXPECT_EQ(reply->topic, "E_AUTH") << kind_name(frame.kind);
    EXPECT_TRUE(wait_closed_by_hub(p.fd()));
  }
  run_attack(
      "not HELLO first", f, attack, bystander,
      [&](std::size_t i) { attack.hostile(frames[i].bytes, false); }, frames.size());
  EXPECT_GE(f.peers.of_type(PeerEvent::Type::rejected).size(), frames.size());
  EXPECT_EQ(f.peers.of_type(PeerEvent::Type::joined).size(), 1u) << "only the bystander joined";
}

TEST(BadInput, AHandshakeAtOneBytePerSecondIsClosedAtTwoSeconds) {
  HubFixture f;
  Bystander bystander(*f.hub);
  RawPeer slow(f.hub->endpoint());
  std::string hello = hello_frame(f.hub->token());
  auto start = Clock::now();
  std::atomic<bool> closed{false};
  std::thread dribble([&] {
    for (char c : hello) {
      if (closed.load() || ::send(slow.fd(), &c, 1, MSG_NOSIGNAL) != 1) return;
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
  });
  auto reply = slow.read_frame();
  auto elapsed = Clock::now() - start;
  closed.store(true);
  dribble.join();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->kind, Kind::goaway);
  EXPECT_EQ(reply->topic, "E_HANDSHAKE_TIMEOUT");
  // The deadline counts from the connect, not from the last byte. Margins: the timer cannot fire
  // early, and 1.5 s of slack covers a loaded CI machine.
  EXPECT_GE(elapsed, std::chrono::milliseconds(1990));
  EXPECT_LT(elapsed, std::chrono::milliseconds(3500));
  EXPECT_GE(bystander.count(Bystander::kIdle), 1u);
  EXPECT_EQ(bystander.failures(), 0u);
  bystander.stop();
  ASSERT_TRUE(f.peers.wait(PeerEvent::Type::rejected, 1));
  EXPECT_EQ(f.peers.of_type(PeerEvent::Type::rejected)[0].reason.code(), Errc::handshake_timeout);
}

}  // namespace
}  // namespace switchboard::testing
