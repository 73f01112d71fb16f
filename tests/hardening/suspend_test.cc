// A laptop's lid, as the processes see it: the master and its `ssh -S` clients stopped
// (SIGSTOP) for longer than the keepalives allow, then continued, while the TCP connection to
// sshd stays fine. The master must not count the time it was stopped as the server's silence:
// it probes the connection, the server answers, and every session carries on — no reconnect,
// no second authentication, no passphrase to type again.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <iostream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/unique_fd.h"
#include "tests/hardening/hardening.h"
#include "tests/support/mux_socket.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

class SuspendTest : public HardeningTest {};

TEST_F(SuspendTest, StoppedMasterAndClientsCarryOnAfterLongerThanTheKeepalivesAllow) {
  // Keepalives every 2 s, 2 unanswered allowed: 6 s of silence ends a connection.
  auto started = lab_->Run({"ip", lab_->SshOption() + " -o ServerAliveInterval=2 -o ServerAliveCountMax=2", "lab"});
  ASSERT_TRUE(started && started->exit_code == 0) << (started ? started->err : started.error().message);
  const pid_t master = lab_->MasterPid();
  ASSERT_GT(master, 0);

  Pipe to = MakePipe(), from = MakePipe();
  UniqueFd null(::open("/dev/null", O_WRONLY | O_CLOEXEC));
  Spawned session(Ssh({"lab", "cat"}), to.read.get(), from.write.get(), null.get());
  to.read.Reset();
  from.write.Reset();
  ASSERT_EQ(::write(to.write.get(), "before\n", 7), 7);
  ASSERT_THAT(ReadUntil(from.read.get(), "before\n", Scaled(20s)), HasSubstr("before\n"));

  // Stopped for 20 s, more than three times the 6 s of silence the keepalives allow.
  ASSERT_EQ(::kill(master, SIGSTOP), 0);
  ASSERT_EQ(::kill(session.pid(), SIGSTOP), 0);
  std::this_thread::sleep_for(20s);
  ASSERT_EQ(::kill(session.pid(), SIGCONT), 0);
  ASSERT_EQ(::kill(master, SIGCONT), 0);
  const auto resumed = Clock::now();

  ASSERT_EQ(::write(to.write.get(), "after\n", 6), 6);
  const std::string got = ReadUntil(from.read.get(), "after\n", Scaled(20s));
  const auto recovered = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - resumed);
  std::cout << "[ measured ] the session echoed " << recovered.count() << " ms after the master was continued\n";
  EXPECT_THAT(got, HasSubstr("after\n")) << "the session died with the pause";
  // And it stays: a probe answered is a connection that stands.
  std::this_thread::sleep_for(Scaled(10s));
  ASSERT_EQ(::write(to.write.get(), "later\n", 6), 6);
  EXPECT_THAT(ReadUntil(from.read.get(), "later\n", Scaled(20s)), HasSubstr("later\n"));

  to.write.Reset();  // EOF: cat ends, and the session with it
  EXPECT_EQ(session.WaitExit(Scaled(20s)), 0);
  EXPECT_EQ(lab_->MasterPid(), master);
  auto status = StatusOf(*lab_, Scaled(5s));
  ASSERT_TRUE(status) << status.error().message;
  EXPECT_EQ(status->reconnects(), 0u) << "the master took its own pause for a dead connection";
  EXPECT_EQ(lab_->sshd().CountInLog("Accepted publickey"), 1);
  EXPECT_THAT(MasterLog(*lab_), HasSubstr("the master was stopped for"));
}

}  // namespace
}  // namespace mconnect::testing
