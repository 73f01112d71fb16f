#include "base/poller.h"

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "base/unique_fd.h"

namespace mconnect {
namespace {

using Clock = Poller::Clock;
using namespace std::chrono_literals;

struct SocketPair {
  SocketPair() {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds), 0);
    a.Reset(fds[0]);
    b.Reset(fds[1]);
  }
  UniqueFd a, b;
};

void Send(const UniqueFd& fd) { ASSERT_EQ(::write(fd.get(), "x", 1), 1); }

TEST(Poller, ReadyFdsRunTheirCallbacksInOrderWithTheSteps) {
  SocketPair one, two, quiet;
  Send(one.b);
  Send(two.b);
  Poller poller;
  std::vector<std::string> order;
  poller.Watch(one.a.get(), POLLIN, [&](short revents) {
    EXPECT_TRUE(revents & POLLIN);
    order.push_back("one");
  });
  poller.Then([&] { order.push_back("step"); });
  poller.Watch(quiet.a.get(), POLLIN, [&](short) { order.push_back("quiet"); });
  poller.Watch(two.a.get(), POLLIN, [&](short) { order.push_back("two"); });
  poller.Watch(two.a.get(), POLLOUT, nullptr);  // the same fd again: only wakes
  EXPECT_EQ(poller.Wait(nullptr), 3);
  EXPECT_EQ(order, (std::vector<std::string>{"one", "step", "two"}));
}

TEST(Poller, AGroupRunsOnceWithAllItsRevents) {
  SocketPair pair;
  Send(pair.b);
  const pollfd group[] = {{pair.a.get(), POLLIN, 0}, {-1, POLLIN, 0}, {pair.a.get(), POLLOUT, 0}};
  Poller poller;
  int calls = 0;
  poller.Watch(group, [&](std::span<const pollfd> fds) {
    ++calls;
    ASSERT_EQ(fds.size(), 3u);
    EXPECT_TRUE(fds[0].revents & POLLIN);
    EXPECT_EQ(fds[1].revents, 0);
    EXPECT_TRUE(fds[2].revents & POLLOUT);
  });
  EXPECT_EQ(poller.Wait(nullptr), 2);
  EXPECT_EQ(calls, 1);
}

TEST(Poller, WakesByTheEarliestDeadline) {
  SocketPair quiet;
  Poller poller;
  bool step = false, called = false;
  poller.Watch(quiet.a.get(), POLLIN, [&](short) { called = true; });
  poller.Then([&] { step = true; });
  const auto start = Clock::now();
  poller.WakeBy(start + 5s);
  poller.WakeBy(std::nullopt);
  poller.WakeBy(start + 50ms);
  EXPECT_EQ(poller.Wait(nullptr), 0);
  const auto waited = Clock::now() - start;
  EXPECT_GE(waited, 50ms);
  EXPECT_LT(waited, 3s);
  EXPECT_TRUE(step);  // steps run after a timeout too
  EXPECT_FALSE(called);
  EXPECT_FALSE(poller.deadline());  // the round is forgotten
}

TEST(Poller, APastDeadlineDoesNotBlock) {
  Poller poller;
  poller.WakeBy(Clock::now() - 1s);
  const auto start = Clock::now();
  EXPECT_EQ(poller.Wait(nullptr), 0);
  EXPECT_LT(Clock::now() - start, 1s);
}

// As the master's parts do: callbacks capture an id and look their object up, so one removed by
// an earlier callback in the same round is skipped.
TEST(Poller, ACallbackThatRemovesAnotherEntrysObject) {
  struct Client {
    SocketPair pair;
    int handled = 0;
  };
  std::map<int, std::unique_ptr<Client>> clients;
  for (int id : {1, 2, 3}) {
    clients[id] = std::make_unique<Client>();
    Send(clients[id]->pair.b);
  }
  Poller poller;
  for (const auto& [id, client] : clients) {
    poller.Watch(client->pair.a.get(), POLLIN, [&clients, id](short) {
      auto it = clients.find(id);
      if (it == clients.end()) return;
      ++it->second->handled;
      if (id == 1) clients.erase(2);  // its fd closes too
    });
  }
  EXPECT_EQ(poller.Wait(nullptr), 3);
  ASSERT_EQ(clients.size(), 2u);
  EXPECT_EQ(clients[1]->handled, 1);
  EXPECT_EQ(clients[3]->handled, 1);
}

TEST(Poller, WhatACallbackRegistersIsForTheNextRound) {
  SocketPair pair;
  Send(pair.b);
  Poller poller;
  int first = 0, second = 0;
  poller.Watch(pair.a.get(), POLLIN, [&](short) {
    ++first;
    poller.Watch(pair.a.get(), POLLIN, [&](short) { ++second; });
  });
  EXPECT_EQ(poller.Wait(nullptr), 1);
  EXPECT_EQ(first, 1);
  EXPECT_EQ(second, 0);
  EXPECT_EQ(poller.Wait(nullptr), 1);
  EXPECT_EQ(first, 1);
  EXPECT_EQ(second, 1);
}

volatile sig_atomic_t g_caught = 0;
void OnUsr1(int) { g_caught = 1; }

TEST(Poller, ASignalInterruptsTheWaitAndTheStepsStillRun) {
  struct sigaction action {
  }, old_action{};
  action.sa_handler = OnUsr1;
  ASSERT_EQ(::sigaction(SIGUSR1, &action, &old_action), 0);
  sigset_t blocked, old_mask;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGUSR1);
  ASSERT_EQ(::sigprocmask(SIG_BLOCK, &blocked, &old_mask), 0);
  sigset_t during_wait = old_mask;
  sigdelset(&during_wait, SIGUSR1);
  ::kill(::getpid(), SIGUSR1);  // pending until the wait unblocks it

  SocketPair quiet;
  Poller poller;
  bool step = false, called = false;
  poller.Watch(quiet.a.get(), POLLIN, [&](short) { called = true; });
  poller.Then([&] { step = true; });
  poller.WakeBy(Clock::now() + 5s);
  const auto start = Clock::now();
  const int ready = poller.Wait(&during_wait);
  const int error = errno;
  ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
  ::sigaction(SIGUSR1, &old_action, nullptr);
  EXPECT_EQ(ready, -1);
  EXPECT_EQ(error, EINTR);
  EXPECT_EQ(g_caught, 1);
  EXPECT_LT(Clock::now() - start, 3s);
  EXPECT_TRUE(step);
  EXPECT_FALSE(called);
}

}  // namespace
}  // namespace mconnect
