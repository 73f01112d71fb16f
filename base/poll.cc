#include "base/poll.h"

#include <algorithm>
#include <utility>

namespace mconnect {

int PollDistinct(std::vector<pollfd>& fds, const timespec* timeout, const sigset_t* mask) {
  // (fd, entry) pairs sorted by fd: equal fds become neighbours and share one kernel entry.
  std::vector<std::pair<int, std::size_t>> order;
  order.reserve(fds.size());
  for (std::size_t i = 0; i < fds.size(); ++i) {
    fds[i].revents = 0;
    if (fds[i].fd >= 0) order.emplace_back(fds[i].fd, i);
  }
  std::sort(order.begin(), order.end());
  std::vector<pollfd> distinct;
  std::vector<std::size_t> slot(fds.size(), 0);  // entry -> its kernel entry
  for (const auto& [fd, entry] : order) {
    if (distinct.empty() || distinct.back().fd != fd) distinct.push_back({fd, 0, 0});
    distinct.back().events = static_cast<short>(distinct.back().events | fds[entry].events);
    slot[entry] = distinct.size() - 1;
  }
  int ready = ::ppoll(distinct.data(), distinct.size(), timeout, mask);
  if (ready <= 0) return ready;
  int entries = 0;
  for (const auto& [fd, entry] : order) {
    constexpr short kAlways = POLLERR | POLLHUP | POLLNVAL;
    fds[entry].revents = static_cast<short>(distinct[slot[entry]].revents & (fds[entry].events | kAlways));
    if (fds[entry].revents != 0) ++entries;
  }
  return entries;
}

}  // namespace mconnect
