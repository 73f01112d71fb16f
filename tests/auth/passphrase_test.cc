// Authentication the way a demanding OpenSSH user expects it, against a real sshd: an encrypted
// key's passphrase typed once (in tmux, like a person) and the master reused without asking
// again, a wrong passphrase asked again, SSH_ASKPASS without a terminal, refusals in BatchMode,
// the agent, and a master reconnecting on its own (interactive=false) that never asks anything.
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/auth/auth_lab.h"
#include "mux/ssh/auth.h"
#include "mux/ssh/connection.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

// ---- encrypted keys --------------------------------------------------------------------------

TEST_F(AuthTest, EncryptedKeyPassphraseIsAskedOnceAndTheMasterIsReused) {
  ASSERT_TRUE(EncryptKey());
  Tmux& tmux = Pane({"ip", AskingSshOption(), "lab"});
  std::string question = "Enter passphrase for key '" + key() + "': ";
  ASSERT_TRUE(Answer(tmux, question, kPassphrase));
  auto status = WaitForExit(tmux, 30s);
  ASSERT_EQ(status, 0) << Screen(tmux) << "\nmaster log:\n" << MasterLog();
  std::string screen = Screen(tmux);
  EXPECT_EQ(Count(screen, question), 1) << screen;
  EXPECT_THAT(screen, Not(HasSubstr(kPassphrase))) << "the passphrase was echoed";
  EXPECT_THAT(screen, HasSubstr("127.0.0.1"));
  pid_t master = lab_->MasterPid();
  ASSERT_GT(master, 0);

  // Later commands go through the master: nothing is asked (there is no terminal to ask on).
  auto ssh = ThroughMaster("echo via-$((40+2))");
  EXPECT_EQ(ssh.exit_code, 0) << ssh.err;
  EXPECT_EQ(ssh.out, "via-42\n");
  auto again = RunDetached({"ip", AskingSshOption(), "lab"});
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(lab_->MasterPid(), master);
  EXPECT_EQ(sshd().CountInLog("Accepted publickey"), 1) << sshd().Log();
  EXPECT_THAT(MasterLog(), Not(HasSubstr(kPassphrase)));
}

// A second terminal while the first is at the passphrase question: it says what it waits for,
// and connects (through the first one's master, asking nothing) as soon as that is answered.
TEST_F(AuthTest, SecondTerminalSaysItWaitsForTheFirstOneAskingAndThenConnects) {
  ASSERT_TRUE(EncryptKey());
  Tmux& first = Pane({"ip", AskingSshOption(), "lab"});
  const std::string question = "Enter passphrase for key '" + key() + "': ";
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (Count(Screen(first), question) < 1 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(50ms);
  ASSERT_EQ(Count(Screen(first), question), 1) << Screen(first);
  Tmux& second = Pane({"ip", AskingSshOption(), "lab"});
  const std::string waiting = "mconnect: waiting for the other mconnect for root@127.0.0.1:" +
                              std::to_string(sshd().port()) + " (pid ";
  deadline = std::chrono::steady_clock::now() + 20s;
  while (Screen(second).find(waiting) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_THAT(Screen(second), HasSubstr(waiting));
  EXPECT_THAT(Screen(second), HasSubstr("; it is asking for a passphrase, a password or a host key on its terminal)"));
  EXPECT_THAT(Screen(second), Not(HasSubstr("Enter passphrase")));
  ASSERT_TRUE(Answer(first, question, kPassphrase));
  EXPECT_EQ(WaitForExit(first, 30s), 0) << Screen(first);
  EXPECT_EQ(WaitForExit(second, 10s), 0) << Screen(second);
  EXPECT_THAT(Screen(second), HasSubstr("127.0.0.1"));
  EXPECT_EQ(sshd().CountInLog("Accepted publickey"), 1) << "the second terminal made its own connection";
}

TEST_F(AuthTest, WrongPassphraseIsAskedAgainWithoutTryingTheServer) {
  ASSERT_TRUE(EncryptKey());
  Tmux& tmux = Pane({"ip", AskingSshOption(), "lab"});
  std::string question = "Enter passphrase for key '" + key() + "': ";
  ASSERT_TRUE(Answer(tmux, question, "not the passphrase"));
  ASSERT_TRUE(Answer(tmux, question, kPassphrase, 2));
  auto status = WaitForExit(tmux, 30s);
  ASSERT_EQ(status, 0) << Screen(tmux) << "\nmaster log:\n" << MasterLog();
  EXPECT_EQ(Count(Screen(tmux), question), 2) << Screen(tmux);
  EXPECT_EQ(sshd().CountInLog("Accepted publickey"), 1) << sshd().Log();
  // The passphrase is checked locally: the server saw no failed attempt.
  EXPECT_EQ(sshd().CountInLog("Failed publickey"), 0) << sshd().Log();
}

TEST_F(AuthTest, WrongPassphrasesUpToNumberOfPasswordPromptsFailWithOneLine) {
  ASSERT_TRUE(EncryptKey());
  Tmux& tmux = Pane({"ip", AskingSshOption({"NumberOfPasswordPrompts=2"}), "lab"});
  std::string question = "Enter passphrase for key '" + key() + "': ";
  ASSERT_TRUE(Answer(tmux, question, "wrong one"));
  ASSERT_TRUE(Answer(tmux, question, "wrong two", 2));
  auto status = WaitForExit(tmux, 30s);
  EXPECT_EQ(status, 255) << Screen(tmux);
  std::string screen = Screen(tmux);
  EXPECT_EQ(Count(screen, question), 2) << "NumberOfPasswordPrompts=2: " << screen;
  EXPECT_THAT(screen, HasSubstr(LocalUser() + "@127.0.0.1: Permission denied (publickey); " + key() +
                                " (wrong passphrase)"));
  EXPECT_EQ(lab_->MasterPid(), 0);
}

TEST_F(AuthTest, InterruptedPassphraseQuestionRestoresTheTerminal) {
  ASSERT_TRUE(EncryptKey());
  std::string stty = lab_->dir().Sub("stty-after");
  // The shell reports the terminal's modes once Ctrl-C has ended mconnect and its master.
  Tmux& tmux = Pane({"ip", AskingSshOption(), "lab"}, "trap 'stty -a > " + stty + "; exit 7' INT; ");
  std::string question = "Enter passphrase for key '" + key() + "': ";
  ASSERT_TRUE(tmux.WaitFor(question, 30s)) << Screen(tmux);
  ASSERT_TRUE(tmux.SendKeys("C-c"));
  ASSERT_EQ(WaitForExit(tmux, 30s), 7) << Screen(tmux);
  auto modes = ReadFile(stty);
  ASSERT_TRUE(modes) << modes.error().message;
  EXPECT_TRUE(std::regex_search(*modes, std::regex(R"((^|\s)echo(\s|$))"))) << "echo is still off:\n" << *modes;
  EXPECT_EQ(lab_->MasterPid(), 0);
  EXPECT_EQ(sshd().CountInLog("Accepted publickey"), 0);
}

// ---- SSH_ASKPASS -----------------------------------------------------------------------------

TEST_F(AuthTest, AskpassAnswersWhenThereIsNoTerminal) {
  ASSERT_TRUE(EncryptKey());
  auto [askpass, record] = MakeAskpass();
  lab_->env().Set("SSH_ASKPASS", askpass).Set("SSH_ASKPASS_REQUIRE", "force");
  auto result = RunDetached({"ip", AskingSshOption(), "lab"});
  ASSERT_EQ(result.exit_code, 0) << result.err << "\nmaster log:\n" << MasterLog();
  EXPECT_EQ(ReadFile(record).value_or(""), "Enter passphrase for key '" + key() + "': \n");
  EXPECT_GT(lab_->MasterPid(), 0);
  EXPECT_EQ(sshd().CountInLog("Accepted publickey"), 1) << sshd().Log();
}

TEST_F(AuthTest, AskpassFollowsOpenSshRules) {
  ASSERT_TRUE(EncryptKey());
  auto [askpass, record] = MakeAskpass();
  lab_->env().Set("SSH_ASKPASS", askpass);

  // No terminal and no DISPLAY: ssh would not run the askpass program, nor do we.
  auto nobody = RunDetached({"ip", AskingSshOption(), "lab"});
  EXPECT_EQ(nobody.exit_code, 255);
  EXPECT_THAT(nobody.err, HasSubstr(key() + " (encrypted; no terminal to ask on"));
  EXPECT_EQ(Lines(nobody.err), 1) << nobody.err;
  EXPECT_FALSE(Exists(record));

  // SSH_ASKPASS_REQUIRE=never, even with a DISPLAY.
  lab_->env().Set("DISPLAY", ":99").Set("SSH_ASKPASS_REQUIRE", "never");
  auto never = RunDetached({"ip", AskingSshOption(), "lab"});
  EXPECT_EQ(never.exit_code, 255) << never.err;
  EXPECT_FALSE(Exists(record));

  // No terminal, DISPLAY set, no SSH_ASKPASS_REQUIRE: the askpass program.
  lab_->env().Unset("SSH_ASKPASS_REQUIRE");
  auto display = RunDetached({"ip", AskingSshOption(), "lab"});
  EXPECT_EQ(display.exit_code, 0) << display.err;
  EXPECT_EQ(Lines(ReadFile(record).value_or("")), 1);
  EXPECT_EQ(sshd().CountInLog("Accepted publickey"), 1) << sshd().Log();
}

TEST_F(AuthTest, BatchModeNeverAsks) {
  ASSERT_TRUE(EncryptKey());
  auto [askpass, record] = MakeAskpass();
  lab_->env().Set("SSH_ASKPASS", askpass).Set("SSH_ASKPASS_REQUIRE", "force");
  auto result = RunDetached({"ip", SshOption({"BatchMode=yes"}), "lab"});
  EXPECT_EQ(result.exit_code, 255);
  EXPECT_THAT(result.err, HasSubstr(key() + " (encrypted; BatchMode is on)"));
  EXPECT_EQ(Lines(result.err), 1) << result.err;
  EXPECT_FALSE(Exists(record)) << "BatchMode ran the askpass program";
  EXPECT_EQ(lab_->MasterPid(), 0);
}

// ---- a master on its own (interactive = false) -----------------------------------------------

// Sets environment variables of this process for one test.
class ScopedEnv {
 public:
  ScopedEnv& Set(const char* name, const std::string& value) {
    const char* old = std::getenv(name);
    saved_.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
    ::setenv(name, value.c_str(), 1);
    return *this;
  }
  ~ScopedEnv() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
      if (it->second) {
        ::setenv(it->first.c_str(), it->second->c_str(), 1);
      } else {
        ::unsetenv(it->first.c_str());
      }
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

// ---- the agent ---------------------------------------------------------------------------------

// The key is encrypted on disk but held by a real ssh-agent: the master authenticates through the
// agent without asking anything, and when sshd goes away and comes back it re-authenticates
// through the agent on its own, with nobody there; `ssh -S` then works without a prompt.
TEST_F(AuthTest, AgentAuthenticatesAndLetsTheMasterReconnectAlone) {
  ASSERT_TRUE(EncryptKey());
  std::string agent_socket = lab_->dir().Sub("agent.sock");
  // ssh-agent daemonizes and says its pid ("SSH_AGENT_PID=N; export ..."); stopped by that pid.
  auto agent = RunCommand({"ssh-agent", "-s", "-a", agent_socket});
  ASSERT_TRUE(agent && agent->ok()) << (agent ? agent->err : agent.error().message);
  std::smatch pid;
  ASSERT_TRUE(std::regex_search(agent->out, pid, std::regex("SSH_AGENT_PID=([0-9]+)"))) << agent->out;
  struct StopAgent {
    pid_t pid;
    ~StopAgent() { KillPid(pid); }
  } stop_agent{static_cast<pid_t>(std::stoi(pid[1]))};
  ASSERT_TRUE(Exists(agent_socket)) << "ssh-agent did not create " << agent_socket;
  // ssh-add decrypts the key once, through an askpass program, as a person's session would.
  auto [askpass, record] = MakeAskpass();
  auto added = RunCommand({"env", "SSH_AUTH_SOCK=" + agent_socket, "SSH_ASKPASS=" + askpass,
                           "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0", "setsid", "-w", "ssh-add", key()});
  ASSERT_TRUE(added && added->ok()) << (added ? added->err : added.error().message);
  lab_->env().Set("SSH_AUTH_SOCK", agent_socket);

  // IdentitiesOnly with the (encrypted) IdentityFile: the agent's copy of that key is used.
  auto first = RunDetached({"ip", SshOption({"ServerAliveInterval=1", "ServerAliveCountMax=2"}), "lab"});
  ASSERT_EQ(first.exit_code, 0) << first.err << "\nmaster log:\n" << MasterLog();
  pid_t master = lab_->MasterPid();
  ASSERT_GT(master, 0);
  EXPECT_THAT(MasterLog(), HasSubstr("agent"));

  sshd().Stop();
  ASSERT_TRUE(sshd().Restart());
  bool up_again = false;
  for (auto deadline = std::chrono::steady_clock::now() + 30s; !up_again && std::chrono::steady_clock::now() < deadline;
       std::this_thread::sleep_for(100ms)) {
    auto status = lab_->Status();
    up_again = status && status->reconnects() >= 1 && status->link() == "up";
  }
  ASSERT_TRUE(up_again) << "the master did not re-authenticate through the agent; log:\n" << MasterLog();
  auto ssh = ThroughMaster("echo agent-$((40+2))");
  EXPECT_EQ(ssh.exit_code, 0) << ssh.err;
  EXPECT_EQ(ssh.out, "agent-42\n");
  EXPECT_EQ(lab_->MasterPid(), master);
  EXPECT_EQ(sshd().CountInLog("Accepted publickey"), 2) << "once before, once on the reconnect:\n" << sshd().Log();
  EXPECT_EQ(Count(ReadFile(record).value_or(""), "\n"), 1) << "only ssh-add asked for the passphrase";
}

TEST_F(AuthTest, NobodyThereMeansNothingIsAsked) {
  // What a reconnecting master does (mux/ssh/reconnector.cc sets interactive = false): even with
  // an askpass program forced on, an encrypted key is skipped, and the failure says why.
  ASSERT_TRUE(EncryptKey());
  auto [askpass, record] = MakeAskpass();
  ScopedEnv env;
  env.Set("SSH_ASKPASS", askpass).Set("SSH_ASKPASS_REQUIRE", "force");

  mux::ConnectParams params;
  params.user = LocalUser();
  params.host = "127.0.0.1";
  params.port = sshd().port();
  params.known_hosts_files = {sshd().known_hosts()};
  params.host_key_policy = mux::HostKeyPolicy::kStrict;
  params.identity_files = {key()};
  params.identities_only = true;
  params.identity_agent = "none";
  params.timeout = 10s;
  params.interactive = false;
  auto start = std::chrono::steady_clock::now();
  auto detached = mux::SshConnection::Open(params, [](std::string_view) {});
  ASSERT_FALSE(detached);
  EXPECT_EQ(detached.error().kind, mux::OpenFailure::kAuthentication);
  EXPECT_THAT(detached.error().message, HasSubstr(key() + " (encrypted; nobody is there to answer)"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_FALSE(Exists(record)) << "a master on its own ran the askpass program";

  // BatchMode, with a person there: nothing is asked either.
  params.interactive = true;
  params.auth.batch_mode = true;
  auto batch = mux::SshConnection::Open(params, [](std::string_view) {});
  ASSERT_FALSE(batch);
  EXPECT_THAT(batch.error().message, HasSubstr("(encrypted; BatchMode is on)"));
  EXPECT_FALSE(Exists(record));

  // The same connection with a person there: the askpass program answers, so the two refusals
  // above were decisions, not accidents of the setup.
  params.auth.batch_mode = false;
  auto attended = mux::SshConnection::Open(params, [](std::string_view) {});
  ASSERT_TRUE(attended) << attended.error().message;
  EXPECT_EQ((*attended)->auth_method(), "publickey (" + key() + ")");
  EXPECT_EQ(Lines(ReadFile(record).value_or("")), 1);
}

}  // namespace
}  // namespace mconnect::testing
