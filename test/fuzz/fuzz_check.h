// The harnesses' assertion: a broken invariant prints what broke and aborts, which libFuzzer (and
// the replay driver, through the abort) reports as a crash with the input saved. Not assert():
// it must stay on in release builds.
#pragma once

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond, what)                                                                     \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      std::fprintf(stderr, "%s:%d: invariant broken: %s (%s)\n", __FILE__, __LINE__, what, #cond); \
      std::abort();                                                                                \
    }                                                                                              \
  } while (false)
