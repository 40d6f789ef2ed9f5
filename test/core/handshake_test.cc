// Tests for core/handshake.h: HELLO and WELCOME payloads, message payloads, DROPPED notices, and
// token helpers.
#include "handshake.h"

#include <gtest/gtest.h>
#include <msgpack.hpp>

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <utility>
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

// --- DROPPED (issue 11): what a stalled receiver missed, by topic ------------------------------

TEST(Dropped, RoundTripsCountAndTopics) {
  DroppedNotice in;
  in.count = 12345;
  in.topics = {{"a", 5}, {"job:progress", 12000}, {"t\xc3\xa9", 340}};
  DroppedNotice out;
  Status s = decode_dropped(encode_dropped(in), out);
  ASSERT_TRUE(s.ok()) << s.to_string();
  EXPECT_EQ(out.count, in.count);
  EXPECT_EQ(out.topics, in.topics);
}

TEST(Dropped, RoundTripsExtremesAndNoTopics) {
  DroppedNotice in;
  in.count = std::numeric_limits<std::uint64_t>::max();
  in.topics = {{"big", std::numeric_limits<std::uint64_t>::max()}, {"zero", 0}};
  DroppedNotice out;
  ASSERT_TRUE(decode_dropped(encode_dropped(in), out).ok());
  EXPECT_EQ(out.count, in.count);
  EXPECT_EQ(out.topics, in.topics);
  DroppedNotice none, none_out;
  none_out.count = 99;
  none_out.topics = {{"stale", 1}};
  ASSERT_TRUE(decode_dropped(encode_dropped(none), none_out).ok());
  EXPECT_EQ(none_out.count, 0u);
  EXPECT_TRUE(none_out.topics.empty()) << "decoding replaces what the notice held";
}

TEST(Dropped, RoundTripsAsManyTopicsAsANoticeNames) {
  DroppedNotice in;
  for (std::size_t i = 0; i < kDroppedTopicsMax; ++i) {
    in.topics["topic:" + std::to_string(i)] = i + 1;
    in.count += i + 1;
  }
  DroppedNotice out;
  ASSERT_TRUE(decode_dropped(encode_dropped(in), out).ok());
  EXPECT_EQ(out.count, in.count);
  EXPECT_EQ(out.topics, in.topics);
}

TEST(Dropped, AnEncodedNoticeNamesAtMostTheMaxTopicsAndKeepsTheWholeCount) {
  DroppedNotice in;
  for (std::size_t i = 0; i < 3 * kDroppedTopicsMax; ++i) {
    in.topics["topic:" + std::to_string(i)] = 1;
    ++in.count;
  }
  DroppedNotice out;
  ASSERT_TRUE(decode_dropped(encode_dropped(in), out).ok()) << "what we send, we accept";
  EXPECT_EQ(out.count, in.count);
  EXPECT_EQ(out.topics.size(), kDroppedTopicsMax);
  for (const auto& [topic, n] : out.topics) {
    EXPECT_EQ(in.topics.count(topic), 1u) << topic;
    EXPECT_EQ(n, 1u);
  }
}

TEST(Dropped, DecodeRejectsGarbageAndValuesThatAreNotAMap) {
  std::vector<std::string> inputs = {
      std::string(),           // nothing at all
      std::string("\xc1", 1),  // a byte msgpack never uses
      std::string("\x82\xa5"
                  "count",
                  7),                          // a map cut short
      std::string("\xdf\xff\xff\xff\xff", 5),  // a map claiming 2^32-1 entries
      std::string("\x81\xa5"
                  "count"
                  "\x01\xc0",
                  9),          // a valid map, then trailing bytes
      std::string("\x05", 1),  // an integer
      std::string("\xa5"
                  "count",
                  6),                  // a string
      std::string("\xc0", 1),          // nil
      std::string("\x92\x01\x80", 3),  // an array [1, {}]
  };
  for (const std::string& g : inputs) {
    DroppedNotice out;
    EXPECT_EQ(decode_dropped(slice_of(g), out).code(), Errc::protocol_error)
        << "input size " << g.size();
  }
  DroppedNotice out;
  EXPECT_EQ(decode_dropped(Slice(), out).code(), Errc::protocol_error);
}

// A notice whose fields have the wrong types, built by `fill` into a map of `entries` entries.
Slice notice_of(std::uint32_t entries, const std::function<void(Packer&)>& fill) {
  msgpack::sbuffer sb;
  Packer pk(sb);
  pk.pack_map(entries);
  fill(pk);
  return slice_of(sb);
}

TEST(Dropped, DecodeRejectsFieldsOfTheWrongType) {
  const std::vector<std::pair<std::string, Slice>> cases = {
      {"count as a string", notice_of(1,
                                      [](Packer& pk) {
                                        pack_str(pk, "count");
                                        pack_str(pk, "12");
                                      })},
      {"count negative", notice_of(1,
                                   [](Packer& pk) {
                                     pack_str(pk, "count");
                                     pk.pack_int8(-1);
                                   })},
      {"count as a float", notice_of(1,
                                     [](Packer& pk) {
                                       pack_str(pk, "count");
                                       pk.pack_double(1.5);
                                     })},
      {"topics as an array", notice_of(2,
                                       [](Packer& pk) {
                                         pack_str(pk, "count");
                                         pk.pack_uint8(1);
                                         pack_str(pk, "topics");
                                         pk.pack_array(1);
                                         pack_str(pk, "a");
                                       })},
      {"topics as a string", notice_of(2,
                                       [](Packer& pk) {
                                         pack_str(pk, "count");
                                         pk.pack_uint8(1);
                                         pack_str(pk, "topics");
                                         pack_str(pk, "a");
                                       })},
      {"a topic's count as a string", notice_of(2,
                                                [](Packer& pk) {
                                                  pack_str(pk, "count");
                                                  pk.pack_uint8(1);
                                                  pack_str(pk, "topics");
                                                  pk.pack_map(1);
                                                  pack_str(pk, "a");
                                                  pack_str(pk, "1");
                                                })},
      {"a topic's count negative", notice_of(2,
                                             [](Packer& pk) {
                                               pack_str(pk, "count");
                                               pk.pack_uint8(1);
                                               pack_str(pk, "topics");
                                               pk.pack_map(1);
                                               pack_str(pk, "a");
                                               pk.pack_int8(-1);
                                             })},
      {"a topic that is an integer", notice_of(2,
                                               [](Packer& pk) {
                                                 pack_str(pk, "count");
                                                 pk.pack_uint8(1);
                                                 pack_str(pk, "topics");
                                                 pk.pack_map(1);
                                                 pk.pack_uint8(7);
                                                 pk.pack_uint8(1);
                                               })},
      {"a topic's count that is a map", notice_of(2,
                                                  [](Packer& pk) {
                                                    pack_str(pk, "count");
                                                    pk.pack_uint8(1);
                                                    pack_str(pk, "topics");
                                                    pk.pack_map(1);
                                                    pack_str(pk, "a");
                                                    pk.pack_map(0);
                                                  })},
  };
  for (const auto& [what, payload] : cases) {
    DroppedNotice out;
    EXPECT_EQ(decode_dropped(payload, out).code(), Errc::protocol_error) << what;
  }
}

TEST(Dropped, DecodeRejectsANoticeWithoutACountAndLeavesTheOutputAsItWas) {
  DroppedNotice out;
  out.count = 7;
  out.topics = {{"kept", 7}};
  EXPECT_EQ(decode_dropped(notice_of(1,
                                     [](Packer& pk) {
                                       pack_str(pk, "topics");
                                       pk.pack_map(1);
                                       pack_str(pk, "a");
                                       pk.pack_uint8(1);
                                     }),
                           out)
                .code(),
            Errc::protocol_error);
  // Half-decoded input is not left behind either: the bad entry comes after a good one.
  EXPECT_EQ(decode_dropped(notice_of(2,
                                     [](Packer& pk) {
                                       pack_str(pk, "count");
                                       pk.pack_uint8(3);
                                       pack_str(pk, "topics");
                                       pk.pack_map(2);
                                       pack_str(pk, "a");
                                       pk.pack_uint8(1);
                                       pack_str(pk, "b");
                                       pack_str(pk, "2");
                                     }),
                           out)
                .code(),
            Errc::protocol_error);
  EXPECT_EQ(out.count, 7u);
  EXPECT_EQ(out.topics, (std::map<std::string, std::uint64_t>{{"kept", 7}}));
}

TEST(Dropped, DecodeRejectsHugeTopicMaps) {
  // A claim of 2^32-1 topics with nothing behind it: refused on the claim.
  DroppedNotice out;
  EXPECT_EQ(decode_dropped(notice_of(2,
                                     [](Packer& pk) {
                                       pack_str(pk, "count");
                                       pk.pack_uint8(1);
                                       pack_str(pk, "topics");
                                       pk.pack_map(0xffffffffu);
                                     }),
                           out)
                .code(),
            Errc::protocol_error);
  // One topic more than a notice may name, and a million (about 10 MB).
  EXPECT_EQ(decode_dropped(notice_of(2,
                                     [](Packer& pk) {
                                       pack_str(pk, "count");
                                       pk.pack_uint8(1);
                                       pack_str(pk, "topics");
                                       pk.pack_map(kDroppedTopicsMax + 1);
                                       for (std::size_t i = 0; i <= kDroppedTopicsMax; ++i) {
                                         pack_str(pk, "t" + std::to_string(i));
                                         pk.pack_uint8(1);
                                       }
                                     }),
                           out)
                .code(),
            Errc::protocol_error);
  EXPECT_EQ(decode_dropped(notice_of(2,
                                     [](Packer& pk) {
                                       pack_str(pk, "count");
                                       pk.pack_uint8(1);
                                       pack_str(pk, "topics");
                                       pk.pack_map(1000000);
                                       for (int i = 0; i < 1000000; ++i) {
                                         pack_str(pk, "t" + std::to_string(i));
                                         pk.pack_uint8(1);
                                       }
                                     }),
                           out)
                .code(),
            Errc::protocol_error);
  // Deep nesting where a topic's count should be.
  EXPECT_EQ(decode_dropped(notice_of(2,
                                     [](Packer& pk) {
                                       pack_str(pk, "count");
                                       pk.pack_uint8(1);
                                       pack_str(pk, "topics");
                                       for (int i = 0; i < 10000; ++i) {
                                         pk.pack_map(1);
                                         pack_str(pk, "a");
                                       }
                                       pk.pack_uint8(1);
                                     }),
                           out)
                .code(),
            Errc::protocol_error);
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

TEST(PeerInfo, APageCarriesItsOriginAndWindowAndOthersDoNot) {
  PeerInfo page{7, "renderer", "https://app.example #3", 42, true, "https://app.example", 3};
  PeerInfo out;
  ASSERT_TRUE(decode_peer_info(encode_peer_info(page), out).ok());
  EXPECT_EQ(out.origin, "https://app.example");
  EXPECT_EQ(out.window, 3u);
  EXPECT_EQ(out.name, page.name);
  PeerInfo plain{8, "node", "server", 43, true};
  PeerInfo plain_out;
  Slice bytes = encode_peer_info(plain);
  ASSERT_TRUE(decode_peer_info(bytes, plain_out).ok());
  EXPECT_TRUE(plain_out.origin.empty());
  EXPECT_EQ(plain_out.window, 0u);
  EXPECT_EQ(bytes.view().find("origin"), std::string_view::npos) << "sent only when set";
}

}  // namespace
}  // namespace switchboard
