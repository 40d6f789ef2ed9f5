#include "router.h"

#include <algorithm>

namespace switchboard {
namespace {

void erase_peer(std::vector<PeerId>& peers, PeerId peer) {
  peers.erase(std::remove(peers.begin(), peers.end(), peer), peers.end());
}

}  // namespace

Status Router::check_subscription(std::string_view topic) {
  if (topic.empty()) return Status(Errc::invalid_argument, "topic must not be empty");
  auto star = topic.find('*');
  if (star != std::string_view::npos && star != topic.size() - 1) {
    return Status(Errc::invalid_argument,
                  "'*' may only end a pattern (as in 'job:*'), got '" + std::string(topic) + "'");
  }
  return {};
}

bool Router::subscribe(PeerId peer, std::string_view topic) {
  auto [it, inserted] = peers_[peer].topics.emplace(topic);
  if (!inserted) return false;
  if (is_pattern(topic)) {
    std::string prefix(topic.substr(0, topic.size() - 1));
    patterns_[prefix].push_back(peer);
  } else {
    exact_[std::string(topic)].push_back(peer);
  }
  ++subscription_count_;
  return true;
}

bool Router::unsubscribe(PeerId peer, std::string_view topic) {
  auto p = peers_.find(peer);
  if (p == peers_.end()) return false;
  auto t = p->second.topics.find(std::string(topic));
  if (t == p->second.topics.end()) return false;
  p->second.topics.erase(t);
  if (is_pattern(topic)) {
    auto it = patterns_.find(topic.substr(0, topic.size() - 1));
    if (it != patterns_.end()) {
      erase_peer(it->second, peer);
      if (it->second.empty()) patterns_.erase(it);
    }
  } else {
    auto it = exact_.find(std::string(topic));
    if (it != exact_.end()) {
      erase_peer(it->second, peer);
      if (it->second.empty()) exact_.erase(it);
    }
  }
  --subscription_count_;
  return true;
}

void Router::subscribers(std::string_view topic, std::vector<PeerId>& out) const {
  out.clear();
  if (auto it = exact_.find(std::string(topic)); it != exact_.end()) {
    out.insert(out.end(), it->second.begin(), it->second.end());
  }
  bool from_patterns = false;
  // Every matching prefix p satisfies p <= topic; walk the candidates up to topic.
  for (auto it = patterns_.begin(); it != patterns_.end() && it->first <= topic; ++it) {
    if (topic.starts_with(it->first)) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      from_patterns = true;
    }
  }
  if (from_patterns) {
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
  }
}

Status Router::register_handler(PeerId peer, std::string_view name) {
  if (name.empty()) return Status(Errc::invalid_argument, "handler name must not be empty");
  auto [it, inserted] = handlers_.emplace(std::string(name), peer);
  if (!inserted && it->second != peer) {
    return Status(Errc::already_registered, "handler '" + std::string(name) +
                                                "' is already served by peer " +
                                                std::to_string(it->second));
  }
  peers_[peer].handlers.emplace(name);
  return {};
}

bool Router::unregister_handler(PeerId peer, std::string_view name) {
  auto it = handlers_.find(std::string(name));
  if (it == handlers_.end() || it->second != peer) return false;
  handlers_.erase(it);
  peers_[peer].handlers.erase(std::string(name));
  return true;
}

std::optional<PeerId> Router::handler_of(std::string_view name) const {
  auto it = handlers_.find(std::string(name));
  if (it == handlers_.end()) return std::nullopt;
  return it->second;
}

void Router::remove_peer(PeerId peer) {
  auto p = peers_.find(peer);
  if (p == peers_.end()) return;
  std::vector<std::string> topics(p->second.topics.begin(), p->second.topics.end());
  for (const auto& t : topics) unsubscribe(peer, t);
  for (const auto& h : p->second.handlers) {
    auto it = handlers_.find(h);
    if (it != handlers_.end() && it->second == peer) handlers_.erase(it);
  }
  peers_.erase(peer);
}

std::size_t Router::subscriptions_of(PeerId peer) const {
  auto p = peers_.find(peer);
  return p == peers_.end() ? 0 : p->second.topics.size();
}

bool Router::is_subscribed(PeerId peer, std::string_view topic_or_pattern) const {
  auto p = peers_.find(peer);
  return p != peers_.end() && p->second.topics.contains(std::string(topic_or_pattern));
}

std::size_t Router::handlers_of(PeerId peer) const {
  auto p = peers_.find(peer);
  return p == peers_.end() ? 0 : p->second.handlers.size();
}

}  // namespace switchboard
