// Helpers for the socket-level core tests: private temp directories, a recorder that turns
// Port callbacks into things a test can wait on, and a raw peer that speaks frames by hand.
// Waiting is always on a condition variable signalled by the event itself, with a deadline so a
// broken build fails instead of hanging; nothing here sleeps to synchronise.
#pragma once

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "bytes.h"
#include "envelope.h"
#include "frame.h"
#include "handshake.h"
#include "hub.h"
#include "port.h"

namespace switchboard::testing {

// Built with ASan or TSan (the CI's sanitizer lanes, Debug builds): every process runs several
// times slower, so long loops scale down there and timing figures are printed, not asserted;
// each test that does so says so in its output.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
#else
inline constexpr bool kSanitized = false;
#endif

// SWITCHBOARD_SOAK=N runs the long fault loops N times longer (test/soak.sh); 1 in CI.
inline int soak_factor() {
  const char* v = std::getenv("SWITCHBOARD_SOAK");
  int n = v ? std::atoi(v) : 1;
  return n > 1 ? n : 1;
}

using namespace std::chrono_literals;

// A fresh 0700 directory under /tmp, removed with everything in it at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = "/tmp/sbtest-XXXXXX";
    char* made = ::mkdtemp(tmpl.data());
    if (made == nullptr) std::abort();
    path_ = made;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::permissions(path_, std::filesystem::perms::owner_all, ec);
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Waits on a predicate under a mutex; every mutation calls notify().
class Waiter {
 public:
  template <typename Pred>
  bool wait_for(Pred pred, std::chrono::milliseconds deadline = 5000ms) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, deadline, pred);
  }
  template <typename Fn>
  void update(Fn fn) {
    {
      std::lock_guard lock(mutex_);
      fn();
    }
    cv_.notify_all();
  }
  std::mutex& mutex() { return mutex_; }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
};

struct Received {
  Kind kind;
  std::uint64_t id;
  std::string topic;
  std::uint32_t flags;
  std::uint64_t sender;
  std::string payload;
};

// Records what a Port delivers.
class Recorder {
 public:
  PortCallbacks callbacks() {
    PortCallbacks cb;
    cb.on_batch = [this](std::vector<Envelope>& batch) {
      waiter_.update([&] {
        ++batches_;
        for (auto& e : batch) {
          if (on_envelope_) on_envelope_(e);
          got_.push_back({e.kind, e.id, e.topic, e.flags, e.sender, std::string(e.payload.view())});
        }
      });
    };
    cb.on_state = [this](PortState s, const Status& why) {
      waiter_.update([&] {
        states_.push_back(s);
        if (s == PortState::connected) ++connects_;
        last_status_ = why;
      });
    };
    return cb;
  }

  // Sets a hook called on the I/O thread for every envelope before it is recorded (e.g. to
  // answer invokes). Set under the recorder's mutex: the I/O thread may be delivering already.
  void set_on_envelope(std::function<void(const Envelope&)> fn) {
    waiter_.update([&] { on_envelope_ = std::move(fn); });
  }

  bool wait_count(Kind kind, std::size_t n, std::chrono::milliseconds deadline = 5000ms) {
    return waiter_.wait_for([&] { return count_locked(kind) >= n; }, deadline);
  }
  bool wait_connects(int n, std::chrono::milliseconds deadline = 10000ms) {
    return waiter_.wait_for([&] { return connects_ >= n; }, deadline);
  }
  bool wait_state(PortState s, std::chrono::milliseconds deadline = 5000ms) {
    return waiter_.wait_for(
        [&] { return std::find(states_.begin(), states_.end(), s) != states_.end(); }, deadline);
  }
  // Waits for a reply (RESULT or ERROR) with this id and returns it.
  std::optional<Received> wait_reply(std::uint64_t id,
                                     std::chrono::milliseconds deadline = 5000ms) {
    std::optional<Received> out;
    waiter_.wait_for(
        [&] {
          for (auto& r : got_) {
            if ((r.kind == Kind::result || r.kind == Kind::error) && r.id == id) {
              out = r;
              return true;
            }
          }
          return false;
        },
        deadline);
    return out;
  }
  std::size_t count(Kind kind) {
    std::lock_guard lock(waiter_.mutex());
    return count_locked(kind);
  }
  std::vector<Received> of_kind(Kind kind) {
    std::lock_guard lock(waiter_.mutex());
    std::vector<Received> out;
    for (auto& r : got_) {
      if (r.kind == kind) out.push_back(r);
    }
    return out;
  }
  std::size_t batches() {
    std::lock_guard lock(waiter_.mutex());
    return batches_;
  }
  Status last_status() {
    std::lock_guard lock(waiter_.mutex());
    return last_status_;
  }

 private:
  std::size_t count_locked(Kind kind) const {
    std::size_t n = 0;
    for (auto& r : got_) n += r.kind == kind ? 1 : 0;
    return n;
  }
  Waiter waiter_;
  std::function<void(const Envelope&)> on_envelope_;
  std::vector<Received> got_;
  std::vector<PortState> states_;
  std::size_t batches_ = 0;
  int connects_ = 0;
  Status last_status_;
};

// Records the hub's membership events; install with options.on_peer = peers.hook().
class PeerLog {
 public:
  std::function<void(const PeerEvent&)> hook() {
    return [this](const PeerEvent& ev) { waiter_.update([&] { events_.push_back(ev); }); };
  }
  bool wait(PeerEvent::Type type, std::size_t n, std::chrono::milliseconds deadline = 5000ms) {
    return waiter_.wait_for([&] { return count_locked(type) >= n; }, deadline);
  }
  // Waits until `n` connections have ended, admitted (left) or not (rejected).
  bool wait_departed(std::size_t n, std::chrono::milliseconds deadline = 5000ms) {
    return waiter_.wait_for(
        [&] {
          return count_locked(PeerEvent::Type::left) + count_locked(PeerEvent::Type::rejected) >= n;
        },
        deadline);
  }
  bool wait_all_left(std::chrono::milliseconds deadline = 5000ms) {
    return waiter_.wait_for(
        [&] {
          return count_locked(PeerEvent::Type::left) >= count_locked(PeerEvent::Type::joined);
        },
        deadline);
  }
  std::vector<PeerEvent> of_type(PeerEvent::Type type) {
    std::lock_guard lock(waiter_.mutex());
    std::vector<PeerEvent> out;
    for (auto& e : events_) {
      if (e.type == type) out.push_back(e);
    }
    return out;
  }

 private:
  std::size_t count_locked(PeerEvent::Type type) const {
    std::size_t n = 0;
    for (auto& e : events_) n += e.type == type ? 1 : 0;
    return n;
  }
  Waiter waiter_;
  std::vector<PeerEvent> events_;
};

inline Envelope make(Kind kind, std::string topic, std::uint64_t id = 0,
                     std::string_view payload = {}) {
  Envelope e;
  e.kind = kind;
  e.topic = std::move(topic);
  e.id = id;
  if (!payload.empty()) e.payload = Slice::copy_of(payload);
  return e;
}

// A batch of one, for Port::submit().
inline std::vector<Envelope> one(Envelope e) {
  std::vector<Envelope> batch;
  batch.push_back(std::move(e));
  return batch;
}

inline std::string frame_bytes(const Envelope& env) {
  WireFrame f;
  EXPECT_TRUE(encode_frame(env, f).ok());
  std::string out(reinterpret_cast<const char*>(f.head->data()), f.head->size());
  out.append(f.payload.view());
  return out;
}

inline std::string hello_frame(const std::string& token,
                               std::uint32_t protocol = kProtocolVersion) {
  Hello h;
  h.protocol = protocol;
  h.token = token;
  h.role = "test";
  h.name = "raw";
  h.pid = static_cast<std::uint64_t>(::getpid());
  Envelope e;
  e.kind = Kind::hello;
  e.payload = encode_hello(h);
  return frame_bytes(e);
}

// A blocking socket peer that writes bytes by hand and reads frames back, with a receive
// timeout so a missing reply fails the test instead of hanging it.
class RawPeer {
 public:
  explicit RawPeer(const std::string& endpoint) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, endpoint.data(), endpoint.size());
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  // Takes over a socket accepted elsewhere (RawHub::accept).
  struct Adopt {};
  RawPeer(Adopt, int fd) : fd_(fd), connected_(fd >= 0) {
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~RawPeer() { close(); }
  RawPeer(const RawPeer&) = delete;
  RawPeer& operator=(const RawPeer&) = delete;

  bool connected() const { return connected_; }
  int peers_seen = 0;
  int fd() const { return fd_; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  bool write(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }
  // Reads one whole frame; nullopt at EOF, error or timeout. PEER announcements are skipped
  // (and counted) unless `keep_peers`.
  std::optional<Envelope> read_frame(bool keep_peers = false) {
    for (;;) {
      if (!frames_.empty()) {
        Slice frame = frames_.front();
        frames_.erase(frames_.begin());
        Envelope env;
        if (!decode_frame(frame, env, DecodeLimits{1u << 20}).ok()) return std::nullopt;
        if (env.kind == Kind::peer && !keep_peers) {
          ++peers_seen;
          continue;
        }
        return env;
      }
      std::uint8_t buf[65536];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return std::nullopt;
      if (!decoder_.feed({buf, static_cast<std::size_t>(n)}, frames_).ok()) return std::nullopt;
    }
  }
  // Reads until EOF (true) or error/timeout (false), discarding frames.
  bool read_until_eof() {
    std::uint8_t buf[65536];
    for (;;) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n == 0) return true;
      if (n < 0) return false;
    }
  }
  // Handshakes with `token`; returns the WELCOME (or GOAWAY) frame.
  std::optional<Envelope> handshake(const std::string& token) {
    if (!write(hello_frame(token))) return std::nullopt;
    return read_frame();
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  FrameDecoder decoder_{kDefaultMaxFrame};
  std::vector<Slice> frames_;
};

// A listening socket that plays the hub by hand, for tests that must see or control exactly
// what a client writes (the order of its frames, when its connection drops).
class RawHub {
 public:
  explicit RawHub(const std::string& endpoint) : endpoint_(endpoint) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, endpoint.data(), endpoint.size());
    listening_ =
        ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 && ::listen(fd_, 16) == 0;
  }
  ~RawHub() { close(); }
  RawHub(const RawHub&) = delete;
  RawHub& operator=(const RawHub&) = delete;

  bool listening() const { return listening_; }
  // Stops listening: a client's next connection attempt is refused.
  void close() {
    if (fd_ >= 0) {
      ::close(fd_);
      ::unlink(endpoint_.c_str());
    }
    fd_ = -1;
  }
  // The next connection, within 5 s; null if none came.
  std::unique_ptr<RawPeer> accept() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 5000) != 1) return nullptr;
    int fd = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return nullptr;
    return std::make_unique<RawPeer>(RawPeer::Adopt{}, fd);
  }
  // Reads the client's HELLO and welcomes it (as peer `peer_id`), followed by `extra` bytes.
  static bool welcome(RawPeer& link, std::uint64_t peer_id, const std::string& extra = {}) {
    auto hello = link.read_frame();
    if (!hello || hello->kind != Kind::hello) return false;
    Welcome w;
    w.protocol = kProtocolVersion;
    w.peer_id = peer_id;
    w.hub_pid = static_cast<std::uint64_t>(::getpid());
    w.hub_name = "raw";
    w.max_frame = kDefaultMaxFrame;
    Envelope e;
    e.kind = Kind::welcome;
    e.payload = encode_welcome(w);
    return link.write(frame_bytes(e) + extra);
  }

 private:
  std::string endpoint_;
  int fd_ = -1;
  bool listening_ = false;
};

// A started hub on a private endpoint, with its membership recorded.
struct HubFixture {
  TempDir dir;
  PeerLog peers;
  std::unique_ptr<Hub> hub;

  explicit HubFixture(HubOptions opt = {}) {
    if (opt.endpoint.empty()) opt.endpoint = dir.file("hub.sock");
    if (opt.token.empty()) opt.token = "test-token";
    opt.on_peer = peers.hook();
    hub = std::make_unique<Hub>(std::move(opt));
    Status s = hub->start();
    EXPECT_TRUE(s.ok()) << s.to_string();
  }
  // Asserts the promised clean teardown once `departed` connections have ended: nobody left,
  // nothing pending, the I/O thread joined.
  void expect_clean_teardown(std::size_t departed) {
    EXPECT_TRUE(peers.wait_departed(departed)) << "expected " << departed << " connections to end";
    HubStats s = hub->stats();
    EXPECT_EQ(s.peers, 0u);
    EXPECT_EQ(s.handshaking, 0u);
    EXPECT_EQ(s.pending_invokes, 0u);
    EXPECT_EQ(s.subscriptions, 0u);
    EXPECT_EQ(s.handlers, 0u);
    hub->close();  // joins the I/O thread
    torn_down_ = true;
  }
  // Tests that do not tear down explicitly get the same check once every peer they admitted
  // has left (their clients and raw peers are destroyed before the fixture).
  ~HubFixture() {
    if (torn_down_) return;
    EXPECT_TRUE(peers.wait_all_left()) << "admitted peers did not all leave";
    expect_clean_teardown(0);
  }

 private:
  bool torn_down_ = false;
};

}  // namespace switchboard::testing

#include "client.h"

namespace switchboard::testing {

// A started Client with its recorder, connected to `hub` unless told otherwise.
struct TestClient {
  Recorder rec;  // declared first: outlives the client's callbacks
  std::unique_ptr<Client> client;

  TestClient(const std::string& endpoint, const std::string& token, bool wait = true,
             ClientOptions opt = {}) {
    opt.endpoint = endpoint;
    opt.token = token;
    client = std::make_unique<Client>(std::move(opt), rec.callbacks());
    Status s = client->start();
    EXPECT_TRUE(s.ok()) << s.to_string();
    if (wait) {
      EXPECT_TRUE(rec.wait_connects(1)) << "client was not welcomed";
    }
  }
  explicit TestClient(const Hub& hub, ClientOptions opt = {})
      : TestClient(hub.endpoint(), hub.token(), true, std::move(opt)) {}

  Status send(Envelope e) {
    std::vector<Envelope> batch;
    batch.push_back(std::move(e));
    return client->submit(std::move(batch));
  }
  // Sends a control request with an id and waits for its RESULT; returns the reply.
  std::optional<Received> request(Kind kind, std::string topic) {
    std::uint64_t id = next_id++;
    EXPECT_TRUE(send(make(kind, std::move(topic), id)).ok());
    return rec.wait_reply(id);
  }
  void subscribe(std::string topic) {
    auto r = request(Kind::subscribe, std::move(topic));
    ASSERT_TRUE(r.has_value());
    ASSERT_EQ(r->kind, Kind::result);
  }
  std::uint64_t next_id = 1000000;
};

}  // namespace switchboard::testing
