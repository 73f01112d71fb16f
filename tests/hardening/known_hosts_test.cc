// A known_hosts file that exists but cannot be read (here: a directory in its place; as root,
// chmod 000 would not stop us) is not an unknown host key. At the start the user is told which
// file cannot be read and why; on the reconnect path the master keeps retrying, as for a network
// that is away, instead of giving up and waiting for a person, and comes back once the file
// can be read again. (Out of fds, the other way a read fails here: fd_exhaustion_test.cc.)
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <set>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/hardening/hardening.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

class KnownHostsTest : public HardeningTest {
 protected:
  // The lab's known_hosts moved aside and a directory put in its place.
  void MakeUnreadable() {
    known_hosts_ = lab_->sshd().known_hosts();
    ASSERT_EQ(std::rename(known_hosts_.c_str(), (known_hosts_ + ".aside").c_str()), 0);
    ASSERT_EQ(::mkdir(known_hosts_.c_str(), 0700), 0);
  }
  void MakeReadable() {
    ASSERT_EQ(::rmdir(known_hosts_.c_str()), 0);
    ASSERT_EQ(std::rename((known_hosts_ + ".aside").c_str(), known_hosts_.c_str()), 0);
  }

  std::string Link() {
    auto status = StatusOf(*lab_, Scaled(2s));
    return status ? status->link() + " (" + status->link_detail() + ")" : "(no answer: " + status.error().message + ")";
  }

  // Kills, by pid, the sshd processes that serve the master's connection; the listener stays.
  void CutTheMastersConnection() {
    const pid_t listener = lab_->sshd().pid();
    std::set<pid_t> serving;
    for (bool grew = true; grew;) {
      grew = false;
      for (const auto& p : FindProcesses(
               [&](const ProcessInfo& p) { return p.ppid == listener || serving.contains(p.ppid); })) {
        grew |= serving.insert(p.pid).second;
      }
    }
    ASSERT_FALSE(serving.empty()) << "no sshd process serves the master";
    for (pid_t pid : serving) ::kill(pid, SIGKILL);
  }

  std::string known_hosts_;
};

TEST_F(KnownHostsTest, AnUnreadableKnownHostsAtTheStartIsNamedNotCalledAnUnknownKey) {
  MakeUnreadable();
  auto result = lab_->Run({"ip", lab_->SshOption(), "lab"}, Scaled(30s));
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_NE(result->exit_code, 0);
  std::cout << "[ said ] " << result->err;
  EXPECT_THAT(result->err, HasSubstr("cannot read known_hosts file " + known_hosts_ + ": Is a directory"));
  EXPECT_THAT(result->err, Not(HasSubstr("host key verification failed")));
  EXPECT_THAT(result->err, Not(HasSubstr("is known")));
  EXPECT_EQ(lab_->MasterPid(), 0);
}

TEST_F(KnownHostsTest, AnUnreadableKnownHostsOnReconnectIsRetriedNotHandedToAPerson) {
  ASSERT_TRUE(StartMaster(*lab_));
  const pid_t master = lab_->MasterPid();
  ASSERT_GT(master, 0);

  MakeUnreadable();
  CutTheMastersConnection();
  // The listener still answers: the attempts get as far as the host-key check, and fail there.
  ASSERT_TRUE(Eventually([&] { return Link().find("known_hosts") != std::string::npos; }, Scaled(15s))) << Link();
  const std::string during = Link();
  std::cout << "[ link ] " << during << "\n";
  EXPECT_THAT(during, HasSubstr("reconnecting (cannot read known_hosts file " + known_hosts_ + ": Is a directory"));
  EXPECT_THAT(during, Not(HasSubstr("needs-person")));
  // Still so after the next attempt (1 s later): retried, not given up.
  ASSERT_TRUE(Eventually([&] { return lab_->CountInMasterLog("known_hosts file") >= 2; }, Scaled(10s)))
      << lab_->MasterLog();
  EXPECT_THAT(Link(), HasSubstr("reconnecting"));

  MakeReadable();
  EXPECT_TRUE(Eventually([&] { return Link().starts_with("up"); }, Scaled(30s))) << Link();
  EXPECT_EQ(lab_->MasterPid(), master);
  CommandOptions quick;
  quick.timeout = Scaled(15s);
  auto served = RunCommand(Ssh({"lab", "echo served"}), quick);
  ASSERT_TRUE(served);
  EXPECT_EQ(served->out, "served\n") << served->err;
}

}  // namespace
}  // namespace mconnect::testing
