// Tmux (lab.h): a private tmux server that drives terminal programs.
#include <sys/wait.h>
#include <unistd.h>

#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "base/subprocess.h"
#include "tests/support/lab.h"
#include "tests/support/lab_internal.h"

namespace mconnect::testing {

using namespace std::chrono_literals;
using lab_internal::ParseNumber;
using lab_internal::ParsePositive;
using lab_internal::PollUntil;
using lab_internal::ReadStat;
using lab_internal::RunChecked;
using lab_internal::Within;

namespace {

// Only processes that are ours to kill: children of this process (adopted orphans) or of
// `parent`. A pid whose process already died and was reaped elsewhere may belong to a stranger.
bool ChildOf(pid_t pid, pid_t parent) {
  auto stat = ReadStat(pid);
  return stat && (stat->ppid == ::getpid() || stat->ppid == parent);
}

}  // namespace

Tmux::Tmux(std::string dir) : socket_(std::move(dir) + "/tmux.sock") {}

Tmux::~Tmux() { Kill(); }

std::vector<std::string> Tmux::Command(const std::vector<std::string>& args) const {
  std::vector<std::string> argv{"tmux", "-S", socket_, "-f", "/dev/null"};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

Result<std::string> Tmux::Query(const std::string& format) const {
  auto result = RunChecked(Command({"display-message", "-p", "-t", "lab", format}), 5s);
  if (!result) return Fail(result.error());
  std::string out = std::move(result->out);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

Result<void> Tmux::Start(const std::string& command_line, const LabEnv& env, int columns, int rows) {
  if (server_pid_ != 0) return Fail("tmux: this Tmux already started a session");
  AdoptOrphans();
  // One client invocation: the options are set before the command can exit, and the server
  // inherits exactly `env` from the client that starts it. Without default-shell, tmux would
  // run the command through the user's login shell.
  auto started = RunChecked(env.Command(Command({
      "start-server", ";",
      "set-option", "-g", "remain-on-exit", "on", ";",
      "set-option", "-g", "default-shell", "/bin/sh", ";",
      "new-session", "-d", "-s", "lab", "-x", std::to_string(columns), "-y", std::to_string(rows),
      command_line,
  })), 10s);
  auto pids = started ? Query("#{pid} #{pane_pid}") : Fail(started.error());
  std::size_t space = pids ? pids->find(' ') : std::string::npos;
  auto server = space == std::string::npos ? std::nullopt : ParsePositive(std::string_view(*pids).substr(0, space));
  auto pane = space == std::string::npos ? std::nullopt : ParsePositive(std::string_view(*pids).substr(space + 1));
  if (!server || !pane) {
    // The server may be up even though the session is not: it must not outlive the test.
    RunCommand(Command({"kill-server"}), Within(5s));
    if (!pids) return Fail(pids.error());
    return Fail("tmux: cannot read the server and pane pids from '{}'", *pids);
  }
  server_pid_ = *server;
  pane_pid_ = *pane;
  return {};
}

Result<void> Tmux::SendKeyList(const std::vector<std::string>& keys) {
  std::vector<std::string> args{"send-keys", "-t", "lab"};
  args.insert(args.end(), keys.begin(), keys.end());
  auto sent = RunChecked(Command(args), 5s);
  if (!sent) return Fail(sent.error());
  return {};
}

Result<void> Tmux::Type(std::string_view text) {
  auto sent = RunChecked(Command({"send-keys", "-t", "lab", "-l", "--", std::string(text)}), 5s);
  if (!sent) return Fail(sent.error());
  return {};
}

Result<std::string> Tmux::Capture() const {
  auto captured = RunChecked(Command({"capture-pane", "-p", "-J", "-t", "lab"}), 5s);
  if (!captured) return Fail(captured.error());
  return std::move(captured->out);
}

Result<std::string> Tmux::CaptureHistory() const {
  auto captured = RunChecked(Command({"capture-pane", "-p", "-J", "-S", "-", "-t", "lab"}), 5s);
  if (!captured) return Fail(captured.error());
  return std::move(captured->out);
}

bool Tmux::WaitFor(std::string_view needle, std::chrono::milliseconds timeout) const {
  return PollUntil(timeout, [&] {
    auto screen = CaptureHistory();
    return screen && screen->find(needle) != std::string::npos;
  });
}

bool Tmux::WaitForRegex(const std::string& pattern, std::chrono::milliseconds timeout) const {
  std::regex regex(pattern);
  return PollUntil(timeout, [&] {
    auto screen = CaptureHistory();
    return screen && std::regex_search(*screen, regex);
  });
}

std::optional<int> Tmux::PaneExitStatus() const {
  auto state = Query("#{pane_dead} #{pane_dead_status} #{pane_dead_signal}");
  if (!state || !state->starts_with("1 ")) return std::nullopt;
  // "1 STATUS " after an exit, "1  SIGNAL" after a signal.
  std::string_view rest = std::string_view(*state).substr(2);
  std::size_t space = rest.find(' ');
  if (space != std::string_view::npos) {
    if (auto status = ParseNumber(rest.substr(0, space))) return status;
    if (auto signal = ParsePositive(rest.substr(space + 1))) return 128 + *signal;
  }
  // tmux 3.3a sometimes misses the SIGCHLD of a command that exits at once: the pane is dead
  // but its process stays an unreaped zombie and tmux knows no status. The kernel still holds
  // it for the zombie's parent; /proc shows it to us too.
  auto stat = ReadStat(pane_pid_);
  if (!stat || stat->state != 'Z' || stat->ppid != server_pid_) return std::nullopt;
  if (WIFEXITED(stat->wait_status)) return WEXITSTATUS(stat->wait_status);
  if (WIFSIGNALED(stat->wait_status)) return 128 + WTERMSIG(stat->wait_status);
  return std::nullopt;
}

void Tmux::Kill() {
  if (server_pid_ == 0) return;
  // kill-server hangs up every pane; what ignores SIGHUP is then ours (we are the subreaper).
  auto killed = RunCommand(Command({"kill-server"}), Within(5s));
  if (!killed || !killed->ok()) KillPid(server_pid_);
  PollUntil(5s, [this] { return ProcessGone(server_pid_); });
  if (!ProcessGone(server_pid_)) KillPid(server_pid_);
  // A pane that survived the hangup ignores signals: no point in a long grace period.
  if (!ProcessGone(pane_pid_) && ChildOf(pane_pid_, server_pid_)) KillPid(pane_pid_, 500ms);
  server_pid_ = 0;
  pane_pid_ = 0;
}

}  // namespace mconnect::testing
