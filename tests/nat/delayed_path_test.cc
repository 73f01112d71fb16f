// The master on a 50 ms path (bench/netpath: two namespaces joined by TUN devices and
// mconnect-delay-link, since this kernel has no netem). libssh2 opens one channel at a time per
// connection, a round trip each, so a burst of sessions queues behind the opens; the master
// spreads the queue over more connections. Behaviour, not speed, is checked here: every session
// succeeds, more connections were opened for the burst, and the channel window grew with the
// path's delay (the figures are bench/run's).
//
// Needs root (network namespaces): without it the test fails and says so.
#include <unistd.h>

#include <fstream>
#include <future>
#include <map>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/subprocess.h"
#include "proto/client.h"
#include "proto/control.pb.h"
#include "tests/support/lab.h"
#include "tests/support/paths.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

std::string Script(std::string_view name) { return std::string(MCONNECT_SOURCE_DIR) + "/" + std::string(name); }

class DelayedPathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "the delayed path needs root: it creates network namespaces and TUN devices "
                                  "(running as uid "
                               << ::geteuid() << ")";
    AdoptOrphans();
    path_dir_ = dir_.Sub("netpath");
    CommandOptions options;
    options.timeout = 60s;
    auto up = RunCommand({"env", "MCONNECT_BIN_DIR=" + std::string(MCONNECT_BIN_DIR), Script("bench/netpath"), "up", path_dir_, "--rtt", "50", "--tag", std::to_string(::getpid())},
                         options);
    ASSERT_TRUE(up) << up.error().message;
    path_up_ = true;
    ASSERT_TRUE(up->ok()) << "netpath up failed: " << up->err << up->out;
    auto env = ReadFile(path_dir_ + "/env");
    ASSERT_TRUE(env) << env.error().message;
    std::istringstream lines(*env);
    for (std::string line; std::getline(lines, line);) {
      if (auto eq = line.find('='); eq != std::string::npos) vars_[line.substr(0, eq)] = line.substr(eq + 1);
    }

    // sshd-lab inside the server namespace, listening on the path's address too.
    lab_dir_ = dir_.Sub("sshd");
    ASSERT_EQ(::mkdir(lab_dir_.c_str(), 0700), 0);
    std::ofstream(lab_dir_ + "/sshd_config.extra") << "ListenAddress " << vars_["NETPATH_SERVER_IP"] << "\n";
    auto started = RunCommand({"/usr/sbin/ip", "netns", "exec", vars_["NETPATH_SERVER_NS"], Script("tests/lab/sshd-lab"),
                               "start", lab_dir_},
                              options);
    ASSERT_TRUE(started && started->ok()) << (started ? started->err : started.error().message);
    lab_up_ = true;
    auto port = ReadFile(lab_dir_ + "/env");
    ASSERT_TRUE(port);
    std::string port_text = port->substr(port->find("LAB_PORT=") + 9);
    port_ = port_text.substr(0, port_text.find('\n'));
    auto host_key = ReadFile(lab_dir_ + "/host_ed25519_key.pub");
    ASSERT_TRUE(host_key);
    std::istringstream key_words(*host_key);
    std::string type, key;
    key_words >> type >> key;
    std::ofstream(lab_dir_ + "/known_hosts_path") << "[" << vars_["NETPATH_SERVER_IP"] << "]:" << port_ << " "
                                                        << type << " " << key << "\n";
    config_ = dir_.Sub("ssh_config");
    std::ofstream(config_) << "Host far\n  HostName " << vars_["NETPATH_SERVER_IP"] << "\n  Port " << port_
                           << "\n  User root\n  IdentityFile " << lab_dir_ << "/id_ed25519\n  IdentitiesOnly yes\n"
                           << "  UserKnownHostsFile " << lab_dir_ << "/known_hosts_path\n  GlobalKnownHostsFile /dev/null\n"
                           << "  StrictHostKeyChecking yes\n  BatchMode yes\n  ControlMaster no\n  ControlPath none\n";
    socket_ = env_.runtime_dir + "/mconnect/far.sock";
  }

  void TearDown() override {
    if (!socket_.empty()) {
      if (auto master = proto::ControlClient::Connect(socket_, 2s)) KillPid(static_cast<pid_t>(master->master_pid()));
    }
    CommandOptions options;
    options.timeout = 60s;
    if (lab_up_) {
      RunCommand({"/usr/sbin/ip", "netns", "exec", vars_["NETPATH_SERVER_NS"], Script("tests/lab/sshd-lab"), "stop",
                  lab_dir_},
                 options);
    }
    if (path_up_) {
      auto down = RunCommand({Script("bench/netpath"), "down", path_dir_}, options);
      EXPECT_TRUE(down && down->ok()) << "netpath down failed: " << (down ? down->err : down.error().message);
      // After a failure: whether the delay link dropped anything (its stats line).
      if (HasFailure()) std::cerr << ReadFile(path_dir_ + "/delay.log").value_or("(no delay.log)\n");
    }
    pid_t self = ::getpid();
    for (const auto& process : FindProcesses([self](const ProcessInfo& p) { return p.ppid == self; })) {
      KillPid(process.pid, 500ms);
    }
  }

  // `mconnect ARGS` inside the client namespace.
  Result<CommandOutput> Mconnect(const std::vector<std::string>& args) {
    std::vector<std::string> argv{"/usr/sbin/ip", "netns", "exec", vars_["NETPATH_CLIENT_NS"]};
    for (const auto& word : env_.Command(args)) argv.push_back(word);
    CommandOptions options;
    options.timeout = 60s;
    return RunCommand(argv, options);
  }

  TempDir dir_;
  LabEnv env_{dir_.path()};
  std::string path_dir_, lab_dir_, config_, port_, socket_;
  std::map<std::string, std::string> vars_;
  bool path_up_ = false;
  bool lab_up_ = false;
};

TEST_F(DelayedPathTest, BurstOfSessionsIsSpreadOverMoreConnections) {
  ASSERT_EQ(::mkdir((env_.runtime_dir + "/mconnect").c_str(), 0700), 0);
  auto started = Mconnect({std::string(MCONNECT_BIN_DIR) + "/mconnect", "ip", "-v", "--ssh=ssh -F " + config_, "--socket=" + socket_, "far"});
  ASSERT_TRUE(started) << started.error().message;
  ASSERT_EQ(started->exit_code, 0) << started->err;

  // 40 sessions at once. ssh -S talks only to the Unix socket: from this (root) namespace the
  // server is unreachable, so nothing can fall back to a connection of its own.
  std::vector<std::future<Result<CommandOutput>>> sessions;
  for (int i = 0; i < 40; ++i) {
    sessions.push_back(std::async(std::launch::async, [this, i] {
      CommandOptions options;
      options.timeout = 60s;
      return RunCommand(env_.Command({"ssh", "-F", config_, "-S", socket_, "far", "echo burst-" + std::to_string(i)}),
                        options);
    }));
  }
  int succeeded = 0;
  for (int i = 0; i < 40; ++i) {
    auto result = sessions[i].get();
    ASSERT_TRUE(result) << result.error().message;
    EXPECT_EQ(result->exit_code, 0) << "session " << i << ": " << result->err;
    if (result->exit_code == 0 && result->out == "burst-" + std::to_string(i) + "\n") ++succeeded;
  }
  EXPECT_EQ(succeeded, 40);

  auto master = proto::ControlClient::Connect(socket_, 2s);
  ASSERT_TRUE(master) << master.error().message;
  auto status = master->Call<control::StatusReply>(proto::MessageType::kStatus, control::StatusRequest{},
                                                   proto::MessageType::kStatusReply, 5s);
  ASSERT_TRUE(status) << status.error().message;
  EXPECT_GT(status->connections_opened(), 1u) << "the opens queued behind one connection's round trips";
  auto log = ReadFile(socket_.substr(0, socket_.size() - 5) + ".log");
  ASSERT_TRUE(log) << log.error().message;
  EXPECT_THAT(*log, HasSubstr("opened overflow connection"));
}

// A window of 2 MiB moves at most 40 MiB/s on a 50 ms path: the master's session channels get
// one sized from the path's RTT (status says which), and 64 MiB arrive intact through it.
TEST_F(DelayedPathTest, ChannelWindowGrowsWithTheDelay) {
  ASSERT_EQ(::mkdir((env_.runtime_dir + "/mconnect").c_str(), 0700), 0);
  auto started = Mconnect({std::string(MCONNECT_BIN_DIR) + "/mconnect", "ip", "--ssh=ssh -F " + config_, "--socket=" + socket_, "far"});
  ASSERT_TRUE(started) << started.error().message;
  ASSERT_EQ(started->exit_code, 0) << started->err;
  CommandOptions options;
  options.timeout = 120s;
  auto transfer = RunCommand(env_.Command({"sh", "-c",
                                           "ssh -F " + ShellQuote(config_) + " -S " + ShellQuote(socket_) +
                                               " far 'head -c 67108864 /dev/zero' | wc -c"}),
                             options);
  ASSERT_TRUE(transfer) << transfer.error().message;
  EXPECT_EQ(transfer->out, "67108864\n") << transfer->err;
  auto master = proto::ControlClient::Connect(socket_, 2s);
  ASSERT_TRUE(master) << master.error().message;
  auto status = master->Call<control::StatusReply>(proto::MessageType::kStatus, control::StatusRequest{},
                                                   proto::MessageType::kStatusReply, 5s);
  ASSERT_TRUE(status) << status.error().message;
  // 160 MiB/s x 50 ms = 8 MiB; TCP's smoothed RTT may read a little under the path's.
  EXPECT_GE(status->channel_window(), 6u << 20) << "RTT-sized window on a 50 ms path";
  EXPECT_LE(status->channel_window(), 16u << 20);
}

}  // namespace
}  // namespace mconnect::testing
