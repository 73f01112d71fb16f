#include "remote-ip/cache.h"

#include <gtest/gtest.h>

namespace mconnect::remoteip {
namespace {

using namespace std::chrono_literals;
using TimePoint = std::chrono::steady_clock::time_point;

const TimePoint kT0{std::chrono::hours(1000)};

TEST(Cache, ReturnsAnswerWithItsAge) {
  Cache cache(60s);
  cache.Put("command:curl -sS https://ipinfo.io/ip", "203.0.113.7", kT0);
  auto hit = cache.Get("command:curl -sS https://ipinfo.io/ip", kT0 + 1500ms);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->address, "203.0.113.7");
  EXPECT_EQ(hit->age, 1500ms);
}

TEST(Cache, KeysBySpec) {
  Cache cache(60s);
  cache.Put("dns", "192.0.2.1", kT0);
  EXPECT_FALSE(cache.Get("ssh-connection", kT0));
  EXPECT_TRUE(cache.Get("dns", kT0));
}

TEST(Cache, ExpiresAtTheTtl) {
  Cache cache(10s);
  cache.Put("dns", "192.0.2.1", kT0);
  EXPECT_TRUE(cache.Get("dns", kT0 + 9999ms));
  EXPECT_FALSE(cache.Get("dns", kT0 + 10s));
  EXPECT_FALSE(cache.Get("dns", kT0 + 1h));
}

TEST(Cache, PutReplacesAndRestartsTheClock) {
  Cache cache(10s);
  cache.Put("dns", "192.0.2.1", kT0);
  cache.Put("dns", "192.0.2.2", kT0 + 8s);
  auto hit = cache.Get("dns", kT0 + 12s);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->address, "192.0.2.2");
  EXPECT_EQ(hit->age, 4s);
}

TEST(Cache, ZeroTtlCachesNothing) {
  Cache cache(0s);
  cache.Put("dns", "192.0.2.1", kT0);
  EXPECT_FALSE(cache.Get("dns", kT0));
}

TEST(Cache, ClockGoingBackwardsGivesAgeZero) {
  Cache cache(10s);
  cache.Put("dns", "192.0.2.1", kT0);
  auto hit = cache.Get("dns", kT0 - 5s);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->age, 0ms);
}

TEST(Cache, EraseAndClear) {
  Cache cache(10s);
  cache.Put("dns", "192.0.2.1", kT0);
  cache.Put("ssh-connection", "10.0.0.5", kT0);
  cache.Erase("dns");
  EXPECT_FALSE(cache.Get("dns", kT0));
  EXPECT_TRUE(cache.Get("ssh-connection", kT0));
  cache.Erase("not there");
  cache.Clear();
  EXPECT_FALSE(cache.Get("ssh-connection", kT0));
}

TEST(Cache, NewestIsTheLastNotedAnswerEvenUncachedAndPastTheTtl) {
  Cache cache(0s);  // caches nothing, still remembers the last answer for `mconnect status`
  EXPECT_FALSE(cache.Newest(kT0));
  cache.Note("dns", "192.0.2.1", kT0);
  cache.Note("peer", "198.51.100.2", kT0 + 1s);
  cache.Clear();
  auto newest = cache.Newest(kT0 + 1h);
  ASSERT_TRUE(newest);
  EXPECT_EQ(newest->spec, "peer");
  EXPECT_EQ(newest->hit.address, "198.51.100.2");
  EXPECT_EQ(newest->hit.age, 1h - 1s);
  EXPECT_FALSE(cache.Get("peer", kT0 + 1s)) << "noted is not cached";
}

}  // namespace
}  // namespace mconnect::remoteip
