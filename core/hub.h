// The hub: listens on a private endpoint, admits peers that present the token, and routes
// events to subscribers and invokes to the peer that registered the handler.
//
// Contract:
// - start(), close(), stats(), peer_stats(), connect_local(), accept_peers() and the accessors may
//   be called from any thread other than the hub's I/O thread (peer_stats() and connect_local()
//   wait for it).
//   The routing state is guarded by one mutex that the I/O thread holds while it handles a
//   batch, a timer or a connection event. The local port's submit() takes it to route its batch
//   on the calling thread and writes the frames this sends to socket peers itself (one writev
//   per connection, the rest left to the I/O thread), unless an earlier batch of that port still
//   waits for the I/O thread. Everything else stays on the I/O thread: accepting, reading,
//   closing connections and removing peers (a removal decided while routing on another thread
//   is carried out by the I/O thread), timers, and every callback (PortCallbacks of the local
//   port, on_peer).
// - The hub reads only envelopes. Payload bytes pass through untouched, and one inbound payload
//   is shared, not copied, by every subscriber's queue.
// - Identity (the `sender` field of every routed frame) is the peer id the hub assigned at
//   accept; whatever a peer writes there is overwritten.
// - Every invoke the hub forwards ends exactly once for its caller: the callee's RESULT or
//   ERROR, E_NO_HANDLER at once when nobody serves the name, or E_CONNECTION_LOST the moment the
//   callee's connection ends.
// - Flow control ("Flow control" in hub.cc): a live subscriber loses nothing. An event or invoke
//   that would take a receiver's queue over high_water_mark is not routed: the publisher's
//   frames wait in order (parked) and the hub stops reading from it until every receiver it waits
//   for is at or below low_water_mark. A receiver that makes no progress for stall_timeout while
//   over its mark is stalled: by `overflow`, events for it are dropped and counted (it gets one
//   DROPPED notice when it drains) or it is disconnected (never the hub's own process: the drop
//   policy applies to it). Replies (RESULT, ERROR), acks and pings are never held back or
//   dropped.
// - A socket peer that stops answering PINGs (HubOptions::ping_interval, ping_misses) is declared
//   dead and removed as if its connection had ended.
// - If the socket file is deleted while the hub runs, the hub binds a new one at the same path
//   (HubOptions::endpoint_check_interval); a file someone else put there is left alone.
// - close() sends GOAWAY to every peer, closes the listener (removing the socket file only if it
//   is still ours) and joins the I/O thread. It is idempotent; the destructor calls it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "frame.h"
#include "grants.h"
#include "port.h"
#include "status.h"

namespace switchboard {

enum class OverflowPolicy : std::uint8_t { drop, disconnect };

// A change in the hub's membership, reported through HubOptions::on_peer on the I/O thread.
struct PeerEvent {
  enum class Type : std::uint8_t {
    joined,    // completed the handshake (or joined locally)
    left,      // an admitted peer went away; `reason` says why
    rejected,  // closed before completing the handshake; `reason` says why
  };
  Type type = Type::joined;
  std::uint64_t id = 0;
  std::string role;
  std::string name;
  std::uint64_t pid = 0;
  Status reason;
};

struct HubOptions {
  std::string endpoint;  // empty: default_endpoint(name)
  std::string token;     // empty: a fresh random token
  std::string name = "hub";
  std::size_t max_frame = kDefaultMaxFrame;
  std::size_t handshake_max_frame = kHandshakeMaxFrame;  // clamped to max_frame
  std::chrono::milliseconds handshake_timeout{2000};
  std::size_t high_water_mark = 8u << 20;  // outbound bytes queued per peer
  std::size_t low_water_mark = 0;          // publishers resume at or below it; 0: half the high
  // A receiver over its mark that takes no byte for this long is stalled; `overflow` applies.
  std::chrono::milliseconds stall_timeout{2000};
  // What happens to a stalled receiver. The hub's own process (connect_local) is never
  // disconnected, whatever this says: a local port has no connection to lose and never
  // reconnects, so it is treated as under `drop`.
  OverflowPolicy overflow = OverflowPolicy::drop;
  std::size_t max_topic = 1024;
  // Liveness: every ping_interval the hub sends each socket peer a PING. A peer from which
  // nothing at all (PONG or any other frame) arrives for ping_misses intervals in a row is
  // declared dead: it is disconnected and the invokes it was serving fail for their callers
  // with E_CONNECTION_LOST. Detection takes between misses and misses + 1 intervals after the
  // peer's last frame (10 to 15 s by default). Zero disables pings.
  std::chrono::milliseconds ping_interval{5000};
  int ping_misses = 2;
  // How often the hub checks that its socket file still exists, and binds a new one at the same
  // path if it was deleted (connections already open are unaffected). Zero disables the check.
  std::chrono::milliseconds endpoint_check_interval{1000};
  // Whether start() begins accepting connections. When false, start() binds and listens, but a
  // connecting peer waits in the socket's backlog until accept_peers(): the owner joins with
  // connect_local() and submits its subscriptions and handlers first, so that no peer can send
  // before they are in force (a restarted hub's clients are already knocking; what they queued
  // while it was down would otherwise find nobody there). The addon defers to the end of the
  // JavaScript turn that created the hub.
  bool accept_at_start = true;
  // Per-peer and per-hub bounds on what peers can make the hub hold (docs/SECURITY.md). A request
  // beyond a per-peer limit is answered with E_LIMIT; a connection beyond a connection limit is
  // closed with GOAWAY E_LIMIT and reported as rejected.
  std::size_t max_subscriptions_per_peer = 512;     // exact topics and patterns
  std::size_t max_handlers_per_peer = 512;          // names a peer serves
  std::size_t max_pending_invokes_per_peer = 1024;  // invokes a caller waits on at once
  std::size_t max_connections = 256;                // socket connections, admitted or not
  std::size_t max_handshaking = 64;                 // connections that have not completed HELLO
  // Runs on the I/O thread for every join, leave and rejection; must not block or call close().
  std::function<void(const PeerEvent&)> on_peer;
};

struct HubStats {
  std::uint64_t peers = 0;        // admitted peers, socket and local
  std::uint64_t handshaking = 0;  // connections that have not completed HELLO
  std::uint64_t subscriptions = 0;
  std::uint64_t handlers = 0;
  std::uint64_t pending_invokes = 0;
  std::uint64_t events_routed = 0;   // event deliveries queued (one per subscriber)
  std::uint64_t events_dropped = 0;  // deliveries dropped for stalled peers (policy drop)
  std::uint64_t invokes_routed = 0;
  // Flow control.
  std::uint64_t paused = 0;             // publishers not read from now (waiting for a receiver)
  std::uint64_t parked_bytes = 0;       // their frames that wait in the hub
  std::uint64_t stalled = 0;            // receivers stalled now
  std::uint64_t pauses = 0;             // times a publisher was paused
  std::uint64_t stalls = 0;             // times a receiver was declared stalled
  std::uint64_t queued_bytes = 0;       // bytes queued for all peers now
  std::uint64_t peak_queued_bytes = 0;  // the most ever queued for one peer
  std::uint64_t frames_in = 0;
  std::uint64_t frames_out = 0;
  std::uint64_t writev_calls = 0;
  std::uint64_t direct_writes = 0;      // of writev_calls: made by a local port's submitting thread
  std::uint64_t rejected = 0;           // connections closed by the handshake or a protocol error
  std::uint64_t declared_dead = 0;      // peers removed for not answering PINGs
  std::uint64_t endpoint_restored = 0;  // times the socket file was re-created after deletion
};

// One connection as the hub sees it, for monitoring and the limit tests.
struct HubPeerStats {
  std::uint64_t id = 0;
  bool admitted = false;
  bool local = false;
  std::string role;
  std::string name;
  std::uint64_t queued_bytes = 0;      // outbound bytes waiting for the socket
  std::uint64_t receive_reserved = 0;  // memory held for a partly received frame
  std::uint64_t receive_buffered = 0;  // bytes of that frame received so far
  std::uint64_t events_dropped = 0;    // deliveries to this peer dropped while it was stalled
  std::uint64_t parked_bytes = 0;      // its frames the hub holds while it is paused
  bool paused = false;                 // the hub does not read from it now (flow control)
  bool stalled = false;
  std::uint64_t subscriptions = 0;
  std::uint64_t handlers = 0;
  std::uint64_t pending_invokes = 0;  // invokes this peer made that await a reply
};

struct LocalPeerInfo {
  std::string role = "main";
  std::string name;
  std::uint64_t pid = 0;  // 0: this process
  // Null: may do everything (the hub's own bus). Else only what these allow (a page attached
  // through the hub's process); the rest is refused with E_FORBIDDEN (grants.h).
  std::shared_ptr<const Grants> grants;
  // A page's frame origin and window (webContents id), announced to every peer with it.
  std::string origin = {};
  std::uint64_t window = 0;
};

class Hub {
 public:
  explicit Hub(HubOptions options);
  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;
  ~Hub();

  // Binds the endpoint and starts the I/O thread. Fails with endpoint_in_use when a live hub
  // holds the endpoint (nothing is removed), endpoint_unsafe when the directory fails the
  // checks, invalid_argument for a bad option.
  Status start();
  void close();

  const std::string& endpoint() const;
  const std::string& token() const;
  HubStats stats() const;
  // A snapshot of every connection, taken on the I/O thread (waits for it); empty once closed.
  std::vector<HubPeerStats> peer_stats() const;

  // Joins this process to its own hub without a socket. Requires start().
  std::unique_ptr<Port> connect_local(LocalPeerInfo info, PortCallbacks callbacks);
  // Begins accepting connections when start() did not (HubOptions::accept_at_start). Everything
  // a local port submitted before this call is routed before the first connection is accepted.
  // Any thread; idempotent; does nothing once the hub is closed.
  void accept_peers();

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace switchboard
