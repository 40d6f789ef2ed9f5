// What an untrusted peer (a page) may do on the bus: DESIGN.md, "Security". Each list holds exact
// names and prefix patterns ending in '*' ("job:*"; "*" alone is everything). A peer joined
// without grants (a socket peer that presented the token, the hub's own process) may do
// everything; a peer joined with grants may do only what they list, and the hub refuses the rest
// with E_FORBIDDEN before anything is routed.
//
// Contract: pure, thread-safe values.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace switchboard {

struct Grants {
  std::vector<std::string> emit;       // topics it may emit
  std::vector<std::string> subscribe;  // topics (and patterns) it may listen to
  std::vector<std::string> invoke;     // handler names it may call
  std::vector<std::string> handle;     // handler names it may serve
};

// True when `name` is covered by one of `patterns`. A name that is itself a pattern ("job:*",
// as a subscription may be) is covered only by a pattern at least as wide ("job:*", "j*", "*").
bool granted(const std::vector<std::string>& patterns, std::string_view name);

}  // namespace switchboard
