// Hostile clients speaking OpenSSH's mux protocol on the master's socket while an unchanged
// `ssh -S SOCKET lab cat` moves 64 MiB through the same master: garbage, oversized lengths, cut
// frames, sessions that never pass their fds, a client that never reads its replies, a second
// session on one connection. Each must be dropped (where dropping is the answer) without
// disturbing the transfer, the master's pid or its one authentication.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/master/openssh_robustness.h"

namespace mconnect::testing::robustness {
namespace {

TEST_F(OpenSshRobustnessTest, GarbageAfterHelloIsDropped) {
  DuringTransfer([this] { Timed("garbage after HELLO", [this] { GarbageAfterHello(); }); });
}

TEST_F(OpenSshRobustnessTest, OversizedLengthIsDropped) {
  DuringTransfer([this] { Timed("oversized length", [this] { OversizedLength(); }); });
}

TEST_F(OpenSshRobustnessTest, FrameCutInTheMiddleIsDropped) {
  DuringTransfer([this] { Timed("frame cut in the middle", [this] { FrameCutInTheMiddle(); }); });
}

TEST_F(OpenSshRobustnessTest, NewSessionWithoutFdsIsDropped) {
  DuringTransfer([this] { Timed("NEW_SESSION without fds", [this] { NewSessionWithoutFds(); }); });
}

TEST_F(OpenSshRobustnessTest, NewSessionWithSomeFdsIsDroppedAndItsFdsReleased) {
  DuringTransfer([this] { Timed("NEW_SESSION with 1 and 2 fds", [this] { NewSessionWithSomeFds(); }); });
}

TEST_F(OpenSshRobustnessTest, ClientThatNeverReadsIsCutOff) {
  DuringTransfer([this] {
    Timed("never reads its ALIVE replies", [this] {
      std::size_t checks = NeverReads();
      if (round_ == 0) std::cout << "[ attack   ] the master dropped the client after " << checks << " ALIVE_CHECKs\n";
    });
  });
}

TEST_F(OpenSshRobustnessTest, SecondNewSessionOnOneConnectionIsRefused) {
  DuringTransfer([this] { Timed("second NEW_SESSION", [this] { SecondNewSession(); }); });
}

// All seven at once, each in its own thread, round after round until the transfer ends.
TEST_F(OpenSshRobustnessTest, AllOfThemAtOnceDuringOneTransfer) {
  DuringTransfer([this] {
    std::vector<std::future<void>> running;
    auto launch = [&](std::string name, std::function<void()> attack) {
      running.push_back(std::async(std::launch::async, [this, name, attack] { Timed(name, attack); }));
    };
    launch("garbage after HELLO", [this] { GarbageAfterHello(); });
    launch("oversized length", [this] { OversizedLength(); });
    launch("frame cut in the middle", [this] { FrameCutInTheMiddle(); });
    launch("NEW_SESSION without fds", [this] { NewSessionWithoutFds(); });
    launch("NEW_SESSION with 1 and 2 fds", [this] { NewSessionWithSomeFds(); });
    launch("never reads its ALIVE replies", [this] { NeverReads(); });
    launch("second NEW_SESSION", [this] { SecondNewSession(); });
    for (auto& attack : running) attack.get();
  });
}

}  // namespace
}  // namespace mconnect::testing::robustness
