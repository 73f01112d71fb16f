// Runs a local program to completion with bounded time and bounded output: `ssh -G`,
// `mosh-client -c`, and the test harness's helpers.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"

namespace mconnect {

struct CommandOutput {
  int exit_code = -1;  // -1 when the program was killed by a signal
  int signal = 0;
  bool timed_out = false;
  std::string out;
  std::string err;

  bool ok() const { return exit_code == 0 && !timed_out; }
};

struct CommandOptions {
  std::chrono::milliseconds timeout{10000};
  std::size_t max_output = 1 << 20;  // per stream; the rest is read and dropped
  std::string input;                 // written to the program's stdin, then EOF
};

// Fails only when the program cannot be started; its own failure is in CommandOutput.
// On timeout the process (and its process group) get SIGKILL.
Result<CommandOutput> RunCommand(const std::vector<std::string>& argv, const CommandOptions& options = {});

// `sh -c SCRIPT` with extra positional arguments ($1...).
std::vector<std::string> ShellCommand(std::string script, const std::vector<std::string>& args = {});

// Quotes one word for a POSIX shell: abc -> abc, it's -> 'it'\''s'.
std::string ShellQuote(std::string_view word);

// PID's state letter from /proc/PID/stat ('R', 'S', ..., 'Z' for a zombie its parent has not
// reaped yet); nullopt when there is no such entry (the process is gone, or there is no /proc).
std::optional<char> ProcessState(pid_t pid);

}  // namespace mconnect
