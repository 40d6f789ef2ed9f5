// A Port is one participant's door to the bus: either a Client (a socket to a hub in another
// process) or a LocalPort (the hub's own process, joined without a socket). The addon holds a
// Port and does not care which.
//
// Contract:
// - submit() may be called from any thread. It takes a whole batch (all frames of one
//   JavaScript turn) and returns without waiting for the I/O thread; frames leave in submission
//   order, also relative to the frames the port sends on its own (PONGs, re-subscriptions after
//   a reconnect, the offline queue). A port may write the batch on the calling thread when its
//   socket is idle (Client does: one nonblocking writev, the rest handed to the I/O thread), so
//   submit() can cost a system call but never blocks on the peer.
// - PortCallbacks run on the I/O thread, never concurrently with each other, and never inside
//   submit(). on_batch receives every envelope that arrived in one I/O turn; the callee owns the
//   vector's contents. A callback may call submit().
// - close() may be called from any thread except from inside a callback; when it returns no
//   callback is running and none will run again. Destroying a Port closes it.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

#include "envelope.h"
#include "status.h"

namespace switchboard {

enum class PortState : std::uint8_t {
  connecting,    // first connection attempt under way
  connected,     // welcomed by the hub: frames flow
  reconnecting,  // the connection dropped; retrying with backoff, emits wait in the offline queue
  closed,        // closed by the owner, or the hub refused us for good (see the Status)
};
std::string_view state_name(PortState state);

struct PortCallbacks {
  std::function<void(std::vector<Envelope>& batch)> on_batch;
  std::function<void(PortState state, const Status& why)> on_state;
  // Optional, I/O thread: asked after each on_batch. True means the consumer has fallen behind,
  // and the port stops reading from its socket until resume_reading() (a slow consumer is then
  // seen by the hub's high-water mark instead of growing this process's memory).
  std::function<bool()> backlogged;
  // Optional, any thread: bytes the consumer holds that it has not handled yet. The hub counts
  // them as queued for its in-process peer (flow control: a busy JavaScript thread is a slow
  // subscriber like any other).
  std::function<std::size_t()> backlog_bytes;
  // Optional, any thread: bytes the consumer has handled so far (its progress, for the hub's
  // stall detection of its in-process peer).
  std::function<std::uint64_t()> consumed_bytes;
  // Optional, I/O thread: what notify_drain() asked for; the port's outbound buffer is at or
  // below the mark it gave (or the connection dropped: what waits now is the offline queue).
  std::function<void()> on_drain;
};

// What a port can say about itself; readable from any thread.
struct PortStats {
  std::uint64_t connects = 0;        // successful handshakes
  std::uint64_t attempts = 0;        // connection attempts, successful or not
  std::uint64_t offline_queued = 0;  // frames waiting for a connection now
  std::uint64_t in_flight = 0;       // invokes sent and not answered
  std::uint64_t frames_in = 0;
  std::uint64_t frames_out = 0;
  std::uint64_t writev_calls = 0;
  std::uint64_t direct_writes = 0;  // of writev_calls: made on the thread that called submit()
  PortState state = PortState::connecting;
};

class Port {
 public:
  virtual ~Port() = default;
  virtual Status submit(std::vector<Envelope> batch) = 0;
  virtual void close() = 0;
  // The id the hub assigned (0 until welcomed).
  virtual std::uint64_t peer_id() const = 0;
  // Any thread: the consumer has caught up (see PortCallbacks::backlogged). Reading resumes
  // unless the consumer is backlogged again by the time the I/O thread looks.
  virtual void resume_reading() {}
  // Any thread: bytes submitted and not yet handed on (written to the socket, or routed by the
  // hub for its in-process peer). Flow control: a hub that stops reading from this process makes
  // this grow, and JavaScript's emit() returns false.
  virtual std::size_t outbound_bytes() const { return 0; }
  // Any thread: PortCallbacks::on_drain runs once when outbound_bytes() <= `below` (at once,
  // posted, when it is so already). A later call replaces one that has not fired.
  virtual void notify_drain(std::size_t below) { (void)below; }
  virtual PortStats stats() const = 0;
};

}  // namespace switchboard
