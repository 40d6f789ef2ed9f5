// A framed, batched connection over one Stream: the piece the hub's socket peers and the client
// share.
//
// Contract:
// - Created and used on one I/O thread, with three exceptions: send_direct(), push() and
//   flush_now() may be called from any thread (a client's JavaScript thread writes its own
//   batches while the socket is idle), as may is_open() and queued_bytes(). The outbound queue
//   and every write to or close of the stream are guarded by one mutex (write_mutex_) that the
//   I/O thread's flush shares with them; reading, the handlers, the timers and every state change
//   (close, fail) stay on the I/O thread. Owned through shared_ptr because pending waits keep it
//   alive until they have run.
// - on_frames receives every frame decoded from one readiness event in one call (one batch), in
//   arrival order, each a Slice that starts at its length prefix (frame.h). A write that fails
//   (the peer closed or reset its socket) first reads and delivers what the peer sent before it
//   went, in one more such call, and then closes: whether the write or the read notices the end
//   first, nothing the peer sent before it left is lost (unless reading had stopped already).
// - on_closed runs at most once, posted (never from inside send() or on_frames), and only for
//   closes the connection detects itself: end of stream, an I/O error, or a bad frame. A close
//   the owner asks for with close() or close_after() is not reported back. After a bad frame
//   (frame_too_large, protocol_error) reading stops but the stream stays open, so the owner can
//   still send its reason with close_after(); after EOF or an I/O error it is closed.
// - send() queues a frame and schedules a flush at the end of the current I/O turn, so every
//   frame queued in one turn leaves in one writev; an idle connection is never held back by a
//   timer. After close(), send() and send_direct() drop frames silently.
// - send_direct() queues its frames and writes the queue at once, from its front, with one
//   nonblocking writev on the calling thread, unless the socket is known to be full (a writable
//   wait is armed). Whatever a partial write or EAGAIN leaves over, the I/O thread finishes (a
//   flush is posted; it arms the writable wait or reports the error). The queue is the one order:
//   frames leave in the order send(), push() and send_direct() queued them, whichever thread
//   called them and whichever thread writes. A write error seen off the I/O thread is left to
//   that flush, so only the I/O thread closes. push() + flush_now() are send_direct() in two
//   steps, for a caller that queues frames for several connections and writes each once.
#pragma once

#include <asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "batcher.h"
#include "bytes.h"
#include "envelope.h"
#include "frame.h"
#include "status.h"
#include "transport.h"

namespace switchboard {

// Counters readable from any thread.
struct ConnectionCounters {
  std::atomic<std::uint64_t> frames_in{0};
  std::atomic<std::uint64_t> frames_out{0};
  std::atomic<std::uint64_t> bytes_in{0};
  std::atomic<std::uint64_t> bytes_out{0};
  std::atomic<std::uint64_t> writev_calls{0};
  std::atomic<std::uint64_t> direct_writes{0};  // of writev_calls: made by send_direct()'s caller
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  using FramesHandler = std::function<void(std::vector<Slice>& frames)>;
  using ClosedHandler = std::function<void(const Status& why)>;

  Connection(asio::io_context& io, std::unique_ptr<Stream> stream, std::size_t max_frame,
             ConnectionCounters* counters = nullptr);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // Begins reading. Handlers may be replaced later (e.g. when the hub admits a peer).
  void start(FramesHandler on_frames, ClosedHandler on_closed);
  // Drops both handlers: nothing is reported after this.
  void detach();

  void send(WireFrame frame);
  // Any thread: see the contract above. Takes the frames' buffers (no copy).
  void send_direct(std::vector<WireFrame>& frames);
  void push(WireFrame frame);
  void flush_now();
  // I/O thread: writes what is queued now instead of at the end of the turn, as flush_now() does
  // on other threads (but not counted as a direct write). For an owner that must have its frames
  // in the socket before it tells anyone they were sent. Safe inside on_frames: what the socket
  // does not take, and a write error, are left to the flush posted for the end of the turn.
  void write_queued();
  // Writes `last` (best effort, without waiting) after what is queued, then closes.
  void close_after(WireFrame last);
  // Queues `last`, keeps writing until everything queued has left or `linger` has passed, then
  // closes. Stops reading at once. For an orderly goodbye that loses nothing sent before it.
  void close_gracefully(WireFrame last, std::chrono::milliseconds linger);
  void close();

  // Stops reading until resume_reading(), for a consumer that has fallen behind: the bytes wait
  // in the kernel, and the sender's own flow control (the hub's high-water mark) takes over.
  // Takes effect from the next readiness event.
  void pause_reading() { paused_ = true; }
  void resume_reading();

  // Any thread: runs `fn` once, posted to the I/O thread, as soon as no more than `bytes` are
  // queued (at once if that is so already). For flow control: the hub resumes the publishers
  // that wait for this connection, a client tells JavaScript its buffer has drained. A later call
  // replaces an earlier one that has not fired; close() drops it unfired.
  void notify_below(std::size_t bytes, std::function<void()> fn);
  // Any thread: bytes written to the stream so far (progress, for the hub's stall detection).
  std::uint64_t bytes_written() const { return written_.load(std::memory_order_relaxed); }

  bool is_open() const { return open_.load(std::memory_order_acquire); }
  bool is_reading() const { return reading_; }
  std::size_t queued_bytes() const;
  void set_max_frame(std::size_t max_frame) { decoder_.set_max_frame(max_frame); }
  PeerCredentials credentials() const { return stream_->credentials(); }
  // Memory held for a partly received frame (for the hard-limit tests).
  std::size_t receive_reserved() const { return decoder_.reserved(); }
  // Bytes of a partly received frame held now.
  std::size_t receive_buffered() const { return decoder_.buffered(); }

 private:
  // What one readiness event reads: the complete frames, and how reading stopped.
  struct ReadTurn {
    std::vector<Slice> frames;
    Status bad;          // an I/O error or a bad frame
    bool ended = false;  // end of stream
  };
  void arm_read();
  // Reads until the socket is empty, at most kReadsPerTurn times.
  ReadTurn read_turn();
  void on_readable();
  // The *_locked members require write_mutex_.
  void schedule_flush_locked();
  // `direct`: counted in ConnectionCounters::direct_writes (a caller off the I/O thread).
  void write_now_locked(bool direct);
  // Writes queued frames until the queue is empty or the socket would block; true when nothing
  // went wrong (`error` is set otherwise).
  bool write_queue_locked(Status& error);
  // Counts `bytes` written and fires notify_below()'s callback if the queue is short enough now.
  std::size_t consumed_locked(std::size_t bytes);
  void flush();
  // A write failed: delivers what the peer sent before it went, then fail(why).
  void fail_writing(Status why);
  void fail(Status why);

  asio::io_context& io_;
  std::unique_ptr<Stream> stream_;
  ConnectionCounters* counters_;

  mutable std::mutex write_mutex_;  // guards the members up to the blank line, and stream writes
  Batcher queue_;
  std::vector<IoVec> iov_;
  bool closing_ = false;  // close once the queue is empty
  bool flush_scheduled_ = false;
  bool waiting_writable_ = false;
  std::size_t notify_at_ = 0;
  std::function<void()> on_below_;  // notify_below()'s, until it fires
  std::atomic<std::uint64_t> written_{0};
  // Changed under write_mutex_ on the I/O thread only; read anywhere.
  std::atomic<bool> open_{true};

  // I/O thread only.
  FrameDecoder decoder_;
  Buffer read_buffer_;
  FramesHandler on_frames_;
  ClosedHandler on_closed_;
  bool reading_ = true;
  std::unique_ptr<asio::steady_timer> linger_;
  bool paused_ = false;
  bool read_armed_ = false;
};

}  // namespace switchboard
