// Tests for core/handshake.h: HELLO and WELCOME payloads, message payloads, and token helpers.
#include "handshake.h"

#include <gtest/gtest.h>
#include <msgpack.hpp>

#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <vector>

namespace switchboard {
namespace {

using Packer = msgpack::packer<msgpack::sbuffer>;

Slice slice_of(const msgpack::sbuffer& sb) {
  return Slice::copy_of(std::string_view(sb.data(), sb.size()));
}
Slice slice_of(std::string_view bytes) {
  return Slice::copy_of(bytes);
}

void pack_str(Packer& pk, std::string_view s) {
  pk.pack_str(static_cast<std::uint32_t>(s.size()));
  pk.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

TEST(Hello, RoundTripsEveryField) {
  Hello in;
  in.protocol = 1;
  in.token = random_token();
  in.role = "utility";
  in.name = "thumbnailer";
  in.pid = 4242424242u;
  Hello out;
  Status s = decode_hello(encode_hello(in), out);
  ASSERT_TRUE(s.ok()) << s.to_string();
  EXPECT_EQ(out.protocol, in.protocol);
  EXPECT_EQ(out.token, in.token);
  EXPECT_EQ(out.role, in.role);
  EXPECT_EQ(out.name, in.name);
  EXPECT_EQ(out.pid, in.pid);
}

TEST(Hello, RoundTripsEmptyStringsAndExtremeNumbers) {
  Hello in;
  in.protocol = std::numeric_limits<std::uint32_t>::max();
  in.pid = std::numeric_limits<std::uint64_t>::max();
  Hello out;
  out.token = "stale";
  out.role = "stale";
  ASSERT_TRUE(decode_hello(encode_hello(in), out).ok());
  EXPECT_EQ(out.protocol, in.protocol);
  EXPECT_EQ(out.pid, in.pid);
  EXPECT_EQ(out.token, "");
  EXPECT_EQ(out.role, "");
  EXPECT_EQ(out.name, "");
}

TEST(Welcome, RoundTripsEveryField) {
  Welcome in;
  in.protocol = 1;
  in.peer_id = 17;
  in.hub_pid = 1234;
  in.hub_name = "my-app";
  in.max_frame = 64u << 20;
  Welcome out;
  Status s = decode_welcome(encode_welcome(in), out);
  ASSERT_TRUE(s.ok()) << s.to_string();
  EXPECT_EQ(out.protocol, in.protocol);
  EXPECT_EQ(out.peer_id, in.peer_id);
  EXPECT_EQ(out.hub_pid, in.hub_pid);
  EXPECT_EQ(out.hub_name, in.hub_name);
  EXPECT_EQ(out.max_frame, in.max_frame);
}

TEST(Hello, IgnoresUnknownKeys) {
  msgpack::sbuffer sb;
  Packer pk(sb);
  pk.pack_map(3);
  pack_str(pk, "future");
  pk.pack_uint8(1);
  pack_str(pk, "role");
  pack_str(pk, "worker");
  pk.pack_uint8(9);  // a non-string key
  pack_str(pk, "ignored");
  Hello out;
  ASSERT_TRUE(decode_hello(slice_of(sb), out).ok());
  EXPECT_EQ(out.role, "worker");
  EXPECT_EQ(out.token, "");
}

TEST(Hello, DecodeRejectsGarbage) {
  const std::vector<std::string> garbage = {
      std::string(),                           // nothing at all
      std::string("\xc1", 1),                  // a byte msgpack never uses
      std::string("\x85\xa8protoc", 8),        // a map cut short
      std::string("\xdf\xff\xff\xff\xff", 5),  // a map claiming 2^32-1 entries
      std::string("\x81\xa5token\xa3"
                  "abc\xc0",
                  12),  // a valid map, then trailing bytes
      std::string("hello, hub"),
  };
  for (const std::string& g : garbage) {
    Hello out;
    EXPECT_EQ(decode_hello(slice_of(g), out).code(), Errc::protocol_error)
        << "input size " << g.size();
  }
}

TEST(Hello, DecodeRejectsAnEmptySlice) {
  Hello out;
  EXPECT_EQ(decode_hello(Slice(), out).code(), Errc::protocol_error);
}

TEST(Hello, DecodeRejectsValuesThatAreNotAMap) {
  std::vector<msgpack::sbuffer> inputs(3);
  {
    Packer pk(inputs[0]);
    pk.pack_uint8(1);
  }
  {
    Packer pk(inputs[1]);
    pack_str(pk, "token");
  }
  {
    Packer pk(inputs[2]);
    pk.pack_nil();
  }
  for (const auto& sb : inputs) {
    Hello out;
    EXPECT_EQ(decode_hello(slice_of(sb), out).code(), Errc::protocol_error);
  }
}

TEST(Hello, DecodeRejectsAHugeArrayByTheUnpackLimits) {
  // Without limits this would decode fine (the "token" value is simply not a string), so only the
  // array limit can turn it into an error.
  msgpack::sbuffer sb;
  Packer pk(sb);
  pk.pack_map(1);
  pack_str(pk, "token");
  pk.pack_array(100000);
  for (int i = 0; i < 100000; ++i) pk.pack_uint8(0);
  Hello out;
  Status s = decode_hello(slice_of(sb), out);
  EXPECT_EQ(s.code(), Errc::protocol_error);
}

TEST(Hello, DecodeRejectsAHugeArrayClaimWithoutItsElements) {
  // The header alone claims 100000 elements; nothing follows. Must fail on the claim.
  msgpack::sbuffer sb;
  Packer pk(sb);
  pk.pack_map(1);
  pack_str(pk, "token");
  pk.pack_array(100000);
  Hello out;
  EXPECT_EQ(decode_hello(slice_of(sb), out).code(), Errc::protocol_error);
}

TEST(Hello, DecodeRejectsDeepNesting) {
  constexpr int kDepth = 100000;
  msgpack::sbuffer sb;
  Packer pk(sb);
  for (int i = 0; i < kDepth; ++i) {
    pk.pack_map(1);
    pack_str(pk, "a");
  }
  pk.pack_uint8(0);
  Hello out;
  EXPECT_EQ(decode_hello(slice_of(sb), out).code(), Errc::protocol_error);
}

TEST(Hello, DecodeRejectsAMapNestedThreeDeep) {
  msgpack::sbuffer sb;
  Packer pk(sb);
  pk.pack_map(1);
  pack_str(pk, "role");
  pk.pack_map(1);
  pack_str(pk, "a");
  pk.pack_map(1);
  pack_str(pk, "b");
  pk.pack_uint8(0);
  Hello out;
  EXPECT_EQ(decode_hello(slice_of(sb), out).code(), Errc::protocol_error);
}

TEST(Hello, DecodeRejectsTooManyKeys) {
  msgpack::sbuffer sb;
  Packer pk(sb);
  pk.pack_map(1000);
  for (int i = 0; i < 1000; ++i) {
    pack_str(pk, "k" + std::to_string(i));
    pk.pack_uint8(0);
  }
  Hello out;
  EXPECT_EQ(decode_hello(slice_of(sb), out).code(), Errc::protocol_error);
}

TEST(Hello, DecodeRejectsALongString) {
  Hello in;
  in.token = std::string(3000, 'a');
  Hello out;
  EXPECT_EQ(decode_hello(encode_hello(in), out).code(), Errc::protocol_error);
}

TEST(Welcome, DecodeRejectsGarbage) {
  Welcome out;
  EXPECT_EQ(decode_welcome(slice_of(std::string("\xc1", 1)), out).code(), Errc::protocol_error);
  EXPECT_EQ(decode_welcome(slice_of(std::string("\x92\x01\x02", 3)), out).code(),
            Errc::protocol_error);
  EXPECT_EQ(decode_welcome(Slice(), out).code(), Errc::protocol_error);
}

TEST(Message, RoundTrips) {
  for (std::string_view m : {std::string_view("no handler is registered for 'fs:read'"),
                             std::string_view(""), std::string_view("x")}) {
    EXPECT_EQ(decode_message(encode_message(m)), m);
  }
  const std::string long_message(5000, 'm');
  EXPECT_EQ(decode_message(encode_message(long_message)), long_message);
}

TEST(Message, DecodeGivesAPlaceholderForGarbage) {
  const std::string placeholder = "(no message)";
  EXPECT_EQ(decode_message(Slice()), placeholder);
  EXPECT_EQ(decode_message(slice_of(std::string("\xc1", 1))), placeholder);
  EXPECT_EQ(decode_message(slice_of(std::string("\xa5"
                                                "ab",
                                                3))),
            placeholder);  // cut short
  msgpack::sbuffer sb;
  Packer pk(sb);
  pk.pack_uint32(7);
  EXPECT_EQ(decode_message(slice_of(sb)), placeholder);
  msgpack::sbuffer sb2;
  Packer pk2(sb2);
  pk2.pack_map(1);
  pack_str(pk2, "message");
  pack_str(pk2, "hidden");
  EXPECT_EQ(decode_message(slice_of(sb2)), placeholder);
}

TEST(ConstantTimeEqual, EqualInputsCompareEqual) {
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  const std::string t = random_token();
  EXPECT_TRUE(constant_time_equal(t, std::string(t)));
}

TEST(ConstantTimeEqual, EmptyInputsCompareEqual) {
  EXPECT_TRUE(constant_time_equal("", ""));
  EXPECT_FALSE(constant_time_equal("", "a"));
  EXPECT_FALSE(constant_time_equal("a", ""));
}

TEST(ConstantTimeEqual, DifferentInputsCompareUnequal) {
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "xbc"));
  EXPECT_FALSE(constant_time_equal(std::string_view("a\0c", 3), std::string_view("a\1c", 3)));
}

TEST(ConstantTimeEqual, PrefixIsNotEqual) {
  EXPECT_FALSE(constant_time_equal("abc", "abcd"));
  EXPECT_FALSE(constant_time_equal("abcd", "abc"));
  // A trailing NUL must not be mistaken for the end of the shorter input.
  EXPECT_FALSE(constant_time_equal("abc", std::string_view("abc\0", 4)));
}

TEST(RandomToken, Is64LowercaseHexCharacters) {
  const std::string t = random_token();
  ASSERT_EQ(t.size(), 64u);
  for (char c : t) {
    EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << "char '" << c << "'";
  }
}

TEST(RandomToken, TwoCallsDiffer) {
  const std::string a = random_token();
  const std::string b = random_token();
  EXPECT_NE(a, b);
  EXPECT_FALSE(constant_time_equal(a, b));
}

}  // namespace
}  // namespace switchboard
