// The transport interface: a listener that accepts byte streams, and the streams themselves.
// The hub, the client and the connection code see only this interface. Exactly one
// implementation is built per platform (core/CMakeLists.txt): unix_transport.cc (Unix domain
// sockets: Linux, macOS) or pipe_transport.cc (Windows named pipes, created with
// FILE_FLAG_FIRST_PIPE_INSTANCE, so a squatter that created the name first makes start() fail
// instead of receiving our clients, and with a DACL that grants access to the current user's SID
// only; the client's process id comes from GetNamedPipeClientProcessId). See docs/PROTOCOL.md,
// "Transports".
//
// Contract:
// - Streams and listeners belong to the asio::io_context they were made with; every member
//   function is called on that context's thread, with one exception: try_write() may be called
//   from another thread when the caller serialises it with every other try_write() and with
//   close() (Connection's write mutex does), so it must touch nothing that the context's thread
//   changes outside close().
// - The I/O is readiness based: try_read/try_write never block and report would_block; then
//   wait_readable/wait_writable call their handler once when trying again makes sense. A
//   completion-based OS API (Windows overlapped I/O) implements this with an internal buffer.
// - close() cancels the pending waits: their handlers still run, once, with an error. After
//   close() every try_* returns an error. Destroying a stream closes it.
// - A stream never raises SIGPIPE.
#pragma once

#if !defined(_WIN32)
#include <sys/uio.h>
#endif

#include <asio/io_context.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <system_error>

#include "status.h"

namespace switchboard {

// `known`: the peer's user is known (uid, gid; Unix). Windows leaves it false and fills in `pid`
// only: there the pipe's DACL admits this user's processes alone.
struct PeerCredentials {
  bool known = false;
  std::uint32_t pid = 0;
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
};

enum class IoState { ok, would_block, eof, error };

struct IoResult {
  IoState state = IoState::ok;
  std::size_t bytes = 0;  // with ok: how many bytes moved
  Status error;           // with error
};

#if defined(_WIN32)
struct IoVec {  // the layout of struct iovec, which Windows lacks
  void* iov_base;
  std::size_t iov_len;
};
#else
using IoVec = ::iovec;
#endif
using WaitHandler = std::function<void(std::error_code)>;

class Stream {
 public:
  virtual ~Stream() = default;
  virtual IoResult try_read(std::span<std::uint8_t> into) = 0;
  // Gathers all of `bufs` into one system call where the OS allows (writev/sendmsg).
  virtual IoResult try_write(std::span<const IoVec> bufs) = 0;
  virtual void wait_readable(WaitHandler handler) = 0;
  virtual void wait_writable(WaitHandler handler) = 0;
  virtual PeerCredentials credentials() const = 0;
  virtual void close() = 0;
};

using AcceptHandler = std::function<void(Status, std::unique_ptr<Stream>)>;
using ConnectHandler = std::function<void(Status, std::unique_ptr<Stream>)>;

class Listener {
 public:
  virtual ~Listener() = default;
  // Accepts one stream; call again from the handler for the next one.
  virtual void accept(AcceptHandler handler) = 0;
  // Stops listening and removes the endpoint if it is still ours.
  virtual void close() = 0;
  // Checks that the endpoint still leads to this listener. If it has disappeared (someone
  // deleted the socket file), listens on a fresh one at the same path and returns true; a
  // pending accept() carries over to it, and streams already accepted are unaffected. Something
  // else now at the path is left alone: false, with `status` saying what is there. A transport
  // whose endpoint cannot vanish returns false with an ok status.
  virtual bool restore(Status& status) = 0;
  virtual const std::string& endpoint() const = 0;
};

// Opens `endpoint` for listening after the safety checks of the platform's transport (for Unix
// sockets: a private directory, never an abstract name, a stale socket probed before removal, a
// live one left alone). Returns null and sets `status` on failure.
std::unique_ptr<Listener> listen_endpoint(asio::io_context& io, const std::string& endpoint,
                                          Status& status);
// Connects to `endpoint`; the handler runs on the context's thread.
void connect_endpoint(asio::io_context& io, const std::string& endpoint, ConnectHandler handler);

// A fresh endpoint for a hub named `name` in this process. Unix: under $XDG_RUNTIME_DIR when it
// is set, else /tmp, in a per-user directory "switchboard-<uid>". Windows: the named pipe
// \\.\pipe\switchboard-<name>-<pid>.
std::string default_endpoint(const std::string& name);

// The user id that PeerCredentials::uid is compared with (geteuid(); 0 on Windows, where
// credentials are never `known`).
std::uint32_t this_user_id();

}  // namespace switchboard
