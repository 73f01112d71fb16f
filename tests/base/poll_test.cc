#include "base/poll.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "base/unique_fd.h"

namespace mconnect {
namespace {

struct SocketPair {
  SocketPair() {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    a.Reset(fds[0]);
    b.Reset(fds[1]);
  }
  UniqueFd a, b;
};

TEST(PollDistinct, EachEntryGetsWhatItAskedFor) {
  SocketPair pair;
  ASSERT_EQ(::write(pair.b.get(), "x", 1), 1);
  const timespec zero{};
  std::vector<pollfd> fds{{pair.a.get(), POLLIN, 0}, {-1, POLLIN, 0}, {pair.a.get(), POLLOUT, 0}, {pair.b.get(), POLLIN, 0}};
  EXPECT_EQ(PollDistinct(fds, &zero, nullptr), 2);
  EXPECT_EQ(fds[0].revents, POLLIN);
  EXPECT_EQ(fds[1].revents, 0);
  EXPECT_EQ(fds[2].revents, POLLOUT);
  EXPECT_EQ(fds[3].revents, 0);
}

TEST(PollDistinct, ErrorsReachEveryEntryOfTheFd) {
  SocketPair pair;
  pair.b.Reset();  // the peer hangs up
  const timespec zero{};
  std::vector<pollfd> fds{{pair.a.get(), 0, 0}, {pair.a.get(), POLLOUT, 0}};
  EXPECT_EQ(PollDistinct(fds, &zero, nullptr), 2);
  EXPECT_TRUE(fds[0].revents & POLLHUP);
  EXPECT_TRUE(fds[1].revents & POLLHUP);
}

TEST(PollDistinct, InvalidFdSaysSo) {
  UniqueFd path(::open("/", O_PATH | O_CLOEXEC));
  ASSERT_TRUE(path);
  const timespec zero{};
  std::vector<pollfd> fds{{path.get(), POLLIN, 0}};
  EXPECT_EQ(PollDistinct(fds, &zero, nullptr), 1);
  EXPECT_EQ(fds[0].revents, POLLNVAL);
}

// Three entries per fd for more fds than RLIMIT_NOFILE allows entries: plain ppoll says EINVAL.
TEST(PollDistinct, MoreEntriesThanTheFdLimitAllows) {
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  const rlimit low{256, saved.rlim_max};
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  std::vector<SocketPair> pairs(100);
  std::vector<pollfd> fds;
  for (auto& pair : pairs) {
    fds.push_back({pair.a.get(), POLLOUT, 0});
    fds.push_back({pair.a.get(), POLLIN, 0});
    fds.push_back({-1, 0, 0});
  }
  const timespec zero{};
  std::vector<pollfd> plain = fds;
  EXPECT_EQ(::ppoll(plain.data(), plain.size(), &zero, nullptr), -1);
  EXPECT_EQ(PollDistinct(fds, &zero, nullptr), 100);
  EXPECT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
}

}  // namespace
}  // namespace mconnect
