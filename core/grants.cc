#include "grants.h"

namespace switchboard {

bool granted(const std::vector<std::string>& patterns, std::string_view name) {
  const bool wide = !name.empty() && name.back() == '*';
  for (const std::string& p : patterns) {
    if (!p.empty() && p.back() == '*') {
      std::string_view prefix(p.data(), p.size() - 1);
      // A pattern name needs its own prefix inside the grant's: "job:*" is in "j*", not in
      // "job:a*".
      std::string_view body = wide ? name.substr(0, name.size() - 1) : name;
      if (body.starts_with(prefix)) return true;
    } else if (p == name) {
      return true;
    }
  }
  return false;
}

}  // namespace switchboard
