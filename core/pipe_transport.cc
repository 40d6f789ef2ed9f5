// Windows named-pipe transport. See transport.h for the contract; this file is built instead of
// unix_transport.cc on Windows (core/CMakeLists.txt).
//
// Security (DESIGN.md, "Security"):
// - The first instance of a hub's pipe is created with FILE_FLAG_FIRST_PIPE_INSTANCE: if anyone
//   created the name before us (a squatter, or a live hub), listen_endpoint() fails with
//   endpoint_in_use instead of sharing the name, and our clients never reach the other process.
// - Every instance carries a protected DACL that grants access to the current user's SID only
//   (and nothing to anyone else, not even Administrators), and refuses remote clients.
// - The per-run token is presented first on every connection, as on Unix. The client's process
//   id comes from GetNamedPipeClientProcessId; its user is enforced by the DACL, so credentials()
//   reports known = false (no uid to compare) with the pid filled in.
//
// Named pipes complete I/O, they do not report readiness, so each stream keeps one overlapped
// read into its own buffer and one overlapped write from its own copy of the caller's bytes:
// - try_read() hands out what the last read brought and starts the next one; wait_readable()
//   runs its handler when a read completes.
// - try_write() copies up to kWriteChunk bytes and starts a write when none is in flight (else
//   would_block); wait_writable() runs its handler when the write in flight completes. So a
//   stream holds at most kWriteChunk bytes beyond the caller's queue, as a socket's send buffer
//   would, and a peer that stops reading stalls its writer exactly as on Unix.
// - try_write() may run on another thread (transport.h): the write state is under a mutex.
// - close() ends reading at once; a write in flight may finish (a GOAWAY must reach the peer, as
//   bytes in a Unix socket's buffer do) for up to kCloseLinger, then the handle is closed.
// The buffers live in a shared State that every pending operation holds, so the OS never writes
// into freed memory, whatever order the stream, the handle and the completions go in.
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/windows/overlapped_ptr.hpp>
#include <asio/windows/stream_handle.hpp>

// After Asio (it includes winsock2.h, which must come before windows.h).
#include <windows.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "transport.h"

namespace switchboard {
namespace {

constexpr DWORD kPipeBuffer = 64 * 1024;
constexpr std::size_t kReadChunk = 64 * 1024;
constexpr std::size_t kWriteChunk = 256 * 1024;
constexpr auto kCloseLinger = std::chrono::seconds(2);
constexpr auto kBusyRetry = std::chrono::milliseconds(10);
constexpr int kBusyAttempts = 200;  // 2 s of ERROR_PIPE_BUSY before connect gives up
constexpr std::size_t kMaxPipeName = 256;
constexpr DWORD kStaleRetryMs = 20;
constexpr int kStaleAttempts = 100;  // 2 s for the clients of a dead hub to let go of its pipe
constexpr std::string_view kPipePrefix = R"(\\.\pipe\)";

std::string win32_message(DWORD err) {
  char* text = nullptr;
  DWORD n = ::FormatMessageA(
      FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS,
      nullptr, err, 0, reinterpret_cast<LPSTR>(&text), 0, nullptr);
  std::string out = n && text ? std::string(text, n) : "Windows error " + std::to_string(err);
  if (text) ::LocalFree(text);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r' || out.back() == '.')) {
    out.pop_back();
  }
  return out + " (" + std::to_string(err) + ")";
}

Status win32_status(std::string_view what, DWORD err) {
  return Status(Errc::io_error, std::string(what) + ": " + win32_message(err));
}

std::wstring widen(const std::string& s) {
  if (s.empty()) return {};
  int n = ::MultiByteToWideChar(CP_UTF8, 0, s.data(), static_cast<int>(s.size()), nullptr, 0);
  std::wstring out(static_cast<std::size_t>(n), L'\0');
  ::MultiByteToWideChar(CP_UTF8, 0, s.data(), static_cast<int>(s.size()), out.data(), n);
  return out;
}

bool is_pipe_name(const std::string& endpoint) {
  if (endpoint.size() <= kPipePrefix.size()) return false;
  for (std::size_t i = 0; i < kPipePrefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(endpoint[i])) != kPipePrefix[i]) return false;
  }
  return endpoint.find('\\', kPipePrefix.size()) == std::string::npos;
}

Status check_pipe_name(const std::string& endpoint) {
  if (!is_pipe_name(endpoint)) {
    return Status(Errc::invalid_argument,
                  "endpoint '" + endpoint +
                      "' is not a named pipe: on Windows an endpoint is \\\\.\\pipe\\<name> "
                      "(no further backslash); leave it out to get a fresh one");
  }
  if (endpoint.size() > kMaxPipeName) {
    return Status(Errc::invalid_argument, "endpoint is " + std::to_string(endpoint.size()) +
                                              " characters; Windows pipe names allow at most " +
                                              std::to_string(kMaxPipeName) +
                                              ": choose a shorter one");
  }
  return {};
}

struct HandleCloser {
  void operator()(HANDLE h) const {
    if (h && h != INVALID_HANDLE_VALUE) ::CloseHandle(h);
  }
};
using UniqueHandle = std::unique_ptr<void, HandleCloser>;

// The security descriptor every instance of our pipes is created with: owner-only, protected
// from inheriting anything, remote clients refused by the pipe mode.
class OwnerOnlySecurity {
 public:
  Status init() {
    HANDLE raw = nullptr;
    if (!::OpenProcessToken(::GetCurrentProcess(), TOKEN_QUERY, &raw)) {
      return win32_status("OpenProcessToken", ::GetLastError());
    }
    UniqueHandle token(raw);
    DWORD size = 0;
    ::GetTokenInformation(token.get(), TokenUser, nullptr, 0, &size);
    user_.assign(size, 0);
    if (size == 0 || !::GetTokenInformation(token.get(), TokenUser, user_.data(), size, &size)) {
      return win32_status("GetTokenInformation(TokenUser)", ::GetLastError());
    }
    PSID sid = reinterpret_cast<TOKEN_USER*>(user_.data())->User.Sid;
    DWORD acl_size =
        static_cast<DWORD>(sizeof(ACL) + sizeof(ACCESS_ALLOWED_ACE) + ::GetLengthSid(sid));
    acl_.assign(acl_size, 0);
    auto* acl = reinterpret_cast<PACL>(acl_.data());
    if (!::InitializeAcl(acl, acl_size, ACL_REVISION) ||
        !::AddAccessAllowedAce(acl, ACL_REVISION, GENERIC_ALL, sid) ||
        !::InitializeSecurityDescriptor(&descriptor_, SECURITY_DESCRIPTOR_REVISION) ||
        !::SetSecurityDescriptorDacl(&descriptor_, TRUE, acl, FALSE) ||
        !::SetSecurityDescriptorControl(&descriptor_, SE_DACL_PROTECTED, SE_DACL_PROTECTED)) {
      return win32_status("building the pipe's access list", ::GetLastError());
    }
    attributes_.nLength = sizeof attributes_;
    attributes_.lpSecurityDescriptor = &descriptor_;
    attributes_.bInheritHandle = FALSE;
    return {};
  }
  SECURITY_ATTRIBUTES* attributes() { return &attributes_; }

 private:
  std::vector<unsigned char> user_;  // TOKEN_USER, which holds the SID the ACE points into
  std::vector<unsigned char> acl_;
  SECURITY_DESCRIPTOR descriptor_{};
  SECURITY_ATTRIBUTES attributes_{};
};

using Handle = asio::windows::stream_handle;

asio::error_code win32_error(DWORD err) {
  return asio::error_code(static_cast<int>(err), asio::error::get_system_category());
}

// Everything an overlapped operation may touch after the Stream object is gone.
struct PipeState : std::enable_shared_from_this<PipeState> {
  PipeState(asio::io_context& context, Handle h)
      : io(context), handle(std::move(h)), linger(context) {}

  asio::io_context& io;
  Handle handle;
  asio::steady_timer linger;

  // Reading: the I/O thread only.
  std::array<std::uint8_t, kReadChunk> read_buf{};
  std::size_t read_pos = 0, read_end = 0;
  bool read_pending = false, read_eof = false, closed = false;
  Status read_error;
  WaitHandler read_waiter;

  // Writing: under write_mutex (try_write may run on another thread).
  std::mutex write_mutex;
  std::vector<std::uint8_t> write_buf;
  std::size_t write_done = 0;
  bool write_pending = false, write_closed = false;
  Status write_error;
  WaitHandler write_waiter;

  void start_read() {
    if (read_pending || read_eof || !read_error.ok() || !handle.is_open()) return;
    read_pending = true;
    asio::windows::overlapped_ptr op(
        handle.get_executor(),
        [self = shared_from_this()](asio::error_code ec, std::size_t n) { self->on_read(ec, n); });
    BOOL ok = ::ReadFile(handle.native_handle(), read_buf.data(), static_cast<DWORD>(kReadChunk),
                         nullptr, op.get());
    DWORD err = ::GetLastError();
    if (!ok && err != ERROR_IO_PENDING) {
      op.complete(win32_error(err), 0);  // runs on_read through the context, like a completion
    } else {
      op.release();  // a completion packet will come, even when ReadFile finished at once
    }
  }

  void on_read(asio::error_code ec, std::size_t n) {
    read_pending = false;
    if (closed) return;
    if (!ec && n > 0) {
      read_pos = 0;
      read_end = n;
    } else if (!ec || ec.value() == ERROR_BROKEN_PIPE || ec.value() == ERROR_PIPE_NOT_CONNECTED ||
               ec.value() == ERROR_HANDLE_EOF || ec == asio::error::eof) {
      read_eof = true;  // a zero-byte read on a byte-mode pipe only happens at its end
    } else {
      read_error =
          Status(Errc::io_error, "ReadFile: " + win32_message(static_cast<DWORD>(ec.value())));
    }
    if (WaitHandler h = std::exchange(read_waiter, nullptr)) h({});
  }

  // With write_mutex held. Writes write_buf from write_done on.
  void start_write_locked() {
    write_pending = true;
    asio::windows::overlapped_ptr op(
        handle.get_executor(),
        [self = shared_from_this()](asio::error_code ec, std::size_t n) { self->on_write(ec, n); });
    BOOL ok = ::WriteFile(handle.native_handle(), write_buf.data() + write_done,
                          static_cast<DWORD>(write_buf.size() - write_done), nullptr, op.get());
    DWORD err = ::GetLastError();
    if (!ok && err != ERROR_IO_PENDING) {
      op.complete(win32_error(err), 0);
    } else {
      op.release();
    }
  }

  void on_write(asio::error_code ec, std::size_t n) {
    WaitHandler waiter;
    bool close_now = false;
    {
      std::lock_guard lock(write_mutex);
      write_done += n;
      if (!ec && write_done < write_buf.size() && handle.is_open()) {
        start_write_locked();  // the rest of a partial write
        return;
      }
      write_pending = false;
      if (ec && write_error.ok()) {
        write_error = ec.value() == ERROR_NO_DATA || ec.value() == ERROR_BROKEN_PIPE
                          ? Status(Errc::closed, "peer closed the pipe")
                          : Status(Errc::io_error,
                                   "WriteFile: " + win32_message(static_cast<DWORD>(ec.value())));
      }
      write_buf.clear();
      write_done = 0;
      waiter = std::exchange(write_waiter, nullptr);
      close_now = write_closed;
    }
    if (close_now) {
      close_handle();
      return;
    }
    if (waiter) waiter({});
  }

  bool stopped() const { return io.stopped(); }

  void close_handle() {
    std::error_code ignored;
    linger.cancel();
    if (handle.is_open()) handle.close(ignored);  // cancels what is still pending
  }
};

class PipeStream final : public Stream {
 public:
  PipeStream(asio::io_context& io, Handle handle)
      : state_(std::make_shared<PipeState>(io, std::move(handle))) {
    ULONG pid = 0;
    if (::GetNamedPipeClientProcessId(state_->handle.native_handle(), &pid)) {
      credentials_.pid = pid;
    }
    state_->start_read();
  }
  ~PipeStream() override { close(); }

  IoResult try_read(std::span<std::uint8_t> into) override {
    PipeState& s = *state_;
    if (s.closed) return closed_result();
    if (s.read_pos < s.read_end) {
      std::size_t n = std::min(into.size(), s.read_end - s.read_pos);
      std::memcpy(into.data(), s.read_buf.data() + s.read_pos, n);
      s.read_pos += n;
      if (s.read_pos == s.read_end) s.start_read();
      return {IoState::ok, n, {}};
    }
    if (s.read_eof) return {IoState::eof, 0, {}};
    if (!s.read_error.ok()) return {IoState::error, 0, s.read_error};
    s.start_read();
    return {IoState::would_block, 0, {}};
  }

  IoResult try_write(std::span<const IoVec> bufs) override {
    PipeState& s = *state_;
    std::lock_guard lock(s.write_mutex);
    if (s.write_closed || s.stopped()) return closed_result();
    if (!s.write_error.ok()) return {IoState::error, 0, s.write_error};
    if (s.write_pending) return {IoState::would_block, 0, {}};
    s.write_buf.clear();
    s.write_done = 0;
    for (const IoVec& v : bufs) {
      std::size_t room = kWriteChunk - s.write_buf.size();
      if (room == 0) break;
      const auto* p = static_cast<const std::uint8_t*>(v.iov_base);
      s.write_buf.insert(s.write_buf.end(), p, p + std::min(room, v.iov_len));
    }
    if (s.write_buf.empty()) return {IoState::ok, 0, {}};
    s.start_write_locked();
    return {IoState::ok, s.write_buf.size(), {}};
  }

  void wait_readable(WaitHandler handler) override {
    PipeState& s = *state_;
    if (s.closed) {
      asio::post(s.handle.get_executor(),
                 [handler = std::move(handler)] { handler(asio::error::operation_aborted); });
      return;
    }
    if (s.read_pos < s.read_end || s.read_eof || !s.read_error.ok()) {
      asio::post(s.handle.get_executor(), [handler = std::move(handler)] { handler({}); });
      return;
    }
    s.read_waiter = std::move(handler);
    s.start_read();
  }

  void wait_writable(WaitHandler handler) override {
    PipeState& s = *state_;
    std::lock_guard lock(s.write_mutex);
    if (s.write_closed || !s.write_pending) {
      std::error_code ec;
      if (s.write_closed) ec = asio::error::operation_aborted;
      asio::post(s.handle.get_executor(), [handler = std::move(handler), ec] { handler(ec); });
      return;
    }
    s.write_waiter = std::move(handler);
  }

  PeerCredentials credentials() const override { return credentials_; }

  void close() override {
    PipeState& s = *state_;
    if (s.closed) return;
    s.closed = true;
    WaitHandler reader = std::exchange(s.read_waiter, nullptr);
    WaitHandler writer;
    bool linger = false;
    {
      std::lock_guard lock(s.write_mutex);
      s.write_closed = true;
      writer = std::exchange(s.write_waiter, nullptr);
      linger = s.write_pending;
    }
    auto executor = s.handle.get_executor();
    for (WaitHandler* h : {&reader, &writer}) {
      if (*h) asio::post(executor, [h = std::move(*h)] { h(asio::error::operation_aborted); });
    }
    // A stopped context runs no completion and no timer: the write is cancelled now, or the
    // context's destruction would wait for it (Asio drains every outstanding overlapped
    // operation when its completion port shuts down).
    if (!linger || s.stopped()) {
      s.close_handle();
      return;
    }
    // The write in flight closes the handle when it completes (on_write); a peer that does not
    // read gets kCloseLinger to take it.
    s.linger.expires_after(kCloseLinger);
    s.linger.async_wait([state = state_](std::error_code ec) {
      if (!ec) state->close_handle();
    });
  }

 private:
  static IoResult closed_result() {
    return {IoState::error, 0, Status(Errc::closed, "stream is closed")};
  }
  std::shared_ptr<PipeState> state_;
  PeerCredentials credentials_;
};

// One pipe instance waiting for a client, shared with its pending ConnectNamedPipe.
struct PendingInstance {
  explicit PendingInstance(Handle h) : handle(std::move(h)) {}
  Handle handle;
};

class PipeListener final : public Listener {
 public:
  PipeListener(asio::io_context& io, std::string name) : io_(io), name_(std::move(name)) {}
  ~PipeListener() override { close(); }

  Status open() {
    if (Status s = check_pipe_name(name_); !s.ok()) return s;
    wide_ = widen(name_);
    if (Status s = security_.init(); !s.ok()) return s;
    // A hub already listening there is refused before anything is created. The first-instance
    // flag is what guarantees it (atomically); this probe also catches it where the flag is not
    // enforced (Wine 8 ignores it) and gives the clearer message.
    if (listening_now()) return in_use();
    for (int attempt = 0;; ++attempt) {
      Status s = create_instance(true);
      if (s.code() != Errc::endpoint_in_use) return s;
      if (listening_now()) return in_use();
      // The name exists but nobody listens: the clients of a hub that died still hold their
      // broken ends of its instances, and close them once they notice (at once, as a rule).
      if (attempt >= kStaleAttempts) {
        return Status(Errc::endpoint_in_use,
                      "the pipe " + name_ +
                          " still exists but no hub listens on it (processes still hold "
                          "connections to a hub that is gone); close them, or choose another "
                          "endpoint");
      }
      ::Sleep(kStaleRetryMs);
    }
  }

  void accept(AcceptHandler handler) override {
    if (closed_) {
      post_result(std::move(handler), Status(Errc::closed, "accept: the listener is closed"));
      return;
    }
    if (!next_) {
      // Creating the next instance failed after the last accept: try again, or report why.
      if (Status s = create_instance(false); !s.ok()) {
        post_result(std::move(handler), s);
        return;
      }
    }
    std::shared_ptr<PendingInstance> instance = next_;
    asio::windows::overlapped_ptr op(
        io_.get_executor(),
        [this, instance, handler = std::move(handler)](asio::error_code ec, std::size_t) mutable {
          on_connected(instance, ec, std::move(handler));
        });
    BOOL ok = ::ConnectNamedPipe(instance->handle.native_handle(), op.get());
    DWORD err = ::GetLastError();
    if (ok) {
      op.release();  // completed at once; the completion packet still comes
    } else if (err == ERROR_IO_PENDING) {
      op.release();
    } else if (err == ERROR_PIPE_CONNECTED) {
      op.complete({}, 0);  // a client came between CreateNamedPipe and ConnectNamedPipe
    } else {
      op.complete(win32_error(err), 0);
    }
  }

  bool restore(Status& status) override {
    status = {};  // a pipe has no file that anyone could delete
    return false;
  }

  void close() override {
    if (closed_) return;
    closed_ = true;
    if (next_) {
      std::error_code ignored;
      next_->handle.close(ignored);  // the pending ConnectNamedPipe completes with aborted
      next_.reset();
    }
  }

  const std::string& endpoint() const override { return name_; }

 private:
  void on_connected(const std::shared_ptr<PendingInstance>& instance, asio::error_code ec,
                    AcceptHandler handler) {
    if (closed_) {
      handler(Status(Errc::closed, "accept: the listener is closed"), nullptr);
      return;
    }
    if (ec && ec.value() == ERROR_NO_DATA) {
      // The client came and went before we saw it: the instance is reusable once disconnected.
      ::DisconnectNamedPipe(instance->handle.native_handle());
      accept(std::move(handler));
      return;
    }
    if (ec) {
      handler(Status(Errc::io_error, "ConnectNamedPipe " + name_ + ": " +
                                         win32_message(static_cast<DWORD>(ec.value()))),
              nullptr);
      return;
    }
    // The next client must find a free instance at once, or its CreateFile fails with
    // ERROR_PIPE_BUSY: create it before handing this one over. A failure here is reported by
    // the next accept(), which tries again.
    next_.reset();
    (void)create_instance(false);
    handler({}, std::make_unique<PipeStream>(io_, std::move(instance->handle)));
  }

  Status create_instance(bool first) {
    DWORD open_mode = PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED;
    if (first) open_mode |= FILE_FLAG_FIRST_PIPE_INSTANCE;
    HANDLE h = ::CreateNamedPipeW(
        wide_.c_str(), open_mode,
        PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
        PIPE_UNLIMITED_INSTANCES, kPipeBuffer, kPipeBuffer, 0, security_.attributes());
    if (h == INVALID_HANDLE_VALUE) {
      DWORD err = ::GetLastError();
      if (first && (err == ERROR_ACCESS_DENIED || err == ERROR_PIPE_BUSY)) return in_use();
      return win32_status("CreateNamedPipe " + name_, err);
    }
    Handle handle(io_);
    std::error_code ec;
    handle.assign(h, ec);  // associates it with the context's completion port
    if (ec) {
      ::CloseHandle(h);
      return Status(Errc::io_error, "CreateNamedPipe " + name_ + ": " + ec.message());
    }
    next_ = std::make_shared<PendingInstance>(std::move(handle));
    return {};
  }

  // Whether an instance of the pipe is waiting for a client now: a live hub. Connects nothing.
  bool listening_now() const { return ::WaitNamedPipeW(wide_.c_str(), 1) != 0; }

  Status in_use() const {
    return Status(Errc::endpoint_in_use,
                  "a hub (or another program) already has the pipe " + name_ +
                      "; connect to it as a client, or choose another endpoint");
  }

  void post_result(AcceptHandler handler, Status status) {
    asio::post(io_, [handler = std::move(handler), status = std::move(status)]() mutable {
      handler(std::move(status), nullptr);
    });
  }

  asio::io_context& io_;
  std::string name_;
  std::wstring wide_;
  OwnerOnlySecurity security_;
  std::shared_ptr<PendingInstance> next_;
  bool closed_ = false;
};

void try_connect(asio::io_context& io, std::string endpoint, std::wstring wide, int attempt,
                 ConnectHandler handler) {
  HANDLE h = ::CreateFileW(wide.c_str(), GENERIC_READ | GENERIC_WRITE, 0, nullptr, OPEN_EXISTING,
                           FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION,
                           nullptr);
  if (h == INVALID_HANDLE_VALUE) {
    DWORD err = ::GetLastError();
    if (err == ERROR_PIPE_BUSY && attempt < kBusyAttempts) {
      // Every instance is taken for a moment (the hub is between two accepts): try again soon,
      // without blocking the I/O thread in WaitNamedPipe.
      auto timer = std::make_shared<asio::steady_timer>(io, kBusyRetry);
      timer->async_wait([&io, timer, endpoint = std::move(endpoint), wide = std::move(wide),
                         attempt, handler = std::move(handler)](std::error_code ec) mutable {
        if (ec) {
          handler(Status(Errc::io_error, "connect " + endpoint + ": " + ec.message()), nullptr);
          return;
        }
        try_connect(io, std::move(endpoint), std::move(wide), attempt + 1, std::move(handler));
      });
      return;
    }
    handler(Status(Errc::io_error, "connect " + endpoint + ": " + win32_message(err)), nullptr);
    return;
  }
  Handle handle(io);
  std::error_code ec;
  handle.assign(h, ec);
  if (ec) {
    ::CloseHandle(h);
    handler(Status(Errc::io_error, "connect " + endpoint + ": " + ec.message()), nullptr);
    return;
  }
  handler({}, std::make_unique<PipeStream>(io, std::move(handle)));
}

}  // namespace

std::unique_ptr<Listener> listen_endpoint(asio::io_context& io, const std::string& endpoint,
                                          Status& status) {
  auto listener = std::make_unique<PipeListener>(io, endpoint);
  status = listener->open();
  if (!status.ok()) return nullptr;
  return listener;
}

void connect_endpoint(asio::io_context& io, const std::string& endpoint, ConnectHandler handler) {
  if (Status s = check_pipe_name(endpoint); !s.ok()) {
    asio::post(io, [handler = std::move(handler), s = std::move(s)]() mutable {
      handler(std::move(s), nullptr);
    });
    return;
  }
  // Through the context, as an asynchronous connect would be: the handler never runs inside
  // connect_endpoint().
  asio::post(io, [&io, endpoint, handler = std::move(handler)]() mutable {
    try_connect(io, endpoint, widen(endpoint), 0, std::move(handler));
  });
}

std::string default_endpoint(const std::string& name) {
  std::string safe;
  for (char c : name)
    safe.push_back((std::isalnum(static_cast<unsigned char>(c)) || c == '-') ? c : '_');
  if (safe.empty()) safe = "hub";
  if (safe.size() > 32) safe.resize(32);
  return std::string(kPipePrefix) + "switchboard-" + safe + "-" +
         std::to_string(::GetCurrentProcessId());
}

std::uint32_t this_user_id() {
  return 0;
}

}  // namespace switchboard
