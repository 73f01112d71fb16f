// What this machine must offer mosh-client is checked before the master or the server is asked
// for anything: a --client that cannot run, a locale that is not UTF-8 and standard input that
// is no terminal each fail with one line and a hint, start no master and leave no mosh-server
// behind on the server.
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/master/server_processes.h"
#include "tests/support/mconnect_lab.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

class ClientChecksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto lab = MconnectLab::Start();
    ASSERT_TRUE(lab) << lab.error().message;
    lab_ = std::move(*lab);
  }

  CommandOutput Session(const std::vector<std::string>& extra, const LabEnv& env) {
    std::vector<std::string> args{lab_->SshOption()};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back("lab");
    auto result = lab_->RunIn(env, args, 60s);
    EXPECT_TRUE(result) << result.error().message;
    return result ? *result : CommandOutput{};
  }

  // No mosh-server runs on the server for this test: none below its sshd, none that detached
  // from it (this process adopts orphans, tests/support/lab.h), and the master (if one was
  // started) never logged starting one.
  void ExpectNoMoshServer() {
    for (const auto& process : DescendantsOf(lab_->sshd().pid())) {
      EXPECT_NE(process.exe, "mosh-server") << "pid " << process.pid;
    }
    const pid_t self = ::getpid();
    EXPECT_TRUE(FindProcesses([self](const ProcessInfo& p) { return p.ppid == self && p.exe == "mosh-server"; })
                    .empty());
    if (lab_->MasterPid() > 0) {
      EXPECT_EQ(lab_->CountInMasterLog("starting mosh-server"), 0) << lab_->MasterLog();
    }
  }

  std::unique_ptr<MconnectLab> lab_;
};

TEST_F(ClientChecksTest, AClientThatCannotRunFailsBeforeAnything) {
  auto session = Session({"--client=/nonexistent"}, lab_->env());
  EXPECT_EQ(session.exit_code, 1);
  EXPECT_EQ(session.err,
            "mconnect: cannot run mosh-client /nonexistent: No such file or directory\n"
            "mconnect: hint: install mosh here (Debian/Ubuntu: apt install mosh), or name the program with "
            "--client=/full/path/to/mosh-client (or client = \"...\" in the profile)\n");
  EXPECT_EQ(lab_->MasterPid(), 0) << "nothing was asked of the server, not even a connection";
  ExpectNoMoshServer();
}

TEST_F(ClientChecksTest, ALocaleThatIsNotUtf8FailsBeforeAnything) {
  LabEnv env = lab_->env();
  env.Set("LANG", "C");
  auto session = Session({}, env);
  EXPECT_EQ(session.exit_code, 1);
  EXPECT_EQ(session.err,
            "mconnect: mosh-client needs a UTF-8 locale, and LANG=C gives the character set ANSI_X3.4-1968\n"
            "mconnect: hint: set a UTF-8 one, e.g. LANG=C.UTF-8 (`locale -a` lists those installed here)\n");
  EXPECT_EQ(lab_->MasterPid(), 0);
  ExpectNoMoshServer();

  env.Set("LANG", "C.UTF-8").Set("LC_ALL", "xx_YY.UTF-8");
  auto missing = Session({}, env);
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(missing.err,
            "mconnect: mosh-client needs a UTF-8 locale, and LC_ALL=xx_YY.UTF-8 is not installed here\n"
            "mconnect: hint: set a UTF-8 one, e.g. LANG=C.UTF-8 (`locale -a` lists those installed here)\n");
  ExpectNoMoshServer();
}

// Standard input is a pipe here. With the default transport (auto), a session that reached the
// master first would have had it connect, find the address and probe UDP with a throwaway
// mosh-server: none of that happens.
TEST_F(ClientChecksTest, NoTerminalFailsBeforeAnything) {
  auto session = Session({}, lab_->env());
  EXPECT_EQ(session.exit_code, 1);
  EXPECT_EQ(session.err,
            "mconnect: mosh-client needs a terminal, and standard input is not one\n"
            "mconnect: hint: run mconnect in a terminal; for a command without one, use ssh through the master "
            "(`mconnect ssh-config lab` prints the lines)\n");
  EXPECT_EQ(lab_->MasterPid(), 0) << "nothing was asked of the server, not even a connection";
  EXPECT_EQ(lab_->sshd().CountInLog("Accepted publickey"), 0) << lab_->sshd().Log();
  ExpectNoMoshServer();
}

}  // namespace
}  // namespace mconnect::testing
