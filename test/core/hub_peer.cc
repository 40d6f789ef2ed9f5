// A hub in a process of its own, for the tests that kill the hub or start a second one: started
// with posix_spawn, reporting progress as single bytes on an inherited pipe.
//
//   hub_peer <endpoint> <token> <fd> <name> <invokes>
//
// Starts a hub on <endpoint> (exit 3 when a live hub holds it, 4 when the endpoint is unsafe,
// 5 on any other error; the reason goes to stderr). Its own process joins in-process and
// registers <name>; it writes 'r' once that is acknowledged and 'i' once <invokes> INVOKEs have
// arrived, which it never answers. Then it waits to be killed.
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "hub.h"

namespace sb = switchboard;

int main(int argc, char** argv) {
  if (argc != 6) return 2;
  const int fd = std::stoi(argv[3]);
  const std::string name = argv[4];
  const long expected = std::stol(argv[5]);
  sb::HubOptions opt;
  opt.endpoint = argv[1];
  opt.token = argv[2];
  opt.name = "hub_peer";
  sb::Hub hub(std::move(opt));
  if (sb::Status s = hub.start(); !s.ok()) {
    std::fprintf(stderr, "hub_peer: %s\n", s.to_string().c_str());
    if (s.code() == sb::Errc::endpoint_in_use) return 3;
    if (s.code() == sb::Errc::endpoint_unsafe) return 4;
    return 5;
  }
  long invokes = 0;
  sb::PortCallbacks cb;
  // Runs on the hub's I/O thread.
  cb.on_batch = [&](std::vector<sb::Envelope>& batch) {
    for (const sb::Envelope& e : batch) {
      if (e.kind == sb::Kind::result && e.id == 1 && ::write(fd, "r", 1) != 1) ::_exit(8);
      if (e.kind == sb::Kind::invoke && ++invokes == expected && ::write(fd, "i", 1) != 1) {
        ::_exit(8);
      }
    }
  };
  auto port = hub.connect_local(sb::LocalPeerInfo{"main", "hub_peer", 0, nullptr}, std::move(cb));
  if (!port) return 5;
  sb::Envelope reg;
  reg.kind = sb::Kind::register_;
  reg.topic = name;
  reg.id = 1;
  std::vector<sb::Envelope> batch;
  batch.push_back(std::move(reg));
  if (!port->submit(std::move(batch)).ok()) return 5;
  for (;;) ::pause();
}
