// Through a jump host: `Host target` has `ProxyJump jump` in the user's ssh config. The master
// runs `ssh -W` through the jump host (what ssh itself does for ProxyJump) and speaks SSH over
// it; the mosh session, `ssh -S`, and a hand-written ProxyCommand all work, and a broken proxy
// is one clear line. Stock mosh replaces the ProxyCommand with its own and so cannot do this
// (mosh #285).
#include <sys/stat.h>

#include <algorithm>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/mconnect_lab.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

class ProxyJumpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto lab = MconnectLab::Start();  // its sshd is the target
    ASSERT_TRUE(lab) << lab.error().message;
    lab_ = std::move(*lab);
    auto jump = SshdLab::Start(lab_->dir().Sub("jump"));
    ASSERT_TRUE(jump) << jump.error().message;
    jump_ = std::move(*jump);
    config_ = lab_->dir().Sub("ssh_config");
    std::ofstream out(config_);
    out << Host("jump", *jump_) << Host("target", lab_->sshd()) << "  ProxyJump jump\n"
        << Host("handmade", lab_->sshd()) << "  ProxyCommand ssh -F " << config_ << " -W %h:%p jump\n"
        << Host("broken", lab_->sshd()) << "  ProxyCommand sh -c 'echo the relay is down >&2; exit 1'\n";
  }

  void TearDown() override {
    if (tmux_ && tmux_->PanePid() > 0) KillPid(tmux_->PanePid());
    tmux_.reset();
    if (lab_) lab_->Cleanup();
  }

  static std::string Host(const std::string& name, const SshdLab& sshd) {
    std::string dir = sshd.dir();
    return "Host " + name + "\n  HostName 127.0.0.1\n  Port " + std::to_string(sshd.port()) +
           "\n  User root\n  IdentityFile " + dir + "/id_ed25519\n  IdentitiesOnly yes\n  UserKnownHostsFile " + dir +
           "/known_hosts\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  BatchMode yes\n"
           "  ControlMaster no\n  ControlPath none\n";
  }

  std::string SshOption() const { return "--ssh=ssh -F " + config_; }

  std::string Screen() const {
    auto text = tmux_->CaptureHistory();
    return text ? *text : text.error().message;
  }

  std::unique_ptr<MconnectLab> lab_;
  std::unique_ptr<SshdLab> jump_;
  std::string config_;
  std::unique_ptr<Tmux> tmux_;
};

TEST_F(ProxyJumpTest, MoshSessionThroughAJumpHost) {
  std::string dir = lab_->dir().Sub("tmux");
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  tmux_ = std::make_unique<Tmux>(dir);
  ASSERT_TRUE(tmux_->Start("exec " + lab_->ShellCommand({SshOption(), "target"}), lab_->env()));
  auto client = WaitForProcess(
      [pid = tmux_->PanePid()](const ProcessInfo& p) { return p.pid == pid && p.exe == "mosh-client"; }, 40s);
  ASSERT_TRUE(client) << "mosh-client never started; screen:\n" << Screen();
  ASSERT_TRUE(tmux_->WaitForRegex("[#$] ", 30s)) << Screen();
  ASSERT_TRUE(tmux_->Type("echo JUMPED-$((6*7))"));
  ASSERT_TRUE(tmux_->SendKeys("Enter"));
  ASSERT_TRUE(tmux_->WaitFor("JUMPED-42", 30s)) << Screen();

  // The master's stream is an `ssh -W` through the jump host, which authenticated once there.
  pid_t master = lab_->MasterPid();
  ASSERT_GT(master, 0);
  auto proxy = FindProcesses([this](const ProcessInfo& p) {
    auto has = [&p](const std::string& word) { return std::find(p.argv.begin(), p.argv.end(), word) != p.argv.end(); };
    return p.exe == "ssh" && has("-W") && has(config_);
  });
  ASSERT_EQ(proxy.size(), 1u);
  EXPECT_THAT(proxy[0].argv, ::testing::Contains("[127.0.0.1]:" + std::to_string(lab_->sshd().port())));
  EXPECT_THAT(proxy[0].argv, ::testing::Contains("ssh://jump"));
  EXPECT_EQ(jump_->CountInLog("Accepted publickey"), 1) << jump_->Log();
  EXPECT_EQ(lab_->sshd().CountInLog("Accepted publickey"), 1) << lab_->sshd().Log();

  // A plain ssh reuses the master: no new authentication anywhere.
  auto ssh = RunCommand(lab_->env().Command({"ssh", "-F", config_, "-S", lab_->SocketPath(), "-o", "ControlMaster=no",
                                             "target", "echo via-master"}));
  ASSERT_TRUE(ssh);
  EXPECT_EQ(ssh->out, "via-master\n") << ssh->err;
  EXPECT_EQ(jump_->CountInLog("Accepted publickey"), 1);
  EXPECT_EQ(lab_->sshd().CountInLog("Accepted publickey"), 1);
}

// The remote-ip chain knows there is no TCP peer through a proxy and moves on to dns.
TEST_F(ProxyJumpTest, PeerHasNoAnswerThroughAProxyAndDnsDoes) {
  auto ip = lab_->Run({"ip", SshOption(), "target"});
  ASSERT_TRUE(ip);
  ASSERT_EQ(ip->exit_code, 0) << ip->err;
  EXPECT_THAT(ip->out, HasSubstr("no TCP peer"));
  EXPECT_THAT(ip->out, HasSubstr("dns"));
  EXPECT_THAT(ip->out, HasSubstr("127.0.0.1"));
}

// A ProxyCommand written by hand, with %h and %p for ssh to expand.
TEST_F(ProxyJumpTest, HandWrittenProxyCommandWithTokens) {
  auto ip = lab_->Run({"ip", "--remote-ip", "ssh-connection", SshOption(), "handmade"});
  ASSERT_TRUE(ip);
  EXPECT_EQ(ip->exit_code, 0) << ip->err;
  EXPECT_EQ(jump_->CountInLog("Accepted publickey"), 1) << jump_->Log();
}

TEST_F(ProxyJumpTest, BrokenProxyIsOneClearLine) {
  auto ip = lab_->Run({"ip", SshOption(), "broken"});
  ASSERT_TRUE(ip);
  EXPECT_EQ(ip->exit_code, 255);
  EXPECT_THAT(ip->err, HasSubstr("proxy: the relay is down"));
  EXPECT_EQ(std::count(ip->err.begin(), ip->err.end(), '\n'), 1) << ip->err;
}

// A typo in a ProxyJump that `Host *` gives every host: the mistyped hop inherits it too, and
// ssh itself only says "jumphost loop via jupm". The real trouble is that jupm is no host.
TEST_F(ProxyJumpTest, AProxyJumpTypoIsTheDnsErrorNotALoop) {
  const std::string config = lab_->dir().Sub("typo_config");
  std::ofstream(config) << Host("jump", *jump_) << "  ProxyJump none\n"
                        << Host("target", lab_->sshd()) << "Host *\n  ProxyJump jupm\n";
  auto ip = lab_->Run({"ip", "--ssh=ssh -F " + config, "target"});
  ASSERT_TRUE(ip);
  EXPECT_EQ(ip->exit_code, 255);
  EXPECT_THAT(ip->err.substr(0, ip->err.find('\n')), Not(HasSubstr("loop")));
  EXPECT_EQ(ip->err,
            "mconnect: ProxyJump jupm: cannot resolve jupm: Name or service not known\n"
            "mconnect: hint: check the ProxyJump that applies to target (`ssh -F " + config +
                " -G target`); jupm's own settings send it through itself, so ssh would only say \"jumphost loop "
                "via jupm\"\n");
  EXPECT_EQ(lab_->MasterPid(), 0);
}

// The same loop with a hop that exists: said as what it is, with the line that ends it.
TEST_F(ProxyJumpTest, AProxyJumpThatAppliesToItsOwnHopSaysHowToEndTheLoop) {
  const std::string config = lab_->dir().Sub("loop_config");
  std::ofstream(config) << Host("target", lab_->sshd()) << "Host *\n  ProxyJump jump\n" << Host("jump", *jump_);
  auto ip = lab_->Run({"ip", "--ssh=ssh -F " + config, "target"});
  ASSERT_TRUE(ip);
  EXPECT_EQ(ip->exit_code, 255);
  EXPECT_EQ(ip->err,
            "mconnect: ProxyJump jump: jump's own settings send it through jump too (ssh: \"jumphost loop via "
            "jump\")\nmconnect: hint: add `ProxyJump none` to a `Host jump` block above the one that sets this "
            "ProxyJump\n");
}

}  // namespace
}  // namespace mconnect::testing
