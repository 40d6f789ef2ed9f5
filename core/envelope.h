// The envelope: what every frame body carries. A msgpack array of exactly seven elements,
//   [version, kind, id, topic, flags, sender, payload]
// documented field by field in docs/PROTOCOL.md.
//
// Contract:
// - The payload is opaque bytes (a msgpack bin). The core never decodes it; decode_envelope()
//   returns it as a Slice into the frame body, so no payload byte is copied on the way in.
// - encode_frame() writes everything up to and including the bin header into a small `head`
//   buffer and leaves the payload as a shared Slice, so one payload can be queued to many peers
//   with two iovecs each and no copy.
// - Both functions are pure and thread-safe; neither throws on bad input.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "bytes.h"
#include "status.h"

namespace switchboard {

inline constexpr std::uint32_t kProtocolVersion = 1;
// Longest topic, handler name or pattern the envelope decoder accepts.
inline constexpr std::size_t kDefaultMaxTopic = 1024;

enum class Kind : std::uint8_t {
  hello = 1,        // client -> hub, first frame: protocol, token, role, name, pid
  welcome = 2,      // hub -> client: the handshake succeeded; carries the peer id
  subscribe = 3,    // topic is an exact name or a prefix pattern ending in '*'
  unsubscribe = 4,  //
  event = 5,        // fire-and-forget; the hub forwards it to subscribers
  register_ = 6,    // topic is a handler name this peer serves
  unregister = 7,   //
  invoke = 8,       // request for the handler named in topic; id correlates the reply
  result = 9,       // successful reply to an invoke (or ack of a control request)
  error = 10,       // failed reply; topic is the error code (E_...)
  cancel = 11,      // the caller no longer wants the reply to `id`
  ping = 12,        // either side; answered with pong carrying the same id
  pong = 13,        //
  goaway = 14,      // the sender is closing the connection; topic is the reason code
  peer = 15,        // hub -> peers: a peer joined or left (id, role, name, pid); see handshake.h
  // 16..31 are reserved for streams and 32..47 for shared state (docs/PROTOCOL.md). A hub of this
  // version answers them with E_PROTOCOL.
  stream_open = 16,
  stream_data = 17,
  stream_credit = 18,
  stream_end = 19,
  stream_error = 20,
  stream_cancel = 21,
  state_watch = 32,
  state_snapshot = 33,
  state_patch = 34,
  state_update = 35,
  state_unwatch = 36,
  dropped = 48,  // hub -> peer: events it missed while stalled (count, per topic); handshake.h
};

std::string_view kind_name(Kind kind);
bool is_known_kind(std::uint64_t value);
bool is_reserved_kind(Kind kind);

// Flag bits. The hub passes flags through untouched except where noted.
inline constexpr std::uint32_t kFlagNone = 0;
// The payload is raw bytes rather than a msgpack-encoded value (the codec's fast path).
inline constexpr std::uint32_t kFlagRawPayload = 1u << 0;
// On an ERROR: the error was raised by the hub (no handler, connection lost...), not by a remote
// handler. The hub sets this bit; peers may not.
inline constexpr std::uint32_t kFlagFromHub = 1u << 1;

struct Envelope {
  Kind kind = Kind::event;
  std::uint64_t id = 0;
  std::string topic;
  std::uint32_t flags = 0;
  std::uint64_t sender = 0;
  Slice payload;
  // The whole frame this envelope was decoded from (decode_frame()), length prefix included;
  // empty for an envelope built in memory. While set it encodes exactly the fields above, and
  // encode_frame() sends these bytes instead of encoding again: this is how a frame crosses the
  // hub and the addon without being rebuilt. Code that changes a field of a decoded envelope
  // must clear it, except for the sender and the id, which set_sender() and set_id() change in
  // place.
  Slice frame;
  std::uint32_t id_at = 0;      // offset of the id field in `frame`
  std::uint32_t sender_at = 0;  // offset of the sender field in `frame`
};

// A frame ready for the wire: `head` is the length prefix plus the envelope up to the payload's
// bin header; `payload` follows it. Copying a WireFrame copies two shared pointers.
struct WireFrame {
  SharedBuffer head;
  Slice payload;
  std::size_t size() const { return (head ? head->size() : 0) + payload.size; }
};

// Encodes `env` as one frame (or shares `env.frame` when it has one). Returns an error only when
// the body would not fit a 32-bit length.
Status encode_frame(const Envelope& env, WireFrame& out);

struct DecodeLimits {
  std::size_t max_topic = kDefaultMaxTopic;
};

// The exact body size encode_frame() would produce for `env` (without the length prefix).
std::size_t encoded_body_size(const Envelope& env);

// A frame too large for the hub must not be sent: the hub would close the connection over it.
// What replaces it, so that nothing vanishes and no caller waits for nothing:
//  - an INVOKE: its caller gets ERROR E_FRAME_TOO_LARGE at once (tell_sender);
//  - a RESULT or ERROR: the caller gets ERROR E_FRAME_TOO_LARGE in its place (send_instead);
//  - anything else (an EVENT): the sender's own consumer gets ERROR id 0 (tell_sender).
struct OversizeAction {
  std::optional<Envelope> send_instead;
  std::optional<Envelope> tell_sender;
};
OversizeAction oversize_action(const Envelope& env, std::size_t max_body);

// Decodes one frame body. On success `out.payload` points into `body` and shares its owner.
Status decode_envelope(const Slice& body, Envelope& out, const DecodeLimits& limits = {});
// Decodes a whole frame as FrameDecoder hands it out (prefix included) and keeps it in
// `out.frame`, so that it can be forwarded without encoding it again.
Status decode_frame(const Slice& frame, Envelope& out, const DecodeLimits& limits = {});

// Sets the sender. A decoded frame is changed in place when the sender field is wide enough
// (encoders write it as a fixed 32-bit integer for this reason); otherwise the frame is dropped
// and encode_frame() will encode the envelope afresh. Only for a frame no one else reads yet:
// the hub calls it once, before it queues the frame to anyone.
void set_sender(Envelope& env, std::uint64_t sender);
// The same for the id (an invoke's and its reply's id change at the hub; encoders write them as
// a fixed 32-bit integer).
void set_id(Envelope& env, std::uint64_t id);

// The most bytes encode_frame_into() can write for `env` (length prefix included).
std::size_t frame_size_bound(const Envelope& env);
// Writes `env` as one whole frame (prefix, envelope, payload) into `out`, which must have room
// for frame_size_bound(env) bytes; returns the bytes written. For handing a batch to a consumer
// as one contiguous buffer with a single copy of each payload.
std::size_t encode_frame_into(const Envelope& env, std::uint8_t* out);

}  // namespace switchboard
