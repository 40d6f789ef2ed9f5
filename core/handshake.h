// The payloads of the handshake (HELLO, WELCOME) and of hub-raised errors and GOAWAY, plus the
// token helpers.
//
// Contract: pure functions, thread-safe, no exceptions escape. Decoders run on bytes from
// unauthenticated peers, so they use explicit msgpack unpack limits (small maps, short strings,
// depth 2) on top of the 4 KiB pre-handshake frame limit.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "bytes.h"
#include "status.h"

namespace switchboard {

struct Hello {
  std::uint32_t protocol = 0;
  std::string token;
  std::string role;  // free-form: "main", "preload", "utility", "worker", "node", "next"...
  std::string name;
  std::uint64_t pid = 0;
};

struct Welcome {
  std::uint32_t protocol = 0;
  std::uint64_t peer_id = 0;
  std::uint64_t hub_pid = 0;
  std::string hub_name;
  std::uint64_t max_frame = 0;
};

// The payload of a PEER frame: who joined or left. The hub sends every admitted peer the peers
// already present right after WELCOME, then one PEER per join and leave.
struct PeerInfo {
  std::uint64_t id = 0;
  std::string role;
  std::string name;
  std::uint64_t pid = 0;
  bool up = true;
  // A page attached through the hub's process: its frame's origin and its window (Electron's
  // webContents id). Sent only when set.
  std::string origin = {};
  std::uint64_t window = 0;
};

Slice encode_hello(const Hello& hello);
Status decode_hello(const Slice& payload, Hello& out);
Slice encode_welcome(const Welcome& welcome);
Status decode_welcome(const Slice& payload, Welcome& out);
Slice encode_peer_info(const PeerInfo& info);
Status decode_peer_info(const Slice& payload, PeerInfo& out);

// The payload of a DROPPED frame: what the hub dropped for a peer while it was stalled (flow
// control, policy drop), sent once when the peer reads again. `topics` names at most
// kDroppedTopicsMax topics (the most recent ones to overflow it are counted in `count` only).
struct DroppedNotice {
  std::uint64_t count = 0;
  std::map<std::string, std::uint64_t> topics;
};
inline constexpr std::size_t kDroppedTopicsMax = 64;
Slice encode_dropped(const DroppedNotice& notice);
Status decode_dropped(const Slice& payload, DroppedNotice& out);

// Hub-raised ERROR and GOAWAY frames carry a msgpack str with a human-readable message.
Slice encode_message(std::string_view message);
// Returns the message, or a placeholder when the payload is not a msgpack str.
std::string decode_message(const Slice& payload);

// Compares in time that depends only on the lengths, never on where the inputs differ.
bool constant_time_equal(std::string_view a, std::string_view b);
// 32 random bytes from the kernel, hex-encoded (64 characters).
std::string random_token();

}  // namespace switchboard
