// Agent forwarding through the master (`ssh -A -S SOCKET`): a real ssh-agent holding a test key
// beside the master, a real sshd (AllowAgentForwarding is its default), and `ssh-add -l` run on
// the server by unchanged OpenSSH clients. A session that did not ask gets no agent.
#include <filesystem>
#include <future>
#include <regex>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/mconnect_lab.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

class AgentForwardingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto lab = MconnectLab::Start();
    ASSERT_TRUE(lab) << lab.error().message;
    lab_ = std::move(*lab);
    // A key of the agent's own, not the one the master logs in with: seen on the server only
    // through the forwarded agent.
    std::string key = lab_->dir().Sub("agent_key");
    auto made = RunCommand({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "forwarded-key", "-f", key});
    ASSERT_TRUE(made && made->ok()) << (made ? made->err : made.error().message);
    auto fingerprint = RunCommand({"ssh-keygen", "-l", "-f", key + ".pub"});
    ASSERT_TRUE(fingerprint && fingerprint->ok());
    std::smatch found;
    ASSERT_TRUE(std::regex_search(fingerprint->out, found, std::regex("SHA256:[A-Za-z0-9+/]+"))) << fingerprint->out;
    fingerprint_ = found[0];

    agent_socket_ = lab_->dir().Sub("agent.sock");
    // ssh-agent daemonizes and says its pid ("SSH_AGENT_PID=N; export ..."); stopped by that pid.
    auto agent = RunCommand({"ssh-agent", "-s", "-a", agent_socket_});
    ASSERT_TRUE(agent && agent->ok()) << (agent ? agent->err : agent.error().message);
    std::smatch pid;
    ASSERT_TRUE(std::regex_search(agent->out, pid, std::regex("SSH_AGENT_PID=([0-9]+)"))) << agent->out;
    agent_pid_ = static_cast<pid_t>(std::stoi(pid[1]));
    auto added = RunCommand({"env", "SSH_AUTH_SOCK=" + agent_socket_, "ssh-add", key});
    ASSERT_TRUE(added && added->ok()) << (added ? added->err : added.error().message);

    // The master's agent is the SSH_AUTH_SOCK it was started with, as for OpenSSH's master.
    lab_->env().Set("SSH_AUTH_SOCK", agent_socket_);
    auto started = lab_->Run({"ip", lab_->SshOption(), "lab"});
    ASSERT_TRUE(started && started->ok()) << (started ? started->err : started.error().message);
  }

  void TearDown() override {
    if (lab_) lab_->Cleanup();
    if (agent_pid_ > 0) KillPid(agent_pid_);
  }

  // ssh through the master's socket; the client's own SSH_AUTH_SOCK is not what is forwarded.
  CommandOutput Ssh(const std::vector<std::string>& args) const {
    LabEnv env = lab_->env();
    env.Unset("SSH_AUTH_SOCK");
    CommandOptions options;
    options.timeout = 60s;
    auto result = RunCommand(lab_->SshThroughMaster(env, args), options);
    EXPECT_TRUE(result) << result.error().message;
    return result ? *result : CommandOutput{};
  }

  std::unique_ptr<MconnectLab> lab_;
  std::string agent_socket_;
  std::string fingerprint_;
  pid_t agent_pid_ = 0;
};

TEST_F(AgentForwardingTest, DashAListsTheLocalAgentsKeyOnTheServer) {
  auto listed = Ssh({"-A", "lab", "ssh-add -l"});
  EXPECT_EQ(listed.exit_code, 0) << listed.out << listed.err << "\nmaster log:\n" << lab_->MasterLog();
  EXPECT_THAT(listed.out, HasSubstr(fingerprint_));
  // ForwardAgent from the client's options is the same request.
  auto by_option = Ssh({"-o", "ForwardAgent=yes", "lab", "ssh-add -l"});
  EXPECT_EQ(by_option.exit_code, 0) << by_option.err;
  EXPECT_THAT(by_option.out, HasSubstr(fingerprint_));
  EXPECT_EQ(lab_->sshd().CountInLog("Accepted publickey"), 1) << "every session went through the master";
}

TEST_F(AgentForwardingTest, WithoutDashATheServerHasNoAgent) {
  auto listed = Ssh({"lab", "echo \"sock=[$SSH_AUTH_SOCK]\"; ssh-add -l"});
  EXPECT_NE(listed.exit_code, 0) << listed.out;
  EXPECT_THAT(listed.out, HasSubstr("sock=[]"));
  EXPECT_THAT(listed.out, Not(HasSubstr(fingerprint_)));
}

TEST_F(AgentForwardingTest, AnAgentChannelNoLiveSessionAskedForIsRefused) {
  // sshd keeps one agent socket per connection once a session asked for it, and gives it to
  // every later session of that connection: the master must refuse what no session asked for.
  auto first = Ssh({"-A", "lab", "ssh-add -l"});
  ASSERT_EQ(first.exit_code, 0) << first.err << "\nmaster log:\n" << lab_->MasterLog();
  auto later = Ssh({"lab", "echo \"sock=[$SSH_AUTH_SOCK]\"; ssh-add -l"});
  EXPECT_NE(later.exit_code, 0) << later.out;
  EXPECT_THAT(later.out, Not(HasSubstr(fingerprint_)));
  EXPECT_THAT(lab_->MasterLog(), HasSubstr("no session on this connection asked for"));
  // The connection is unharmed: the next -A session has its agent again.
  auto again = Ssh({"-A", "lab", "ssh-add -l"});
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_THAT(again.out, HasSubstr(fingerprint_));
}

TEST_F(AgentForwardingTest, TwoConcurrentDashASessionsEachHaveTheAgent) {
  auto run = [this] {
    return Ssh({"-A", "lab", "for i in 1 2 3; do ssh-add -l || exit 1; sleep 0.3; done"});
  };
  auto one = std::async(std::launch::async, run);
  auto two = std::async(std::launch::async, run);
  for (auto* future : {&one, &two}) {
    auto result = future->get();
    EXPECT_EQ(result.exit_code, 0) << result.out << result.err;
    EXPECT_THAT(result.out, HasSubstr(fingerprint_));
  }
}

}  // namespace
}  // namespace mconnect::testing
