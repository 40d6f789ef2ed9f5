// Fuzz target: the hub's state machine, driven by a peer over a real Unix socket.
//
// One hub (and one bystander client) serves every input of the process; each input is one
// connection. Input byte 0 chooses the mode: bit 0 set sends a valid HELLO (the harness knows the
// token) before the rest, so the fuzzer reaches the authenticated states; bit 1 set half-closes
// (shutdown SHUT_WR) instead of closing, so the hub may still write to a peer that went quiet;
// bit 2 set makes the peer a slow reader in the mix (flow control, issue 11): after its bytes, and
// before it goes, the bystander publishes 256 KiB on the topic it subscribes to itself, and the
// harness waits until the hub has either routed all of it or paused the bystander for a receiver
// that does not read (the fuzz peer never reads; whether it subscribed is up to the fuzzer). The
// hub runs with a 16 KiB mark and a 100 ms stall timeout, so pauses and stalls are common.
// The rest of the input is the peer's bytes. The harness then closes the connection and waits for
// the hub to report that this peer left or was rejected: every connection ends exactly once.
//
// Checked after every input: the hub is back to its baseline (one admitted peer, nobody
// handshaking, the bystander's subscription and handler only, no pending invoke, and, once the
// resumes the departure posted have run, nobody paused or stalled and nothing parked). Checked
// every kBystanderEvery inputs: the bystander still gets the reply to an invoke, and the process
// has exactly its baseline file descriptors. A crash or sanitizer report in the hub is a crash
// here.
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "client.h"
#include "envelope.h"
#include "fuzz_check.h"
#include "handshake.h"
#include "hub.h"

namespace {

using namespace switchboard;
using namespace std::chrono_literals;

constexpr const char* kToken = "fuzz-token";
constexpr const char* kHandler = "fuzz.bystander.echo";
constexpr const char* kTopic = "fuzz.events";
constexpr std::uint64_t kBystanderEvery = 16;
// Generous: the hub answers in microseconds, but CI machines stall under the sanitizers.
constexpr auto kDeadline = 10s;
// Mode bit 2: what the bystander publishes while the fuzz peer is connected. More than a Unix
// socket's buffer (~200 KiB) plus the mark, so a subscriber that does not read pauses it.
constexpr int kSlowEvents = 256;
constexpr std::size_t kSlowEventSize = 1024;

std::string frame_bytes(const Envelope& env) {
  WireFrame f;
  FUZZ_CHECK(encode_frame(env, f).ok(), "the harness's own frame encodes");
  std::string out(reinterpret_cast<const char*>(f.head->data()), f.head->size());
  out.append(f.payload.view());
  return out;
}

std::string hello_frame() {
  Hello h;
  h.protocol = kProtocolVersion;
  h.token = kToken;
  h.role = "fuzz";
  h.name = "fuzz-peer";
  h.pid = static_cast<std::uint64_t>(::getpid());
  Envelope e;
  e.kind = Kind::hello;
  e.payload = encode_hello(h);
  return frame_bytes(e);
}

// The process's sockets and event descriptors (epoll, eventfd, timerfd): what the hub and the
// client open. Pipes and files are left out: libFuzzer and the sanitizers open those too (the
// symbolizer's pipes, corpus files).
std::map<int, std::string> open_fds() {
  std::map<int, std::string> fds;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    std::string target = std::filesystem::read_symlink(entry.path(), ec).string();
    if (!ec && (target.starts_with("socket:") || target.starts_with("anon_inode:"))) {
      fds[std::stoi(entry.path().filename().string())] = target;
    }
  }
  return fds;
}

void print_fd_difference(const std::map<int, std::string>& before,
                         const std::map<int, std::string>& now) {
  for (const auto& [fd, what] : now) {
    auto it = before.find(fd);
    if (it == before.end() || it->second != what)
      std::fprintf(stderr, "  new fd %d: %s\n", fd, what.c_str());
  }
  for (const auto& [fd, what] : before) {
    if (!now.contains(fd)) std::fprintf(stderr, "  gone fd %d: %s\n", fd, what.c_str());
  }
}

class Harness {
 public:
  Harness() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "sbfuzz-XXXXXX").string();
    FUZZ_CHECK(::mkdtemp(tmpl.data()) != nullptr, "a private temp directory");
    dir_ = tmpl;

    HubOptions opt;
    opt.endpoint = dir_ + "/hub.sock";
    opt.token = kToken;
    opt.name = "fuzz-hub";
    opt.high_water_mark = 16u << 10;
    opt.stall_timeout = 100ms;
    opt.on_peer = [this](const PeerEvent& ev) {
      if (ev.type == PeerEvent::Type::joined) return;
      {
        std::lock_guard lock(mutex_);
        ++departed_;
      }
      cv_.notify_all();
    };
    hub_ = std::make_unique<Hub>(std::move(opt));
    Status s = hub_->start();
    FUZZ_CHECK(s.ok(), "the hub starts");

    ClientOptions copt;
    copt.endpoint = hub_->endpoint();
    copt.token = kToken;
    copt.role = "bystander";
    copt.name = "bystander";
    PortCallbacks cb;
    cb.on_batch = [this](std::vector<Envelope>& batch) { on_batch(batch); };
    cb.on_state = [this](PortState state, const Status&) {
      {
        std::lock_guard lock(mutex_);
        connected_ = state == PortState::connected;
      }
      cv_.notify_all();
    };
    bystander_ = std::make_unique<Client>(std::move(copt), std::move(cb));
    FUZZ_CHECK(bystander_->start().ok(), "the bystander starts");
    FUZZ_CHECK(wait([&] { return connected_; }), "the bystander is welcomed");
    FUZZ_CHECK(request(Kind::register_, kHandler), "the bystander registers its handler");
    FUZZ_CHECK(request(Kind::subscribe, kTopic), "the bystander subscribes");
    baseline_fds_ = open_fds();
    check_baseline();
  }

  ~Harness() {
    bystander_->close();  // first: no callback may run while the pointer is being reset
    bystander_.reset();
    hub_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  void run(const std::uint8_t* data, std::size_t size) {
    std::uint8_t mode = size > 0 ? data[0] : 0;
    std::string bytes;
    if (mode & 1) bytes = hello_frame();
    if (size > 1) bytes.append(reinterpret_cast<const char*>(data + 1), size - 1);

    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    FUZZ_CHECK(fd >= 0, "a socket");
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::string path = hub_->endpoint();
    std::memcpy(addr.sun_path, path.data(), path.size());
    FUZZ_CHECK(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0,
               "the hub accepts connections");
    ++connections_;
    // The hub may close on the first bad byte: a short or failed write is part of the game.
    std::string_view left = bytes;
    while (!left.empty()) {
      ssize_t n = ::send(fd, left.data(), left.size(), MSG_NOSIGNAL);
      if (n <= 0) break;
      left.remove_prefix(static_cast<std::size_t>(n));
    }
    if (mode & 4) publish_past_a_slow_reader(fd);
    if (mode & 2) ::shutdown(fd, SHUT_WR);
    ::close(fd);
    FUZZ_CHECK(wait([&] { return departed_ >= connections_; }),
               "the hub reports the end of every connection");
    check_baseline();
    FUZZ_CHECK(poll_until([&] {
                 HubStats s = hub_->stats();
                 return s.paused == 0 && s.parked_bytes == 0 && s.stalled == 0;
               }),
               "nobody is left paused or stalled, and nothing parked, once the peer has gone");
    if (++inputs_ % kBystanderEvery == 1) check_bystander();
  }

 private:
  template <typename Pred>
  bool wait(Pred pred) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, kDeadline, pred);
  }

  // For state only the hub can see (its stats): polled, with the same deadline.
  template <typename Pred>
  bool poll_until(Pred pred) {
    auto end = std::chrono::steady_clock::now() + kDeadline;
    while (!pred()) {
      if (std::chrono::steady_clock::now() > end) return false;
      std::this_thread::sleep_for(1ms);
    }
    return true;
  }

  // Mode bit 2: the bystander publishes on its own topic, which the fuzz peer may have subscribed
  // to without ever reading. Done when the hub has taken all of it (routed to whoever subscribes,
  // or to nobody) or holds the bystander back for a receiver that is full.
  void publish_past_a_slow_reader(int fd) {
    // First the hub takes in what the peer wrote (a SUBSCRIBE among it, or not), so that the
    // events meet its subscriptions rather than race them: the kernel holds nothing of it unread
    // (SIOCOUTQ; not awaited for long, as the hub may have stopped reading it), and the I/O thread
    // has finished the turn that read it (peer_stats() runs on it).
    auto end = std::chrono::steady_clock::now() + 200ms;
    int unread = 0;
    while (::ioctl(fd, SIOCOUTQ, &unread) == 0 && unread > 0 &&
           std::chrono::steady_clock::now() < end) {
      std::this_thread::sleep_for(1ms);
    }
    (void)hub_->peer_stats();
    std::vector<Envelope> batch;
    for (int i = 0; i < kSlowEvents; ++i) {
      Envelope e;
      e.kind = Kind::event;
      e.topic = kTopic;
      e.payload = Slice::copy_of(std::string(kSlowEventSize, static_cast<char>('a' + i % 26)));
      batch.push_back(std::move(e));
    }
    FUZZ_CHECK(bystander_->submit(std::move(batch)).ok(), "the bystander publishes");
    FUZZ_CHECK(poll_until([&] {
                 HubStats s = hub_->stats();
                 return s.paused > 0 || (bystander_->outbound_bytes() == 0 && s.parked_bytes == 0);
               }),
               "the hub takes the bystander's events or pauses it");
  }

  void on_batch(std::vector<Envelope>& batch) {
    for (auto& e : batch) {
      if (e.kind == Kind::invoke) {
        // Answer every invoke, the fuzz peer's too, with the request's own payload.
        Envelope reply;
        reply.kind = Kind::result;
        reply.id = e.id;
        reply.payload = e.payload;
        std::vector<Envelope> out;
        out.push_back(std::move(reply));
        (void)bystander_->submit(std::move(out));
      } else if (e.kind == Kind::result || e.kind == Kind::error) {
        {
          std::lock_guard lock(mutex_);
          replies_.push_back(std::move(e));
        }
        cv_.notify_all();
      }
    }
  }

  // Sends one request from the bystander and waits for its RESULT, whose payload must echo ours.
  bool request(Kind kind, const std::string& topic, std::string_view payload = {}) {
    std::uint64_t id = ++next_id_;
    Envelope e;
    e.kind = kind;
    e.id = id;
    e.topic = topic;
    if (!payload.empty()) e.payload = Slice::copy_of(payload);
    std::vector<Envelope> batch;
    batch.push_back(std::move(e));
    if (!bystander_->submit(std::move(batch)).ok()) return false;
    Envelope got;
    bool replied = wait([&] {
      for (auto it = replies_.begin(); it != replies_.end(); ++it) {
        if (it->id == id) {
          got = std::move(*it);
          replies_.erase(it);
          return true;
        }
      }
      return false;
    });
    return replied && got.kind == Kind::result &&
           (payload.empty() || got.payload.view() == payload);
  }

  void check_baseline() {
    HubStats s = hub_->stats();
    FUZZ_CHECK(s.peers == 1, "only the bystander stays admitted");
    FUZZ_CHECK(s.handshaking == 0, "nobody is left half-way through the handshake");
    FUZZ_CHECK(s.subscriptions == 1, "only the bystander's subscription remains");
    FUZZ_CHECK(s.handlers == 1, "only the bystander's handler remains");
    FUZZ_CHECK(s.pending_invokes == 0, "no invoke is left pending");
  }

  void check_bystander() {
    std::string payload = "ping " + std::to_string(inputs_);
    FUZZ_CHECK(request(Kind::invoke, kHandler, payload), "the bystander still gets its reply");
    check_baseline();
    auto fds = open_fds();
    if (fds != baseline_fds_) print_fd_difference(baseline_fds_, fds);
    FUZZ_CHECK(fds == baseline_fds_, "no file descriptor leaks");
  }

  std::string dir_;
  std::unique_ptr<Hub> hub_;
  std::unique_ptr<Client> bystander_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool connected_ = false;
  std::uint64_t departed_ = 0;
  std::uint64_t connections_ = 0;
  std::uint64_t inputs_ = 0;
  std::uint64_t next_id_ = 0;
  std::vector<Envelope> replies_;
  std::map<int, std::string> baseline_fds_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Built on first use and torn down at exit (closing the hub joins its I/O thread).
  static Harness harness;
  harness.run(data, size);
  return 0;
}
