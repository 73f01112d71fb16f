#include "tests/hardening/hardening.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "proto/client.h"

namespace mconnect::testing {

using Clock = std::chrono::steady_clock;

int Slowdown() {
#if defined(__SANITIZE_ADDRESS__)
  // The sanitizer build (Debug, ASan + UBSan) runs the master several times slower (measured:
  // Status under the load test's 200 clients took up to 1.8 s there, 0.25 s in the normal build).
  constexpr int kBuild = 3;
#else
  constexpr int kBuild = 1;
#endif
  const char* text = std::getenv("MCONNECT_HARDENING_SLOWDOWN");
  int factor = text != nullptr ? std::atoi(text) : kBuild;
  return std::max(factor, 1);
}

std::chrono::milliseconds Scaled(std::chrono::milliseconds base) { return base * Slowdown(); }

Result<CommandOutput> StartMaster(const MconnectLab& lab, const std::vector<std::string>& extra) {
  std::vector<std::string> args{"ip"};
  if (const char* mux = std::getenv("MCONNECT_HARDENING_MUX"); mux != nullptr && mux[0] != '\0') {
    args.push_back(std::string("--mux=") + mux);
  }
  args.push_back(lab.SshOption());
  args.insert(args.end(), extra.begin(), extra.end());
  args.push_back("lab");
  auto result = lab.Run(args, Scaled(std::chrono::seconds(30)));
  if (!result) return result;
  if (result->exit_code != 0) return Fail("mconnect ip lab exited {}: {}", result->exit_code, result->err);
  return result;
}

void StopMasterGracefully(const MconnectLab& lab) {
  const pid_t master = lab.MasterPid();
  if (master <= 0) return;
  (void)lab.Run({"stop", lab.SshOption(), "lab"}, Scaled(std::chrono::seconds(10)));
  Eventually([master] { return ProcessGone(master); }, Scaled(std::chrono::seconds(10)));
}

std::string MasterLogPath(const MconnectLab& lab) {
  std::string socket = lab.SocketPath();
  return socket.substr(0, socket.size() - std::string_view(".sock").size()) + ".log";
}

std::string MasterLog(const MconnectLab& lab) { return ReadFile(MasterLogPath(lab)).value_or("(no master log)"); }

Result<control::StatusReply> StatusOf(const MconnectLab& lab, std::chrono::milliseconds timeout) {
  auto client = proto::ControlClient::Connect(lab.SocketPath(), timeout);
  if (!client) return Fail(client.error());
  return client->Call<control::StatusReply>(proto::MessageType::kStatus, control::StatusRequest{},
                                            proto::MessageType::kStatusReply, timeout);
}

namespace {

// The number after "FIELD:" in /proc/PID/status (kB), or -1.
long StatusField(pid_t pid, std::string_view field) {
  auto text = ReadFile("/proc/" + std::to_string(pid) + "/status");
  if (!text) return -1;
  std::istringstream lines(*text);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with(field) && line.size() > field.size() && line[field.size()] == ':') {
      return std::atol(line.c_str() + field.size() + 1);
    }
  }
  return -1;
}

}  // namespace

long PeakRssKib(pid_t pid) { return StatusField(pid, "VmHWM"); }
long RssKib(pid_t pid) { return StatusField(pid, "VmRSS"); }

double CpuSeconds(pid_t pid) {
  auto text = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  if (!text) return -1;
  // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
  auto paren = text->rfind(')');
  if (paren == std::string::npos) return -1;
  std::istringstream fields(text->substr(paren + 2));
  std::vector<std::string> words;
  for (std::string word; fields >> word;) words.push_back(word);
  if (words.size() < 13) return -1;
  double ticks = std::atof(words[11].c_str()) + std::atof(words[12].c_str());
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

int FdCount(pid_t pid) {
  std::error_code error;
  int count = 0;
  for (std::filesystem::directory_iterator it("/proc/" + std::to_string(pid) + "/fd", error), end;
       !error && it != end; it.increment(error)) {
    ++count;
  }
  return error && count == 0 ? -1 : count;
}

int HighestFd(pid_t pid) {
  std::error_code error;
  int highest = -1;
  for (std::filesystem::directory_iterator it("/proc/" + std::to_string(pid) + "/fd", error), end;
       !error && it != end; it.increment(error)) {
    const int fd = std::atoi(it->path().filename().c_str());
    // Above 1023 only valgrind's own descriptors live (it keeps them at the top of the range).
    if (fd < 1024) highest = std::max(highest, fd);
  }
  return highest;
}

std::string FdListing(pid_t pid) {
  std::string listing;
  std::error_code error;
  for (std::filesystem::directory_iterator it("/proc/" + std::to_string(pid) + "/fd", error), end;
       !error && it != end; it.increment(error)) {
    std::error_code link_error;
    listing += it->path().filename().string() + " -> " +
               std::filesystem::read_symlink(it->path(), link_error).string() + "\n";
  }
  return listing;
}

bool Eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  for (auto deadline = Clock::now() + timeout; Clock::now() < deadline;
       std::this_thread::sleep_for(std::chrono::milliseconds(20))) {
    if (condition()) return true;
  }
  return condition();
}

// ---- HardeningTest ---------------------------------------------------------------------------

void HardeningTest::SetUpTestSuite() { ::signal(SIGPIPE, SIG_IGN); }

void HardeningTest::SetUp() {
  auto lab = MconnectLab::Start();
  ASSERT_TRUE(lab) << lab.error().message;
  lab_ = std::move(*lab);
}

void HardeningTest::TearDown() {
  if (!lab_) return;
  if (HasFailure()) {
    std::string log = MasterLog(*lab_);
    if (const char* keep = std::getenv("MCONNECT_TEST_KEEP_LOG")) std::ofstream(keep) << log;
    if (log.size() > 8000) log = "..." + log.substr(log.size() - 8000);
    std::cerr << "---- master log ----\n" << log << "\n---- end of master log ----\n";
  }
  StopMasterGracefully(*lab_);
}

std::vector<std::string> HardeningTest::Ssh(const std::vector<std::string>& args) const {
  std::vector<std::string> argv{"ssh", "-F", lab_->sshd().ssh_config(), "-S", lab_->SocketPath(), "-o",
                                "ControlMaster=no"};
  argv.insert(argv.end(), args.begin(), args.end());
  return lab_->env().Command(argv);
}

std::string HardeningTest::SshLine(const std::vector<std::string>& args) const {
  std::string line;
  for (const auto& word : Ssh(args)) line += (line.empty() ? "" : " ") + ShellQuote(word);
  return line;
}

// ---- StatusProber ----------------------------------------------------------------------------

StatusProber::StatusProber(const MconnectLab& lab, pid_t master, std::chrono::milliseconds interval)
    : lab_(lab), master_(master), interval_(interval) {}

StatusProber::~StatusProber() { Stop(); }

Result<void> StatusProber::Start() {
  auto client = proto::ControlClient::Connect(lab_.SocketPath(), Scaled(std::chrono::seconds(5)));
  if (!client) return Fail("the prober cannot connect: {}", client.error().message);
  thread_ = std::thread([this, client = std::move(*client)]() mutable {
    while (!stop_) {
      auto asked = Clock::now();
      // Each answer is due within the test's limit; waiting longer only tells how much longer.
      auto status = client.Call<control::StatusReply>(proto::MessageType::kStatus, control::StatusRequest{},
                                                      proto::MessageType::kStatusReply, Scaled(std::chrono::seconds(10)));
      long took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - asked).count();
      slowest_ms_ = std::max(slowest_ms_.load(), took);
      if (status) {
        ++answers_;
      } else {
        if (failures_++ == 0) first_failure_ = status.error().message;
        break;  // the connection is unusable now
      }
      peak_fds_ = std::max(peak_fds_.load(), FdCount(master_));
      std::this_thread::sleep_for(interval_);
    }
  });
  return {};
}

void StatusProber::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

// ---- Spawned ---------------------------------------------------------------------------------

Spawned::Spawned(const std::vector<std::string>& argv, int in, int out, int err) {
  std::vector<char*> args;
  for (const auto& word : argv) args.push_back(const_cast<char*>(word.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attributes;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawn_file_actions_adddup2(&actions, in, 0);  // dup2 clears FD_CLOEXEC on the copies
  ::posix_spawn_file_actions_adddup2(&actions, out, 1);
  ::posix_spawn_file_actions_adddup2(&actions, err, 2);
  ::posix_spawnattr_init(&attributes);
  sigset_t default_signals;
  sigemptyset(&default_signals);
  sigaddset(&default_signals, SIGPIPE);  // ignored here, default for the program
  ::posix_spawnattr_setsigdefault(&attributes, &default_signals);
  ::posix_spawnattr_setpgroup(&attributes, 0);
  ::posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF);
  if (::posix_spawnp(&pid_, args[0], &actions, &attributes, args.data(), environ) != 0) pid_ = -1;
  ::posix_spawnattr_destroy(&attributes);
  ::posix_spawn_file_actions_destroy(&actions);
}

Spawned::~Spawned() {
  if (pid_ <= 0) return;
  ::kill(-pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
}

int Spawned::WaitExit(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -2;
  for (auto deadline = Clock::now() + timeout;; std::this_thread::sleep_for(std::chrono::milliseconds(10))) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = 0;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (Clock::now() >= deadline) return -1;
  }
}

}  // namespace mconnect::testing
