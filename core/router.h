// Who gets what: the subscriptions (exact topics and prefix patterns) and the handler registry.
//
// Contract: plain data, not thread-safe; the hub's I/O thread owns it. Peers are named by id.
// A topic pattern is a prefix followed by one trailing '*': "job:*" matches every topic that
// starts with "job:", and "*" matches every topic. '*' anywhere else is refused.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "status.h"

namespace switchboard {

using PeerId = std::uint64_t;

class Router {
 public:
  // Validates a topic or pattern: non-empty, '*' only as the last character.
  static Status check_subscription(std::string_view topic);
  static bool is_pattern(std::string_view topic) { return !topic.empty() && topic.back() == '*'; }

  // Both return false when nothing changed (already subscribed / not subscribed).
  bool subscribe(PeerId peer, std::string_view topic_or_pattern);
  bool unsubscribe(PeerId peer, std::string_view topic_or_pattern);

  // Replaces `out` with every peer subscribed to `topic`, exact or by pattern, each once.
  void subscribers(std::string_view topic, std::vector<PeerId>& out) const;

  Status register_handler(PeerId peer, std::string_view name);
  bool unregister_handler(PeerId peer, std::string_view name);
  std::optional<PeerId> handler_of(std::string_view name) const;

  // Forgets every subscription and handler of `peer`.
  void remove_peer(PeerId peer);

  std::size_t subscription_count() const { return subscription_count_; }
  std::size_t subscriptions_of(PeerId peer) const;
  bool is_subscribed(PeerId peer, std::string_view topic_or_pattern) const;
  std::size_t handlers_of(PeerId peer) const;
  std::size_t handler_count() const { return handlers_.size(); }

 private:
  struct PeerEntry {
    std::unordered_set<std::string> topics;  // exact and patterns, as given
    std::unordered_set<std::string> handlers;
  };
  std::unordered_map<std::string, std::vector<PeerId>> exact_;
  // Pattern prefix (without '*') -> peers. Ordered so a lookup can skip prefixes that cannot match.
  std::map<std::string, std::vector<PeerId>, std::less<>> patterns_;
  std::unordered_map<std::string, PeerId> handlers_;
  std::unordered_map<PeerId, PeerEntry> peers_;
  std::size_t subscription_count_ = 0;
};

}  // namespace switchboard
