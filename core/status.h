// Error codes of the core, and the Status that carries one with a human message.
//
// Contract: the core never throws across its public interface. Every operation that can fail
// returns a Status (or reports one through a callback); the addon maps Errc to the typed
// JavaScript errors in exactly one place. The wire names (`wire_name`) are part of the protocol
// (docs/PROTOCOL.md) and never change once published.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace switchboard {

enum class Errc : std::uint8_t {
  ok = 0,
  // Handshake and authentication.
  auth_failed,        // wrong token or foreign user
  version_mismatch,   // peer speaks another protocol version
  handshake_timeout,  // no HELLO within the handshake deadline
  // Framing and decoding.
  frame_too_large,  // a length prefix above the current limit
  protocol_error,   // a frame that is not a valid envelope, or a kind out of place
  // Routing.
  no_handler,          // INVOKE for a name nobody registered
  already_registered,  // REGISTER for a name another peer serves
  connection_lost,     // the peer that was to answer went away
  slow_consumer,       // outbound high-water mark exceeded under the disconnect policy
  limit_exceeded,      // a configured per-peer limit (subscriptions, pending invokes...)
  forbidden,           // not in the peer's grants (a page's emit, subscribe, invoke or handle)
  offline_queue_full,  // client: too many events waiting for a reconnect
  // Endpoint and I/O.
  endpoint_in_use,   // another hub is live on this endpoint
  endpoint_unsafe,   // the runtime directory or socket path fails the ownership checks
  invalid_argument,  // a caller passed something the API cannot take
  io_error,          // an OS call failed; the message carries errno's text
  closed,            // the object was closed
  shutting_down,     // the hub is going away (GOAWAY reason)
};

// Stable protocol name of a code, e.g. "E_NO_HANDLER".
std::string_view wire_name(Errc code);
// Inverse of wire_name; unknown names map to Errc::protocol_error.
Errc errc_from_wire(std::string_view name);

class Status {
 public:
  Status() = default;
  Status(Errc code, std::string message) : code_(code), message_(std::move(message)) {}

  bool ok() const { return code_ == Errc::ok; }
  explicit operator bool() const { return ok(); }
  Errc code() const { return code_; }
  const std::string& message() const { return message_; }
  // "E_NO_HANDLER: no handler is registered for 'x'"
  std::string to_string() const;

 private:
  Errc code_ = Errc::ok;
  std::string message_;
};

// Builds an io_error Status from errno, naming the operation and what it was applied to.
Status errno_status(std::string_view what, int err);

}  // namespace switchboard
