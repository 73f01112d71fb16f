// The UDP probe against the real thing: a throwaway `mosh-server new` on loopback must answer a
// probe that holds its key, stay silent for any other key, and a closed port must read as
// closed (or silent) within the budget.
#include "mosh/udp_probe.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <regex>
#include <string>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/subprocess.h"
#include "base/unique_fd.h"
#include "tests/support/require.h"

namespace mconnect::mosh {
namespace {

using namespace std::chrono_literals;
using ::testing::AnyOf;
using ::testing::HasSubstr;

// A detached mosh-server of our own, killed by its pid (it is not our child: it daemonizes, and
// a server whose client never comes would otherwise linger for 60 s).
class ThrowawayMoshServer {
 public:
  static std::optional<ThrowawayMoshServer> Start(std::string* why) {
    CommandOptions options;
    options.timeout = 10s;
    auto run = RunCommand({"env", "LANG=C.UTF-8", "mosh-server", "new", "-i", "127.0.0.1", "-p", "60950:60999"},
                          options);
    if (!run) {
      *why = run.error().message;
      return std::nullopt;
    }
    std::smatch connect;
    std::smatch detached;
    static const std::regex kConnect(R"(MOSH CONNECT (\d+) ([A-Za-z0-9/+]{22})\s*\n)");
    static const std::regex kDetached(R"(\[mosh-server detached, pid = (\d+)\])");
    if (!run->ok() || !std::regex_search(run->out, connect, kConnect) ||
        !std::regex_search(run->err, detached, kDetached)) {
      *why = "mosh-server new failed (exit " + std::to_string(run->exit_code) + "): " + run->err;
      return std::nullopt;
    }
    ThrowawayMoshServer server;
    server.port_ = static_cast<std::uint16_t>(std::stoi(connect[1].str()));
    server.key_ = connect[2].str();
    server.pid_ = static_cast<pid_t>(std::stol(detached[1].str()));
    return server;
  }

  ThrowawayMoshServer(ThrowawayMoshServer&& other) noexcept
      : port_(other.port_), key_(std::move(other.key_)), pid_(std::exchange(other.pid_, 0)) {}
  ThrowawayMoshServer& operator=(ThrowawayMoshServer&&) = delete;
  ~ThrowawayMoshServer() { Kill(); }

  std::uint16_t port() const { return port_; }
  const std::string& key() const { return key_; }

 private:
  ThrowawayMoshServer() = default;

  // SIGTERM, then SIGKILL after 0.5 s: a server that has heard a client starts a shutdown
  // handshake it would retry for up to 10 s.
  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 10 && ::kill(pid_, 0) == 0; ++i) std::this_thread::sleep_for(50ms);
    if (::kill(pid_, 0) == 0) ::kill(pid_, SIGKILL);
    pid_ = 0;
  }

  std::uint16_t port_ = 0;
  std::string key_;
  pid_t pid_ = 0;
};

// A loopback UDP port with nobody behind it (bound, read, released).
std::uint16_t ClosedUdpPort() {
  UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  socklen_t length = sizeof address;
  EXPECT_EQ(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length), 0);
  return ntohs(address.sin_port);
}

#define START_MOSH_SERVER(server)                                   \
  std::string why_##server;                                         \
  auto server = ThrowawayMoshServer::Start(&why_##server);          \
  MCONNECT_REQUIRE(server, "no mosh-server: " << why_##server)

TEST(UdpProbeTest, RealMoshServerAnswersTheRightKey) {
  START_MOSH_SERVER(server);
  const auto start = std::chrono::steady_clock::now();
  auto result = ProbeMoshServer("127.0.0.1", server->port(), server->key(), 3000ms);
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(result.has_value()) << result.error().message;
  EXPECT_TRUE(result->answered) << result->detail;
  EXPECT_GT(result->rtt.count(), 0);
  EXPECT_LT(result->rtt, 1000ms);
  EXPECT_LT(took, 2000ms);  // it returns on the first authentic reply, not at the budget
  EXPECT_THAT(result->detail, HasSubstr("mosh-server answered"));
  std::printf("probe: %s\n", result->detail.c_str());
  EXPECT_THAT(result->detail, ::testing::Not(HasSubstr(server->key())));
}

TEST(UdpProbeTest, RealMoshServerIgnoresAWrongKey) {
  START_MOSH_SERVER(server);
  std::string wrong = server->key();
  wrong[0] = wrong[0] == 'A' ? 'B' : 'A';
  const auto start = std::chrono::steady_clock::now();
  auto result = ProbeMoshServer("127.0.0.1", server->port(), wrong, 1000ms);
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(result.has_value()) << result.error().message;
  EXPECT_FALSE(result->answered);
  EXPECT_EQ(result->rtt.count(), 0);
  EXPECT_THAT(result->detail, HasSubstr("no answer"));
  EXPECT_GE(took, 900ms);
  EXPECT_LT(took, 1500ms);  // bounded by the budget

  // The wrong key did not wedge the server: the right one still gets an answer.
  auto right = ProbeMoshServer("127.0.0.1", server->port(), server->key(), 3000ms);
  ASSERT_TRUE(right.has_value());
  EXPECT_TRUE(right->answered) << right->detail;
}

TEST(UdpProbeTest, ClosedPortIsReportedClosedWithinBudget) {
  const std::uint16_t port = ClosedUdpPort();
  const auto start = std::chrono::steady_clock::now();
  auto result = ProbeMoshServer("127.0.0.1", port, "AAECAwQFBgcICQoLDA0ODw", 1000ms);
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(result.has_value()) << result.error().message;
  EXPECT_FALSE(result->answered);
  EXPECT_THAT(result->detail, AnyOf(HasSubstr("port closed"), HasSubstr("no answer")));
  EXPECT_LT(took, 1500ms);
  // On loopback the kernel's ICMP port unreachable always arrives.
  EXPECT_THAT(result->detail, HasSubstr("port closed"));
}

// A UDP socket bound on loopback that reads nothing: no ICMP, no reply. `port` is 0 (errno set)
// when it could not be made.
struct SilentPeer {
  UniqueFd fd{::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
  std::uint16_t port = 0;

  SilentPeer() {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (fd && ::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
        ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length) == 0) {
      port = ntohs(address.sin_port);
    }
  }
};

TEST(UdpProbeTest, SilentPeerIsNoAnswer) {
  SilentPeer silent;
  ASSERT_NE(silent.port, 0) << std::strerror(errno);
  auto result = ProbeMoshServer("127.0.0.1", silent.port, "AAECAwQFBgcICQoLDA0ODw", 300ms);
  ASSERT_TRUE(result.has_value());
  EXPECT_FALSE(result->answered);
  EXPECT_THAT(result->detail, HasSubstr("no answer"));
  EXPECT_THAT(result->detail, HasSubstr("UDP blocked or filtered?"));
}

// A probe held up longer than its spacing between datagrams (a loaded machine, a sanitizer, a
// stopped process) finds its next send already due: it must send and go on, never wait for ever
// on a silent peer. The probe (600 ms: a datagram every 100 ms) runs in a child that is stopped
// from 120 ms to 370 ms, so that it wakes with two sends overdue and most of its budget left.
TEST(UdpProbeTest, AProbeHeldUpPastItsNextSendStillEndsWithinItsBudget) {
  SilentPeer silent;
  ASSERT_NE(silent.port, 0) << std::strerror(errno);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto result = ProbeMoshServer("127.0.0.1", silent.port, "AAECAwQFBgcICQoLDA0ODw", 600ms);
    ::_exit(result && !result->answered ? 0 : 1);
  }
  std::this_thread::sleep_for(120ms);
  ::kill(child, SIGSTOP);
  std::this_thread::sleep_for(250ms);
  ::kill(child, SIGCONT);
  int status = 0;
  pid_t done = 0;
  for (int i = 0; i < 100 && (done = ::waitpid(child, &status, WNOHANG)) == 0; ++i) std::this_thread::sleep_for(100ms);
  if (done == 0) {
    ::kill(child, SIGKILL);
    ::waitpid(child, &status, 0);
  }
  ASSERT_EQ(done, child) << "the probe was still waiting 10 s after its 600 ms budget";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(UdpProbeTest, BadArgumentsAreErrors) {
  EXPECT_FALSE(ProbeMoshServer("example.org", 60001, "AAECAwQFBgcICQoLDA0ODw", 100ms).has_value());
  EXPECT_FALSE(ProbeMoshServer("127.0.0.1", 0, "AAECAwQFBgcICQoLDA0ODw", 100ms).has_value());
  auto bad_key = ProbeMoshServer("127.0.0.1", 60001, "short", 100ms);
  ASSERT_FALSE(bad_key.has_value());
  EXPECT_THAT(bad_key.error().message, HasSubstr("22 base64"));
}

}  // namespace
}  // namespace mconnect::mosh
