// Tests for the shared value vectors (test/vectors/*.json, docs/PROTOCOL.md section 10): every
// value the JavaScript codec writes is exactly one complete msgpack object for msgpack-c, in its
// smallest form (msgpack-c packs it back to the same bytes), with ext data laid out as the protocol
// says; every invalid vector is refused, as msgpack or by those ext layouts. test/js/codec.test.mjs
// checks the same files against lib/codec.ts.
#include <gtest/gtest.h>
#include <msgpack.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#ifndef SWITCHBOARD_VECTORS_DIR
#error "SWITCHBOARD_VECTORS_DIR must name test/vectors (test/core/CMakeLists.txt sets it)"
#endif

namespace switchboard {
namespace {

using Bytes = std::vector<std::uint8_t>;
using Entry = std::map<std::string, std::string>;

std::string read_vectors(const std::string& name) {
  const std::string path = std::string(SWITCHBOARD_VECTORS_DIR) + "/" + name;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Reads exactly what the vector files hold: one array of flat objects whose values are strings.
// Only \" and \\ are unescaped; other escapes stay as written (they occur only in names and
// JavaScript expressions, which this test prints but never interprets).
class VectorFile {
 public:
  explicit VectorFile(std::string text) : s_(std::move(text)) {}

  std::vector<Entry> parse() {
    std::vector<Entry> out;
    expect('[');
    if (peek() == ']') return out;
    for (;;) {
      out.push_back(object());
      const char c = next();
      if (c == ']') break;
      if (c != ',') fail("expected ',' or ']'");
    }
    if (peek() != '\0') fail("text after the array");
    return out;
  }

 private:
  Entry object() {
    Entry e;
    expect('{');
    if (peek() == '}') {
      ++i_;
      return e;
    }
    for (;;) {
      std::string key = string();
      expect(':');
      e[key] = string();
      const char c = next();
      if (c == '}') break;
      if (c != ',') fail("expected ',' or '}'");
    }
    return e;
  }

  std::string string() {
    expect('"');
    std::string out;
    while (i_ < s_.size()) {
      const char c = s_[i_++];
      if (c == '"') return out;
      if (c == '\\' && i_ < s_.size()) {
        const char escaped = s_[i_++];
        if (escaped != '"' && escaped != '\\') out += '\\';
        out += escaped;
      } else {
        out += c;
      }
    }
    fail("unterminated string");
  }

  char peek() {
    while (i_ < s_.size() &&
           (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t')) {
      ++i_;
    }
    return i_ < s_.size() ? s_[i_] : '\0';
  }
  char next() {
    const char c = peek();
    ++i_;
    return c;
  }
  void expect(char c) {
    if (next() != c) fail(std::string("expected '") + c + "'");
  }
  [[noreturn]] void fail(const std::string& what) {
    throw std::runtime_error("vector file: " + what + " at character " + std::to_string(i_));
  }

  std::string s_;
  std::size_t i_ = 0;
};

const std::vector<Entry>& vectors(const std::string& name) {
  static std::map<std::string, std::vector<Entry>> cache;
  auto it = cache.find(name);
  if (it == cache.end()) it = cache.emplace(name, VectorFile(read_vectors(name)).parse()).first;
  return it->second;
}

Bytes from_hex(const std::string& hex) {
  if (hex.size() % 2 != 0) throw std::runtime_error("odd hex length");
  Bytes out;
  out.reserve(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    out.push_back(static_cast<std::uint8_t>(std::stoul(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

// The decoder's rule, in msgpack-c terms: no declared count can exceed what the bytes could hold
// (an element takes at least one byte, a map entry two), and nesting stops at 64, as in
// DEFAULT_DECODE_LIMITS. msgpack-c checks these before allocating.
msgpack::unpack_limit limits_for(std::size_t size) {
  return msgpack::unpack_limit(size, size / 2, size, size, size, 64);
}

struct Parsed {
  msgpack::object_handle handle;
  std::size_t offset = 0;  // how far msgpack-c read
  std::string error;       // why msgpack-c refused, or ""
};

Parsed parse(const Bytes& bytes) {
  Parsed p;
  try {
    p.handle = msgpack::unpack(reinterpret_cast<const char*>(bytes.data()), bytes.size(), p.offset,
                               nullptr, nullptr, limits_for(bytes.size()));
  } catch (const msgpack::unpack_error& e) {
    p.error = std::string("msgpack-c: ") + e.what();
  }
  return p;
}

// Packs `o` the way msgpack-c does, except float64: msgpack-c 4 packs a double that holds an
// integer as an integer (2^53 becomes cf...), but JavaScript's 2 ** 53, -0 and 1.0 are float64
// by design (only safe integers are ints), so float64 is written as float64.
void repack_into(msgpack::sbuffer& sb, const msgpack::object& o) {
  msgpack::packer<msgpack::sbuffer> packer(sb);
  switch (o.type) {
    case msgpack::type::FLOAT64: {
      std::uint64_t bits = 0;
      std::memcpy(&bits, &o.via.f64, sizeof bits);
      char b[9];
      b[0] = static_cast<char>(0xcb);
      for (int i = 0; i < 8; ++i) b[1 + i] = static_cast<char>((bits >> (56 - 8 * i)) & 0xffu);
      sb.write(b, sizeof b);
      return;
    }
    case msgpack::type::ARRAY:
      packer.pack_array(o.via.array.size);
      for (std::uint32_t i = 0; i < o.via.array.size; ++i) repack_into(sb, o.via.array.ptr[i]);
      return;
    case msgpack::type::MAP:
      packer.pack_map(o.via.map.size);
      for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
        repack_into(sb, o.via.map.ptr[i].key);
        repack_into(sb, o.via.map.ptr[i].val);
      }
      return;
    default:
      packer.pack(o);
  }
}

Bytes repack(const msgpack::object& o) {
  msgpack::sbuffer sb;
  repack_into(sb, o);
  return Bytes(sb.data(), sb.data() + sb.size());
}

std::string check(const msgpack::object& o, bool canonical);

bool is_str(const msgpack::object& o) {
  return o.type == msgpack::type::STR;
}

std::string check_regexp_flags(const msgpack::object& flags) {
  const std::string f(flags.via.str.ptr, flags.via.str.size);
  const std::string allowed = "dgimsuvy";
  for (std::size_t i = 0; i < f.size(); ++i) {
    if (allowed.find(f[i]) == std::string::npos || f.find(f[i], i + 1) != std::string::npos) {
      return "RegExp (ext 7) with flags '" + f + "'";
    }
  }
  return "";
}

// Ext 4-7 hold one msgpack value that fills the ext data exactly.
std::string check_nested(int type, const char* data, std::size_t size, bool canonical) {
  const Bytes bytes(data, data + size);
  const Parsed p = parse(bytes);
  if (!p.error.empty()) return "ext " + std::to_string(type) + ": " + p.error;
  if (p.offset != size) return "ext " + std::to_string(type) + " has stray bytes";
  const msgpack::object& o = p.handle.get();
  if (canonical && repack(o) != bytes) return "ext " + std::to_string(type) + " is not canonical";
  if (type == 4) {
    if (o.type != msgpack::type::MAP) return "Error (ext 4) does not hold a map";
    for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
      const msgpack::object_kv& kv = o.via.map.ptr[i];
      if (!is_str(kv.key)) continue;
      const std::string key(kv.key.via.str.ptr, kv.key.via.str.size);
      if ((key == "name" || key == "message" || key == "class") && !is_str(kv.val)) {
        return "Error (ext 4) with a " + key + " that is not a str";
      }
      if (key == "props" && kv.val.type != msgpack::type::MAP) return "Error props not a map";
      if (key == "errors" && kv.val.type != msgpack::type::ARRAY)
        return "Error errors not an array";
    }
  } else {
    if (o.type != msgpack::type::ARRAY) return "ext " + std::to_string(type) + " holds no array";
    const msgpack::object_array& a = o.via.array;
    if (type == 5 && a.size % 2 != 0) return "Map (ext 5) with an odd count";
    if (type == 7) {
      if (a.size != 2 || !is_str(a.ptr[0]) || !is_str(a.ptr[1])) return "RegExp is not [str, str]";
      std::string flags = check_regexp_flags(a.ptr[1]);
      if (!flags.empty()) return flags;
    }
  }
  return check(o, canonical);
}

std::uint32_t be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

std::string check_ext(const msgpack::object_ext& ext, bool canonical) {
  const auto* d = reinterpret_cast<const std::uint8_t*>(ext.data());
  const std::size_t n = ext.size;
  const int type = ext.type();
  switch (type) {
    case 1:  // undefined
      return n == 0 ? "" : "undefined (ext 1) with data";
    case 2:  // Date
      return n == 8 ? "" : "Date (ext 2) not of 8 bytes";
    case 3:  // BigInt: sign byte 0 or 1, magnitude without leading zeros, no negative zero
      if (n == 0 || d[0] > 1 || (n > 1 && d[1] == 0) || (d[0] == 1 && n == 1)) {
        return "malformed BigInt (ext 3)";
      }
      return "";
    case 4:
    case 5:
    case 6:
    case 7:
      return check_nested(type, ext.data(), n, canonical);
    case 8: {  // typed array: element tag, then whole elements
      static constexpr std::size_t kElementSize[] = {0, 1, 1, 2, 2, 4, 4, 4, 8, 8, 8, 1};
      if (n == 0 || d[0] == 0 || d[0] > 11) return "typed array (ext 8) with a bad element tag";
      return (n - 1) % kElementSize[d[0]] == 0 ? "" : "typed array (ext 8) of partial elements";
    }
    case 9:   // ArrayBuffer
    case 10:  // Buffer
      return "";
    case -1:  // msgpack timestamp: 32, 64 or 96 bits, nanoseconds < 10^9
      if (n == 4) return "";
      if (n == 8) return (be32(d) >> 2) <= 999999999u ? "" : "timestamp nanoseconds too large";
      if (n == 12) return be32(d) <= 999999999u ? "" : "timestamp nanoseconds too large";
      return "timestamp (ext -1) not of 4, 8 or 12 bytes";
    default:
      return "unknown ext type " + std::to_string(type);
  }
}

// "" when `o` and everything inside it follow docs/PROTOCOL.md section 10, else why not.
std::string check(const msgpack::object& o, bool canonical) {
  switch (o.type) {
    case msgpack::type::ARRAY:
      for (std::uint32_t i = 0; i < o.via.array.size; ++i) {
        std::string why = check(o.via.array.ptr[i], canonical);
        if (!why.empty()) return why;
      }
      return "";
    case msgpack::type::MAP:
      for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
        std::string why = check(o.via.map.ptr[i].key, canonical);
        if (why.empty()) why = check(o.via.map.ptr[i].val, canonical);
        if (!why.empty()) return why;
      }
      return "";
    case msgpack::type::EXT:
      return check_ext(o.via.ext, canonical);
    default:
      return "";
  }
}

// Why `bytes` is not one valid value (msgpack-c's refusal, leftovers, a bad ext), or "".
std::string refusal(const Bytes& bytes) {
  const Parsed p = parse(bytes);
  if (!p.error.empty()) return p.error;
  if (p.offset != bytes.size()) return "trailing bytes";
  return check(p.handle.get(), false);
}

TEST(ValueVectors, FilesHoldEnoughCases) {
  EXPECT_GE(vectors("values.json").size(), 60u);
  EXPECT_GE(vectors("decode-only.json").size(), 20u);
  EXPECT_GE(vectors("invalid.json").size(), 30u);
  for (const char* file : {"values.json", "decode-only.json", "invalid.json"}) {
    for (const Entry& e : vectors(file)) {
      EXPECT_EQ(e.count("name"), 1u) << file;
      EXPECT_EQ(e.count("hex"), 1u) << file << ": " << e.at("name");
    }
  }
}

TEST(ValueVectors, EveryValueIsOneCompleteObjectInItsSmallestForm) {
  for (const Entry& e : vectors("values.json")) {
    SCOPED_TRACE(e.at("name"));
    const Bytes bytes = from_hex(e.at("hex"));
    const Parsed p = parse(bytes);
    ASSERT_EQ(p.error, "");
    EXPECT_EQ(p.offset, bytes.size()) << "exactly one object, nothing after it";
    // msgpack-c packs every integer, string, array, map, bin and ext header in its smallest form;
    // packing what it read must give the same bytes back (repack_into: float64 stays float64).
    EXPECT_EQ(repack(p.handle.get()), bytes);
    EXPECT_EQ(check(p.handle.get(), true), "");
  }
}

TEST(ValueVectors, OtherEncodersFormsAreCompleteObjects) {
  for (const Entry& e : vectors("decode-only.json")) {
    SCOPED_TRACE(e.at("name"));
    EXPECT_EQ(refusal(from_hex(e.at("hex"))), "");
  }
}

TEST(ValueVectors, InvalidInputIsRefused) {
  for (const Entry& e : vectors("invalid.json")) {
    SCOPED_TRACE(e.at("name"));
    const std::string why = refusal(from_hex(e.at("hex")));
    if (e.count("js") != 0) {
      // Bad UTF-8 is not an error (it decodes with U+FFFD): msgpack-c does not look inside str.
      EXPECT_EQ(why, "");
    } else {
      EXPECT_NE(why, "") << "accepted, but: " << e.at("reason");
    }
  }
}

TEST(ValueVectors, NestingStopsAt64Levels) {
  const auto nested = [](std::size_t levels) {
    Bytes b(levels, 0x91);
    b.push_back(0xc0);
    return b;
  };
  EXPECT_EQ(refusal(nested(64)), "");
  const Bytes deeper = nested(65);
  std::size_t offset = 0;
  EXPECT_THROW(msgpack::unpack(reinterpret_cast<const char*>(deeper.data()), deeper.size(), offset,
                               nullptr, nullptr, limits_for(deeper.size())),
               msgpack::depth_size_overflow);
  EXPECT_NE(refusal(nested(100000)), "");
}

TEST(ValueVectors, HugeDeclaredCountsFailBeforeAnyAllocation) {
  // An array of 2^32-1 elements in 10 bytes: msgpack-c would reserve 2^32-1 objects without the
  // limit (unpack_limit defaults to none).
  const Bytes array = from_hex("ddffffffffc0c0c0c0c0");
  std::size_t offset = 0;
  EXPECT_THROW(msgpack::unpack(reinterpret_cast<const char*>(array.data()), array.size(), offset,
                               nullptr, nullptr, limits_for(array.size())),
               msgpack::array_size_overflow);
  const Bytes map = from_hex("dfffffffffa161c0");
  offset = 0;
  EXPECT_THROW(msgpack::unpack(reinterpret_cast<const char*>(map.data()), map.size(), offset,
                               nullptr, nullptr, limits_for(map.size())),
               msgpack::map_size_overflow);
}

}  // namespace
}  // namespace switchboard
