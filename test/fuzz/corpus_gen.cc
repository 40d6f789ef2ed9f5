// Writes the seed corpus: `fuzz_corpus_gen <test/fuzz/corpus>` fills corpus/frame, corpus/envelope
// and corpus/hub with handcrafted inputs, one file per case, named after what it holds. Every
// frame kind is there, well formed, plus the classic bad cases. Re-run it after a protocol change
// and commit the result (the fuzzers add their own finds under build-fuzz, not here).
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "envelope.h"
#include "frame.h"
#include "handshake.h"

namespace {

using namespace switchboard;

std::filesystem::path g_root;

void write(const std::string& target, const std::string& name, const std::string& bytes) {
  auto dir = g_root / target;
  std::filesystem::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
}

std::string view(const Slice& s) {
  return std::string(s.view());
}

// The envelope's body (no length prefix) and the whole frame.
std::string body_of(const Envelope& env) {
  WireFrame f;
  if (!encode_frame(env, f).ok()) std::abort();
  return std::string(reinterpret_cast<const char*>(f.head->data()) + kFrameHeaderSize,
                     f.head->size() - kFrameHeaderSize) +
         view(f.payload);
}
std::string frame_of(const std::string& body) {
  std::string out(kFrameHeaderSize, '\0');
  put_frame_header(reinterpret_cast<std::uint8_t*>(out.data()), body.size());
  return out + body;
}
std::string frame_of(const Envelope& env) {
  return frame_of(body_of(env));
}

Envelope make(Kind kind, std::string topic, std::uint64_t id, Slice payload = {},
              std::uint32_t flags = 0) {
  Envelope e;
  e.kind = kind;
  e.topic = std::move(topic);
  e.id = id;
  e.payload = std::move(payload);
  e.flags = flags;
  return e;
}

Slice hello_payload(const std::string& token) {
  return encode_hello(Hello{kProtocolVersion, token, "fuzz", "fuzz-peer", 42});
}

// One well-formed envelope of every kind, named.
std::vector<std::pair<std::string, Envelope>> every_kind() {
  std::vector<std::pair<std::string, Envelope>> out;
  out.emplace_back("hello", make(Kind::hello, "", 0, hello_payload("fuzz-token")));
  out.emplace_back("welcome",
                   make(Kind::welcome, "", 0,
                        encode_welcome(Welcome{kProtocolVersion, 7, 1234, "hub", 64u << 20})));
  out.emplace_back("subscribe", make(Kind::subscribe, "fuzz.events", 1));
  out.emplace_back("subscribe-pattern", make(Kind::subscribe, "fuzz.*", 2));
  out.emplace_back("unsubscribe", make(Kind::unsubscribe, "fuzz.events", 3));
  out.emplace_back("event",
                   make(Kind::event, "fuzz.events", 0, Slice::copy_of("\x93\x01\x02\x03")));
  out.emplace_back("event-raw", make(Kind::event, "fuzz.events", 0, Slice::copy_of("raw bytes"),
                                     kFlagRawPayload));
  out.emplace_back("register", make(Kind::register_, "fuzz.peer.handler", 4));
  out.emplace_back("register-taken", make(Kind::register_, "fuzz.bystander.echo", 5));
  out.emplace_back("unregister", make(Kind::unregister, "fuzz.peer.handler", 6));
  out.emplace_back("invoke",
                   make(Kind::invoke, "fuzz.bystander.echo", 7, Slice::copy_of("\xa2hi")));
  out.emplace_back("invoke-nobody", make(Kind::invoke, "fuzz.nobody", 8));
  out.emplace_back("result", make(Kind::result, "", 9, Slice::copy_of("\xc3")));
  out.emplace_back("error", make(Kind::error, "E_HANDLER", 10, encode_message("it broke")));
  out.emplace_back("error-from-hub-flag",
                   make(Kind::error, "E_NO_HANDLER", 11, encode_message("spoofed"), kFlagFromHub));
  out.emplace_back("cancel", make(Kind::cancel, "", 7));
  out.emplace_back("ping", make(Kind::ping, "", 12));
  out.emplace_back("pong", make(Kind::pong, "", 13));
  out.emplace_back("goaway", make(Kind::goaway, "E_SHUTTING_DOWN", 0, encode_message("bye")));
  out.emplace_back("peer", make(Kind::peer, "fuzz", 3,
                                encode_peer_info(PeerInfo{3, "fuzz", "other", 99, true})));
  out.emplace_back("stream-open-reserved", make(Kind::stream_open, "s", 14));
  out.emplace_back("state-watch-reserved", make(Kind::state_watch, "s", 15));
  return out;
}

// A frame-target input: FuzzedDataProvider takes the limit and the chunk sizes from the end of
// the input and the stream from the front, so the plan is appended in reverse reading order.
std::string frame_input(const std::string& stream, unsigned limit_index,
                        const std::vector<std::size_t>& chunks) {
  std::string tail;
  tail.push_back(static_cast<char>(limit_index));  // read first: the last byte
  for (std::size_t c : chunks) {
    // ConsumeIntegralInRange(0, 70000) reads 3 bytes, most significant first, from the end.
    tail.push_back(static_cast<char>((c >> 16) & 0xff));
    tail.push_back(static_cast<char>((c >> 8) & 0xff));
    tail.push_back(static_cast<char>(c & 0xff));
  }
  return stream + std::string(tail.rbegin(), tail.rend());
}

constexpr unsigned kLimitTiny = 1, kLimitHandshake = 4, kLimitDefault = 6;

void frames() {
  std::string all;
  for (auto& [name, env] : every_kind()) all += frame_of(env);
  write("frame", "every-kind-one-read", frame_input(all, kLimitDefault, {all.size()}));
  std::vector<std::size_t> ones(all.size() > 200 ? 200 : all.size(), 1);
  std::size_t rest = all.size() - ones.size();
  std::vector<std::size_t> plan = ones;
  plan.push_back(rest);
  write("frame", "every-kind-byte-by-byte-then-rest", frame_input(all, kLimitDefault, plan));
  std::string two = frame_of(every_kind()[2].second) + frame_of(every_kind()[3].second);
  write("frame", "two-frames-split-in-headers",
        frame_input(two, kLimitDefault, {2, 4, 9, 3, two.size() - 18}));
  write("frame", "empty-reads", frame_input(two, kLimitDefault, {0, 0, two.size(), 0}));
  write("frame", "handshake-limit-hello",
        frame_input(frame_of(every_kind()[0].second), kLimitHandshake,
                    {frame_of(every_kind()[0].second).size()}));
  std::string claim = "\xff\xff\xff\xff" + std::string(8, 'x');
  write("frame", "claim-2^32-1", frame_input(claim, kLimitDefault, {claim.size()}));
  std::string over = frame_of(std::string((4u << 10) + 1, 'x')).substr(0, 64);
  write("frame", "claim-handshake-max-plus-1", frame_input(over, kLimitHandshake, {over.size()}));
  std::string zero = frame_of(every_kind()[2].second) + std::string(4, '\0');
  write("frame", "zero-length-after-a-frame", frame_input(zero, kLimitDefault, {zero.size()}));
  std::string tiny = frame_of(std::string(7, 'a')) + frame_of(std::string(8, 'b'));
  write("frame", "tiny-limit-at-and-over", frame_input(tiny, kLimitTiny, {5, tiny.size() - 5}));
  std::string truncated = all.substr(0, all.size() - 3);
  write("frame", "truncated-last-frame", frame_input(truncated, kLimitDefault, {truncated.size()}));
}

void envelopes() {
  for (auto& [name, env] : every_kind()) write("envelope", name, body_of(env));
  // The handshake decoders read these as they are (they also run on every input).
  write("envelope", "payload-hello", view(hello_payload("fuzz-token")));
  write("envelope", "payload-welcome",
        view(encode_welcome(Welcome{kProtocolVersion, 7, 1234, "hub", 64u << 20})));
  write("envelope", "payload-peer", view(encode_peer_info(PeerInfo{3, "r", "n", 99, false})));
  write("envelope", "payload-message", view(encode_message("a message")));
  // Near misses.
  std::string event = body_of(make(Kind::event, "t", 1, Slice::copy_of("p")));
  write("envelope", "bad-trailing-byte", event + "\xc0");
  write("envelope", "bad-version-2", "\x97\x02" + event.substr(2));
  write("envelope", "bad-six-elements", "\x96" + event.substr(1, event.size() - 3));
  write("envelope", "bad-unknown-kind-99", "\x97\x01\x63" + event.substr(3));
  write("envelope", "nil-payload", event.substr(0, event.size() - 3) + "\xc0");
  write("envelope", "topic-1025", body_of(make(Kind::event, std::string(1025, 't'), 1)));
  write("envelope", "topic-1024", body_of(make(Kind::event, std::string(1024, 't'), 1)));
  write("envelope", "nested-arrays", std::string(200, '\x91') + "\xc0");
  write("envelope", "map-not-array", "\x81\xa1k\xa1v");
}

void hub() {
  // Mode byte: bit 0 = the harness sends a valid HELLO first; bit 1 = half-close; bit 2 = the
  // bystander publishes past the peer, a reader that never reads.
  std::string session;
  for (auto& [name, env] : every_kind()) {
    if (name == "hello") continue;
    write("hub", "authed-" + name, "\x01" + frame_of(env));
    session += frame_of(env);
  }
  write("hub", "authed-every-kind", "\x01" + session);
  write("hub", "authed-every-kind-half-close", "\x03" + session);
  write("hub", "authed-subscribe-publish-invoke",
        "\x01" + frame_of(every_kind()[2].second) + frame_of(every_kind()[5].second) +
            frame_of(every_kind()[10].second));
  write("hub", "authed-register-then-invoke-self",
        "\x01" + frame_of(make(Kind::register_, "fuzz.self", 1)) +
            frame_of(make(Kind::invoke, "fuzz.self", 2, Slice::copy_of("x"))));
  write("hub", "authed-oversize-claim", std::string("\x01\xff\xff\xff\xff", 5));
  write(
      "hub", "own-hello-then-event",
      std::string("\x00", 1) + frame_of(every_kind()[0].second) + frame_of(every_kind()[5].second));
  write("hub", "wrong-token",
        std::string("\x00", 1) + frame_of(make(Kind::hello, "", 0, hello_payload("wrong"))));
  write("hub", "event-before-hello", std::string("\x00", 1) + frame_of(every_kind()[5].second));
  write("hub", "hello-twice", "\x01" + frame_of(every_kind()[0].second));
  write("hub", "handshake-max-plus-1",
        std::string("\x00", 1) + frame_of(std::string((4u << 10) + 1, 'x')).substr(0, 16));
  write("hub", "garbage", std::string("\x00garbage bytes, not a frame at all", 34));
  write("hub", "nothing", std::string("\x00", 1));
  write("hub", "zero-length-frame", std::string("\x01\x00\x00\x00\x00", 5));
  // Bit 2: the bystander publishes 256 KiB while the peer is connected (flow control).
  write("hub", "slow-reader-subscribed",
        "\x05" + frame_of(make(Kind::subscribe, "fuzz.events", 1)));
  write("hub", "slow-reader-subscribed-half-close",
        "\x07" + frame_of(make(Kind::subscribe, "fuzz.events", 1)));
  write("hub", "slow-reader-subscribed-by-pattern",
        "\x05" + frame_of(make(Kind::subscribe, "fuzz.*", 1)));
  write("hub", "slow-reader-not-subscribed", "\x05" + frame_of(every_kind()[5].second));
  write("hub", "slow-reader-subscribed-and-serving",
        "\x05" + frame_of(make(Kind::subscribe, "fuzz.events", 1)) +
            frame_of(make(Kind::register_, "fuzz.slow", 2)) +
            frame_of(make(Kind::invoke, "fuzz.slow", 3, Slice::copy_of("x"))));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus-dir>\n", argv[0]);
    return 2;
  }
  g_root = argv[1];
  frames();
  envelopes();
  hub();
  return 0;
}
