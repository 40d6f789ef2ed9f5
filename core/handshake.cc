#include "handshake.h"

#if defined(_WIN32)
#include <windows.h>
// After windows.h: RtlGenRandom (advapi32's SystemFunction036), the CSPRNG behind rand_s.
#include <ntsecapi.h>
#else
#include <sys/random.h>
#endif

#include <msgpack.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <exception>
#include <memory>
#include <utility>

namespace switchboard {
namespace {

struct BufferWriter {
  Buffer* buf;
  void write(const char* data, std::size_t size) { buf->append(data, size); }
};

void pack_kv(msgpack::packer<BufferWriter>& pk, std::string_view key, std::string_view value) {
  pk.pack_str(static_cast<std::uint32_t>(key.size()));
  pk.pack_str_body(key.data(), static_cast<std::uint32_t>(key.size()));
  pk.pack_str(static_cast<std::uint32_t>(value.size()));
  pk.pack_str_body(value.data(), static_cast<std::uint32_t>(value.size()));
}

void pack_kv(msgpack::packer<BufferWriter>& pk, std::string_view key, std::uint64_t value) {
  pk.pack_str(static_cast<std::uint32_t>(key.size()));
  pk.pack_str_body(key.data(), static_cast<std::uint32_t>(key.size()));
  pk.pack_uint64(value);
}

// Limits for handshake maps: no arrays, at most 16 keys, strings up to 1 KiB, no bin or ext,
// depth 2 (the map and its scalars). msgpack-c's defaults are unlimited.
const msgpack::unpack_limit kHandshakeLimit(0, 16, 1024, 0, 0, 2);

// Calls fn(key, object) for each entry of a msgpack map; false when the payload is not a map.
template <typename Fn>
Status for_each_entry(const Slice& payload, std::string_view what, Fn&& fn) {
  try {
    std::size_t off = 0;
    msgpack::object_handle oh =
        msgpack::unpack(reinterpret_cast<const char*>(payload.data), payload.size, off, nullptr,
                        nullptr, kHandshakeLimit);
    if (off != payload.size) {
      return Status(Errc::protocol_error, std::string(what) + ": trailing bytes");
    }
    const msgpack::object& obj = oh.get();
    if (obj.type != msgpack::type::MAP) {
      return Status(Errc::protocol_error, std::string(what) + " payload is not a map");
    }
    for (std::uint32_t i = 0; i < obj.via.map.size; ++i) {
      const auto& kv = obj.via.map.ptr[i];
      if (kv.key.type != msgpack::type::STR) continue;
      fn(std::string_view(kv.key.via.str.ptr, kv.key.via.str.size), kv.val);
    }
    return {};
  } catch (const std::exception& e) {
    return Status(Errc::protocol_error, std::string(what) + " payload is malformed: " + e.what());
  }
}

void read_str(const msgpack::object& o, std::string& out) {
  if (o.type == msgpack::type::STR) out.assign(o.via.str.ptr, o.via.str.size);
}
template <typename T>
void read_uint(const msgpack::object& o, T& out) {
  if (o.type == msgpack::type::POSITIVE_INTEGER) out = static_cast<T>(o.via.u64);
}

}  // namespace

Slice encode_hello(const Hello& hello) {
  auto buf = std::make_shared<Buffer>();
  BufferWriter w{buf.get()};
  msgpack::packer<BufferWriter> pk(w);
  pk.pack_map(5);
  pack_kv(pk, "protocol", hello.protocol);
  pack_kv(pk, "token", hello.token);
  pack_kv(pk, "role", hello.role);
  pack_kv(pk, "name", hello.name);
  pack_kv(pk, "pid", hello.pid);
  return Slice(std::move(buf));
}

Status decode_hello(const Slice& payload, Hello& out) {
  return for_each_entry(payload, "HELLO", [&](std::string_view key, const msgpack::object& v) {
    if (key == "protocol")
      read_uint(v, out.protocol);
    else if (key == "token")
      read_str(v, out.token);
    else if (key == "role")
      read_str(v, out.role);
    else if (key == "name")
      read_str(v, out.name);
    else if (key == "pid")
      read_uint(v, out.pid);
  });
}

Slice encode_welcome(const Welcome& welcome) {
  auto buf = std::make_shared<Buffer>();
  BufferWriter w{buf.get()};
  msgpack::packer<BufferWriter> pk(w);
  pk.pack_map(5);
  pack_kv(pk, "protocol", welcome.protocol);
  pack_kv(pk, "peer", welcome.peer_id);
  pack_kv(pk, "hub_pid", welcome.hub_pid);
  pack_kv(pk, "hub_name", welcome.hub_name);
  pack_kv(pk, "max_frame", welcome.max_frame);
  return Slice(std::move(buf));
}

Status decode_welcome(const Slice& payload, Welcome& out) {
  return for_each_entry(payload, "WELCOME", [&](std::string_view key, const msgpack::object& v) {
    if (key == "protocol")
      read_uint(v, out.protocol);
    else if (key == "peer")
      read_uint(v, out.peer_id);
    else if (key == "hub_pid")
      read_uint(v, out.hub_pid);
    else if (key == "hub_name")
      read_str(v, out.hub_name);
    else if (key == "max_frame")
      read_uint(v, out.max_frame);
  });
}

Slice encode_peer_info(const PeerInfo& info) {
  auto buf = std::make_shared<Buffer>();
  BufferWriter w{buf.get()};
  msgpack::packer<BufferWriter> pk(w);
  pk.pack_map(5 + (info.origin.empty() ? 0 : 1) + (info.window == 0 ? 0 : 1));
  pack_kv(pk, "id", info.id);
  pack_kv(pk, "role", info.role);
  pack_kv(pk, "name", info.name);
  pack_kv(pk, "pid", info.pid);
  if (!info.origin.empty()) pack_kv(pk, "origin", info.origin);
  if (info.window != 0) pack_kv(pk, "window", info.window);
  pk.pack_str(2);
  pk.pack_str_body("up", 2);
  if (info.up) {
    pk.pack_true();
  } else {
    pk.pack_false();
  }
  return Slice(std::move(buf));
}

Slice encode_dropped(const DroppedNotice& notice) {
  auto buf = std::make_shared<Buffer>();
  BufferWriter w{buf.get()};
  msgpack::packer<BufferWriter> pk(w);
  pk.pack_map(2);
  pack_kv(pk, "count", notice.count);
  pk.pack_str(6);
  pk.pack_str_body("topics", 6);
  pk.pack_map(static_cast<std::uint32_t>(std::min(notice.topics.size(), kDroppedTopicsMax)));
  std::size_t n = 0;
  for (const auto& [topic, count] : notice.topics) {
    if (n++ == kDroppedTopicsMax) break;
    pk.pack_str(static_cast<std::uint32_t>(topic.size()));
    pk.pack_str_body(topic.data(), static_cast<std::uint32_t>(topic.size()));
    pk.pack_uint64(count);
  }
  return Slice(std::move(buf));
}

Status decode_dropped(const Slice& payload, DroppedNotice& out) {
  try {
    // A map of two keys, one of them a map of up to kDroppedTopicsMax counts: depth 3.
    const msgpack::unpack_limit limit(0, kDroppedTopicsMax, 1024, 0, 0, 3);
    std::size_t off = 0;
    msgpack::object_handle oh = msgpack::unpack(reinterpret_cast<const char*>(payload.data),
                                                payload.size, off, nullptr, nullptr, limit);
    const msgpack::object& obj = oh.get();
    if (off != payload.size || obj.type != msgpack::type::MAP) {
      return Status(Errc::protocol_error, "DROPPED payload is not a map");
    }
    // Decoded aside and handed over whole: a notice that fails leaves `out` as it was, and one
    // that succeeds replaces it (no topic of an earlier notice survives).
    DroppedNotice notice;
    bool counted = false;
    for (std::uint32_t i = 0; i < obj.via.map.size; ++i) {
      const auto& kv = obj.via.map.ptr[i];
      if (kv.key.type != msgpack::type::STR) continue;
      std::string_view key(kv.key.via.str.ptr, kv.key.via.str.size);
      if (key == "count") {
        if (kv.val.type != msgpack::type::POSITIVE_INTEGER) {
          return Status(Errc::protocol_error, "DROPPED count must be a non-negative integer");
        }
        notice.count = kv.val.via.u64;
        counted = true;
      } else if (key == "topics") {
        if (kv.val.type != msgpack::type::MAP) {
          return Status(Errc::protocol_error, "DROPPED topics must be a map");
        }
        for (std::uint32_t j = 0; j < kv.val.via.map.size; ++j) {
          const auto& t = kv.val.via.map.ptr[j];
          if (t.key.type != msgpack::type::STR || t.val.type != msgpack::type::POSITIVE_INTEGER) {
            return Status(Errc::protocol_error, "DROPPED topics must map names to counts");
          }
          notice.topics[std::string(t.key.via.str.ptr, t.key.via.str.size)] = t.val.via.u64;
        }
      }
    }
    if (!counted) return Status(Errc::protocol_error, "DROPPED payload has no count");
    out = std::move(notice);
    return {};
  } catch (const std::exception& e) {
    return Status(Errc::protocol_error, std::string("DROPPED payload is malformed: ") + e.what());
  }
}

Status decode_peer_info(const Slice& payload, PeerInfo& out) {
  return for_each_entry(payload, "PEER", [&](std::string_view key, const msgpack::object& v) {
    if (key == "id")
      read_uint(v, out.id);
    else if (key == "role")
      read_str(v, out.role);
    else if (key == "name")
      read_str(v, out.name);
    else if (key == "pid")
      read_uint(v, out.pid);
    else if (key == "up" && v.type == msgpack::type::BOOLEAN)
      out.up = v.via.boolean;
    else if (key == "origin")
      read_str(v, out.origin);
    else if (key == "window")
      read_uint(v, out.window);
  });
}

Slice encode_message(std::string_view message) {
  auto buf = std::make_shared<Buffer>();
  BufferWriter w{buf.get()};
  msgpack::packer<BufferWriter> pk(w);
  pk.pack_str(static_cast<std::uint32_t>(message.size()));
  pk.pack_str_body(message.data(), static_cast<std::uint32_t>(message.size()));
  return Slice(std::move(buf));
}

std::string decode_message(const Slice& payload) {
  try {
    std::size_t off = 0;
    const msgpack::unpack_limit limit(0, 0, 64u << 10, 0, 0, 1);
    msgpack::object_handle oh = msgpack::unpack(reinterpret_cast<const char*>(payload.data),
                                                payload.size, off, nullptr, nullptr, limit);
    if (oh.get().type == msgpack::type::STR) {
      return std::string(oh.get().via.str.ptr, oh.get().via.str.size);
    }
  } catch (const std::exception&) {
  }
  return "(no message)";
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  // Walk the longer input in full so the time depends on lengths only.
  std::size_t n = a.size() > b.size() ? a.size() : b.size();
  volatile unsigned char diff = static_cast<unsigned char>(a.size() != b.size());
  for (std::size_t i = 0; i < n; ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff = static_cast<unsigned char>(diff | (x ^ y));
  }
  return diff == 0;
}

std::string random_token() {
  std::array<unsigned char, 32> raw{};
#if defined(_WIN32)
  // No entropy source: refusing to run with a guessable token.
  if (!RtlGenRandom(raw.data(), static_cast<ULONG>(raw.size()))) std::terminate();
#elif defined(__APPLE__)
  // macOS has no getrandom(); getentropy() gives up to 256 bytes in one call.
  if (getentropy(raw.data(), raw.size()) != 0) std::terminate();
#else
  std::size_t got = 0;
  while (got < raw.size()) {
    ssize_t n = getrandom(raw.data() + got, raw.size() - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::terminate();  // no entropy source: refusing to run with a guessable token
    }
    got += static_cast<std::size_t>(n);
  }
#endif
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(raw.size() * 2);
  for (unsigned char c : raw) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

}  // namespace switchboard
