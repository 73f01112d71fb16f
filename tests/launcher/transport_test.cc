// The `auto` transport's remembered verdict: in force for the remote-ip cache time, then expired
// for sessions and for `mconnect status` alike (launcher/transport.h).
#include <ctime>
#include <fstream>

#include <gtest/gtest.h>

#include "launcher/transport.h"
#include "tests/support/lab.h"

namespace mconnect::launcher {
namespace {

using namespace std::chrono_literals;

TEST(TransportVerdict, ExpiresAfterTheTtlForSessionsAndStatusAlike) {
  testing::TempDir dir;
  const std::string path = dir.Sub("lab.transport");
  const std::string key = "203.0.113.1/192.0.2.2";
  RememberVerdict(path, key, {Transport::kSsh, "no answer over UDP from 203.0.113.1:60001"});
  auto fresh = ReadVerdict(path);
  ASSERT_TRUE(fresh);
  EXPECT_TRUE(VerdictCurrent(*fresh, 300s));
  EXPECT_TRUE(RecallVerdict(path, key, 300s));

  // Written 10 minutes ago: past a 300 s cache time, and the same for both.
  std::ofstream(path) << key << " ssh " << std::time(nullptr) - 600 << " no answer over UDP\n";
  auto old = ReadVerdict(path);
  ASSERT_TRUE(old);
  EXPECT_GE(old->age, 600s);
  EXPECT_FALSE(VerdictCurrent(*old, 300s));
  EXPECT_FALSE(RecallVerdict(path, key, 300s));
  EXPECT_TRUE(VerdictCurrent(*old, 3600s));
  EXPECT_TRUE(RecallVerdict(path, key, 3600s));

  // From the future (a clock set back): in force for nobody.
  std::ofstream(path) << key << " udp " << std::time(nullptr) + 600 << " answered\n";
  auto future = ReadVerdict(path);
  ASSERT_TRUE(future);
  EXPECT_FALSE(VerdictCurrent(*future, 3600s));
}

}  // namespace
}  // namespace mconnect::launcher
