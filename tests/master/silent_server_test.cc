// A session started while the server is silent (a network outage that drops packets without a
// reset; here the lab's sshd processes are stopped): the failure names the host and how long it
// has said nothing, or that the master is reconnecting, never mosh-server, a literal "HOST" or a
// ProxyJump the configuration does not have.
#include <signal.h>
#include <sys/stat.h>

#include <fstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/master/server_processes.h"
#include "tests/support/mconnect_lab.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;

class SilentServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto lab = MconnectLab::Start();
    ASSERT_TRUE(lab) << lab.error().message;
    lab_ = std::move(*lab);
  }

  // mconnect with the lab's ssh config and `ssh_options` after it (after the subcommand, if any).
  CommandOutput Run(std::vector<std::string> args, const std::string& ssh_options = "") {
    args.insert(args.begin() + (args.front() == "ip" ? 1 : 0), lab_->SshOption() + ssh_options);
    auto result = lab_->Run(args, 90s);
    EXPECT_TRUE(result) << result.error().message;
    return result ? *result : CommandOutput{};
  }

  std::string Port() const { return std::to_string(lab_->sshd().port()); }

  // A mosh-client stand-in that needs no terminal: it says what it was given and exits.
  std::string StandInClient() {
    const std::string client = lab_->dir().Sub("client");
    std::ofstream(client) << "#!/bin/sh\n"
                             "if [ \"$1\" = -c ]; then echo 256; exit 0; fi\n"
                             "echo \"client for $2 port $3\"\n";
    EXPECT_EQ(::chmod(client.c_str(), 0755), 0);
    return client;
  }

  std::unique_ptr<MconnectLab> lab_;
};

// The link still counts as up (keepalives allow 10 s × 6 of silence), so the request waits for
// its own time limit; then it says the connection is not answering, and since when.
TEST_F(SilentServerTest, ASessionDuringSilenceNamesTheHostAndTheSilence) {
  const std::string keepalives = " -o ServerAliveInterval=10 -o ServerAliveCountMax=5";
  auto started = Run({"ip", "lab"}, keepalives);
  ASSERT_EQ(started.exit_code, 0) << started.err;
  SilencedSessions silence(lab_->sshd().pid());
  ASSERT_GT(silence.count(), 0u);

  auto session = Run({"--client=/bin/true", "lab"}, keepalives);
  EXPECT_NE(session.exit_code, 0);
  EXPECT_THAT(session.err, HasSubstr("mconnect: the connection to lab (127.0.0.1 port " + Port() +
                                     ") is not answering: nothing heard from the server for "))
      << session.err;
  EXPECT_THAT(session.err, MatchesRegex("(.|\n)*nothing heard from the server for [0-9]+ s(.|\n)*"));
  EXPECT_THAT(session.err, HasSubstr("mconnect: hint: the master declares the connection lost after 60 s of silence "
                                     "(ServerAliveInterval 10 × (ServerAliveCountMax 5 + 1)) and reconnects; "
                                     "`mconnect stop lab` ends it now"))
      << session.err;
  EXPECT_THAT(session.err, Not(HasSubstr("mosh-server")));
  EXPECT_THAT(session.err, Not(HasSubstr("HOST")));
  EXPECT_THAT(session.err, Not(HasSubstr("ProxyJump")));
  EXPECT_THAT(lab_->MasterLog(), HasSubstr("is not answering"));
}

// The connection was declared lost and the server does not answer a new one either (its
// listener is stopped too): the session says the master is reconnecting.
TEST_F(SilentServerTest, ASessionWhileTheMasterReconnectsSaysSo) {
  const std::string fast = " -o ServerAliveInterval=1 -o ServerAliveCountMax=2";
  auto started = Run({"ip", "lab"}, fast);
  ASSERT_EQ(started.exit_code, 0) << started.err;
  SilencedSessions silence(lab_->sshd().pid());
  ASSERT_EQ(::kill(lab_->sshd().pid(), SIGSTOP), 0);
  struct Continue {
    pid_t pid;
    ~Continue() { ::kill(pid, SIGCONT); }
  } listener{lab_->sshd().pid()};
  std::optional<control::StatusReply> status;
  for (auto deadline = std::chrono::steady_clock::now() + 15s; std::chrono::steady_clock::now() < deadline;
       std::this_thread::sleep_for(100ms)) {
    auto answer = lab_->Status();
    if (answer && answer->link() == "reconnecting") {
      status = *answer;
      break;
    }
  }
  ASSERT_TRUE(status) << "the master must notice the silence\n" << lab_->MasterLog();

  auto session = Run({"--client=/bin/true", "lab"}, fast);
  EXPECT_NE(session.exit_code, 0);
  EXPECT_THAT(session.err, HasSubstr("mconnect: the master's connection to lab is down (no answer from the server "
                                     "for "));
  EXPECT_THAT(session.err, HasSubstr("); this session waits for it to reconnect\n"));
  EXPECT_THAT(session.err, HasSubstr("mconnect: the master for lab is reconnecting to 127.0.0.1 port " + Port() +
                                     " (attempt "))
      << session.err;
  EXPECT_THAT(session.err, HasSubstr("lost "));
  EXPECT_THAT(session.err, HasSubstr("no answer from the server for"));
  // The `peer` strategy has no address while the connection is down, and says so.
  EXPECT_THAT(session.err, HasSubstr("peer: the master's connection is down (no answer from the server for "));
  EXPECT_THAT(session.err, Not(HasSubstr("mosh-server")));
  EXPECT_THAT(session.err, Not(HasSubstr("HOST")));
  EXPECT_THAT(session.err, Not(HasSubstr("ProxyJump")));
}

// A mosh-server that is slow while the server answers is still mosh-server's fault, and its hint
// names the real host.
TEST_F(SilentServerTest, AHangingMoshServerIsBlamedWithTheRealHostName) {
  const std::string server = lab_->dir().Sub("mosh-server-hangs");
  {
    std::ofstream(server) << "#!/bin/sh\nexec sleep 600\n";
  }
  ASSERT_EQ(::chmod(server.c_str(), 0755), 0);
  auto session = Run({"--transport=udp", "--server=" + server, "--client=" + StandInClient(), "lab"});
  EXPECT_EQ(session.exit_code, 1);
  EXPECT_THAT(session.err, HasSubstr("mconnect: mosh-server did not answer within 20 s\n"));
  EXPECT_THAT(session.err, HasSubstr("mconnect: hint: check that mosh-server runs on the server: "
                                     "ssh lab " + server + " new"))
      << session.err;
  EXPECT_THAT(session.err, Not(HasSubstr("HOST")));
}

}  // namespace
}  // namespace mconnect::testing
