// The `ssh` transport at the master's level: mosh-server bound to the server's loopback, the
// master's UDP socket on ours, and between them an SSH channel to a relay on the server. The
// UDP probe (an authentic mosh datagram with the session key) gets mosh-server's answer through
// it; the relay survives the master's reconnect, and ends with mosh-server. The master's UDP
// port is on 127.0.0.1, where every local user can send to it: only this user's sockets may
// become mosh-client's return path.
#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <optional>
#include <span>
#include <string_view>
#include <thread>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/udp_socket_owner.h"
#include "base/unique_fd.h"
#include "mosh/datagram.h"
#include "mosh/udp_probe.h"
#include "proto/control.pb.h"
#include "tests/support/mconnect_lab.h"
#include "tests/support/require.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::AnyOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using Clock = std::chrono::steady_clock;

// The unprivileged user the tests act as when they play another local user.
constexpr uid_t kNobody = 65534;

sockaddr_in Loopback(std::uint16_t port, std::uint32_t address = INADDR_LOOPBACK) {
  sockaddr_in result{};
  result.sin_family = AF_INET;
  result.sin_addr.s_addr = htonl(address);
  result.sin_port = htons(port);
  return result;
}

// ---- playing mosh-client, and another local user -------------------------------------------

#define REQUIRE_ROOT() MCONNECT_REQUIRE_ROOT("to act as another user")

// A UDP socket of this process on 127.0.0.1, in mosh-client's part.
struct UdpEnd {
  UniqueFd fd;
  std::uint16_t port = 0;
};

UdpEnd BindLoopbackUdp() {
  UdpEnd end{UniqueFd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0))};
  sockaddr_in local = Loopback(0);
  socklen_t length = sizeof local;
  if (!end.fd || ::bind(end.fd.get(), reinterpret_cast<sockaddr*>(&local), sizeof local) != 0 ||
      ::getsockname(end.fd.get(), reinterpret_cast<sockaddr*>(&local), &length) != 0) {
    ADD_FAILURE() << "cannot bind a UDP socket on 127.0.0.1: " << std::strerror(errno);
    return end;
  }
  end.port = ntohs(local.sin_port);
  return end;
}

// mosh's timestamp16: never 0xFFFF ("none").
std::uint16_t Timestamp16() {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count();
  auto ts = static_cast<std::uint16_t>(static_cast<std::uint64_t>(ms) & 0xFFFF);
  return ts == mosh::kMoshNoTimestamp ? 0 : ts;
}

// What the UDP probe sends ("I have your state 0"), authentic under the session key.
bool SendHello(const UdpEnd& from, std::uint16_t relay_port, const mosh::MoshKey& key, std::uint64_t seq) {
  auto datagram = mosh::EncodeClientPacket(key, seq, Timestamp16(), mosh::MoshInstruction{});
  if (!datagram) return false;
  sockaddr_in relay = Loopback(relay_port);
  return ::sendto(from.fd.get(), datagram->data(), datagram->size(), 0, reinterpret_cast<sockaddr*>(&relay),
                  sizeof relay) == static_cast<ssize_t>(datagram->size());
}

// Authentic datagrams from mosh-server that reach `end` before `deadline`; returns once there
// are `enough`.
int ReceiveFromServer(const UdpEnd& end, const mosh::MoshKey& key, Clock::time_point deadline,
                      int enough = INT_MAX) {
  int received = 0;
  std::array<std::uint8_t, mosh::kMoshMaxDatagram + 1> buffer;
  while (received < enough) {
    ssize_t n = ::recv(end.fd.get(), buffer.data(), buffer.size(), 0);
    if (n >= 0) {
      if (mosh::DecodeServerPacket(key, std::span(buffer.data(), static_cast<std::size_t>(n)))) ++received;
      continue;
    }
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left <= 0ms) break;
    pollfd poll_fd{end.fd.get(), POLLIN, 0};
    ::poll(&poll_fd, 1, static_cast<int>(std::min(left, 1000ms).count()));
  }
  return received;
}

void Drain(const UdpEnd& end) {
  char buffer[4096];
  while (::recv(end.fd.get(), buffer, sizeof buffer, MSG_DONTWAIT) >= 0) {
  }
}

// Reads exactly `size` bytes from `fd` before `deadline`.
bool ReadExactly(int fd, void* data, std::size_t size, Clock::time_point deadline) {
  auto* at = static_cast<char*>(data);
  while (size > 0) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left <= 0ms) return false;
    pollfd poll_fd{fd, POLLIN, 0};
    if (::poll(&poll_fd, 1, static_cast<int>(std::min(left, 1000ms).count())) <= 0) continue;
    ssize_t n = ::read(fd, at, size);
    if (n <= 0) return false;
    at += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

// A child process running as nobody with a UDP socket on 127.0.0.1. It sends `count` datagrams
// that are not mosh's to the relay's port, writes its own port to a pipe (2 bytes), listens for
// `listen_for`, writes how many datagrams reached it (4 bytes) and exits 0; another exit status
// names the step that failed. The child makes system calls only: this process may have threads.
class OtherUser {
 public:
  OtherUser(std::uint16_t relay_port, int count, std::chrono::milliseconds listen_for) {
    int ends[2];
    if (::pipe2(ends, O_CLOEXEC) != 0) return;
    UniqueFd read_end(ends[0]);
    UniqueFd write_end(ends[1]);
    const sockaddr_in relay = Loopback(relay_port);
    sockaddr_in local = Loopback(0);
    static constexpr char kJunk[] = "not a mosh datagram";
    pid_ = ::fork();
    if (pid_ != 0) {
      if (pid_ > 0) reports_ = std::move(read_end);
      return;
    }
    if (::setgroups(0, nullptr) != 0 || ::setresgid(kNobody, kNobody, kNobody) != 0 ||
        ::setresuid(kNobody, kNobody, kNobody) != 0) {
      ::_exit(10);
    }
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) ::_exit(11);
    socklen_t length = sizeof local;
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&local), sizeof local) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) != 0) {
      ::_exit(12);
    }
    for (int i = 0; i < count; ++i) {
      if (::sendto(fd, kJunk, sizeof kJunk - 1, 0, reinterpret_cast<const sockaddr*>(&relay), sizeof relay) < 0) {
        ::_exit(13);
      }
    }
    std::uint16_t port = ntohs(local.sin_port);
    if (::write(write_end.get(), &port, sizeof port) != sizeof port) ::_exit(14);
    timespec start{};
    ::clock_gettime(CLOCK_MONOTONIC, &start);
    std::uint32_t received = 0;
    for (;;) {
      timespec now{};
      ::clock_gettime(CLOCK_MONOTONIC, &now);
      long elapsed = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
      if (elapsed >= listen_for.count()) break;
      pollfd poll_fd{fd, POLLIN, 0};
      if (::poll(&poll_fd, 1, static_cast<int>(listen_for.count() - elapsed)) > 0) {
        char buffer[4096];
        if (::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT) >= 0) ++received;
      }
    }
    if (::write(write_end.get(), &received, sizeof received) != sizeof received) ::_exit(15);
    ::_exit(0);
  }
  ~OtherUser() {
    if (pid_ > 0) KillPid(pid_);
  }
  OtherUser(const OtherUser&) = delete;
  OtherUser& operator=(const OtherUser&) = delete;

  bool started() const { return pid_ > 0 && reports_.valid(); }
  // The port its datagrams came from, once it has sent them; 0 if it did not say in time.
  std::uint16_t SentFrom(std::chrono::milliseconds timeout) {
    std::uint16_t port = 0;
    return ReadExactly(reports_.get(), &port, sizeof port, Clock::now() + timeout) ? port : 0;
  }
  // How many datagrams reached its socket; nullopt if it did not say in time.
  std::optional<std::uint32_t> Received(std::chrono::milliseconds timeout) {
    std::uint32_t received = 0;
    if (!ReadExactly(reports_.get(), &received, sizeof received, Clock::now() + timeout)) return std::nullopt;
    return received;
  }
  // Its exit status; -1 when it has not exited in time (then it is killed).
  int ExitStatus(std::chrono::milliseconds timeout) {
    for (auto deadline = Clock::now() + timeout; pid_ > 0 && Clock::now() < deadline;) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = 0;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(20ms);
    }
    return -1;
  }

 private:
  pid_t pid_ = -1;
  UniqueFd reports_;
};

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

  auto probe = mosh::ProbeMoshServer("127.0.0.1", static_cast<std::uint16_t>(relay->local_port()), server.key(), 3s);
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
  ASSERT_TRUE(mosh::ProbeMoshServer("127.0.0.1", port, server.key(), 3s)->answered);

  lab_->sshd().Stop();  // mosh-server has detached from sshd: it stays
  for (auto deadline = Clock::now() + 10s; Clock::now() < deadline && Status().link() != "reconnecting";) {
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(Status().link(), "reconnecting");
  EXPECT_FALSE(ProcessGone(server_pid_)) << "mosh-server went with sshd";
  auto lost = mosh::ProbeMoshServer("127.0.0.1", port, server.key(), 500ms);
  ASSERT_TRUE(lost);
  EXPECT_FALSE(lost->answered) << "no channel, no answer: " << lost->detail;

  ASSERT_TRUE(lab_->sshd().Restart());
  bool answered = false;
  for (auto deadline = Clock::now() + 30s; !answered && Clock::now() < deadline;) {
    auto probe = mosh::ProbeMoshServer("127.0.0.1", port, server.key(), 1s);
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

// Another local user sends to the relay's port (every local process can reach 127.0.0.1): its
// datagrams are refused, and mosh-server's keep going to mosh-client's socket, never to its.
// mosh-server sends on its own (resends, and a heartbeat at least every 3 s), so the window
// after the other user's datagrams sees some of them whoever they go to.
TEST_F(RelayTest, AnotherUsersSocketDoesNotTakeTheReturnPath) {
  REQUIRE_ROOT();
  auto server = StartLoopbackMoshServer();
  auto key = mosh::DecodeMoshKey(server.key());
  ASSERT_TRUE(key) << key.error().message;
  auto relay = StartRelay(server, "perl");
  ASSERT_TRUE(relay) << relay.error().message;
  const auto port = static_cast<std::uint16_t>(relay->local_port());

  UdpEnd client = BindLoopbackUdp();
  ASSERT_TRUE(SendHello(client, port, *key, 0));
  ASSERT_EQ(ReceiveFromServer(client, *key, Clock::now() + 5s, 1), 1) << "mosh-server did not answer";

  OtherUser other(port, 5, 5s);
  ASSERT_TRUE(other.started()) << std::strerror(errno);
  const std::uint16_t other_port = other.SentFrom(5s);
  ASSERT_NE(other_port, 0) << "the other user's process did not send (exit status " << other.ExitStatus(1s) << ")";
  auto owners = UdpSenderUidsFromProc(Loopback(other_port));
  ASSERT_TRUE(owners) << owners.error().message;
  EXPECT_THAT(*owners, ElementsAre(kNobody)) << "the other user's socket, as /proc/net/udp lists it";

  const int to_client = ReceiveFromServer(client, *key, Clock::now() + 5s);
  const auto to_other = other.Received(6s);
  ASSERT_TRUE(to_other.has_value()) << "exit status " << other.ExitStatus(1s);
  EXPECT_EQ(*to_other, 0u) << "mosh-server's datagrams went to another user's socket";
  EXPECT_GT(to_client, 0) << "mosh-server's datagrams no longer reach mosh-client";
  EXPECT_EQ(other.ExitStatus(5s), 0);

  // mosh-client is still the return path: it is answered.
  Drain(client);
  ASSERT_TRUE(SendHello(client, port, *key, 1));
  EXPECT_EQ(ReceiveFromServer(client, *key, Clock::now() + 5s, 1), 1);
  // Five refused datagrams, one line in the log.
  EXPECT_EQ(lab_->CountInMasterLog("refused"), 1) << lab_->MasterLog();
  EXPECT_EQ(lab_->CountInMasterLog(fmt::format("127.0.0.1:{}: its socket belongs to uid {}", other_port, kNobody)), 1)
      << lab_->MasterLog();
}

// mosh-client hops to a new source port when it hears nothing for a while: a socket of the
// same user is followed, and mosh-server's datagrams go there from then on.
TEST_F(RelayTest, SameUsersNewSourcePortBecomesTheReturnPath) {
  auto server = StartLoopbackMoshServer();
  auto key = mosh::DecodeMoshKey(server.key());
  ASSERT_TRUE(key) << key.error().message;
  auto relay = StartRelay(server, "perl");
  ASSERT_TRUE(relay) << relay.error().message;
  const auto port = static_cast<std::uint16_t>(relay->local_port());

  UdpEnd first = BindLoopbackUdp();
  ASSERT_TRUE(SendHello(first, port, *key, 0));
  ASSERT_EQ(ReceiveFromServer(first, *key, Clock::now() + 5s, 1), 1) << "mosh-server did not answer";

  UdpEnd second = BindLoopbackUdp();
  ASSERT_TRUE(SendHello(second, port, *key, 1));
  ASSERT_EQ(ReceiveFromServer(second, *key, Clock::now() + 5s, 1), 1) << "the new source port is not answered";
  // Whatever the relay sent to the old port went before the answer above.
  Drain(first);
  EXPECT_EQ(ReceiveFromServer(second, *key, Clock::now() + 5s, 1), 1) << "mosh-server fell silent";
  EXPECT_EQ(ReceiveFromServer(first, *key, Clock::now()), 0) << "the old port still gets mosh-server's datagrams";
  EXPECT_EQ(lab_->CountInMasterLog("refused"), 0) << lab_->MasterLog();
}

TEST_F(RelayTest, BadRequestsAreClearErrors) {
  control::StartMoshServerReply no_server;
  no_server.set_port(0);
  auto zero = StartRelay(no_server, "perl");
  ASSERT_FALSE(zero);
  EXPECT_THAT(zero.error().message, HasSubstr("port"));
  no_server.set_port(60001);
  no_server.set_server_pid(4242);  // a pid that could be mosh-server's: only the relay's name is wrong
  auto unknown = StartRelay(no_server, "python");
  ASSERT_FALSE(unknown);
  EXPECT_THAT(unknown.error().message, HasSubstr("unknown relay"));
}

}  // namespace
}  // namespace mconnect::testing
