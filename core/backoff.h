// Reconnect delays: exponential backoff with jitter.
//
// Attempt k (from 0) waits a uniformly random time in [d/2, d], where d = min(max, initial * 2^k).
// The random half keeps a crowd of clients from reconnecting in lock step after a hub restart;
// the fixed half keeps the growth honest. Not thread-safe; the client's I/O thread owns it.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace switchboard {

class Backoff {
 public:
  using ms = std::chrono::milliseconds;
  Backoff(ms initial, ms max, std::uint64_t seed = std::random_device{}())
      : initial_(initial), max_(max), rng_(seed) {}

  ms next() {
    ms d = ceiling();
    if (attempt_ < 63) ++attempt_;
    auto lo = d.count() / 2;
    std::uniform_int_distribution<std::int64_t> pick(lo, d.count());
    return ms(pick(rng_));
  }
  // The un-jittered delay of the next attempt.
  ms ceiling() const {
    auto d = initial_.count();
    for (unsigned i = 0; i < attempt_ && d < max_.count(); ++i) d *= 2;
    return ms(d < max_.count() ? d : max_.count());
  }
  void reset() { attempt_ = 0; }
  unsigned attempts() const { return attempt_; }

 private:
  ms initial_;
  ms max_;
  unsigned attempt_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace switchboard
