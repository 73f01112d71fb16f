// ppoll(2) over a list of interests that may name one fd several times (a socket read and
// written by two entries) or hold -1 (nothing wanted now). The kernel refuses more entries than
// RLIMIT_NOFILE allows (EINVAL), and counts repeated and negative ones too: a master with 340
// forwarded connections of three entries each failed that way at the default limit of 1024.
// So the kernel is asked once per distinct fd, with the union of the events wanted, and each
// entry gets back what concerns it.
#pragma once

#include <poll.h>
#include <signal.h>
#include <time.h>

#include <vector>

namespace mconnect {

// Like ppoll on `fds`: returns the number of entries with revents set, 0 on timeout, -1 with
// errno. Each entry's revents are its fd's, masked to its own events plus POLLERR, POLLHUP and
// POLLNVAL; entries with a negative fd get 0.
int PollDistinct(std::vector<pollfd>& fds, const timespec* timeout, const sigset_t* mask);

}  // namespace mconnect
