// The test harness shared by mconnect's integration and end-to-end tests: temporary
// directories, a throwaway sshd (tests/lab/sshd-lab), an isolated environment for child
// processes, a private tmux server that drives terminal programs, and /proc inspection.
//
// Everything a helper starts is stopped by pid in its destructor, so a failing test leaves no
// process behind. sshd and tmux daemonize (double fork); SshdLab::Start and Tmux::Start make
// this process a child subreaper (see AdoptOrphans) so that those daemons become our children
// and can be reaped. On machines whose PID 1 does not reap orphans (this one), a dead daemon
// would otherwise stay a zombie for which kill(pid, 0) still succeeds: ask ProcessGone(pid).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "tests/support/paths.h"

namespace mconnect::testing {

// ---- processes -------------------------------------------------------------------------------

// Makes this process the reaper of its orphaned descendants (PR_SET_CHILD_SUBREAPER).
// Idempotent. Side effect, by design: any daemon a test starts becomes our child, so its pid
// stays reserved (as a zombie) until KillPid/ProcessGone reaps it.
void AdoptOrphans();

// True when PID no longer runs: no such process, or a zombie. A zombie child of ours is reaped
// here, so its exit status is lost: to learn a child's exit status, waitpid() it yourself.
bool ProcessGone(pid_t pid);

// Stops PID: SIGTERM, up to `grace` for it to go, then SIGKILL and up to 2 s more; reaps it when
// it is our child. Returns whether it is gone. A pid <= 0 is ignored (returns true).
bool KillPid(pid_t pid, std::chrono::milliseconds grace = std::chrono::seconds(2));

// One live process as /proc shows it. Fields of processes we may not read (another user's)
// stay empty.
struct ProcessInfo {
  pid_t pid = 0;
  pid_t ppid = 0;
  std::string exe;                   // basename of /proc/PID/exe, else /proc/PID/comm
  std::vector<std::string> argv;     // /proc/PID/cmdline
  std::vector<std::string> environ;  // /proc/PID/environ, "NAME=VALUE" each

  std::optional<std::string> Getenv(std::string_view name) const;
};

// Every live (non-zombie) process for which `predicate` holds, in /proc order.
std::vector<ProcessInfo> FindProcesses(const std::function<bool(const ProcessInfo&)>& predicate);

// Polls FindProcesses every 50 ms until one matches or `timeout` passes.
std::optional<ProcessInfo> WaitForProcess(const std::function<bool(const ProcessInfo&)>& predicate,
                                          std::chrono::milliseconds timeout);

// ---- TCP on 127.0.0.1 ------------------------------------------------------------------------

// A port that was free a moment ago (bound to 0, then released): racy by nature, so whoever
// binds it must cope with losing it. Throws std::system_error when no socket can be made.
int FreeTcpPort();

// Polls every 50 ms until 127.0.0.1:PORT accepts a connection or `timeout` passes.
bool WaitForTcp(int port, std::chrono::milliseconds timeout);

// A real HTTP server for forwards to carry requests to: python3's http.server on 127.0.0.1 serving `root` (which gets an index.html holding
// "mconnect-forward-ok"), in a process group of its own, stopped by pid. It speaks HTTP/1.0:
// after each answer the server closes the connection first, the usual case for forwards.
// With `unix_path`, the same server listens on that Unix socket instead (port() is then 0).
class HttpServer {
 public:
  explicit HttpServer(const std::string& root, const std::string& unix_path = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const { return port_; }
  bool ready() const { return ready_; }

 private:
  int port_ = 0;
  pid_t pid_ = -1;
  bool ready_ = false;
};

// Polls every 50 ms until the Unix socket at PATH accepts a connection or `timeout` passes.
bool WaitForUnixSocket(const std::string& path, std::chrono::milliseconds timeout);

// ---- files -----------------------------------------------------------------------------------

// A fresh private directory, $TMPDIR/mconnect-test.XXXXXX (or /tmp), removed with everything in
// it on destruction unless MCONNECT_KEEP_TEST_DIRS=1 (then its path goes to stderr). Throws
// std::system_error when it cannot be created: a test cannot run without it.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(TempDir&& other) noexcept;
  TempDir& operator=(TempDir&& other) noexcept;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + name.
  std::string Sub(std::string_view name) const;

 private:
  void Remove();

  std::string path_;
};

// The whole contents of a (small) file, or an error naming it.
Result<std::string> ReadFile(const std::string& path);

// ---- environment -----------------------------------------------------------------------------

// An isolated environment for child processes, so that nothing a test runs reads or writes the
// user's real home, runtime directory or configuration:
//   HOME=ROOT/home  XDG_RUNTIME_DIR=ROOT/run (0700)  XDG_CONFIG_HOME=ROOT/config
//   LANG=C.UTF-8  TERM=xterm-256color  PATH=MCONNECT_BIN_DIR:<this process's PATH>
// The constructor creates the three directories; it throws std::system_error when it cannot.
struct LabEnv {
  explicit LabEnv(const std::string& root);

  LabEnv& Set(const std::string& name, std::string value);
  LabEnv& Unset(const std::string& name);

  // {"NAME=VALUE", ...}, sorted by name.
  std::vector<std::string> Strings() const;
  // {"env", "-i", "NAME=VALUE", ...}: a prefix that runs a command in exactly this environment.
  std::vector<std::string> EnvArgv() const;
  // EnvArgv() followed by argv.
  std::vector<std::string> Command(const std::vector<std::string>& argv) const;

  std::string home;
  std::string runtime_dir;
  std::string config_home;
  std::map<std::string, std::string> vars;
};

// ---- sshd ------------------------------------------------------------------------------------

// A throwaway OpenSSH server on 127.0.0.1, run by tests/lab/sshd-lab in a directory of its own
// (keys, sshd_config, ssh_config with `Host lab`, known_hosts, sshd.log). Stopped on destruction.
class SshdLab {
 public:
  // Starts (or restarts) the lab in DIR, created if missing. Fails with sshd-lab's own message
  // (which carries the tail of sshd.log when sshd did not come up).
  static Result<std::unique_ptr<SshdLab>> Start(const std::string& dir);
  // Path of the sshd-lab script in the source tree.
  static std::string ScriptPath();

  ~SshdLab();
  SshdLab(const SshdLab&) = delete;
  SshdLab& operator=(const SshdLab&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return pid_; }  // 0 once stopped
  const std::string& dir() const { return dir_; }
  std::string ssh_config() const { return dir_ + "/ssh_config"; }
  std::string known_hosts() const { return dir_ + "/known_hosts"; }
  std::string user_key() const { return dir_ + "/id_ed25519"; }
  std::string log_path() const { return dir_ + "/sshd.log"; }

  // sshd.log as it is now ("" when unreadable).
  std::string Log() const;
  // Occurrences of `needle` in sshd.log, e.g. "Accepted publickey" once per authentication.
  int CountInLog(std::string_view needle) const;

  // A new host key and a restarted sshd on the same port; known_hosts keeps the old key, so
  // clients now see a changed host key. Connections to the old sshd are cut.
  Result<void> Rekey();
  // Stops sshd and the sessions it serves, by pid. Idempotent; the destructor calls it.
  void Stop();
  // Starts sshd again after Stop, on the same port with the same keys (a server that rebooted).
  Result<void> Restart();

 private:
  SshdLab(std::string dir, int port, pid_t pid) : dir_(std::move(dir)), port_(port), pid_(pid) {}

  std::string dir_;
  int port_;
  pid_t pid_;
};

// ---- tmux ------------------------------------------------------------------------------------

// A private tmux server (`tmux -S DIR/tmux.sock -f /dev/null`) with one detached session that
// runs a command in a real terminal, so tests can type into programs that need a tty (mconnect,
// mosh-client) and read their screen. Panes stay on screen after their command exits
// (remain-on-exit) so a failure's last words can still be captured. The destructor kills the
// server and, by pid, a pane process that outlived it. A program that re-parents itself away
// from the pane (mosh-client can) is the test's to kill: find it with FindProcesses, KillPid it.
// tmux 3.3a quirks, measured here: it sometimes loses the exit status of a pane's command
// (PaneExitStatus then reads it from the unreaped zombie), and under load it can lose the
// output of a command that ends within milliseconds of starting.
class Tmux {
 public:
  // DIR must exist and outlive this object; its path must be short (a Unix socket lives there).
  explicit Tmux(std::string dir);
  ~Tmux();
  Tmux(const Tmux&) = delete;
  Tmux& operator=(const Tmux&) = delete;

  // Starts the server with a session running `command_line` (through /bin/sh) in exactly
  // `env` (tmux adds TMUX, TMUX_PANE and sets TERM inside the pane). Once per object.
  Result<void> Start(const std::string& command_line, const LabEnv& env, int columns = 100,
                     int rows = 30);

  // Named keys in tmux's syntax: SendKeys("C-c"), SendKeys("Enter"), SendKeys("Up", "Enter").
  template <typename... Keys>
  Result<void> SendKeys(const Keys&... keys) {
    return SendKeyList({std::string(keys)...});
  }
  Result<void> SendKeyList(const std::vector<std::string>& keys);
  // Types `text` literally (send-keys -l): no key names, no trailing Enter.
  Result<void> Type(std::string_view text);

  // The visible pane, wrapped lines joined (capture-pane -p -J).
  Result<std::string> Capture() const;
  // The scrollback and the visible pane.
  Result<std::string> CaptureHistory() const;
  // Poll CaptureHistory() every 50 ms until it holds `needle` / matches the ECMAScript
  // `pattern`, or `timeout` passes. Text that scrolled off the screen still counts.
  bool WaitFor(std::string_view needle, std::chrono::milliseconds timeout) const;
  bool WaitForRegex(const std::string& pattern, std::chrono::milliseconds timeout) const;

  // The pane's exit status once its command has ended (128 + N after signal N), nullopt while
  // it runs.
  std::optional<int> PaneExitStatus() const;
  pid_t PanePid() const { return pane_pid_; }
  pid_t ServerPid() const { return server_pid_; }
  const std::string& socket() const { return socket_; }

  // {"tmux", "-S", socket, "-f", "/dev/null", args...}.
  std::vector<std::string> Command(const std::vector<std::string>& args) const;

  // Kill-server and reap by pid; the destructor calls it. Idempotent.
  void Kill();

 private:
  Result<std::string> Query(const std::string& format) const;

  std::string socket_;
  pid_t server_pid_ = 0;
  pid_t pane_pid_ = 0;
};

}  // namespace mconnect::testing
