// `mconnect master HOST` (what the systemd user unit runs) and the `mconnect status` table,
// against a real sshd.
#include <fcntl.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <filesystem>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/mconnect_lab.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

// `argv` as our child, its output into `log`; the pid.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& log) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  std::vector<char*> args;
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  return rc == 0 ? pid : 0;
}

// The child's exit status once it exits within `timeout`; -1 if it is still running then.
int WaitExit(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::this_thread::sleep_for(50ms);
  }
  return -1;
}

std::string Exe(pid_t pid) {
  std::error_code error;
  return std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/exe", error).filename().string();
}

TEST(MasterCommand, BecomesTheMasterInTheForegroundUntilItIsStopped) {
  auto lab = MconnectLab::Start();
  ASSERT_TRUE(lab) << lab.error().message;
  MconnectLab& l = **lab;
  const std::string log = l.dir().Sub("master.log");
  pid_t child = Spawn(l.Command({"master", l.SshOption(), "lab"}), log);
  ASSERT_GT(child, 0);
  pid_t master = 0;
  for (int i = 0; i < 400 && master == 0; ++i) {
    std::this_thread::sleep_for(50ms);
    master = l.MasterPid();
  }
  ASSERT_EQ(master, child) << "the process systemd started is the master itself; its output:\n"
                           << ReadFile(log).value_or("");
  EXPECT_EQ(Exe(child), "mconnect-mux");
  EXPECT_EQ(WaitExit(child, 300ms), -1) << "it stays in the foreground";
  auto status = l.Run({"status", "--json"});
  ASSERT_TRUE(status);
  EXPECT_THAT(status->out, HasSubstr("\"persist_s\":0")) << "a service's master never idles out";

  auto stopped = l.Run({"stop", l.SshOption(), "lab"});
  ASSERT_TRUE(stopped);
  EXPECT_EQ(stopped->exit_code, 0) << stopped->err;
  EXPECT_EQ(WaitExit(child, 10s), 0) << ReadFile(log).value_or("");
}

TEST(MasterCommand, WaitsForAMasterThatIsAlreadyRunning) {
  auto lab = MconnectLab::StartWithMaster();
  ASSERT_TRUE(lab) << lab.error().message;
  MconnectLab& l = **lab;
  pid_t running = l.MasterPid();
  ASSERT_GT(running, 0);
  const std::string log = l.dir().Sub("master.log");
  pid_t child = Spawn(l.Command({"master", l.SshOption(), "lab"}), log);
  ASSERT_GT(child, 0);
  EXPECT_EQ(WaitExit(child, 1s), -1) << ReadFile(log).value_or("");
  EXPECT_EQ(l.MasterPid(), running);
  EXPECT_EQ(l.sshd().CountInLog("Accepted publickey"), 1) << "no second connection";
  EXPECT_THAT(ReadFile(log).value_or(""), HasSubstr("is already running (pid " + std::to_string(running)));

  auto stopped = l.Run({"stop", l.SshOption(), "lab"});
  ASSERT_TRUE(stopped);
  EXPECT_EQ(WaitExit(child, 10s), 0) << "it ends with the master it watched";
}

TEST(StatusCommand, TableAndJsonShowBytesAndTheLastRemoteIpAnswer) {
  auto lab = MconnectLab::StartWithMaster();
  ASSERT_TRUE(lab) << lab.error().message;
  MconnectLab& l = **lab;
  // peer's answers are never cached, and still the last answer is shown.
  auto ip = l.Run({"ip", "--remote-ip=peer", l.SshOption(), "lab"});
  ASSERT_TRUE(ip);
  ASSERT_EQ(ip->exit_code, 0) << ip->err;
  auto table = l.Run({"status"});
  ASSERT_TRUE(table);
  ASSERT_EQ(table->exit_code, 0) << table->err;
  EXPECT_THAT(table->out, MatchesRegex("DESTINATION +PID +UPTIME +LINK +CONNS +CHANNELS +CLIENTS +SENT/RECEIVED +LAST "
                                       "REMOTE-IP \\(STRATEGY, AGE\\) +SOCKET\n.*"));
  std::smatch row;
  ASSERT_TRUE(std::regex_search(table->out, row,
                                std::regex(" ([0-9.]+)([BKMG])/([0-9.]+)([BKMG]) +127\\.0\\.0\\.1 \\(peer, [0-9]+s ago\\)")))
      << table->out;
  EXPECT_NE(row[1].str() + row[2].str(), "0B") << "bytes sent";
  EXPECT_NE(row[3].str() + row[4].str(), "0B") << "bytes received";
  EXPECT_THAT(table->out, HasSubstr(" " + std::to_string(l.MasterPid()) + " "));
  EXPECT_THAT(table->out, HasSubstr(" " + l.SocketPath() + "\n"));

  auto json = l.Run({"status", "--json"});
  ASSERT_TRUE(json);
  EXPECT_THAT(json->out, HasSubstr("\"last_ip_address\":\"127.0.0.1\""));
  EXPECT_THAT(json->out, HasSubstr("\"last_ip_strategy\":\"peer\""));
  EXPECT_THAT(json->out, MatchesRegex(".*\"bytes_sent\":\"[1-9][0-9]*\".*"));
  EXPECT_THAT(json->out, MatchesRegex(".*\"bytes_received\":\"[1-9][0-9]*\".*"));
  EXPECT_THAT(json->out, MatchesRegex(".*\"last_ip_age_ms\":\"[0-9]+\".*"));
}

// A socket directory whose name holds a quote and a backslash (both legal in a path): the
// JSON is still JSON, and the paths in it are the paths on disk.
TEST(StatusCommand, JsonStaysJsonWithQuotesAndBackslashesInSocketPaths) {
  auto lab = MconnectLab::Start();
  ASSERT_TRUE(lab) << lab.error().message;
  MconnectLab& l = **lab;
  const std::string dir = l.dir().Sub("q\"b\\s");
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0) << std::strerror(errno);
  const std::string profile = l.dir().Sub("profile.toml");
  {
    std::ofstream out(profile);
    out << "[defaults]\nsocket-dir = '" << dir << "'\n";
    ASSERT_TRUE(out.flush());
  }
  // A socket nobody listens on any more (its master was killed), with a quote of its own.
  const std::string stale = dir + "/gone\"one.sock";
  {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    ASSERT_LT(stale.size(), sizeof(address.sun_path));
    std::memcpy(address.sun_path, stale.c_str(), stale.size() + 1);
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0) << std::strerror(errno);
    ::close(fd);
  }
  auto ip = l.Run({"ip", "--config", profile, l.SshOption(), "lab"});
  ASSERT_TRUE(ip);
  ASSERT_EQ(ip->exit_code, 0) << ip->err;

  auto json = l.Run({"status", "--json", "--config", profile});
  ASSERT_TRUE(json);
  ASSERT_EQ(json->exit_code, 0) << json->err;
  CommandOptions feed;
  feed.input = json->out;
  auto tool = RunCommand({"python3", "-m", "json.tool"}, feed);
  ASSERT_TRUE(tool);
  EXPECT_EQ(tool->exit_code, 0) << tool->err << "\nin: " << json->out;
  auto paths = RunCommand({"python3", "-c",
                           "import json, sys\n"
                           "listing = json.load(sys.stdin)\n"
                           "print(listing['stale_sockets'][0])\n"
                           "print(listing['masters'][0]['socket_path'])\n"},
                          feed);
  ASSERT_TRUE(paths);
  ASSERT_EQ(paths->exit_code, 0) << paths->err << "\nin: " << json->out;
  const std::string stale_line = stale + "\n";
  EXPECT_TRUE(paths->out.starts_with(stale_line)) << paths->out;
  EXPECT_THAT(paths->out.substr(std::min(stale_line.size(), paths->out.size())), ::testing::StartsWith(dir + "/"));

  auto stopped = l.Run({"stop", "--config", profile, l.SshOption(), "lab"});
  ASSERT_TRUE(stopped);
  EXPECT_EQ(stopped->exit_code, 0) << stopped->err;
}

// A socket directory whose name is not UTF-8 (a path is bytes): the master's record keeps the
// path as it is, so `status` lists the master and `stop` finds it.
TEST(StatusCommand, ListsAndStopsAMasterWhoseSocketPathIsNotUtf8) {
  auto lab = MconnectLab::Start();
  ASSERT_TRUE(lab) << lab.error().message;
  MconnectLab& l = **lab;
  const std::string dir = l.dir().Sub("not\xffutf8");
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0) << std::strerror(errno);
  const std::string socket = "--socket=" + dir + "/m.sock";
  auto ip = l.Run({"ip", socket, l.SshOption(), "lab"});
  ASSERT_TRUE(ip);
  ASSERT_EQ(ip->exit_code, 0) << ip->err;
  const pid_t self = ::getpid();
  const auto masters =
      FindProcesses([self](const ProcessInfo& p) { return p.ppid == self && p.exe == "mconnect-mux"; });
  ASSERT_EQ(masters.size(), 1u);
  const pid_t master = masters[0].pid;

  auto table = l.Run({"status"});
  ASSERT_TRUE(table);
  ASSERT_EQ(table->exit_code, 0) << table->err;
  EXPECT_THAT(table->out, HasSubstr(" " + std::to_string(master) + " ")) << table->out;
  EXPECT_THAT(table->out, HasSubstr(" " + dir + "/")) << "the path as it is on disk";
  auto json = l.Run({"status", "--json"});
  ASSERT_TRUE(json);
  CommandOptions feed;
  feed.input = json->out;
  auto tool = RunCommand({"python3", "-m", "json.tool"}, feed);
  ASSERT_TRUE(tool);
  EXPECT_EQ(tool->exit_code, 0) << tool->err << "\nin: " << json->out;
  EXPECT_THAT(json->out, HasSubstr("\"pid\":" + std::to_string(master)));

  auto stopped = l.Run({"stop", socket, l.SshOption(), "lab"});
  ASSERT_TRUE(stopped);
  EXPECT_EQ(stopped->exit_code, 0) << stopped->err;
  EXPECT_NE(WaitExit(master, 10s), -1) << "the master stops";  // ours: this process adopts orphans
}

TEST(SshConfigCommand, PrintsTheControlPathOfTheMastersSocket) {
  auto lab = MconnectLab::Start();
  ASSERT_TRUE(lab) << lab.error().message;
  MconnectLab& l = **lab;
  auto printed = l.Run({"ssh-config", l.SshOption(), "lab"});
  ASSERT_TRUE(printed);
  ASSERT_EQ(printed->exit_code, 0) << printed->err;
  EXPECT_THAT(printed->out, HasSubstr("Host lab\n    ControlPath " + l.env().runtime_dir + "/mconnect/%r@%h:%p.sock\n"
                                      "    ControlMaster no\n"));
  // With --socket, that path, its '%' doubled (ssh expands %-tokens in ControlPath).
  auto chosen = l.Run({"ssh-config", "--socket=/tmp/m%1.sock", l.SshOption(), "lab"});
  ASSERT_TRUE(chosen);
  EXPECT_THAT(chosen->out, HasSubstr("    ControlPath /tmp/m%%1.sock\n"));
}

}  // namespace
}  // namespace mconnect::testing
