#include "status.h"

#include <array>
#include <cstring>

namespace switchboard {
namespace {

struct Name {
  Errc code;
  std::string_view wire;
};

constexpr std::array kNames{
    Name{Errc::ok, "OK"},
    Name{Errc::auth_failed, "E_AUTH"},
    Name{Errc::version_mismatch, "E_VERSION"},
    Name{Errc::handshake_timeout, "E_HANDSHAKE_TIMEOUT"},
    Name{Errc::frame_too_large, "E_FRAME_TOO_LARGE"},
    Name{Errc::protocol_error, "E_PROTOCOL"},
    Name{Errc::no_handler, "E_NO_HANDLER"},
    Name{Errc::already_registered, "E_ALREADY_REGISTERED"},
    Name{Errc::connection_lost, "E_CONNECTION_LOST"},
    Name{Errc::slow_consumer, "E_SLOW_CONSUMER"},
    Name{Errc::limit_exceeded, "E_LIMIT"},
    Name{Errc::forbidden, "E_FORBIDDEN"},
    Name{Errc::offline_queue_full, "E_OFFLINE_QUEUE_FULL"},
    Name{Errc::endpoint_in_use, "E_ENDPOINT_IN_USE"},
    Name{Errc::endpoint_unsafe, "E_ENDPOINT_UNSAFE"},
    Name{Errc::invalid_argument, "E_INVALID_ARGUMENT"},
    Name{Errc::io_error, "E_IO"},
    Name{Errc::closed, "E_CLOSED"},
    Name{Errc::shutting_down, "E_SHUTTING_DOWN"},
};

}  // namespace

std::string_view wire_name(Errc code) {
  for (const auto& n : kNames) {
    if (n.code == code) return n.wire;
  }
  return "E_PROTOCOL";
}

Errc errc_from_wire(std::string_view name) {
  for (const auto& n : kNames) {
    if (n.wire == name) return n.code;
  }
  return Errc::protocol_error;
}

std::string Status::to_string() const {
  std::string out(wire_name(code_));
  if (!message_.empty()) {
    out += ": ";
    out += message_;
  }
  return out;
}

Status errno_status(std::string_view what, int err) {
  std::string msg(what);
  msg += ": ";
  msg += std::strerror(err);
  return Status(Errc::io_error, std::move(msg));
}

}  // namespace switchboard
