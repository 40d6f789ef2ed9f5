// A peer of another user for the SO_PEERCRED test, started as its own program (posix_spawn):
//
//   foreign_peer <endpoint> <token>
//
// Becomes uid/gid 65534 (nobody), connects, sends HELLO and reads until the hub closes.
// Exit 0: the hub answered and closed (a welcomed peer is never closed); 10: could not change
// user; 11: could not connect; 12: closed without a word.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "envelope.h"
#include "handshake.h"

namespace sb = switchboard;

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  if (::setgid(65534) != 0 || ::setuid(65534) != 0) return 10;
  const std::string endpoint = argv[1];
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, endpoint.data(), endpoint.size());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return 11;
  sb::Hello hello;
  hello.protocol = sb::kProtocolVersion;
  hello.token = argv[2];
  hello.role = "foreign";
  sb::Envelope env;
  env.kind = sb::Kind::hello;
  env.payload = sb::encode_hello(hello);
  sb::WireFrame f;
  if (!sb::encode_frame(env, f).ok()) return 2;
  std::string bytes(reinterpret_cast<const char*>(f.head->data()), f.head->size());
  bytes.append(f.payload.view());
  // The hub may refuse us at accept, before HELLO: no SIGPIPE for the late write.
  (void)::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  char buf[4096];
  ssize_t total = 0;
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    total += n;
  }
  return total > 0 ? 0 : 12;
}
