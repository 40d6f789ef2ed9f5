// A real Client (core/client.h) in a process of its own, for the fault tests that kill or stop
// a peer: started with posix_spawn (not fork() in the multi-threaded test binary, which the
// sanitizers do not support), reporting progress as single bytes on an inherited pipe.
//
//   bus_peer serve <endpoint> <token> <fd> <name>
//     registers <name>; writes 'r' once the hub acknowledged it, then 'i' for every INVOKE,
//     which it never answers.
//   bus_peer call <endpoint> <token> <fd> <name>
//     subscribes to "faults:news" and registers "faults:own-<pid>" (state the hub must forget
//     when this process dies), writes 'r' once both are acknowledged, then invokes <name>.
//
// Either way it then waits to be killed; its I/O thread keeps answering the hub's PINGs.
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "client.h"

namespace sb = switchboard;

namespace {

int g_fd = -1;

void signal_test(char c) {
  if (::write(g_fd, &c, 1) != 1) ::_exit(8);
}

sb::Envelope request(sb::Kind kind, std::string topic, std::uint64_t id) {
  sb::Envelope e;
  e.kind = kind;
  e.topic = std::move(topic);
  e.id = id;
  return e;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) return 2;
  const std::string mode = argv[1];
  if (mode != "serve" && mode != "call") return 2;
  g_fd = std::stoi(argv[4]);
  const std::string name = argv[5];
  const bool serve = mode == "serve";

  sb::ClientOptions opt;
  opt.endpoint = argv[2];
  opt.token = argv[3];
  opt.role = serve ? "server" : "caller";
  opt.name = "bus_peer";
  opt.max_attempts = 0;  // a peer of a fault test never outlives its first connection
  sb::Client* self = nullptr;
  sb::PortCallbacks cb;
  // Runs on the client's I/O thread; submit() is safe from there.
  cb.on_batch = [&](std::vector<sb::Envelope>& batch) {
    for (const sb::Envelope& e : batch) {
      if (serve && e.kind == sb::Kind::result && e.id == 1) signal_test('r');
      if (serve && e.kind == sb::Kind::invoke) signal_test('i');
      if (!serve && e.kind == sb::Kind::result && e.id == 2) {
        signal_test('r');
        std::vector<sb::Envelope> call;
        call.push_back(request(sb::Kind::invoke, name, 3));
        (void)self->submit(std::move(call));
      }
    }
  };
  sb::Client client(std::move(opt), std::move(cb));
  self = &client;
  if (!client.start().ok()) return 3;
  std::vector<sb::Envelope> first;
  if (serve) {
    first.push_back(request(sb::Kind::register_, name, 1));
  } else {
    first.push_back(request(sb::Kind::subscribe, "faults:news", 1));
    first.push_back(request(sb::Kind::register_, "faults:own-" + std::to_string(::getpid()), 2));
  }
  if (!client.submit(std::move(first)).ok()) return 4;  // waits in the offline queue
  for (;;) ::pause();
}
