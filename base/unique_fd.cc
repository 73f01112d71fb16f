#include "base/unique_fd.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace mconnect {

void UniqueFd::Reset(int fd) {
  if (fd_ >= 0 && fd_ != fd) ::close(fd_);
  fd_ = fd;
}

bool SetNonBlocking(int fd, bool non_blocking) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) return false;
  int wanted = non_blocking ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  return wanted == flags || ::fcntl(fd, F_SETFL, wanted) == 0;
}

Result<std::string> ReadToEnd(int fd, std::size_t max_bytes) {
  std::string text;
  char buffer[16384];
  while (true) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Fail("{}", std::strerror(errno));
    if (n == 0) return text;
    if (text.size() + static_cast<std::size_t>(n) > max_bytes) {
      if (max_bytes % (1 << 20) == 0) return Fail("larger than {} MiB", max_bytes >> 20);
      if (max_bytes % (1 << 10) == 0) return Fail("larger than {} KiB", max_bytes >> 10);
      return Fail("larger than {} bytes", max_bytes);
    }
    text.append(buffer, static_cast<std::size_t>(n));
  }
}

}  // namespace mconnect
