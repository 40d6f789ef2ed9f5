#include "hub.h"

#include <unistd.h>

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <algorithm>
#include <atomic>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "connection.h"
#include "handshake.h"
#include "io_thread.h"
#include "router.h"
#include "transport.h"

namespace switchboard {
namespace {

// A routed message: the envelope as the hub will send it, encoded for sockets at most once
// however many peers receive it.
struct Outgoing {
  Envelope env;
  std::optional<WireFrame> wire;

  const WireFrame& frame() {
    if (!wire) {
      wire.emplace();
      (void)encode_frame(env, *wire);  // fails only past 4 GiB, which max_frame rules out
    }
    return *wire;
  }
};

// What the hub forwards of a frame a peer sent: the same bytes, with the id and sender the hub
// assigns set in place, and the from-hub flag stripped (a peer cannot pose as the hub; a frame
// claiming it is encoded afresh without it).
Envelope forwarded(Envelope& env, std::uint64_t id, std::uint64_t sender) {
  if (env.flags & kFlagFromHub) env.frame = Slice();
  set_id(env, id);
  set_sender(env, sender);
  env.flags &= ~kFlagFromHub;
  return std::move(env);
}

Envelope hub_error(std::uint64_t id, const Status& why) {
  Envelope e;
  e.kind = Kind::error;
  e.id = id;
  e.topic = std::string(wire_name(why.code()));
  e.flags = kFlagFromHub;
  e.payload = encode_message(why.message());
  return e;
}

WireFrame goaway_frame(const Status& why) {
  Envelope e;
  e.kind = Kind::goaway;
  e.topic = std::string(wire_name(why.code()));
  e.payload = encode_message(why.message());
  WireFrame f;
  (void)encode_frame(e, f);
  return f;
}

}  // namespace

// The in-process peer's mailbox, shared by the Port handle (any thread) and the hub (I/O thread).
struct LocalLink {
  PortCallbacks callbacks;  // called on the I/O thread only
  PeerId id = 0;
  std::mutex mutex;  // guards inbox and drain_scheduled
  std::vector<Envelope> inbox;
  bool drain_scheduled = false;
  // Under the hub's state_mutex_:
  std::vector<Envelope> outbox;
  std::size_t outbox_bytes = 0;
  std::size_t outbox_taken = 0;  // bytes handed to the callbacks so far (progress)
  bool flush_scheduled = false;
  bool closed = false;
  // Flow control: notify_drain()'s mark, under state_mutex_.
  bool drain_armed = false;
  std::size_t drain_below = 0;
  // Any thread: what outbound_bytes() reports (the posted inbox and the parked frames).
  std::atomic<std::size_t> inbox_bytes{0};
  std::atomic<std::size_t> parked_bytes{0};
};

class Hub::Impl : public std::enable_shared_from_this<Hub::Impl> {
 public:
  explicit Impl(HubOptions options) : opt_(std::move(options)) {}

  Status start();
  void close();
  HubStats stats() const;
  std::vector<HubPeerStats> peer_stats();
  std::unique_ptr<Port> connect_local(LocalPeerInfo info, PortCallbacks callbacks);
  void accept_peers();

  // Runs `fn` on the I/O thread if the hub is running; false when it is not (fn is dropped).
  template <typename Fn>
  bool post_if_running(Fn&& fn) {
    std::lock_guard lock(run_mutex_);
    if (!running_) return false;
    asio::post(io_.context(), std::forward<Fn>(fn));
    return true;
  }
  void drain_local(const std::shared_ptr<LocalLink>& link);
  // Any thread but the I/O thread: routes `batch` on the calling thread and writes what it sends
  // to socket peers directly (Connection::push + flush_now), when nothing of this port waits for
  // the I/O thread. False (batch untouched) when something does: the caller posts instead.
  bool route_now(const std::shared_ptr<LocalLink>& link, std::vector<Envelope>& batch,
                 Status& status);
  bool in_io_thread() const { return io_.in_thread(); }
  void remove_local(PeerId id);
  // Flow control for the local port (I/O thread): see LocalPort.
  void local_drain_requested(const std::shared_ptr<LocalLink>& link, std::size_t below);
  void local_caught_up(PeerId id);

  const HubOptions& options() const { return opt_; }
  const std::string& endpoint() const { return endpoint_; }
  const std::string& token() const { return token_; }

 private:
  struct Peer {
    PeerId id = 0;
    bool admitted = false;
    bool closing = false;
    std::string role;
    std::string name;
    std::uint64_t pid = 0;
    std::shared_ptr<Connection> conn;      // socket peers
    std::shared_ptr<LocalLink> local;      // the in-process peer
    std::shared_ptr<const Grants> grants;  // null: everything is allowed (grants.h)
    std::string origin;                    // a page's (LocalPeerInfo)
    std::uint64_t window = 0;
    std::unique_ptr<asio::steady_timer> handshake_timer;
    std::unordered_map<std::uint64_t, std::uint64_t> calls_out;  // caller's id -> hub call id
    std::unordered_set<std::uint64_t> serving;                   // hub call ids sent to this peer
    std::uint64_t dropped = 0;
    bool heard = true;     // a frame arrived since the last liveness tick
    int missed_pings = 0;  // consecutive ticks with nothing heard
    // Flow control ("Flow control" below). As a publisher: the frames not routed yet because a
    // receiver is full, in arrival order, and the receivers it waits for.
    std::deque<Envelope> parked;
    std::size_t parked_bytes = 0;
    std::unordered_set<PeerId> blocked_on;
    // The connection ended while frames were parked: it leaves once they are routed.
    std::optional<Status> leave_after_parked;
    // As a receiver: the publishers waiting for it, whether its drain is watched, its progress
    // when last looked at and since when it has made none, and what it missed while stalled.
    std::unordered_set<PeerId> waiters;
    bool watching = false;
    bool stalled = false;
    std::uint64_t progress = 0;
    std::chrono::steady_clock::time_point since;
    DroppedNotice missed;
  };
  struct Call {
    PeerId caller = 0;
    std::uint64_t caller_id = 0;
    PeerId callee = 0;
    std::string name;
  };

  void accept_next();
  void on_accept(std::unique_ptr<Stream> stream);
  void on_frames(PeerId id, std::vector<Slice>& frames);
  void handshake(Peer& peer, const Slice& body);
  // false: not routed (a receiver is full); `env` is untouched and the caller parks it.
  bool handle(Peer& peer, Envelope& env);
  bool route_event(Peer& from, Envelope& env);
  bool route_invoke(Peer& caller, Envelope& env);
  void route_reply(Peer& callee, Envelope& env);
  void route_cancel(Peer& caller, const Envelope& env);
  void ack(Peer& peer, std::uint64_t id, const Status& status);
  // `event`: counted as a routed event.
  void send_to(Peer& peer, Outgoing& msg, bool event);
  // Flow control.
  std::size_t backlog(const Peer& receiver) const;
  std::uint64_t progress_of(const Peer& receiver) const;
  bool would_overflow(const Peer& receiver, std::size_t size) const;
  void park(Peer& publisher, Envelope env);
  void wait_for(Peer& publisher, Peer& receiver);
  void watch(Peer& receiver);
  void on_drained(PeerId receiver);
  // The publishers waiting for `receiver` go on (they wait again for whoever is still full).
  // `posted`: resumed from the I/O thread later, as when this runs on a local port's submitting
  // thread (route_now) while routing: for a receiver that takes less than before (it
  // unsubscribed or unregistered), since resuming reads from connections.
  void release_waiters(Peer& receiver, bool posted = false);
  void resume(Peer& publisher);
  void post_resume(PeerId publisher);
  void stall(Peer& receiver);
  void check_local_drain(Peer& local);
  void arm_flow_timer();
  void check_flow();
  void send_to(Peer& peer, Envelope env);
  // The local peer's outbox: taken under state_mutex_, delivered on the I/O thread.
  std::vector<Envelope> take_outbox(LocalLink& link);
  void deliver_local(LocalLink& link, std::vector<Envelope>& batch);
  void route_local(const std::shared_ptr<LocalLink>& link, std::vector<Envelope>& batch);
  // Marks a peer for removal once the current batch is done (routing may be iterating).
  void doom(Peer& peer, Status why, bool goaway);
  void finish_batch();
  void remove_peer(PeerId id, const Status& why, bool goaway);
  void shutdown();
  void update_gauges();
  // Every ping_interval: PINGs every socket peer and removes those silent for ping_misses ticks.
  void arm_liveness();
  void check_liveness();
  // Every endpoint_check_interval: re-creates the socket file if it was deleted.
  void arm_endpoint_check();
  // Tells `to` about `about` (up or down) with a PEER frame.
  void announce(Peer& to, const Peer& about, bool up);
  // Tells every admitted peer but `about` itself, and tells `about` who is already there.
  void announce_join(Peer& about);
  void report(PeerEvent::Type type, const Peer& peer, const Status& why);
  Peer* find(PeerId id) {
    auto it = peers_.find(id);
    return it == peers_.end() ? nullptr : it->second.get();
  }

  HubOptions opt_;
  std::string endpoint_;
  std::string token_;
  IoThread io_;
  std::mutex run_mutex_;
  bool running_ = false;
  bool started_ = false;

  // I/O thread only.
  std::unique_ptr<Listener> listener_;
  bool accepting_ = false;
  std::unique_ptr<asio::steady_timer> accept_retry_;
  std::unique_ptr<asio::steady_timer> liveness_timer_;
  std::unique_ptr<asio::steady_timer> endpoint_timer_;
  std::unique_ptr<asio::steady_timer> flow_timer_;
  bool flow_armed_ = false;

  // The routing state, up to the blank line. The I/O thread holds state_mutex_ in every handler
  // that touches it; LocalPort::submit() takes it to route the local peer's batch on its own
  // thread (route_now). Lock order: state_mutex_, then a LocalLink's mutex or a Connection's
  // write mutex. Callbacks into the local peer and on_peer run on the I/O thread, some with it
  // held: they must not block on the hub (a submit() from there takes the posted path).
  mutable std::mutex state_mutex_;
  // True while route_now() routes on another thread: removals are left to the I/O thread, which
  // owns the connections' and timers' life.
  bool routing_now_ = false;
  // True while route_now() or on_frames() routes: sends to socket peers are queued
  // (Connection::push) and each connection is written once when the batch is done.
  bool collecting_writes_ = false;
  std::vector<std::shared_ptr<Connection>> written_now_;  // connections pushed to meanwhile
  std::uint64_t next_ping_ = 1;
  // Set by shutdown(): a timer whose handler was already queued when it was cancelled must not
  // re-arm, or the I/O thread would never run out of work and close() would never return.
  bool shut_down_ = false;
  Router router_;
  std::unordered_map<PeerId, std::unique_ptr<Peer>> peers_;
  std::unordered_map<std::uint64_t, Call> calls_;
  PeerId next_peer_ = 1;
  std::uint64_t next_call_ = 1;
  std::vector<std::tuple<PeerId, Status, bool>> doomed_;
  std::vector<PeerId> scratch_;

  // Any thread.
  ConnectionCounters wire_;
  std::atomic<std::uint64_t> peers_gauge_{0}, handshaking_gauge_{0}, subs_gauge_{0},
      handlers_gauge_{0}, pending_gauge_{0}, events_routed_{0}, events_dropped_{0},
      invokes_routed_{0}, rejected_{0}, declared_dead_{0}, endpoint_restored_{0}, pauses_{0},
      stalls_{0}, peak_queued_{0};
};

// --- Local port ------------------------------------------------------------------------------

class LocalPort final : public Port {
 public:
  LocalPort(std::shared_ptr<Hub::Impl> hub, std::shared_ptr<LocalLink> link)
      : hub_(std::move(hub)), link_(std::move(link)) {}
  ~LocalPort() override { close(); }

  Status submit(std::vector<Envelope> batch) override {
    if (closed_.load()) return Status(Errc::closed, "this bus is closed");
    // Routed on this thread unless this is the hub's own thread (a callback answering at once):
    // that one holds the routing state and posts instead.
    if (!hub_->in_io_thread()) {
      Status status;
      if (hub_->route_now(link_, batch, status)) return status;
    }
    bool schedule = false;
    std::size_t bytes = 0;
    for (const Envelope& e : batch) bytes += frame_size_bound(e);
    link_->inbox_bytes.fetch_add(bytes, std::memory_order_relaxed);
    {
      std::lock_guard lock(link_->mutex);
      if (link_->inbox.empty()) {
        link_->inbox = std::move(batch);
      } else {
        for (auto& e : batch) link_->inbox.push_back(std::move(e));
      }
      schedule = !link_->drain_scheduled;
      link_->drain_scheduled = true;
    }
    if (schedule) {
      bool posted = hub_->post_if_running([hub = hub_, link = link_] { hub->drain_local(link); });
      if (!posted) return Status(Errc::closed, "the hub is closed");
    }
    return {};
  }

  void close() override {
    if (closed_.exchange(true)) return;
    std::promise<void> done;
    auto id = link_->id;
    if (hub_->post_if_running([&done, hub = hub_, id] {
          hub->remove_local(id);
          done.set_value();
        })) {
      done.get_future().wait();
    }
  }

  std::uint64_t peer_id() const override { return link_->id; }
  // What this port's JavaScript has handed over and the hub has not routed: frames waiting for
  // the I/O thread, and frames parked because a receiver is full.
  std::size_t outbound_bytes() const override {
    return link_->inbox_bytes.load(std::memory_order_relaxed) +
           link_->parked_bytes.load(std::memory_order_relaxed);
  }
  void notify_drain(std::size_t below) override {
    hub_->post_if_running(
        [hub = hub_, link = link_, below] { hub->local_drain_requested(link, below); });
  }
  // The consumer took its backlog: a publisher waiting for this peer may go on.
  void resume_reading() override {
    hub_->post_if_running([hub = hub_, id = link_->id] { hub->local_caught_up(id); });
  }
  PortStats stats() const override {
    PortStats s;
    s.connects = 1;
    s.attempts = 1;
    s.state = closed_.load() ? PortState::closed : PortState::connected;
    return s;
  }

 private:
  std::shared_ptr<Hub::Impl> hub_;
  std::shared_ptr<LocalLink> link_;
  std::atomic<bool> closed_{false};
};

// --- Lifecycle -------------------------------------------------------------------------------

Status Hub::Impl::start() {
  if (started_) return Status(Errc::invalid_argument, "hub already started");
  if (opt_.max_frame == 0 || opt_.max_frame > kMaxFrameLimit) {
    return Status(Errc::invalid_argument, "max_frame must be between 1 and 4294967295 bytes");
  }
  if (opt_.handshake_max_frame == 0) {
    return Status(Errc::invalid_argument, "handshake_max_frame must be positive");
  }
  // Nothing may be larger before the handshake than after it.
  opt_.handshake_max_frame = std::min(opt_.handshake_max_frame, opt_.max_frame);
  if (opt_.high_water_mark == 0) {
    return Status(Errc::invalid_argument, "high_water_mark must be positive");
  }
  if (opt_.low_water_mark == 0) opt_.low_water_mark = opt_.high_water_mark / 2;
  if (opt_.low_water_mark > opt_.high_water_mark) {
    return Status(Errc::invalid_argument, "low_water_mark must not exceed high_water_mark");
  }
  if (opt_.stall_timeout.count() <= 0) {
    return Status(Errc::invalid_argument, "stall_timeout must be positive");
  }
  if (opt_.ping_interval.count() < 0 || opt_.ping_misses < 1) {
    return Status(Errc::invalid_argument,
                  "ping_interval must be >= 0 (0 disables pings) and ping_misses >= 1");
  }
  if (opt_.endpoint_check_interval.count() < 0) {
    return Status(Errc::invalid_argument,
                  "endpoint_check_interval must be >= 0 (0 disables the check)");
  }
  for (auto [value, name] : {std::pair{opt_.max_topic, "max_topic"},
                             {opt_.max_subscriptions_per_peer, "max_subscriptions_per_peer"},
                             {opt_.max_handlers_per_peer, "max_handlers_per_peer"},
                             {opt_.max_pending_invokes_per_peer, "max_pending_invokes_per_peer"},
                             {opt_.max_connections, "max_connections"},
                             {opt_.max_handshaking, "max_handshaking"}}) {
    if (value == 0) return Status(Errc::invalid_argument, std::string(name) + " must be positive");
  }
  opt_.max_handshaking = std::min(opt_.max_handshaking, opt_.max_connections);
  endpoint_ = opt_.endpoint.empty() ? default_endpoint(opt_.name) : opt_.endpoint;
  token_ = opt_.token.empty() ? random_token() : opt_.token;
  Status status;
  listener_ = listen_endpoint(io_.context(), endpoint_, status);
  if (!status.ok()) return status;
  started_ = true;
  {
    std::lock_guard lock(run_mutex_);
    running_ = true;
  }
  asio::post(io_.context(), [this] {
    if (opt_.accept_at_start) {
      accepting_ = true;
      accept_next();
    }
    arm_liveness();
    arm_endpoint_check();
  });
  io_.start();
  return {};
}

void Hub::Impl::accept_peers() {
  // Posted: a local port's batch is routed on its own thread before this call returns, or was
  // posted to the I/O thread ahead of this (LocalPort::submit), so it is in force first.
  post_if_running([this] {
    if (accepting_ || shut_down_) return;
    accepting_ = true;
    accept_next();
  });
}

void Hub::Impl::close() {
  {
    std::lock_guard lock(run_mutex_);
    if (!running_) return;
    running_ = false;
    // Posted under the lock so it runs after every task admitted by post_if_running.
    asio::post(io_.context(), [this] { shutdown(); });
  }
  io_.stop();
}

void Hub::Impl::shutdown() {
  std::lock_guard state(state_mutex_);
  shut_down_ = true;
  if (listener_) listener_->close();
  if (accept_retry_) accept_retry_->cancel();
  if (liveness_timer_) liveness_timer_->cancel();
  if (endpoint_timer_) endpoint_timer_->cancel();
  if (flow_timer_) flow_timer_->cancel();
  std::vector<PeerId> ids;
  ids.reserve(peers_.size());
  for (auto& [id, peer] : peers_) ids.push_back(id);
  for (PeerId id : ids) {
    remove_peer(id, Status(Errc::shutting_down, "the hub is shutting down"), true);
  }
  update_gauges();
}

HubStats Hub::Impl::stats() const {
  HubStats s;
  s.peers = peers_gauge_.load();
  s.handshaking = handshaking_gauge_.load();
  s.subscriptions = subs_gauge_.load();
  s.handlers = handlers_gauge_.load();
  s.pending_invokes = pending_gauge_.load();
  s.events_routed = events_routed_.load();
  s.events_dropped = events_dropped_.load();
  s.invokes_routed = invokes_routed_.load();
  s.frames_in = wire_.frames_in.load();
  s.frames_out = wire_.frames_out.load();
  s.writev_calls = wire_.writev_calls.load();
  s.direct_writes = wire_.direct_writes.load();
  s.rejected = rejected_.load();
  s.declared_dead = declared_dead_.load();
  s.endpoint_restored = endpoint_restored_.load();
  s.pauses = pauses_.load();
  s.stalls = stalls_.load();
  s.peak_queued_bytes = peak_queued_.load();
  std::lock_guard state(state_mutex_);
  for (const auto& [id, p] : peers_) {
    s.paused += p->parked.empty() ? 0 : 1;
    s.parked_bytes += p->parked_bytes;
    s.stalled += p->stalled ? 1 : 0;
    s.queued_bytes += backlog(*p);
  }
  return s;
}

std::vector<HubPeerStats> Hub::Impl::peer_stats() {
  std::vector<HubPeerStats> out;
  std::promise<void> done;
  if (!post_if_running([this, &out, &done] {
        std::lock_guard state(state_mutex_);
        for (auto& [id, p] : peers_) {
          HubPeerStats s;
          s.id = id;
          s.admitted = p->admitted;
          s.local = p->local != nullptr;
          s.role = p->role;
          s.name = p->name;
          if (p->conn) {
            s.queued_bytes = p->conn->queued_bytes();
            s.receive_reserved = p->conn->receive_reserved();
            s.receive_buffered = p->conn->receive_buffered();
          }
          s.events_dropped = p->dropped;
          s.parked_bytes = p->parked_bytes;
          s.paused = !p->parked.empty();
          s.stalled = p->stalled;
          if (p->local) s.queued_bytes = backlog(*p);
          s.subscriptions = router_.subscriptions_of(id);
          s.handlers = router_.handlers_of(id);
          s.pending_invokes = p->calls_out.size();
          out.push_back(std::move(s));
        }
        done.set_value();
      })) {
    return out;
  }
  done.get_future().wait();
  return out;
}

void Hub::Impl::announce(Peer& to, const Peer& about, bool up) {
  Envelope e;
  e.kind = Kind::peer;
  e.id = about.id;
  e.topic = about.role;
  e.payload = encode_peer_info(
      PeerInfo{about.id, about.role, about.name, about.pid, up, about.origin, about.window});
  send_to(to, std::move(e));
}

void Hub::Impl::announce_join(Peer& about) {
  for (auto& [id, other] : peers_) {
    if (id == about.id || !other->admitted || other->closing) continue;
    announce(*other, about, true);
    announce(about, *other, true);
  }
}

void Hub::Impl::report(PeerEvent::Type type, const Peer& peer, const Status& why) {
  if (!opt_.on_peer) return;
  PeerEvent ev;
  ev.type = type;
  ev.id = peer.id;
  ev.role = peer.role;
  ev.name = peer.name;
  ev.pid = peer.pid;
  ev.reason = why;
  opt_.on_peer(ev);
}

void Hub::Impl::update_gauges() {
  std::uint64_t admitted = 0;
  for (auto& [id, p] : peers_) admitted += p->admitted ? 1 : 0;
  peers_gauge_.store(admitted);
  handshaking_gauge_.store(peers_.size() - admitted);
  subs_gauge_.store(router_.subscription_count());
  handlers_gauge_.store(router_.handler_count());
  pending_gauge_.store(calls_.size());
}

// --- Accepting and the handshake ---------------------------------------------------------------

void Hub::Impl::accept_next() {
  listener_->accept([this](Status status, std::unique_ptr<Stream> stream) {
    if (status.code() == Errc::closed) return;  // listener closed: shutting down
    if (!status.ok()) {
      // EMFILE and friends: back off briefly instead of spinning on a failing accept.
      accept_retry_ =
          std::make_unique<asio::steady_timer>(io_.context(), std::chrono::milliseconds(50));
      accept_retry_->async_wait([this](std::error_code ec) {
        if (!ec && !shut_down_) accept_next();
      });
      return;
    }
    on_accept(std::move(stream));
    accept_next();
  });
}

void Hub::Impl::on_accept(std::unique_ptr<Stream> stream) {
  std::lock_guard state(state_mutex_);
  PeerCredentials cred = stream->credentials();
  auto peer = std::make_unique<Peer>();
  peer->id = next_peer_++;
  peer->pid = cred.pid;
  PeerId id = peer->id;
  peer->conn = std::make_shared<Connection>(io_.context(), std::move(stream),
                                            opt_.handshake_max_frame, &wire_);
  peer->conn->start([this, id](std::vector<Slice>& frames) { on_frames(id, frames); },
                    [this, id](const Status& why) {
                      std::lock_guard held(state_mutex_);
                      // A bad frame leaves the stream writable so the peer learns why.
                      bool tell =
                          why.code() == Errc::frame_too_large || why.code() == Errc::protocol_error;
                      Peer* gone = find(id);
                      if (gone && !tell && !gone->parked.empty() && !gone->closing) {
                        // What it sent before it went is still routed, in order, as it would
                        // have been had the hub not paused it.
                        gone->leave_after_parked = why;
                        return;
                      }
                      remove_peer(id, why, tell);
                      finish_batch();
                    });
  Peer& p = *peer;
  peers_.emplace(id, std::move(peer));
  // Counted before this one was added. Beyond a limit the newcomer is refused, never an
  // established peer: whoever floods the listener cannot push out connections already in use.
  std::size_t connections = 0, handshaking = 0;
  for (auto& [other_id, other] : peers_) {
    if (!other->conn || other->closing || other_id == id) continue;
    ++connections;
    handshaking += other->admitted ? 0 : 1;
  }
  if (connections >= opt_.max_connections || handshaking >= opt_.max_handshaking) {
    bool total = connections >= opt_.max_connections;
    doom(p,
         Status(Errc::limit_exceeded,
                total ? "the hub has " + std::to_string(connections) +
                            " connections, its limit (maxConnections); close idle buses or "
                            "raise maxConnections on the hub"
                      : "the hub has " + std::to_string(handshaking) +
                            " connections that have not completed the handshake, its limit "
                            "(maxHandshaking); retry shortly, or raise maxHandshaking on the hub"),
         true);
    finish_batch();
    return;
  }
  if (cred.known && cred.uid != this_user_id()) {
    doom(p,
         Status(Errc::auth_failed, "peer runs as uid " + std::to_string(cred.uid) +
                                       "; only this user's processes may join"),
         true);
    finish_batch();
    return;
  }
  p.handshake_timer = std::make_unique<asio::steady_timer>(io_.context(), opt_.handshake_timeout);
  p.handshake_timer->async_wait([this, id](std::error_code ec) {
    if (ec) return;
    std::lock_guard held(state_mutex_);
    Peer* late = find(id);
    if (!late || late->admitted) return;
    doom(*late,
         Status(Errc::handshake_timeout, "no HELLO within " +
                                             std::to_string(opt_.handshake_timeout.count()) +
                                             " ms of connecting"),
         true);
    finish_batch();
  });
  update_gauges();
}

void Hub::Impl::on_frames(PeerId id, std::vector<Slice>& frames) {
  std::vector<std::shared_ptr<Connection>> written;
  {
    std::lock_guard state(state_mutex_);
    // What this batch routes to socket peers is written at its end, one writev per connection,
    // instead of by a flush posted for later: that posted flush cost the I/O thread another
    // turn (an epoll_wait) per hop.
    collecting_writes_ = true;
    const DecodeLimits limits{opt_.max_topic};
    // Any frame proves the peer alive, not only a PONG: a busy peer is not a dead one.
    if (Peer* peer = find(id)) peer->heard = true;
    for (const Slice& frame : frames) {
      Peer* peer = find(id);
      if (!peer || peer->closing) break;
      if (!peer->admitted) {
        handshake(*peer, frame_body(frame));
        continue;
      }
      Envelope env;
      if (Status s = decode_frame(frame, env, limits); !s.ok()) {
        doom(*peer, s, true);
        break;
      }
      if (!peer->parked.empty() || !handle(*peer, env)) park(*peer, std::move(env));
    }
    finish_batch();
    collecting_writes_ = false;
    written.swap(written_now_);
  }
  for (const auto& conn : written) conn->flush_now();
}

void Hub::Impl::handshake(Peer& peer, const Slice& body) {
  Envelope env;
  if (Status s = decode_envelope(body, env, DecodeLimits{opt_.max_topic}); !s.ok()) {
    doom(peer, s, true);
    return;
  }
  if (env.kind != Kind::hello) {
    doom(peer,
         Status(Errc::auth_failed, std::string("expected HELLO before anything else, got ") +
                                       std::string(kind_name(env.kind))),
         true);
    return;
  }
  Hello hello;
  if (Status s = decode_hello(env.payload, hello); !s.ok()) {
    doom(peer, s, true);
    return;
  }
  if (hello.protocol != kProtocolVersion) {
    doom(
        peer,
        Status(Errc::version_mismatch, "peer speaks protocol " + std::to_string(hello.protocol) +
                                           ", this hub speaks " + std::to_string(kProtocolVersion) +
                                           "; install matching versions of switchboard-ipc"),
        true);
    return;
  }
  if (!constant_time_equal(hello.token, token_)) {
    doom(peer, Status(Errc::auth_failed, "wrong token; pass the hub's token (bus.childEnv())"),
         true);
    return;
  }
  peer.admitted = true;
  peer.handshake_timer.reset();  // cancels the pending wait
  peer.role = hello.role;
  peer.name = hello.name;
  if (peer.pid == 0) peer.pid = hello.pid;  // the kernel's word wins where there is one
  peer.conn->set_max_frame(opt_.max_frame);
  Welcome w;
  w.protocol = kProtocolVersion;
  w.peer_id = peer.id;
  w.hub_pid = static_cast<std::uint64_t>(::getpid());
  w.hub_name = opt_.name;
  w.max_frame = opt_.max_frame;
  Envelope reply;
  reply.kind = Kind::welcome;
  reply.payload = encode_welcome(w);
  send_to(peer, std::move(reply));
  announce_join(peer);
  update_gauges();
  report(PeerEvent::Type::joined, peer, {});
}

// --- Routing -------------------------------------------------------------------------------

// What `peer`'s grants refuse of `env`, before anything is routed; ok when they allow it or the
// peer has none. Replies, cancels, unsubscribing and the rest are never refused.
static Status check_grants(const Grants* grants, const Envelope& env) {
  if (grants == nullptr) return {};
  const std::vector<std::string>* list = nullptr;
  const char* what = "";
  const char* option = "";
  switch (env.kind) {
    case Kind::event:
      list = &grants->emit, what = "emit", option = "emit";
      break;
    case Kind::subscribe:
      list = &grants->subscribe, what = "subscribe to", option = "subscribe";
      break;
    case Kind::invoke:
      list = &grants->invoke, what = "invoke", option = "invoke";
      break;
    case Kind::register_:
      list = &grants->handle, what = "handle", option = "handle";
      break;
    default:
      return {};
  }
  if (granted(*list, env.topic)) return {};
  return Status(Errc::forbidden, std::string("this peer may not ") + what + " '" + env.topic +
                                     "': grant it in main with allow: { " + option + ": ['" +
                                     env.topic +
                                     "'] } (a pattern such as 'job:*' grants a family)");
}

bool Hub::Impl::handle(Peer& peer, Envelope& env) {
  if (Status refused = check_grants(peer.grants.get(), env); !refused.ok()) {
    // An event has no id to answer: the refusal goes back with id 0 (the peer's bus reports it).
    ack(peer, env.kind == Kind::event ? 0 : env.id, refused);
    return true;
  }
  switch (env.kind) {
    case Kind::event:
      return route_event(peer, env);
    case Kind::subscribe: {
      Status s = Router::check_subscription(env.topic);
      if (s.ok() && router_.subscriptions_of(peer.id) >= opt_.max_subscriptions_per_peer &&
          !router_.is_subscribed(peer.id, env.topic)) {
        s = Status(Errc::limit_exceeded,
                   "this peer already has " + std::to_string(opt_.max_subscriptions_per_peer) +
                       " subscriptions, the hub's limit (maxSubscriptionsPerPeer); unsubscribe "
                       "from topics no longer needed, use a pattern such as 'job:*', or raise "
                       "maxSubscriptionsPerPeer on the hub");
      }
      if (s.ok()) router_.subscribe(peer.id, env.topic);
      ack(peer, env.id, s);
      break;
    }
    case Kind::unsubscribe:
      router_.unsubscribe(peer.id, env.topic);
      release_waiters(peer, true);
      ack(peer, env.id, {});
      break;
    case Kind::register_:
      if (router_.handlers_of(peer.id) >= opt_.max_handlers_per_peer &&
          router_.handler_of(env.topic) != peer.id) {
        ack(peer, env.id,
            Status(Errc::limit_exceeded,
                   "this peer already serves " + std::to_string(opt_.max_handlers_per_peer) +
                       " handlers, the hub's limit (maxHandlersPerPeer); unregister names no "
                       "longer served, or raise maxHandlersPerPeer on the hub"));
        break;
      }
      ack(peer, env.id, router_.register_handler(peer.id, env.topic));
      break;
    case Kind::unregister:
      router_.unregister_handler(peer.id, env.topic);
      release_waiters(peer, true);
      ack(peer, env.id, {});
      break;
    case Kind::invoke:
      return route_invoke(peer, env);
    case Kind::result:
    case Kind::error:
      route_reply(peer, env);
      break;
    case Kind::cancel:
      route_cancel(peer, env);
      break;
    case Kind::ping: {
      Envelope pong;
      pong.kind = Kind::pong;
      pong.id = env.id;
      send_to(peer, std::move(pong));
      break;
    }
    case Kind::pong:
      break;
    case Kind::peer:
    case Kind::dropped:
      ack(peer, env.id,
          Status(Errc::protocol_error,
                 std::string(kind_name(env.kind)) + " frames come from the hub only"));
      break;
    case Kind::goaway:
      doom(peer, Status(Errc::closed, "peer said goodbye"), false);
      break;
    case Kind::hello:
    case Kind::welcome:
      doom(peer, Status(Errc::protocol_error, "handshake frame after the handshake"), true);
      break;
    default:
      ack(peer, env.id,
          Status(Errc::protocol_error,
                 std::string(kind_name(env.kind)) + " is reserved for a later protocol version"));
      break;
  }
  return true;
}

bool Hub::Impl::route_event(Peer& from, Envelope& env) {
  router_.subscribers(env.topic, scratch_);
  // All or nothing: an event waits until every live subscriber has room, so that when it goes
  // it goes to all of them once, in the same order as every other event of its publisher.
  const std::size_t size = frame_size_bound(env);
  bool blocked = false;
  for (PeerId id : scratch_) {
    if (id == from.id) continue;  // the sender's own listeners are served by its bus locally
    Peer* to = find(id);
    if (to && to->admitted && !to->closing && would_overflow(*to, size)) {
      wait_for(from, *to);
      blocked = true;
    }
  }
  if (blocked) return false;
  Outgoing msg;
  msg.env = forwarded(env, 0, from.id);  // an event's id is not forwarded
  for (PeerId id : scratch_) {
    if (id == from.id) continue;
    Peer* to = find(id);
    if (!to || !to->admitted || to->closing) continue;
    if (to->stalled) {
      // Policy drop: counted, and told to the peer once it reads again.
      ++to->dropped;
      events_dropped_.fetch_add(1, std::memory_order_relaxed);
      ++to->missed.count;
      if (to->missed.topics.size() < kDroppedTopicsMax ||
          to->missed.topics.contains(msg.env.topic)) {
        ++to->missed.topics[msg.env.topic];
      }
      continue;
    }
    send_to(*to, msg, true);
  }
  return true;
}

bool Hub::Impl::route_invoke(Peer& caller, Envelope& env) {
  auto handler = router_.handler_of(env.topic);
  Peer* callee = handler ? find(*handler) : nullptr;
  if (!callee || callee->closing) {
    ack(caller, env.id,
        Status(Errc::no_handler, "no handler is registered for '" + env.topic + "'"));
    return true;
  }
  if (env.id == 0 || caller.calls_out.contains(env.id)) {
    ack(caller, env.id,
        Status(Errc::protocol_error, "INVOKE needs a request id that is not already in flight"));
    return true;
  }
  if (caller.calls_out.size() >= opt_.max_pending_invokes_per_peer) {
    ack(caller, env.id,
        Status(Errc::limit_exceeded,
               "this peer already waits on " + std::to_string(opt_.max_pending_invokes_per_peer) +
                   " invokes, the hub's limit (maxPendingInvokesPerPeer); await earlier calls "
                   "before starting more, or raise maxPendingInvokesPerPeer on the hub"));
    return true;
  }
  // A stalled callee takes no new call: queued without a mark its queue would grow without
  // bound, and its caller is told at once rather than left waiting for a peer that reads nothing.
  if (callee->stalled && callee->id != caller.id) {
    ack(caller, env.id,
        Status(Errc::slow_consumer,
               "'" + env.topic +
                   "' is served by a peer that has taken nothing of what is queued "
                   "for it for over " +
                   std::to_string(opt_.stall_timeout.count()) +
                   " ms (stalled); the call was not sent: retry once it reads again"));
    return true;
  }
  // A callee over its mark makes the caller wait, as a subscriber does a publisher.
  if (callee->id != caller.id && would_overflow(*callee, frame_size_bound(env))) {
    wait_for(caller, *callee);
    return false;
  }
  std::uint64_t call = next_call_++;
  calls_.emplace(call, Call{caller.id, env.id, callee->id, env.topic});
  caller.calls_out.emplace(env.id, call);
  callee->serving.insert(call);
  invokes_routed_.fetch_add(1, std::memory_order_relaxed);
  Outgoing msg;
  msg.env = forwarded(env, call, caller.id);
  send_to(*callee, msg, false);
  return true;
}

void Hub::Impl::route_reply(Peer& callee, Envelope& env) {
  auto it = calls_.find(env.id);
  // A reply to a call that was cancelled, or that this peer was never asked: nobody waits.
  if (it == calls_.end() || it->second.callee != callee.id) return;
  Call call = std::move(it->second);
  calls_.erase(it);
  callee.serving.erase(env.id);
  Peer* caller = find(call.caller);
  if (!caller) return;
  caller->calls_out.erase(call.caller_id);
  Outgoing msg;
  msg.env = forwarded(env, call.caller_id, callee.id);
  send_to(*caller, msg, false);
}

void Hub::Impl::route_cancel(Peer& caller, const Envelope& env) {
  auto out = caller.calls_out.find(env.id);
  if (out == caller.calls_out.end()) return;
  std::uint64_t call_id = out->second;
  caller.calls_out.erase(out);
  auto it = calls_.find(call_id);
  if (it == calls_.end()) return;
  PeerId callee_id = it->second.callee;
  calls_.erase(it);
  if (Peer* callee = find(callee_id)) {
    callee->serving.erase(call_id);
    Envelope cancel;
    cancel.kind = Kind::cancel;
    cancel.id = call_id;
    cancel.sender = caller.id;
    send_to(*callee, std::move(cancel));
  }
}

void Hub::Impl::ack(Peer& peer, std::uint64_t id, const Status& status) {
  if (status.ok()) {
    if (id == 0) return;
    Envelope ok;
    ok.kind = Kind::result;
    ok.id = id;
    send_to(peer, std::move(ok));
    return;
  }
  send_to(peer, hub_error(id, status));
}

void Hub::Impl::send_to(Peer& peer, Envelope env) {
  Outgoing msg;
  msg.env = std::move(env);
  send_to(peer, msg, false);
}

void Hub::Impl::send_to(Peer& peer, Outgoing& msg, bool event) {
  if (peer.local) {
    if (peer.local->closed) return;
    if (event) events_routed_.fetch_add(1, std::memory_order_relaxed);
    peer.local->outbox_bytes += frame_size_bound(msg.env);
    peer.local->outbox.push_back(msg.env);
    if (std::size_t q = backlog(peer); q > peak_queued_.load(std::memory_order_relaxed)) {
      peak_queued_.store(q, std::memory_order_relaxed);
    }
    if (!peer.local->flush_scheduled) {
      peer.local->flush_scheduled = true;
      asio::post(io_.context(), [this, link = peer.local] {
        std::vector<Envelope> batch;
        {
          std::lock_guard state(state_mutex_);
          batch = take_outbox(*link);
        }
        // Without the routing state held: the local peer's thread may be routing meanwhile.
        // The callbacks themselves change only on this thread (remove_local).
        deliver_local(*link, batch);
      });
    }
    return;
  }
  if (!peer.conn || !peer.conn->is_open()) return;
  const WireFrame& frame = msg.frame();
  if (event) events_routed_.fetch_add(1, std::memory_order_relaxed);
  if (std::size_t q = peer.conn->queued_bytes() + frame.size();
      q > peak_queued_.load(std::memory_order_relaxed)) {
    peak_queued_.store(q, std::memory_order_relaxed);
  }
  if (collecting_writes_) {
    peer.conn->push(frame);
    if (std::find(written_now_.begin(), written_now_.end(), peer.conn) == written_now_.end()) {
      written_now_.push_back(peer.conn);
    }
    return;
  }
  peer.conn->send(frame);
}

std::vector<Envelope> Hub::Impl::take_outbox(LocalLink& link) {
  link.flush_scheduled = false;
  std::vector<Envelope> batch;
  if (!link.closed) batch.swap(link.outbox);
  link.outbox_taken += link.outbox_bytes;
  link.outbox_bytes = 0;
  return batch;
}

void Hub::Impl::deliver_local(LocalLink& link, std::vector<Envelope>& batch) {
  if (!batch.empty() && link.callbacks.on_batch) link.callbacks.on_batch(batch);
}

// --- Flow control ----------------------------------------------------------------------------
//
// Who waits for whom: a publisher (a peer whose EVENT or INVOKE is being routed) waits for a
// receiver (a subscriber of that event, the callee of that invoke) whose queue is over the high
// water mark. Nothing else waits: not the hub's routing of other publishers, not a publisher
// whose traffic goes only to receivers with room, not replies, acks or pings. While it waits, its
// frames are parked here in arrival order and its socket is not read, so its kernel buffer and
// then its own outbound buffer fill, and its emit() returns false. It goes on when every receiver
// it waits for is at or below the low water mark (Connection::notify_below for socket peers; the
// local peer says so through LocalPort::resume_reading, and the flow timer looks as well), is
// stalled, or is gone. The wait is the unit a credit-based stream can later sit on: a stream's
// credit is a receiver-granted mark for one publisher.

std::size_t Hub::Impl::backlog(const Peer& receiver) const {
  if (receiver.local) {
    const PortCallbacks& cb = receiver.local->callbacks;
    return receiver.local->outbox_bytes + (cb.backlog_bytes ? cb.backlog_bytes() : 0);
  }
  return receiver.conn ? receiver.conn->queued_bytes() : 0;
}

std::uint64_t Hub::Impl::progress_of(const Peer& receiver) const {
  if (receiver.local) {
    const PortCallbacks& cb = receiver.local->callbacks;
    return cb.consumed_bytes ? cb.consumed_bytes() : receiver.local->outbox_taken;
  }
  return receiver.conn ? receiver.conn->bytes_written() : 0;
}

bool Hub::Impl::would_overflow(const Peer& receiver, std::size_t size) const {
  if (receiver.stalled) return false;
  // The mark bounds a backlog, not a message (max_frame does that): a message larger than the
  // mark still goes to a receiver with nothing queued. A queue is thus at most the mark plus one
  // message.
  std::size_t queued = backlog(receiver);
  return queued > 0 && queued + size > opt_.high_water_mark;
}

void Hub::Impl::park(Peer& publisher, Envelope env) {
  if (publisher.parked.empty()) {
    pauses_.fetch_add(1, std::memory_order_relaxed);
    if (publisher.conn) publisher.conn->pause_reading();
  }
  publisher.parked_bytes += frame_size_bound(env);
  publisher.parked.push_back(std::move(env));
  if (publisher.local) {
    publisher.local->parked_bytes.store(publisher.parked_bytes, std::memory_order_relaxed);
  }
}

void Hub::Impl::wait_for(Peer& publisher, Peer& receiver) {
  publisher.blocked_on.insert(receiver.id);
  receiver.waiters.insert(publisher.id);
  watch(receiver);
}

void Hub::Impl::watch(Peer& receiver) {
  if (receiver.watching) return;
  receiver.watching = true;
  receiver.progress = progress_of(receiver);
  receiver.since = std::chrono::steady_clock::now();
  if (receiver.conn) {
    receiver.conn->notify_below(opt_.low_water_mark, [this, id = receiver.id] {
      std::lock_guard state(state_mutex_);
      on_drained(id);
      finish_batch();
    });
  }
  arm_flow_timer();
}

void Hub::Impl::on_drained(PeerId id) {
  Peer* receiver = find(id);
  if (!receiver || !receiver->watching) return;
  receiver->watching = false;
  if (backlog(*receiver) > opt_.low_water_mark) {
    watch(*receiver);  // not yet: what was sent meanwhile filled it again
    return;
  }
  if (receiver->stalled) {
    // It reads again: it is told once what it missed, and treated as live from here on.
    receiver->stalled = false;
    if (receiver->missed.count > 0) {
      Envelope notice;
      notice.kind = Kind::dropped;
      notice.flags = kFlagFromHub;
      notice.payload = encode_dropped(receiver->missed);
      receiver->missed = DroppedNotice{};
      send_to(*receiver, std::move(notice));
    }
  }
  release_waiters(*receiver);
}

void Hub::Impl::release_waiters(Peer& receiver, bool posted) {
  std::unordered_set<PeerId> waiters;
  waiters.swap(receiver.waiters);
  for (PeerId w : waiters) {
    Peer* publisher = find(w);
    if (!publisher) continue;
    publisher->blocked_on.erase(receiver.id);
    if (!publisher->blocked_on.empty()) continue;
    if (posted) {
      post_resume(w);
    } else {
      resume(*publisher);
    }
  }
}

void Hub::Impl::resume(Peer& publisher) {
  while (!publisher.parked.empty() && publisher.blocked_on.empty() && !publisher.closing) {
    Envelope& env = publisher.parked.front();
    std::size_t size = frame_size_bound(env);
    if (!handle(publisher, env)) break;  // a receiver is full again: it waits for that one
    publisher.parked.pop_front();
    publisher.parked_bytes -= size;
  }
  if (publisher.local) {
    publisher.local->parked_bytes.store(publisher.parked_bytes, std::memory_order_relaxed);
  }
  if (!publisher.parked.empty()) return;
  if (publisher.leave_after_parked) {
    doom(publisher, *publisher.leave_after_parked, false);
  } else if (publisher.conn) {
    publisher.conn->resume_reading();
  } else if (publisher.local) {
    check_local_drain(publisher);
  }
}

void Hub::Impl::post_resume(PeerId id) {
  asio::post(io_.context(), [this, id] {
    std::lock_guard state(state_mutex_);
    Peer* publisher = find(id);
    if (publisher && publisher->blocked_on.empty()) resume(*publisher);
    finish_batch();
  });
}

void Hub::Impl::stall(Peer& receiver) {
  stalls_.fetch_add(1, std::memory_order_relaxed);
  auto idle = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - receiver.since);
  // The hub's own process is not disconnected: its port would be gone for good (a local port
  // does not reconnect) and what it submits afterwards would vanish. Drop applies to it.
  if (opt_.overflow == OverflowPolicy::disconnect && !receiver.local) {
    doom(receiver,
         Status(Errc::slow_consumer,
                "this peer took nothing of the " + std::to_string(backlog(receiver)) +
                    " bytes queued for it for " + std::to_string(idle.count()) +
                    " ms (stallTimeoutMs " + std::to_string(opt_.stall_timeout.count()) +
                    "), so the hub disconnected it (overflow: 'disconnect'); keep its event "
                    "loop free, or choose overflow: 'drop'"),
         true);
    return;
  }
  receiver.stalled = true;
  release_waiters(receiver);
  watch(receiver);  // to tell it what it missed once it drains
}

void Hub::Impl::check_local_drain(Peer& local) {
  LocalLink& link = *local.local;
  if (!link.drain_armed) return;
  if (link.inbox_bytes.load(std::memory_order_relaxed) + local.parked_bytes > link.drain_below) {
    return;
  }
  link.drain_armed = false;
  if (link.callbacks.on_drain) link.callbacks.on_drain();
}

void Hub::Impl::local_drain_requested(const std::shared_ptr<LocalLink>& link, std::size_t below) {
  std::lock_guard state(state_mutex_);
  Peer* peer = find(link->id);
  if (!peer || peer->local != link) return;
  link->drain_armed = true;
  link->drain_below = below;
  check_local_drain(*peer);
}

void Hub::Impl::local_caught_up(PeerId id) {
  std::lock_guard state(state_mutex_);
  on_drained(id);
  finish_batch();
}

void Hub::Impl::arm_flow_timer() {
  if (flow_armed_ || shut_down_) return;
  flow_armed_ = true;
  // A timer belongs to the I/O thread; a local port routing on its own thread asks it to arm.
  if (!io_.in_thread()) {
    asio::post(io_.context(), [this] {
      std::lock_guard state(state_mutex_);
      flow_armed_ = false;
      arm_flow_timer();
    });
    return;
  }
  if (!flow_timer_) flow_timer_ = std::make_unique<asio::steady_timer>(io_.context());
  // Fine enough that a stall is declared at most 20 ms after stall_timeout (the bound for
  // the others to go on is the timeout + 200 ms; 40 ms ticks left some runs 2181 ms after the
  // pause), and that a local peer's drain is seen soon even when nothing tells the hub. Only
  // while someone is watched.
  auto tick =
      std::clamp(std::chrono::duration_cast<std::chrono::milliseconds>(opt_.stall_timeout / 100),
                 std::chrono::milliseconds(5), std::chrono::milliseconds(20));
  flow_timer_->expires_after(tick);
  flow_timer_->async_wait([this](std::error_code ec) {
    if (ec || shut_down_) return;
    check_flow();
  });
}

void Hub::Impl::check_flow() {
  std::lock_guard state(state_mutex_);
  flow_armed_ = false;
  auto now = std::chrono::steady_clock::now();
  std::vector<PeerId> drained, stalled;
  bool watching = false;
  for (auto& [id, receiver] : peers_) {
    if (!receiver->watching || receiver->closing) continue;
    watching = true;
    if (backlog(*receiver) <= opt_.low_water_mark) {
      drained.push_back(id);
      continue;
    }
    if (receiver->stalled) continue;
    if (std::uint64_t p = progress_of(*receiver); p != receiver->progress) {
      receiver->progress = p;
      receiver->since = now;
    } else if (now - receiver->since >= opt_.stall_timeout) {
      stalled.push_back(id);
    }
  }
  for (PeerId id : drained) on_drained(id);
  for (PeerId id : stalled) {
    if (Peer* receiver = find(id); receiver && !receiver->closing) stall(*receiver);
  }
  finish_batch();
  if (watching) arm_flow_timer();
}

// --- Liveness and the endpoint -------------------------------------------------------------

void Hub::Impl::arm_liveness() {
  if (opt_.ping_interval.count() == 0 || shut_down_) return;
  if (!liveness_timer_) liveness_timer_ = std::make_unique<asio::steady_timer>(io_.context());
  liveness_timer_->expires_after(opt_.ping_interval);
  liveness_timer_->async_wait([this](std::error_code ec) {
    if (!ec && !shut_down_) check_liveness();
  });
}

void Hub::Impl::check_liveness() {
  std::lock_guard state(state_mutex_);
  for (auto& [id, peer] : peers_) {
    // The local peer shares our process; one still in the handshake has its own deadline.
    if (!peer->conn || !peer->admitted || peer->closing) continue;
    // A publisher the hub has paused cannot be heard: its PONGs wait unread behind its events.
    if (!peer->parked.empty()) peer->heard = true;
    if (peer->heard) {
      peer->heard = false;
      peer->missed_pings = 0;
    } else if (++peer->missed_pings >= opt_.ping_misses) {
      declared_dead_.fetch_add(1, std::memory_order_relaxed);
      doom(*peer,
           Status(Errc::connection_lost, "nothing heard from the peer for " +
                                             std::to_string(peer->missed_pings) + " pings sent " +
                                             std::to_string(opt_.ping_interval.count()) +
                                             " ms apart; declared dead (stopped or hung)"),
           true);
      continue;
    }
    Envelope ping;
    ping.kind = Kind::ping;
    ping.id = next_ping_++;
    send_to(*peer, std::move(ping));
  }
  finish_batch();
  arm_liveness();
}

void Hub::Impl::arm_endpoint_check() {
  if (opt_.endpoint_check_interval.count() == 0 || shut_down_) return;
  if (!endpoint_timer_) endpoint_timer_ = std::make_unique<asio::steady_timer>(io_.context());
  endpoint_timer_->expires_after(opt_.endpoint_check_interval);
  endpoint_timer_->async_wait([this](std::error_code ec) {
    if (ec || shut_down_ || !listener_) return;
    Status why;
    if (listener_->restore(why)) endpoint_restored_.fetch_add(1, std::memory_order_relaxed);
    // A path taken by someone else stays theirs; we keep checking in case it is freed again.
    arm_endpoint_check();
  });
}

// --- Removal -------------------------------------------------------------------------------

void Hub::Impl::doom(Peer& peer, Status why, bool goaway) {
  if (peer.closing) return;
  peer.closing = true;
  doomed_.emplace_back(peer.id, std::move(why), goaway);
}

void Hub::Impl::finish_batch() {
  if (routing_now_ && !doomed_.empty()) {
    // Closing connections and calling the local peer's callbacks belong to the I/O thread; the
    // doomed peers are marked closing already, so nothing more is routed to them meanwhile.
    asio::post(io_.context(), [this] {
      std::lock_guard state(state_mutex_);
      finish_batch();
    });
    update_gauges();
    return;
  }
  while (!doomed_.empty()) {
    auto batch = std::move(doomed_);
    doomed_.clear();
    for (auto& [id, why, goaway] : batch) remove_peer(id, why, goaway);
  }
  update_gauges();
}

void Hub::Impl::remove_peer(PeerId id, const Status& why, bool goaway) {
  auto node = peers_.extract(id);
  if (node.empty()) return;
  std::unique_ptr<Peer> peer = std::move(node.mapped());
  if (!peer->admitted) rejected_.fetch_add(1, std::memory_order_relaxed);
  if (peer->conn) {
    peer->conn->detach();
    if (goaway) {
      peer->conn->close_after(goaway_frame(why));
    } else {
      peer->conn->close();
    }
  }
  router_.remove_peer(id);
  // Flow control: whoever waited for it goes on; whatever it waited for forgets it.
  for (PeerId w : peer->waiters) {
    if (Peer* publisher = find(w)) {
      publisher->blocked_on.erase(id);
      if (publisher->blocked_on.empty()) post_resume(w);
    }
  }
  for (PeerId r : peer->blocked_on) {
    if (Peer* receiver = find(r)) receiver->waiters.erase(id);
  }
  if (peer->local) peer->local->parked_bytes.store(0, std::memory_order_relaxed);
  if (peer->admitted) {
    for (auto& [other_id, other] : peers_) {
      if (other->admitted && !other->closing) announce(*other, *peer, false);
    }
  }
  // Callers waiting on this peer fail now, not at their timeout.
  for (std::uint64_t call_id : peer->serving) {
    auto it = calls_.find(call_id);
    if (it == calls_.end()) continue;
    Call call = std::move(it->second);
    calls_.erase(it);
    if (Peer* caller = find(call.caller)) {
      caller->calls_out.erase(call.caller_id);
      send_to(*caller, hub_error(call.caller_id,
                                 Status(Errc::connection_lost,
                                        "the peer serving '" + call.name + "' (pid " +
                                            std::to_string(peer->pid) +
                                            ") went away before answering: " + why.to_string())));
    }
  }
  // Calls this peer made: their handlers can stop working on them.
  for (auto& [caller_id, call_id] : peer->calls_out) {
    auto it = calls_.find(call_id);
    if (it == calls_.end()) continue;
    PeerId callee_id = it->second.callee;
    calls_.erase(it);
    if (Peer* callee = find(callee_id)) {
      callee->serving.erase(call_id);
      Envelope cancel;
      cancel.kind = Kind::cancel;
      cancel.id = call_id;
      cancel.sender = id;
      send_to(*callee, std::move(cancel));
    }
  }
  if (peer->local) {
    std::vector<Envelope> last = take_outbox(*peer->local);
    deliver_local(*peer->local, last);
    peer->local->closed = true;
    if (peer->local->callbacks.on_state) peer->local->callbacks.on_state(PortState::closed, why);
    peer->local->callbacks = {};
  }
  update_gauges();
  report(peer->admitted ? PeerEvent::Type::left : PeerEvent::Type::rejected, *peer, why);
}

// --- Local peers ---------------------------------------------------------------------------

std::unique_ptr<Port> Hub::Impl::connect_local(LocalPeerInfo info, PortCallbacks callbacks) {
  auto link = std::make_shared<LocalLink>();
  link->callbacks = std::move(callbacks);
  std::promise<PeerId> assigned;
  auto future = assigned.get_future();
  bool posted = post_if_running([this, link, &info, &assigned] {
    std::lock_guard state(state_mutex_);
    auto peer = std::make_unique<Peer>();
    peer->id = next_peer_++;
    peer->admitted = true;
    peer->role = info.role;
    peer->name = info.name;
    peer->pid = info.pid ? info.pid : static_cast<std::uint64_t>(::getpid());
    peer->grants = info.grants;
    peer->origin = info.origin;
    peer->window = info.window;
    peer->local = link;
    link->id = peer->id;
    peers_.emplace(peer->id, std::move(peer));
    update_gauges();
    Peer& joined = *peers_.at(link->id);
    announce_join(joined);
    report(PeerEvent::Type::joined, joined, {});
    if (link->callbacks.on_state) link->callbacks.on_state(PortState::connected, {});
    assigned.set_value(link->id);
  });
  if (!posted) return nullptr;
  future.wait();
  return std::make_unique<LocalPort>(shared_from_this(), std::move(link));
}

void Hub::Impl::drain_local(const std::shared_ptr<LocalLink>& link) {
  std::lock_guard state(state_mutex_);
  std::vector<Envelope> batch;
  {
    std::lock_guard lock(link->mutex);
    batch.swap(link->inbox);
    link->drain_scheduled = false;
  }
  std::size_t bytes = 0;
  for (const Envelope& e : batch) bytes += frame_size_bound(e);
  route_local(link, batch);
  link->inbox_bytes.fetch_sub(bytes, std::memory_order_relaxed);
  if (Peer* peer = find(link->id)) check_local_drain(*peer);
}

bool Hub::Impl::route_now(const std::shared_ptr<LocalLink>& link, std::vector<Envelope>& batch,
                          Status& status) {
  std::vector<std::shared_ptr<Connection>> written;
  {
    std::lock_guard state(state_mutex_);
    if (shut_down_) {
      status = Status(Errc::closed, "the hub is closed");
      return true;
    }
    {
      // Frames of this port wait for the I/O thread: these go behind them, the posted way.
      std::lock_guard lock(link->mutex);
      if (!link->inbox.empty() || link->drain_scheduled) return false;
    }
    routing_now_ = collecting_writes_ = true;
    route_local(link, batch);
    routing_now_ = collecting_writes_ = false;
    written.swap(written_now_);
  }
  // Written without the routing state held, so that the I/O thread routes meanwhile; each
  // connection's queue keeps the order in which frames were routed to it.
  for (const auto& conn : written) conn->flush_now();
  return true;
}

void Hub::Impl::route_local(const std::shared_ptr<LocalLink>& link, std::vector<Envelope>& batch) {
  for (Envelope& env : batch) {
    Peer* peer = find(link->id);
    if (!peer || peer->closing) break;
    env.sender = peer->id;
    if (encoded_body_size(env) > opt_.max_frame) {
      // Socket peers would refuse it as a frame: answer as a client would (envelope.h).
      OversizeAction action = oversize_action(env, opt_.max_frame);
      if (action.tell_sender) send_to(*peer, std::move(*action.tell_sender));
      if (!action.send_instead) continue;
      env = std::move(*action.send_instead);
    }
    if (!peer->parked.empty() || !handle(*peer, env)) park(*peer, std::move(env));
  }
  finish_batch();
}

void Hub::Impl::remove_local(PeerId id) {
  std::lock_guard state(state_mutex_);
  if (Peer* peer = find(id)) {
    peer->local->closed = true;  // the owner is closing: no callbacks back into it
    peer->local->callbacks = {};
  }
  remove_peer(id, Status(Errc::closed, "local port closed"), false);
  finish_batch();
}

// --- Hub facade ----------------------------------------------------------------------------

Hub::Hub(HubOptions options) : impl_(std::make_shared<Impl>(std::move(options))) {}
Hub::~Hub() {
  close();
}
Status Hub::start() {
  return impl_->start();
}
void Hub::close() {
  impl_->close();
}
const std::string& Hub::endpoint() const {
  return impl_->endpoint();
}
const std::string& Hub::token() const {
  return impl_->token();
}
HubStats Hub::stats() const {
  return impl_->stats();
}
std::vector<HubPeerStats> Hub::peer_stats() const {
  return impl_->peer_stats();
}
std::unique_ptr<Port> Hub::connect_local(LocalPeerInfo info, PortCallbacks callbacks) {
  return impl_->connect_local(std::move(info), std::move(callbacks));
}
void Hub::accept_peers() {
  impl_->accept_peers();
}

std::string_view state_name(PortState state) {
  switch (state) {
    case PortState::connecting:
      return "connecting";
    case PortState::connected:
      return "connected";
    case PortState::reconnecting:
      return "reconnecting";
    case PortState::closed:
      return "closed";
  }
  return "unknown";
}

}  // namespace switchboard
