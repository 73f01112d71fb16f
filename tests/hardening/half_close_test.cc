// Half-close, as OpenSSH's channels do it: each direction of a channel ends on its own (EOF),
// and the channel closes once both have. The far end closing first is the usual case: an
// HTTP/1.0 server behind -L, -D or -W answers and closes; the local client then leaves. Every
// such channel must close (the master counts none afterwards), `ssh -W` must end when its input
// does, a session's input must still reach a command that closed its output, and a master told
// `ssh -O stop` must exit once its forwarded connections are done.
#include <sys/stat.h>
#include <unistd.h>

#include <iostream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/hardening/hardening.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

class HalfCloseTest : public HardeningTest {
 protected:
  void SetUp() override {
    HardeningTest::SetUp();
    if (HasFatalFailure()) return;
    http_ = std::make_unique<HttpServer>(lab_->dir().Sub("www"));
    ASSERT_TRUE(http_->ready()) << "python3 -m http.server did not start";
    ASSERT_TRUE(StartMaster(*lab_));
    master_ = lab_->MasterPid();
    ASSERT_GT(master_, 0);
  }

  CommandOutput Run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
    CommandOptions options;
    options.timeout = timeout;
    auto result = RunCommand(argv, options);
    EXPECT_TRUE(result) << result.error().message;
    return result ? *result : CommandOutput{};
  }

  // `count` GETs, 8 at a time, each through `curl_args` (a proxy option, or nothing) to `url`;
  // returns how many were answered 200.
  int Fetch(int count, const std::string& curl_args, const std::string& url) {
    std::string script = "seq " + std::to_string(count) +
                         " | xargs -P 8 -I{} curl -s -o /dev/null -w '%{http_code}\\n' --max-time 10 " + curl_args +
                         " " + ShellQuote(url) + " | grep -c '^200$'";
    auto got = Run(ShellCommand(script), Scaled(180s));
    return std::atoi(got.out.c_str());
  }

  // The channels the master holds open for clients, once they have settled (-1: no answer).
  int SettledChannels() {
    int channels = -1;
    Eventually(
        [&] {
          auto status = StatusOf(*lab_, Scaled(5s));
          channels = status ? static_cast<int>(status->channels()) : -1;
          return channels == 0;
        },
        Scaled(15s));
    return channels;
  }

  std::string HttpUrl() const { return "http://127.0.0.1:" + std::to_string(http_->port()) + "/index.html"; }

  std::unique_ptr<HttpServer> http_;
  pid_t master_ = 0;
};

// 400 connections through -L, each closed first by the server: before the fix each stayed open
// for good (the master never sent its EOF), and at ~340 of them the master's ppoll failed.
TEST_F(HalfCloseTest, LocalForwardConnectionsClosedByTheServerFirstAreClosed) {
  const int port = FreeTcpPort();
  auto forward = Run(Ssh({"-O", "forward", "-L",
                          "127.0.0.1:" + std::to_string(port) + ":127.0.0.1:" + std::to_string(http_->port()), "lab"}),
                     Scaled(20s));
  ASSERT_EQ(forward.exit_code, 0) << forward.err;
  const auto started = Clock::now();
  const int answered = Fetch(400, "", "http://127.0.0.1:" + std::to_string(port) + "/index.html");
  std::cout << "[ measured ] 400 GETs through -L in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count() << " ms\n";
  EXPECT_EQ(answered, 400);
  EXPECT_EQ(SettledChannels(), 0) << "forwarded connections were left open";
  EXPECT_EQ(lab_->MasterPid(), master_) << "the master died";
}

TEST_F(HalfCloseTest, DynamicForwardConnectionsClosedByTheServerFirstAreClosed) {
  const int port = FreeTcpPort();
  auto forward = Run(Ssh({"-O", "forward", "-D", "127.0.0.1:" + std::to_string(port), "lab"}), Scaled(20s));
  ASSERT_EQ(forward.exit_code, 0) << forward.err;
  EXPECT_EQ(Fetch(100, "--socks5 127.0.0.1:" + std::to_string(port), HttpUrl()), 100);
  EXPECT_EQ(SettledChannels(), 0) << "forwarded connections were left open";
  EXPECT_EQ(lab_->MasterPid(), master_);
}

TEST_F(HalfCloseTest, RemoteForwardConnectionsAreClosed) {
  auto forward = Run(Ssh({"-O", "forward", "-R", "127.0.0.1:0:127.0.0.1:" + std::to_string(http_->port()), "lab"}),
                     Scaled(20s));
  ASSERT_EQ(forward.exit_code, 0) << forward.err;
  const int port = std::atoi(forward.out.c_str());
  ASSERT_GT(port, 0) << forward.out;
  EXPECT_EQ(Fetch(100, "", "http://127.0.0.1:" + std::to_string(port) + "/index.html"), 100);
  EXPECT_EQ(SettledChannels(), 0) << "forwarded connections were left open";
}

// As with OpenSSH's master: the answer arrives and the server closes; ssh -W ends when its own
// input does (3 s later), with status 0.
TEST_F(HalfCloseTest, StdioForwardEndsWhenItsInputDoes) {
  const std::string script = "( printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n'; sleep 3 ) | " +
                             SshLine({"-W", "127.0.0.1:" + std::to_string(http_->port()), "lab"});
  const auto started = Clock::now();
  auto result = Run(ShellCommand(script), Scaled(20s));
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  std::cout << "[ measured ] ssh -W ended after " << took.count() << " ms\n";
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("mconnect-forward-ok"));
  EXPECT_GE(took, 2900ms) << "ssh -W ended before its input did";
  EXPECT_LT(took, Scaled(10s)) << "ssh -W outlived its input";
  EXPECT_EQ(SettledChannels(), 0);
}

// A command that closes its output first still gets the rest of its input, and its exit status
// comes back.
TEST_F(HalfCloseTest, SessionInputOutlivesTheCommandsOutput) {
  const std::string file = lab_->dir().Sub("late-input");
  const std::string script = "( sleep 1; echo late-line ) | " +
                             SshLine({"lab", "exec >/dev/null 2>&1; cat > " + ShellQuote(file) +
                                                 "; exit 7"});
  auto result = Run(ShellCommand(script), Scaled(20s));
  EXPECT_EQ(result.exit_code, 7) << result.err;
  EXPECT_EQ(ReadFile(file).value_or("(missing)"), "late-line\n");
  EXPECT_EQ(SettledChannels(), 0);
}

// ssh -O stop: no new clients, and the master exits once what it carries is done; connections
// the server closed first must not keep it forever.
TEST_F(HalfCloseTest, StoppedMasterExitsOnceItsForwardedConnectionsAreDone) {
  const int port = FreeTcpPort();
  auto forward = Run(Ssh({"-O", "forward", "-L",
                          "127.0.0.1:" + std::to_string(port) + ":127.0.0.1:" + std::to_string(http_->port()), "lab"}),
                     Scaled(20s));
  ASSERT_EQ(forward.exit_code, 0) << forward.err;
  EXPECT_EQ(Fetch(20, "", "http://127.0.0.1:" + std::to_string(port) + "/index.html"), 20);
  auto stop = Run(Ssh({"-O", "stop", "lab"}), Scaled(20s));
  EXPECT_EQ(stop.exit_code, 0) << stop.err;
  EXPECT_TRUE(Eventually([&] { return ProcessGone(master_); }, Scaled(15s)))
      << "the master still runs after ssh -O stop with nothing left to carry";
}

}  // namespace
}  // namespace mconnect::testing
