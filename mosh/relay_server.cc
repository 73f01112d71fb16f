#include "mosh/relay_server.h"

#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "base/subprocess.h"
#include "base/unique_fd.h"
#include "mosh/datagram_frame.h"

namespace mconnect::mosh {
namespace {

// Writes all of `data` to a blocking fd; false when the reader has gone.
bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// mosh-server has exited: no such process (or another user's, the pid reused), or a zombie
// that its parent has not reaped yet (a container whose PID 1 is a shell reaps late): either
// way the relay, and the master's channel, must go.
// Without /proc (a BSD server) only kill(2) can tell.
bool ServerGone(pid_t pid) { return ::kill(pid, 0) != 0 || ProcessState(pid) == 'Z'; }

}  // namespace

int RunRelay(int port, std::uint32_t server_pid) {
  if (port <= 0 || port > 65535) {
    std::fprintf(stderr, "mconnect-relay: bad port %d\n", port);
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  UniqueFd udp(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  sockaddr_in server{};
  server.sin_family = AF_INET;
  server.sin_port = htons(static_cast<std::uint16_t>(port));
  server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (!udp || ::connect(udp.get(), reinterpret_cast<sockaddr*>(&server), sizeof server) != 0) {
    std::fprintf(stderr, "mconnect-relay: connect: %s\n", std::strerror(errno));
    return 1;
  }
  std::fprintf(stderr, "mconnect-relay: mconnect\n");
  std::fflush(stderr);

  constexpr auto kCheckEvery = std::chrono::seconds(5);
  auto next_check = std::chrono::steady_clock::now() + kCheckEvery;
  std::string in;
  char buffer[kMaxRelayedDatagram + 2];
  while (true) {
    auto now = std::chrono::steady_clock::now();
    if (now >= next_check) {
      if (server_pid != 0 && ServerGone(static_cast<pid_t>(server_pid))) {
        std::fprintf(stderr, "mconnect-relay: done\n");
        return 0;
      }
      next_check = now + kCheckEvery;
    }
    pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {udp.get(), POLLIN, 0}};
    int wait_ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(next_check - now).count());
    int ready = ::poll(fds, 2, std::max(0, wait_ms));
    if (ready < 0 && errno != EINTR) return 1;
    if (ready <= 0) continue;
    if (fds[1].revents & POLLIN) {
      for (int i = 0; i < 64; ++i) {
        ssize_t n = ::recv(udp.get(), buffer, sizeof buffer, 0);
        if (n < 0) break;  // drained, or an ICMP error from a send (mosh-server not there yet)
        std::string frame;
        AppendDatagramFrame(frame, std::string_view(buffer, static_cast<std::size_t>(n)));
        if (!WriteAll(STDOUT_FILENO, frame)) return 0;
      }
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = ::read(STDIN_FILENO, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return 0;
      in.append(buffer, static_cast<std::size_t>(n));
      std::size_t used = TakeDatagramFrames(in, [&udp](std::string_view datagram) {
        (void)::send(udp.get(), datagram.data(), datagram.size(), 0);  // lost like any datagram
      });
      in.erase(0, used);
    }
  }
}

}  // namespace mconnect::mosh
