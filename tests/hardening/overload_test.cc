// More clients than the master has room for, in ordinary use: hundreds of overlapping `ssh -S`
// sessions against sshd's MaxSessions of 10, and the same at a low fd limit. Past the server's
// room the master opens more connections, past its own cap it queues; past its fds it says so.
// No client may ever log in to sshd by itself: every "Accepted publickey" in sshd's log is one
// of the master's own connections.
#include <sys/resource.h>
#include <csignal>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "mux/master.h"
#include "tests/hardening/hardening.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class OverloadTest : public HardeningTest {
 protected:
  struct Outcome {
    int served = 0;   // exit 0, with its own line
    int refused = 0;  // exit 255, with the master's reason on stderr
    std::vector<std::string> other;
  };

  // `count` overlapping `ssh -S lab 'echo cN; sleep SECONDS'`, all started at once.
  Outcome RunSessions(int count, int seconds) {
    const std::string dir = lab_->dir().Sub("sessions");
    std::filesystem::create_directories(dir);
    // A client the master let down would log in by itself: with no way to (ProxyCommand=false),
    // it fails instead, and what ssh said about the master is in its stderr.
    const std::string script = "cd " + ShellQuote(dir) + " && for i in $(seq " + std::to_string(count) + "); do (" +
                               SshLine({"-o", "ProxyCommand=false", "lab"}) + " \"echo c$i; sleep " + std::to_string(seconds) +
                               "\" >out.$i 2>err.$i </dev/null; echo $? >rc.$i) & done; wait";
    CommandOptions options;
    options.timeout = Scaled(240s);
    const auto started = Clock::now();
    auto ran = RunCommand(ShellCommand(script), options);
    EXPECT_TRUE(ran && !ran->timed_out) << "the sessions did not all end";
    std::cout << "[ measured ] " << count << " overlapping sessions ended after "
              << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count() << " ms\n";
    Outcome outcome;
    for (int i = 1; i <= count; ++i) {
      const std::string n = std::to_string(i);
      const std::string rc = ReadFile(dir + "/rc." + n).value_or("?");
      const std::string out = ReadFile(dir + "/out." + n).value_or("");
      const std::string err = ReadFile(dir + "/err." + n).value_or("");
      if (rc == "0\n" && out == "c" + n + "\n") {
        ++outcome.served;
      } else if (rc == "255\n" && out.empty() && err.find("mconnect: ") != std::string::npos) {
        ++outcome.refused;
      } else if (outcome.other.size() < 5) {
        outcome.other.push_back("#" + n + " exit " + rc + " out [" + out + "] err [" + err + "]");
      }
    }
    return outcome;
  }

  // The checks of the low-fd tests: every session served or told why, none left to log in alone.
  void ExpectServedOrToldAtLowFds(const Outcome& outcome, pid_t master) {
    std::cout << "[ measured ] at 1024 fds: " << outcome.served << " served, " << outcome.refused
              << " refused with a message\n";
    EXPECT_EQ(outcome.served + outcome.refused, 300) << Others(outcome);
    EXPECT_GT(outcome.served, 180);  // (1024 - 64 kept) / 4 fds a session, less the connections
    EXPECT_EQ(lab_->MasterPid(), master);
    ExpectNoDirectLogin();
    // Served again once they are gone.
    CommandOptions quick;
    quick.timeout = Scaled(20s);
    auto later = RunCommand(Ssh({"lab", "echo later"}), quick);
    ASSERT_TRUE(later);
    EXPECT_EQ(later->out, "later\n") << later->err;
  }

  static std::string Others(const Outcome& outcome) {
    std::string text;
    for (const auto& line : outcome.other) text += "\n  " + line;
    return text;
  }

  // Every authentication sshd saw was one of the master's connections.
  void ExpectNoDirectLogin() {
    auto status = StatusOf(*lab_, Scaled(10s));
    ASSERT_TRUE(status) << status.error().message;
    const int logins = lab_->sshd().CountInLog("Accepted publickey");
    std::cout << "[ measured ] sshd authenticated " << logins << " connections; the master opened "
              << status->connections_opened() << "\n";
    EXPECT_EQ(logins, static_cast<int>(status->connections_opened())) << "a client logged in by itself";
  }
};

TEST_F(OverloadTest, FiveHundredOverlappingSessionsAreAllServedThroughTheMaster) {
  ASSERT_TRUE(StartMaster(*lab_));
  const pid_t master = lab_->MasterPid();
  ASSERT_GT(master, 0);
  Outcome outcome = RunSessions(500, 20);  // long enough for all 500 to overlap: past 32 × 10
  EXPECT_EQ(outcome.served, 500) << Others(outcome);
  EXPECT_EQ(lab_->MasterPid(), master);
  ExpectNoDirectLogin();
}

// A login's usual fd limit: 300 sessions of four fds each do not fit. Those that do not are
// told so by the master; none logs in by itself, and the master keeps its pid.
TEST_F(OverloadTest, AtALowFdLimitSessionsAreServedOrToldNeverLeftToLogInAlone) {
  ASSERT_TRUE(StartMaster(*lab_));
  const pid_t master = lab_->MasterPid();
  ASSERT_GT(master, 0);
  const rlimit low{1024, 1024};
  ASSERT_EQ(::prlimit(master, RLIMIT_NOFILE, &low, nullptr), 0) << std::strerror(errno);
  ExpectServedOrToldAtLowFds(RunSessions(300, 10), master);
}

// The same with a master that is slow to answer (paused while they all connect, as a loaded
// machine or a sanitizer makes it): clients admitted but still in their handshake have not
// passed their fds yet, and the master must keep room for them rather than count only what is
// open, or it takes in more than it can hold and turns some away halfway (to log in alone).
TEST_F(OverloadTest, AtALowFdLimitClientsWhoCameWhileTheMasterWasBusyAreServedOrTold) {
  ASSERT_TRUE(StartMaster(*lab_));
  const pid_t master = lab_->MasterPid();
  ASSERT_GT(master, 0);
  const rlimit low{1024, 1024};
  ASSERT_EQ(::prlimit(master, RLIMIT_NOFILE, &low, nullptr), 0) << std::strerror(errno);
  ASSERT_EQ(::kill(master, SIGSTOP), 0);
  std::jthread resume([master] {
    std::this_thread::sleep_for(Scaled(5s));
    ::kill(master, SIGCONT);
  });
  ExpectServedOrToldAtLowFds(RunSessions(300, 10), master);
}

// A forwarded connection is a direct-tcpip channel, which sshd's MaxSessions does not count: it
// must never wait behind sessions for a session slot. Every slot of every connection the master
// may open taken (MaxSessions 2, sessions that stay), a burst of further sessions queueing, and
// meanwhile HTTP requests through -L: each is answered while the sessions still wait.
TEST_F(OverloadTest, ForwardsAreServedWhileSessionsWaitForASlot) {
  lab_.reset();
  auto lab = MconnectLab::Start("MaxSessions 2\n");
  ASSERT_TRUE(lab) << lab.error().message;
  lab_ = std::move(*lab);
  HttpServer http(lab_->dir().Sub("www"));
  ASSERT_TRUE(http.ready());
  ASSERT_TRUE(StartMaster(*lab_));
  const int port = FreeTcpPort();
  auto forward = RunCommand(
      Ssh({"-O", "forward", "-L", "127.0.0.1:" + std::to_string(port) + ":127.0.0.1:" + std::to_string(http.port()), "lab"}));
  ASSERT_TRUE(forward && forward->exit_code == 0) << (forward ? forward->err : forward.error().message);

  // Sessions that stay: more than the master's connections can hold (32 of 2 sessions each).
  constexpr int kHeld = 2 * static_cast<int>(mux::Master::kMaxConnections);
  auto sessions = [&](int count, const std::string& name) {
    const std::string script = "for i in $(seq " + std::to_string(count) + "); do " +
                               SshLine({"-o", "ProxyCommand=false", "lab", "sleep 600"}) +
                               " </dev/null >/dev/null 2>>" + ShellQuote(lab_->dir().Sub(name)) + " & done; wait";
    return std::make_unique<Spawned>(std::vector<std::string>{"sh", "-c", script}, 0, 1, 2);
  };
  auto held = sessions(kHeld + 8, "held.err");
  // Every connection open, not merely the sessions queued: CHANNELS counts tasks that wait for
  // an open too, and a slow master (a sanitizer) takes tens of seconds to open 31 more.
  ASSERT_TRUE(Eventually(
      [&] {
        auto s = StatusOf(*lab_, 2s);
        return s && s->connections() == mux::Master::kMaxConnections && s->channels() >= kHeld;
      },
      Scaled(120s)))
      << "the sessions did not fill every connection the master may open";

  // A burst of sessions that must wait, and requests through the forward among them.
  auto burst = sessions(200, "burst.err");
  const std::string outcomes = lab_->dir().Sub("curl");
  CommandOptions options;
  options.timeout = Scaled(120s);
  auto curl = RunCommand(ShellCommand("seq 40 | xargs -P 8 -I{} curl -s -o /dev/null -w '%{http_code} exit=%{exitcode} "
                                      "%{errormsg}\\n' --max-time " + std::to_string(Scaled(20s).count() / 1000) +
                                      " http://127.0.0.1:" + std::to_string(port) + "/index.html > " +
                                      ShellQuote(outcomes)),
                         options);
  ASSERT_TRUE(curl) << curl.error().message;
  const std::string lines = ReadFile(outcomes).value_or("");
  int answered = 0;
  for (std::size_t at = 0; (at = lines.find("200 exit=0", at)) != std::string::npos; ++at) ++answered;
  auto status = StatusOf(*lab_, Scaled(10s));
  ASSERT_TRUE(status) << status.error().message;
  std::cout << "[ measured ] " << answered << "/40 requests answered with " << status->channels()
            << " channels open on " << status->connections() << " connections\n";
  EXPECT_EQ(answered, 40) << lines;
  EXPECT_EQ(status->connections(), mux::Master::kMaxConnections) << "not every connection was full";
  ExpectNoDirectLogin();
}

}  // namespace
}  // namespace mconnect::testing
