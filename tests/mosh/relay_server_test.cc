// The server side of the `ssh` transport, both kinds, run here exactly as the master's channel
// runs them (`sh -c RelayCommand(...)`), with pipes for the channel and a UDP echo server in
// place of mosh-server: framed datagrams in come back framed and unchanged, one by one; the
// relay says hello, and says "done" and exits 0 once the watched pid has gone.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/unique_fd.h"
#include "mosh/datagram_frame.h"
#include "mux/mosh_over_ssh/mosh_over_ssh.h"
#include "tests/support/paths.h"

namespace mconnect::mosh {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class RelayServerTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    echo_.Reset(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    ASSERT_TRUE(echo_);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(echo_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    socklen_t length = sizeof address;
    ::getsockname(echo_.get(), reinterpret_cast<sockaddr*>(&address), &length);
    echo_port_ = ntohs(address.sin_port);
    echo_thread_ = std::thread([fd = echo_.get()] {
      char buffer[70000];
      while (true) {
        sockaddr_storage from{};
        socklen_t from_length = sizeof from;
        ssize_t n = ::recvfrom(fd, buffer, sizeof buffer, 0, reinterpret_cast<sockaddr*>(&from), &from_length);
        if (n < 0) return;
        if (n == 4 && std::string_view(buffer, 4) == "stop") return;
        ::sendto(fd, buffer, static_cast<std::size_t>(n), 0, reinterpret_cast<sockaddr*>(&from), from_length);
      }
    });
    watched_ = ::fork();
    ASSERT_GE(watched_, 0);
    if (watched_ == 0) {
      ::pause();
      ::_exit(0);
    }
  }

  void TearDown() override {
    if (relay_ > 0) {
      ::kill(relay_, SIGKILL);
      ::waitpid(relay_, nullptr, 0);
    }
    if (watched_ > 0) {
      ::kill(watched_, SIGKILL);
      ::waitpid(watched_, nullptr, 0);
    }
    // Wake the echo thread with its stop word.
    UniqueFd poke(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(echo_port_));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::sendto(poke.get(), "stop", 4, 0, reinterpret_cast<sockaddr*>(&address), sizeof address);
    if (echo_thread_.joinable()) echo_thread_.join();
  }

  // Starts the relay with pipes for its stdin, stdout and stderr.
  void StartRelay() {
    std::string command = mux::RelayCommand(echo_port_, static_cast<std::uint32_t>(watched_), GetParam());
    int in[2], out[2], err[2];
    ASSERT_EQ(::pipe2(in, O_CLOEXEC), 0);
    ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
    ASSERT_EQ(::pipe2(err, O_CLOEXEC), 0);
    std::string path = std::string("PATH=") + MCONNECT_BIN_DIR + ":/usr/bin:/bin";
    relay_ = ::fork();
    ASSERT_GE(relay_, 0);
    if (relay_ == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::dup2(err[1], 2);
      char* env[] = {path.data(), nullptr};
      ::execle("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr), env);
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    ::close(err[1]);
    to_relay_.Reset(in[1]);
    from_relay_.Reset(out[0]);
    relay_errors_.Reset(err[0]);
  }

  // Reads from `fd` until `enough` says so or `timeout` passes.
  std::string ReadUntil(int fd, const std::function<bool(const std::string&)>& enough, std::chrono::milliseconds timeout) {
    std::string got;
    for (auto deadline = Clock::now() + timeout; !enough(got) && Clock::now() < deadline;) {
      pollfd pfd{fd, POLLIN, 0};
      if (::poll(&pfd, 1, 100) <= 0) continue;
      char buffer[65536];
      ssize_t n = ::read(fd, buffer, sizeof buffer);
      if (n <= 0) break;
      got.append(buffer, static_cast<std::size_t>(n));
    }
    return got;
  }

  UniqueFd echo_;
  int echo_port_ = 0;
  std::thread echo_thread_;
  pid_t watched_ = -1;
  pid_t relay_ = -1;
  UniqueFd to_relay_, from_relay_, relay_errors_;
};

TEST_P(RelayServerTest, DatagramsGoThroughWholeAndTheRelayEndsWithItsServer) {
  StartRelay();
  std::string hello = ReadUntil(relay_errors_.get(), [](const std::string& s) { return s.find('\n') != std::string::npos; }, 10s);
  EXPECT_EQ(hello, "mconnect-relay: " + GetParam() + "\n");

  // Three datagrams in one write, of different sizes, the last one as big as mosh's MTU.
  std::vector<std::string> sent = {"a", std::string(300, 'b'), std::string(1400, 'c')};
  std::string wire;
  for (const auto& datagram : sent) mosh::AppendDatagramFrame(wire, datagram);
  ASSERT_EQ(::write(to_relay_.get(), wire.data(), wire.size()), static_cast<ssize_t>(wire.size()));
  std::vector<std::string> back;
  std::string buffered;
  for (auto deadline = Clock::now() + 10s; back.size() < sent.size() && Clock::now() < deadline;) {
    buffered += ReadUntil(from_relay_.get(), [](const std::string& s) { return !s.empty(); }, 1s);
    buffered.erase(0, mosh::TakeDatagramFrames(buffered, [&back](std::string_view d) { back.emplace_back(d); }));
  }
  EXPECT_EQ(back, sent) << "each datagram back whole, none merged or split";

  // The watched pid (mosh-server's, in real life) goes: the relay says so and exits 0.
  ::kill(watched_, SIGKILL);
  ::waitpid(watched_, nullptr, 0);
  watched_ = -1;
  std::string rest = ReadUntil(relay_errors_.get(), [](const std::string& s) { return s.find("done") != std::string::npos; }, 12s);
  EXPECT_EQ(rest, "mconnect-relay: done\n");
  int status = 0;
  bool exited = false;
  for (auto deadline = Clock::now() + 5s; !exited && Clock::now() < deadline; std::this_thread::sleep_for(20ms)) {
    exited = ::waitpid(relay_, &status, WNOHANG) == relay_;
  }
  ASSERT_TRUE(exited);
  relay_ = -1;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

// mosh-server died but nobody reaped it yet (an init that reaps late): a zombie is gone too.
TEST_P(RelayServerTest, AZombieServerEndsTheRelay) {
  StartRelay();
  ReadUntil(relay_errors_.get(), [](const std::string& s) { return s.find('\n') != std::string::npos; }, 10s);
  ::kill(watched_, SIGKILL);  // not reaped: TearDown does that
  std::string rest = ReadUntil(relay_errors_.get(), [](const std::string& s) { return s.find("done") != std::string::npos; }, 12s);
  EXPECT_EQ(rest, "mconnect-relay: done\n");
}

TEST_P(RelayServerTest, EofOnTheChannelEndsItQuietly) {
  StartRelay();
  ReadUntil(relay_errors_.get(), [](const std::string& s) { return s.find('\n') != std::string::npos; }, 10s);
  to_relay_.Reset();
  int status = 0;
  bool exited = false;
  for (auto deadline = Clock::now() + 5s; !exited && Clock::now() < deadline; std::this_thread::sleep_for(20ms)) {
    exited = ::waitpid(relay_, &status, WNOHANG) == relay_;
  }
  ASSERT_TRUE(exited) << "the relay must leave when its channel closes";
  relay_ = -1;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(ReadUntil(relay_errors_.get(), [](const std::string&) { return false; }, 200ms), "")
      << "no 'done': mosh-server is still there";
}

INSTANTIATE_TEST_SUITE_P(BothKinds, RelayServerTest, ::testing::Values("perl", "mconnect"));

}  // namespace
}  // namespace mconnect::mosh
