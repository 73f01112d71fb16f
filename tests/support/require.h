// What a test needs from the machine (root, a program) and does not find: under CI=true the
// test fails, since a suite that passes what it did not run proves nothing; elsewhere (a
// developer's unprivileged checkout) it is skipped with the reason. A macro: GTEST_SKIP and FAIL
// return from the test body.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <string_view>

#include <gtest/gtest.h>

namespace mconnect::testing {

inline bool UnderCi() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string_view(ci) == "true";
}

}  // namespace mconnect::testing

#define MCONNECT_REQUIRE(condition, why)                                       \
  do {                                                                         \
    if (!(condition)) {                                                        \
      if (::mconnect::testing::UnderCi()) FAIL() << "cannot run (CI): " << why; \
      GTEST_SKIP() << why;                                                     \
    }                                                                          \
  } while (false)

#define MCONNECT_REQUIRE_ROOT(why) MCONNECT_REQUIRE(::geteuid() == 0, "needs root " << why)
