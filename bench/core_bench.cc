// Benchmarks of the core (hub, client, framing) next to raw Unix-socket baselines, in one binary
// so that each pair runs on the same machine in the same run:
//
//   BM_HubEvents          vs BM_RawUnixStream     throughput: N 64-byte messages, one way
//   BM_HubInvokeRoundTrip vs BM_RawUnixPingPong   latency: R sequential request/reply round trips
//
// Every wait is a condition variable with a generous deadline: nothing synchronises by sleeping,
// and a core bug shows up as a benchmark error ("timed out ...") rather than a hung run. See
// README.md for how to build and run, and what each figure means.
#include <benchmark/benchmark.h>

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "client.h"
#include "handshake.h"
#include "hub.h"

namespace sb = switchboard;

namespace {

// Shared by each pair so that their figures compare like with like.
constexpr std::size_t kPayloadSize = 64;
constexpr std::int64_t kMessages = 200000;   // BM_HubEvents and BM_RawUnixStream
constexpr std::int64_t kRoundTrips = 10000;  // BM_HubInvokeRoundTrip and BM_RawUnixPingPong
constexpr std::size_t kBatch = 256;          // frames per submit()/writev: one JavaScript turn
constexpr std::int64_t kIterations = 10;
// A deadline for every wait: far above any healthy figure, so only a hang reaches it.
constexpr std::chrono::seconds kDeadline{30};
// Big enough that BM_HubEvents never reaches it (N frames of ~90 bytes each): the benchmark
// measures delivery, not the drop policy. Drops are still counted and fail the run.
constexpr std::size_t kHubHighWater = 512u << 20;

using Clock = std::chrono::steady_clock;

// A monotonic count that one thread raises and another waits on.
class Counter {
 public:
  void add(std::uint64_t n = 1) {
    bool wake = false;
    {
      std::lock_guard lock(mutex_);
      value_ += n;
      wake = value_ >= target_;
    }
    if (wake) cv_.notify_all();
  }
  std::uint64_t value() {
    std::lock_guard lock(mutex_);
    return value_;
  }
  // Waits until the count reaches `target`; false when the deadline passes first.
  bool wait_for(std::uint64_t target, std::chrono::nanoseconds deadline = kDeadline) {
    std::unique_lock lock(mutex_);
    target_ = target;
    bool reached = cv_.wait_for(lock, deadline, [&] { return value_ >= target; });
    target_ = std::numeric_limits<std::uint64_t>::max();
    return reached;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::uint64_t value_ = 0;
  std::uint64_t target_ = std::numeric_limits<std::uint64_t>::max();
};

// The first error seen on an I/O thread, reported by the benchmark thread.
class ErrorSlot {
 public:
  void set(std::string message) {
    std::lock_guard lock(mutex_);
    if (message_.empty()) message_ = std::move(message);
  }
  std::string get() {
    std::lock_guard lock(mutex_);
    return message_;
  }

 private:
  std::mutex mutex_;
  std::string message_;
};

std::string describe(const sb::Envelope& e) {
  return std::string(sb::kind_name(e.kind)) + " id=" + std::to_string(e.id) + " topic=" + e.topic +
         " (" + sb::decode_message(e.payload) + ")";
}

double percentile(std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  auto rank = static_cast<std::size_t>(p * static_cast<double>(sorted.size()));
  return sorted[std::min(rank, sorted.size() - 1)];
}

void report_latency(benchmark::State& state, std::vector<double>& samples_us) {
  std::sort(samples_us.begin(), samples_us.end());
  state.counters["p50_us"] = percentile(samples_us, 0.50);
  state.counters["p99_us"] = percentile(samples_us, 0.99);
  state.counters["max_us"] = samples_us.empty() ? 0 : samples_us.back();
}

sb::Slice payload_bytes() {
  return sb::Slice::copy_of(std::string(kPayloadSize, 'p'));
}

// --- Hub fixture ------------------------------------------------------------------------------

// A private directory for the hub's socket: mkdtemp creates it 0700, as the transport requires.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "sbbench-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// One hub and two socket clients, A and B, each with its own I/O thread, as in an app where a
// utility process (A) talks to a Next.js server (B) through main's hub.
class HubPair {
 public:
  // `on_a`/`on_b` are the clients' on_batch callbacks; they run on A's and B's I/O threads.
  HubPair(std::function<void(std::vector<sb::Envelope>&)> on_a,
          std::function<void(std::vector<sb::Envelope>&)> on_b) {
    if (dir_.path().empty()) {
      error_ = "mkdtemp failed: " + std::string(std::strerror(errno));
      return;
    }
    sb::HubOptions ho;
    ho.endpoint = dir_.path() + "/hub.sock";
    ho.token = "bench-token";
    ho.name = "bench";
    ho.high_water_mark = kHubHighWater;
    hub_ = std::make_unique<sb::Hub>(std::move(ho));
    if (sb::Status s = hub_->start(); !s.ok()) {
      error_ = "hub start: " + s.to_string();
      return;
    }
    a_ = make_client("a", std::move(on_a));
    b_ = make_client("b", std::move(on_b));
    for (auto* c : {a_.get(), b_.get()}) {
      if (sb::Status s = c->start(); !s.ok()) {
        error_ = "client start: " + s.to_string();
        return;
      }
    }
    if (!connected_.wait_for(2)) error_ = "clients did not connect: " + refused_.get();
  }
  HubPair(const HubPair&) = delete;
  HubPair& operator=(const HubPair&) = delete;
  // Clients first, then the hub; TempDir then removes the directory.
  ~HubPair() {
    if (a_) a_->close();
    if (b_) b_->close();
    if (hub_) hub_->close();
  }

  const std::string& error() const { return error_; }
  sb::Hub& hub() { return *hub_; }
  sb::Client& a() { return *a_; }
  sb::Client& b() { return *b_; }

 private:
  std::unique_ptr<sb::Client> make_client(const std::string& name,
                                          std::function<void(std::vector<sb::Envelope>&)> cb) {
    sb::ClientOptions co;
    co.endpoint = hub_->endpoint();
    co.token = hub_->token();
    co.name = name;
    co.max_attempts = 0;  // the hub is already listening: a failed connect is an error
    sb::PortCallbacks pc;
    pc.on_batch = std::move(cb);
    pc.on_state = [this](sb::PortState st, const sb::Status& why) {
      if (st == sb::PortState::connected) connected_.add();
      if (st == sb::PortState::closed && !why.ok()) refused_.set(why.to_string());
    };
    return std::make_unique<sb::Client>(std::move(co), std::move(pc));
  }

  TempDir dir_;
  std::unique_ptr<sb::Hub> hub_;
  std::unique_ptr<sb::Client> a_;
  std::unique_ptr<sb::Client> b_;
  Counter connected_;
  ErrorSlot refused_;
  std::string error_;
};

// Submits control requests (SUBSCRIBE, REGISTER) in one batch and waits for an ack of each.
bool submit_and_ack(benchmark::State& state, sb::Client& client, Counter& acks, ErrorSlot& errors,
                    std::vector<sb::Envelope> requests) {
  std::uint64_t want = acks.value() + requests.size();
  if (sb::Status s = client.submit(std::move(requests)); !s.ok()) {
    state.SkipWithError(("submit: " + s.to_string()).c_str());
    return false;
  }
  if (!acks.wait_for(want)) {
    state.SkipWithError(("no ack from the hub: " + errors.get()).c_str());
    return false;
  }
  if (std::string e = errors.get(); !e.empty()) {
    state.SkipWithError(e.c_str());
    return false;
  }
  return true;
}

sb::Envelope control(sb::Kind kind, std::uint64_t id, std::string topic) {
  sb::Envelope e;
  e.kind = kind;
  e.id = id;
  e.topic = std::move(topic);
  return e;
}

// --- BM_HubEvents -----------------------------------------------------------------------------

// A emits N events on "bench" in batches of kBatch per submit(); B subscribes and counts them.
// After the N events A invokes "bench.fence", which B serves: replies are never dropped and a
// sender's frames keep their order, so the fence reaching B means every event that was not
// dropped has reached B, and a drop fails the run instead of hanging it.
void BM_HubEvents(benchmark::State& state) {
  const auto n = static_cast<std::uint64_t>(state.range(0));
  Counter received;  // events at B
  Counter fences;    // fence invokes at B
  Counter acks;      // RESULT acks of B's control requests
  ErrorSlot errors;
  std::atomic<sb::Client*> b{nullptr};  // set once the bus is up, read on B's I/O thread

  auto on_a = [&](std::vector<sb::Envelope>& batch) {
    for (const sb::Envelope& e : batch) {
      if (e.kind == sb::Kind::error) errors.set("A got " + describe(e));
    }
  };
  auto on_b = [&](std::vector<sb::Envelope>& batch) {
    std::uint64_t events = 0;
    std::uint64_t fenced = 0;
    std::vector<sb::Envelope> replies;
    for (sb::Envelope& e : batch) {
      switch (e.kind) {
        case sb::Kind::event:
          ++events;
          break;
        case sb::Kind::invoke:
          ++fenced;
          replies.push_back(control(sb::Kind::result, e.id, {}));
          break;
        case sb::Kind::result:
          acks.add();
          break;
        case sb::Kind::peer:  // the hub's directory of who joined: not part of the measurement
          break;
        default:
          errors.set("B got " + describe(e));
          acks.add();  // an ERROR answering a control request ends that wait too
          break;
      }
    }
    // Submitting from inside on_batch is allowed: submit() is thread-safe and returns at once.
    if (!replies.empty()) (void)b.load()->submit(std::move(replies));
    if (events) received.add(events);
    if (fenced) fences.add(fenced);
  };

  HubPair bus(on_a, on_b);
  if (!bus.error().empty()) {
    state.SkipWithError(bus.error().c_str());
    return;
  }
  b.store(&bus.b());
  std::vector<sb::Envelope> setup;
  setup.push_back(control(sb::Kind::subscribe, 1, "bench"));
  setup.push_back(control(sb::Kind::register_, 2, "bench.fence"));
  if (!submit_and_ack(state, bus.b(), acks, errors, std::move(setup))) return;

  std::uint64_t rounds = 0;
  // One round: N events, then the fence; true when B saw the fence and all N events.
  auto round = [&]() -> bool {
    ++rounds;
    for (std::uint64_t sent = 0; sent < n;) {
      std::size_t count = static_cast<std::size_t>(std::min<std::uint64_t>(kBatch, n - sent));
      std::vector<sb::Envelope> batch(count);
      for (sb::Envelope& e : batch) {
        e.kind = sb::Kind::event;
        e.topic = "bench";
        e.flags = sb::kFlagRawPayload;
        e.payload = payload_bytes();  // each emit carries its own bytes, as from JavaScript
      }
      if (sb::Status s = bus.a().submit(std::move(batch)); !s.ok()) {
        state.SkipWithError(("submit: " + s.to_string()).c_str());
        return false;
      }
      sent += count;
    }
    std::vector<sb::Envelope> fence;
    fence.push_back(control(sb::Kind::invoke, rounds, "bench.fence"));
    if (sb::Status s = bus.a().submit(std::move(fence)); !s.ok()) {
      state.SkipWithError(("submit: " + s.to_string()).c_str());
      return false;
    }
    if (!fences.wait_for(rounds)) {
      state.SkipWithError(("timed out waiting for the fence: " + errors.get()).c_str());
      return false;
    }
    if (std::uint64_t got = received.value(); got != rounds * n) {
      state.SkipWithError(("B received " + std::to_string(got) + " events, expected " +
                           std::to_string(rounds * n) + "; hub dropped " +
                           std::to_string(bus.hub().stats().events_dropped))
                              .c_str());
      return false;
    }
    return true;
  };

  if (!round()) return;  // warm-up: connections, allocator, page faults
  const sb::HubStats hub0 = bus.hub().stats();
  const sb::PortStats a0 = bus.a().stats();
  for (auto _ : state) {
    if (!round()) break;
  }
  const sb::HubStats hub1 = bus.hub().stats();
  const sb::PortStats a1 = bus.a().stats();

  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(n * kPayloadSize));
  auto ratio = [](std::uint64_t num, std::uint64_t den) {
    return den == 0 ? 0.0 : static_cast<double>(num) / static_cast<double>(den);
  };
  state.counters["hub_frames/writev"] =
      ratio(hub1.frames_out - hub0.frames_out, hub1.writev_calls - hub0.writev_calls);
  state.counters["a_frames/writev"] =
      ratio(a1.frames_out - a0.frames_out, a1.writev_calls - a0.writev_calls);
  state.counters["dropped"] = static_cast<double>(hub1.events_dropped - hub0.events_dropped);
}

// --- BM_HubInvokeRoundTrip ---------------------------------------------------------------------

// B serves "echo" by answering each INVOKE with a RESULT carrying the same id and payload. A
// invokes sequentially: submit, wait for the RESULT, repeat. Each round trip is timed alone.
void BM_HubInvokeRoundTrip(benchmark::State& state) {
  const auto trips = static_cast<std::uint64_t>(state.range(0));
  Counter replies;  // RESULT or ERROR at A
  Counter acks;     // B's REGISTER ack
  ErrorSlot errors;
  std::atomic<sb::Client*> b{nullptr};  // set once the bus is up, read on B's I/O thread

  auto on_a = [&](std::vector<sb::Envelope>& batch) {
    std::uint64_t results = 0;
    for (const sb::Envelope& e : batch) {
      if (e.kind == sb::Kind::result) {
        ++results;
      } else if (e.kind != sb::Kind::peer) {  // PEER: the hub's directory, not a reply
        errors.set("A got " + describe(e));
      }
    }
    replies.add(results);
  };
  auto on_b = [&](std::vector<sb::Envelope>& batch) {
    std::vector<sb::Envelope> out;
    for (sb::Envelope& e : batch) {
      if (e.kind == sb::Kind::invoke) {
        sb::Envelope r = control(sb::Kind::result, e.id, {});
        r.flags = e.flags;
        r.payload = std::move(e.payload);
        out.push_back(std::move(r));
      } else if (e.kind == sb::Kind::result) {
        acks.add();
      } else if (e.kind != sb::Kind::peer) {
        errors.set("B got " + describe(e));
        acks.add();
      }
    }
    if (!out.empty()) (void)b.load()->submit(std::move(out));
  };

  HubPair bus(on_a, on_b);
  if (!bus.error().empty()) {
    state.SkipWithError(bus.error().c_str());
    return;
  }
  b.store(&bus.b());
  std::vector<sb::Envelope> setup;
  setup.push_back(control(sb::Kind::register_, 1, "echo"));
  if (!submit_and_ack(state, bus.b(), acks, errors, std::move(setup))) return;

  const sb::Slice payload = payload_bytes();
  std::uint64_t next_id = 0;
  std::vector<double> samples_us;
  samples_us.reserve(static_cast<std::size_t>(trips * kIterations));
  // One round trip; returns its duration in seconds, or a negative value after an error.
  auto trip = [&]() -> double {
    std::vector<sb::Envelope> call;
    call.push_back(control(sb::Kind::invoke, ++next_id, "echo"));
    call.back().flags = sb::kFlagRawPayload;
    call.back().payload = payload;
    auto t0 = Clock::now();
    if (sb::Status s = bus.a().submit(std::move(call)); !s.ok()) {
      state.SkipWithError(("submit: " + s.to_string()).c_str());
      return -1;
    }
    if (!replies.wait_for(next_id)) {
      state.SkipWithError(("timed out waiting for a RESULT: " + errors.get()).c_str());
      return -1;
    }
    auto t1 = Clock::now();
    if (std::string e = errors.get(); !e.empty()) {
      state.SkipWithError(e.c_str());
      return -1;
    }
    return std::chrono::duration<double>(t1 - t0).count();
  };

  for (std::uint64_t i = 0; i < trips / 10; ++i) {  // warm-up
    if (trip() < 0) return;
  }
  for (auto _ : state) {
    double total = 0;
    for (std::uint64_t i = 0; i < trips; ++i) {
      double t = trip();
      if (t < 0) break;
      total += t;
      samples_us.push_back(t * 1e6);
    }
    if (state.error_occurred()) break;
    state.SetIterationTime(total);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(trips));
  report_latency(state, samples_us);
}

// --- Raw Unix socket baselines ------------------------------------------------------------------

class SocketPair {
 public:
  SocketPair() {
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds_.data()) != 0) fds_ = {-1, -1};
  }
  SocketPair(const SocketPair&) = delete;
  SocketPair& operator=(const SocketPair&) = delete;
  ~SocketPair() {
    close_end(0);
    close_end(1);
  }
  bool ok() const { return fds_[0] >= 0; }
  int fd(int end) const { return fds_[static_cast<std::size_t>(end)]; }
  void close_end(int end) {
    int& fd = fds_[static_cast<std::size_t>(end)];
    if (fd >= 0) ::close(fd);
    fd = -1;
  }

 private:
  std::array<int, 2> fds_{};
};

// Blocking helpers; false on EOF or error. MSG_NOSIGNAL: a closed peer is an error, not SIGPIPE.
bool read_full(int fd, std::uint8_t* data, std::size_t size) {
  while (size > 0) {
    ssize_t n = ::read(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

bool write_iov(int fd, iovec* iov, std::size_t count) {
  while (count > 0) {
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = count;
    ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    auto left = static_cast<std::size_t>(n);
    while (count > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      ++iov;
      --count;
    }
    if (count > 0) {
      iov->iov_base = static_cast<std::uint8_t*>(iov->iov_base) + left;
      iov->iov_len -= left;
    }
  }
  return true;
}

bool write_full(int fd, const std::uint8_t* data, std::size_t size) {
  iovec iov{const_cast<std::uint8_t*>(data), size};
  return write_iov(fd, &iov, 1);
}

// A message as the raw baselines frame it: 4-byte big-endian length, then the payload.
std::array<std::uint8_t, sb::kFrameHeaderSize> length_prefix() {
  std::array<std::uint8_t, sb::kFrameHeaderSize> h{};
  sb::put_frame_header(h.data(), kPayloadSize);
  return h;
}

// --- BM_RawUnixPingPong ---

// The same request/reply pattern as BM_HubInvokeRoundTrip with nothing in between: two threads
// on a socketpair echo one length-prefixed 64-byte message with blocking read/write.
void BM_RawUnixPingPong(benchmark::State& state) {
  const auto trips = static_cast<std::uint64_t>(state.range(0));
  SocketPair sp;
  if (!sp.ok()) {
    state.SkipWithError(("socketpair: " + std::string(std::strerror(errno))).c_str());
    return;
  }
  constexpr std::size_t kMsg = sb::kFrameHeaderSize + kPayloadSize;
  std::thread echo([fd = sp.fd(1)] {
    std::array<std::uint8_t, kMsg> buf{};
    while (read_full(fd, buf.data(), buf.size()) && write_full(fd, buf.data(), buf.size())) {
    }
  });

  std::array<std::uint8_t, kMsg> ping{};
  auto prefix = length_prefix();
  std::copy(prefix.begin(), prefix.end(), ping.begin());
  std::fill(ping.begin() + sb::kFrameHeaderSize, ping.end(), std::uint8_t{'p'});
  std::array<std::uint8_t, kMsg> pong{};
  const int fd = sp.fd(0);
  auto trip = [&]() -> double {
    auto t0 = Clock::now();
    if (!write_full(fd, ping.data(), ping.size()) || !read_full(fd, pong.data(), pong.size())) {
      state.SkipWithError("ping-pong: socket error");
      return -1;
    }
    auto t1 = Clock::now();
    return std::chrono::duration<double>(t1 - t0).count();
  };

  std::vector<double> samples_us;
  samples_us.reserve(static_cast<std::size_t>(trips * kIterations));
  bool ok = true;
  for (std::uint64_t i = 0; ok && i < trips / 10; ++i) ok = trip() >= 0;  // warm-up
  if (ok) {
    for (auto _ : state) {
      double total = 0;
      for (std::uint64_t i = 0; i < trips; ++i) {
        double t = trip();
        if (t < 0) break;
        total += t;
        samples_us.push_back(t * 1e6);
      }
      if (state.error_occurred()) break;
      state.SetIterationTime(total);
    }
  }
  sp.close_end(0);  // the echo thread reads EOF and returns
  echo.join();
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(trips));
  report_latency(state, samples_us);
}

// --- BM_RawUnixStream ---

// The same one-way flow as BM_HubEvents with nothing in between: a writer thread sends N
// length-prefixed 64-byte messages, kBatch per sendmsg (two iovecs each, as the core's Batcher
// gathers them); the benchmark thread reads 64 KiB at a time and parses every message.
void BM_RawUnixStream(benchmark::State& state) {
  const auto n = static_cast<std::uint64_t>(state.range(0));
  SocketPair sp;
  if (!sp.ok()) {
    state.SkipWithError(("socketpair: " + std::string(std::strerror(errno))).c_str());
    return;
  }

  Counter go;  // rounds the writer is asked for; a round past `stop_at` ends it
  std::atomic<bool> stop{false};
  std::atomic<bool> write_failed{false};
  std::thread writer([&, fd = sp.fd(1)] {
    auto prefix = length_prefix();
    std::string payload(kPayloadSize, 'p');
    std::vector<iovec> iov(2 * kBatch);
    for (std::uint64_t round = 1;; ++round) {
      while (!go.wait_for(round)) {
      }
      if (stop.load()) return;
      for (std::uint64_t sent = 0; sent < n;) {
        std::size_t count = static_cast<std::size_t>(std::min<std::uint64_t>(kBatch, n - sent));
        for (std::size_t i = 0; i < count; ++i) {
          iov[2 * i] = iovec{prefix.data(), prefix.size()};
          iov[2 * i + 1] = iovec{payload.data(), payload.size()};
        }
        if (!write_iov(fd, iov.data(), 2 * count)) {
          write_failed.store(true);
          return;
        }
        sent += count;
      }
    }
  });

  std::vector<std::uint8_t> buf(64u << 10);
  const int fd = sp.fd(0);
  // Incremental parser state, kept across reads: header bytes so far, then body bytes left.
  std::array<std::uint8_t, sb::kFrameHeaderSize> header{};
  std::size_t header_have = 0;
  std::size_t body_left = 0;
  std::uint64_t checksum = 0;
  auto round = [&]() -> bool {
    go.add();
    std::uint64_t parsed = 0;
    while (parsed < n) {
      ssize_t got = ::read(fd, buf.data(), buf.size());
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        state.SkipWithError(write_failed.load() ? "stream: write failed" : "stream: read failed");
        return false;
      }
      const std::uint8_t* p = buf.data();
      const std::uint8_t* end = p + got;
      while (p < end) {
        if (body_left == 0) {
          while (header_have < header.size() && p < end) header[header_have++] = *p++;
          if (header_have < header.size()) break;
          body_left = sb::get_frame_header(header.data());
          header_have = 0;
          if (body_left != kPayloadSize) {
            state.SkipWithError("stream: bad length prefix");
            return false;
          }
          if (p == end) break;  // the body starts in the next read
        }
        std::size_t take = std::min<std::size_t>(body_left, static_cast<std::size_t>(end - p));
        checksum += p[0];  // touch the payload; p < end here
        p += take;
        body_left -= take;
        if (body_left == 0) ++parsed;
      }
    }
    return true;
  };

  bool ok = round();  // warm-up
  if (ok) {
    for (auto _ : state) {
      if (!round()) break;
    }
  }
  stop.store(true);
  go.add();
  sp.close_end(0);  // unblocks a writer stuck in sendmsg after a failed round
  writer.join();
  benchmark::DoNotOptimize(checksum);
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(n * kPayloadSize));
}

}  // namespace

BENCHMARK(BM_HubEvents)
    ->Arg(kMessages)
    ->Iterations(kIterations)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_RawUnixStream)
    ->Arg(kMessages)
    ->Iterations(kIterations)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_HubInvokeRoundTrip)
    ->Arg(kRoundTrips)
    ->Iterations(kIterations)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_RawUnixPingPong)
    ->Arg(kRoundTrips)
    ->Iterations(kIterations)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
