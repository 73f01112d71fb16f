// Unchanged OpenSSH 9.2 clients (`ssh -S SOCKET`, `ssh -O ...`) against the mconnect master,
// in the shape of openssh-portable's regress/multiplex.sh. Every test also checks sshd's log:
// a client that silently fell back to its own connection would authenticate a second time.
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <future>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "proto/control.pb.h"
#include "tests/master/openssh_mux_fixture.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

TEST_F(OpenSshMuxTest, HundredConcurrentSessionsPastMaxSessions) {
  // sshd's default MaxSessions is 10 per connection: the master opens more connections itself
  // rather than let OpenSSH's client fall back, silently, to a connection of its own.
  constexpr int kClients = 100;
  std::vector<std::future<CommandOutput>> runs;
  for (int i = 0; i < kClients; ++i) {
    runs.push_back(std::async(std::launch::async, [this, i] {
      return Run({"lab", "echo client-" + std::to_string(i) + "; sleep 1"}, {}, 120s);
    }));
  }
  int succeeded = 0;
  for (int i = 0; i < kClients; ++i) {
    CommandOutput result = runs[i].get();
    if (result.exit_code == 0 && result.out == "client-" + std::to_string(i) + "\n") {
      ++succeeded;
    } else {
      ADD_FAILURE() << "client " << i << " exit " << result.exit_code << ": " << result.err;
    }
  }
  EXPECT_EQ(succeeded, kClients);
  auto client = lab_->Connect();
  ASSERT_TRUE(client);
  auto status = client->Call<control::StatusReply>(proto::MessageType::kStatus, control::StatusRequest{},
                                                   proto::MessageType::kStatusReply, 5s);
  ASSERT_TRUE(status) << status.error().message;
  EXPECT_GT(status->connections_opened(), 1u) << "100 sessions at once need more than one connection";
  auto table = lab_->Run({"status"});
  ASSERT_TRUE(table);
  EXPECT_THAT(table->out, HasSubstr("CONNS")) << "mconnect status shows the connections";
  expected_authentications_ = static_cast<int>(status->connections_opened());
}

TEST_F(OpenSshMuxTest, PlainSshUsesTheMasterAtTheUsersControlPath) {
  // What `mconnect ssh-config lab` prints, added to the user's config: plain ssh, no -S.
  auto printed = lab_->Run({"ssh-config", lab_->SshOption(), "lab"});
  ASSERT_TRUE(printed && printed->exit_code == 0) << (printed ? printed->err : printed.error().message);
  EXPECT_THAT(printed->out, HasSubstr("Host lab\n"));
  EXPECT_THAT(printed->out, HasSubstr("ControlPath " + lab_->env().runtime_dir + "/mconnect/%r@%h:%p.sock"));
  std::string config = lab_->dir().Sub("ssh_config_with_master");
  {
    std::ofstream out(config);
    out << printed->out;
    std::ifstream lab_config(lab_->sshd().ssh_config());
    for (std::string line; std::getline(lab_config, line);) {
      if (line.find("ControlPath") == std::string::npos && line.find("ControlMaster") == std::string::npos) {
        out << line << "\n";
      }
    }
  }
  auto plain = RunCommand(lab_->env().Command({"ssh", "-F", config, "lab", "echo plain-$((2*21))"}));
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->exit_code, 0) << plain->err;
  EXPECT_EQ(plain->out, "plain-42\n");

  // A ControlPath of the user's own: the master listens exactly there, tokens expanded as ssh does.
  std::string own = lab_->dir().Sub("own_config");
  {
    std::ofstream out(own);
    out << "Host own\n  ControlPath " << lab_->dir().path() << "/cm-%r@%h:%p\n  ControlMaster no\n";
    std::ifstream lab_config(lab_->sshd().ssh_config());
    for (std::string line; std::getline(lab_config, line);) {
      if (line.find("Host lab") != std::string::npos) continue;
      if (line.find("ControlPath") == std::string::npos && line.find("ControlMaster") == std::string::npos) {
        out << line << "\n";
      }
    }
  }
  auto started = lab_->Run({"ip", "--ssh=ssh -F " + own, "own"});
  ASSERT_TRUE(started && started->exit_code == 0) << (started ? started->err : started.error().message);
  struct stat st{};
  auto user = RunCommand({"ssh", "-F", own, "-G", "own"});
  ASSERT_TRUE(user);
  std::string name;
  if (std::size_t at = user->out.find("\nuser "); at != std::string::npos) {
    name = user->out.substr(at + 6, user->out.find('\n', at + 1) - at - 6);
  }
  std::string path = lab_->dir().path() + "/cm-" + name + "@127.0.0.1:" + std::to_string(lab_->sshd().port());
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  auto through = RunCommand(lab_->env().Command({"ssh", "-F", own, "own", "echo own-master"}));
  ASSERT_TRUE(through);
  EXPECT_EQ(through->out, "own-master\n") << through->err;
  expected_authentications_ = 2;  // the lab's master and the one at the user's ControlPath
  auto stop = lab_->Run({"stop", "--ssh=ssh -F " + own, "own"});
  EXPECT_TRUE(stop && stop->exit_code == 0);
}

TEST_F(OpenSshMuxTest, ExitStatusAndStreams) {
  auto result = Run({"lab", "echo out; echo err >&2; exit 42"});
  EXPECT_EQ(result.exit_code, 42) << result.err;
  EXPECT_EQ(result.out, "out\n");
  EXPECT_EQ(result.err, "err\n");
}

TEST_F(OpenSshMuxTest, CommandKilledBySignalExits255AsSsh) {
  auto result = Run({"lab", "echo before; kill -TERM $$"});
  EXPECT_EQ(result.exit_code, 255) << result.err;
  EXPECT_EQ(result.out, "before\n");
}

TEST_F(OpenSshMuxTest, EnvironmentIsPassedFiltered) {
  // The master passes on what the client sends (SendEnv LANG, SetEnv of any name); the lab's
  // sshd accepts only the locale (AcceptEnv LANG LC_*). tests/master/openssh_env_test.cc shows
  // the rest.
  auto result = Run({"-o", "SendEnv=LANG", "-o", "SetEnv=MCONNECT_SECRET_TEST=leak", "lab",
                     "echo \"lang=$LANG secret=${MCONNECT_SECRET_TEST:-unset}\""});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "lang=C.UTF-8 secret=unset\n");
}

TEST_F(OpenSshMuxTest, StdinReachesTheCommandAndEofEndsIt) {
  auto result = Run({"lab", "tr a-z A-Z"}, "hello through the master\n");
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "HELLO THROUGH THE MASTER\n");
}

TEST_F(OpenSshMuxTest, SixtyFourMegabytesEachWayAreByteIdentical) {
  std::string dir = lab_->dir().path();
  auto result = Shell("set -e; cd " + dir +
                      "; head -c 67108864 /dev/urandom > up"
                      "; eval \"$SSH lab cat\" < up > down"
                      "; cmp up down"
                      "; eval \"$SSH lab 'cat > " + dir + "/remote'\" < up"
                      "; cmp up remote"
                      "; eval \"$SSH lab 'cat " + dir + "/remote'\" > back"
                      "; cmp up back; echo SAME",
                      180s);
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("SAME"));
}

TEST_F(OpenSshMuxTest, CheckReportsTheMastersPid) {
  pid_t master = lab_->MasterPid();
  auto result = Run({"-O", "check", "lab"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.err, HasSubstr("Master running (pid=" + std::to_string(master) + ")"));
}

TEST_F(OpenSshMuxTest, ExitEndsTheMaster) {
  pid_t master = lab_->MasterPid();
  auto result = Run({"-O", "exit", "lab"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.err, HasSubstr("Exit request sent"));
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    gone = ProcessGone(master);
    if (!gone) std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(gone);
  struct stat st{};
  EXPECT_NE(::lstat(lab_->SocketPath().c_str(), &st), 0) << "the socket is removed";
}

TEST_F(OpenSshMuxTest, StopListeningRemovesTheSocket) {
  auto result = Run({"-O", "stop", "lab"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.err, HasSubstr("Stop listening request sent"));
  struct stat st{};
  for (int i = 0; i < 100 && ::lstat(lab_->SocketPath().c_str(), &st) == 0; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_NE(::lstat(lab_->SocketPath().c_str(), &st), 0);
}

TEST_F(OpenSshMuxTest, StdioForwardCarriesAnHttpRequest) {
  std::string root = lab_->dir().Sub("www");
  ::mkdir(root.c_str(), 0700);
  HttpServer http(root);
  ASSERT_TRUE(http.ready());
  auto result = Run({"-W", "127.0.0.1:" + std::to_string(http.port()), "lab"},
                    "GET /index.html HTTP/1.0\r\nHost: localhost\r\n\r\n");
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("200 OK"));
  EXPECT_THAT(result.out, HasSubstr("mconnect-forward-ok"));
}

TEST_F(OpenSshMuxTest, LocalForwardCarriesHttpAndCancelEndsIt) {
  std::string root = lab_->dir().Sub("www");
  ::mkdir(root.c_str(), 0700);
  HttpServer http(root);
  ASSERT_TRUE(http.ready());
  int port = FreeTcpPort();
  std::string spec = "127.0.0.1:" + std::to_string(port) + ":127.0.0.1:" + std::to_string(http.port());
  auto forward = Run({"-O", "forward", "-L", spec, "lab"});
  ASSERT_EQ(forward.exit_code, 0) << forward.err;
  for (int i = 0; i < 3; ++i) {
    auto got = Fetch("", port, http.port());
    EXPECT_EQ(got.exit_code, 0) << got.err;
    EXPECT_EQ(got.out, "mconnect-forward-ok\n");
  }
  auto cancel = Run({"-O", "cancel", "-L", spec, "lab"});
  EXPECT_EQ(cancel.exit_code, 0) << cancel.err;
  auto refused = Fetch("", port, http.port());
  EXPECT_NE(refused.exit_code, 0) << "the listener is gone after -O cancel";
}

TEST_F(OpenSshMuxTest, DynamicForwardSpeaksSocks4And5) {
  std::string root = lab_->dir().Sub("www");
  ::mkdir(root.c_str(), 0700);
  HttpServer http(root);
  ASSERT_TRUE(http.ready());
  int port = FreeTcpPort();
  auto forward = Run({"-O", "forward", "-D", "127.0.0.1:" + std::to_string(port), "lab"});
  ASSERT_EQ(forward.exit_code, 0) << forward.err;
  for (std::string proxy : {"--socks5", "--socks5-hostname", "--socks4", "--socks4a"}) {
    auto got = Fetch(proxy, port, http.port());
    EXPECT_EQ(got.exit_code, 0) << proxy << ": " << got.err;
    EXPECT_EQ(got.out, "mconnect-forward-ok\n") << proxy;
  }
}

TEST_F(OpenSshMuxTest, RemoteForwardsFixedAndAllocatedPorts) {
  std::string root = lab_->dir().Sub("www");
  ::mkdir(root.c_str(), 0700);
  HttpServer http(root);
  ASSERT_TRUE(http.ready());
  std::string target = ":127.0.0.1:" + std::to_string(http.port());

  // -R 0: the server picks the port and ssh prints it.
  auto allocated = Run({"-O", "forward", "-R", "127.0.0.1:0" + target, "lab"});
  ASSERT_EQ(allocated.exit_code, 0) << allocated.err;
  int port = std::atoi(allocated.out.c_str());
  ASSERT_GT(port, 0) << "stdout: " << allocated.out << " stderr: " << allocated.err;
  auto got = Fetch("", port, http.port());  // the server's listener is on this machine's loopback
  EXPECT_EQ(got.exit_code, 0) << got.err;
  EXPECT_EQ(got.out, "mconnect-forward-ok\n");

  int fixed = FreeTcpPort();
  std::string spec = "127.0.0.1:" + std::to_string(fixed) + target;
  auto forward = Run({"-O", "forward", "-R", spec, "lab"});
  ASSERT_EQ(forward.exit_code, 0) << forward.err;
  got = Fetch("", fixed, http.port());
  EXPECT_EQ(got.out, "mconnect-forward-ok\n") << got.err;
  auto cancel = Run({"-O", "cancel", "-R", spec, "lab"});
  EXPECT_EQ(cancel.exit_code, 0) << cancel.err;
  bool refused = false;
  for (int i = 0; i < 50 && !refused; ++i) {
    refused = Fetch("", fixed, http.port()).exit_code != 0;
    if (!refused) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(refused) << "the server stops listening after -O cancel";
}

TEST_F(OpenSshMuxTest, InteractivePtySessionEchoesAndSeesResizes) {
  std::string dir = lab_->dir().Sub("tmux");
  ::mkdir(dir.c_str(), 0700);
  Tmux tmux(dir);
  std::string command = "exec";
  for (const auto& word : Ssh({"-t", "lab"})) command += " " + ShellQuote(word);
  ASSERT_TRUE(tmux.Start(command, lab_->env(), 100, 30));
  ASSERT_TRUE(tmux.WaitForRegex("[#$] ", 30s)) << tmux.CaptureHistory().value_or("") << "\nmaster log:\n"
                                                << ReadFile(lab_->SocketPath().substr(0, lab_->SocketPath().size() - 5) + ".log").value_or("");
  ASSERT_TRUE(tmux.Type("echo TYPED-$((6*7)); stty size"));
  ASSERT_TRUE(tmux.SendKeys("Enter"));
  ASSERT_TRUE(tmux.WaitFor("TYPED-42", 20s)) << tmux.CaptureHistory().value_or("");
  EXPECT_TRUE(tmux.WaitFor("30 100", 10s)) << tmux.CaptureHistory().value_or("");

  auto resized = RunCommand(tmux.Command({"resize-window", "-x", "90", "-y", "25"}));
  ASSERT_TRUE(resized && resized->exit_code == 0);
  std::this_thread::sleep_for(300ms);
  ASSERT_TRUE(tmux.Type("stty size"));
  ASSERT_TRUE(tmux.SendKeys("Enter"));
  EXPECT_TRUE(tmux.WaitFor("25 90", 10s)) << tmux.CaptureHistory().value_or("");

  // The escape character works through the master, as with OpenSSH's: ~. ends the session.
  ASSERT_TRUE(tmux.SendKeys("Enter"));
  ASSERT_TRUE(tmux.Type("~."));
  EXPECT_TRUE(tmux.WaitFor("Connection closed", 10s)) << tmux.CaptureHistory().value_or("");
  std::optional<int> status;
  for (int i = 0; i < 100 && !status; ++i) {
    status = tmux.PaneExitStatus();
    if (!status) std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(status.has_value()) << "ssh ended after ~.";
}

}  // namespace
}  // namespace mconnect::testing
