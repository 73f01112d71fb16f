// The NAT lab (tests/lab/nat-lab): a server on a private LAN behind a masquerading router that
// forwards its ssh port and mosh's UDP range, a client on the public side, and an "internet"
// that drops (and counts) whatever is addressed to the private LAN. Stock mosh's "remote" mode
// trusts $SSH_CONNECTION and aims at the private address; mconnect's `command:` strategy asks a
// what-is-my-IP service from the server and aims at the router's public address.
//
// Needs root (network namespaces, iptables): without it the tests fail and say so.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/subprocess.h"
#include "tests/support/lab.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

std::string NatLabScript() { return std::string(MCONNECT_SOURCE_DIR) + "/tests/lab/nat-lab"; }

class NatLabTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "the NAT lab needs root: it creates network namespaces, veth pairs, a bridge "
                                  "and iptables rules (running as uid "
                               << ::geteuid() << ")";
    AdoptOrphans();
    lab_dir_ = dir_.Sub("nat");
    CommandOptions options;
    options.timeout = 60s;
    auto up = RunCommand({NatLabScript(), "up", lab_dir_, "--tag", std::to_string(::getpid())}, options);
    ASSERT_TRUE(up) << up.error().message;
    lab_up_ = true;
    ASSERT_TRUE(up->ok()) << "nat-lab up failed (exit " << up->exit_code << (up->timed_out ? ", timed out" : "")
                          << "): " << up->err << up->out;
    auto env = ReadFile(lab_dir_ + "/env");
    ASSERT_TRUE(env) << env.error().message;
    for (std::size_t at = 0; at < env->size();) {
      std::size_t end = env->find('\n', at);
      if (end == std::string::npos) end = env->size();
      std::string line = env->substr(at, end - at);
      if (std::size_t eq = line.find('='); eq != std::string::npos) vars_[line.substr(0, eq)] = line.substr(eq + 1);
      at = end + 1;
    }
    for (const char* name : {"NAT_CLIENT_NS", "NAT_SERVER_IP", "NAT_ROUTER_PUBLIC_IP", "NAT_INTERNET_IP",
                             "NAT_HTTP_PORT", "NAT_UDP_RANGE", "NAT_SSH_CONFIG"}) {
      ASSERT_FALSE(Var(name).empty()) << lab_dir_ << "/env names no " << name << ":\n" << *env;
    }

    // Tmux starts its server through `env -i PATH=... tmux`: a `tmux` first in that PATH puts
    // the server, and so the pane and all it runs, in the client namespace. Later tmux commands
    // reach the server over its Unix socket, which no network namespace hides.
    std::string bin = dir_.Sub("nsbin");
    ASSERT_EQ(::mkdir(bin.c_str(), 0700), 0);
    {
      std::ofstream wrapper(bin + "/tmux");
      wrapper << "#!/bin/sh\nexec /usr/sbin/ip netns exec " << Var("NAT_CLIENT_NS") << " /usr/bin/tmux \"$@\"\n";
    }
    ASSERT_EQ(::chmod((bin + "/tmux").c_str(), 0755), 0);
    env_.Set("PATH", bin + ":" + env_.vars["PATH"]);
  }

  void TearDown() override {
    if (tmux_) {
      if (tmux_->PanePid() > 0) KillPid(tmux_->PanePid());
      tmux_.reset();
    }
    for (pid_t pid : to_kill_) {
      if (!ProcessGone(pid)) KillPid(pid);
    }
    // Daemons (sshd, the what-is-my-IP server, the master, mosh-servers) were reparented to us
    // (AdoptOrphans): `down` kills them by namespace, then we reap them here, zombies included.
    pid_t self = ::getpid();
    auto adopted = FindProcesses([self](const ProcessInfo& p) { return p.ppid == self; });
    if (lab_up_) {
      CommandOptions options;
      options.timeout = 60s;
      auto down = RunCommand({NatLabScript(), "down", lab_dir_}, options);
      EXPECT_TRUE(down && down->ok()) << "nat-lab down failed: " << (down ? down->err : down.error().message);
    }
    for (const auto& process : adopted) KillPid(process.pid, 500ms);
    for (const auto& process : FindProcesses([self](const ProcessInfo& p) { return p.ppid == self; })) {
      KillPid(process.pid, 500ms);
    }
    // What died during `down` and is still a zombie child of ours (FindProcesses skips zombies).
    // Nothing else of ours runs now, so no exit status anyone waits for is lost.
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
  }

  std::string Var(const std::string& name) const {
    auto it = vars_.find(name);
    return it == vars_.end() ? "" : it->second;
  }

  // Packets the internet dropped because they were addressed to the private LAN.
  long Vanished() const {
    auto out = RunCommand({NatLabScript(), "vanished", lab_dir_});
    if (!out || !out->ok()) return -1;
    try {
      return std::stol(out->out);
    } catch (...) {
      return -1;
    }
  }

  std::string SshOption() const { return "--ssh=ssh -F " + Var("NAT_SSH_CONFIG"); }

  // Starts `command` (already shell-quoted) in a tmux pane inside the client namespace.
  void StartPane(const std::string& command) {
    std::string dir = dir_.Sub("tmux");
    ::mkdir(dir.c_str(), 0700);
    tmux_ = std::make_unique<Tmux>(dir);
    auto started = tmux_->Start(command, env_);
    ASSERT_TRUE(started) << started.error().message;
  }

  std::string Screen() const {
    auto text = tmux_->CaptureHistory();
    return text ? *text : text.error().message;
  }

  // The mosh-client this test started: its argv[1] (`-# <args> |`) names our ssh config.
  std::optional<ProcessInfo> WaitForMoshClient(std::chrono::milliseconds timeout) {
    auto client = WaitForProcess(
        [config = Var("NAT_SSH_CONFIG")](const ProcessInfo& p) {
          return p.exe == "mosh-client" && p.argv.size() >= 4 && p.argv[1].find(config) != std::string::npos;
        },
        timeout);
    if (client) to_kill_.push_back(client->pid);
    return client;
  }

  std::string ClientNetns(pid_t pid) const {
    char link[256] = {};
    std::string path = "/proc/" + std::to_string(pid) + "/ns/net";
    ssize_t n = ::readlink(path.c_str(), link, sizeof link - 1);
    return n > 0 ? std::string(link, static_cast<std::size_t>(n)) : "";
  }

  std::string NamespaceId(const std::string& name) const {
    char link[256] = {};
    // /run/netns/NAME is a bind mount of the namespace: its inode is the namespace's.
    struct stat st {};
    if (::stat(("/run/netns/" + name).c_str(), &st) != 0) return "";
    std::snprintf(link, sizeof link, "net:[%lu]", static_cast<unsigned long>(st.st_ino));
    return link;
  }

  TempDir dir_;
  LabEnv env_{dir_.path()};
  std::string lab_dir_;
  bool lab_up_ = false;
  std::map<std::string, std::string> vars_;
  std::unique_ptr<Tmux> tmux_;
  std::vector<pid_t> to_kill_;
};

TEST_F(NatLabTest, StockMoshRemoteModeAimsAtThePrivateAddressAndGetsNoSession) {
  long before = Vanished();
  ASSERT_GE(before, 0) << "cannot read the vanish counter";
  StartPane("exec mosh -p " + ShellQuote(Var("NAT_UDP_RANGE")) + " --experimental-remote-ip=remote " +
            ShellQuote(SshOption()) + " lab");
  auto client = WaitForMoshClient(30s);
  ASSERT_TRUE(client) << "stock mosh never started mosh-client; screen:\n" << Screen();
  EXPECT_EQ(ClientNetns(client->pid), NamespaceId(Var("NAT_CLIENT_NS"))) << "mosh-client runs outside the client ns";
  // mosh-client ... | ADDRESS PORT: the private address from $SSH_CONNECTION.
  EXPECT_EQ(client->argv[client->argv.size() - 2], Var("NAT_SERVER_IP")) << "argv[1]: " << client->argv[1];

  // Its datagrams vanish in the internet.
  bool grew = false;
  for (auto deadline = std::chrono::steady_clock::now() + 15s; !grew && std::chrono::steady_clock::now() < deadline;) {
    grew = Vanished() > before;
    if (!grew) std::this_thread::sleep_for(200ms);
  }
  EXPECT_TRUE(grew) << "vanish counter stayed at " << before << "; screen:\n" << Screen();

  ASSERT_TRUE(tmux_->Type("echo MARK-$((6*7))"));
  ASSERT_TRUE(tmux_->SendKeys("Enter"));
  EXPECT_FALSE(tmux_->WaitFor("MARK-42", 10s)) << "stock mosh got a working session through the NAT?\n" << Screen();
  EXPECT_GT(Vanished(), before);
}

TEST_F(NatLabTest, MconnectCommandStrategyAimsAtThePublicAddressAndWorks) {
  long before = Vanished();
  ASSERT_GE(before, 0) << "cannot read the vanish counter";
  std::string strategy = "command:curl -sS --max-time 10 http://" + Var("NAT_INTERNET_IP") + ":" +
                         Var("NAT_HTTP_PORT") + "/";
  std::string command = "exec " + ShellQuote(std::string(MCONNECT_BIN_DIR) + "/mconnect") + " -p " +
                        ShellQuote(Var("NAT_UDP_RANGE")) + " --remote-ip " + ShellQuote(strategy) + " " +
                        ShellQuote(SshOption()) + " lab";
  StartPane(command);
  auto client = WaitForProcess(
      [pid = tmux_->PanePid()](const ProcessInfo& p) { return p.pid == pid && p.exe == "mosh-client"; }, 40s);
  ASSERT_TRUE(client) << "mosh-client never started; screen:\n" << Screen();
  EXPECT_EQ(ClientNetns(client->pid), NamespaceId(Var("NAT_CLIENT_NS"))) << "mosh-client runs outside the client ns";
  ASSERT_GE(client->argv.size(), 4u);
  EXPECT_EQ(client->argv[client->argv.size() - 2], Var("NAT_ROUTER_PUBLIC_IP")) << "argv[1]: " << client->argv[1];

  ASSERT_TRUE(tmux_->WaitForRegex("[#$] ", 30s)) << Screen();
  ASSERT_TRUE(tmux_->Type("echo MARK-$((6*7))"));
  ASSERT_TRUE(tmux_->SendKeys("Enter"));
  ASSERT_TRUE(tmux_->WaitFor("MARK-42", 30s)) << Screen();
  // Nothing of this session went to the private address.
  EXPECT_EQ(Vanished(), before);
}

// A chain whose first answer is the private address (stock mosh's "remote" mode) still lands in
// a working session with --probe-udp: the probe hears mosh-server only at the public address.
TEST_F(NatLabTest, ProbeChoosesTheCandidateWhereMoshServerAnswers) {
  std::string strategy = "command:curl -sS --max-time 10 http://" + Var("NAT_INTERNET_IP") + ":" +
                         Var("NAT_HTTP_PORT") + "/";
  std::string command = "exec " + ShellQuote(std::string(MCONNECT_BIN_DIR) + "/mconnect") + " --probe-udp -p " +
                        ShellQuote(Var("NAT_UDP_RANGE")) + " --remote-ip ssh-connection --remote-ip " +
                        ShellQuote(strategy) + " " + ShellQuote(SshOption()) + " lab";
  StartPane(command);
  auto client = WaitForProcess(
      [pid = tmux_->PanePid()](const ProcessInfo& p) { return p.pid == pid && p.exe == "mosh-client"; }, 40s);
  ASSERT_TRUE(client) << "mosh-client never started; screen:\n" << Screen();
  ASSERT_GE(client->argv.size(), 4u);
  EXPECT_EQ(client->argv[client->argv.size() - 2], Var("NAT_ROUTER_PUBLIC_IP"));
  ASSERT_TRUE(tmux_->WaitForRegex("[#$] ", 30s)) << Screen();
  ASSERT_TRUE(tmux_->Type("echo PROBED-$((6*7))"));
  ASSERT_TRUE(tmux_->SendKeys("Enter"));
  EXPECT_TRUE(tmux_->WaitFor("PROBED-42", 30s)) << Screen();
}

// `mconnect doctor` from the client namespace: with the router's UDP forward removed it names
// the blocked address and port range; with the forward back, the probe gets mosh's answer.
TEST_F(NatLabTest, DoctorSaysWhenUdpIsBlockedAndWhenItPasses) {
  std::string strategy = "command:curl -sS --max-time 10 http://" + Var("NAT_INTERNET_IP") + ":" +
                         Var("NAT_HTTP_PORT") + "/";
  auto doctor = [&] {
    CommandOptions options;
    options.timeout = 60s;
    std::vector<std::string> argv{"/usr/sbin/ip", "netns", "exec", Var("NAT_CLIENT_NS")};
    for (const auto& word : env_.Command({std::string(MCONNECT_BIN_DIR) + "/mconnect", "doctor", "-p",
                                          Var("NAT_UDP_RANGE"), "--remote-ip", strategy, SshOption(), "lab"})) {
      argv.push_back(word);
    }
    auto result = RunCommand(argv, options);
    return result ? *result : CommandOutput{};
  };
  std::vector<std::string> rule{"-t", "nat", "PREROUTING", "-i", "r-pub", "-p", "udp", "--dport",
                                Var("NAT_UDP_RANGE"), "-j", "DNAT", "--to-destination", Var("NAT_SERVER_IP")};
  auto iptables = [&](const std::string& action) {
    std::vector<std::string> argv{"/usr/sbin/ip", "netns", "exec", Var("NAT_ROUTER_NS"), "iptables", rule[0], rule[1],
                                  action};
    argv.insert(argv.end(), rule.begin() + 2, rule.end());
    auto result = RunCommand(argv);
    return result && result->ok();
  };

  ASSERT_TRUE(iptables("-D")) << "could not remove the router's UDP forward";
  auto blocked = doctor();
  EXPECT_EQ(blocked.exit_code, 1) << blocked.out << blocked.err;
  EXPECT_THAT(blocked.out, ::testing::HasSubstr("FAIL  udp"));
  EXPECT_THAT(blocked.out, ::testing::HasSubstr(Var("NAT_ROUTER_PUBLIC_IP") + ":"));
  EXPECT_THAT(blocked.out, ::testing::HasSubstr("forward UDP ports " + Var("NAT_UDP_RANGE")));

  ASSERT_TRUE(iptables("-A")) << "could not restore the router's UDP forward";
  auto passing = doctor();
  EXPECT_EQ(passing.exit_code, 0) << passing.out << passing.err;
  EXPECT_THAT(passing.out, ::testing::HasSubstr("ok    udp            " + Var("NAT_ROUTER_PUBLIC_IP")));
  EXPECT_THAT(passing.out, ::testing::HasSubstr("answered"));
}

}  // namespace
}  // namespace mconnect::testing
