// Tests for core/backoff.h: exponential reconnect delays with half jitter.
#include "backoff.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <vector>

namespace switchboard {
namespace {

using std::chrono::milliseconds;
constexpr milliseconds kInitial{100};
constexpr milliseconds kMax{5000};

// d = min(max, initial * 2^k), computed without overflow.
std::int64_t ceiling_of(unsigned k) {
  std::int64_t d = kInitial.count();
  for (unsigned i = 0; i < k && d < kMax.count(); ++i) d *= 2;
  return std::min(d, kMax.count());
}

std::vector<std::int64_t> delays(std::uint64_t seed, int n) {
  Backoff b(kInitial, kMax, seed);
  std::vector<std::int64_t> out;
  for (int i = 0; i < n; ++i) out.push_back(b.next().count());
  return out;
}

TEST(Backoff, DelaysLieBetweenHalfAndFullCeilingForTwentyAttempts) {
  Backoff b(kInitial, kMax, 42);
  const std::array<std::int64_t, 8> expected_ceilings = {100,  200,  400,  800,
                                                         1600, 3200, 5000, 5000};
  for (unsigned k = 0; k < 20; ++k) {
    const std::int64_t d = ceiling_of(k);
    if (k < expected_ceilings.size()) {
      EXPECT_EQ(d, expected_ceilings[k]);
    }
    EXPECT_EQ(b.attempts(), k);
    EXPECT_EQ(b.ceiling().count(), d) << "attempt " << k;
    const std::int64_t got = b.next().count();
    EXPECT_GE(got, d / 2) << "attempt " << k;
    EXPECT_LE(got, d) << "attempt " << k;
  }
  // The cap is reached at attempt 6 and held.
  EXPECT_EQ(b.ceiling(), kMax);
}

TEST(Backoff, CeilingStaysAtTheCapForManyAttempts) {
  Backoff b(kInitial, kMax, 1);
  for (int i = 0; i < 200; ++i) {
    const std::int64_t got = b.next().count();
    if (i >= 6) {
      EXPECT_GE(got, kMax.count() / 2) << "attempt " << i;
      EXPECT_LE(got, kMax.count()) << "attempt " << i;
    }
  }
  EXPECT_EQ(b.ceiling(), kMax);
}

TEST(Backoff, ResetReturnsToTheInitialDelay) {
  Backoff b(kInitial, kMax, 7);
  for (int i = 0; i < 10; ++i) b.next();
  ASSERT_EQ(b.ceiling(), kMax);
  b.reset();
  EXPECT_EQ(b.attempts(), 0u);
  EXPECT_EQ(b.ceiling(), kInitial);
  const std::int64_t first = b.next().count();
  EXPECT_GE(first, 50);
  EXPECT_LE(first, 100);
  EXPECT_EQ(b.ceiling(), milliseconds(200));
}

TEST(Backoff, SameSeedGivesTheSameSequence) {
  EXPECT_EQ(delays(123, 20), delays(123, 20));
}

TEST(Backoff, DifferentSeedsGiveDifferentSequences) {
  EXPECT_NE(delays(1, 20), delays(2, 20));
  EXPECT_NE(delays(3, 20), delays(4, 20));
}

TEST(Backoff, JitterSpreadsAcrossTheUpperHalfAtTheCap) {
  Backoff b(kInitial, kMax, 2024);
  for (int i = 0; i < 10; ++i) b.next();
  ASSERT_EQ(b.ceiling(), kMax);
  std::int64_t lo = kMax.count();
  std::int64_t hi = 0;
  std::array<int, 5> buckets{};  // 2500..3000, ..., 4500..5000
  for (int i = 0; i < 1000; ++i) {
    const std::int64_t d = b.next().count();
    ASSERT_GE(d, 2500);
    ASSERT_LE(d, 5000);
    lo = std::min(lo, d);
    hi = std::max(hi, d);
    ++buckets[static_cast<std::size_t>(std::min<std::int64_t>((d - 2500) / 500, 4))];
  }
  EXPECT_LE(lo, 2600);
  EXPECT_GE(hi, 4900);
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    // Uniform would put ~200 in each; 100 leaves room for chance while catching a skew.
    EXPECT_GE(buckets[i], 100) << "bucket " << i;
  }
}

TEST(Backoff, CapBelowInitialHoldsFromTheFirstAttempt) {
  Backoff b(milliseconds(1000), milliseconds(300), 5);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(b.ceiling(), milliseconds(300));
    const std::int64_t got = b.next().count();
    EXPECT_GE(got, 150);
    EXPECT_LE(got, 300);
  }
}

}  // namespace
}  // namespace switchboard
