// The `ssh` transport at the master's level: mosh-server bound to the server's loopback, the
// master's UDP socket on ours, and between them an SSH channel to a relay on the server. The
// UDP probe (an authentic mosh datagram with the session key) gets mosh-server's answer through
// it; the relay survives the master's reconnect, and ends with mosh-server.
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "proto/control.pb.h"
#include "remote-ip/udp_probe.h"
#include "tests/support/mconnect_lab.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::AnyOf;
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

class RelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto lab = MconnectLab::Start();
    ASSERT_TRUE(lab) << lab.error().message;
    lab_ = std::move(*lab);
    auto ip = lab_->Run({"ip", lab_->SshOption() + " -o ServerAliveInterval=1 -o ServerAliveCountMax=2", "lab"});
    ASSERT_TRUE(ip);
    ASSERT_EQ(ip->exit_code, 0) << ip->err;
  }
  void TearDown() override {
    if (server_pid_ > 0) KillPid(server_pid_);
    if (lab_) lab_->Cleanup();
  }

  template <typename Reply, typename Request>
  Result<Reply> Call(proto::MessageType type, const Request& request, proto::MessageType reply_type,
                     std::chrono::milliseconds timeout = 20s) {
    auto client = lab_->Connect();
    if (!client) return Fail(client.error());
    auto reply = client->Call<Reply>(type, request, reply_type, timeout);
    if (!reply) return Fail("{}", reply.error().message);
    return *reply;
  }

  // mosh-server on the server's loopback only, as the ssh transport starts it.
  control::StartMoshServerReply StartLoopbackMoshServer() {
    control::StartMoshServerRequest request;
    request.set_bind("127.0.0.1");
    request.add_locale("LANG=C.UTF-8");
    auto reply = Call<control::StartMoshServerReply>(proto::MessageType::kStartMoshServer, request,
                                                     proto::MessageType::kStartMoshServerReply);
    EXPECT_TRUE(reply) << reply.error().message;
    if (!reply) return {};
    server_pid_ = static_cast<pid_t>(reply->server_pid());
    return *reply;
  }

  Result<control::StartRelayReply> StartRelay(const control::StartMoshServerReply& server, const std::string& relay) {
    control::StartRelayRequest request;
    request.set_port(server.port());
    request.set_server_pid(server.server_pid());
    request.set_relay(relay);
    return Call<control::StartRelayReply>(proto::MessageType::kStartRelay, request,
                                          proto::MessageType::kStartRelayReply);
  }

  control::StatusReply Status() {
    auto status = Call<control::StatusReply>(proto::MessageType::kStatus, control::StatusRequest{},
                                             proto::MessageType::kStatusReply, 2s);
    return status ? *status : control::StatusReply{};
  }

  std::unique_ptr<MconnectLab> lab_;
  pid_t server_pid_ = 0;
};

TEST_F(RelayTest, MoshServerAnswersThroughThePerlRelay) {
  auto server = StartLoopbackMoshServer();
  ASSERT_GT(server.port(), 0u);
  auto relay = StartRelay(server, "perl");
  ASSERT_TRUE(relay) << relay.error().message;
  EXPECT_EQ(relay->relay(), "perl");
  ASSERT_GT(relay->local_port(), 0u);

  auto probe = remoteip::ProbeMoshServer("127.0.0.1", static_cast<std::uint16_t>(relay->local_port()), server.key(), 3s);
  ASSERT_TRUE(probe) << probe.error().message;
  EXPECT_TRUE(probe->answered) << probe->detail;
  EXPECT_EQ(Status().relays(), 1u);
}

// The connection is lost and comes back: the relay gets a new channel on the new connection,
// and the same local port still reaches the same mosh-server.
TEST_F(RelayTest, RelayCarriesOnAfterTheMasterReconnects) {
  auto server = StartLoopbackMoshServer();
  auto relay = StartRelay(server, "perl");
  ASSERT_TRUE(relay) << relay.error().message;
  auto port = static_cast<std::uint16_t>(relay->local_port());
  ASSERT_TRUE(remoteip::ProbeMoshServer("127.0.0.1", port, server.key(), 3s)->answered);

  lab_->sshd().Stop();  // mosh-server has detached from sshd: it stays
  for (auto deadline = Clock::now() + 10s; Clock::now() < deadline && Status().link() != "reconnecting";) {
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(Status().link(), "reconnecting");
  EXPECT_FALSE(ProcessGone(server_pid_)) << "mosh-server went with sshd";
  auto lost = remoteip::ProbeMoshServer("127.0.0.1", port, server.key(), 500ms);
  ASSERT_TRUE(lost);
  EXPECT_FALSE(lost->answered) << "no channel, no answer: " << lost->detail;

  ASSERT_TRUE(lab_->sshd().Restart());
  bool answered = false;
  for (auto deadline = Clock::now() + 30s; !answered && Clock::now() < deadline;) {
    auto probe = remoteip::ProbeMoshServer("127.0.0.1", port, server.key(), 1s);
    answered = probe && probe->answered;
  }
  EXPECT_TRUE(answered) << "the relay did not come back after the reconnect";
  EXPECT_EQ(Status().relays(), 1u);
}

// mosh-server exits (the user logged out): the server side notices and the relay goes.
TEST_F(RelayTest, RelayEndsWithMoshServer) {
  auto server = StartLoopbackMoshServer();
  auto relay = StartRelay(server, "");
  ASSERT_TRUE(relay) << relay.error().message;
  EXPECT_THAT(relay->relay(), AnyOf("perl", "mconnect"));
  ASSERT_EQ(Status().relays(), 1u);
  ASSERT_TRUE(KillPid(server_pid_));
  bool gone = false;
  for (auto deadline = Clock::now() + 15s; !gone && Clock::now() < deadline;) {
    gone = Status().relays() == 0;
    if (!gone) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(gone) << "the relay outlived mosh-server";
}

TEST_F(RelayTest, BadRequestsAreClearErrors) {
  control::StartMoshServerReply no_server;
  no_server.set_port(0);
  auto zero = StartRelay(no_server, "perl");
  ASSERT_FALSE(zero);
  EXPECT_THAT(zero.error().message, HasSubstr("port"));
  no_server.set_port(60001);
  auto unknown = StartRelay(no_server, "python");
  ASSERT_FALSE(unknown);
  EXPECT_THAT(unknown.error().message, HasSubstr("unknown relay"));
}

}  // namespace
}  // namespace mconnect::testing
