// `mconnect master HOST`: keeps the master for a destination up for a service manager. It starts
// it in the foreground (this process becomes mconnect-mux), or, when one is already running,
// stays until that one exits.
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "base/terminal.h"
#include "base/unique_fd.h"
#include "launcher/app.h"
#include "launcher/commands/destination.h"
#include "launcher/master_link.h"

namespace mconnect::launcher {
namespace {

// Returns once process `pid` (not our child) has exited.
Result<void> WaitForExit(pid_t pid) {
  UniqueFd fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!fd) {
    if (errno == ESRCH) return {};
    return Fail("cannot watch pid {}: {}", pid, std::strerror(errno));
  }
  pollfd pfd{fd.get(), POLLIN, 0};
  while (::poll(&pfd, 1, -1) < 0) {
    if (errno != EINTR) return Fail("poll: {}", std::strerror(errno));
  }
  return {};
}

}  // namespace

int RunMaster(Options options) {
  options.foreground_master = true;
  if (!options.persist_s) options.persist_s = 0;  // a service's master does not idle out
  auto resolved = Resolve(options);
  if (!resolved) {
    term::PrintFailure("mconnect", resolved.error());
    return kExitConnectionFailed;
  }
  auto link = ConnectOrStartMaster(resolved->ssh, options, resolved->profile);
  if (!link) {
    term::PrintFailure("mconnect", Error{link.error().message, DoctorHint(options)});
    return kExitConnectionFailed;
  }
  auto pid = static_cast<pid_t>(link->client.master_pid());
  std::fprintf(stderr, "mconnect: a master for %s is already running (pid %d, %s); waiting for it to exit\n",
               DestinationName(resolved->ssh).c_str(), pid, link->socket_path.c_str());
  if (auto waited = WaitForExit(pid); !waited) {
    term::PrintFailure("mconnect", waited.error());
    return 1;
  }
  return 0;
}

}  // namespace mconnect::launcher
