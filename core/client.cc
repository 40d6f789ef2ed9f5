#include "client.h"

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>
#include <unordered_set>
#include <utility>

#include "backoff.h"
#include "connection.h"
#include "handshake.h"
#include "io_thread.h"
#include "transport.h"

namespace switchboard {
namespace {

// How long close() waits for queued frames to drain into the socket before giving up on them.
constexpr std::chrono::milliseconds kCloseLinger{1000};

std::size_t frame_cost(const Envelope& e) {
  return e.topic.size() + e.payload.size + 32;
}

bool queued_offline(Kind kind) {
  // Replies answer invokes the hub already failed when we dropped; pings are per connection.
  return kind != Kind::result && kind != Kind::error && kind != Kind::ping && kind != Kind::pong &&
         kind != Kind::goaway && kind != Kind::hello && kind != Kind::welcome;
}

Envelope local_error(std::uint64_t id, Errc code, std::string message) {
  Envelope e;
  e.kind = Kind::error;
  e.id = id;
  e.topic = std::string(wire_name(code));
  e.flags = kFlagFromHub;
  e.payload = encode_message(message);
  return e;
}

}  // namespace

class Client::Impl {
 public:
  Impl(ClientOptions options, PortCallbacks callbacks)
      : opt_(std::move(options)),
        cb_(std::move(callbacks)),
        backoff_(opt_.backoff_initial, opt_.backoff_max) {}

  Status start();
  Status submit(std::vector<Envelope> batch);
  void close();
  void resume_reading() {
    // The I/O thread decides, in order with its own pause: if the consumer fell behind again
    // meanwhile, reading stays paused until the next resume.
    asio::post(io_.context(), [this] {
      if (conn_ && !(cb_.backlogged && cb_.backlogged())) conn_->resume_reading();
    });
  }
  std::uint64_t peer_id() const { return peer_id_.load(); }
  PortStats stats() const;
  std::size_t outbound_bytes() const {
    std::lock_guard lock(mutex_);
    return conn_ && online_ ? conn_->queued_bytes() : 0;
  }
  void notify_drain(std::size_t below) {
    std::lock_guard lock(mutex_);
    drain_armed_ = true;
    if (conn_ && online_) {
      conn_->notify_below(below, [this] { fire_drain(); });
    } else {
      asio::post(io_.context(), [this] { fire_drain(); });
    }
  }

 private:
  void connect_now();
  void on_connected(std::unique_ptr<Stream> stream);
  void on_frames(std::vector<Slice>& frames);
  Status on_welcome(const Envelope& env);
  void lost(const Status& why, bool fatal);
  void give_up(const Status& why);
  void drain();
  // Requires mutex_. Records what `env` changes (subscriptions, handlers, calls in flight) and
  // queues it on the connection; what the oversize check has to tell the sender is appended to
  // `told`, for the caller to deliver once the mutex is released.
  void send_locked(Envelope& env, std::vector<Envelope>& told);
  // Requires mutex_. The bookkeeping of a frame about to be written.
  void note_sent_locked(const Envelope& env);
  // Requires mutex_. False when `env` is over the hub's limit (send_locked() deals with those).
  bool fits_locked(const Envelope& env) const { return encoded_body_size(env) <= hub_max_frame_; }
  void tell(std::vector<Envelope>& told) {
    if (!told.empty() && cb_.on_batch) cb_.on_batch(told);
  }
  void set_state(PortState state, const Status& why);
  void shutdown();
  // I/O thread: on_drain, if notify_drain() asked for it and it has not fired since.
  void fire_drain() {
    {
      std::lock_guard lock(mutex_);
      if (!drain_armed_) return;
      drain_armed_ = false;
    }
    if (cb_.on_drain) cb_.on_drain();
  }

  ClientOptions opt_;
  PortCallbacks cb_;
  IoThread io_;

  // Guards the members up to the blank line. submit() writes a batch to the connection with
  // this mutex held (the direct path), so everything that decides the order of frames on the
  // wire, and the bookkeeping of what was sent, lives under it. Lock order: mutex_, then the
  // connection's write mutex. No callback runs with it held.
  mutable std::mutex mutex_;
  std::vector<Envelope> inbox_;  // while offline this is the offline queue
  bool drain_armed_ = false;     // notify_drain() asked, on_drain not yet fired
  std::size_t inbox_bytes_ = 0;
  bool online_ = false;
  bool running_ = false;
  bool drain_scheduled_ = false;
  // Written on the I/O thread under mutex_, so the I/O thread may read it without the mutex; any
  // other thread reads it under mutex_, and a replaced connection is never written through a
  // stale pointer.
  std::shared_ptr<Connection> conn_;
  std::size_t hub_max_frame_ = kDefaultMaxFrame;
  std::set<std::string> subscriptions_;
  std::set<std::string> handlers_;
  std::unordered_set<std::uint64_t> in_flight_;

  // I/O thread only.
  Backoff backoff_;
  std::unique_ptr<asio::steady_timer> retry_timer_;
  std::unique_ptr<asio::steady_timer> handshake_timer_;
  bool welcomed_ = false;
  bool closing_ = false;
  int failures_ = 0;

  // Any thread.
  ConnectionCounters wire_;
  std::atomic<std::uint64_t> peer_id_{0}, connects_{0}, attempts_{0}, offline_gauge_{0},
      in_flight_gauge_{0};
  std::atomic<PortState> state_{PortState::connecting};
};

Status Client::Impl::start() {
  if (opt_.endpoint.empty()) {
    return Status(Errc::invalid_argument,
                  "no endpoint: pass the hub's endpoint, or start this process with the "
                  "environment from the hub's childEnv()");
  }
  if (opt_.backoff_initial.count() <= 0 || opt_.backoff_max < opt_.backoff_initial) {
    return Status(Errc::invalid_argument, "backoff_initial must be positive and <= backoff_max");
  }
  {
    std::lock_guard lock(mutex_);
    if (running_ || io_.running()) return Status(Errc::invalid_argument, "client already started");
    running_ = true;
  }
  asio::post(io_.context(), [this] {
    set_state(PortState::connecting, {});
    connect_now();
  });
  io_.start();
  return {};
}

void Client::Impl::close() {
  {
    std::lock_guard lock(mutex_);
    if (!io_.running()) return;
    running_ = false;  // no submit() after this; what was submitted still goes out
    asio::post(io_.context(), [this] { shutdown(); });
  }
  io_.stop();
  std::lock_guard lock(mutex_);
  inbox_.clear();
}

void Client::Impl::shutdown() {
  if (retry_timer_) retry_timer_->cancel();
  if (handshake_timer_) handshake_timer_->cancel();
  // What was submitted before close() leaves first, if we are connected to send it (what was
  // written directly is in the socket or the connection's queue already).
  std::vector<Envelope> told;
  std::shared_ptr<Connection> conn;
  {
    std::lock_guard lock(mutex_);
    if (online_) {
      std::vector<Envelope> last;
      last.swap(inbox_);
      for (Envelope& e : last) send_locked(e, told);
    }
    online_ = false;
    conn.swap(conn_);
  }
  tell(told);
  closing_ = true;
  if (conn) {
    Envelope bye;
    bye.kind = Kind::goaway;
    bye.topic = std::string(wire_name(Errc::closed));
    bye.payload = encode_message("client closed");
    WireFrame f;
    (void)encode_frame(bye, f);
    conn->detach();
    conn->close_gracefully(std::move(f), kCloseLinger);
  }
  state_.store(PortState::closed);
}

PortStats Client::Impl::stats() const {
  PortStats s;
  s.connects = connects_.load();
  s.attempts = attempts_.load();
  s.offline_queued = offline_gauge_.load();
  s.in_flight = in_flight_gauge_.load();
  s.frames_in = wire_.frames_in.load();
  s.frames_out = wire_.frames_out.load();
  s.writev_calls = wire_.writev_calls.load();
  s.direct_writes = wire_.direct_writes.load();
  s.state = state_.load();
  return s;
}

void Client::Impl::set_state(PortState state, const Status& why) {
  state_.store(state);
  if (cb_.on_state) cb_.on_state(state, why);
}

// --- Connecting ----------------------------------------------------------------------------

void Client::Impl::connect_now() {
  if (closing_) return;
  attempts_.fetch_add(1, std::memory_order_relaxed);
  connect_endpoint(io_.context(), opt_.endpoint,
                   [this](Status status, std::unique_ptr<Stream> stream) {
                     if (closing_) return;
                     if (!status.ok()) {
                       lost(status, false);
                       return;
                     }
                     on_connected(std::move(stream));
                   });
}

void Client::Impl::on_connected(std::unique_ptr<Stream> stream) {
  {
    std::lock_guard lock(mutex_);  // offline: nothing writes to it until the welcome
    conn_ = std::make_shared<Connection>(io_.context(), std::move(stream), opt_.max_frame, &wire_);
  }
  conn_->start([this](std::vector<Slice>& frames) { on_frames(frames); },
               [this](const Status& why) { lost(why, false); });
  Hello hello;
  hello.protocol = kProtocolVersion;
  hello.token = opt_.token;
  hello.role = opt_.role;
  hello.name = opt_.name;
  hello.pid = opt_.pid;
  Envelope env;
  env.kind = Kind::hello;
  env.payload = encode_hello(hello);
  WireFrame f;
  (void)encode_frame(env, f);
  conn_->send(std::move(f));
  handshake_timer_ = std::make_unique<asio::steady_timer>(io_.context(), opt_.handshake_timeout);
  handshake_timer_->async_wait([this](std::error_code ec) {
    if (ec || welcomed_ || closing_) return;
    lost(Status(Errc::handshake_timeout, "the hub did not welcome us in time"), false);
  });
}

void Client::Impl::on_frames(std::vector<Slice>& frames) {
  std::vector<Envelope> batch;
  batch.reserve(frames.size());
  std::optional<Status> goaway;
  std::vector<std::uint64_t> answered;
  for (Slice& frame : frames) {
    Envelope env;
    if (Status s = decode_frame(frame, env, DecodeLimits{}); !s.ok()) {
      goaway = Status(Errc::protocol_error, "the hub sent a malformed frame: " + s.message());
      break;
    }
    // The envelope holds the bytes now. Dropped at once so that a bulk frame has a single owner
    // when JavaScript takes it, which may be before this batch returns (addon/port_handle.cc).
    frame = Slice();
    if (env.kind == Kind::goaway) {
      goaway = Status(errc_from_wire(env.topic), decode_message(env.payload));
      break;
    }
    if (!welcomed_) {
      if (env.kind != Kind::welcome) {
        goaway = Status(Errc::protocol_error, "expected WELCOME from the hub");
        break;
      }
      if (Status s = on_welcome(env); !s.ok()) {
        goaway = s;
        break;
      }
      continue;
    }
    switch (env.kind) {
      case Kind::ping: {
        Envelope pong;
        pong.kind = Kind::pong;
        pong.id = env.id;
        WireFrame f;
        (void)encode_frame(pong, f);
        conn_->send(std::move(f));
        continue;
      }
      case Kind::pong:
        continue;
      case Kind::result:
      case Kind::error:
        answered.push_back(env.id);
        break;
      default:
        break;
    }
    batch.push_back(std::move(env));
  }
  if (!answered.empty()) {
    std::lock_guard lock(mutex_);  // once per batch: submit() may be writing meanwhile
    for (std::uint64_t id : answered) in_flight_.erase(id);
    in_flight_gauge_.store(in_flight_.size());
  }
  if (!batch.empty() && cb_.on_batch) {
    cb_.on_batch(batch);
    if (cb_.backlogged && conn_ && cb_.backlogged()) conn_->pause_reading();
  }
  if (goaway) {
    bool fatal = goaway->code() == Errc::auth_failed || goaway->code() == Errc::version_mismatch;
    lost(*goaway, fatal);
  }
}

Status Client::Impl::on_welcome(const Envelope& env) {
  Welcome w;
  if (Status s = decode_welcome(env.payload, w); !s.ok()) return s;
  if (w.protocol != kProtocolVersion) {
    return Status(Errc::version_mismatch, "the hub speaks protocol " + std::to_string(w.protocol) +
                                              ", this client speaks " +
                                              std::to_string(kProtocolVersion));
  }
  // Frames from the hub may be as large as the hub allows; ours must fit its limit too.
  if (w.max_frame > 0) conn_->set_max_frame(w.max_frame);
  welcomed_ = true;
  failures_ = 0;
  backoff_.reset();
  if (handshake_timer_) handshake_timer_->cancel();
  peer_id_.store(w.peer_id);
  connects_.fetch_add(1, std::memory_order_relaxed);
  // What was in force before the drop goes first, so that what was queued meanwhile applies on
  // top of it in order. All of it is queued on the connection before online_ lets submit()
  // write directly, so nothing submitted later can overtake it.
  std::vector<Envelope> told;
  {
    std::lock_guard lock(mutex_);
    if (w.max_frame > 0) hub_max_frame_ = w.max_frame;
    std::vector<Envelope> again;
    for (const std::string& topic : subscriptions_) {
      Envelope& e = again.emplace_back();
      e.kind = Kind::subscribe;
      e.topic = topic;
    }
    for (const std::string& name : handlers_) {
      Envelope& e = again.emplace_back();
      e.kind = Kind::register_;
      e.topic = name;
    }
    for (Envelope& e : again) send_locked(e, told);
    std::vector<Envelope> queued;
    queued.swap(inbox_);
    inbox_bytes_ = 0;
    drain_scheduled_ = false;
    for (Envelope& e : queued) send_locked(e, told);
    online_ = true;
  }
  offline_gauge_.store(0);
  // Into the socket before 'connected' is reported, not at the end of this turn: whoever learns
  // of it (the program, and through it other processes) acts on the subscriptions being in force
  // at the hub. A flush left for later, on an I/O thread preempted after the report, lets another
  // process's event reach the hub before them.
  conn_->write_queued();
  tell(told);
  set_state(PortState::connected, {});
  return {};
}

void Client::Impl::lost(const Status& why, bool fatal) {
  if (closing_) return;
  bool was_welcomed = welcomed_;
  welcomed_ = false;
  if (handshake_timer_) handshake_timer_->cancel();
  std::shared_ptr<Connection> dead;
  std::unordered_set<std::uint64_t> unanswered;
  {
    // Frames submitted while online but not yet sent become the offline queue: keep only what
    // the offline queue may hold (replies answer calls the hub has already failed) and count it.
    // From here on submit() queues offline, so the invokes taken here are all that were written
    // to this connection and not answered; each is failed once, below.
    std::lock_guard lock(mutex_);
    online_ = false;
    dead.swap(conn_);
    std::erase_if(inbox_, [](const Envelope& e) { return !queued_offline(e.kind); });
    inbox_bytes_ = 0;
    for (const Envelope& e : inbox_) inbox_bytes_ += frame_cost(e);
    offline_gauge_.store(inbox_.size());
    unanswered.swap(in_flight_);
    in_flight_gauge_.store(0);
  }
  if (dead) {
    dead->detach();
    dead->close();
  }
  if (!unanswered.empty()) {
    std::vector<Envelope> failed;
    failed.reserve(unanswered.size());
    for (std::uint64_t id : unanswered) {
      failed.push_back(local_error(id, Errc::connection_lost,
                                   "the connection to the hub was lost before the reply "
                                   "arrived: " +
                                       why.to_string()));
    }
    if (cb_.on_batch) cb_.on_batch(failed);
  }
  if (fatal) {
    give_up(why);
    return;
  }
  if (!was_welcomed) ++failures_;
  if (opt_.max_attempts >= 0 && failures_ > opt_.max_attempts) {
    give_up(Status(why.code(), "gave up after " + std::to_string(failures_) +
                                   " failed attempts: " + why.message()));
    return;
  }
  set_state(PortState::reconnecting, why);
  fire_drain();  // nothing waits on the dropped connection now
  retry_timer_ = std::make_unique<asio::steady_timer>(io_.context(), backoff_.next());
  retry_timer_->async_wait([this](std::error_code ec) {
    if (!ec) connect_now();
  });
}

void Client::Impl::give_up(const Status& why) {
  std::vector<Envelope> queued;
  {
    std::lock_guard lock(mutex_);
    running_ = false;
    queued.swap(inbox_);
    inbox_bytes_ = 0;
  }
  offline_gauge_.store(0);
  std::vector<Envelope> failed;
  for (const Envelope& e : queued) {
    if (e.kind == Kind::invoke) failed.push_back(local_error(e.id, why.code(), why.message()));
  }
  if (!failed.empty() && cb_.on_batch) cb_.on_batch(failed);
  closing_ = true;
  set_state(PortState::closed, why);
}

// --- Sending -------------------------------------------------------------------------------

Status Client::Impl::submit(std::vector<Envelope> batch) {
  std::lock_guard lock(mutex_);
  if (!running_) return Status(Errc::closed, "this client is closed");
  if (online_) {
    // The direct path: nothing of ours waits to be sent, so the calling thread writes the batch
    // itself (the connection queues it behind frames the I/O thread has queued, and hands a
    // partial write to the I/O thread). A batch with a frame over the hub's limit goes the
    // queued way, so that what the sender is told reaches it on the I/O thread like every other
    // callback.
    if (inbox_.empty() && !drain_scheduled_ && conn_ &&
        std::all_of(batch.begin(), batch.end(),
                    [this](const Envelope& e) { return fits_locked(e); })) {
      std::vector<WireFrame> frames;
      frames.reserve(batch.size());
      for (Envelope& e : batch) {
        note_sent_locked(e);
        if (!encode_frame(e, frames.emplace_back()).ok()) frames.pop_back();
      }
      in_flight_gauge_.store(in_flight_.size());
      conn_->send_direct(frames);
      return {};
    }
    if (inbox_.empty()) {
      inbox_.swap(batch);
    } else {
      for (auto& e : batch) inbox_.push_back(std::move(e));
    }
    if (!drain_scheduled_) {
      drain_scheduled_ = true;
      asio::post(io_.context(), [this] { drain(); });
    }
    return {};
  }
  std::size_t frames = 0;
  std::size_t bytes = 0;
  for (const auto& e : batch) {
    if (!queued_offline(e.kind)) continue;
    ++frames;
    bytes += frame_cost(e);
  }
  if (inbox_.size() + frames > opt_.offline_max_frames ||
      inbox_bytes_ + bytes > opt_.offline_max_bytes) {
    return Status(Errc::offline_queue_full,
                  "not connected to the hub, and the offline queue is full (" +
                      std::to_string(inbox_.size()) + " frames, " + std::to_string(inbox_bytes_) +
                      " bytes); wait for the 'connected' state or raise the offline limits");
  }
  for (auto& e : batch) {
    if (queued_offline(e.kind)) inbox_.push_back(std::move(e));
  }
  inbox_bytes_ += bytes;
  offline_gauge_.store(inbox_.size());
  return {};
}

void Client::Impl::drain() {
  std::vector<Envelope> told;
  {
    // Sent with the mutex held: a submit() that finds the inbox empty must not write directly
    // before these frames are queued on the connection.
    std::lock_guard lock(mutex_);
    drain_scheduled_ = false;
    if (!online_) return;  // what is left waits for the next welcome
    std::vector<Envelope> batch;
    batch.swap(inbox_);
    for (Envelope& e : batch) send_locked(e, told);
    in_flight_gauge_.store(in_flight_.size());
  }
  tell(told);
}

void Client::Impl::note_sent_locked(const Envelope& env) {
  switch (env.kind) {
    case Kind::subscribe:
      subscriptions_.insert(env.topic);
      break;
    case Kind::unsubscribe:
      subscriptions_.erase(env.topic);
      break;
    case Kind::register_:
      handlers_.insert(env.topic);
      break;
    case Kind::unregister:
      handlers_.erase(env.topic);
      break;
    case Kind::invoke:
      in_flight_.insert(env.id);
      break;
    case Kind::cancel:
      in_flight_.erase(env.id);
      break;
    default:
      break;
  }
}

void Client::Impl::send_locked(Envelope& env, std::vector<Envelope>& told) {
  note_sent_locked(env);
  if (!fits_locked(env)) {
    OversizeAction action = oversize_action(env, hub_max_frame_);
    if (env.kind == Kind::invoke) in_flight_.erase(env.id);
    if (action.tell_sender) told.push_back(std::move(*action.tell_sender));
    if (!action.send_instead) return;
    env = std::move(*action.send_instead);
  }
  WireFrame f;
  if (!encode_frame(env, f).ok()) return;  // only past 4 GiB, which the check above rules out
  if (conn_) conn_->send(std::move(f));
}

// --- Facade --------------------------------------------------------------------------------

Client::Client(ClientOptions options, PortCallbacks callbacks)
    : impl_(std::make_shared<Impl>(std::move(options), std::move(callbacks))) {}
Client::~Client() {
  close();
}
Status Client::start() {
  return impl_->start();
}
Status Client::submit(std::vector<Envelope> batch) {
  return impl_->submit(std::move(batch));
}
void Client::resume_reading() {
  impl_->resume_reading();
}
std::size_t Client::outbound_bytes() const {
  return impl_->outbound_bytes();
}
void Client::notify_drain(std::size_t below) {
  impl_->notify_drain(below);
}
void Client::close() {
  impl_->close();
}
std::uint64_t Client::peer_id() const {
  return impl_->peer_id();
}
PortStats Client::stats() const {
  return impl_->stats();
}

}  // namespace switchboard
