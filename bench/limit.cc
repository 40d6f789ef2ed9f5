// The limit: what two processes get from a Unix socket with nothing in between, for the bench
// suite (bench/js/run.mjs) to set every contender against in the same run. No framework, no
// core/: a forked child and its parent on a socketpair, 4-byte length-prefixed messages.
//
//   switchboard_limit [--quick]      prints one JSON object on stdout
//
// pingpong   one 64-byte message there and back, blocking read/write: p50/p99 µs (S2's limit)
// pipelined  the same with 64 round trips in flight, replies batched per read (S3's limit)
// stream     64-byte messages one way, 256 per writev, the reader parses each (S1/S5/S6's limit)
// bulk       1 MiB messages one way, each read into its own buffer (S4's limit), MB = 10^6 bytes
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kPrefix = 4;
constexpr std::size_t kSmall = 64;
constexpr std::size_t kMessage = kPrefix + kSmall;
constexpr std::size_t kBulk = 1 << 20;
constexpr std::size_t kInFlight = 64;
constexpr std::size_t kBatch = 256;

bool read_full(int fd, void* data, std::size_t size) {
  auto* p = static_cast<std::uint8_t*>(data);
  while (size > 0) {
    ssize_t n = ::read(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

bool write_full(int fd, const void* data, std::size_t size) {
  const auto* p = static_cast<const std::uint8_t*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

bool writev_full(int fd, std::vector<iovec>& iov) {
  std::size_t at = 0;
  while (at < iov.size()) {
    ssize_t n = ::writev(fd, iov.data() + at,
                         static_cast<int>(std::min<std::size_t>(iov.size() - at, IOV_MAX)));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    auto left = static_cast<std::size_t>(n);
    while (at < iov.size() && left >= iov[at].iov_len) left -= iov[at++].iov_len;
    if (left > 0) {
      iov[at].iov_base = static_cast<std::uint8_t*>(iov[at].iov_base) + left;
      iov[at].iov_len -= left;
    }
  }
  return true;
}

void put_prefix(std::uint8_t* at, std::uint32_t size) {
  at[0] = static_cast<std::uint8_t>(size >> 24);
  at[1] = static_cast<std::uint8_t>(size >> 16);
  at[2] = static_cast<std::uint8_t>(size >> 8);
  at[3] = static_cast<std::uint8_t>(size);
}

std::uint32_t get_prefix(const std::uint8_t* at) {
  return (std::uint32_t{at[0]} << 24) | (std::uint32_t{at[1]} << 16) | (std::uint32_t{at[2]} << 8) |
         std::uint32_t{at[3]};
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

/** Runs `child(fd)` in a forked process on one end of a socketpair, `parent(fd)` here. */
template <typename Child, typename Parent>
std::string run_pair(Child child, Parent parent) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) {
    return std::string("socketpair: ") + std::strerror(errno);
  }
  pid_t pid = ::fork();
  if (pid < 0) return std::string("fork: ") + std::strerror(errno);
  if (pid == 0) {
    ::close(fds[0]);
    bool ok = child(fds[1]);
    ::_exit(ok ? 0 : 1);
  }
  ::close(fds[1]);
  std::string error = parent(fds[0]);
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (error.empty() && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
    error = "the peer process failed";
  }
  return error;
}

/** Echoes complete 68-byte messages back, as many per write as one read brought. */
bool echo_peer(int fd) {
  std::vector<std::uint8_t> buf(64 * 1024);
  std::size_t have = 0;
  for (;;) {
    ssize_t n = ::read(fd, buf.data() + have, buf.size() - have);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) return true;
    if (n < 0) return false;
    have += static_cast<std::size_t>(n);
    std::size_t whole = have - have % kMessage;
    if (whole > 0 && !write_full(fd, buf.data(), whole)) return false;
    std::memmove(buf.data(), buf.data() + whole, have - whole);
    have -= whole;
  }
}

std::vector<std::uint8_t> small_message() {
  std::vector<std::uint8_t> m(kMessage, std::uint8_t{'p'});
  put_prefix(m.data(), kSmall);
  return m;
}

struct Result {
  std::string name;
  std::string json;  // the object's fields, without braces
  std::string error;
};

Result pingpong(std::uint64_t trips) {
  Result r{"pingpong", "", ""};
  std::vector<double> us;
  double total = 0;
  r.error = run_pair(echo_peer, [&](int fd) -> std::string {
    auto ping = small_message();
    std::vector<std::uint8_t> pong(kMessage);
    for (std::uint64_t i = 0; i < trips / 10; ++i) {  // warm-up
      if (!write_full(fd, ping.data(), ping.size()) || !read_full(fd, pong.data(), pong.size())) {
        return "ping-pong: socket error";
      }
    }
    us.reserve(trips);
    auto start = Clock::now();
    for (std::uint64_t i = 0; i < trips; ++i) {
      auto t0 = Clock::now();
      if (!write_full(fd, ping.data(), ping.size()) || !read_full(fd, pong.data(), pong.size())) {
        return "ping-pong: socket error";
      }
      us.push_back(seconds_since(t0) * 1e6);
    }
    total = seconds_since(start);
    ::shutdown(fd, SHUT_WR);
    return "";
  });
  if (!r.error.empty() || us.empty()) return r;
  std::sort(us.begin(), us.end());
  auto at = [&](double p) {
    auto i = static_cast<std::size_t>(p / 100 * static_cast<double>(us.size()));
    return us[std::min(us.size() - 1, i == 0 ? 0 : i - 1)];
  };
  char buf[256];
  std::snprintf(
      buf, sizeof buf, "\"trips\": %llu, \"p50Us\": %.2f, \"p99Us\": %.2f, \"tripsPerSec\": %.0f",
      static_cast<unsigned long long>(trips), at(50), at(99), static_cast<double>(trips) / total);
  r.json = buf;
  return r;
}

Result pipelined(std::uint64_t trips) {
  Result r{"pipelined", "", ""};
  double total = 0;
  r.error = run_pair(echo_peer, [&](int fd) -> std::string {
    auto one = small_message();
    std::vector<std::uint8_t> out;
    out.reserve(kInFlight * kMessage);
    std::vector<std::uint8_t> in(64 * 1024);
    std::size_t have = 0;
    std::uint64_t sent = 0;
    std::uint64_t done = 0;
    auto send = [&](std::uint64_t count) {
      out.clear();
      for (std::uint64_t i = 0; i < count; ++i) out.insert(out.end(), one.begin(), one.end());
      sent += count;
      return write_full(fd, out.data(), out.size());
    };
    auto start = Clock::now();
    if (!send(std::min<std::uint64_t>(kInFlight, trips))) return "pipelined: socket error";
    while (done < trips) {
      ssize_t n = ::read(fd, in.data() + have, in.size() - have);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return "pipelined: socket error";
      have += static_cast<std::size_t>(n);
      std::uint64_t replies = have / kMessage;
      for (std::uint64_t i = 0; i < replies; ++i) {
        if (get_prefix(in.data() + i * kMessage) != kSmall) return "pipelined: bad reply";
      }
      std::size_t whole = static_cast<std::size_t>(replies) * kMessage;
      std::memmove(in.data(), in.data() + whole, have - whole);
      have -= whole;
      done += replies;
      std::uint64_t more = std::min<std::uint64_t>(replies, trips - sent);
      if (more > 0 && !send(more)) return "pipelined: socket error";
    }
    total = seconds_since(start);
    ::shutdown(fd, SHUT_WR);
    return "";
  });
  if (!r.error.empty()) return r;
  char buf[160];
  std::snprintf(buf, sizeof buf, "\"trips\": %llu, \"inFlight\": %zu, \"tripsPerSec\": %.0f",
                static_cast<unsigned long long>(trips), kInFlight,
                static_cast<double>(trips) / total);
  r.json = buf;
  return r;
}

/** The child writes `count` messages of `size` bytes, `batch` per writev, after a go byte. */
auto writer(std::uint64_t count, std::size_t size, std::size_t batch) {
  return [=](int fd) {
    std::uint8_t go = 0;
    if (!read_full(fd, &go, 1)) return false;
    std::vector<std::uint8_t> prefix(kPrefix);
    put_prefix(prefix.data(), static_cast<std::uint32_t>(size));
    std::vector<std::uint8_t> payload(size, std::uint8_t{'b'});
    std::vector<iovec> iov;
    for (std::uint64_t sent = 0; sent < count;) {
      auto n = static_cast<std::size_t>(std::min<std::uint64_t>(batch, count - sent));
      iov.clear();
      for (std::size_t i = 0; i < n; ++i) {
        iov.push_back(iovec{prefix.data(), prefix.size()});
        iov.push_back(iovec{payload.data(), payload.size()});
      }
      if (!writev_full(fd, iov)) return false;
      sent += n;
    }
    return true;
  };
}

Result stream(std::uint64_t count) {
  Result r{"stream", "", ""};
  double total = 0;
  r.error = run_pair(writer(count, kSmall, kBatch), [&](int fd) -> std::string {
    std::vector<std::uint8_t> in(64 * 1024);
    std::size_t have = 0;
    std::uint64_t got = 0;
    std::uint64_t sum = 0;  // touches every message so none is skipped unread
    std::uint8_t go = 1;
    auto start = Clock::now();
    if (!write_full(fd, &go, 1)) return "stream: socket error";
    while (got < count) {
      ssize_t n = ::read(fd, in.data() + have, in.size() - have);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return "stream: the writer stopped early";
      have += static_cast<std::size_t>(n);
      std::size_t at = 0;
      while (have - at >= kPrefix) {
        std::uint32_t size = get_prefix(in.data() + at);
        if (size != kSmall) return "stream: bad length";
        if (have - at < kPrefix + size) break;
        sum += in[at + kPrefix];
        at += kPrefix + size;
        ++got;
      }
      std::memmove(in.data(), in.data() + at, have - at);
      have -= at;
    }
    total = seconds_since(start);
    if (sum != count * 'b') return "stream: wrong bytes";
    return "";
  });
  if (!r.error.empty()) return r;
  char buf[200];
  std::snprintf(buf, sizeof buf,
                "\"messages\": %llu, \"bytes\": %zu, \"perWrite\": %zu, \"messagesPerSec\": %.0f",
                static_cast<unsigned long long>(count), kSmall, kBatch,
                static_cast<double>(count) / total);
  r.json = buf;
  return r;
}

Result bulk(std::uint64_t count) {
  Result r{"bulk", "", ""};
  double total = 0;
  r.error = run_pair(writer(count, kBulk, 1), [&](int fd) -> std::string {
    std::uint8_t go = 1;
    std::vector<std::uint8_t> prefix(kPrefix);
    std::uint64_t sum = 0;
    auto start = Clock::now();
    if (!write_full(fd, &go, 1)) return "bulk: socket error";
    for (std::uint64_t i = 0; i < count; ++i) {
      if (!read_full(fd, prefix.data(), kPrefix)) return "bulk: the writer stopped early";
      std::uint32_t size = get_prefix(prefix.data());
      if (size != kBulk) return "bulk: bad length";
      std::vector<std::uint8_t> message(
          size);  // a fresh buffer per message, as a receiver keeps it
      if (!read_full(fd, message.data(), message.size())) return "bulk: the writer stopped early";
      sum += message[size - 1];
    }
    total = seconds_since(start);
    if (sum != count * 'b') return "bulk: wrong bytes";
    return "";
  });
  if (!r.error.empty()) return r;
  char buf[160];
  std::snprintf(buf, sizeof buf, "\"messages\": %llu, \"bytes\": %zu, \"mbPerSec\": %.1f",
                static_cast<unsigned long long>(count), kBulk,
                static_cast<double>(count * kBulk) / total / 1e6);
  r.json = buf;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  std::vector<Result> results;
  results.push_back(pingpong(quick ? 2'000 : 20'000));
  results.push_back(pipelined(quick ? 20'000 : 200'000));
  results.push_back(stream(quick ? 200'000 : 2'000'000));
  results.push_back(bulk(quick ? 50 : 500));
  bool failed = false;
  std::printf("{\n");
  for (std::size_t i = 0; i < results.size(); ++i) {
    const auto& r = results[i];
    if (r.error.empty()) {
      std::printf("  \"%s\": { %s }", r.name.c_str(), r.json.c_str());
    } else {
      failed = true;
      std::printf("  \"%s\": { \"error\": \"%s\" }", r.name.c_str(), r.error.c_str());
    }
    std::printf(i + 1 < results.size() ? ",\n" : "\n");
  }
  std::printf("}\n");
  return failed ? 1 : 0;
}
