// The master against a real sshd: started once and reused, the control protocol, stop and
// stale sockets, and every kind of bad input the issue names — each a clear line and a
// non-zero exit, nothing hanging.
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <poll.h>

#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "proto/control.pb.h"
#include "tests/master/server_processes.h"
#include "tests/support/mconnect_lab.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

int Lines(const std::string& text) {
  int lines = 0;
  for (char c : text) lines += c == '\n';
  return lines;
}

bool Exists(const std::string& path) {
  struct stat st{};
  return ::lstat(path.c_str(), &st) == 0;
}

class MasterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto lab = MconnectLab::Start();
    ASSERT_TRUE(lab) << lab.error().message;
    lab_ = std::move(*lab);
  }

  // `mconnect ip lab`: starts (or reuses) the master and asks for the address.
  CommandOutput Ip(std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"ip", lab_->SshOption()};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back("lab");
    auto result = lab_->Run(args);
    EXPECT_TRUE(result) << result.error().message;
    return result ? *result : CommandOutput{};
  }

  std::unique_ptr<MconnectLab> lab_;
};

TEST_F(MasterTest, OneMasterServesManyCommands) {
  auto first = Ip();
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_THAT(first.out, HasSubstr("peer"));
  EXPECT_THAT(first.out, HasSubstr("127.0.0.1"));
  pid_t master = lab_->MasterPid();
  ASSERT_GT(master, 0);
  auto second = Ip();
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(lab_->MasterPid(), master);
  EXPECT_EQ(lab_->sshd().CountInLog("Accepted publickey"), 1) << lab_->sshd().Log();

  auto status = lab_->Run({"status", "--json"});
  ASSERT_TRUE(status);
  ASSERT_EQ(status->exit_code, 0) << status->err;
  EXPECT_THAT(status->out, HasSubstr("\"socket_path\":\"" + lab_->SocketPath() + "\""));
  EXPECT_THAT(status->out, HasSubstr("\"pid\":" + std::to_string(master)));
  EXPECT_EQ(status->out.find("\"destination\""), status->out.rfind("\"destination\"")) << "exactly one master";
}

TEST_F(MasterTest, TwoLaunchersAtOnceStartOneMaster) {
  auto first = std::async(std::launch::async, [this] { return Ip(); });
  auto second = std::async(std::launch::async, [this] { return Ip(); });
  auto a = first.get();
  auto b = second.get();
  EXPECT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(lab_->sshd().CountInLog("Accepted publickey"), 1) << "the lock lets one master authenticate:\n"
                                                              << lab_->sshd().Log();
}

TEST_F(MasterTest, SocketIsPrivate) {
  ASSERT_EQ(Ip().exit_code, 0);
  struct stat socket{}, directory{};
  ASSERT_EQ(::stat(lab_->SocketPath().c_str(), &socket), 0);
  EXPECT_TRUE(S_ISSOCK(socket.st_mode));
  EXPECT_EQ(socket.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((lab_->env().runtime_dir + "/mconnect").c_str(), &directory), 0);
  EXPECT_EQ(directory.st_mode & 0777, 0700u);
}

TEST_F(MasterTest, ExecReturnsOutputAndExitStatus) {
  ASSERT_EQ(Ip().exit_code, 0);
  auto client = lab_->Connect();
  ASSERT_TRUE(client) << client.error().message;
  control::ExecRequest request;
  request.set_command("echo out; echo err >&2; exit 3");
  auto reply = client->Call<control::ExecReply>(proto::MessageType::kExec, request, proto::MessageType::kExecReply, 20s);
  ASSERT_TRUE(reply) << reply.error().message;
  EXPECT_EQ(reply->stdout(), "out\n");
  EXPECT_EQ(reply->stderr(), "err\n");
  EXPECT_EQ(reply->exit_status(), 3);
  EXPECT_FALSE(reply->timed_out());

  // Several commands at once on one connection: each gets its own channel and answer.
  std::vector<proto::ControlClient> clients;
  for (int i = 0; i < 4; ++i) {
    auto c = lab_->Connect();
    ASSERT_TRUE(c);
    clients.push_back(std::move(*c));
  }
  for (int i = 0; i < 4; ++i) {
    control::ExecRequest echo;
    echo.set_command("echo " + std::to_string(i));
    auto answer = clients[i].Call<control::ExecReply>(proto::MessageType::kExec, echo, proto::MessageType::kExecReply, 20s);
    ASSERT_TRUE(answer) << answer.error().message;
    EXPECT_EQ(answer->stdout(), std::to_string(i) + "\n");
  }
}

TEST_F(MasterTest, ExecTimeoutIsBounded) {
  ASSERT_EQ(Ip().exit_code, 0);
  auto client = lab_->Connect();
  ASSERT_TRUE(client);
  control::ExecRequest request;
  request.set_command("sleep 20");
  request.set_timeout_ms(500);
  auto start = std::chrono::steady_clock::now();
  auto reply = client->Call<control::ExecReply>(proto::MessageType::kExec, request, proto::MessageType::kExecReply, 15s);
  ASSERT_TRUE(reply) << reply.error().message;
  EXPECT_TRUE(reply->timed_out());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 8s);
  // The master still serves.
  control::ExecRequest echo;
  echo.set_command("echo alive");
  auto after = client->Call<control::ExecReply>(proto::MessageType::kExec, echo, proto::MessageType::kExecReply, 20s);
  ASSERT_TRUE(after) << after.error().message;
  EXPECT_EQ(after->stdout(), "alive\n");
}

TEST_F(MasterTest, StopEndsTheMasterAndRemovesItsSocket) {
  ASSERT_EQ(Ip().exit_code, 0);
  pid_t master = lab_->MasterPid();
  ASSERT_GT(master, 0);
  auto stop = lab_->Run({"stop", lab_->SshOption(), "lab"});
  ASSERT_TRUE(stop);
  EXPECT_EQ(stop->exit_code, 0) << stop->err;
  EXPECT_THAT(stop->out, HasSubstr("stopped master"));
  EXPECT_FALSE(Exists(lab_->SocketPath()));
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    gone = ProcessGone(master);
    if (!gone) std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(gone);
  auto again = lab_->Run({"stop", lab_->SshOption(), "lab"});
  ASSERT_TRUE(again);
  EXPECT_EQ(again->exit_code, 1);
  EXPECT_THAT(again->err, HasSubstr("no master running"));
}

TEST_F(MasterTest, StaleSocketOfAKilledMasterIsReplaced) {
  ASSERT_EQ(Ip().exit_code, 0);
  pid_t master = lab_->MasterPid();
  ASSERT_GT(master, 0);
  ASSERT_EQ(::kill(master, SIGKILL), 0);
  for (int i = 0; i < 100 && !ProcessGone(master); ++i) std::this_thread::sleep_for(20ms);
  ASSERT_TRUE(Exists(lab_->SocketPath())) << "a killed master leaves its socket behind";
  auto status = lab_->Run({"status"});
  ASSERT_TRUE(status);
  EXPECT_THAT(status->out, HasSubstr("(stale)"));

  auto next = Ip();
  ASSERT_EQ(next.exit_code, 0) << next.err;
  pid_t replacement = lab_->MasterPid();
  EXPECT_GT(replacement, 0);
  EXPECT_NE(replacement, master);
}

TEST_F(MasterTest, MalformedProfileNamesFileAndLineAndStartsNothing) {
  struct Case {
    std::string text;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"[defaults\npersist = 1\n", "config.toml:1: "},                                   // syntax
      {"[defaults]\npersist = \"long\"\n", "config.toml:2: persist \"long\" is neither \"yes\" nor \"no\""},  // type
      {"[defaults]\n\ncolour = 1\n", "config.toml:3: unknown key \"colour\""},            // unknown key
      {"[host.lab]\nmosh-ports = \"70000\"\n", "config.toml:2: mosh-ports \"70000\""},    // bad port
  };
  std::string config = lab_->dir().Sub("config.toml");
  const int connections = lab_->sshd().CountInLog("Connection from");
  for (const auto& c : cases) {
    std::ofstream(config) << c.text;
    auto result = lab_->Run({lab_->SshOption(), "--config", config, "lab"});
    ASSERT_TRUE(result);
    EXPECT_NE(result->exit_code, 0) << c.text;
    EXPECT_THAT(result->err, HasSubstr(c.message)) << c.text;
    EXPECT_THAT(result->err, Not(HasSubstr("host name"))) << "the hint must be about the file:\n" << result->err;
    EXPECT_LE(Lines(result->err), 2) << result->err;
  }
  // Nothing was started: no master, not even a connection to the server.
  EXPECT_EQ(lab_->MasterPid(), 0);
  EXPECT_FALSE(Exists(lab_->SocketPath()));
  EXPECT_EQ(lab_->sshd().CountInLog("Connection from"), connections) << lab_->sshd().Log();
}

TEST_F(MasterTest, UnknownHostIsOneLineAnd255) {
  auto result = lab_->Run({"ip", lab_->SshOption(), "no-such-host.invalid"});
  ASSERT_TRUE(result);
  EXPECT_EQ(result->exit_code, 255);
  EXPECT_THAT(result->err, HasSubstr("could not resolve hostname no-such-host.invalid"));
  EXPECT_EQ(Lines(result->err), 1) << result->err;
}

TEST_F(MasterTest, RefusedPortIsOneLineAnd255) {
  int port = FreeTcpPort();
  std::string config = lab_->dir().Sub("dead_config");
  std::ofstream(config) << "Host dead\n  HostName 127.0.0.1\n  Port " << port
                        << "\n  UserKnownHostsFile " << lab_->sshd().known_hosts() << "\n  BatchMode yes\n";
  auto result = lab_->Run({"ip", "--ssh=ssh -F " + config, "dead"});
  ASSERT_TRUE(result);
  EXPECT_EQ(result->exit_code, 255);
  EXPECT_THAT(result->err, HasSubstr("port " + std::to_string(port) + ": Connection refused"));
  EXPECT_EQ(Lines(result->err), 1) << result->err;
}

TEST_F(MasterTest, ChangedHostKeyFailsBeforeAuthenticating) {
  ASSERT_TRUE(lab_->sshd().Rekey());
  std::size_t log_before = lab_->sshd().Log().size();
  auto result = lab_->Run({"ip", lab_->SshOption(), "lab"});
  ASSERT_TRUE(result);
  EXPECT_EQ(result->exit_code, 255);
  EXPECT_THAT(result->err, HasSubstr("REMOTE HOST IDENTIFICATION HAS CHANGED"));
  EXPECT_THAT(result->err, HasSubstr("mconnect: host key for [127.0.0.1]:" + std::to_string(lab_->sshd().port()) +
                                     " has changed"));
  EXPECT_EQ(lab_->MasterPid(), 0);
  // Nothing was sent after the key exchange: the server saw no authentication attempt at all.
  std::string after = lab_->sshd().Log().substr(log_before);
  EXPECT_THAT(after, Not(HasSubstr("publickey")));
  EXPECT_THAT(after, Not(HasSubstr("Accepted")));
}

// Sessions below run without a terminal, which mosh-client's checks refuse before the master is
// reached: they name a client that needs none (/bin/true), so that they get as far as the server.
TEST_F(MasterTest, RemoteIpCommandPrintingHtmlIsAClearError) {
  auto result = lab_->Run({lab_->SshOption(), "--client=/bin/true", "--transport=udp", "--remote-ip",
                           "command:printf '<html><body>blocked</body></html>\\n'", "lab"});
  ASSERT_TRUE(result);
  EXPECT_EQ(result->exit_code, 1);
  EXPECT_THAT(result->err, HasSubstr("command:printf"));
  EXPECT_THAT(result->err, HasSubstr("HTML"));
  // One line, and a hint.
  EXPECT_EQ(Lines(result->err), 2) << result->err;
  EXPECT_THAT(result->err, HasSubstr("\nmconnect: hint: try another --remote-ip strategy (see `mconnect ip lab`)\n"));
}

TEST_F(MasterTest, RemoteIpCommandPrintingNothingIsAClearError) {
  auto result = lab_->Run({lab_->SshOption(), "--client=/bin/true", "--transport=udp", "--remote-ip", "command:true", "lab"});
  ASSERT_TRUE(result);
  EXPECT_EQ(result->exit_code, 1);
  EXPECT_THAT(result->err, HasSubstr("command:true"));
  EXPECT_THAT(result->err, HasSubstr("nothing"));
  // One line, and a hint.
  EXPECT_EQ(Lines(result->err), 2) << result->err;
  EXPECT_THAT(result->err, HasSubstr("\nmconnect: hint: try another --remote-ip strategy (see `mconnect ip lab`)\n"));
}

TEST_F(MasterTest, RemoteIpChainFallsThroughToTheNextStrategy) {
  auto result = Ip({"--remote-ip", "command:echo not-an-address", "--remote-ip", "command:echo 203.0.113.7",
                    "--remote-ip", "static:192.0.2.5"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("failed"));
  EXPECT_THAT(result.out, HasSubstr("203.0.113.7"));
  EXPECT_THAT(result.out, HasSubstr("192.0.2.5")) << "mconnect ip shows every candidate, not only the first answer";
}

TEST_F(MasterTest, HangingCommandFallsThroughWithinTheConfiguredTimeout) {
  std::string config = lab_->dir().Sub("config.toml");
  std::ofstream(config) << "[defaults]\nremote-ip-timeout = 1\n";
  auto start = std::chrono::steady_clock::now();
  auto result = Ip({"--config", config, "--remote-ip", "command:sleep 30", "--remote-ip", "peer"});
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("command:sleep 30"));
  EXPECT_THAT(result.out, HasSubstr("timed out"));
  EXPECT_THAT(result.out, HasSubstr("127.0.0.1"));
  EXPECT_LT(took, 4s) << "one second for the hanging command, then peer";
}

TEST_F(MasterTest, HtmlEmptyAndHangingAnswersEachFallThroughToTheNext) {
  std::string config = lab_->dir().Sub("config.toml");
  std::ofstream(config) << "[defaults]\nremote-ip-timeout = 1\n";
  auto start = std::chrono::steady_clock::now();
  // The chain as the launcher runs it before a session (first valid answer wins).
  auto result = lab_->Run({lab_->SshOption(), "--client=/bin/true", "--config", config, "--remote-ip",
                           "command:printf '<html><body>502 Bad Gateway</body></html>\\n'", "--remote-ip",
                           "command:true", "--remote-ip", "command:sleep 30", "--remote-ip", "static:192.0.2.77",
                           "--server=/nonexistent/mosh-server", "lab"});
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(result);
  // The address was found (the session then fails only for the missing mosh-server).
  EXPECT_THAT(result->err, HasSubstr("printed HTML"));
  EXPECT_THAT(result->err, HasSubstr("command:true"));
  EXPECT_THAT(result->err, HasSubstr("command:sleep 30"));
  EXPECT_THAT(result->err, HasSubstr("timed out"));
  EXPECT_THAT(result->err, HasSubstr("using 192.0.2.77"));
  EXPECT_LT(took, 6s) << "three failures, one within the 1 s timeout";
}

TEST_F(MasterTest, CachedAnswerIsReusedAndExpiresAfterItsTtl) {
  std::string config = lab_->dir().Sub("config.toml");
  std::ofstream(config) << "[defaults]\nremote-ip-cache-ttl = 2\n";
  std::string counter = lab_->dir().Sub("runs");
  std::string strategy = "command:echo run >> " + counter + "; echo 203.0.113.9";
  auto runs = [&counter] {
    auto text = ReadFile(counter);
    return text ? Lines(*text) : 0;
  };
  auto first = Ip({"--config", config, "--remote-ip", strategy});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  auto second = Ip({"--config", config, "--remote-ip", strategy});
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_THAT(second.out, HasSubstr("cached"));
  EXPECT_EQ(runs(), 1) << "the command ran once for two answers";
  std::this_thread::sleep_for(2500ms);
  auto third = Ip({"--config", config, "--remote-ip", strategy});
  ASSERT_EQ(third.exit_code, 0) << third.err;
  EXPECT_EQ(runs(), 2) << "the answer expired after its TTL";
  EXPECT_THAT(third.out, HasSubstr("203.0.113.9"));
}

TEST_F(MasterTest, MissingMoshServerSaysHowToFixIt) {
  auto result = lab_->Run({lab_->SshOption(), "--client=/bin/true", "--server=/nonexistent/mosh-server", "lab"});
  ASSERT_TRUE(result);
  EXPECT_EQ(result->exit_code, 1);
  EXPECT_THAT(result->err, HasSubstr("--server"));
  EXPECT_LE(Lines(result->err), 2) << "one line and a hint: " << result->err;
}

// A `command:` strategy that outlives its timeout is ended on the server (the session's process
// group, signalled over its channel), not left running once per attempt.
TEST_F(MasterTest, TimedOutCommandIsEndedOnTheServer) {
  std::string config = lab_->dir().Sub("config.toml");
  std::ofstream(config) << "[defaults]\nremote-ip-timeout = 1\n";
  const std::vector<std::string> sleeper{"sleep", "600"};
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto result = Ip({"--config", config, "--remote-ip", "command:sleep 600", "--remote-ip", "peer"});
    EXPECT_EQ(result.exit_code, 0) << result.err;
    EXPECT_THAT(result.out, HasSubstr("command:sleep 600"));
    EXPECT_THAT(result.out, HasSubstr("timed out after 1000 ms"));
  }
  bool gone = false;
  for (auto deadline = std::chrono::steady_clock::now() + 5s; std::chrono::steady_clock::now() < deadline;
       std::this_thread::sleep_for(100ms)) {
    if ((gone = !RunsBelow(lab_->sshd().pid(), sleeper))) break;
  }
  std::string left;
  for (const auto& process : DescendantsOf(lab_->sshd().pid())) {
    if (process.argv == sleeper) left += " " + std::to_string(process.pid);
  }
  EXPECT_TRUE(gone) << "`sleep 600` still runs under the lab's sshd, pid(s)" << left;
  EXPECT_GT(lab_->MasterPid(), 0) << "the master carries on";
}

// The server has no locale for the client's LANG: the master starts mosh-server again with
// LANG=C.UTF-8, says so in its log, and with -v the launcher says so too.
TEST_F(MasterTest, LocaleFallbackOnTheServerIsSaidWithVerbose) {
  const std::string client = lab_->dir().Sub("client");
  std::ofstream(client) << "#!/bin/sh\nif [ \"$1\" = -c ]; then echo 256; exit 0; fi\necho \"client for $2 port $3\"\n";
  ASSERT_EQ(::chmod(client.c_str(), 0755), 0);
  LabEnv env = lab_->env();
  env.Set("LANG", "en_US.UTF-8");  // installed nowhere here, the lab's server included
  auto session = [&](std::vector<std::string> extra) {
    std::vector<std::string> args{lab_->SshOption(), "--transport=udp", "--client=" + client};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back("lab");
    auto result = lab_->RunIn(env, args, 60s);
    EXPECT_TRUE(result) << result.error().message;
    return result ? *result : CommandOutput{};
  };
  const std::string said =
      "mconnect: the server has no locale for LANG=en_US.UTF-8; mosh-server runs with LANG=C.UTF-8 instead\n";
  auto quiet = session({});
  EXPECT_EQ(quiet.exit_code, 0) << quiet.err;
  EXPECT_THAT(quiet.out, HasSubstr("client for 127.0.0.1 port 60"));
  EXPECT_THAT(quiet.err, Not(HasSubstr(said)));
  auto verbose = session({"-v"});
  EXPECT_EQ(verbose.exit_code, 0) << verbose.err;
  EXPECT_THAT(verbose.err, HasSubstr(said));
  EXPECT_THAT(lab_->MasterLog(), HasSubstr("the server has no locale for LANG=en_US.UTF-8 (mosh-server: "));
  EXPECT_THAT(lab_->MasterLog(), HasSubstr("); starting it again with LANG=C.UTF-8"));
}

// A broken profile is the user's file to fix, not a failed connection: exit 1, or 2 when
// --config names no file (a bad command line); and a running master can still be stopped.
TEST_F(MasterTest, AProfileErrorIsExit1AndStopStillWorks) {
  auto first = Ip();
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const pid_t master = lab_->MasterPid();
  ASSERT_GT(master, 0);
  const std::string profile = lab_->env().config_home + "/mconnect/config.toml";
  ASSERT_EQ(::mkdir((lab_->env().config_home + "/mconnect").c_str(), 0700), 0);
  std::ofstream(profile) << "[defaults]\npersist = \"long\"\n";
  const std::string said = "mconnect: " + profile + ":2: persist \"long\" is neither";

  auto session = lab_->Run({lab_->SshOption(), "lab"});
  ASSERT_TRUE(session);
  EXPECT_EQ(session->exit_code, 1) << session->err;
  EXPECT_THAT(session->err, HasSubstr(said));
  auto ip = Ip();
  EXPECT_EQ(ip.exit_code, 1) << ip.err;
  EXPECT_THAT(ip.err, HasSubstr(said));
  auto named = lab_->Run({lab_->SshOption(), "--config", lab_->dir().Sub("no-such.toml"), "lab"});
  ASSERT_TRUE(named);
  EXPECT_EQ(named->exit_code, 2) << named->err;
  EXPECT_EQ(named->err, "mconnect: " + lab_->dir().Sub("no-such.toml") +
                            ": no such file\nmconnect: hint: check the path given to --config (without it, the "
                            "default profile is read)\n");
  EXPECT_EQ(lab_->MasterPid(), master);

  auto stop = lab_->Run({"stop", lab_->SshOption(), "lab"});
  ASSERT_TRUE(stop);
  EXPECT_EQ(stop->exit_code, 0) << stop->err;
  EXPECT_TRUE(ProcessGone(master) || lab_->MasterPid() == 0);
}

// `mconnect ssh-config` where the user's config already gives the host a ControlPath (`none`
// counts, as in the lab's own `Host lab`, or a `Host *` above): ssh keeps the first value it
// reads, so lines appended at the end would do nothing. It says where they must go, and there
// they take effect.
TEST_F(MasterTest, SshConfigSaysWhereItsLinesTakeEffect) {
  const std::string config = lab_->sshd().ssh_config();
  auto printed = lab_->Run({"ssh-config", lab_->SshOption(), "lab"});
  ASSERT_TRUE(printed);
  ASSERT_EQ(printed->exit_code, 0) << printed->err;
  EXPECT_THAT(printed->out, HasSubstr("# Put these lines in " + config +
                                      " above line 2 (`Host lab`, the first block there that applies to lab):\n"
                                      "# ssh keeps the first ControlPath it reads, and one read before the end of "
                                      "the file\n# (`ControlPath none` counts) would win over them. There, plain "
                                      "`ssh lab` (and scp, rsync, git) then use mconnect's master\n# when one is "
                                      "running, and connect as usual when none is.\nHost lab\n    ControlPath " +
                                      lab_->env().runtime_dir + "/mconnect/%r@%h:%p.sock\n    ControlMaster no\n"));
  const std::string block = printed->out.substr(printed->out.find("Host lab\n"));
  auto control_path = [&](const std::string& text) {
    const std::string copy = lab_->dir().Sub("ssh_config_copy");
    std::ofstream(copy) << text;
    auto settings = RunCommand({"ssh", "-F", copy, "-G", "lab"});
    const std::size_t at = settings ? settings->out.find("\ncontrolpath ") : std::string::npos;
    return at == std::string::npos ? std::string() : settings->out.substr(at + 13, settings->out.find('\n', at + 1) - at - 13);
  };
  auto original = ReadFile(config);
  ASSERT_TRUE(original);
  EXPECT_EQ(control_path(*original + block), "") << "appended, the lines would do nothing";
  const std::size_t line2 = original->find('\n') + 1;
  EXPECT_THAT(control_path(original->substr(0, line2) + block + original->substr(line2)),
              HasSubstr(lab_->env().runtime_dir + "/mconnect/"))
      << "above line 2 they take effect";

  // Where appending works, it says to append, to the file the user's ssh reads.
  const std::string plain = lab_->dir().Sub("plain_config");
  {
    std::ofstream out(plain);
    std::istringstream lines(*original);
    for (std::string line; std::getline(lines, line);) {
      if (line.find("ControlPath") == std::string::npos) out << line << "\n";
    }
  }
  auto appended = lab_->Run({"ssh-config", "--ssh=ssh -F " + plain, "lab"});
  ASSERT_TRUE(appended);
  EXPECT_EQ(appended->exit_code, 0) << appended->err;
  EXPECT_THAT(appended->out, StartsWith("# Add to " + plain + ": plain `ssh lab` (and scp, rsync, git) then use "
                                        "mconnect's master\n# when one is running, and connect as usual when none "
                                        "is.\nHost lab\n"));

  // A ControlPath outside any Host block comes first for every host: only editing it helps.
  const std::string global = lab_->dir().Sub("global_config");
  std::ofstream(global) << "ControlPath none\n" << *original;
  auto overridden = lab_->Run({"ssh-config", "--ssh=ssh -F " + global, "lab"});
  ASSERT_TRUE(overridden);
  EXPECT_EQ(overridden->exit_code, 1);
  EXPECT_EQ(overridden->out, "");
  EXPECT_EQ(overridden->err, "mconnect: " + global + " sets ControlPath for every host above line 3, outside any "
                             "Host or Match block, and ssh keeps the first value it reads: no lines for lab can "
                             "change it\nmconnect: hint: edit that ControlPath line, or move it into a `Host *` block at "
                             "the end of the file\n");
}

// Raw bytes on the master's socket, as a buggy or hostile client would send them.
class RawClient {
 public:
  explicit RawClient(const std::string& path) {
    auto fd = proto::ConnectUnix(path);
    if (fd) fd_ = std::move(*fd);
  }
  bool Send(const std::vector<std::uint8_t>& bytes) {
    return ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
  }
  // True when the master closed the connection within the timeout.
  bool ClosedWithin(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd pfd{fd_.get(), POLLIN, 0};
      if (::poll(&pfd, 1, 100) > 0) {
        char buffer[4096];
        ssize_t n = ::read(fd_.get(), buffer, sizeof buffer);
        if (n <= 0) return true;
      }
    }
    return false;
  }
  bool valid() const { return fd_.valid(); }

 private:
  UniqueFd fd_;
};

TEST_F(MasterTest, MalformedFramesCloseOnlyThatClient) {
  ASSERT_EQ(Ip().exit_code, 0);
  pid_t master = lab_->MasterPid();
  auto good = lab_->Connect();
  ASSERT_TRUE(good);

  const std::vector<std::vector<std::uint8_t>> attacks = {
      {0xff, 0xff, 0xff, 0xff, 0x6d, 0x63, 0x00, 0x01},        // oversized length
      {0x00, 0x00, 0x00, 0x02, 0x6d, 0x63, 0x00, 0x01},        // length too small for a type
      {'G', 'E', 'T', ' ', '/', ' ', 'H', 'T', 'T', 'P', '\n'},  // not our protocol
      {0x00, 0x00, 0x00, 0x08, 0x6d, 0x63, 0x00, 0x03, 0xde, 0xad, 0xbe, 0xef},  // Status before Hello
      {0x00, 0x00, 0x00, 0x07, 0x6d, 0x63, 0x00, 0x01, 0xff, 0xff, 0xff},        // Hello that is not protobuf
  };
  for (const auto& attack : attacks) {
    RawClient bad(lab_->SocketPath());
    ASSERT_TRUE(bad.valid());
    ASSERT_TRUE(bad.Send(attack));
    EXPECT_TRUE(bad.ClosedWithin(5s)) << "the master must drop a client that sends garbage";
  }
  // A client that stalls mid-frame does not block the others.
  RawClient stalled(lab_->SocketPath());
  ASSERT_TRUE(stalled.Send({0x00, 0x00, 0x01, 0x00, 0x6d, 0x63, 0x00, 0x01, 0x08}));

  auto status = good->Call<control::StatusReply>(proto::MessageType::kStatus, control::StatusRequest{},
                                                 proto::MessageType::kStatusReply, 5s);
  ASSERT_TRUE(status) << status.error().message;
  EXPECT_EQ(status->pid(), static_cast<std::uint32_t>(master));
  EXPECT_EQ(lab_->MasterPid(), master);

  // ... and a client that never finishes its Hello is dropped at the handshake deadline.
  EXPECT_TRUE(stalled.ClosedWithin(10s));

  // An unknown request type after Hello gets an error reply and the client stays connected.
  auto unknown = good->Call<control::StatusReply>(static_cast<proto::MessageType>(proto::kTypeBase | 0x7f),
                                                  control::StatusRequest{}, proto::MessageType::kStatusReply, 5s);
  ASSERT_FALSE(unknown);
  EXPECT_THAT(unknown.error().message, HasSubstr("unknown request type"));
  auto still = good->Call<control::StatusReply>(proto::MessageType::kStatus, control::StatusRequest{},
                                                proto::MessageType::kStatusReply, 5s);
  EXPECT_TRUE(still) << still.error().message;
}

TEST_F(MasterTest, LooseSocketDirectoryIsRefused) {
  std::string directory = lab_->env().runtime_dir + "/mconnect";
  ASSERT_EQ(::mkdir(directory.c_str(), 0755), 0);
  ASSERT_EQ(::chmod(directory.c_str(), 0755), 0);
  auto result = Ip();
  EXPECT_EQ(result.exit_code, 255);
  EXPECT_THAT(result.err, HasSubstr("chmod 700"));
  EXPECT_EQ(lab_->MasterPid(), 0);
}

}  // namespace
}  // namespace mconnect::testing
