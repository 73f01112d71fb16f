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
#include <regex>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/subprocess.h"
#include "proto/client.h"
#include "proto/control.pb.h"
#include "proto/socket_path.h"
#include "tests/support/lab.h"
#include "tests/support/paths.h"

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

  // The socket of the master for HOST:PORT in this test's runtime directory, and its Status.
  std::string MasterSocket(const std::string& host, const std::string& port) const {
    return proto::PathsFor(env_.runtime_dir + "/mconnect", "root", host, std::stoi(port)).socket;
  }
  static Result<control::StatusReply> MasterStatus(const std::string& socket) {
    auto master = proto::ControlClient::Connect(socket, 2s);
    if (!master) return Fail(master.error());
    return master->Call<control::StatusReply>(proto::MessageType::kStatus, control::StatusRequest{},
                                              proto::MessageType::kStatusReply, 2s);
  }

  // Runs iptables in the router's namespace; true when it succeeded.
  bool Router(const std::vector<std::string>& rule) const {
    std::vector<std::string> argv{"/usr/sbin/ip", "netns", "exec", Var("NAT_ROUTER_NS"), "iptables"};
    argv.insert(argv.end(), rule.begin(), rule.end());
    auto result = RunCommand(argv);
    return result && result->ok();
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
  // With --transport=auto (the default) a session would still work, over SSH: doctor shows it.
  EXPECT_THAT(blocked.out, ::testing::HasSubstr("OK    relay          mosh-server answered through the"));
  EXPECT_THAT(blocked.out, ::testing::HasSubstr("OK    transport      ssh (auto): no answer over UDP from " +
                                                Var("NAT_ROUTER_PUBLIC_IP")));

  ASSERT_TRUE(iptables("-A")) << "could not restore the router's UDP forward";
  auto passing = doctor();
  EXPECT_EQ(passing.exit_code, 0) << passing.out << passing.err;
  EXPECT_THAT(passing.out, ::testing::HasSubstr("OK    udp            " + Var("NAT_ROUTER_PUBLIC_IP")));
  EXPECT_THAT(passing.out, ::testing::HasSubstr("answered"));
  EXPECT_THAT(passing.out, ::testing::HasSubstr("OK    transport      udp (auto)"));
}

// The path to the server is cut for 30 s (the router drops everything, TCP and UDP alike) while a
// mosh session runs. The master notices within its keepalive budget, reconnects once the path
// is back, and serves `ssh -S` without a prompt; the mosh session (same mosh-server) carries on.
TEST_F(NatLabTest, MasterAndMoshSessionSurviveAThirtySecondCut) {
  std::string strategy = "command:curl -sS --max-time 10 http://" + Var("NAT_INTERNET_IP") + ":" +
                         Var("NAT_HTTP_PORT") + "/";
  std::string ssh = SshOption() + " -o ServerAliveInterval=2 -o ServerAliveCountMax=2 -o ConnectTimeout=5";
  StartPane("exec " + ShellQuote(std::string(MCONNECT_BIN_DIR) + "/mconnect") + " -p " +
            ShellQuote(Var("NAT_UDP_RANGE")) + " --remote-ip " + ShellQuote(strategy) + " " + ShellQuote(ssh) + " lab");
  auto client = WaitForMoshClient(40s);
  ASSERT_TRUE(client) << "mosh-client never started; screen:\n" << Screen();
  ASSERT_TRUE(tmux_->WaitForRegex("[#$] ", 30s)) << Screen();
  ASSERT_TRUE(tmux_->Type("echo BEFORE-$((6*7))"));
  ASSERT_TRUE(tmux_->SendKeys("Enter"));
  ASSERT_TRUE(tmux_->WaitFor("BEFORE-42", 30s)) << Screen();

  std::string socket = MasterSocket(Var("NAT_ROUTER_PUBLIC_IP"), Var("NAT_SSH_PORT"));
  auto status = [&socket]() -> std::optional<control::StatusReply> {
    auto reply = MasterStatus(socket);
    if (!reply) return std::nullopt;
    return *reply;
  };
  auto wait_for_link = [&status](const std::string& link, std::chrono::seconds timeout) {
    std::optional<control::StatusReply> last;
    for (auto deadline = std::chrono::steady_clock::now() + timeout; std::chrono::steady_clock::now() < deadline;
         std::this_thread::sleep_for(200ms)) {
      last = status();
      if (last && last->link() == link) break;
    }
    return last;
  };
  auto before = status();
  ASSERT_TRUE(before) << "no master answers on " << socket;
  ASSERT_EQ(before->link(), "up");
  std::string log_path = socket.substr(0, socket.size() - 5) + ".log";
  auto log = ReadFile(log_path);
  ASSERT_TRUE(log) << log.error().message;
  // The session's mosh-server is the one at the port mosh-client talks to (`auto` probed UDP
  // with a throwaway one while the session's was starting).
  ASSERT_EQ(client->argv.size(), 4u) << "mosh-client -# ADDRESS PORT";
  pid_t mosh_server = 0;
  const std::regex started("mosh-server listening on UDP port " + client->argv[3] + R"( \(pid (\d+)\))");
  if (std::smatch match; std::regex_search(*log, match, started)) mosh_server = std::stoi(match[1]);
  ASSERT_GT(mosh_server, 0) << *log;

  ASSERT_TRUE(Router({"-I", "FORWARD", "1", "-j", "DROP"})) << "could not cut the path at the router";
  auto cut_at = std::chrono::steady_clock::now();
  // Keepalives every 2 s, 2 unanswered: the master must notice well within the cut.
  auto down = wait_for_link("reconnecting", 20s);
  ASSERT_TRUE(down);
  EXPECT_EQ(down->link(), "reconnecting") << "the master did not notice the cut; log:\n"
                                          << ReadFile(log_path).value_or("");
  std::this_thread::sleep_for(30s - (std::chrono::steady_clock::now() - cut_at));
  ASSERT_TRUE(Router({"-D", "FORWARD", "1"})) << "could not restore the path";

  auto back = wait_for_link("up", 60s);
  ASSERT_TRUE(back);
  ASSERT_EQ(back->link(), "up") << back->link_detail() << "\nlog:\n" << ReadFile(log_path).value_or("");
  EXPECT_GE(back->reconnects(), 1u);
  EXPECT_EQ(back->pid(), before->pid()) << "the same master, not a new one";

  // Plain OpenSSH through the master, with no prompt possible: the reconnect needed nobody. From
  // this (root) namespace the server is unreachable, so only the master can have answered.
  CommandOptions batch;
  batch.timeout = 30s;
  auto ssh_s = RunCommand(env_.Command({"ssh", "-F", Var("NAT_SSH_CONFIG"), "-S", socket, "-o", "BatchMode=yes",
                                        "lab", "echo", "THROUGH-$((6*7))"}),
                          batch);
  ASSERT_TRUE(ssh_s) << ssh_s.error().message;
  EXPECT_EQ(ssh_s->exit_code, 0) << ssh_s->err;
  EXPECT_THAT(ssh_s->out, HasSubstr("THROUGH-42"));

  EXPECT_FALSE(ProcessGone(mosh_server)) << "mosh-server died during the cut";
  ASSERT_TRUE(tmux_->Type("echo AFTER-$((6*7))"));
  ASSERT_TRUE(tmux_->SendKeys("Enter"));
  EXPECT_TRUE(tmux_->WaitFor("AFTER-42", 60s)) << Screen();
  EXPECT_FALSE(ProcessGone(mosh_server)) << "the same mosh-server answered";
}

// The router drops UDP both ways. Stock mosh starts but nothing reaches mosh-server; mconnect
// (transport auto) probes, finds no UDP path and carries mosh's datagrams over the master. Then
// the path is cut for 20 s: the master reconnects, the relay starts again on the new connection
// and the same mosh-server answers.
TEST_F(NatLabTest, UdpBlockedMoshGoesOverSshAndSurvivesACut) {
  ASSERT_TRUE(Router({"-I", "FORWARD", "1", "-p", "udp", "-j", "DROP"})) << "could not block UDP at the router";

  // Stock mosh: its datagrams die at the router.
  StartPane("exec mosh -p " + ShellQuote(Var("NAT_UDP_RANGE")) + " " + ShellQuote(SshOption()) + " lab");
  auto stock = WaitForMoshClient(30s);
  ASSERT_TRUE(stock) << "stock mosh never started mosh-client; screen:\n" << Screen();
  ASSERT_TRUE(tmux_->Type("echo STOCK-$((6*7))"));
  ASSERT_TRUE(tmux_->SendKeys("Enter"));
  EXPECT_FALSE(tmux_->WaitFor("STOCK-42", 8s)) << "stock mosh got through a UDP block?\n" << Screen();
  KillPid(stock->pid);
  tmux_.reset();

  std::string strategy = "command:curl -sS --max-time 10 http://" + Var("NAT_INTERNET_IP") + ":" +
                         Var("NAT_HTTP_PORT") + "/";
  std::string ssh = SshOption() + " -o ServerAliveInterval=2 -o ServerAliveCountMax=2 -o ConnectTimeout=5";
  StartPane("exec " + ShellQuote(std::string(MCONNECT_BIN_DIR) + "/mconnect") + " -p " +
            ShellQuote(Var("NAT_UDP_RANGE")) + " --remote-ip " + ShellQuote(strategy) + " " + ShellQuote(ssh) + " lab");
  auto client = WaitForProcess(
      [pid = tmux_->PanePid()](const ProcessInfo& p) { return p.pid == pid && p.exe == "mosh-client"; }, 60s);
  ASSERT_TRUE(client) << "mosh-client never started; screen:\n" << Screen();
  to_kill_.push_back(client->pid);
  ASSERT_GE(client->argv.size(), 4u);
  EXPECT_EQ(client->argv[client->argv.size() - 2], "127.0.0.1") << "mosh-client talks to the master's relay socket";
  ASSERT_TRUE(tmux_->WaitForRegex("[#$] ", 30s)) << Screen();
  ASSERT_TRUE(tmux_->Type("echo RELAYED-$((6*7))"));
  ASSERT_TRUE(tmux_->SendKeys("Enter"));
  ASSERT_TRUE(tmux_->WaitFor("RELAYED-42", 30s)) << Screen();

  std::string socket = MasterSocket(Var("NAT_ROUTER_PUBLIC_IP"), Var("NAT_SSH_PORT"));
  std::string log_path = socket.substr(0, socket.size() - 5) + ".log";
  // The master says which transport the session uses and why (what `mconnect status` prints).
  // (Before the session's mosh-server, `auto` started a throwaway one for the UDP probe.)
  pid_t mosh_server = 0;
  {
    auto status = MasterStatus(socket);
    ASSERT_TRUE(status) << status.error().message;
    ASSERT_EQ(status->relay_sessions_size(), 1);
    const auto& relayed = status->relay_sessions(0);
    EXPECT_THAT(relayed.reason(), HasSubstr("no answer over UDP from " + Var("NAT_ROUTER_PUBLIC_IP")));
    EXPECT_TRUE(relayed.carrying());
    EXPECT_GT(relayed.to_server(), 0u);
    EXPECT_GT(relayed.to_client(), 0u);
    mosh_server = static_cast<pid_t>(relayed.server_pid());
  }
  ASSERT_GT(mosh_server, 0);
  auto log = ReadFile(log_path);
  ASSERT_TRUE(log) << log.error().message;
  EXPECT_TRUE(std::regex_search(*log, std::regex(R"(mosh relay running on the server \((perl|mconnect)\))"))) << *log;

  // Cut everything for 20 s, then restore.
  ASSERT_TRUE(Router({"-I", "FORWARD", "1", "-j", "DROP"}));
  std::this_thread::sleep_for(20s);
  ASSERT_TRUE(Router({"-D", "FORWARD", "1"}));
  EXPECT_FALSE(ProcessGone(mosh_server));
  ASSERT_TRUE(tmux_->Type("echo AFTER-$((6*7))"));
  ASSERT_TRUE(tmux_->SendKeys("Enter"));
  EXPECT_TRUE(tmux_->WaitFor("AFTER-42", 60s)) << Screen() << "\nlog:\n" << ReadFile(log_path).value_or("");
  EXPECT_FALSE(ProcessGone(mosh_server)) << "the same mosh-server answered";
  auto after = MasterStatus(socket);
  ASSERT_TRUE(after) << after.error().message;
  EXPECT_GE(after->reconnects(), 1u) << "the cut was long enough for the master to reconnect";
  ASSERT_EQ(after->relay_sessions_size(), 1);
  EXPECT_GE(after->relay_sessions(0).channels(), 2u) << "the relay ran on a new channel after the reconnect";
}

// A server with no inbound port at all: the router forwards nothing, and the server keeps a
// reverse tunnel (`ssh -N -R`) to a relay host the user controls. The user's ssh config says
// `ProxyJump relay` with the tunnel's port; `mconnect hidden` finds no UDP path (there is none)
// and lands in a mosh session whose datagrams go over the master.
TEST_F(NatLabTest, ServerWithNoInboundPortIsReachedThroughAReverseTunnel) {
  CommandOptions options;
  options.timeout = 30s;
  auto tunnel = RunCommand({NatLabScript(), "tunnel", lab_dir_}, options);
  ASSERT_TRUE(tunnel) << tunnel.error().message;
  ASSERT_TRUE(tunnel->ok()) << tunnel->err << tunnel->out;
  // Nothing reaches the server from outside now.
  auto direct = RunCommand({"/usr/sbin/ip", "netns", "exec", Var("NAT_CLIENT_NS"), "ssh", "-F", Var("NAT_SSH_CONFIG"),
                            "-o", "ConnectTimeout=3", "lab", "true"},
                           options);
  ASSERT_TRUE(direct);
  ASSERT_NE(direct->exit_code, 0) << "the server still has an inbound port";

  StartPane("exec " + ShellQuote(std::string(MCONNECT_BIN_DIR) + "/mconnect") + " -p " +
            ShellQuote(Var("NAT_UDP_RANGE")) + " " + ShellQuote(SshOption()) + " hidden");
  auto client = WaitForProcess(
      [pid = tmux_->PanePid()](const ProcessInfo& p) { return p.pid == pid && p.exe == "mosh-client"; }, 60s);
  ASSERT_TRUE(client) << "mosh-client never started; screen:\n" << Screen();
  to_kill_.push_back(client->pid);
  ASSERT_TRUE(tmux_->WaitForRegex("[#$] ", 30s)) << Screen();
  ASSERT_TRUE(tmux_->Type("echo HIDDEN-$((6*7)) $SSH_CONNECTION"));
  ASSERT_TRUE(tmux_->SendKeys("Enter"));
  ASSERT_TRUE(tmux_->WaitFor("HIDDEN-42 " + Var("NAT_SERVER_IP"), 30s)) << Screen();

  // The master reached the server through the jump host and carries mosh over SSH.
  auto status = MasterStatus(MasterSocket("127.0.0.1", Var("NAT_TUNNEL_PORT")));
  ASSERT_TRUE(status) << status.error().message;
  EXPECT_EQ(status->peer_address(), "") << "through a proxy there is no peer address";
  ASSERT_EQ(status->relay_sessions_size(), 1);
  EXPECT_THAT(status->relay_sessions(0).reason(), HasSubstr("UDP"));
  auto relay_log = ReadFile(lab_dir_ + "/relay-sshd.log");
  ASSERT_TRUE(relay_log);
  EXPECT_THAT(*relay_log, HasSubstr("Accepted publickey")) << "the master went through the relay host";
}

}  // namespace
}  // namespace mconnect::testing
