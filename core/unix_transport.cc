// Unix domain socket transport for Linux and macOS. See transport.h for the contract.
// Portable POSIX: Linux's conveniences are used where they exist, and the macOS (BSD) way where
// they do not, chosen by feature (the macro, or SWITCHBOARD_HAVE_ACCEPT4 from CMake), never by OS:
// - peer credentials: SO_PEERCRED (Linux), else getpeereid() with LOCAL_PEERPID for the pid;
// - no SIGPIPE: MSG_NOSIGNAL on each send (Linux), else SO_NOSIGPIPE on the socket (macOS);
// - close-on-exec and non-blocking from birth: SOCK_CLOEXEC/SOCK_NONBLOCK and accept4() (Linux),
//   else fcntl() right after socket()/accept() (macOS has neither; the window in which a
//   concurrent fork+exec could inherit the descriptor is then a few instructions wide);
// - sun_path holds 108 bytes on Linux, 104 on macOS: the limit is sizeof(sun_path), and an
//   endpoint that does not fit is an invalid_argument that names it.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <asio/local/stream_protocol.hpp>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "transport.h"

namespace switchboard {
namespace {

using Protocol = asio::local::stream_protocol;

constexpr std::size_t kSunPath = sizeof(sockaddr_un::sun_path);

#if defined(MSG_NOSIGNAL)
constexpr int kSendFlags = MSG_NOSIGNAL | MSG_DONTWAIT;
#else
constexpr int kSendFlags = MSG_DONTWAIT;  // SO_NOSIGPIPE is set on the socket instead
#endif

// Makes `fd` close-on-exec and non-blocking where the socket calls could not (no SOCK_CLOEXEC,
// no accept4), and keeps writes to a vanished reader from raising SIGPIPE where MSG_NOSIGNAL is
// missing. Returns false (errno set) if any of it failed.
bool finish_socket([[maybe_unused]] int fd, [[maybe_unused]] bool nonblocking) {
#if !defined(SOCK_CLOEXEC) || !defined(SWITCHBOARD_HAVE_ACCEPT4)
  int fd_flags = ::fcntl(fd, F_GETFD);
  if (fd_flags < 0 || ::fcntl(fd, F_SETFD, fd_flags | FD_CLOEXEC) != 0) return false;
  if (nonblocking) {
    int fl = ::fcntl(fd, F_GETFL);
    if (fl < 0 || ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) return false;
  }
#endif
#if !defined(MSG_NOSIGNAL) && defined(SO_NOSIGPIPE)
  int on = 1;
  if (::setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &on, sizeof on) != 0) return false;
#endif
  return true;
}

// socket(AF_UNIX, SOCK_STREAM) that is close-on-exec (and non-blocking when asked) from birth
// where the OS allows, else right after.
int unix_socket(bool nonblocking) {
#if defined(SOCK_CLOEXEC)
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
#else
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
#endif
  if (fd < 0) return fd;
#if defined(SOCK_CLOEXEC)
  // Only SO_NOSIGPIPE can be left to do here (never on Linux).
  if (!finish_socket(fd, false)) {
#else
  if (!finish_socket(fd, nonblocking)) {
#endif
    int err = errno;
    ::close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

// accept() that returns a close-on-exec, non-blocking socket.
int accept_socket(int listener) {
#if defined(SWITCHBOARD_HAVE_ACCEPT4)
  int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (fd < 0) return fd;
#if !defined(MSG_NOSIGNAL)
  if (!finish_socket(fd, false)) {
    int err = errno;
    ::close(fd);
    errno = err;
    return -1;
  }
#endif
  return fd;
#else
  int fd = ::accept(listener, nullptr, nullptr);
  if (fd < 0) return fd;
  if (!finish_socket(fd, true)) {
    int err = errno;
    ::close(fd);
    errno = err;
    return -1;
  }
  return fd;
#endif
}

Status path_too_long(const std::string& path) {
  return Status(Errc::invalid_argument,
                "endpoint path is " + std::to_string(path.size()) +
                    " bytes; Unix sockets here allow at most " + std::to_string(kSunPath - 1) +
                    " (sun_path holds " + std::to_string(kSunPath) +
                    " bytes with its terminating zero): choose a shorter one");
}

class UnixStream final : public Stream {
 public:
  explicit UnixStream(Protocol::socket socket) : socket_(std::move(socket)) {
    std::error_code ec;
    socket_.non_blocking(true, ec);
  }
  ~UnixStream() override { close(); }

  IoResult try_read(std::span<std::uint8_t> into) override {
    if (!socket_.is_open()) return closed_result();
    for (;;) {
      ssize_t n = ::recv(socket_.native_handle(), into.data(), into.size(), MSG_DONTWAIT);
      if (n > 0) return {IoState::ok, static_cast<std::size_t>(n), {}};
      if (n == 0) return {IoState::eof, 0, {}};
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return {IoState::would_block, 0, {}};
      return {IoState::error, 0, errno_status("recv", errno)};
    }
  }

  IoResult try_write(std::span<const IoVec> bufs) override {
    if (!socket_.is_open()) return closed_result();
    msghdr msg{};
    msg.msg_iov = const_cast<IoVec*>(bufs.data());
    msg.msg_iovlen = bufs.size();
    for (;;) {
      // sendmsg rather than writev: MSG_NOSIGNAL keeps a vanished reader from raising SIGPIPE
      // (where it is missing, the socket's SO_NOSIGPIPE does: unix_socket, accept_socket).
      ssize_t n = ::sendmsg(socket_.native_handle(), &msg, kSendFlags);
      if (n >= 0) return {IoState::ok, static_cast<std::size_t>(n), {}};
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return {IoState::would_block, 0, {}};
      return {IoState::error, 0, errno_status("sendmsg", errno)};
    }
  }

  void wait_readable(WaitHandler handler) override {
    socket_.async_wait(Protocol::socket::wait_read, std::move(handler));
  }
  void wait_writable(WaitHandler handler) override {
    socket_.async_wait(Protocol::socket::wait_write, std::move(handler));
  }

  PeerCredentials credentials() const override {
    PeerCredentials out;
    int fd = const_cast<Protocol::socket&>(socket_).native_handle();
#if defined(SO_PEERCRED)
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
      out.known = true;
      out.pid = static_cast<std::uint32_t>(cred.pid);
      out.uid = cred.uid;
      out.gid = cred.gid;
    }
#else
    uid_t uid = 0;
    gid_t gid = 0;
    if (::getpeereid(fd, &uid, &gid) == 0) {
      out.known = true;
      out.uid = static_cast<std::uint32_t>(uid);
      out.gid = static_cast<std::uint32_t>(gid);
#if defined(LOCAL_PEERPID)
      pid_t pid = 0;
      socklen_t len = sizeof(pid);
      if (::getsockopt(fd, SOL_LOCAL, LOCAL_PEERPID, &pid, &len) == 0) {
        out.pid = static_cast<std::uint32_t>(pid);
      }
#endif
    }
#endif
    return out;
  }

  void close() override {
    std::error_code ec;
    if (socket_.is_open()) socket_.close(ec);
  }

 private:
  static IoResult closed_result() {
    return {IoState::error, 0, Status(Errc::closed, "stream is closed")};
  }
  Protocol::socket socket_;
};

// Checks the directory that holds the socket: it must be a real directory (not a symlink), owned
// by us, and closed to group and others. Creates it (0700) when missing.
Status check_private_dir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status(Errc::endpoint_unsafe, "cannot create the endpoint directory " + dir + ": " +
                                             std::strerror(errno) +
                                             "; choose an endpoint in a directory you own");
  }
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) return errno_status("lstat " + dir, errno);
  if (S_ISLNK(st.st_mode)) {
    return Status(Errc::endpoint_unsafe, "endpoint directory " + dir +
                                             " is a symbolic link; remove it or choose another "
                                             "endpoint");
  }
  if (!S_ISDIR(st.st_mode)) {
    return Status(Errc::endpoint_unsafe, dir + " is not a directory");
  }
  if (st.st_uid != ::geteuid()) {
    return Status(Errc::endpoint_unsafe, "endpoint directory " + dir + " belongs to uid " +
                                             std::to_string(st.st_uid) +
                                             ", not to this user; choose a directory you own");
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%03o", static_cast<unsigned>(st.st_mode & 0777));
    return Status(Errc::endpoint_unsafe, "endpoint directory " + dir + " has mode " + mode +
                                             "; it must be 0700 (run: chmod 700 " + dir + ")");
  }
  return {};
}

std::string parent_dir(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Returns ok when `path` is free to bind: absent, or a stale socket that refused a probe
// connection (then it is removed). A live socket or a non-socket file is left alone.
Status clear_stale_socket(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return {};
    return errno_status("lstat " + path, errno);
  }
  if (!S_ISSOCK(st.st_mode)) {
    return Status(Errc::endpoint_unsafe,
                  path + " exists and is not a socket; refusing to replace it");
  }
  int fd = unix_socket(false);
  if (fd < 0) return errno_status("socket", errno);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  int err = errno;
  ::close(fd);
  if (rc == 0) {
    return Status(Errc::endpoint_in_use, "a hub is already listening on " + path +
                                             "; connect to it as a client, or choose another "
                                             "endpoint");
  }
  if (err != ECONNREFUSED) return errno_status("probe connect " + path, err);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return errno_status("unlink " + path, errno);
  return {};
}

class UnixListener final : public Listener {
 public:
  UnixListener(asio::io_context& io, std::string path) : acceptor_(io), path_(std::move(path)) {}
  ~UnixListener() override { close(); }

  Status open() {
    if (path_.empty() || path_[0] == '\0') {
      return Status(Errc::invalid_argument,
                    "endpoint must be a filesystem path; abstract socket "
                    "names are refused because any user could bind them");
    }
    if (path_.size() >= kSunPath) return path_too_long(path_);
    if (Status s = check_private_dir(parent_dir(path_)); !s.ok()) return s;
    if (Status s = clear_stale_socket(path_); !s.ok()) return s;
    return bind_into(acceptor_);
  }

  void accept(AcceptHandler handler) override {
    // Wait for readiness and accept4() ourselves, so the new socket is close-on-exec from birth
    // (asio's accept would leave a window in which a concurrent spawn inherits it).
    acceptor_.async_wait(Protocol::acceptor::wait_read, [this, generation = generation_,
                                                         handler = std::move(handler)](
                                                            std::error_code ec) mutable {
      if (ec == asio::error::operation_aborted && generation != generation_ && !closed_) {
        accept(std::move(handler));  // restore() replaced the socket: wait on the new one
        return;
      }
      if (ec) {
        handler(Status(ec == asio::error::operation_aborted ? Errc::closed : Errc::io_error,
                       "accept: " + ec.message()),
                nullptr);
        return;
      }
      int fd = accept_socket(acceptor_.native_handle());
      if (fd < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED) {
          accept(std::move(handler));  // spurious wake-up or a peer that gave up: wait again
          return;
        }
        handler(errno_status("accept", errno), nullptr);
        return;
      }
      Protocol::socket socket(acceptor_.get_executor());
      std::error_code assign_ec;
      socket.assign(Protocol(), fd, assign_ec);
      if (assign_ec) {
        ::close(fd);
        handler(Status(Errc::io_error, "accept: " + assign_ec.message()), nullptr);
        return;
      }
      handler({}, std::make_unique<UnixStream>(std::move(socket)));
    });
  }

  bool restore(Status& status) override {
    status = {};
    if (closed_) return false;
    struct stat st {};
    if (::lstat(path_.c_str(), &st) == 0) {
      if (st.st_ino == inode_ && st.st_dev == device_) return false;  // still ours
      status = Status(Errc::endpoint_in_use, path_ +
                                                 " was replaced by another file; this hub keeps "
                                                 "its open connections but cannot accept new ones");
      return false;
    }
    if (errno != ENOENT) {
      status = errno_status("lstat " + path_, errno);
      return false;
    }
    // Deleted (perhaps with its directory, by a cleaner of /tmp): the same checks as at start.
    if (Status s = check_private_dir(parent_dir(path_)); !s.ok()) {
      status = s;
      return false;
    }
    Protocol::acceptor fresh(acceptor_.get_executor());
    if (Status s = bind_into(fresh); !s.ok()) {
      status = s;
      return false;
    }
    ++generation_;
    std::error_code ec;
    acceptor_.close(ec);  // its pending wait runs with operation_aborted and re-arms on `fresh`
    acceptor_ = std::move(fresh);
    return true;
  }

  void close() override {
    closed_ = true;
    std::error_code ec;
    if (acceptor_.is_open()) acceptor_.close(ec);
    if (owns_path_) {
      owns_path_ = false;
      // Remove the file only if it is still the socket we bound: a newer hub may have replaced it.
      struct stat st {};
      if (::lstat(path_.c_str(), &st) == 0 && st.st_ino == inode_ && st.st_dev == device_) {
        ::unlink(path_.c_str());
      }
    }
  }

  const std::string& endpoint() const override { return path_; }

 private:
  // Binds and listens a new close-on-exec socket at path_ into `acceptor`, mode 0600, and
  // remembers its inode so close() and restore() can tell our file from someone else's.
  Status bind_into(Protocol::acceptor& acceptor) {
    std::error_code ec;
    // Asio opens sockets without SOCK_CLOEXEC: every process this one spawns (an Electron utility
    // process, a Next.js server) would inherit the listener. Open it ourselves and hand it over.
    int fd = unix_socket(true);
    if (fd < 0) return errno_status("socket", errno);
    acceptor.assign(Protocol(), fd, ec);
    if (ec) {
      ::close(fd);
      return Status(Errc::io_error, "socket: " + ec.message());
    }
    acceptor.bind(Protocol::endpoint(path_), ec);
    if (ec) {
      std::error_code ignored;
      acceptor.close(ignored);
      if (ec == std::errc::address_in_use) {
        return Status(Errc::endpoint_in_use, "another hub bound " + path_ + " first");
      }
      return Status(Errc::io_error, "bind " + path_ + ": " + ec.message());
    }
    // The 0700 directory is what keeps others out; 0600 on the socket is the second fence.
    struct stat st {};
    if (::chmod(path_.c_str(), 0600) != 0 || ::lstat(path_.c_str(), &st) != 0) {
      Status s = errno_status("chmod " + path_, errno);
      acceptor.close(ec);
      ::unlink(path_.c_str());
      return s;
    }
    inode_ = st.st_ino;
    device_ = st.st_dev;
    owns_path_ = true;
    acceptor.listen(SOMAXCONN, ec);
    if (ec) {
      Status s(Errc::io_error, "listen " + path_ + ": " + ec.message());
      acceptor.close(ec);
      ::unlink(path_.c_str());
      owns_path_ = false;
      return s;
    }
    return {};
  }

  Protocol::acceptor acceptor_;
  std::string path_;
  bool owns_path_ = false;
  bool closed_ = false;
  unsigned generation_ = 0;  // bumped when restore() replaces the socket
  ino_t inode_ = 0;
  dev_t device_ = 0;
};

}  // namespace

std::unique_ptr<Listener> listen_endpoint(asio::io_context& io, const std::string& endpoint,
                                          Status& status) {
  auto listener = std::make_unique<UnixListener>(io, endpoint);
  status = listener->open();
  if (!status.ok()) return nullptr;
  return listener;
}

void connect_endpoint(asio::io_context& io, const std::string& endpoint, ConnectHandler handler) {
  if (endpoint.empty()) {
    handler(Status(Errc::invalid_argument, "the endpoint is empty: pass the hub's endpoint"),
            nullptr);
    return;
  }
  if (endpoint.size() >= kSunPath) {
    handler(path_too_long(endpoint), nullptr);
    return;
  }
  auto socket = std::make_shared<Protocol::socket>(io);
  int fd = unix_socket(true);  // see UnixListener::open: no inheritance by spawned processes
  std::error_code assign_ec;
  if (fd < 0 || (socket->assign(Protocol(), fd, assign_ec), assign_ec)) {
    if (fd >= 0) ::close(fd);
    handler(errno_status("socket", errno), nullptr);
    return;
  }
  socket->async_connect(
      Protocol::endpoint(endpoint),
      [socket, endpoint, handler = std::move(handler)](std::error_code ec) {
        if (ec) {
          handler(Status(Errc::io_error, "connect " + endpoint + ": " + ec.message()), nullptr);
          return;
        }
        handler({}, std::make_unique<UnixStream>(std::move(*socket)));
      });
}

std::string default_endpoint(const std::string& name) {
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  std::string base = (runtime && *runtime) ? runtime : "/tmp";
  std::string dir = base + "/switchboard-" + std::to_string(::geteuid());
  std::string safe;
  for (char c : name)
    safe.push_back((std::isalnum(static_cast<unsigned char>(c)) || c == '-') ? c : '_');
  if (safe.empty()) safe = "hub";
  if (safe.size() > 32) safe.resize(32);
  return dir + "/" + safe + "-" + std::to_string(::getpid()) + ".sock";
}

std::uint32_t this_user_id() {
  return static_cast<std::uint32_t>(::geteuid());
}

}  // namespace switchboard
