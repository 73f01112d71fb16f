// A master that survives its server going away: it notices, reconnects without a person when
// the server is back, lets requests that arrive meanwhile wait, says in `status` when only a
// person can bring it back (and the next mconnect replaces it), and exits after its persist time
// when the server never returns. (The network cut with a mosh session running is in the NAT lab.)
#include <sys/stat.h>

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
using Clock = std::chrono::steady_clock;

class ReconnectTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto lab = MconnectLab::Start();
    ASSERT_TRUE(lab) << lab.error().message;
    lab_ = std::move(*lab);
  }

  // `mconnect ip lab`, with keepalives every second so that a silent server is noticed soon.
  CommandOutput Ip(std::vector<std::string> extra = {}, std::chrono::milliseconds timeout = 60s) {
    std::vector<std::string> args{"ip", lab_->SshOption() + " -o ServerAliveInterval=1 -o ServerAliveCountMax=2"};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back("lab");
    auto result = lab_->Run(args, timeout);
    EXPECT_TRUE(result) << result.error().message;
    return result ? *result : CommandOutput{};
  }

  std::optional<control::StatusReply> Status() {
    auto client = lab_->Connect();
    if (!client) return std::nullopt;
    auto status = client->Call<control::StatusReply>(proto::MessageType::kStatus, control::StatusRequest{},
                                                     proto::MessageType::kStatusReply, 2s);
    if (!status) return std::nullopt;
    return *status;
  }

  // Polls Status until its link is `link` or `timeout` passes; the last status seen.
  std::optional<control::StatusReply> WaitForLink(const std::string& link, std::chrono::milliseconds timeout) {
    std::optional<control::StatusReply> status;
    for (auto deadline = Clock::now() + timeout; Clock::now() < deadline; std::this_thread::sleep_for(50ms)) {
      status = Status();
      if (status && status->link() == link) break;
    }
    return status;
  }

  std::string MasterLog() {
    std::string socket = lab_->SocketPath();
    auto log = ReadFile(socket.substr(0, socket.size() - 5) + ".log");
    return log ? *log : log.error().message;
  }

  std::unique_ptr<MconnectLab> lab_;
};

TEST_F(ReconnectTest, MasterReconnectsWhenTheServerComesBack) {
  ASSERT_EQ(Ip().exit_code, 0);
  pid_t master = lab_->MasterPid();
  ASSERT_GT(master, 0);
  auto up = Status();
  ASSERT_TRUE(up);
  EXPECT_EQ(up->link(), "up");

  lab_->sshd().Stop();  // the listener and the session serving the master
  auto down = WaitForLink("reconnecting", 10s);
  ASSERT_TRUE(down);
  ASSERT_EQ(down->link(), "reconnecting") << "the master must notice the lost connection";
  EXPECT_FALSE(down->link_detail().empty());
  EXPECT_EQ(lab_->MasterPid(), master) << "it stays, socket and all";

  ASSERT_TRUE(lab_->sshd().Restart());
  auto back = WaitForLink("up", 30s);
  ASSERT_TRUE(back);
  ASSERT_EQ(back->link(), "up") << "detail: " << back->link_detail() << "\nlog:\n" << MasterLog();
  EXPECT_EQ(back->reconnects(), 1u);
  EXPECT_EQ(back->connections_opened(), 2u);

  auto after = Ip();
  EXPECT_EQ(after.exit_code, 0) << after.err;
  EXPECT_EQ(lab_->MasterPid(), master);
  EXPECT_EQ(lab_->sshd().CountInLog("Accepted publickey"), 2) << "one authentication before, one after";
  EXPECT_THAT(MasterLog(), HasSubstr("reconnected to"));
}

// A request made while the server is away waits for it instead of failing.
TEST_F(ReconnectTest, RequestsWaitForTheReconnect) {
  ASSERT_EQ(Ip().exit_code, 0);
  pid_t master = lab_->MasterPid();
  lab_->sshd().Stop();
  ASSERT_EQ(WaitForLink("reconnecting", 10s)->link(), "reconnecting");

  auto waiting = std::async(std::launch::async, [this] { return Ip({"--remote-ip", "ssh-connection"}); });
  ASSERT_EQ(waiting.wait_for(2s), std::future_status::timeout) << "the request should wait, not fail";
  ASSERT_TRUE(lab_->sshd().Restart());
  auto answered = waiting.get();
  EXPECT_EQ(answered.exit_code, 0) << answered.err;
  EXPECT_THAT(answered.out, HasSubstr("127.0.0.1"));
  EXPECT_EQ(lab_->MasterPid(), master);
}

// The server comes back with another host key: no reconnect without a person. Status says so;
// the next mconnect replaces the master with one in the foreground, which refuses the changed
// key with OpenSSH's warning.
TEST_F(ReconnectTest, AChangedHostKeyNeedsAPersonAndTheNextMconnectTakesOver) {
  ASSERT_EQ(Ip().exit_code, 0);
  pid_t master = lab_->MasterPid();
  ASSERT_TRUE(lab_->sshd().Rekey());  // cuts the master's connection, same port, new key
  auto stuck = WaitForLink("needs-person", 30s);
  ASSERT_TRUE(stuck);
  ASSERT_EQ(stuck->link(), "needs-person") << stuck->link_detail() << "\nlog:\n" << MasterLog();
  EXPECT_THAT(stuck->link_detail(), HasSubstr("host key"));
  EXPECT_EQ(lab_->sshd().CountInLog("Accepted publickey"), 1) << "nothing authenticated to the new key";

  auto status = lab_->Run({"status"});
  ASSERT_TRUE(status);
  EXPECT_THAT(status->out + status->err, HasSubstr("needs-person"));

  auto next = Ip();
  EXPECT_EQ(next.exit_code, 255);
  EXPECT_THAT(next.err, HasSubstr("needs you to authenticate again"));
  EXPECT_THAT(next.err, HasSubstr("REMOTE HOST IDENTIFICATION HAS CHANGED"));
  EXPECT_TRUE(ProcessGone(master)) << "the stuck master was replaced";
}

// Nobody comes back: the master counts as idle while it reconnects, and leaves after its
// persist time, removing its socket.
TEST_F(ReconnectTest, MasterWhoseServerStaysAwayLeavesAfterItsPersistTime) {
  ASSERT_EQ(Ip({"--persist", "3"}).exit_code, 0);
  pid_t master = lab_->MasterPid();
  ASSERT_GT(master, 0);
  lab_->sshd().Stop();
  bool gone = false;
  for (auto deadline = Clock::now() + 15s; !gone && Clock::now() < deadline;) {
    gone = ProcessGone(master);
    if (!gone) std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(gone) << "log:\n" << MasterLog();
  struct stat st{};
  EXPECT_NE(::lstat(lab_->SocketPath().c_str(), &st), 0) << "the socket must go with the master";
  auto next = Ip();
  EXPECT_EQ(next.exit_code, 255);
  EXPECT_THAT(next.err, HasSubstr("Connection refused"));
}

}  // namespace
}  // namespace mconnect::testing
