// Tests for core/status.h: the error codes' stable wire names and the Status type.
#include "status.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <set>
#include <string>
#include <string_view>

namespace switchboard {
namespace {

constexpr int kLastErrc = static_cast<int>(Errc::shutting_down);

TEST(Status, WireNameRoundTripsForEveryCode) {
  for (int i = 0; i <= kLastErrc; ++i) {
    const auto code = static_cast<Errc>(i);
    const std::string_view name = wire_name(code);
    EXPECT_FALSE(name.empty()) << i;
    EXPECT_EQ(errc_from_wire(name), code) << "code " << i << " named " << name;
  }
}

TEST(Status, EveryCodeHasItsOwnWireName) {
  std::set<std::string_view> names;
  for (int i = 0; i <= kLastErrc; ++i) names.insert(wire_name(static_cast<Errc>(i)));
  EXPECT_EQ(names.size(), static_cast<std::size_t>(kLastErrc + 1));
}

TEST(Status, ErrorWireNamesStartWithE) {
  EXPECT_EQ(wire_name(Errc::ok), "OK");
  for (int i = 1; i <= kLastErrc; ++i) {
    EXPECT_TRUE(wire_name(static_cast<Errc>(i)).starts_with("E_")) << i;
  }
}

TEST(Status, PublishedWireNamesDoNotChange) {
  EXPECT_EQ(wire_name(Errc::auth_failed), "E_AUTH");
  EXPECT_EQ(wire_name(Errc::version_mismatch), "E_VERSION");
  EXPECT_EQ(wire_name(Errc::handshake_timeout), "E_HANDSHAKE_TIMEOUT");
  EXPECT_EQ(wire_name(Errc::frame_too_large), "E_FRAME_TOO_LARGE");
  EXPECT_EQ(wire_name(Errc::protocol_error), "E_PROTOCOL");
  EXPECT_EQ(wire_name(Errc::no_handler), "E_NO_HANDLER");
  EXPECT_EQ(wire_name(Errc::already_registered), "E_ALREADY_REGISTERED");
  EXPECT_EQ(wire_name(Errc::connection_lost), "E_CONNECTION_LOST");
  EXPECT_EQ(wire_name(Errc::slow_consumer), "E_SLOW_CONSUMER");
  EXPECT_EQ(wire_name(Errc::limit_exceeded), "E_LIMIT");
  EXPECT_EQ(wire_name(Errc::offline_queue_full), "E_OFFLINE_QUEUE_FULL");
  EXPECT_EQ(wire_name(Errc::endpoint_in_use), "E_ENDPOINT_IN_USE");
  EXPECT_EQ(wire_name(Errc::endpoint_unsafe), "E_ENDPOINT_UNSAFE");
  EXPECT_EQ(wire_name(Errc::invalid_argument), "E_INVALID_ARGUMENT");
  EXPECT_EQ(wire_name(Errc::io_error), "E_IO");
  EXPECT_EQ(wire_name(Errc::closed), "E_CLOSED");
  EXPECT_EQ(wire_name(Errc::shutting_down), "E_SHUTTING_DOWN");
}

TEST(Status, UnknownWireNameMapsToProtocolError) {
  for (std::string_view name :
       {"E_NOPE", "", "e_no_handler", "E_NO_HANDLER ", "NO_HANDLER", "E_"}) {
    EXPECT_EQ(errc_from_wire(name), Errc::protocol_error) << "'" << name << "'";
  }
}

TEST(Status, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_TRUE(static_cast<bool>(s));
  EXPECT_EQ(s.code(), Errc::ok);
  EXPECT_EQ(s.to_string(), "OK");
}

TEST(Status, ToStringJoinsWireNameAndMessage) {
  Status s(Errc::no_handler, "no handler is registered for 'x'");
  EXPECT_FALSE(s.ok());
  EXPECT_FALSE(static_cast<bool>(s));
  EXPECT_EQ(s.to_string(), "E_NO_HANDLER: no handler is registered for 'x'");
  EXPECT_EQ(Status(Errc::closed, "").to_string(), "E_CLOSED");
}

TEST(Status, ErrnoStatusNamesTheOperationAndTheError) {
  Status s = errno_status("connect /tmp/sock", ENOENT);
  EXPECT_EQ(s.code(), Errc::io_error);
  EXPECT_TRUE(s.message().starts_with("connect /tmp/sock: ")) << s.message();
  EXPECT_GT(s.message().size(), std::string_view("connect /tmp/sock: ").size());
}

}  // namespace
}  // namespace switchboard
