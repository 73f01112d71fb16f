// --local, as mosh's: a real mosh session on this machine, driven through tmux, with no SSH and
// no master at all; and its failures, each one line with a hint.
#include <sys/stat.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/lab_fixture.h"
#include "tests/support/mconnect_lab.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

class LocalTest : public LabTest {
 protected:
  void TearDown() override {
    if (tmux_ && tmux_->PanePid() > 0) KillPid(tmux_->PanePid());
    // The mosh-server this lab's launcher started (its HOME is the lab's), by pid.
    const std::string home = "HOME=" + lab_->env().home;
    for (const auto& server : FindProcesses([&](const ProcessInfo& p) {
           return p.exe == "mosh-server" && std::ranges::find(p.environ, home) != p.environ.end();
         })) {
      KillPid(server.pid);
    }
    tmux_.reset();
    LabTest::TearDown();
  }

  Tmux& StartPane(const std::string& command_line) {
    const std::string dir = lab_->dir().Sub("tmux");
    ::mkdir(dir.c_str(), 0700);
    tmux_ = std::make_unique<Tmux>(dir);
    auto started = tmux_->Start(command_line, lab_->env());
    EXPECT_TRUE(started) << started.error().message;
    return *tmux_;
  }
  std::string Screen() { return tmux_->CaptureHistory().value_or("(no screen)"); }

  std::unique_ptr<Tmux> tmux_;
};

TEST_F(LocalTest, MoshSessionOnThisMachineWithoutSshOrMaster) {
  Tmux& tmux = StartPane("exec " + lab_->ShellCommand({"--local", "127.0.0.1"}));
  auto client = WaitForProcess(
      [pid = tmux.PanePid()](const ProcessInfo& p) { return p.pid == pid && p.exe == "mosh-client"; }, 30s);
  ASSERT_TRUE(client) << "mosh-client never started; screen:\n" << Screen();
  ASSERT_GE(client->argv.size(), 4u);
  EXPECT_EQ(client->argv[2], "127.0.0.1");
  EXPECT_EQ(client->Getenv("MOSH_KEY").value_or("").size(), 22u);
  ASSERT_TRUE(tmux.WaitForRegex("[#$] ", 30s)) << Screen();
  ASSERT_TRUE(tmux.Type("echo LOCAL-$((6*7)) ${SSH_CONNECTION:-no-ssh} $PWD"));
  ASSERT_TRUE(tmux.SendKeys("Enter"));
  EXPECT_TRUE(tmux.WaitFor("LOCAL-42 no-ssh " + lab_->env().home, 30s)) << Screen();

  EXPECT_EQ(lab_->sshd().CountInLog("Accepted"), 0) << "no SSH connection was made";
  EXPECT_EQ(lab_->MasterPid(), 0) << "no master was started";
  const std::string home = "HOME=" + lab_->env().home;
  auto servers = FindProcesses([&](const ProcessInfo& p) {
    return p.exe == "mosh-server" && std::ranges::find(p.environ, home) != p.environ.end();
  });
  ASSERT_EQ(servers.size(), 1u);
  EXPECT_THAT(servers.front().argv, ::testing::Contains("-i")) << "bound to the destination, as mosh.pl does";
  EXPECT_THAT(servers.front().argv, ::testing::Contains("127.0.0.1"));
}

TEST_F(LocalTest, FailuresAreOneLineWithAHint) {
  auto unresolved = lab_->Run({"--local", "nosuchhost.invalid"});
  ASSERT_TRUE(unresolved);
  EXPECT_EQ(unresolved->exit_code, 1);
  EXPECT_THAT(unresolved->err, HasSubstr("mconnect: --local: cannot resolve nosuchhost.invalid"));
  EXPECT_THAT(unresolved->err, HasSubstr("mconnect: hint: give --local the address"));

  auto six = lab_->Run({"--local", "-6", "127.0.0.1"});
  ASSERT_TRUE(six);
  EXPECT_EQ(six->exit_code, 1);
  EXPECT_THAT(six->err, HasSubstr("127.0.0.1 is an IPv4 address; --family=inet6 takes IPv6 only")) << six->err;

  auto over_ssh = lab_->Run({"--local", "--transport=ssh", "127.0.0.1"});
  ASSERT_TRUE(over_ssh);
  EXPECT_EQ(over_ssh->exit_code, 2);
  EXPECT_THAT(over_ssh->err, HasSubstr("--local runs no SSH"));

  // On a terminal, a missing mosh-server is named as this machine's.
  Tmux& tmux = StartPane(lab_->ShellCommand({"--local", "--server=/nonexistent/mosh-server", "127.0.0.1"}) +
                         "; echo EXIT=$?; sleep 60");
  ASSERT_TRUE(tmux.WaitFor("EXIT=", 30s)) << Screen();
  const std::string screen = Screen();
  EXPECT_THAT(screen, HasSubstr("EXIT=1"));
  EXPECT_THAT(screen, HasSubstr("mconnect: mosh-server not found on this machine")) << screen;
  EXPECT_THAT(screen, HasSubstr("mconnect: hint: install mosh here")) << screen;
  EXPECT_EQ(lab_->sshd().CountInLog("Accepted"), 0);
}

}  // namespace
}  // namespace mconnect::testing
