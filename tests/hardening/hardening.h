// What the hardening tests share: a lab whose master may run under a wrapper (valgrind),
// the master's resource figures from /proc, a prober that keeps asking the master for its Status
// while a test attacks it, and a process started with chosen fds and stopped by pid.
//
// Environment (all optional; see tests/hardening/run-under-valgrind):
//   MCONNECT_HARDENING_MUX=PATH     start the master as PATH (e.g. a valgrind wrapper) through
//                                   mconnect's --mux option
//   MCONNECT_HARDENING_SLOWDOWN=N   multiply the tests' time limits by N (a master under
//                                   valgrind runs ~20-50 times slower); memory bounds are then
//                                   reported, not asserted (valgrind's and ASan's own heaps are
//                                   in the RSS). The sanitizer build defaults to 3.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "base/result.h"
#include "base/subprocess.h"
#include "proto/control.pb.h"
#include "tests/support/mconnect_lab.h"

namespace mconnect::testing {

// MCONNECT_HARDENING_SLOWDOWN, at least 1; without it 1, or 3 in the sanitizer build.
int Slowdown();
// `base` times Slowdown().
std::chrono::milliseconds Scaled(std::chrono::milliseconds base);

// `mconnect ip [--mux=$MCONNECT_HARDENING_MUX] <lab ssh option> EXTRA... lab`: starts (or
// reuses) the lab's master. Fails with mconnect's stderr.
Result<CommandOutput> StartMaster(const MconnectLab& lab, const std::vector<std::string>& extra = {});

// `mconnect stop lab`, then waits (bounded) for the master to be gone: an orderly exit, so that a
// master under valgrind writes its leak report (MconnectLab::Cleanup's SIGTERM-then-SIGKILL may
// cut it short). Nothing to do when no master answers.
void StopMasterGracefully(const MconnectLab& lab);

// The master's log beside its socket (USER@HOST:PORT.log).
std::string MasterLogPath(const MconnectLab& lab);
std::string MasterLog(const MconnectLab& lab);

// One Status call on a fresh control connection, within `timeout`.
Result<control::StatusReply> StatusOf(const MconnectLab& lab, std::chrono::milliseconds timeout);

// From /proc/PID/status: peak and current resident set (VmHWM, VmRSS) in KiB; -1 when unreadable.
long PeakRssKib(pid_t pid);
long RssKib(pid_t pid);
// User + system CPU time the process has used, from /proc/PID/stat; negative when unreadable.
double CpuSeconds(pid_t pid);
// Open fds of the process (entries of /proc/PID/fd), and the highest fd number below 1024 (those
// above are valgrind's when the master runs under it); -1 when unreadable.
int FdCount(pid_t pid);
int HighestFd(pid_t pid);
// "FD -> TARGET" for each open fd of the process, one a line: for a failure message.
std::string FdListing(pid_t pid);

// Polls `condition` every 20 ms until it holds or `timeout` passes; returns its last value.
bool Eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

// A thread that asks the master for its Status every `interval` on one control connection made
// at Start, and records the slowest answer, how many failed and the most fds the master held.
class StatusProber {
 public:
  StatusProber(const MconnectLab& lab, pid_t master, std::chrono::milliseconds interval);
  ~StatusProber();
  StatusProber(const StatusProber&) = delete;
  StatusProber& operator=(const StatusProber&) = delete;

  Result<void> Start();
  void Stop();  // joins; idempotent

  int answers() const { return answers_; }
  int failures() const { return failures_; }
  std::chrono::milliseconds slowest() const { return std::chrono::milliseconds(slowest_ms_.load()); }
  int peak_fds() const { return peak_fds_; }
  const std::string& first_failure() const { return first_failure_; }  // read after Stop

 private:
  const MconnectLab& lab_;
  pid_t master_;
  std::chrono::milliseconds interval_;
  std::atomic<bool> stop_{false};
  std::atomic<int> answers_{0};
  std::atomic<int> failures_{0};
  std::atomic<long> slowest_ms_{0};
  std::atomic<int> peak_fds_{0};
  std::string first_failure_;
  std::thread thread_;
};

// The fixture of the hardening tests: a fresh lab (no master yet) per test; SIGPIPE ignored (the
// tests write to sockets the master may close); at the end the master is stopped in order (see
// StopMasterGracefully) and, after a failure, the tail of its log printed.
class HardeningTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  void SetUp() override;
  void TearDown() override;

  // The argv of `ssh -F <lab config> -S <master socket> -o ControlMaster=no ARGS...` in the lab's
  // environment: an unchanged OpenSSH client through the master.
  std::vector<std::string> Ssh(const std::vector<std::string>& args) const;
  // The same as one shell command line.
  std::string SshLine(const std::vector<std::string>& args) const;

  std::unique_ptr<MconnectLab> lab_;
};

// A program run with the given fds as stdin/stdout/stderr, in a process group of its own; the
// group is killed and the process reaped on destruction if it still runs.
class Spawned {
 public:
  Spawned(const std::vector<std::string>& argv, int in, int out, int err);
  ~Spawned();
  Spawned(const Spawned&) = delete;
  Spawned& operator=(const Spawned&) = delete;

  pid_t pid() const { return pid_; }
  // Its exit code (128 + N after signal N) once it has ended within `timeout`; -1 otherwise (then
  // it still runs).
  int WaitExit(std::chrono::milliseconds timeout);

 private:
  pid_t pid_ = -1;
};

}  // namespace mconnect::testing
