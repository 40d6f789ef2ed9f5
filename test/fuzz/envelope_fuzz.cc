// Fuzz target: the envelope decoder (core/envelope.h) and the handshake decoders
// (core/handshake.h), on the bytes of one frame body.
//
// Every decoder sees the whole input, and the handshake decoders also see the payload of a decoded
// envelope (that is where the hub finds HELLO). What a decoder accepts must survive a round trip
// through its encoder: decode(encode(decode(x))) == decode(x). For envelopes, the re-encoded
// frame must also match the sizes the encoder promises (encoded_body_size, frame_size_bound) and
// be the same bytes whether written by encode_frame() or encode_frame_into().
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "envelope.h"
#include "frame.h"
#include "fuzz_check.h"
#include "handshake.h"

namespace {

using namespace switchboard;

bool same_bytes(const Slice& a, const Slice& b) {
  return a.size == b.size && (a.size == 0 || std::memcmp(a.data, b.data, a.size) == 0);
}

bool same_envelope(const Envelope& a, const Envelope& b) {
  return a.kind == b.kind && a.id == b.id && a.topic == b.topic && a.flags == b.flags &&
         a.sender == b.sender && same_bytes(a.payload, b.payload);
}

void check_envelope(const Slice& body) {
  Envelope env;
  Status s = decode_envelope(body, env);
  if (!s.ok()) {
    FUZZ_CHECK(s.code() == Errc::protocol_error || s.code() == Errc::version_mismatch,
               "a bad envelope is a protocol error or a version mismatch");
    FUZZ_CHECK(!s.message().empty(), "an error says what happened");
    return;
  }
  FUZZ_CHECK(env.topic.size() <= kDefaultMaxTopic, "the topic limit holds");
  FUZZ_CHECK(is_known_kind(static_cast<std::uint64_t>(env.kind)), "only known kinds decode");
  if (env.payload.size > 0) {
    FUZZ_CHECK(env.payload.owner == body.owner, "the payload shares the frame's buffer");
    FUZZ_CHECK(env.payload.data >= body.data &&
                   env.payload.data + env.payload.size <= body.data + body.size,
               "the payload lies inside the frame");
  }

  WireFrame wire;
  FUZZ_CHECK(encode_frame(env, wire).ok(), "a decoded envelope encodes");
  std::size_t body_size = get_frame_header(wire.head->data());
  FUZZ_CHECK(body_size == encoded_body_size(env), "encoded_body_size is exact");
  FUZZ_CHECK(wire.size() == kFrameHeaderSize + body_size, "the prefix counts the whole body");
  FUZZ_CHECK(wire.size() <= frame_size_bound(env), "frame_size_bound bounds the frame");

  auto flat = std::make_shared<Buffer>(frame_size_bound(env));
  std::size_t written = encode_frame_into(env, flat->data());
  FUZZ_CHECK(written == wire.size(), "both encoders write the same size");
  FUZZ_CHECK(std::memcmp(flat->data(), wire.head->data(), wire.head->size()) == 0 &&
                 (wire.payload.size == 0 || std::memcmp(flat->data() + wire.head->size(),
                                                        wire.payload.data, wire.payload.size) == 0),
             "both encoders write the same bytes");

  flat->resize(written);
  SharedBuffer frozen = flat;
  Slice again_body(frozen, frozen->data() + kFrameHeaderSize, written - kFrameHeaderSize);
  Envelope again;
  Status s2 = decode_envelope(again_body, again);
  FUZZ_CHECK(s2.ok(), "a re-encoded envelope decodes");
  FUZZ_CHECK(same_envelope(env, again), "decode(encode(decode(x))) == decode(x)");

  if (env.kind == Kind::hello || env.kind == Kind::welcome || env.kind == Kind::peer) {
    // Where the handshake decoders meet peer bytes in the hub and the client.
    Hello h;
    (void)decode_hello(env.payload, h);
    Welcome w;
    (void)decode_welcome(env.payload, w);
    PeerInfo p;
    (void)decode_peer_info(env.payload, p);
  }
  if (env.kind == Kind::error || env.kind == Kind::goaway) (void)decode_message(env.payload);
}

void check_handshake(const Slice& payload) {
  Hello hello;
  if (decode_hello(payload, hello).ok()) {
    Hello again;
    FUZZ_CHECK(decode_hello(encode_hello(hello), again).ok(), "a re-encoded HELLO decodes");
    FUZZ_CHECK(again.protocol == hello.protocol && again.token == hello.token &&
                   again.role == hello.role && again.name == hello.name && again.pid == hello.pid,
               "HELLO: decode(encode(decode(x))) == decode(x)");
  }
  Welcome welcome;
  if (decode_welcome(payload, welcome).ok()) {
    Welcome again;
    FUZZ_CHECK(decode_welcome(encode_welcome(welcome), again).ok(), "a re-encoded WELCOME decodes");
    FUZZ_CHECK(again.protocol == welcome.protocol && again.peer_id == welcome.peer_id &&
                   again.hub_pid == welcome.hub_pid && again.hub_name == welcome.hub_name &&
                   again.max_frame == welcome.max_frame,
               "WELCOME: decode(encode(decode(x))) == decode(x)");
  }
  PeerInfo peer;
  if (decode_peer_info(payload, peer).ok()) {
    PeerInfo again;
    FUZZ_CHECK(decode_peer_info(encode_peer_info(peer), again).ok(), "a re-encoded PEER decodes");
    FUZZ_CHECK(again.id == peer.id && again.role == peer.role && again.name == peer.name &&
                   again.pid == peer.pid && again.up == peer.up,
               "PEER: decode(encode(decode(x))) == decode(x)");
  }
  std::string message = decode_message(payload);
  FUZZ_CHECK(decode_message(encode_message(message)) == message,
             "message: decode(encode(decode(x))) == decode(x)");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // In a buffer of its own, owned like a received frame body.
  auto buf = std::make_shared<Buffer>(data, size);
  Slice body(SharedBuffer(std::move(buf)));
  check_envelope(body);
  check_handshake(body);
  return 0;
}
