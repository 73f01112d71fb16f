// The processes a test's sshd runs for its clients, found by their parent chain from the lab's
// sshd (never by name alone: other tests run the same programs at the same time).
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "tests/support/lab.h"

namespace mconnect::testing {

// Every live process below `root` (children, their children, ...), `root` itself left out.
inline std::vector<ProcessInfo> DescendantsOf(pid_t root) {
  std::vector<ProcessInfo> all = FindProcesses([](const ProcessInfo&) { return true; });
  std::set<pid_t> tree{root};
  for (bool grew = true; grew;) {
    grew = false;
    for (const auto& process : all) {
      if (!tree.contains(process.pid) && tree.contains(process.ppid)) {
        tree.insert(process.pid);
        grew = true;
      }
    }
  }
  std::erase_if(all, [&](const ProcessInfo& process) { return process.pid == root || !tree.contains(process.pid); });
  return all;
}

// Whether a process below `root` runs exactly `argv`.
inline bool RunsBelow(pid_t root, const std::vector<std::string>& argv) {
  const auto below = DescendantsOf(root);
  return std::ranges::any_of(below, [&](const ProcessInfo& process) { return process.argv == argv; });
}

// SIGSTOPs the processes that serve the lab's connections (not its listener) and SIGCONTs them
// when it goes: to the master the server falls silent (TCP still acknowledges, nothing answers),
// as on a path that drops everything without resetting it.
class SilencedSessions {
 public:
  explicit SilencedSessions(pid_t sshd) {
    for (const auto& process : DescendantsOf(sshd)) {
      if (::kill(process.pid, SIGSTOP) == 0) stopped_.push_back(process.pid);
    }
  }
  ~SilencedSessions() {
    for (pid_t pid : stopped_) ::kill(pid, SIGCONT);
  }
  SilencedSessions(const SilencedSessions&) = delete;
  SilencedSessions& operator=(const SilencedSessions&) = delete;

  std::size_t count() const { return stopped_.size(); }

 private:
  std::vector<pid_t> stopped_;
};

}  // namespace mconnect::testing
