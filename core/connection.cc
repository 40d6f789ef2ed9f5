#include "connection.h"

#include <asio/post.hpp>

#include <utility>

namespace switchboard {
namespace {
constexpr std::size_t kReadChunk = 64u << 10;
// Reads per readiness event before yielding to other connections: fairness under a flood.
constexpr int kReadsPerTurn = 16;
ConnectionCounters g_unused_counters;
}  // namespace

Connection::Connection(asio::io_context& io, std::unique_ptr<Stream> stream, std::size_t max_frame,
                       ConnectionCounters* counters)
    : io_(io),
      stream_(std::move(stream)),
      counters_(counters ? counters : &g_unused_counters),
      decoder_(max_frame),
      read_buffer_(kReadChunk) {}

Connection::~Connection() {
  stream_->close();
}

void Connection::start(FramesHandler on_frames, ClosedHandler on_closed) {
  on_frames_ = std::move(on_frames);
  on_closed_ = std::move(on_closed);
  arm_read();
}

void Connection::detach() {
  on_frames_ = nullptr;
  on_closed_ = nullptr;
}

void Connection::arm_read() {
  read_armed_ = true;
  stream_->wait_readable([self = shared_from_this()](std::error_code ec) {
    self->read_armed_ = false;
    if (!self->is_open()) return;
    if (ec) {
      self->fail(Status(Errc::io_error, "wait for read: " + ec.message()));
      return;
    }
    self->on_readable();
  });
}

Connection::ReadTurn Connection::read_turn() {
  ReadTurn turn;
  for (int i = 0; i < kReadsPerTurn; ++i) {
    // The rest of a bulk frame is received where the frame is assembled: no copy through the
    // read buffer, and as much per call as the socket holds.
    std::span<std::uint8_t> room = decoder_.body_room();
    if (!room.empty()) {
      IoResult r = stream_->try_read(room);
      if (r.state == IoState::ok) {
        counters_->bytes_in.fetch_add(r.bytes, std::memory_order_relaxed);
        decoder_.commit_body(r.bytes, turn.frames);
        continue;
      }
      if (r.state == IoState::would_block) break;
      if (r.state == IoState::eof) {
        turn.ended = true;
        break;
      }
      turn.bad = r.error;
      break;
    }
    IoResult r = stream_->try_read({read_buffer_.data(), read_buffer_.size()});
    if (r.state == IoState::would_block) break;
    if (r.state == IoState::eof) {
      turn.ended = true;
      break;
    }
    if (r.state == IoState::error) {
      turn.bad = r.error;
      break;
    }
    counters_->bytes_in.fetch_add(r.bytes, std::memory_order_relaxed);
    if (Status s = decoder_.feed({read_buffer_.data(), r.bytes}, turn.frames); !s.ok()) {
      turn.bad = s;
      break;
    }
  }
  counters_->frames_in.fetch_add(turn.frames.size(), std::memory_order_relaxed);
  return turn;
}

void Connection::on_readable() {
  ReadTurn turn = read_turn();
  // Frames that arrived before a bad header are still delivered: they were valid.
  if (!turn.frames.empty() && on_frames_) on_frames_(turn.frames);
  if (!is_open()) return;  // the owner closed us while handling the batch
  if (!turn.bad.ok()) {
    if (turn.bad.code() == Errc::frame_too_large || turn.bad.code() == Errc::protocol_error) {
      // Stop reading but keep the stream: the owner sends GOAWAY with the reason, then closes.
      reading_ = false;
      if (ClosedHandler handler = std::move(on_closed_)) {
        asio::post(io_,
                   [handler = std::move(handler), why = std::move(turn.bad)] { handler(why); });
      }
      return;
    }
    fail(std::move(turn.bad));
  } else if (turn.ended) {
    fail(decoder_.at_boundary()
             ? Status(Errc::closed, "peer closed the connection")
             // Lost, not malformed: a peer that ends mid-frame went away mid-write, or gave up
             // on us while our reading lagged (a hub disconnecting a stalled reader cannot get
             // its GOAWAY past the bytes we did not read).
             : Status(Errc::connection_lost,
                      "peer closed the connection inside a frame (" +
                          std::to_string(decoder_.buffered()) +
                          " bytes of a partial frame): it went away mid-message, or gave up on "
                          "this side for reading too slowly (a hub's overflow: 'disconnect')"));
  } else if (!paused_) {
    arm_read();
  }
}

void Connection::resume_reading() {
  if (!paused_) return;
  paused_ = false;
  if (is_open() && reading_ && !read_armed_) arm_read();
}

void Connection::send(WireFrame frame) {
  std::lock_guard lock(write_mutex_);
  if (!open_.load(std::memory_order_relaxed)) return;
  queue_.push(std::move(frame));
  schedule_flush_locked();
}

void Connection::send_direct(std::vector<WireFrame>& frames) {
  std::lock_guard lock(write_mutex_);
  if (!open_.load(std::memory_order_relaxed)) return;
  for (WireFrame& f : frames) queue_.push(std::move(f));
  write_now_locked(true);
}

void Connection::push(WireFrame frame) {
  std::lock_guard lock(write_mutex_);
  if (!open_.load(std::memory_order_relaxed)) return;
  queue_.push(std::move(frame));
}

void Connection::flush_now() {
  std::lock_guard lock(write_mutex_);
  if (!open_.load(std::memory_order_relaxed)) return;
  write_now_locked(true);
}

void Connection::write_queued() {
  std::lock_guard lock(write_mutex_);
  if (!open_.load(std::memory_order_relaxed)) return;
  write_now_locked(false);
}

void Connection::write_now_locked(bool direct) {
  // A full socket: the writable wait will write everything in order; trying now would only
  // return EAGAIN. Otherwise the queue is written from its front, so frames the I/O thread
  // queued (and has not flushed yet) leave first, in one writev with ours.
  if (waiting_writable_ || queue_.empty()) return;
  queue_.gather(iov_);
  IoResult r = stream_->try_write(iov_);
  if (r.state == IoState::ok) {
    counters_->writev_calls.fetch_add(1, std::memory_order_relaxed);
    if (direct) counters_->direct_writes.fetch_add(1, std::memory_order_relaxed);
    counters_->bytes_out.fetch_add(r.bytes, std::memory_order_relaxed);
    counters_->frames_out.fetch_add(consumed_locked(r.bytes), std::memory_order_relaxed);
  }
  // The rest (a partial write, EAGAIN) or an error goes to the I/O thread: it arms the writable
  // wait, or fails the connection, as its own flush would.
  if (!queue_.empty()) schedule_flush_locked();
}

std::size_t Connection::consumed_locked(std::size_t bytes) {
  std::size_t frames = queue_.consume(bytes);
  written_.fetch_add(bytes, std::memory_order_relaxed);
  if (on_below_ && queue_.queued_bytes() <= notify_at_) {
    asio::post(io_, std::exchange(on_below_, nullptr));
  }
  return frames;
}

void Connection::notify_below(std::size_t bytes, std::function<void()> fn) {
  std::lock_guard lock(write_mutex_);
  if (!open_.load(std::memory_order_relaxed)) return;
  if (queue_.queued_bytes() <= bytes) {
    on_below_ = nullptr;
    asio::post(io_, std::move(fn));
    return;
  }
  notify_at_ = bytes;
  on_below_ = std::move(fn);
}

std::size_t Connection::queued_bytes() const {
  return queue_.queued_bytes();  // readable without the write mutex (batcher.h)
}

void Connection::schedule_flush_locked() {
  if (flush_scheduled_ || waiting_writable_) return;
  flush_scheduled_ = true;
  asio::post(io_, [self = shared_from_this()] { self->flush(); });
}

bool Connection::write_queue_locked(Status& error) {
  while (open_.load(std::memory_order_relaxed) && !queue_.empty()) {
    queue_.gather(iov_);
    IoResult r = stream_->try_write(iov_);
    if (r.state == IoState::would_block) {
      waiting_writable_ = true;
      // Armed under the mutex so that send_direct() sees the wait and queues behind it; the
      // handler never runs inside wait_writable().
      stream_->wait_writable([self = shared_from_this()](std::error_code ec) {
        {
          std::lock_guard lock(self->write_mutex_);
          self->waiting_writable_ = false;
        }
        if (!self->open_.load(std::memory_order_relaxed)) return;
        if (ec) {
          self->fail_writing(Status(Errc::io_error, "wait for write: " + ec.message()));
          return;
        }
        self->flush();
      });
      return true;
    }
    if (r.state != IoState::ok) {
      error = r.state == IoState::error ? r.error : Status(Errc::closed, "peer closed");
      return false;
    }
    counters_->writev_calls.fetch_add(1, std::memory_order_relaxed);
    counters_->bytes_out.fetch_add(r.bytes, std::memory_order_relaxed);
    counters_->frames_out.fetch_add(consumed_locked(r.bytes), std::memory_order_relaxed);
  }
  return true;
}

void Connection::flush() {
  Status error;
  bool done = false;
  {
    std::lock_guard lock(write_mutex_);
    flush_scheduled_ = false;
    if (waiting_writable_) return;  // the writable wait flushes when the socket has room
    if (!write_queue_locked(error)) {
      // fail() below closes; nothing more is written meanwhile (it holds the queue's frames).
    } else {
      done = closing_ && open_.load(std::memory_order_relaxed) && queue_.empty();
    }
  }
  if (!error.ok()) {
    fail_writing(std::move(error));
  } else if (done) {
    close();
  }
}

void Connection::close_gracefully(WireFrame last, std::chrono::milliseconds linger) {
  if (!open_.load(std::memory_order_relaxed)) return;
  reading_ = false;
  {
    std::lock_guard lock(write_mutex_);
    closing_ = true;
    queue_.push(std::move(last));
  }
  flush();
  if (!open_.load(std::memory_order_relaxed)) return;  // everything left at once
  linger_ = std::make_unique<asio::steady_timer>(io_, linger);
  linger_->async_wait([self = shared_from_this()](std::error_code ec) {
    if (!ec) self->close();  // the peer did not take it all in time
  });
}

void Connection::close_after(WireFrame last) {
  if (!open_.load(std::memory_order_relaxed)) return;
  {
    std::lock_guard lock(write_mutex_);
    queue_.push(std::move(last));
    // One attempt, no waiting: a peer that does not read does not get to delay its own eviction.
    queue_.gather(iov_);
    IoResult r = stream_->try_write(iov_);
    if (r.state == IoState::ok) {
      counters_->writev_calls.fetch_add(1, std::memory_order_relaxed);
      counters_->frames_out.fetch_add(consumed_locked(r.bytes), std::memory_order_relaxed);
    }
  }
  close();
}

void Connection::close() {
  {
    std::lock_guard lock(write_mutex_);
    if (!open_.load(std::memory_order_relaxed)) return;
    open_.store(false, std::memory_order_release);
    queue_.clear();
    on_below_ = nullptr;
    stream_->close();
  }
  reading_ = false;
  if (linger_) linger_->cancel();
  detach();
}

void Connection::fail_writing(Status why) {
  if (!open_.load(std::memory_order_relaxed)) return;
  // A write fails once the peer has closed its socket (EPIPE) or reset it. What the peer sent
  // before that is in our receive buffer already, and this thread may not have read it yet: the
  // flush can run before the readiness event that came with those bytes (a hub answering a
  // client that has just sent its last emits and GOAWAY and closed). It is read and delivered
  // now, before the stream closes, so that what the connection delivers does not depend on
  // which of the two this thread noticed first. One read turn, as for a readiness event: a
  // closed peer cannot have more in flight than its socket buffer, far less than a turn reads.
  // Also while reading is paused: the connection is ending, so these bytes arrive now or never.
  if (reading_ && on_frames_) {
    auto self = shared_from_this();  // on_frames_ may drop the owner's reference to us
    ReadTurn turn = read_turn();
    if (!turn.frames.empty()) on_frames_(turn.frames);
    if (!is_open()) return;  // the owner closed us while handling the batch
  }
  fail(std::move(why));
}

void Connection::fail(Status why) {
  if (!open_.load(std::memory_order_relaxed)) return;
  ClosedHandler handler = std::move(on_closed_);
  close();
  if (handler) {
    asio::post(io_, [handler = std::move(handler), why = std::move(why)] { handler(why); });
  }
}

}  // namespace switchboard
