// Port forwards the master opens by itself: LocalForward/RemoteForward/DynamicForward from the
// user's ssh config (as OpenSSH's master does), and the profile's `forward` key. Data goes
// through them without any `ssh -O forward`; the server-side (-R) ones come back after the
// master reconnects, and the local ones stay listening meanwhile; `mconnect status` lists them.
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <unistd.h>

#include <fstream>
#include <future>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "proto/control.pb.h"
#include "tests/support/mconnect_lab.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;
using Clock = std::chrono::steady_clock;

class ConfiguredForwardsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto lab = MconnectLab::Start();
    ASSERT_TRUE(lab) << lab.error().message;
    lab_ = std::move(*lab);
    std::string root = lab_->dir().Sub("www");
    ::mkdir(root.c_str(), 0700);
    http_ = std::make_unique<HttpServer>(root);
    ASSERT_TRUE(http_->ready());
  }

  // An ssh config with `lines` for Host lab, then the lab's own config.
  std::string SshConfig(const std::string& lines) {
    std::string path = lab_->dir().Sub("forward_ssh_config");
    std::ofstream(path) << "Host lab\n" << lines << "Host *\nInclude " << lab_->sshd().ssh_config() << "\n";
    return "--ssh=ssh -F " + path;
  }
  std::string Profile(const std::string& text) {
    std::string path = lab_->dir().Sub("config.toml");
    std::ofstream(path) << text;
    return path;
  }
  // `mconnect ip` with `ssh` (an --ssh option) given keepalives every second, so that a lost
  // server is noticed soon.
  CommandOutput Ip(const std::string& ssh, std::vector<std::string> options = {}) {
    std::vector<std::string> args{"ip", ssh + " -o ServerAliveInterval=1 -o ServerAliveCountMax=2"};
    args.insert(args.end(), options.begin(), options.end());
    args.push_back("lab");
    auto result = lab_->Run(args, 60s);
    EXPECT_TRUE(result) << result.error().message;
    return result ? *result : CommandOutput{};
  }
  std::string Target() const { return "127.0.0.1:" + std::to_string(http_->port()); }

  // GET /index.html at 127.0.0.1:port by curl, which knows nothing of SSH; retried until `within`
  // has passed (a server-side listener is being set up).
  CommandOutput Fetch(int port, std::chrono::milliseconds within = 0ms) {
    CommandOutput last;
    for (auto deadline = Clock::now() + within;;) {
      CommandOptions options;
      options.timeout = 40s;
      auto result = RunCommand(
          ShellCommand("curl -sS --max-time 30 http://127.0.0.1:" + std::to_string(port) + "/index.html"), options);
      last = result ? *result : CommandOutput{};
      if (last.exit_code == 0 || Clock::now() >= deadline) return last;
      std::this_thread::sleep_for(200ms);
    }
  }

  std::optional<control::StatusReply> WaitForLink(const std::string& link, std::chrono::milliseconds timeout) {
    std::optional<control::StatusReply> status;
    for (auto deadline = Clock::now() + timeout; Clock::now() < deadline; std::this_thread::sleep_for(50ms)) {
      auto reply = lab_->Status();
      if (reply) status = *reply;
      if (status && status->link() == link) break;
    }
    return status;
  }

  std::unique_ptr<MconnectLab> lab_;
  std::unique_ptr<HttpServer> http_;
};

int Lines(const std::string& text) {
  int lines = 0;
  for (char c : text) lines += c == '\n';
  return lines;
}

TEST_F(ConfiguredForwardsTest, SshConfigLocalForwardCarriesDataOnceTheMasterStarts) {
  int port = FreeTcpPort();
  auto ssh = SshConfig("  LocalForward 127.0.0.1:" + std::to_string(port) + " " + Target() + "\n");
  auto started = Ip(ssh);
  ASSERT_EQ(started.exit_code, 0) << started.err;
  auto got = Fetch(port);
  EXPECT_EQ(got.exit_code, 0) << got.err << "\nlog:\n" << lab_->MasterLog();
  EXPECT_EQ(got.out, "mconnect-forward-ok\n");
}

TEST_F(ConfiguredForwardsTest, SshConfigRemoteAndDynamicForwardsAreOpenedToo) {
  int remote = FreeTcpPort();
  int dynamic = FreeTcpPort();
  auto ssh = SshConfig("  RemoteForward 127.0.0.1:" + std::to_string(remote) + " " + Target() +
                       "\n  DynamicForward 127.0.0.1:" + std::to_string(dynamic) + "\n");
  ASSERT_EQ(Ip(ssh).exit_code, 0);
  auto through_server = Fetch(remote, 10s);
  EXPECT_EQ(through_server.out, "mconnect-forward-ok\n") << through_server.err << "\nlog:\n" << lab_->MasterLog();
  CommandOptions options;
  options.timeout = 20s;
  auto socks = RunCommand(ShellCommand("curl -sS --max-time 10 --socks5 127.0.0.1:" + std::to_string(dynamic) +
                                       " http://" + Target() + "/index.html"),
                          options);
  ASSERT_TRUE(socks);
  EXPECT_EQ(socks->out, "mconnect-forward-ok\n") << socks->err;
}

TEST_F(ConfiguredForwardsTest, ClearAllForwardingsOpensNone) {
  int port = FreeTcpPort();
  auto ssh = SshConfig("  LocalForward 127.0.0.1:" + std::to_string(port) + " " + Target() +
                       "\n  ClearAllForwardings yes\n");
  ASSERT_EQ(Ip(ssh).exit_code, 0);
  EXPECT_NE(Fetch(port).exit_code, 0) << "nothing listens on " << port;
}

// ssh's ExitOnForwardFailure: a local forward that cannot listen stops the master before it
// detaches, with ssh's reason on the terminal; without it, the master serves and status says why.
TEST_F(ConfiguredForwardsTest, ExitOnForwardFailureStopsTheMasterOnABusyPort) {
  int busy = FreeTcpPort();
  int holder = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(holder, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(busy));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(holder, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(holder, 1), 0);
  const std::string line = "  LocalForward 127.0.0.1:" + std::to_string(busy) + " " + Target() + "\n";

  auto refused = Ip(SshConfig(line + "  ExitOnForwardFailure yes\n"));
  EXPECT_EQ(refused.exit_code, 255) << refused.err;
  EXPECT_THAT(refused.err, HasSubstr("cannot listen on 127.0.0.1 port " + std::to_string(busy)));
  EXPECT_THAT(refused.err, HasSubstr("ExitOnForwardFailure"));
  EXPECT_EQ(lab_->MasterPid(), 0);

  auto served = Ip(SshConfig(line));
  EXPECT_EQ(served.exit_code, 0) << served.err;
  auto status = lab_->Run({"status"});
  ASSERT_TRUE(status);
  EXPECT_THAT(status->out, HasSubstr("failed: cannot listen on 127.0.0.1 port " + std::to_string(busy))) << status->out;
  ::close(holder);
}

// The profile's forwards: -L and -R carry data, the connection is cut (the server goes away and
// comes back), the master reconnects, and both carry data again; a connection made through the
// -L while the link is down waits for the new connection.
TEST_F(ConfiguredForwardsTest, ProfileForwardsSurviveAReconnect) {
  int local = FreeTcpPort();
  int remote = FreeTcpPort();
  auto profile = Profile("[host.lab]\nforward = [\"L 127.0.0.1:" + std::to_string(local) + ":" + Target() +
                         "\", \"R 127.0.0.1:" + std::to_string(remote) + ":" + Target() + "\"]\n");
  auto started = Ip(lab_->SshOption(), {"--config", profile});
  ASSERT_EQ(started.exit_code, 0) << started.err;
  EXPECT_EQ(Fetch(local).out, "mconnect-forward-ok\n") << lab_->MasterLog();
  EXPECT_EQ(Fetch(remote, 10s).out, "mconnect-forward-ok\n") << lab_->MasterLog();

  lab_->sshd().Stop();
  auto down = WaitForLink("reconnecting", 10s);
  ASSERT_TRUE(down && down->link() == "reconnecting");
  auto waiting = std::async(std::launch::async, [this, local] { return Fetch(local); });
  ASSERT_EQ(waiting.wait_for(1s), std::future_status::timeout) << "the connection waits for the link";
  ASSERT_TRUE(lab_->sshd().Restart());
  auto up = WaitForLink("up", 30s);
  ASSERT_TRUE(up && up->link() == "up") << lab_->MasterLog();
  EXPECT_EQ(waiting.get().out, "mconnect-forward-ok\n") << lab_->MasterLog();

  EXPECT_EQ(Fetch(local).out, "mconnect-forward-ok\n") << lab_->MasterLog();
  auto again = Fetch(remote, 15s);
  EXPECT_EQ(again.out, "mconnect-forward-ok\n") << again.err << "\nlog:\n" << lab_->MasterLog();
}

TEST_F(ConfiguredForwardsTest, StatusListsEachForwardWithItsState) {
  int local = FreeTcpPort();
  int dynamic = FreeTcpPort();
  auto ssh = SshConfig("  LocalForward 127.0.0.1:" + std::to_string(local) + " " + Target() + "\n");
  auto profile = Profile("[host.lab]\nforward = [\"D 127.0.0.1:" + std::to_string(dynamic) + "\"]\n");
  ASSERT_EQ(Ip(ssh, {"--config", profile}).exit_code, 0);
  auto reply = lab_->Status();
  ASSERT_TRUE(reply) << reply.error().message;
  ASSERT_EQ(reply->configured_forwards_size(), 2);
  EXPECT_EQ(reply->configured_forwards(0).state(), "up");
  EXPECT_EQ(reply->configured_forwards(1).kind(), "D");
  auto status = lab_->Run({"status"});
  ASSERT_TRUE(status);
  EXPECT_THAT(status->out, HasSubstr("forward L [127.0.0.1]:" + std::to_string(local) + " [127.0.0.1]:" +
                                     std::to_string(http_->port()) + " (ssh config): up"))
      << status->out;
  EXPECT_THAT(status->out, HasSubstr("forward D 127.0.0.1:" + std::to_string(dynamic) + " (profile): up"))
      << status->out;
}

TEST_F(ConfiguredForwardsTest, BadProfileForwardIsOneLineNamingKeyAndEntry) {
  auto profile = Profile("[host.lab]\nforward = [\"L 8080:localhost:80\", \"X 80\"]\n");
  auto result = lab_->Run({"ip", lab_->SshOption(), "--config", profile, "lab"});
  ASSERT_TRUE(result);
  EXPECT_NE(result->exit_code, 0);
  EXPECT_THAT(result->err, HasSubstr("config.toml:2: forward \"X 80\" is not a forward: "));
  EXPECT_THAT(result->err, Not(HasSubstr("unknown key")));
  EXPECT_LE(Lines(result->err), 2) << "the line, and the hint to fix it:\n" << result->err;
  EXPECT_EQ(lab_->MasterPid(), 0);
}

}  // namespace
}  // namespace mconnect::testing
