// Tests for core/envelope.h: the seven-field msgpack envelope, its zero-copy payload and its
// rejection of anything but the exact v1 shape.
#include "envelope.h"

#include <gtest/gtest.h>
#include <msgpack.hpp>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "frame.h"

namespace switchboard {
namespace {

using Bytes = std::vector<std::uint8_t>;

SharedBuffer buffer_of(const void* data, std::size_t size) {
  return std::make_shared<const Buffer>(data, size);
}
SharedBuffer buffer_of(const msgpack::sbuffer& sb) {
  return buffer_of(sb.data(), sb.size());
}

Slice payload_of(std::size_t size, std::uint8_t seed) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>((i * 13u + seed) & 0xffu);
  return Slice::copy_of(s);
}

// Checks the frame's length prefix and returns the body: head after the prefix, then payload.
SharedBuffer body_of(const WireFrame& f) {
  EXPECT_TRUE(f.head);
  if (!f.head || f.head->size() < kFrameHeaderSize) {
    ADD_FAILURE() << "head shorter than a frame header";
    return nullptr;
  }
  const std::size_t body_size = f.head->size() - kFrameHeaderSize + f.payload.size;
  const std::uint8_t* h = f.head->data();
  EXPECT_EQ(h[0], (body_size >> 24) & 0xffu);
  EXPECT_EQ(h[1], (body_size >> 16) & 0xffu);
  EXPECT_EQ(h[2], (body_size >> 8) & 0xffu);
  EXPECT_EQ(h[3], body_size & 0xffu);
  EXPECT_EQ(f.size(), kFrameHeaderSize + body_size);
  auto body = std::make_shared<Buffer>();
  body->append(h + kFrameHeaderSize, f.head->size() - kFrameHeaderSize);
  body->append(f.payload.data, f.payload.size);
  return body;
}

SharedBuffer encode_body(const Envelope& env) {
  WireFrame f;
  Status s = encode_frame(env, f);
  EXPECT_TRUE(s.ok()) << s.to_string();
  return body_of(f);
}

Envelope sample(Kind kind, std::string topic, Slice payload) {
  Envelope e;
  e.kind = kind;
  e.id = 0x0102030405060708u;
  e.topic = std::move(topic);
  e.flags = kFlagRawPayload;
  e.sender = 77;
  e.payload = std::move(payload);
  return e;
}

void expect_same(const Envelope& got, const Envelope& want) {
  EXPECT_EQ(got.kind, want.kind);
  EXPECT_EQ(got.id, want.id);
  EXPECT_EQ(got.topic, want.topic);
  EXPECT_EQ(got.flags, want.flags);
  EXPECT_EQ(got.sender, want.sender);
  EXPECT_EQ(got.payload.view(), want.payload.view());
}

// Packs the first six fields of a v1 envelope; the caller adds the payload (or not).
void pack_fields(msgpack::packer<msgpack::sbuffer>& pk, std::uint64_t version = kProtocolVersion) {
  pk.pack_uint64(version);
  pk.pack_uint8(static_cast<std::uint8_t>(Kind::event));
  pk.pack_uint64(9);
  pk.pack_str(3);
  pk.pack_str_body("a:b", 3);
  pk.pack_uint32(0);
  pk.pack_uint64(1);
}

void pack_payload(msgpack::packer<msgpack::sbuffer>& pk) {
  pk.pack_bin(2);
  pk.pack_bin_body("xy", 2);
}

Errc decode_code(const SharedBuffer& body, const DecodeLimits& limits = {}) {
  Envelope out;
  return decode_envelope(body, out, limits).code();
}

TEST(EncodeFrame, RoundTripsEveryFieldForSeveralKinds) {
  const Kind kinds[] = {Kind::hello,  Kind::welcome, Kind::subscribe,  Kind::event,
                        Kind::invoke, Kind::result,  Kind::error,      Kind::cancel,
                        Kind::ping,   Kind::goaway,  Kind::stream_data};
  std::uint8_t seed = 0;
  for (Kind k : kinds) {
    for (std::size_t payload_size : {std::size_t{0}, std::size_t{1}, std::size_t{300}}) {
      Envelope env =
          sample(k, "topic:" + std::string(kind_name(k)), payload_of(payload_size, seed++));
      SharedBuffer body = encode_body(env);
      ASSERT_TRUE(body);
      Envelope got;
      Status s = decode_envelope(body, got);
      ASSERT_TRUE(s.ok()) << kind_name(k) << ": " << s.to_string();
      expect_same(got, env);
    }
  }
}

TEST(EncodeFrame, RoundTripsExtremeFieldValues) {
  Envelope env;
  env.kind = Kind::invoke;
  env.id = std::numeric_limits<std::uint64_t>::max();
  env.topic = "";
  env.flags = std::numeric_limits<std::uint32_t>::max();
  env.sender = std::numeric_limits<std::uint64_t>::max();
  SharedBuffer body = encode_body(env);
  ASSERT_TRUE(body);
  Envelope got;
  ASSERT_TRUE(decode_envelope(body, got).ok());
  expect_same(got, env);

  env.id = 0;
  env.flags = 0;
  env.sender = 0;
  env.topic = std::string("\0\xff\x7f", 3);
  body = encode_body(env);
  Envelope got2;
  ASSERT_TRUE(decode_envelope(body, got2).ok());
  expect_same(got2, env);
}

TEST(EncodeFrame, EmptyPayloadDecodesAsEmpty) {
  Envelope env = sample(Kind::event, "t", Slice());
  SharedBuffer body = encode_body(env);
  Envelope got;
  ASSERT_TRUE(decode_envelope(body, got).ok());
  EXPECT_EQ(got.payload.size, 0u);
  EXPECT_TRUE(got.payload.empty());
}

TEST(EncodeFrame, RoundTripsAOneMebibytePayload) {
  Envelope env = sample(Kind::event, "big", payload_of(1u << 20, 5));
  SharedBuffer body = encode_body(env);
  ASSERT_TRUE(body);
  Envelope got;
  ASSERT_TRUE(decode_envelope(body, got).ok());
  ASSERT_EQ(got.payload.size, 1u << 20);
  expect_same(got, env);
}

TEST(EncodeFrame, SharesThePayloadInsteadOfCopyingIt) {
  Envelope env = sample(Kind::event, "t", payload_of(64, 1));
  WireFrame f;
  ASSERT_TRUE(encode_frame(env, f).ok());
  EXPECT_EQ(f.payload.data, env.payload.data);
  EXPECT_EQ(f.payload.owner, env.payload.owner);
  EXPECT_EQ(f.payload.size, env.payload.size);
}

TEST(DecodeEnvelope, PayloadPointsIntoTheBodyBuffer) {
  Envelope env = sample(Kind::event, "t", payload_of(100, 2));
  SharedBuffer body = encode_body(env);
  ASSERT_TRUE(body);
  Envelope got;
  ASSERT_TRUE(decode_envelope(body, got).ok());
  const std::uint8_t* begin = body->data();
  const std::uint8_t* end = body->data() + body->size();
  EXPECT_GE(got.payload.data, begin);
  EXPECT_LE(got.payload.data + got.payload.size, end);
  EXPECT_EQ(got.payload.owner, body);
  EXPECT_EQ(got.payload.view(), env.payload.view());
}

TEST(DecodeEnvelope, AcceptsTopicOfExactlyMaxTopicBytes) {
  Envelope env = sample(Kind::event, std::string(kDefaultMaxTopic, 't'), payload_of(3, 3));
  Envelope got;
  ASSERT_TRUE(decode_envelope(encode_body(env), got).ok());
  EXPECT_EQ(got.topic.size(), kDefaultMaxTopic);

  DecodeLimits small{16};
  env.topic = std::string(16, 's');
  Envelope got2;
  EXPECT_TRUE(decode_envelope(encode_body(env), got2, small).ok());
}

TEST(DecodeEnvelope, RejectsTopicOfMaxTopicPlusOneBytes) {
  Envelope env = sample(Kind::event, std::string(kDefaultMaxTopic + 1, 't'), payload_of(3, 3));
  EXPECT_EQ(decode_code(encode_body(env)), Errc::protocol_error);

  DecodeLimits small{16};
  env.topic = std::string(17, 's');
  EXPECT_EQ(decode_code(encode_body(env), small), Errc::protocol_error);
}

TEST(DecodeEnvelope, RejectsNullAndEmptyBodies) {
  EXPECT_EQ(decode_code(nullptr), Errc::protocol_error);
  EXPECT_EQ(decode_code(std::make_shared<const Buffer>()), Errc::protocol_error);
}

TEST(DecodeEnvelope, RejectsValuesThatAreNotAnArray) {
  {
    msgpack::sbuffer sb;
    msgpack::packer<msgpack::sbuffer> pk(sb);
    pk.pack_uint8(5);
    EXPECT_EQ(decode_code(buffer_of(sb)), Errc::protocol_error);
  }
  {
    msgpack::sbuffer sb;
    msgpack::packer<msgpack::sbuffer> pk(sb);
    pk.pack_str(5);
    pk.pack_str_body("hello", 5);
    EXPECT_EQ(decode_code(buffer_of(sb)), Errc::protocol_error);
  }
  {
    // A map with seven entries, each value what the array would hold at that index.
    msgpack::sbuffer sb;
    msgpack::packer<msgpack::sbuffer> pk(sb);
    pk.pack_map(7);
    for (std::uint8_t i = 0; i < 7; ++i) {
      pk.pack_uint8(i);
      pk.pack_uint8(1);
    }
    EXPECT_EQ(decode_code(buffer_of(sb)), Errc::protocol_error);
  }
}

TEST(DecodeEnvelope, RejectsArraysOfSixAndEightElements) {
  {
    msgpack::sbuffer sb;
    msgpack::packer<msgpack::sbuffer> pk(sb);
    pk.pack_array(6);
    pack_fields(pk);
    EXPECT_EQ(decode_code(buffer_of(sb)), Errc::protocol_error);
  }
  {
    msgpack::sbuffer sb;
    msgpack::packer<msgpack::sbuffer> pk(sb);
    pk.pack_array(8);
    pack_fields(pk);
    pack_payload(pk);
    pack_payload(pk);
    EXPECT_EQ(decode_code(buffer_of(sb)), Errc::protocol_error);
  }
}

TEST(DecodeEnvelope, AcceptsTheHandBuiltReferenceEnvelope) {
  // The control for the malformed cases below: the same packer calls, well-formed.
  msgpack::sbuffer sb;
  msgpack::packer<msgpack::sbuffer> pk(sb);
  pk.pack_array(7);
  pack_fields(pk);
  pack_payload(pk);
  Envelope got;
  Status s = decode_envelope(buffer_of(sb), got);
  ASSERT_TRUE(s.ok()) << s.to_string();
  EXPECT_EQ(got.kind, Kind::event);
  EXPECT_EQ(got.id, 9u);
  EXPECT_EQ(got.topic, "a:b");
  EXPECT_EQ(got.flags, 0u);
  EXPECT_EQ(got.sender, 1u);
  EXPECT_EQ(got.payload.view(), "xy");
}

// Builds a seven-element envelope where field `index` is replaced by what `bad` packs.
template <typename Fn>
SharedBuffer with_bad_field(std::size_t index, Fn bad) {
  msgpack::sbuffer sb;
  msgpack::packer<msgpack::sbuffer> pk(sb);
  pk.pack_array(7);
  for (std::size_t i = 0; i < 7; ++i) {
    if (i == index) {
      bad(pk);
      continue;
    }
    switch (i) {
      case 0:
        pk.pack_uint64(kProtocolVersion);
        break;
      case 1:
        pk.pack_uint8(static_cast<std::uint8_t>(Kind::event));
        break;
      case 2:
        pk.pack_uint64(9);
        break;
      case 3:
        pk.pack_str(1);
        pk.pack_str_body("t", 1);
        break;
      case 4:
        pk.pack_uint32(0);
        break;
      case 5:
        pk.pack_uint64(1);
        break;
      case 6:
        pack_payload(pk);
        break;
    }
  }
  return buffer_of(sb);
}

using Packer = msgpack::packer<msgpack::sbuffer>;

TEST(DecodeEnvelope, RejectsTopicThatIsAnInteger) {
  EXPECT_EQ(decode_code(with_bad_field(3, [](Packer& pk) { pk.pack_uint8(7); })),
            Errc::protocol_error);
}

TEST(DecodeEnvelope, RejectsKindThatIsAString) {
  EXPECT_EQ(decode_code(with_bad_field(1,
                                       [](Packer& pk) {
                                         pk.pack_str(5);
                                         pk.pack_str_body("EVENT", 5);
                                       })),
            Errc::protocol_error);
}

TEST(DecodeEnvelope, RejectsNegativeIntegersInEveryIntegerField) {
  for (std::size_t index : {0u, 1u, 2u, 4u, 5u}) {
    EXPECT_EQ(decode_code(with_bad_field(index, [](Packer& pk) { pk.pack_int64(-1); })),
              Errc::protocol_error)
        << "field " << index;
  }
}

TEST(DecodeEnvelope, RejectsWrongTypesInEveryField) {
  // nil, bool, float, a nested array, a map, an ext: valid in no field but the payload's nil.
  auto nested_array = [](Packer& pk) {
    pk.pack_array(1);
    pk.pack_uint8(1);
  };
  auto map = [](Packer& pk) { pk.pack_map(0); };
  auto boolean = [](Packer& pk) { pk.pack_true(); };
  auto real = [](Packer& pk) { pk.pack_double(1.5); };
  auto ext = [](Packer& pk) {
    pk.pack_ext(1, 1);
    pk.pack_ext_body("z", 1);
  };
  for (std::size_t index = 0; index < 7; ++index) {
    EXPECT_EQ(decode_code(with_bad_field(index, nested_array)), Errc::protocol_error) << index;
    EXPECT_EQ(decode_code(with_bad_field(index, map)), Errc::protocol_error) << index;
    EXPECT_EQ(decode_code(with_bad_field(index, boolean)), Errc::protocol_error) << index;
    EXPECT_EQ(decode_code(with_bad_field(index, real)), Errc::protocol_error) << index;
    EXPECT_EQ(decode_code(with_bad_field(index, ext)), Errc::protocol_error) << index;
  }
}

TEST(DecodeEnvelope, RejectsPayloadThatIsAStringOrAnInteger) {
  EXPECT_EQ(decode_code(with_bad_field(6,
                                       [](Packer& pk) {
                                         pk.pack_str(2);
                                         pk.pack_str_body("xy", 2);
                                       })),
            Errc::protocol_error);
  EXPECT_EQ(decode_code(with_bad_field(6, [](Packer& pk) { pk.pack_uint8(1); })),
            Errc::protocol_error);
}

TEST(DecodeEnvelope, RejectsTopicThatIsBinary) {
  EXPECT_EQ(decode_code(with_bad_field(3,
                                       [](Packer& pk) {
                                         pk.pack_bin(1);
                                         pk.pack_bin_body("t", 1);
                                       })),
            Errc::protocol_error);
}

TEST(DecodeEnvelope, RejectsFlagsAbove32Bits) {
  EXPECT_EQ(
      decode_code(with_bad_field(4, [](Packer& pk) { pk.pack_uint64(std::uint64_t{1} << 32); })),
      Errc::protocol_error);
}

TEST(DecodeEnvelope, RejectsUnknownKinds) {
  for (std::uint64_t kind : {0u, 49u, 99u, 255u}) {
    EXPECT_EQ(decode_code(with_bad_field(1, [kind](Packer& pk) { pk.pack_uint64(kind); })),
              Errc::protocol_error)
        << "kind " << kind;
  }
}

TEST(DecodeEnvelope, RejectsTrailingBytes) {
  SharedBuffer good = encode_body(sample(Kind::event, "t", payload_of(4, 4)));
  ASSERT_TRUE(good);
  Buffer extended(good->data(), good->size());
  const std::uint8_t nil = 0xc0;
  extended.append(&nil, 1);
  EXPECT_EQ(decode_code(std::make_shared<const Buffer>(std::move(extended))), Errc::protocol_error);
}

TEST(DecodeEnvelope, RejectsTruncationAtEveryOffset) {
  SharedBuffer good = encode_body(sample(Kind::invoke, "job:progress", payload_of(40, 6)));
  ASSERT_TRUE(good);
  ASSERT_EQ(decode_code(good), Errc::ok);
  for (std::size_t n = 0; n < good->size(); ++n) {
    EXPECT_EQ(decode_code(buffer_of(good->data(), n)), Errc::protocol_error) << "prefix " << n;
  }
}

TEST(DecodeEnvelope, RejectsAnyOtherVersionAsVersionMismatch) {
  for (std::uint64_t version : {std::uint64_t{0}, std::uint64_t{2}, std::uint64_t{1} << 40}) {
    msgpack::sbuffer sb;
    Packer pk(sb);
    pk.pack_array(7);
    pack_fields(pk, version);
    pack_payload(pk);
    EXPECT_EQ(decode_code(buffer_of(sb)), Errc::version_mismatch) << "version " << version;
  }
}

TEST(Kind, ReservedKindsHaveNamesAndAreReserved) {
  struct Named {
    Kind kind;
    std::string_view name;
  };
  const Named reserved[] = {
      {Kind::stream_open, "STREAM_OPEN"},     {Kind::stream_data, "STREAM_DATA"},
      {Kind::stream_credit, "STREAM_CREDIT"}, {Kind::stream_end, "STREAM_END"},
      {Kind::stream_error, "STREAM_ERROR"},   {Kind::stream_cancel, "STREAM_CANCEL"},
      {Kind::state_watch, "STATE_WATCH"},     {Kind::state_snapshot, "STATE_SNAPSHOT"},
      {Kind::state_patch, "STATE_PATCH"},     {Kind::state_update, "STATE_UPDATE"},
      {Kind::state_unwatch, "STATE_UNWATCH"},
  };
  for (const Named& r : reserved) {
    EXPECT_TRUE(is_reserved_kind(r.kind)) << r.name;
    EXPECT_EQ(kind_name(r.kind), r.name);
    EXPECT_TRUE(is_known_kind(static_cast<std::uint64_t>(r.kind))) << r.name;
  }
  for (unsigned v = 16; v <= 21; ++v) EXPECT_TRUE(is_reserved_kind(static_cast<Kind>(v))) << v;
  for (unsigned v = 32; v <= 36; ++v) EXPECT_TRUE(is_reserved_kind(static_cast<Kind>(v))) << v;
}

TEST(Kind, V1KindsAreKnownAndNotReserved) {
  for (unsigned v = 1; v <= 14; ++v) {
    EXPECT_TRUE(is_known_kind(v)) << v;
    EXPECT_FALSE(is_reserved_kind(static_cast<Kind>(v))) << v;
    EXPECT_NE(kind_name(static_cast<Kind>(v)), "UNKNOWN") << v;
  }
  EXPECT_EQ(kind_name(Kind::hello), "HELLO");
  EXPECT_EQ(kind_name(Kind::event), "EVENT");
  EXPECT_EQ(kind_name(Kind::register_), "REGISTER");
  EXPECT_EQ(kind_name(Kind::goaway), "GOAWAY");
  EXPECT_EQ(kind_name(Kind::peer), "PEER");
}

// Unnamed numbers inside the reserved ranges still decode, so a newer peer that uses one gets an
// answer instead of a closed connection.
TEST(DecodeEnvelope, AcceptsEveryNumberOfTheReservedRanges) {
  for (std::uint64_t kind : {16u, 22u, 31u, 32u, 37u, 47u}) {
    EXPECT_EQ(decode_code(with_bad_field(1, [kind](Packer& pk) { pk.pack_uint64(kind); })),
              Errc::ok)
        << "kind " << kind;
    EXPECT_TRUE(is_known_kind(kind)) << kind;
    EXPECT_TRUE(is_reserved_kind(static_cast<Kind>(kind))) << kind;
  }
  EXPECT_EQ(kind_name(static_cast<Kind>(22)), "RESERVED");
}

TEST(Kind, UnknownValuesAreNotKnownAndNamedUnknown) {
  for (unsigned v : {0u, 49u, 99u, 255u}) {
    EXPECT_FALSE(is_known_kind(v)) << v;
    EXPECT_EQ(kind_name(static_cast<Kind>(v)), "UNKNOWN") << v;
  }
  EXPECT_FALSE(is_known_kind(std::numeric_limits<std::uint64_t>::max()));
}

}  // namespace
}  // namespace switchboard

namespace switchboard {
namespace {

TEST(EncodedBodySize, IsExactlyWhatEncodeFrameWrites) {
  for (std::size_t topic : {0u, 31u, 32u, 255u, 256u, 1024u}) {
    for (std::size_t payload : {0u, 255u, 256u, 65535u, 65536u}) {
      for (std::uint64_t id : {0ull, 127ull, 128ull, 65536ull, 1ull << 40}) {
        Envelope e;
        e.kind = Kind::invoke;
        e.id = id;
        e.sender = id;
        e.flags = static_cast<std::uint32_t>(id & 0xffffffffu);
        e.topic = std::string(topic, 't');
        e.payload = Slice::copy_of(std::string(payload, 'p'));
        WireFrame f;
        ASSERT_TRUE(encode_frame(e, f).ok());
        EXPECT_EQ(encoded_body_size(e), f.size() - kFrameHeaderSize)
            << "topic " << topic << " payload " << payload << " id " << id;
        EXPECT_LE(f.size(), frame_size_bound(e));
      }
    }
  }
}

TEST(OversizeAction, NothingVanishes) {
  Envelope invoke;
  invoke.kind = Kind::invoke;
  invoke.id = 7;
  auto a = oversize_action(invoke, 10);
  ASSERT_TRUE(a.tell_sender.has_value());
  EXPECT_EQ(a.tell_sender->id, 7u);
  EXPECT_EQ(a.tell_sender->topic, "E_FRAME_TOO_LARGE");
  EXPECT_FALSE(a.send_instead.has_value());
  Envelope result;
  result.kind = Kind::result;
  result.id = 8;
  auto b = oversize_action(result, 10);
  ASSERT_TRUE(b.send_instead.has_value());
  EXPECT_EQ(b.send_instead->kind, Kind::error);
  EXPECT_EQ(b.send_instead->id, 8u);
  EXPECT_FALSE(b.tell_sender.has_value());
  Envelope event;
  event.kind = Kind::event;
  auto c = oversize_action(event, 10);
  ASSERT_TRUE(c.tell_sender.has_value());
  EXPECT_EQ(c.tell_sender->id, 0u);
}

// --- Frames that cross a hop as the bytes that arrived --------------------------------------

// A whole frame (prefix included) holding `env`, as FrameDecoder hands it out.
Slice whole_frame(const Envelope& env) {
  Bytes bytes(frame_size_bound(env));
  bytes.resize(encode_frame_into(env, bytes.data()));
  return Slice::copy_of(std::span<const std::uint8_t>(bytes));
}

TEST(EnvelopeFrame, DecodeFrameKeepsTheFrameAndEncodeFrameSharesItWithoutACopy) {
  Envelope e = sample(Kind::event, "progress", payload_of(64, 3));
  e.id = 0;
  const Slice frame = whole_frame(e);
  Envelope got;
  ASSERT_TRUE(decode_frame(frame, got).ok());
  expect_same(got, e);
  EXPECT_EQ(got.frame.data, frame.data);
  WireFrame out;
  ASSERT_TRUE(encode_frame(got, out).ok());
  EXPECT_FALSE(out.head);
  EXPECT_EQ(out.payload.data, frame.data);
  EXPECT_EQ(out.payload.size, frame.size);
}

TEST(EnvelopeFrame, SenderAndIdOfAnInvokeAreRewrittenInPlace) {
  Envelope e = sample(Kind::invoke, "svc", payload_of(16, 4));
  e.id = 5;
  e.sender = 0;
  const Slice frame = whole_frame(e);
  Envelope got;
  ASSERT_TRUE(decode_frame(frame, got).ok());
  set_id(got, 0xfeedbeefu);
  set_sender(got, 0x01020304u);
  ASSERT_EQ(got.frame.data, frame.data) << "a fixed-width field must be rewritten in place";
  Envelope again;
  ASSERT_TRUE(decode_frame(got.frame, again).ok());
  EXPECT_EQ(again.id, 0xfeedbeefu);
  EXPECT_EQ(again.sender, 0x01020304u);
  EXPECT_EQ(again.topic, "svc");
  EXPECT_EQ(again.payload.view(), e.payload.view());
}

TEST(EnvelopeFrame, AFieldTooNarrowForTheNewValueIsEncodedAfresh) {
  // Another encoder's minimal form: sender as a positive fixint (one byte).
  msgpack::sbuffer sb;
  msgpack::packer<msgpack::sbuffer> pk(sb);
  pk.pack_array(7);
  pk.pack(1);
  pk.pack(static_cast<int>(Kind::event));
  pk.pack(0);
  pk.pack(std::string("t"));
  pk.pack(0);
  pk.pack(0);  // sender
  pk.pack_bin(2);
  pk.pack_bin_body("hi", 2);
  Bytes bytes(kFrameHeaderSize);
  put_frame_header(bytes.data(), sb.size());
  bytes.insert(bytes.end(), sb.data(), sb.data() + sb.size());
  Envelope got;
  ASSERT_TRUE(decode_frame(Slice::copy_of(std::span<const std::uint8_t>(bytes)), got).ok());
  set_sender(got, 100);  // fits a fixint: in place
  EXPECT_FALSE(got.frame.empty());
  set_sender(got, 1000);  // does not fit: the frame is dropped, the field kept
  EXPECT_TRUE(got.frame.empty());
  EXPECT_EQ(got.sender, 1000u);
  WireFrame out;
  ASSERT_TRUE(encode_frame(got, out).ok());
  Envelope again;
  ASSERT_TRUE(decode_envelope(body_of(out), again).ok());
  EXPECT_EQ(again.sender, 1000u);
  EXPECT_EQ(again.payload.view(), "hi");
}

TEST(EnvelopeFrame, SignedEncodingsOfNonNegativeIntegersDecodeAndNegativeOnesDoNot) {
  auto body = [](std::uint8_t id_type, std::uint8_t id_byte) {
    // [1, EVENT, id, "", 0, 0, nil] with the id as int8
    Bytes b = {0x97, 0x01, 0x05, id_type, id_byte, 0xa0, 0x00, 0x00, 0xc0};
    return Slice::copy_of(std::span<const std::uint8_t>(b));
  };
  Envelope got;
  ASSERT_TRUE(decode_envelope(body(0xd0, 0x05), got).ok());
  EXPECT_EQ(got.id, 5u);
  EXPECT_EQ(decode_envelope(body(0xd0, 0xff), got).code(), Errc::protocol_error);
}

TEST(EnvelopeFrame, AFrameWhosePrefixDisagreesWithItsSizeIsRefused) {
  Envelope e = sample(Kind::event, "t", payload_of(4, 1));
  Slice frame = whole_frame(e);
  Slice shorter(frame.owner, frame.data, frame.size - 1);
  Envelope got;
  EXPECT_EQ(decode_frame(shorter, got).code(), Errc::protocol_error);
}

}  // namespace
}  // namespace switchboard
