// mosh's -4, -6 and --family against a real sshd that listens on 127.0.0.1 and ::1: they choose
// the family the master connects over (through ssh's AddressFamily, as mosh.pl passes -4/-6 to
// ssh) and the family of the address mosh-client is handed (remote-ip answers of the other
// family fall through).
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/lab_fixture.h"
#include "tests/support/mconnect_lab.h"
#include "tests/support/require.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class FamilyTest : public LabTest {
 protected:
  FamilyTest() : LabTest("ListenAddress ::1") {}
  void SetUp() override {
    MCONNECT_REQUIRE(::access("/proc/net/if_inet6", R_OK) == 0, "needs IPv6 on loopback");
    LabTest::SetUp();
    if (HasFatalFailure()) return;
    // lab6: the same sshd reached at ::1 (its key known under [::1]:PORT too).
    const std::string sshd = lab_->sshd().dir();
    std::string config = Slurp(lab_->sshd().ssh_config());
    const std::string head = "Host lab\n  HostName 127.0.0.1\n";
    ASSERT_NE(config.find(head), std::string::npos) << config;
    std::string six = config.substr(config.find(head));
    six.replace(0, head.size(), "Host lab6\n  HostName ::1\n");
    config_ = lab_->dir().Sub("ssh_config_both");
    std::ofstream(config_) << config << "\n" << six;
    std::string known = Slurp(sshd + "/known_hosts");
    const std::string v4 = "[127.0.0.1]:" + std::to_string(lab_->sshd().port());
    ASSERT_EQ(known.rfind(v4, 0), 0u) << known;
    std::ofstream(sshd + "/known_hosts", std::ios::app) << "[::1]" << known.substr(v4.find(']') + 1);
  }

  CommandOutput Mconnect(const std::vector<std::string>& args) {
    std::vector<std::string> argv{args.front(), "--ssh=ssh -F " + config_};
    argv.insert(argv.end(), args.begin() + 1, args.end());
    auto run = lab_->Run(argv);
    EXPECT_TRUE(run) << run.error().message;
    return run.value_or(CommandOutput{});
  }

  std::string config_;
};

TEST_F(FamilyTest, MinusSixConnectsOverIpv6AndHandsOnlyIpv6Addresses) {
  // No master yet: -6 to a HostName that is an IPv4 literal fails as `ssh -6` does, and starts
  // nothing.
  auto refused = Mconnect({"ip", "-6", "lab"});
  EXPECT_EQ(refused.exit_code, 255) << refused.out << refused.err;
  EXPECT_THAT(refused.err, HasSubstr("127.0.0.1"));
  EXPECT_EQ(lab_->sshd().CountInLog("Accepted publickey"), 0);

  auto six = Mconnect({"ip", "-6", "lab6"});
  EXPECT_EQ(six.exit_code, 0) << six.err;
  EXPECT_THAT(six.out, MatchesRegex("peer +::1 \\(.*")) << six.out;
  auto json = lab_->Run({"status", "--json"});
  ASSERT_TRUE(json);
  EXPECT_THAT(json->out, HasSubstr("\"peer_address\":\"::1\"")) << json->out;

  // The same master, asked for IPv4: its peer is IPv6, so no address is handed on.
  auto four = Mconnect({"ip", "-4", "lab6"});
  EXPECT_EQ(four.exit_code, 1) << four.out;
  EXPECT_THAT(four.out, HasSubstr("peer: ::1 is an IPv6 address; --family=inet takes IPv4 only")) << four.out;
  EXPECT_THAT(four.out, HasSubstr("dns: ::1 is an IPv6 address; --family=inet takes IPv4 only")) << four.out;
  // ... unless a strategy of the chain gives one.
  auto chosen = Mconnect({"ip", "--family=inet", "--remote-ip=peer", "--remote-ip=static:127.0.0.1", "lab6"});
  EXPECT_EQ(chosen.exit_code, 0) << chosen.out << chosen.err;
  EXPECT_THAT(chosen.out, HasSubstr("static:127.0.0.1")) << chosen.out;
  EXPECT_EQ(lab_->sshd().CountInLog("Accepted publickey"), 1) << "one master for lab6";
}

// doctor takes -4, -6 and --family as a session does: its checks go over that family (ssh,
// TCP, the address handed on and probed over UDP), and the command lines it suggests carry it.
TEST_F(FamilyTest, DoctorChecksOverTheFamilyASessionWouldUse) {
  auto six = Mconnect({"doctor", "-6", "lab6"});
  EXPECT_EQ(six.exit_code, 0) << six.out << six.err;
  EXPECT_THAT(six.out, HasSubstr("connected to ::1 port ")) << six.out;
  EXPECT_THAT(six.out, MatchesRegex("(.|\n)*OK +udp +::1:[0-9]+ answered(.|\n)*")) << six.out;

  auto four = Mconnect({"doctor", "--family=inet", "lab6"});
  EXPECT_EQ(four.exit_code, 255) << "::1 is not IPv4: " << four.out << four.err;
  EXPECT_THAT(four.out, HasSubstr(" -4 -G lab6")) << "the hint runs ssh as the session would: " << four.out;

  auto either = Mconnect({"doctor", "-4", "lab"});
  EXPECT_EQ(either.exit_code, 0) << either.out << either.err;
  EXPECT_THAT(either.out, HasSubstr("connected to 127.0.0.1 port ")) << either.out;
}

TEST_F(FamilyTest, MinusFourConnectsOverIpv4AndTheDefaultTakesEither) {
  auto six = Mconnect({"ip", "-4", "lab6"});
  EXPECT_EQ(six.exit_code, 255) << "::1 is not IPv4: " << six.out << six.err;
  auto four = Mconnect({"ip", "-4", "lab"});
  EXPECT_EQ(four.exit_code, 0) << four.err;
  EXPECT_THAT(four.out, MatchesRegex("peer +127\\.0\\.0\\.1 \\(.*")) << four.out;
  // The default (prefer-inet) and all take an IPv6 peer as it is.
  for (const char* family : {"--family=prefer-inet", "--family=all", "--family=prefer-inet6"}) {
    auto either = Mconnect({"ip", family, "lab6"});
    EXPECT_EQ(either.exit_code, 0) << family << ": " << either.out << either.err;
    EXPECT_THAT(either.out, MatchesRegex("peer +::1 \\(.*")) << family;
  }
  auto bad = Mconnect({"ip", "--family=ipv6", "lab6"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, HasSubstr("--family \"ipv6\" is not inet, inet6, auto, all, prefer-inet or prefer-inet6"));
}

// A real mosh session with -6: mosh-client is handed ::1 and mosh-server answers there (its
// datagrams go straight over UDP, not through the master).
TEST_F(FamilyTest, MoshSessionOverIpv6) {
  const std::string dir = lab_->dir().Sub("tmux");
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  Tmux tmux(dir);
  auto started = tmux.Start("exec " + lab_->ShellCommand({"--ssh=ssh -F " + config_, "-6", "--transport=udp", "lab6"}),
                            lab_->env());
  ASSERT_TRUE(started) << started.error().message;
  auto screen = [&] { return tmux.CaptureHistory().value_or("(no screen)"); };
  auto client = WaitForProcess(
      [pid = tmux.PanePid()](const ProcessInfo& p) { return p.pid == pid && p.exe == "mosh-client"; }, 30s);
  if (!client) ADD_FAILURE() << "mosh-client never started; screen:\n" << screen();
  if (client) {
    ASSERT_GE(client->argv.size(), 3u);
    EXPECT_EQ(client->argv[2], "::1");
    EXPECT_TRUE(tmux.WaitForRegex("[#$] ", 30s)) << screen();
    EXPECT_TRUE(tmux.Type("echo SIX-$((6*7)) $SSH_CONNECTION"));
    EXPECT_TRUE(tmux.SendKeys("Enter"));
    EXPECT_TRUE(tmux.WaitForRegex("SIX-42 ::1 [0-9]+ ::1 ", 30s)) << screen();
  }
  if (tmux.PanePid() > 0) KillPid(tmux.PanePid());
}

}  // namespace
}  // namespace mconnect::testing
