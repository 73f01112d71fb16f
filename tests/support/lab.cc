#include "tests/support/lab.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>
#include <utility>

#include <fmt/format.h>

#include "base/subprocess.h"
#include "base/unique_fd.h"
#include "tests/support/lab_internal.h"
#include "tests/support/paths.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;

// /proc/PID/{cmdline,environ} can reach ARG_MAX; tests never need more than this.
constexpr std::size_t kMaxProcFile = 1 << 20;
// sshd.log of a long test (a benchmark's thousands of connections) stays well below this.
constexpr std::size_t kMaxFile = 64 << 20;

[[noreturn]] void ThrowErrno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

// Up to `max` bytes of the file at `path`; nullopt (errno set) when it cannot be read.
std::optional<std::string> ReadBounded(const std::string& path, std::size_t max = kMaxProcFile) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return std::nullopt;
  std::string data;
  char buffer[8192];
  while (data.size() < max) {
    ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::nullopt;
    if (n == 0) break;
    data.append(buffer, static_cast<std::size_t>(n));
  }
  return data;
}

std::vector<std::string> SplitNul(const std::string& data) {
  std::vector<std::string> words;
  std::size_t start = 0;
  while (start < data.size()) {
    std::size_t end = data.find('\0', start);
    if (end == std::string::npos) end = data.size();
    words.emplace_back(data, start, end - start);
    start = end + 1;
  }
  return words;
}

std::string BinDir() { return MCONNECT_BIN_DIR; }

}  // namespace

namespace lab_internal {

std::optional<ProcStat> ReadStat(pid_t pid) {
  auto data = ReadBounded("/proc/" + std::to_string(pid) + "/stat");
  if (!data) return std::nullopt;
  std::size_t close = data->rfind(')');
  if (close == std::string::npos || close + 4 > data->size()) return std::nullopt;
  std::vector<std::string_view> fields;  // fields[0] is field 3, state
  std::string_view rest = std::string_view(*data).substr(close + 2);
  while (!rest.empty()) {
    std::size_t space = rest.find(' ');
    fields.push_back(rest.substr(0, space));
    rest = space == std::string_view::npos ? std::string_view() : rest.substr(space + 1);
  }
  ProcStat stat;
  stat.state = fields[0].empty() ? '?' : fields[0][0];
  auto number = [&](std::size_t field) -> std::optional<int> {
    if (field - 3 >= fields.size()) return std::nullopt;
    int value = 0;
    std::string_view text = fields[field - 3];
    if (std::from_chars(text.data(), text.data() + text.size(), value).ec != std::errc()) return std::nullopt;
    return value;
  };
  auto ppid = number(4);
  if (!ppid) return std::nullopt;
  stat.ppid = *ppid;
  stat.wait_status = number(52).value_or(0);
  return stat;
}

std::optional<int> ParseNumber(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<int> ParsePositive(std::string_view text) {
  auto value = ParseNumber(text);
  if (!value || *value <= 0) return std::nullopt;
  return value;
}

CommandOptions Within(std::chrono::milliseconds timeout) {
  CommandOptions options;
  options.timeout = timeout;
  return options;
}

Result<CommandOutput> RunChecked(const std::vector<std::string>& argv,
                                 std::chrono::milliseconds timeout) {
  auto result = RunCommand(argv, Within(timeout));
  if (!result) return Fail(result.error());
  if (result->timed_out) return Fail("{} timed out after {} ms", argv[0], timeout.count());
  if (!result->ok()) {
    std::string said = result->err.empty() ? result->out : result->err;
    while (!said.empty() && said.back() == '\n') said.pop_back();
    return Fail("{} failed (exit {}): {}", argv[0], result->exit_code, said);
  }
  return result;
}

}  // namespace lab_internal

using lab_internal::ParsePositive;
using lab_internal::PollUntil;
using lab_internal::ReadStat;
using lab_internal::RunChecked;


// ---- processes -------------------------------------------------------------------------------

void AdoptOrphans() { ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); }

bool ProcessGone(pid_t pid) {
  if (pid <= 0) return true;
  int status = 0;
  if (::waitpid(pid, &status, WNOHANG) == pid) return true;  // our child, reaped just now
  if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
  auto stat = ReadStat(pid);
  return !stat || stat->state == 'Z';
}

bool KillPid(pid_t pid, std::chrono::milliseconds grace) {
  if (ProcessGone(pid)) return true;
  ::kill(pid, SIGTERM);
  if (PollUntil(grace, [pid] { return ProcessGone(pid); })) return true;
  ::kill(pid, SIGKILL);
  return PollUntil(2s, [pid] { return ProcessGone(pid); });
}

std::optional<std::string> ProcessInfo::Getenv(std::string_view name) const {
  for (const auto& entry : environ) {
    if (entry.size() > name.size() && entry.starts_with(name) && entry[name.size()] == '=') {
      return entry.substr(name.size() + 1);
    }
  }
  return std::nullopt;
}

std::vector<ProcessInfo> FindProcesses(const std::function<bool(const ProcessInfo&)>& predicate) {
  std::vector<ProcessInfo> found;
  struct CloseDir {
    void operator()(DIR* dir) const { ::closedir(dir); }
  };
  std::unique_ptr<DIR, CloseDir> proc(::opendir("/proc"));
  if (!proc) return found;
  while (dirent* entry = ::readdir(proc.get())) {
    auto pid = ParsePositive(entry->d_name);
    if (!pid) continue;
    auto stat = ReadStat(*pid);
    if (!stat || stat->state == 'Z') continue;  // gone meanwhile, or dead
    std::string base = "/proc/" + std::to_string(*pid);
    ProcessInfo info;
    info.pid = *pid;
    info.ppid = stat->ppid;
    // The executable first, then argv and environment: a process in the middle of execve already
    // shows the new executable while its argv is still empty (the new image's arguments are not
    // in place yet), and reading in this order never pairs the old argv with the new executable.
    std::error_code error;
    std::filesystem::path exe = std::filesystem::read_symlink(base + "/exe", error);
    if (!error) {
      info.exe = exe.filename().string();
      if (info.exe.ends_with(" (deleted)")) info.exe.resize(info.exe.size() - 10);
    } else {
      info.exe = ReadBounded(base + "/comm").value_or("");
      if (info.exe.ends_with('\n')) info.exe.pop_back();
    }
    info.argv = SplitNul(ReadBounded(base + "/cmdline").value_or(""));
    if (info.argv.empty()) continue;  // a kernel thread, or a process mid-exec or exiting
    info.environ = SplitNul(ReadBounded(base + "/environ").value_or(""));
    if (predicate(info)) found.push_back(std::move(info));
  }
  return found;
}

std::optional<ProcessInfo> WaitForProcess(const std::function<bool(const ProcessInfo&)>& predicate,
                                          std::chrono::milliseconds timeout) {
  std::optional<ProcessInfo> match;
  PollUntil(timeout, [&] {
    auto found = FindProcesses(predicate);
    if (!found.empty()) match = std::move(found.front());
    return match.has_value();
  });
  return match;
}

// ---- TCP -------------------------------------------------------------------------------------

namespace {

sockaddr_in Loopback(int port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return address;
}

}  // namespace

int FreeTcpPort() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) ThrowErrno("socket");
  sockaddr_in address = Loopback(0);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) ThrowErrno("bind");
  socklen_t length = sizeof address;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    ThrowErrno("getsockname");
  }
  return ntohs(address.sin_port);
}

bool WaitForTcp(int port, std::chrono::milliseconds timeout) {
  return PollUntil(timeout, [port] {
    // A connect to loopback completes or is refused at once: no need for a non-blocking one.
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in address = Loopback(port);
    return fd && ::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  });
}

bool WaitForUnixSocket(const std::string& path, std::chrono::milliseconds timeout) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof address.sun_path) return false;
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  return PollUntil(timeout, [&address] {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    return fd && ::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  });
}

// ---- HttpServer ------------------------------------------------------------------------------

namespace {

// http.server's handler on a Unix socket: the peer has no address to log.
constexpr char kUnixHttpServer[] = R"(import http.server, socketserver, sys
class Handler(http.server.SimpleHTTPRequestHandler):
    def address_string(self): return "unix"
handler = lambda *a: Handler(*a, directory=sys.argv[1])
socketserver.UnixStreamServer(sys.argv[2], handler).serve_forever()
)";

}  // namespace

HttpServer::HttpServer(const std::string& root, const std::string& unix_path) {
  std::filesystem::create_directories(root);
  std::ofstream(root + "/index.html") << "mconnect-forward-ok\n";
  // python3 starts in well under a second on an idle machine, in many on one busy with a
  // sanitizer build; and the free port may be taken by another test before python binds it,
  // when python exits at once: then again on another port.
  for (int attempt = 0; attempt < 3 && !ready_; ++attempt) {
    if (unix_path.empty()) port_ = FreeTcpPort();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setpgid(0, 0);
      int null = ::open("/dev/null", O_WRONLY);
      if (null >= 0) ::dup2(null, 2);  // one line per request otherwise
      if (unix_path.empty()) {
        ::execlp("python3", "python3", "-m", "http.server", "--bind", "127.0.0.1", "--directory", root.c_str(),
                 std::to_string(port_).c_str(), static_cast<char*>(nullptr));
      } else {
        ::execlp("python3", "python3", "-c", kUnixHttpServer, root.c_str(), unix_path.c_str(),
                 static_cast<char*>(nullptr));
      }
      ::_exit(127);
    }
    if (pid_ < 0) return;
    bool exited = false;
    ready_ = PollUntil(std::chrono::seconds(30), [&] {
      exited = ::waitpid(pid_, nullptr, WNOHANG) == pid_;
      if (exited) return true;
      return unix_path.empty() ? WaitForTcp(port_, std::chrono::milliseconds(0))
                               : WaitForUnixSocket(unix_path, std::chrono::milliseconds(0));
    }) && !exited;
    if (!exited) break;  // running but silent for 30 s: the destructor stops it
    pid_ = -1;
  }
}

HttpServer::~HttpServer() { KillPid(pid_); }

// ---- files -----------------------------------------------------------------------------------

TempDir::TempDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/mconnect-test.XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) ThrowErrno("mkdtemp " + pattern);
  path_ = std::move(pattern);
}

TempDir::~TempDir() { Remove(); }

TempDir::TempDir(TempDir&& other) noexcept : path_(std::exchange(other.path_, {})) {}

TempDir& TempDir::operator=(TempDir&& other) noexcept {
  if (this != &other) {
    Remove();
    path_ = std::exchange(other.path_, {});
  }
  return *this;
}

std::string TempDir::Sub(std::string_view name) const { return path_ + "/" + std::string(name); }

void TempDir::Remove() {
  if (path_.empty()) return;
  const char* keep = std::getenv("MCONNECT_KEEP_TEST_DIRS");
  if (keep && std::string_view(keep) == "1") {
    std::fprintf(stderr, "mconnect-test: kept %s\n", path_.c_str());
  } else {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  path_.clear();
}

Result<std::string> ReadFile(const std::string& path) {
  auto data = ReadBounded(path, kMaxFile);
  if (!data) return Fail("cannot read {}: {}", path, std::strerror(errno));
  return std::move(*data);
}

// ---- environment -----------------------------------------------------------------------------

LabEnv::LabEnv(const std::string& root)
    : home(root + "/home"), runtime_dir(root + "/run"), config_home(root + "/config") {
  for (const auto& [dir, mode] : {std::pair{home, 0755}, {runtime_dir, 0700}, {config_home, 0755}}) {
    if (::mkdir(dir.c_str(), static_cast<mode_t>(mode)) != 0 && errno != EEXIST) ThrowErrno("mkdir " + dir);
    // mkdir's mode passes through the umask; XDG_RUNTIME_DIR must be exactly 0700.
    if (::chmod(dir.c_str(), static_cast<mode_t>(mode)) != 0) ThrowErrno("chmod " + dir);
  }
  const char* path = std::getenv("PATH");
  vars = {
      {"HOME", home},
      {"XDG_RUNTIME_DIR", runtime_dir},
      {"XDG_CONFIG_HOME", config_home},
      {"LANG", "C.UTF-8"},
      {"TERM", "xterm-256color"},
      {"PATH", BinDir() + ":" + (path && *path ? path : "/usr/local/bin:/usr/bin:/bin")},
  };
}

LabEnv& LabEnv::Set(const std::string& name, std::string value) {
  vars[name] = std::move(value);
  return *this;
}

LabEnv& LabEnv::Unset(const std::string& name) {
  vars.erase(name);
  return *this;
}

std::vector<std::string> LabEnv::Strings() const {
  std::vector<std::string> strings;
  for (const auto& [name, value] : vars) strings.push_back(name + "=" + value);
  return strings;
}

std::vector<std::string> LabEnv::EnvArgv() const {
  std::vector<std::string> argv{"env", "-i"};
  for (auto& entry : Strings()) argv.push_back(std::move(entry));
  return argv;
}

std::vector<std::string> LabEnv::Command(const std::vector<std::string>& argv) const {
  std::vector<std::string> command = EnvArgv();
  command.insert(command.end(), argv.begin(), argv.end());
  return command;
}

// ---- sshd ------------------------------------------------------------------------------------

std::string SshdLab::ScriptPath() { return std::string(MCONNECT_SOURCE_DIR) + "/tests/lab/sshd-lab"; }

Result<std::unique_ptr<SshdLab>> SshdLab::Start(const std::string& dir) {
  AdoptOrphans();
  auto started = RunChecked({ScriptPath(), "start", dir});
  if (!started) return Fail(started.error());
  // From here on sshd runs: a failure must not leave it behind.
  auto abandon = [&](Error error) {
    RunCommand({ScriptPath(), "stop", dir});
    return Fail(std::move(error));
  };
  // The script's last stdout line is `port=N`.
  std::string_view out = started->out;
  std::size_t at = out.rfind("port=");
  auto port = at == std::string_view::npos ? std::nullopt : ParsePositive(out.substr(at + 5));
  if (!port) return abandon(Error{fmt::format("sshd-lab start printed no port: '{}'", out)});
  auto pid_file = ReadFile(dir + "/sshd.pid");
  if (!pid_file) return abandon(pid_file.error());
  auto pid = ParsePositive(*pid_file);
  if (!pid) return abandon(Error{fmt::format("{}/sshd.pid holds no pid: '{}'", dir, *pid_file)});
  // The canonical path, as sshd-lab wrote it into ssh_config.
  std::error_code error;
  std::string canonical = std::filesystem::canonical(dir, error).string();
  return std::unique_ptr<SshdLab>(new SshdLab(error ? dir : canonical, *port, *pid));
}

SshdLab::~SshdLab() { Stop(); }

std::string SshdLab::Log() const { return ReadFile(log_path()).value_or(""); }

int SshdLab::CountInLog(std::string_view needle) const {
  if (needle.empty()) return 0;
  std::string log = Log();
  int count = 0;
  for (std::size_t at = log.find(needle); at != std::string::npos; at = log.find(needle, at + needle.size())) {
    ++count;
  }
  return count;
}

Result<void> SshdLab::Rekey() {
  if (pid_ == 0) return Fail("the lab in {} is stopped", dir_);
  auto rekeyed = RunChecked({ScriptPath(), "rekey", dir_});
  auto pid_file = rekeyed ? ReadFile(dir_ + "/sshd.pid") : Fail(rekeyed.error());
  auto pid = pid_file ? ParsePositive(*pid_file) : std::nullopt;
  if (!pid) {
    // Half-done: whichever sshd runs now is of no use to the test.
    Stop();
    if (!pid_file) return Fail(pid_file.error());
    return Fail("{}/sshd.pid holds no pid after rekey: '{}'", dir_, *pid_file);
  }
  KillPid(pid_);  // the script stopped the old sshd; this reaps it
  pid_ = *pid;
  return {};
}

Result<void> SshdLab::Restart() {
  if (pid_ != 0) return Fail("the lab in {} is running", dir_);
  auto started = RunChecked({ScriptPath(), "start", dir_, "--port", std::to_string(port_)});
  if (!started) return Fail(started.error());
  auto pid_file = ReadFile(dir_ + "/sshd.pid");
  auto pid = pid_file ? ParsePositive(*pid_file) : std::nullopt;
  if (!pid) {
    RunCommand({ScriptPath(), "stop", dir_});
    return Fail("{}/sshd.pid holds no pid after a restart", dir_);
  }
  pid_ = *pid;
  return {};
}

void SshdLab::Stop() {
  if (pid_ == 0) return;
  // The script also ends the sessions sshd serves; KillPid then reaps sshd, or kills it when
  // the script could not.
  auto stopped = RunChecked({ScriptPath(), "stop", dir_});
  if (!stopped) std::fprintf(stderr, "mconnect-test: %s\n", stopped.error().message.c_str());
  if (!KillPid(pid_)) std::fprintf(stderr, "mconnect-test: sshd pid %d survived SIGKILL\n", pid_);
  pid_ = 0;
}

}  // namespace mconnect::testing
