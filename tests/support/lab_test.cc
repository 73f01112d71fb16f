// Tests of the harness itself: if these fail, every integration test's failure is suspect.
// Nothing here skips: a missing sshd or tmux is a failure that says so.
#include "tests/support/lab.h"

#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

#include "base/subprocess.h"
#include "tests/support/paths.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;

bool Exists(pid_t pid) { return ::kill(pid, 0) == 0; }

// A lab in a fresh directory plus an isolated environment for ssh (so it never reads ~/.ssh).
class SshdLabTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto started = SshdLab::Start(dir_.Sub("lab"));
    ASSERT_TRUE(started) << started.error().message;
    lab_ = std::move(*started);
  }

  CommandOutput Ssh(const std::string& command) {
    CommandOptions options;
    options.timeout = 20s;
    auto result = RunCommand(env_.Command({"ssh", "-F", lab_->ssh_config(), "lab", command}), options);
    EXPECT_TRUE(result) << result.error().message;
    return result ? *result : CommandOutput{};
  }

  TempDir dir_;
  LabEnv env_{dir_.path()};
  std::unique_ptr<SshdLab> lab_;
};

TEST_F(SshdLabTest, ServesRealSsh) {
  EXPECT_GT(lab_->port(), 0);
  EXPECT_TRUE(Exists(lab_->pid()));
  EXPECT_TRUE(WaitForTcp(lab_->port(), 1s));

  CommandOutput hi = Ssh("echo hi");
  EXPECT_EQ(hi.out, "hi\n") << hi.err;
  EXPECT_EQ(hi.exit_code, 0) << hi.err;

  CommandOutput exited = Ssh("exit 42");
  EXPECT_EQ(exited.exit_code, 42) << exited.err;

  EXPECT_EQ(lab_->CountInLog("Accepted publickey"), 2) << lab_->Log();
}

TEST_F(SshdLabTest, WritesItsFiles) {
  auto known_hosts = ReadFile(lab_->known_hosts());
  ASSERT_TRUE(known_hosts) << known_hosts.error().message;
  EXPECT_TRUE(known_hosts->starts_with("[127.0.0.1]:" + std::to_string(lab_->port()) + " ssh-ed25519 AAAA"))
      << *known_hosts;
  EXPECT_TRUE(std::filesystem::exists(lab_->user_key()));
  auto env = ReadFile(lab_->dir() + "/env");
  ASSERT_TRUE(env) << env.error().message;
  EXPECT_NE(env->find("LAB_PORT=" + std::to_string(lab_->port()) + "\n"), std::string::npos) << *env;
  EXPECT_NE(env->find("LAB_PID=" + std::to_string(lab_->pid()) + "\n"), std::string::npos) << *env;
  struct stat info{};
  ASSERT_EQ(::stat(lab_->dir().c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0700u);
}

TEST_F(SshdLabTest, ChangedHostKeyIsRefused) {
  int port = lab_->port();
  pid_t old_pid = lab_->pid();
  auto rekeyed = lab_->Rekey();
  ASSERT_TRUE(rekeyed) << rekeyed.error().message;
  EXPECT_EQ(lab_->port(), port);
  EXPECT_NE(lab_->pid(), old_pid);
  EXPECT_FALSE(Exists(old_pid));

  CommandOutput refused = Ssh("echo hi");
  EXPECT_EQ(refused.exit_code, 255);
  EXPECT_EQ(refused.out, "");
  EXPECT_NE(refused.err.find("REMOTE HOST IDENTIFICATION HAS CHANGED"), std::string::npos) << refused.err;
}

TEST_F(SshdLabTest, RestartKeepsKeys) {
  auto old_known_hosts = ReadFile(lab_->known_hosts());
  ASSERT_TRUE(old_known_hosts);
  lab_->Stop();
  auto restarted = SshdLab::Start(lab_->dir());
  ASSERT_TRUE(restarted) << restarted.error().message;
  lab_ = std::move(*restarted);
  auto known_hosts = ReadFile(lab_->known_hosts());
  ASSERT_TRUE(known_hosts);
  // Same key, possibly another port.
  EXPECT_EQ(known_hosts->substr(known_hosts->find(' ')), old_known_hosts->substr(old_known_hosts->find(' ')));
  EXPECT_EQ(Ssh("echo again").out, "again\n");
}

TEST_F(SshdLabTest, StopEndsSshdAndItsSessions) {
  pid_t pid = lab_->pid();
  // A session that would outlive a stop that only killed the listener.
  Tmux tmux(dir_.path());
  ASSERT_TRUE(tmux.Start("ssh -F " + lab_->ssh_config() + " lab 'echo session-up; exec sleep 300." +
                             std::to_string(lab_->port()) + "'",
                         env_));
  ASSERT_TRUE(tmux.WaitFor("session-up", 10s)) << tmux.CaptureHistory().value_or("");
  // The sleep's argument is unique to this lab, so no other test's process can match.
  std::string nap = "300." + std::to_string(lab_->port());
  auto sleeper = WaitForProcess(
      [&](const ProcessInfo& p) { return p.argv == std::vector<std::string>{"sleep", nap}; }, 5s);
  ASSERT_TRUE(sleeper);

  lab_->Stop();
  EXPECT_EQ(lab_->pid(), 0);
  EXPECT_EQ(::kill(pid, 0), -1);
  EXPECT_EQ(errno, ESRCH);
  EXPECT_TRUE(ProcessGone(sleeper->pid));
  EXPECT_FALSE(std::filesystem::exists(lab_->dir() + "/sshd.pid"));
  EXPECT_TRUE(tmux.WaitFor("closed by remote host", 5s)) << tmux.CaptureHistory().value_or("");
  lab_->Stop();  // idempotent
}

TEST(SshdLabScript, ReportsBadArgumentsOnOneLine) {
  TempDir dir;
  auto result = RunCommand({SshdLab::ScriptPath(), "start", dir.Sub("lab"), "--port", "99999"});
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_NE(result->exit_code, 0);
  EXPECT_EQ(result->err, "sshd-lab: bad port '99999'\n");
  EXPECT_EQ(result->out, "");
}

TEST(SshdLabScript, StopIsIdempotent) {
  TempDir dir;
  for (int i = 0; i < 2; ++i) {
    auto result = RunCommand({SshdLab::ScriptPath(), "stop", dir.Sub("never-started")});
    ASSERT_TRUE(result) << result.error().message;
    EXPECT_EQ(result->exit_code, 0) << result->err;
  }
}

TEST(TempDirTest, IsPrivateAndRemoved) {
  std::string path;
  {
    TempDir dir;
    path = dir.path();
    struct stat info{};
    ASSERT_EQ(::stat(path.c_str(), &info), 0);
    EXPECT_EQ(info.st_mode & 0777, 0700u);
    ASSERT_TRUE(std::filesystem::create_directories(dir.Sub("a/b")));
    TempDir moved = std::move(dir);
    EXPECT_EQ(moved.path(), path);
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(LabEnvTest, IsolatesChildren) {
  TempDir dir;
  LabEnv env(dir.path());
  env.Set("EXTRA", "x y");
  struct stat info{};
  ASSERT_EQ(::stat(env.runtime_dir.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0700u);
  EXPECT_TRUE(std::filesystem::is_directory(env.home));
  EXPECT_TRUE(std::filesystem::is_directory(env.config_home));

  auto argv = env.EnvArgv();
  ASSERT_GE(argv.size(), 2u);
  EXPECT_EQ(argv[0], "env");
  EXPECT_EQ(argv[1], "-i");

  auto result = RunCommand(env.Command({"/bin/sh", "-c", "env | sort"}));
  ASSERT_TRUE(result) << result.error().message;
  // Exactly our variables (plus what sh itself sets), none of this process's.
  EXPECT_NE(result->out.find("HOME=" + dir.path() + "/home\n"), std::string::npos) << result->out;
  EXPECT_NE(result->out.find("XDG_RUNTIME_DIR=" + dir.path() + "/run\n"), std::string::npos);
  EXPECT_NE(result->out.find("XDG_CONFIG_HOME=" + dir.path() + "/config\n"), std::string::npos);
  EXPECT_NE(result->out.find("LANG=C.UTF-8\n"), std::string::npos);
  EXPECT_NE(result->out.find("TERM=xterm-256color\n"), std::string::npos);
  EXPECT_NE(result->out.find("EXTRA=x y\n"), std::string::npos);
  EXPECT_NE(result->out.find(std::string("PATH=") + MCONNECT_BIN_DIR + ":"), std::string::npos);
  EXPECT_EQ(result->out.find("GTEST"), std::string::npos);
}

class TmuxTest : public ::testing::Test {
 protected:
  TempDir dir_;
  LabEnv env_{dir_.path()};
};

TEST_F(TmuxTest, TypesAndReadsThePane) {
  Tmux tmux(dir_.path());
  auto started = tmux.Start("cat", env_);
  ASSERT_TRUE(started) << started.error().message;
  ASSERT_TRUE(tmux.Type("hello tmux"));
  ASSERT_TRUE(tmux.SendKeys("Enter"));
  // cat echoes the line once through the tty and once itself.
  EXPECT_TRUE(tmux.WaitFor("hello tmux", 5s)) << tmux.Capture().value_or("");
  EXPECT_TRUE(tmux.WaitForRegex("hello tmux\\s+hello tmux", 5s)) << tmux.Capture().value_or("");

  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(tmux.WaitFor("never-appears", 300ms));
  auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_GE(waited, 300ms);
  EXPECT_LT(waited, 2s);
  EXPECT_EQ(tmux.PaneExitStatus(), std::nullopt);
}

TEST_F(TmuxTest, FindsThePaneProcessAndItsEnvironment) {
  Tmux tmux(dir_.path());
  env_.Set("MCONNECT_LAB_MARK", dir_.path());
  ASSERT_TRUE(tmux.Start("exec cat -u", env_));
  auto found = WaitForProcess(
      [](const ProcessInfo& p) { return p.argv == std::vector<std::string>{"cat", "-u"}; }, 5s);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->pid, tmux.PanePid());
  EXPECT_EQ(found->ppid, tmux.ServerPid());
  EXPECT_EQ(found->exe, "cat");
  EXPECT_EQ(found->Getenv("MCONNECT_LAB_MARK"), dir_.path());
  EXPECT_EQ(found->Getenv("HOME"), dir_.path() + "/home");
  EXPECT_EQ(found->Getenv("NO_SUCH_VARIABLE"), std::nullopt);
  // Only the tmux server (which inherited the client's environment) and its pane carry the mark.
  auto marked = FindProcesses([&](const ProcessInfo& p) { return p.Getenv("MCONNECT_LAB_MARK") == dir_.path(); });
  std::vector<pid_t> pids;
  for (const auto& p : marked) pids.push_back(p.pid);
  std::ranges::sort(pids);
  std::vector<pid_t> expected{tmux.ServerPid(), tmux.PanePid()};
  std::ranges::sort(expected);
  EXPECT_EQ(pids, expected);
}

TEST_F(TmuxTest, KeepsADeadPaneReadable) {
  Tmux tmux(dir_.path());
  // Not `echo; exit` at once: tmux 3.3a can lose the output of a command that ends within
  // milliseconds of starting (see lab.h).
  ASSERT_TRUE(tmux.Start("echo last words; sleep 0.2; exit 7", env_));
  EXPECT_TRUE(tmux.WaitFor("last words", 5s)) << tmux.CaptureHistory().value_or("");
  std::optional<int> status;
  for (int i = 0; i < 100 && !status; ++i) {
    status = tmux.PaneExitStatus();
    if (!status) std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(status, 7);
}

TEST_F(TmuxTest, ReportsAPaneKilledBySignal) {
  Tmux tmux(dir_.path());
  ASSERT_TRUE(tmux.Start("echo up; exec sleep 60", env_));
  ASSERT_TRUE(tmux.WaitFor("up", 5s));
  EXPECT_EQ(tmux.PaneExitStatus(), std::nullopt);
  ASSERT_EQ(::kill(tmux.PanePid(), SIGKILL), 0);
  std::optional<int> status;
  for (int i = 0; i < 100 && !status; ++i) {
    status = tmux.PaneExitStatus();
    if (!status) std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(status, 128 + SIGKILL);
}

TEST_F(TmuxTest, DestructorKillsServerAndPane) {
  pid_t server = 0;
  pid_t pane = 0;
  {
    Tmux tmux(dir_.path());
    // A pane that ignores the hangup kill-server sends: only the kill by pid ends it.
    ASSERT_TRUE(tmux.Start("trap '' HUP TERM; echo ready; while :; do sleep 0.1; done", env_));
    ASSERT_TRUE(tmux.WaitFor("ready", 5s));
    server = tmux.ServerPid();
    pane = tmux.PanePid();
    ASSERT_TRUE(Exists(server));
    ASSERT_TRUE(Exists(pane));
  }
  EXPECT_FALSE(Exists(server));
  EXPECT_FALSE(Exists(pane));
}

TEST(KillPidTest, EscalatesToSigkill) {
  AdoptOrphans();
  pid_t pid = 0;
  const char* argv[] = {"/bin/sh", "-c", "trap '' TERM; while :; do sleep 0.1; done", nullptr};
  ASSERT_EQ(::posix_spawn(&pid, argv[0], nullptr, nullptr, const_cast<char* const*>(argv), environ), 0);
  auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(KillPid(pid, 200ms));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  EXPECT_FALSE(Exists(pid));
  EXPECT_TRUE(KillPid(pid));  // already gone
}

TEST(TcpTest, FreePortIsClosedUntilSomethingListens) {
  int port = FreeTcpPort();
  EXPECT_GT(port, 0);
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(WaitForTcp(port, 200ms));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

}  // namespace
}  // namespace mconnect::testing
