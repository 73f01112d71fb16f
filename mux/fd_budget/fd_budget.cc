#include "mux/fd_budget/fd_budget.h"

#include <dirent.h>
#include <sys/resource.h>

namespace mconnect::mux {

std::size_t RaiseFdLimit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 1024;
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    // An unlimited hard limit is not a number setrlimit takes for NOFILE: stay below nr_open.
    if (raised.rlim_cur == RLIM_INFINITY) raised.rlim_cur = 1 << 20;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  return limit.rlim_cur == RLIM_INFINITY ? std::size_t{1} << 20 : static_cast<std::size_t>(limit.rlim_cur);
}

std::optional<std::size_t> CountOpenFds() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return std::nullopt;
  std::size_t count = 0;
  while (dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  ::closedir(dir);
  return count - 1;  // the directory's own fd
}

std::size_t FdBudget::Limit() {
  rlimit current{};
  if (::getrlimit(RLIMIT_NOFILE, &current) != 0 || current.rlim_cur == RLIM_INFINITY) return std::size_t{1} << 20;
  return static_cast<std::size_t>(current.rlim_cur);
}

std::size_t FdBudget::Room(std::size_t promised) {
  auto open = CountOpenFds();
  if (!open) return std::size_t{1} << 20;
  const std::size_t used = *open + promised + kReserve;
  const std::size_t limit = Limit();
  return used >= limit ? 0 : limit - used;
}

}  // namespace mconnect::mux
