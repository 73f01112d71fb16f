// The environment of sessions through the master, as OpenSSH's own master carries it: the
// OpenSSH client applies SendEnv (patterns, and `SendEnv=-PATTERN` removal) and appends its
// SetEnv entries; the master passes every well-formed entry on as an "env" request, in order;
// sshd's AcceptEnv decides. The lab's sshd accepts GIT_PROTOCOL and MCONNECT_ENV_* besides the
// locale, so what reaches the server is exactly what the client sent.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/mconnect_lab.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

class OpenSshEnvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto lab = MconnectLab::Start("AcceptEnv GIT_PROTOCOL MCONNECT_ENV_*");
    ASSERT_TRUE(lab) << lab.error().message;
    lab_ = std::move(*lab);
    auto started = lab_->Run({"ip", lab_->SshOption(), "lab"});
    ASSERT_TRUE(started) << started.error().message;
    ASSERT_EQ(started->exit_code, 0) << started->err;
  }

  void TearDown() override {
    if (lab_) {
      EXPECT_EQ(lab_->sshd().CountInLog("Accepted publickey"), 1)
          << "an OpenSSH client made its own connection instead of using the master";
    }
  }

  // `script` with sh in the lab's environment plus `extra` (NAME=VALUE each), after a prelude
  // that defines D (the test's directory) and SSH (ssh through the master's socket).
  CommandOutput Script(const std::string& script, const std::vector<std::string>& extra = {}) const {
    LabEnv env = lab_->env();
    for (const auto& entry : extra) {
      auto equals = entry.find('=');
      env.Set(entry.substr(0, equals), entry.substr(equals + 1));
    }
    std::string prelude = "D=" + ShellQuote(lab_->dir().path()) + "; SSH=\"ssh -F " +
                          ShellQuote(lab_->sshd().ssh_config()) + " -S " + ShellQuote(lab_->SocketPath()) +
                          " -o ControlMaster=no\"; cd \"$D\"\n";
    CommandOptions options;
    options.timeout = 60s;
    auto result = RunCommand(env.Command(ShellCommand(prelude + script)), options);
    EXPECT_TRUE(result) << result.error().message;
    return result ? *result : CommandOutput{};
  }

  std::string Explain(const CommandOutput& result) const {
    return "exit " + std::to_string(result.exit_code) + "\nstdout:\n" + result.out + "\nstderr:\n" + result.err +
           "\nmaster log:\n" + lab_->MasterLog();
  }

  std::unique_ptr<MconnectLab> lab_;
};

constexpr const char* kShowEnv =
    "'echo \"one=${MCONNECT_ENV_ONE-unset} two=${MCONNECT_ENV_TWO-unset} set=${MCONNECT_ENV_SET-unset}\"'";

TEST_F(OpenSshEnvTest, SendEnvPatternReachesTheServer) {
  auto result = Script(std::string("$SSH -o SendEnv='MCONNECT_ENV_*' lab ") + kShowEnv,
                       {"MCONNECT_ENV_ONE=first value", "MCONNECT_ENV_TWO=2"});
  EXPECT_EQ(result.exit_code, 0) << Explain(result);
  EXPECT_EQ(result.out, "one=first value two=2 set=unset\n") << Explain(result);
}

TEST_F(OpenSshEnvTest, SendEnvRemovalIsHonoured) {
  // `-PATTERN` removes the SendEnv entries it matches (entries, not variables), in the client,
  // before it sends: MCONNECT_ENV_TWO never reaches the master.
  auto result = Script(std::string("$SSH -o SendEnv=MCONNECT_ENV_ONE -o SendEnv=MCONNECT_ENV_TWO "
                                   "-o SendEnv=-'*_TWO' lab ") + kShowEnv,
                       {"MCONNECT_ENV_ONE=1", "MCONNECT_ENV_TWO=2"});
  EXPECT_EQ(result.exit_code, 0) << Explain(result);
  EXPECT_EQ(result.out, "one=1 two=unset set=unset\n") << Explain(result);
}

TEST_F(OpenSshEnvTest, SetEnvReachesTheServerAfterSendEnv) {
  // SetEnv entries (all on its first line: ssh ignores later SetEnv lines) follow the SendEnv
  // ones, in order: for the same name, SetEnv's value wins, as with a direct ssh.
  auto result = Script(std::string("$SSH -o SendEnv='MCONNECT_ENV_*' "
                                   "-o 'SetEnv=MCONNECT_ENV_SET=from-setenv MCONNECT_ENV_ONE=overridden' lab ") +
                           kShowEnv,
                       {"MCONNECT_ENV_ONE=sent"});
  EXPECT_EQ(result.exit_code, 0) << Explain(result);
  EXPECT_EQ(result.out, "one=overridden two=unset set=from-setenv\n") << Explain(result);
}

TEST_F(OpenSshEnvTest, VariablesTheServerDoesNotAcceptStayBehind) {
  // The master passes them on; sshd's AcceptEnv refuses them, and the session still runs.
  auto result = Script("$SSH -o SetEnv=NOT_ACCEPTED=1 lab 'echo \"not-accepted=${NOT_ACCEPTED-unset}\"'");
  EXPECT_EQ(result.exit_code, 0) << Explain(result);
  EXPECT_EQ(result.out, "not-accepted=unset\n") << Explain(result);
}

// git adds `-o SendEnv=GIT_PROTOCOL` for OpenSSH and sets GIT_PROTOCOL=version=2; the server's
// git answers with protocol v2 only when it sees that variable.
TEST_F(OpenSshEnvTest, GitLsRemoteNegotiatesProtocolVersion2) {
  auto result = Script(
      "set -e; export GIT_CONFIG_NOSYSTEM=1 GIT_TERMINAL_PROMPT=0 GIT_SSH_COMMAND=\"$SSH\""
      "; G='git -c init.defaultBranch=main -c user.name=Lab -c user.email=lab@example.invalid'"
      "; $G init -q --bare repo.git"
      "; $G init -q work; echo v2 > work/f; $G -C work add f; $G -C work commit -q -m one"
      "; $G -C work push -q \"$D/repo.git\" main"
      "; GIT_TRACE_PACKET=\"$D/trace\" $G -c protocol.version=2 ls-remote \"lab:$D/repo.git\"");
  EXPECT_EQ(result.exit_code, 0) << Explain(result);
  EXPECT_THAT(result.out, HasSubstr("refs/heads/main")) << Explain(result);
  auto trace = ReadFile(lab_->dir().Sub("trace"));
  ASSERT_TRUE(trace) << trace.error().message;
  // git 2.39 names the packets' side by its command: "ls-remote< version 2" is the server's.
  EXPECT_THAT(*trace, HasSubstr("< version 2")) << "the server answered with protocol v0:\n" << *trace;
}

}  // namespace
}  // namespace mconnect::testing
