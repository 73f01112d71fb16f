// End to end: tmux runs the real `mconnect` against a real sshd; the master starts mosh-server
// over its connection and the stock mosh-client takes over the terminal. We type into the mosh
// session and read the screen.
#include <sys/stat.h>
#include <unistd.h>

#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/lab_fixture.h"
#include "tests/support/mconnect_lab.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

class MoshE2eTest : public LabTest {
 protected:
  void TearDown() override {
    // mosh-client replaced mconnect in the pane; stop it by pid before tmux goes.
    for (auto& tmux : panes_) {
      if (tmux->PanePid() > 0) KillPid(tmux->PanePid());
    }
    panes_.clear();
    LabTest::TearDown();
  }

  // Starts `mconnect lab` in a fresh tmux server and waits for the remote shell's prompt to
  // answer a typed command. Returns the pane.
  Tmux* StartSession(const std::string& name, std::vector<std::string> extra = {}) {
    std::string dir = lab_->dir().Sub(name);
    ::mkdir(dir.c_str(), 0700);
    panes_.push_back(std::make_unique<Tmux>(dir));
    Tmux* tmux = panes_.back().get();
    std::vector<std::string> args{"--timings", lab_->SshOption()};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back("lab");
    auto started = tmux->Start("exec " + lab_->ShellCommand(args), lab_->env());
    EXPECT_TRUE(started) << started.error().message;
    return tmux;
  }

  std::string Screen(const Tmux& tmux) {
    auto text = tmux.CaptureHistory();
    return text ? *text : text.error().message;
  }

  std::vector<std::unique_ptr<Tmux>> panes_;
};

TEST_F(MoshE2eTest, TypedCommandRunsInAMoshSessionThroughTheMaster) {
  Tmux* tmux = StartSession("t1");
  ASSERT_NE(tmux, nullptr);
  // mosh-client is the pane's process once mconnect has handed over (exec keeps the pid).
  auto client = WaitForProcess(
      [pid = tmux->PanePid()](const ProcessInfo& p) { return p.pid == pid && p.exe == "mosh-client"; }, 30s);
  ASSERT_TRUE(client) << "mosh-client never started; screen:\n" << Screen(*tmux);

  // Let mosh's first frames arrive, then type as a person would.
  ASSERT_TRUE(tmux->WaitForRegex("[#$] ", 30s)) << Screen(*tmux);
  ASSERT_TRUE(tmux->Type("echo MARK-$((6*7))"));
  ASSERT_TRUE(tmux->SendKeys("Enter"));
  ASSERT_TRUE(tmux->WaitFor("MARK-42", 30s)) << Screen(*tmux);

  // The address is the one the master's TCP connection reached; the key is in no argv.
  auto key = client->Getenv("MOSH_KEY");
  ASSERT_TRUE(key.has_value()) << "mosh-client gets its key from MOSH_KEY";
  ASSERT_EQ(key->size(), 22u);
  ASSERT_EQ(client->argv.size(), 4u);
  EXPECT_EQ(client->argv[0], "mosh-client");
  EXPECT_THAT(client->argv[1], HasSubstr("-# "));
  EXPECT_EQ(client->argv[2], "127.0.0.1");
  int port = std::stoi(client->argv[3]);
  EXPECT_GE(port, 60001);
  EXPECT_LE(port, 60999);
  for (const auto& process : FindProcesses([](const ProcessInfo&) { return true; })) {
    for (const auto& arg : process.argv) {
      EXPECT_THAT(arg, Not(HasSubstr(*key))) << "pid " << process.pid << " (" << process.exe << ") has the key in argv";
    }
    if (process.pid != client->pid) {
      for (const auto& variable : process.environ) {
        EXPECT_THAT(variable, Not(HasSubstr(*key))) << "pid " << process.pid << " (" << process.exe << ")";
      }
    }
  }
  // The master's log names the mosh-server but never its key.
  auto log = ReadFile(lab_->SocketPath().substr(0, lab_->SocketPath().size() - 5) + ".log");
  ASSERT_TRUE(log) << log.error().message;
  EXPECT_THAT(*log, HasSubstr("mosh-server listening on UDP port " + std::to_string(port)));
  EXPECT_THAT(*log, Not(HasSubstr(*key)));
}

// -v -v is for the user's eyes: it must not reach mosh-server, whose verbose mode keeps the
// channel open for the whole session (the start used to time out after 20 s).
TEST_F(MoshE2eTest, VerboseLauncherStillStartsTheSession) {
  Tmux* tmux = StartSession("t1", {"-v", "-v"});
  ASSERT_TRUE(tmux->WaitForRegex("[#$] ", 30s)) << Screen(*tmux);
  ASSERT_TRUE(tmux->Type("echo VERBOSE-$((6*7))"));
  ASSERT_TRUE(tmux->SendKeys("Enter"));
  ASSERT_TRUE(tmux->WaitFor("VERBOSE-42", 30s)) << Screen(*tmux);
  EXPECT_THAT(lab_->MasterLog(), Not(HasSubstr("mosh-server new -c 256 -s -v"))) << "no -v for mosh-server";
}

TEST_F(MoshE2eTest, SecondSessionReusesTheMaster) {
  Tmux* first = StartSession("t1");
  ASSERT_TRUE(first->WaitForRegex("[#$] ", 40s)) << Screen(*first);
  ASSERT_TRUE(first->Type("echo FIRST-$((1+1))"));
  ASSERT_TRUE(first->SendKeys("Enter"));
  ASSERT_TRUE(first->WaitFor("FIRST-2", 30s)) << Screen(*first);
  pid_t master = lab_->MasterPid();
  ASSERT_GT(master, 0);

  Tmux* second = StartSession("t2");
  ASSERT_TRUE(second->WaitForRegex("[#$] ", 40s)) << Screen(*second);
  ASSERT_TRUE(second->Type("echo SECOND-$((2+2))"));
  ASSERT_TRUE(second->SendKeys("Enter"));
  ASSERT_TRUE(second->WaitFor("SECOND-4", 30s)) << Screen(*second);

  EXPECT_EQ(lab_->MasterPid(), master);
  EXPECT_EQ(lab_->sshd().CountInLog("Accepted publickey"), 1) << "one authentication for two sessions:\n"
                                                              << lab_->sshd().Log();
  auto status = lab_->Run({"status", "--json"});
  ASSERT_TRUE(status);
  EXPECT_THAT(status->out, HasSubstr("\"socket_path\":\"" + lab_->SocketPath() + "\""));
  EXPECT_EQ(status->out.find("\"destination\""), status->out.rfind("\"destination\""));
  // `auto` probed UDP once, with a throwaway mosh-server, and remembered the verdict: the
  // second session started only its own.
  EXPECT_EQ(lab_->CountInMasterLog("mosh-server listening on UDP port"), 3) << lab_->MasterLog();
  auto table = lab_->Run({"status"});
  ASSERT_TRUE(table);
  EXPECT_THAT(table->out, HasSubstr("transport for new sessions (auto): udp, mosh-server answered over UDP at "
                                    "127.0.0.1"))
      << table->out;
}

// --transport=ssh: mosh-server listens on the server's loopback only, mosh-client talks to the
// master's relay socket, and the session works; status names the relay and why.
TEST_F(MoshE2eTest, SessionOverSshThroughTheRelay) {
  Tmux* tmux = StartSession("t1", {"--transport=ssh"});
  auto client = WaitForProcess(
      [pid = tmux->PanePid()](const ProcessInfo& p) { return p.pid == pid && p.exe == "mosh-client"; }, 30s);
  ASSERT_TRUE(client) << "mosh-client never started; screen:\n" << Screen(*tmux);
  ASSERT_TRUE(tmux->WaitForRegex("[#$] ", 30s)) << Screen(*tmux);
  ASSERT_TRUE(tmux->Type("echo OVER-SSH-$((6*7))"));
  ASSERT_TRUE(tmux->SendKeys("Enter"));
  ASSERT_TRUE(tmux->WaitFor("OVER-SSH-42", 30s)) << Screen(*tmux);

  auto status = lab_->Status();
  ASSERT_TRUE(status);
  ASSERT_EQ(status->relay_sessions_size(), 1);
  const auto& relayed = status->relay_sessions(0);
  ASSERT_EQ(client->argv.size(), 4u);
  EXPECT_EQ(client->argv[2], "127.0.0.1");
  EXPECT_EQ(std::stoi(client->argv[3]), static_cast<int>(relayed.local_port())) << "mosh-client sends to the relay";
  EXPECT_EQ(relayed.reason(), "transport ssh chosen");
  EXPECT_TRUE(relayed.relay() == "perl" || relayed.relay() == "mconnect") << relayed.relay();
  auto server = FindProcesses([pid = relayed.server_pid()](const ProcessInfo& p) {
    return p.pid == static_cast<pid_t>(pid);
  });
  ASSERT_EQ(server.size(), 1u) << "mosh-server pid " << relayed.server_pid() << " is not running";
  EXPECT_THAT(server[0].argv, ::testing::Contains("127.0.0.1")) << "mosh-server -i 127.0.0.1";
  EXPECT_THAT(server[0].argv, Not(::testing::Contains("-s")));

  auto table = lab_->Run({"status"});
  ASSERT_TRUE(table);
  EXPECT_THAT(table->out, HasSubstr("mosh over SSH: 127.0.0.1:" + std::to_string(relayed.local_port())));
  EXPECT_THAT(table->out, HasSubstr("transport ssh chosen"));
}

// The session's mosh-server is asked for while the route is found, with a guess at the route:
// `auto` with no remembered verdict guesses UDP. Here UDP does not pass (the address is
// 127.0.0.2, where nothing answers), so the route goes over SSH: the early mosh-server is
// stopped, and the session gets one bound for the relay. None is left behind.
TEST_F(MoshE2eTest, AWrongGuessAtTheRouteLeavesNoMoshServerBehind) {
  Tmux* tmux = StartSession("t1", {"--remote-ip=static:127.0.0.2"});
  ASSERT_TRUE(tmux->WaitForRegex("[#$] ", 40s)) << Screen(*tmux);
  ASSERT_TRUE(tmux->Type("echo GUESS-$((6*7))"));
  ASSERT_TRUE(tmux->SendKeys("Enter"));
  ASSERT_TRUE(tmux->WaitFor("GUESS-42", 30s)) << Screen(*tmux);
  auto status = lab_->Status();
  ASSERT_TRUE(status) << status.error().message;
  ASSERT_EQ(status->relay_sessions_size(), 1);
  EXPECT_THAT(status->relay_sessions(0).reason(), HasSubstr("no answer over UDP"));
  const auto session_server = static_cast<pid_t>(status->relay_sessions(0).server_pid());
  // The probe's, the early one and the session's own were started.
  EXPECT_EQ(lab_->CountInMasterLog("mosh-server listening on UDP port"), 3) << lab_->MasterLog();
  // mosh-servers detach: this process adopts them (tests/support/lab.h). Stopping the unused
  // ones is asynchronous, so the check waits for it, bounded.
  const pid_t self = ::getpid();
  auto others = [&] {
    return FindProcesses([&](const ProcessInfo& p) {
      return p.ppid == self && p.exe == "mosh-server" && p.pid != session_server;
    });
  };
  for (int i = 0; i < 100 && !others().empty(); ++i) std::this_thread::sleep_for(100ms);
  for (const auto& process : others()) ADD_FAILURE() << "mosh-server pid " << process.pid << " was left running";
  EXPECT_EQ(FindProcesses([&](const ProcessInfo& p) { return p.pid == session_server; }).size(), 1u);
}

}  // namespace
}  // namespace mconnect::testing
