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

constexpr std::array<std::string_view, 48> make_kind_names() {
  std::array<std::string_view, 48> names{};
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

// Packs the envelope up to and including the payload's bin header.
template <typename Writer>
void pack_head(msgpack::packer<Writer>& pk, const Envelope& env) {
  pk.pack_array(7);
  pk.pack_uint32(kProtocolVersion);
  pk.pack_uint8(static_cast<std::uint8_t>(env.kind));
  pk.pack_uint64(env.id);
  pk.pack_str(static_cast<std::uint32_t>(env.topic.size()));
  pk.pack_str_body(env.topic.data(), static_cast<std::uint32_t>(env.topic.size()));
  pk.pack_uint32(env.flags);
  pk.pack_uint64(env.sender);
  pk.pack_bin(static_cast<std::uint32_t>(env.payload.size));
}

// Walks the envelope array without building a msgpack::object: no allocation, no exceptions.
// Anything but the exact v1 shape makes a visit return false, which stops the parse.
class EnvelopeVisitor : public msgpack::null_visitor {
 public:
  EnvelopeVisitor(Envelope& out, const DecodeLimits& limits) : out_(out), limits_(limits) {}

  bool visit_nil() { return depth_ == 1 && index_ == 6 && (payload_seen_ = true); }
  bool visit_boolean(bool) { return false; }
  bool visit_negative_integer(std::int64_t) { return false; }
  bool visit_float32(float) { return false; }
  bool visit_float64(double) { return false; }
  bool visit_ext(const char*, std::uint32_t) { return false; }
  bool start_map(std::uint32_t) { return false; }

  bool visit_positive_integer(std::uint64_t v) {
    if (depth_ != 1) return false;
    switch (index_) {
      case 0:
        version_ = v;
        return true;
      case 1:
        if (!is_known_kind(v)) return false;
        out_.kind = static_cast<Kind>(v);
        return true;
      case 2:
        out_.id = v;
        return true;
      case 4:
        if (v > std::numeric_limits<std::uint32_t>::max()) return false;
        out_.flags = static_cast<std::uint32_t>(v);
        return true;
      case 5:
        out_.sender = v;
        return true;
      default:
        return false;
    }
  }
  bool visit_str(const char* v, std::uint32_t size) {
    if (depth_ != 1 || index_ != 3 || size > limits_.max_topic) return false;
    out_.topic.assign(v, size);
    return true;
  }
  bool visit_bin(const char* v, std::uint32_t size) {
    if (depth_ != 1 || index_ != 6) return false;
    payload_ptr_ = reinterpret_cast<const std::uint8_t*>(v);
    payload_size_ = size;
    payload_seen_ = true;
    return true;
  }
  bool start_array(std::uint32_t n) {
    if (depth_ != 0 || n != 7) return false;
    ++depth_;
    return true;
  }
  bool end_array_item() {
    ++index_;
    return true;
  }
  bool end_array() {
    --depth_;
    done_ = true;
    return true;
  }
  void parse_error(std::size_t, std::size_t) {}
  void insufficient_bytes(std::size_t, std::size_t) {}

  bool complete() const { return done_ && index_ == 7 && payload_seen_; }
  std::uint64_t version() const { return version_; }
  const std::uint8_t* payload_ptr() const { return payload_ptr_; }
  std::size_t payload_size() const { return payload_size_; }

 private:
  Envelope& out_;
  const DecodeLimits& limits_;
  int depth_ = 0;
  std::size_t index_ = 0;
  std::uint64_t version_ = 0;
  bool done_ = false;
  bool payload_seen_ = false;
  const std::uint8_t* payload_ptr_ = nullptr;
  std::size_t payload_size_ = 0;
};

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
  return 1 + uint_size(kProtocolVersion) + uint_size(static_cast<std::uint8_t>(env.kind)) +
         uint_size(env.id) + str_header_size(env.topic.size()) + env.topic.size() +
         uint_size(env.flags) + uint_size(env.sender) + bin_header_size(env.payload.size) +
         env.payload.size;
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
  return 41 + env.topic.size() + env.payload.size;
}

std::size_t encode_frame_into(const Envelope& env, std::uint8_t* out) {
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
  if (body.size == 0) return Status(Errc::protocol_error, "empty frame");
  EnvelopeVisitor visitor(out, limits);
  std::size_t off = 0;
  bool parsed = false;
  try {
    parsed = msgpack::parse(reinterpret_cast<const char*>(body.data), body.size, off, visitor);
  } catch (const std::exception& e) {
    return Status(Errc::protocol_error, std::string("malformed envelope: ") + e.what());
  }
  if (!parsed || !visitor.complete()) {
    return Status(Errc::protocol_error,
                  "malformed envelope: expected [version, kind, id, topic, flags, sender, "
                  "payload] with a known kind and a topic of at most " +
                      std::to_string(limits.max_topic) + " bytes");
  }
  if (off != body.size) {
    return Status(Errc::protocol_error, "malformed envelope: trailing bytes after the envelope");
  }
  if (visitor.version() != kProtocolVersion) {
    return Status(Errc::version_mismatch, "envelope version " + std::to_string(visitor.version()) +
                                              ", this peer speaks " +
                                              std::to_string(kProtocolVersion));
  }
  out.payload = visitor.payload_ptr()
                    ? Slice(body.owner, visitor.payload_ptr(), visitor.payload_size())
                    : Slice();
  return {};
}

}  // namespace switchboard
