#include "mux/lent_fd.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace mconnect::mux {

LentFd::LentFd(UniqueFd fd) : fd_(std::move(fd)) {
  if (!fd_) return;
  int flags = ::fcntl(fd_.get(), F_GETFL);
  if (flags >= 0) {
    original_flags_ = flags;
    SetNonBlocking(fd_.get(), true);
  }
  is_tty_ = ::isatty(fd_.get()) == 1;
  struct stat st{};
  is_regular_ = ::fstat(fd_.get(), &st) == 0 && S_ISREG(st.st_mode);
}

LentFd& LentFd::operator=(LentFd&& other) noexcept {
  if (this != &other) {
    Reset();
    fd_ = std::move(other.fd_);
    original_flags_ = std::exchange(other.original_flags_, std::nullopt);
    is_tty_ = other.is_tty_;
    is_regular_ = other.is_regular_;
  }
  return *this;
}

LentFd::~LentFd() { Reset(); }

void LentFd::Reset() {
  if (fd_ && original_flags_) ::fcntl(fd_.get(), F_SETFL, *original_flags_);
  original_flags_.reset();
  fd_.Reset();
}

Result<std::optional<UniqueFd>> ReceiveFd(int socket) {
  char byte = 0;
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  msghdr message{};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof control;
  ssize_t n = ::recvmsg(socket, &message, MSG_CMSG_CLOEXEC);
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return std::optional<UniqueFd>();
    return Fail("receiving a file descriptor: {}", std::strerror(errno));
  }
  if (n == 0) return Fail("the client closed the connection while passing file descriptors");
  for (cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr; header = CMSG_NXTHDR(&message, header)) {
    if (header->cmsg_level == SOL_SOCKET && header->cmsg_type == SCM_RIGHTS &&
        header->cmsg_len == CMSG_LEN(sizeof(int))) {
      int fd = -1;
      std::memcpy(&fd, CMSG_DATA(header), sizeof fd);
      return std::optional<UniqueFd>(UniqueFd(fd));
    }
  }
  if (message.msg_flags & MSG_CTRUNC) return Fail("a passed file descriptor was truncated");
  return Fail("the client sent a byte without a file descriptor");
}

}  // namespace mconnect::mux
