// A peer for the fault tests, started as its own program (posix_spawn) rather than as code run
// after fork() in the multi-threaded test process, which the sanitizers do not support.
//
//   handler_peer <endpoint> <token> <handler name> <fd>
//
// Joins the hub, registers the handler, writes 'r' to <fd> once the registration is
// acknowledged, writes 'i' when an INVOKE arrives, then never answers: the test kills it.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "envelope.h"
#include "frame.h"
#include "handshake.h"

namespace sb = switchboard;

namespace {

bool send_all(int fd, const sb::WireFrame& f) {
  std::string bytes(reinterpret_cast<const char*>(f.head->data()), f.head->size());
  bytes.append(f.payload.view());
  return ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
}

// Reads frames until one of `kind` arrives; false at EOF or on a bad frame.
bool wait_for(int fd, sb::FrameDecoder& decoder, sb::Kind kind) {
  std::vector<sb::Slice> frames;
  for (;;) {
    for (const auto& frame : frames) {
      sb::Envelope env;
      if (sb::decode_frame(frame, env).ok() && env.kind == kind) return true;
    }
    frames.clear();
    std::uint8_t buf[4096];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return false;
    if (!decoder.feed({buf, static_cast<std::size_t>(n)}, frames).ok()) return false;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) return 2;
  const std::string endpoint = argv[1];
  const int signal_fd = std::stoi(argv[4]);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, endpoint.data(), endpoint.size());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return 3;

  sb::Hello hello;
  hello.protocol = sb::kProtocolVersion;
  hello.token = argv[2];
  hello.role = "handler";
  hello.name = "handler_peer";
  hello.pid = static_cast<std::uint64_t>(::getpid());
  sb::Envelope env;
  env.kind = sb::Kind::hello;
  env.payload = sb::encode_hello(hello);
  sb::WireFrame f;
  if (!sb::encode_frame(env, f).ok() || !send_all(fd, f)) return 4;
  sb::FrameDecoder decoder;
  if (!wait_for(fd, decoder, sb::Kind::welcome)) return 5;

  sb::Envelope reg;
  reg.kind = sb::Kind::register_;
  reg.id = 1;
  reg.topic = argv[3];
  if (!sb::encode_frame(reg, f).ok() || !send_all(fd, f)) return 6;
  if (!wait_for(fd, decoder, sb::Kind::result)) return 7;
  if (::write(signal_fd, "r", 1) != 1) return 8;

  if (!wait_for(fd, decoder, sb::Kind::invoke)) return 9;
  if (::write(signal_fd, "i", 1) != 1) return 8;
  for (;;) ::pause();
}
