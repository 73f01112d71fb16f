#include "base/byte_queue.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>

namespace mconnect {
namespace {

// Reads `source` into the queue as a channel read would: up to `room` bytes per call.
ssize_t ReadFrom(ByteQueue& queue, std::string& source, std::size_t limit) {
  return queue.AppendFrom(limit, [&](char* into, std::size_t room) -> ssize_t {
    std::size_t n = std::min(room, source.size());
    std::memcpy(into, source.data(), n);
    source.erase(0, n);
    return static_cast<ssize_t>(n);
  });
}

TEST(ByteQueue, KeepsOrderAcrossTheRingsEnd) {
  ByteQueue queue;
  queue.append(std::string(3000, 'a'));
  queue.consume(2500);
  queue.append(std::string(3000, 'b'));  // 3500 bytes in a 4096 ring: wraps
  EXPECT_EQ(queue.size(), 3500u);
  EXPECT_EQ(queue.Front().size(), 4096u - 2500u) << "Front stops at the ring's end";
  EXPECT_EQ(queue.ToString(), std::string(500, 'a') + std::string(3000, 'b'));
}

TEST(ByteQueue, GrowingKeepsWhatIsQueued) {
  ByteQueue queue;
  queue.append(std::string(3000, 'a'));
  queue.consume(2000);
  queue.append(std::string(2000, 'b'));  // wrapped
  queue.append(std::string(10000, 'c'));  // grows past 4096
  EXPECT_EQ(queue.ToString(), std::string(1000, 'a') + std::string(2000, 'b') + std::string(10000, 'c'));
  EXPECT_EQ(queue.Front().size(), queue.size()) << "growing lays the bytes out in one piece";
}

TEST(ByteQueue, PrependGoesFirstEvenAtTheRingsStart) {
  ByteQueue queue;
  queue.append("data");
  queue.prepend(std::string_view("\x05\x00", 2));
  EXPECT_EQ(queue.ToString(), std::string("\x05\x00", 2) + "data");
  ByteQueue empty;
  empty.prepend("reply");
  EXPECT_EQ(empty.ToString(), "reply");
}

TEST(ByteQueue, AppendFromKeepsOnlyWhatWasRead) {
  ByteQueue queue;
  EXPECT_EQ(queue.AppendFrom(100, [](char*, std::size_t) -> ssize_t { return -37; }), -37);
  EXPECT_TRUE(queue.empty());
  EXPECT_EQ(queue.AppendFrom(100, [](char* into, std::size_t room) -> ssize_t {
              EXPECT_EQ(room, 100u);
              std::memcpy(into, "xyz", 3);
              return 3;
            }),
            3);
  EXPECT_EQ(queue.ToString(), "xyz");
}

TEST(ByteQueue, EmptiedQueueStartsAgainAtTheFront) {
  ByteQueue queue;
  queue.append(std::string(4000, 'a'));
  queue.consume(4000);
  EXPECT_TRUE(queue.empty());
  EXPECT_EQ(queue.Front().size(), 0u);
  std::string source(4096, 'z');
  EXPECT_EQ(ReadFrom(queue, source, 4096), 4096) << "the whole ring is one piece again";
}

// Against std::string as the model: random appends, reads, prepends and partial consumes.
TEST(ByteQueue, MatchesAStringUnderRandomUse) {
  std::mt19937 random(7);
  ByteQueue queue;
  std::string model;
  for (int step = 0; step < 20000; ++step) {
    std::size_t n = random() % 9000;
    std::string bytes(n, static_cast<char>('a' + step % 26));
    switch (random() % 4) {
      case 0:
        queue.append(bytes);
        model += bytes;
        break;
      case 1: {
        std::size_t before = bytes.size();
        ssize_t got = ReadFrom(queue, bytes, 32768);
        ASSERT_GE(got, 0);
        model += std::string(static_cast<std::size_t>(got), static_cast<char>('a' + step % 26));
        ASSERT_EQ(bytes.size(), before - static_cast<std::size_t>(got));
        break;
      }
      case 2:
        if (n < 64) {
          queue.prepend(bytes);
          model.insert(0, bytes);
        }
        break;
      default: {
        std::size_t take = std::min(queue.Front().size(), n);
        ASSERT_EQ(queue.Front().substr(0, take), std::string_view(model).substr(0, take));
        queue.consume(take);
        model.erase(0, take);
      }
    }
    ASSERT_EQ(queue.size(), model.size());
    if (model.size() > 200000) {
      queue.consume(100000);
      model.erase(0, 100000);
    }
  }
  EXPECT_EQ(queue.ToString(), model);
}

TEST(ByteQueueDeathTest, ConsumingMoreThanQueuedIsABug) {
  ByteQueue queue;
  queue.append("ab");
  EXPECT_DEATH(queue.consume(3), "n <= size_");
}

}  // namespace
}  // namespace mconnect
