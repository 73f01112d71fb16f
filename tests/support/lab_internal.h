// What lab.cc and lab_tmux.cc share of the harness's insides: polling, /proc/PID/stat, the
// numbers helper programs print, and running a helper program. Tests use lab.h, not this.
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/result.h"
#include "base/subprocess.h"

namespace mconnect::testing::lab_internal {

inline constexpr std::chrono::milliseconds kPollInterval{50};

// Calls `done` every kPollInterval until it returns true or `timeout` passes; `done` always gets
// one last try at the deadline, so a zero timeout still checks once.
template <typename Done>
bool PollUntil(std::chrono::milliseconds timeout, Done done) {
  using Clock = std::chrono::steady_clock;
  auto deadline = Clock::now() + timeout;
  while (true) {
    if (done()) return true;
    auto now = Clock::now();
    if (now >= deadline) return false;
    std::this_thread::sleep_for(std::min<Clock::duration>(kPollInterval, deadline - now));
  }
}

struct ProcStat {
  char state = '?';
  pid_t ppid = 0;
  int wait_status = 0;  // a zombie's status as waitpid() would report it
};

// /proc/PID/stat is "pid (comm) state ppid ...", where comm may hold spaces and parentheses:
// the fields start after the last ')'. Field 52 is exit_code (Linux >= 3.5).
std::optional<ProcStat> ReadStat(pid_t pid);

// A decimal number with optional trailing blanks.
std::optional<int> ParseNumber(std::string_view text);

// A pid, a port.
std::optional<int> ParsePositive(std::string_view text);

// Options that stop the command after `timeout`.
CommandOptions Within(std::chrono::milliseconds timeout);

// Runs one of our helper commands; its failure becomes an Error carrying what it said.
Result<CommandOutput> RunChecked(const std::vector<std::string>& argv,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace mconnect::testing::lab_internal
