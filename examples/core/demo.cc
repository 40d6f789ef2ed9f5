// switchboard_demo: the C++ core in three processes.
//
// One binary in three roles. Without arguments it is the hub: it starts a Hub on a private
// endpoint, joins it with connect_local (role "main") and re-executes itself twice:
//   --role server   registers "math:fib" and answers it until "demo:shutdown" arrives;
//   --role worker   runs jobs a, b and c; each of their 20 steps invokes "math:fib" and then
//                   emits "job:progress"; at the end it emits "job:done".
// The hub draws the three jobs' progress, then shuts the children down, checks their exit
// codes and prints what Hub::stats() counted.
//
// Everything is synchronised by messages, never by sleeps: the worker is only spawned once the
// server has said "server:ready", which it does after the hub acked its REGISTER. Port
// callbacks run on I/O threads (port.h), so they only push into a Mailbox; the main thread of
// each role does all the work. The endpoint and the token reach the children through their
// environment, never through the command line.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "client.h"
#include "envelope.h"
#include "handshake.h"
#include "hub.h"
#include "port.h"
#include "status.h"

extern char** environ;

namespace {

namespace sb = switchboard;
using Clock = std::chrono::steady_clock;

constexpr auto kTimeout = std::chrono::seconds(30);  // for the whole run, in every role
constexpr int kSteps = 20;
constexpr std::array<std::string_view, 3> kJobs = {"job:a", "job:b", "job:c"};
constexpr const char* kEndpointVar = "SWITCHBOARD_ENDPOINT";
constexpr const char* kTokenVar = "SWITCHBOARD_TOKEN";

// Any failure: thrown on a main thread only, caught in main(), where RAII has closed the ports,
// killed the children and removed the temporary directory on the way.
struct Failure {
  std::string what;
};
[[noreturn]] void fail(std::string what) {
  throw Failure{std::move(what)};
}

// --- Handing callbacks to the main thread --------------------------------------------------------

struct StateChange {
  sb::PortState state;
  sb::Status why;
};
struct ChildExit {
  pid_t pid;
  int status;  // as from waitpid
};
using Item = std::variant<sb::Envelope, sb::PeerEvent, StateChange, ChildExit>;

class Mailbox {
 public:
  void push(Item item) {
    {
      std::lock_guard lock(mutex_);
      items_.push_back(std::move(item));
    }
    cv_.notify_one();
  }
  // One lock and one wake-up for a whole I/O batch.
  void push_batch(std::vector<sb::Envelope>& batch) {
    {
      std::lock_guard lock(mutex_);
      for (sb::Envelope& e : batch) items_.emplace_back(std::move(e));
    }
    cv_.notify_one();
  }
  // Everything queued, once there is something; empty at the deadline.
  std::vector<Item> take_all(Clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    cv_.wait_until(lock, deadline, [this] { return !items_.empty(); });
    std::vector<Item> out(std::make_move_iterator(items_.begin()),
                          std::make_move_iterator(items_.end()));
    items_.clear();
    return out;
  }
  // The first item `match` accepts, leaving the others queued; nullopt at the deadline.
  template <typename Pred>
  std::optional<Item> take(Pred match, Clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    std::optional<Item> out;
    cv_.wait_until(lock, deadline, [&] {
      auto it = std::find_if(items_.begin(), items_.end(), match);
      if (it == items_.end()) return false;
      out = std::move(*it);
      items_.erase(it);
      return true;
    });
    return out;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Item> items_;
};

sb::PortCallbacks callbacks_into(Mailbox& box) {
  sb::PortCallbacks cb;
  cb.on_batch = [&box](std::vector<sb::Envelope>& batch) { box.push_batch(batch); };
  cb.on_state = [&box](sb::PortState state, const sb::Status& why) {
    box.push(StateChange{state, why});
  };
  return cb;
}

// --- Envelopes -----------------------------------------------------------------------------------

// Payloads in this demo are short texts sent as raw bytes (kFlagRawPayload): no codec needed.
sb::Envelope envelope(sb::Kind kind, std::string topic, std::uint64_t id = 0,
                      std::string_view text = {}) {
  sb::Envelope e;
  e.kind = kind;
  e.id = id;
  e.topic = std::move(topic);
  if (!text.empty()) {
    e.flags = sb::kFlagRawPayload;
    e.payload = sb::Slice::copy_of(text);
  }
  return e;
}

void submit(sb::Port& port, std::vector<sb::Envelope> batch) {
  if (sb::Status s = port.submit(std::move(batch)); !s.ok()) fail("submit: " + s.to_string());
}

std::string error_text(const sb::Envelope& e) {
  // The hub's own errors carry a msgpack string; this demo's handlers send raw text.
  std::string message =
      (e.flags & sb::kFlagFromHub) ? sb::decode_message(e.payload) : std::string(e.payload.view());
  return e.topic + ": " + message;
}

bool is_lost(const StateChange& s) {
  return s.state == sb::PortState::reconnecting || s.state == sb::PortState::closed;
}

// Waits for the RESULT or ERROR answering request `id`; other items stay queued. This demo does
// not ride out a hub restart, so losing the connection is a failure like any other.
sb::Envelope wait_reply(Mailbox& box, std::uint64_t id, Clock::time_point deadline,
                        const std::string& what) {
  auto item = box.take(
      [id](const Item& it) {
        if (auto* e = std::get_if<sb::Envelope>(&it)) {
          return (e->kind == sb::Kind::result || e->kind == sb::Kind::error) && e->id == id;
        }
        if (auto* s = std::get_if<StateChange>(&it)) return is_lost(*s);
        return false;
      },
      deadline);
  if (!item) fail("timed out waiting for " + what);
  if (auto* s = std::get_if<StateChange>(&*item)) {
    fail("lost the hub while waiting for " + what + ": " + s->why.to_string());
  }
  auto& reply = std::get<sb::Envelope>(*item);
  if (reply.kind == sb::Kind::error) fail(what + " failed: " + error_text(reply));
  return std::move(reply);
}

// SUBSCRIBE, REGISTER and friends, sent with an id so that the hub acks them.
void request(sb::Port& port, Mailbox& box, sb::Kind kind, const std::string& topic,
             std::uint64_t id, Clock::time_point deadline) {
  submit(port, {envelope(kind, topic, id)});
  wait_reply(box, id, deadline, std::string(sb::kind_name(kind)) + " '" + topic + "'");
}

// --- The work ------------------------------------------------------------------------------------

std::optional<std::uint64_t> parse_uint(std::string_view text) {
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return v;
}

constexpr std::uint64_t kMaxFib = 93;  // fib(94) overflows 64 bits

std::uint64_t fib(std::uint64_t n) {
  std::uint64_t a = 0, b = 1;
  for (std::uint64_t i = 0; i < n; ++i) a = std::exchange(b, a + b);
  return a;
}

// --- Roles: server and worker --------------------------------------------------------------------

sb::ClientOptions client_options(const char* role) {
  const char* endpoint = std::getenv(kEndpointVar);
  const char* token = std::getenv(kTokenVar);
  if (!endpoint || !token) {
    fail(std::string(kEndpointVar) + " and " + kTokenVar +
         " are not set; run switchboard_demo without arguments, and it starts this role itself");
  }
  sb::ClientOptions opt;
  opt.endpoint = endpoint;
  opt.token = token;
  opt.role = role;
  opt.name = std::string("demo-") + role;
  return opt;
}

int run_server() {
  const auto deadline = Clock::now() + kTimeout;
  Mailbox box;
  sb::Client client(client_options("server"), callbacks_into(box));
  if (sb::Status s = client.start(); !s.ok()) fail("start: " + s.to_string());

  // Frames submitted before the handshake completes wait in the offline queue and go out, in
  // order, once the hub has welcomed us.
  request(client, box, sb::Kind::subscribe, "demo:shutdown", 1, deadline);
  request(client, box, sb::Kind::register_, "math:fib", 2, deadline);
  // The hub has admitted the handler: from now on an invoke of math:fib reaches us.
  submit(client, {envelope(sb::Kind::event, "server:ready")});

  for (bool done = false; !done;) {
    std::vector<Item> items = box.take_all(deadline);
    if (items.empty()) fail("timed out waiting for demo:shutdown");
    std::vector<sb::Envelope> replies;  // one submit, so one writev, per wake-up
    for (Item& item : items) {
      if (auto* s = std::get_if<StateChange>(&item); s && is_lost(*s)) {
        fail("lost the hub: " + s->why.to_string());
      }
      auto* e = std::get_if<sb::Envelope>(&item);
      if (!e) continue;
      if (e->kind == sb::Kind::event && e->topic == "demo:shutdown") done = true;
      if (e->kind != sb::Kind::invoke) continue;
      std::optional<std::uint64_t> n = parse_uint(e->payload.view());
      if (!n || *n > kMaxFib) {
        replies.push_back(envelope(sb::Kind::error,
                                   std::string(sb::wire_name(sb::Errc::invalid_argument)), e->id,
                                   "math:fib takes a decimal n from 0 to 93"));
        continue;
      }
      replies.push_back(envelope(sb::Kind::result, e->topic, e->id, std::to_string(fib(*n))));
    }
    if (!replies.empty()) submit(client, std::move(replies));
  }
  client.close();
  return 0;
}

int run_worker() {
  const auto deadline = Clock::now() + kTimeout;
  Mailbox box;
  sb::Client client(client_options("worker"), callbacks_into(box));
  if (sb::Status s = client.start(); !s.ok()) fail("start: " + s.to_string());

  // The three jobs advance together: each step sends one invoke per job in one batch, which the
  // core writes with one writev; the hub routes them to the server in order.
  std::uint64_t next_id = 1;
  for (int step = 0; step < kSteps; ++step) {
    const auto n = static_cast<std::uint64_t>(step + 20);
    std::vector<sb::Envelope> calls;
    for (std::size_t j = 0; j < kJobs.size(); ++j) {
      calls.push_back(envelope(sb::Kind::invoke, "math:fib", next_id + j, std::to_string(n)));
    }
    submit(client, std::move(calls));
    std::vector<sb::Envelope> progress;
    for (std::size_t j = 0; j < kJobs.size(); ++j) {
      sb::Envelope reply =
          wait_reply(box, next_id + j, deadline, "math:fib(" + std::to_string(n) + ")");
      if (reply.payload.view() != std::to_string(fib(n))) {
        fail("math:fib(" + std::to_string(n) + ") answered " + std::string(reply.payload.view()));
      }
      std::string text = std::string(kJobs[j]) + " " + std::to_string((step + 1) * 100 / kSteps);
      progress.push_back(envelope(sb::Kind::event, "job:progress", 0, text));
    }
    next_id += kJobs.size();
    submit(client, std::move(progress));
  }

  sb::PortStats st = client.stats();
  std::string summary = std::to_string(st.frames_out) + " " + std::to_string(st.writev_calls);
  submit(client, {envelope(sb::Kind::event, "job:done", 0, summary)});
  // close() sends what is queued on a best-effort basis. An ack comes back only after the hub
  // has handled everything we sent before, so once it is here job:done has been routed.
  request(client, box, sb::Kind::unsubscribe, "job:done", next_id, deadline);
  client.close();
  return 0;
}

// --- Role: hub -----------------------------------------------------------------------------------

// A fresh 0700 directory for the socket, removed with it at the end.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = "/tmp/switchboard-demo-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) fail(std::string("mkdtemp: ") + std::strerror(errno));
    path_ = tmpl;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    ::unlink((path_ + "/hub.sock").c_str());  // the hub removes it on close; this is a fallback
    ::rmdir(path_.c_str());
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The children and one reaper thread each, which posts a ChildExit to the mailbox. The reaper
// marks a child exited before it reaps it, under the lock the destructor takes before killing,
// so a pid is never signalled after it could have been reused.
class Children {
 public:
  explicit Children(Mailbox& box) : box_(box) {}
  Children(const Children&) = delete;
  Children& operator=(const Children&) = delete;
  ~Children() {
    {
      std::lock_guard lock(mutex_);
      for (auto& c : children_) {
        if (!c->exited) ::kill(c->pid, SIGKILL);
      }
    }
    for (auto& c : children_) c->reaper.join();
  }

  void spawn(const std::string& role, const std::vector<std::string>& env) {
    std::vector<std::string> args = {exe_path(), "--role", role};
    std::vector<char*> argv, envp;
    // posix_spawn takes char* const[] for historical reasons; it does not write through them.
    for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    for (auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
    argv.push_back(nullptr);
    envp.push_back(nullptr);
    auto child = std::make_unique<Child>();
    child->role = role;
    std::fflush(stdout);
    if (int rc =
            ::posix_spawn(&child->pid, args[0].c_str(), nullptr, nullptr, argv.data(), envp.data());
        rc != 0) {
      fail("posix_spawn " + args[0] + ": " + std::strerror(rc));
    }
    Child* c = child.get();
    std::lock_guard lock(mutex_);
    children_.push_back(std::move(child));
    c->reaper = std::thread([this, c] { reap(*c); });
  }

  // Called for each ChildExit; returns the child's role.
  std::string exited(pid_t pid, int status) {
    std::lock_guard lock(mutex_);
    for (auto& c : children_) {
      if (c->pid != pid) continue;
      c->status = status;
      c->reported = true;
      return c->role;
    }
    return "?";
  }
  bool all_reported() {
    std::lock_guard lock(mutex_);
    return std::all_of(children_.begin(), children_.end(), [](auto& c) { return c->reported; });
  }

 private:
  struct Child {
    std::string role;
    pid_t pid = 0;
    std::thread reaper;
    bool exited = false;    // guarded by mutex_: set by the reaper before the pid is released
    bool reported = false;  // guarded by mutex_: the main thread has seen the ChildExit
    int status = 0;
  };

  static std::string exe_path() {
    std::string path(4096, '\0');
    ssize_t n = ::readlink("/proc/self/exe", path.data(), path.size());
    if (n <= 0 || static_cast<std::size_t>(n) >= path.size()) return "/proc/self/exe";
    path.resize(static_cast<std::size_t>(n));
    return path;
  }

  void reap(Child& c) {
    siginfo_t info{};
    // WNOWAIT: wait for the exit but leave the zombie, so the pid stays ours until we reap below.
    while (::waitid(P_PID, static_cast<id_t>(c.pid), &info, WEXITED | WNOWAIT) != 0 &&
           errno == EINTR) {
    }
    int status = 0;
    {
      std::lock_guard lock(mutex_);
      c.exited = true;
      while (::waitpid(c.pid, &status, 0) < 0 && errno == EINTR) {
      }
    }
    box_.push(ChildExit{c.pid, status});
  }

  Mailbox& box_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<Child>> children_;
};

std::string describe_exit(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return "was killed by signal " + std::to_string(WTERMSIG(status)) + " (" +
           ::strsignal(WTERMSIG(status)) + ")";
  }
  return "ended with wait status " + std::to_string(status);
}

// The environment of a child: ours, plus where the hub is and the token that admits it.
std::vector<std::string> child_env(const sb::Hub& hub) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string_view kv(*e);
    if (kv.starts_with(std::string(kEndpointVar) + "=") ||
        kv.starts_with(std::string(kTokenVar) + "="))
      continue;
    env.emplace_back(kv);
  }
  env.push_back(std::string(kEndpointVar) + "=" + hub.endpoint());
  env.push_back(std::string(kTokenVar) + "=" + hub.token());
  return env;
}

// Log lines and the three progress bars. On a terminal the bars stay at the bottom and are
// redrawn in place (ANSI cursor-up); otherwise each job prints a line per quarter it completes.
class Screen {
 public:
  Screen() : tty_(::isatty(STDOUT_FILENO) == 1) {}

  void log(const std::string& line) {
    if (tty_ && bars_shown_) std::printf("\x1b[%zuA", kJobs.size());
    std::printf("%s%s\n", tty_ ? "\r\x1b[2K" : "", line.c_str());
    if (tty_ && bars_shown_) draw_bars();
    std::fflush(stdout);
  }

  void show_bars() {
    if (!tty_ || bars_shown_) return;
    bars_shown_ = true;
    draw_bars();
    std::fflush(stdout);
  }

  // The bars are final: later log lines go below them.
  void freeze_bars() { bars_shown_ = false; }

  void progress(std::size_t job, int percent) {
    percent_[job] = std::clamp(percent, 0, 100);
    if (tty_) {
      if (!bars_shown_) return;
      std::printf("\x1b[%zuA", kJobs.size());
      draw_bars();
    } else {
      for (int q = quarters_[job] + 1; q <= percent_[job] / 25; ++q) {
        std::printf("  %.*s %3d%%\n", static_cast<int>(kJobs[job].size()), kJobs[job].data(),
                    q * 25);
      }
      quarters_[job] = std::max(quarters_[job], percent_[job] / 25);
    }
    std::fflush(stdout);
  }

 private:
  static constexpr int kWidth = 40;

  void draw_bars() {
    for (std::size_t j = 0; j < kJobs.size(); ++j) {
      int filled = percent_[j] * kWidth / 100;
      std::string bar = std::string(static_cast<std::size_t>(filled), '#') +
                        std::string(static_cast<std::size_t>(kWidth - filled), '.');
      std::printf("\r\x1b[2K  %.*s [%s] %3d%%\n", static_cast<int>(kJobs[j].size()),
                  kJobs[j].data(), bar.c_str(), percent_[j]);
    }
  }

  bool tty_;
  bool bars_shown_ = false;
  std::array<int, kJobs.size()> percent_{};
  std::array<int, kJobs.size()> quarters_{};
};

std::string pad(std::string s, std::size_t width) {
  if (s.size() < width) s.resize(width, ' ');
  return s;
}

int run_hub() {
  const auto started = Clock::now();
  const auto deadline = started + kTimeout;
  Screen screen;
  Mailbox box;  // outlives everything below that pushes into it
  TempDir dir;

  sb::HubOptions options;
  options.endpoint = dir.path() + "/hub.sock";
  options.name = "demo";  // token: empty, so a fresh random one
  options.on_peer = [&box](const sb::PeerEvent& ev) { box.push(ev); };
  sb::Hub hub(std::move(options));
  if (sb::Status s = hub.start(); !s.ok()) fail("cannot start the hub: " + s.to_string());
  screen.log("switchboard demo: hub pid " + std::to_string(::getpid()) + " on " + hub.endpoint());

  sb::LocalPeerInfo me;
  me.role = "main";
  std::unique_ptr<sb::Port> port = hub.connect_local(me, callbacks_into(box));
  if (!port) fail("connect_local: the hub is not running");
  request(*port, box, sb::Kind::subscribe, "job:*", 1, deadline);
  request(*port, box, sb::Kind::subscribe, "server:*", 2, deadline);

  Children children(box);
  const std::vector<std::string> env = child_env(hub);
  children.spawn("server", env);

  std::vector<std::string> seen;  // roles of the peers that joined
  int left = 0;                   // children that have left the hub
  bool shutdown_sent = false;
  std::string worker_summary;
  Clock::time_point worker_started{}, jobs_done{};

  // Until both children have exited and the hub has seen both leave: then its stats are final.
  while (!(shutdown_sent && children.all_reported() && left == 2)) {
    std::vector<Item> items = box.take_all(deadline);
    if (items.empty()) {
      fail("timed out after " + std::to_string(kTimeout.count()) + " s " +
           (worker_started == Clock::time_point{} ? "waiting for the server to be ready"
            : !shutdown_sent                      ? "waiting for the jobs to finish"
                                                  : "waiting for the children to exit"));
    }
    for (Item& item : items) {
      if (auto* ev = std::get_if<sb::PeerEvent>(&item)) {
        std::string who = pad(ev->role, 7);
        std::string peer = "peer " + std::to_string(ev->id);
        if (ev->type == sb::PeerEvent::Type::joined) {
          seen.push_back(ev->role);
          screen.log("  + " + who + " joined as " + peer + " (pid " + std::to_string(ev->pid) +
                     ")");
        } else {
          left += ev->role == "main" ? 0 : 1;
          const char* what = ev->type == sb::PeerEvent::Type::left ? " left (" : " rejected (";
          screen.log("  - " + who + what + peer + "): " + ev->reason.message());
        }
      } else if (auto* ex = std::get_if<ChildExit>(&item)) {
        std::string role = children.exited(ex->pid, ex->status);
        if (!WIFEXITED(ex->status) || WEXITSTATUS(ex->status) != 0) {
          fail("the " + role + " " + describe_exit(ex->status));
        }
        if (role == "server" && !shutdown_sent) fail("the server exited before demo:shutdown");
      } else if (auto* st = std::get_if<StateChange>(&item)) {
        if (st->state == sb::PortState::closed) fail("local port closed: " + st->why.to_string());
      } else if (auto* e = std::get_if<sb::Envelope>(&item); e && e->kind == sb::Kind::event) {
        if (e->topic == "server:ready" && worker_started == Clock::time_point{}) {
          worker_started = Clock::now();
          children.spawn("worker", env);
          screen.show_bars();
        } else if (e->topic == "job:progress") {
          std::string_view text = e->payload.view();
          std::size_t space = text.find(' ');
          auto job = std::find(kJobs.begin(), kJobs.end(), text.substr(0, space));
          auto percent = parse_uint(space == text.npos ? "" : text.substr(space + 1));
          if (job == kJobs.end() || !percent) fail("bad job:progress '" + std::string(text) + "'");
          screen.progress(static_cast<std::size_t>(job - kJobs.begin()),
                          static_cast<int>(*percent));
        } else if (e->topic == "job:done" && !shutdown_sent) {
          jobs_done = Clock::now();
          worker_summary = std::string(e->payload.view());
          screen.freeze_bars();
          submit(*port, {envelope(sb::Kind::event, "demo:shutdown")});
          shutdown_sent = true;
        }
      }
    }
  }

  sb::HubStats st = hub.stats();
  if (st.pending_invokes != 0 || st.events_dropped != 0 || st.peers != 1) {
    fail("unclean end: " + std::to_string(st.peers) + " peers, " +
         std::to_string(st.pending_invokes) + " pending invokes, " +
         std::to_string(st.events_dropped) + " events dropped");
  }
  auto ms = [](Clock::duration d) {
    return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) + " ms";
  };
  auto ratio = [](std::uint64_t frames, std::uint64_t calls) {
    char buf[32];
    double r = calls ? static_cast<double>(frames) / static_cast<double>(calls) : 0.0;
    std::snprintf(buf, sizeof buf, "%.1f", r);
    return std::string(buf);
  };
  std::string roles;
  for (const auto& r : seen) roles += (roles.empty() ? "" : ", ") + r;
  std::uint64_t worker_frames = 0, worker_writevs = 0;
  if (std::size_t sp = worker_summary.find(' '); sp != std::string::npos) {
    worker_frames = parse_uint(std::string_view(worker_summary).substr(0, sp)).value_or(0);
    worker_writevs = parse_uint(std::string_view(worker_summary).substr(sp + 1)).value_or(0);
  }
  auto row = [&](const char* name, const std::string& value, const std::string& note = {}) {
    screen.log("  " + pad(name, 21) + (note.empty() ? value : pad(value, 11) + note));
  };
  screen.log("");
  screen.log("both children exited with status 0; hub stats:");
  row("peers seen", std::to_string(seen.size()), roles);
  row("invokes routed", std::to_string(st.invokes_routed),
      "math:fib, all answered, in " + ms(jobs_done - worker_started));
  row("events routed", std::to_string(st.events_routed), "one delivery per subscriber");
  row("frames in / out", std::to_string(st.frames_in) + " / " + std::to_string(st.frames_out),
      "on the hub's sockets");
  row("writev calls", std::to_string(st.writev_calls),
      ratio(st.frames_out, st.writev_calls) + " frames per writev");
  row("worker writev calls", std::to_string(worker_writevs),
      ratio(worker_frames, worker_writevs) + " frames per writev (" +
          std::to_string(worker_frames) + " frames before job:done)");
  row("total time", ms(Clock::now() - started));

  port->close();
  hub.close();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string_view role;
  if (argc == 3 && std::string_view(argv[1]) == "--role") {
    role = argv[2];
  } else if (argc != 1) {
    std::fprintf(stderr, "usage: %s   (the hub starts --role server and --role worker itself)\n",
                 argv[0]);
    return 2;
  }
  try {
    if (role.empty()) return run_hub();
    if (role == "server") return run_server();
    if (role == "worker") return run_worker();
    std::fprintf(stderr, "switchboard_demo: unknown role '%.*s'\n", static_cast<int>(role.size()),
                 role.data());
    return 2;
  } catch (const Failure& f) {
    std::fprintf(stderr, "switchboard_demo [%s]: %s\n", role.empty() ? "hub" : role.data(),
                 f.what.c_str());
    return 1;
  }
}
