// The client: connects to a hub, completes the handshake, and keeps the connection alive.
//
// Contract (on top of Port's, port.h):
// - Reconnects with Backoff (default 100 ms doubling to a 5 s cap, jittered) and never gives up
//   unless `max_attempts` says so or the hub refuses us for good (wrong token, wrong version).
// - After every reconnect it first re-sends the subscriptions and handler registrations that were
//   in force, then what was submitted while offline, in order. All of it is written to the socket
//   (as much as the socket takes; the rest is queued ahead of anything later) before on_state
//   reports connected.
// - While not connected, submitted frames wait in a bounded offline queue (`offline_max_frames`,
//   `offline_max_bytes`). A batch that would overflow it is refused whole by submit() with
//   E_OFFLINE_QUEUE_FULL: loud, never silent. Replies (RESULT/ERROR) and PINGs are not queued:
//   the hub already failed the invokes they answered.
// - When the connection drops, every INVOKE sent on it and not yet answered is answered locally
//   with an ERROR E_CONNECTION_LOST (flag kFlagFromHub) through on_batch, exactly once; this
//   includes invokes the calling thread wrote directly (below) and those still queued on the
//   dropped connection.
// - Direct writes: while connected, a submit() that finds nothing of this client's waiting to be
//   sent (its inbox empty, no drain scheduled) writes the batch on the calling thread with one
//   nonblocking writev, under the client's mutex (Connection::send_direct); what does not fit is
//   queued on the connection and the I/O thread finishes it. Anything else (offline, frames
//   queued ahead, a frame over the hub's limit) takes the queued way through the I/O thread.
// - close() sends what was submitted before it (and a GOAWAY) within a 1 s linger; nothing is
//   written after it returns.
// - Flow control: outbound_bytes() is what the connection holds unwritten while connected (a hub
//   that stops reading from us makes it grow); offline, what waits is the offline queue, bounded
//   on its own, and it counts 0. notify_drain()'s on_drain also fires when the connection drops.
// - on_state reports connecting -> connected -> reconnecting -> connected ... -> closed.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "frame.h"
#include "port.h"

namespace switchboard {

struct ClientOptions {
  std::string endpoint;
  std::string token;
  std::string role = "node";
  std::string name;
  std::uint64_t pid = static_cast<std::uint64_t>(::getpid());
  std::chrono::milliseconds backoff_initial{100};
  std::chrono::milliseconds backoff_max{5000};
  int max_attempts = -1;  // consecutive failed attempts before giving up; -1: never
  std::chrono::milliseconds handshake_timeout{2000};
  std::size_t max_frame = kDefaultMaxFrame;
  std::size_t offline_max_frames = 10000;
  std::size_t offline_max_bytes = 8u << 20;
};

class Client final : public Port {
 public:
  Client(ClientOptions options, PortCallbacks callbacks);
  ~Client() override;

  // Starts the I/O thread and the first connection attempt; returns at once.
  Status start();
  Status submit(std::vector<Envelope> batch) override;
  void resume_reading() override;
  std::size_t outbound_bytes() const override;
  void notify_drain(std::size_t below) override;
  void close() override;
  std::uint64_t peer_id() const override;
  PortStats stats() const override;

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace switchboard
