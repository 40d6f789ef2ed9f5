#include "envelope.h"

#include <msgpack.hpp>

#include <array>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>

#include "frame.h"

namespace switchboard {
namespace {

constexpr std::array<std::string_view, 49> make_kind_names() {
  std::array<std::string_view, 49> names{};
  names[1] = "HELLO";
  names[2] = "WELCOME";
  names[3] = "SUBSCRIBE";
  names[4] = "UNSUBSCRIBE";
  names[5] = "EVENT";
  names[6] = "REGISTER";
  names[7] = "UNREGISTER";
  names[8] = "INVOKE";
  names[9] = "RESULT";
  names[10] = "ERROR";
  names[11] = "CANCEL";
  names[12] = "PING";
  names[13] = "PONG";
  names[14] = "GOAWAY";
  names[15] = "PEER";
  names[16] = "STREAM_OPEN";
  names[17] = "STREAM_DATA";
  names[18] = "STREAM_CREDIT";
  names[19] = "STREAM_END";
  names[20] = "STREAM_ERROR";
  names[21] = "STREAM_CANCEL";
  names[32] = "STATE_WATCH";
  names[33] = "STATE_SNAPSHOT";
  names[34] = "STATE_PATCH";
  names[35] = "STATE_UPDATE";
  names[36] = "STATE_UNWATCH";
  names[48] = "DROPPED";
  return names;
}
constexpr auto kKindNames = make_kind_names();

// A sink for msgpack::packer that appends to a Buffer.
struct BufferWriter {
  Buffer* buf;
  void write(const char* data, std::size_t size) { buf->append(data, size); }
};

// A sink for msgpack::packer that writes into memory the caller sized with frame_size_bound().
struct RawWriter {
  std::uint8_t* at;
  void write(const char* data, std::size_t size) {
    std::memcpy(at, data, size);
    at += size;
  }
};

// The id of an invoke and of its reply is rewritten by the hub at every hop (caller's id <->
// the hub's call id); written at a fixed width, it can be rewritten in place.
bool has_fixed_id(const Envelope& env) {
  return (env.kind == Kind::invoke || env.kind == Kind::result || env.kind == Kind::error) &&
         env.id <= 0xffffffffu;
}

// Packs the envelope up to and including the payload's bin header.
template <typename Writer>
void pack_head(msgpack::packer<Writer>& pk, const Envelope& env) {
  pk.pack_array(7);
  pk.pack_uint32(kProtocolVersion);
  pk.pack_uint8(static_cast<std::uint8_t>(env.kind));
  if (has_fixed_id(env)) {
    pk.pack_fix_uint32(static_cast<std::uint32_t>(env.id));  // set in place by the hub (set_id)
  } else {
    pk.pack_uint64(env.id);
  }
  pk.pack_str(static_cast<std::uint32_t>(env.topic.size()));
  pk.pack_str_body(env.topic.data(), static_cast<std::uint32_t>(env.topic.size()));
  pk.pack_uint32(env.flags);
  // Fixed width, so that the hub can set the sender of a frame in place (set_sender()).
  if (env.sender <= 0xffffffffu) {
    pk.pack_fix_uint32(static_cast<std::uint32_t>(env.sender));
  } else {
    pk.pack_uint64(env.sender);
  }
  pk.pack_bin(static_cast<std::uint32_t>(env.payload.size));
}

// Reads the envelope's exact v1 shape by hand: seven fields of a handful of msgpack types, so no
// general parser is needed, nothing is allocated but the topic, and nothing throws. Integer
// fields take every msgpack integer encoding of a non-negative value, as msgpack-c would.
class EnvelopeReader {
 public:
  EnvelopeReader(const std::uint8_t* data, std::size_t size)
      : p_(data), begin_(data), end_(data + size) {}

  std::size_t offset() const { return static_cast<std::size_t>(p_ - begin_); }
  bool at_end() const { return p_ == end_; }

  bool array_of_seven() {
    if (!have(1)) return false;
    std::uint8_t b = *p_++;
    if (b == 0x97) return true;
    if (b == 0xdc) return have(2) && get(2) == 7;
    if (b == 0xdd) return have(4) && get(4) == 7;
    return false;
  }

  bool uint(std::uint64_t& v) {
    if (!have(1)) return false;
    std::uint8_t b = *p_++;
    if (b < 0x80) {
      v = b;
      return true;
    }
    switch (b) {
      case 0xcc:
        return sized(1, v);
      case 0xcd:
        return sized(2, v);
      case 0xce:
        return sized(4, v);
      case 0xcf:
        return sized(8, v);
      case 0xd0:
        return signed_non_negative(1, v);
      case 0xd1:
        return signed_non_negative(2, v);
      case 0xd2:
        return signed_non_negative(4, v);
      case 0xd3:
        return signed_non_negative(8, v);
      default:
        return false;
    }
  }

  bool str(const std::uint8_t*& data, std::size_t& size) {
    if (!have(1)) return false;
    std::uint8_t b = *p_++;
    if ((b & 0xe0) == 0xa0) {
      size = b & 0x1f;
    } else if (b == 0xd9 || b == 0xda || b == 0xdb) {
      std::size_t width = b == 0xd9 ? 1 : b == 0xda ? 2 : 4;
      if (!have(width)) return false;
      size = get(width);
    } else {
      return false;
    }
    return take(size, data);
  }

  // A bin, or nil for no payload.
  bool bin(const std::uint8_t*& data, std::size_t& size) {
    if (!have(1)) return false;
    std::uint8_t b = *p_++;
    if (b == 0xc0) {
      data = nullptr;
      size = 0;
      return true;
    }
    if (b != 0xc4 && b != 0xc5 && b != 0xc6) return false;
    std::size_t width = b == 0xc4 ? 1 : b == 0xc5 ? 2 : 4;
    if (!have(width)) return false;
    size = get(width);
    return take(size, data);
  }

 private:
  bool have(std::size_t n) const { return static_cast<std::size_t>(end_ - p_) >= n; }
  std::uint64_t get(std::size_t n) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v = (v << 8) | p_[i];
    p_ += n;
    return v;
  }
  bool sized(std::size_t n, std::uint64_t& v) {
    if (!have(n)) return false;
    v = get(n);
    return true;
  }
  bool signed_non_negative(std::size_t n, std::uint64_t& v) {
    if (!have(n)) return false;
    if (p_[0] & 0x80) return false;  // negative
    v = get(n);
    return true;
  }
  bool take(std::size_t n, const std::uint8_t*& data) {
    if (!have(n)) return false;
    data = p_;
    p_ += n;
    return true;
  }

  const std::uint8_t* p_;
  const std::uint8_t* begin_;
  const std::uint8_t* end_;
};

// Parses a body; `sender_at` receives the sender field's offset in it.
Status parse_body(const Slice& body, Envelope& out, const DecodeLimits& limits, std::size_t& id_at,
                  std::size_t& sender_at) {
  if (body.size == 0) return Status(Errc::protocol_error, "empty frame");
  EnvelopeReader r(body.data, body.size);
  std::uint64_t version = 0;
  std::uint64_t kind = 0;
  std::uint64_t flags = 0;
  const std::uint8_t* topic = nullptr;
  std::size_t topic_size = 0;
  const std::uint8_t* payload = nullptr;
  std::size_t payload_size = 0;
  bool ok = r.array_of_seven() && r.uint(version) && r.uint(kind) && is_known_kind(kind);
  if (ok) id_at = r.offset();
  ok = ok && r.uint(out.id) && r.str(topic, topic_size) && topic_size <= limits.max_topic &&
       r.uint(flags) && flags <= std::numeric_limits<std::uint32_t>::max();
  if (ok) {
    sender_at = r.offset();
    ok = r.uint(out.sender) && r.bin(payload, payload_size);
  }
  if (!ok) {
    return Status(Errc::protocol_error,
                  "malformed envelope: expected [version, kind, id, topic, flags, sender, "
                  "payload] with a known kind and a topic of at most " +
                      std::to_string(limits.max_topic) + " bytes");
  }
  if (!r.at_end()) {
    return Status(Errc::protocol_error, "malformed envelope: trailing bytes after the envelope");
  }
  if (version != kProtocolVersion) {
    return Status(Errc::version_mismatch, "envelope version " + std::to_string(version) +
                                              ", this peer speaks " +
                                              std::to_string(kProtocolVersion));
  }
  out.kind = static_cast<Kind>(kind);
  out.flags = static_cast<std::uint32_t>(flags);
  out.topic.assign(reinterpret_cast<const char*>(topic), topic_size);
  out.payload = payload ? Slice(body.owner, payload, payload_size) : Slice();
  return {};
}

}  // namespace

std::string_view kind_name(Kind kind) {
  auto i = static_cast<std::size_t>(kind);
  if (i < kKindNames.size() && !kKindNames[i].empty()) return kKindNames[i];
  return is_reserved_kind(kind) ? "RESERVED" : "UNKNOWN";
}

bool is_known_kind(std::uint64_t value) {
  // Every number of the reserved ranges decodes, named or not, so that a newer peer using one
  // gets an E_PROTOCOL answer from this hub rather than a closed connection.
  return (value < kKindNames.size() && !kKindNames[value].empty()) || (value >= 16 && value < 48);
}

bool is_reserved_kind(Kind kind) {
  auto v = static_cast<unsigned>(kind);
  return v >= 16 && v < 48;
}

Status encode_frame(const Envelope& env, WireFrame& out) {
  if (!env.frame.empty()) {
    out.head.reset();
    out.payload = env.frame;
    return {};
  }
  auto head = std::make_shared<Buffer>();
  head->reserve(kFrameHeaderSize + 32 + env.topic.size());
  head->resize(kFrameHeaderSize);  // length prefix, filled in below
  if (env.payload.size > kMaxFrameLimit) {
    return Status(Errc::frame_too_large, "payload does not fit a 32-bit frame length");
  }
  BufferWriter writer{head.get()};
  msgpack::packer<BufferWriter> pk(writer);
  pack_head(pk, env);
  std::size_t body = head->size() - kFrameHeaderSize + env.payload.size;
  if (body > kMaxFrameLimit) {
    return Status(Errc::frame_too_large, "envelope does not fit a 32-bit frame length");
  }
  put_frame_header(head->data(), body);
  out.head = std::move(head);
  out.payload = env.payload;
  return {};
}

namespace {

std::size_t uint_size(std::uint64_t v) {
  if (v < 128) return 1;
  if (v <= 0xff) return 2;
  if (v <= 0xffff) return 3;
  if (v <= 0xffffffff) return 5;
  return 9;
}

std::size_t str_header_size(std::size_t n) {
  if (n < 32) return 1;
  if (n <= 0xff) return 2;
  if (n <= 0xffff) return 3;
  return 5;
}

std::size_t bin_header_size(std::size_t n) {
  if (n <= 0xff) return 2;
  if (n <= 0xffff) return 3;
  return 5;
}

Envelope frame_error(std::uint64_t id, std::string message) {
  Envelope e;
  e.kind = Kind::error;
  e.id = id;
  e.topic = std::string(wire_name(Errc::frame_too_large));
  e.flags = kFlagFromHub;
  // A msgpack str, as for every hub-raised error (handshake.h encode_message); written here to
  // keep envelope.cc free of the handshake module.
  auto buf = std::make_shared<Buffer>();
  BufferWriter w{buf.get()};
  msgpack::packer<BufferWriter> pk(w);
  pk.pack_str(static_cast<std::uint32_t>(message.size()));
  pk.pack_str_body(message.data(), static_cast<std::uint32_t>(message.size()));
  e.payload = Slice(std::move(buf));
  return e;
}

}  // namespace

std::size_t encoded_body_size(const Envelope& env) {
  if (!env.frame.empty()) return env.frame.size - kFrameHeaderSize;
  return 1 + uint_size(kProtocolVersion) + uint_size(static_cast<std::uint8_t>(env.kind)) +
         (has_fixed_id(env) ? 5 : uint_size(env.id)) + str_header_size(env.topic.size()) +
         env.topic.size() + uint_size(env.flags) + (env.sender <= 0xffffffffu ? 5 : 9) +
         bin_header_size(env.payload.size) + env.payload.size;
}

OversizeAction oversize_action(const Envelope& env, std::size_t max_body) {
  OversizeAction action;
  std::string message = "a " + std::string(kind_name(env.kind)) + " of " +
                        std::to_string(encoded_body_size(env)) +
                        " bytes exceeds the hub's frame limit of " + std::to_string(max_body) +
                        " bytes; send large data in pieces, or raise maxFrame on the hub";
  switch (env.kind) {
    case Kind::invoke:
      action.tell_sender = frame_error(env.id, std::move(message));
      break;
    case Kind::result:
    case Kind::error:
      action.send_instead = frame_error(env.id, "the reply " + message);
      action.send_instead->flags = 0;  // sent on by a peer: the hub would strip the bit anyway
      break;
    default:
      action.tell_sender = frame_error(0, std::move(message));
      break;
  }
  return action;
}

std::size_t frame_size_bound(const Envelope& env) {
  // prefix 4 + array 1 + version 1 + kind 2 + id 9 + str header 5 + flags 5 + sender 9 + bin
  // header 5, plus the topic and the payload.
  if (!env.frame.empty()) return env.frame.size;
  return 41 + env.topic.size() + env.payload.size;
}

std::size_t encode_frame_into(const Envelope& env, std::uint8_t* out) {
  if (!env.frame.empty()) {
    std::memcpy(out, env.frame.data, env.frame.size);
    return env.frame.size;
  }
  RawWriter writer{out + kFrameHeaderSize};
  msgpack::packer<RawWriter> pk(writer);
  pack_head(pk, env);
  if (env.payload.size > 0)
    writer.write(reinterpret_cast<const char*>(env.payload.data), env.payload.size);
  std::size_t total = static_cast<std::size_t>(writer.at - out);
  put_frame_header(out, total - kFrameHeaderSize);
  return total;
}

Status decode_envelope(const Slice& body, Envelope& out, const DecodeLimits& limits) {
  std::size_t id_at = 0;
  std::size_t sender_at = 0;
  return parse_body(body, out, limits, id_at, sender_at);
}

Status decode_frame(const Slice& frame, Envelope& out, const DecodeLimits& limits) {
  if (frame.size < kFrameHeaderSize ||
      get_frame_header(frame.data) != frame.size - kFrameHeaderSize) {
    return Status(Errc::protocol_error, "malformed frame: the length prefix does not match");
  }
  std::size_t id_at = 0;
  std::size_t sender_at = 0;
  Status s = parse_body(frame_body(frame), out, limits, id_at, sender_at);
  if (!s.ok()) return s;
  out.frame = frame;
  out.id_at = static_cast<std::uint32_t>(kFrameHeaderSize + id_at);
  out.sender_at = static_cast<std::uint32_t>(kFrameHeaderSize + sender_at);
  return {};
}

namespace {

// Rewrites the unsigned integer at `at` in `env.frame` within its existing width; false when it
// does not fit (the caller then drops the frame, and encode_frame() encodes afresh).
bool patch_uint(Envelope& env, std::uint32_t at, std::uint64_t value) {
  // The frame's owner is shared as const; the caller guarantees no one reads it yet.
  auto* p = const_cast<std::uint8_t*>(env.frame.data) + at;
  std::size_t width = 0;
  switch (*p) {
    case 0xcc:
      width = 1;
      break;
    case 0xcd:
      width = 2;
      break;
    case 0xce:
      width = 4;
      break;
    case 0xcf:
      width = 8;
      break;
    default:
      if (*p < 0x80 && value < 0x80) {
        *p = static_cast<std::uint8_t>(value);
        return true;
      }
      return false;
  }
  if (width < 8 && value >= (std::uint64_t{1} << (8 * width))) return false;
  for (std::size_t i = 0; i < width; ++i)
    p[width - i] = static_cast<std::uint8_t>(value >> (8 * i));
  return true;
}

}  // namespace

void set_sender(Envelope& env, std::uint64_t sender) {
  env.sender = sender;
  if (!env.frame.empty() && !patch_uint(env, env.sender_at, sender)) env.frame = Slice();
}

void set_id(Envelope& env, std::uint64_t id) {
  env.id = id;
  if (!env.frame.empty() && !patch_uint(env, env.id_at, id)) env.frame = Slice();
}

}  // namespace switchboard
