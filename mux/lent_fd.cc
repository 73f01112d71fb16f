#include "mux/lent_fd.h"

#include <fcntl.h>
#include <linux/kcmp.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

namespace mconnect::mux {

namespace {

// One open file description that lent fds refer to: a duplicate of it to compare against (with
// kcmp) and to restore through, its flags before we touched them, and how many lent fds share it.
struct Description {
  UniqueFd handle;
  int original_flags = 0;
  int users = 0;
};

std::vector<Description>& Registry() {
  static std::vector<Description> registry;
  return registry;
}

// Whether two fds of this process share one open file description. Without kcmp (a kernel
// without CONFIG_KCMP) every fd counts as its own description, as before.
bool SameDescription(int a, int b) {
  pid_t self = ::getpid();
  return ::syscall(SYS_kcmp, self, self, KCMP_FILE, a, b) == 0;
}

Description* Find(int fd) {
  for (auto& description : Registry()) {
    if (SameDescription(description.handle.get(), fd)) return &description;
  }
  return nullptr;
}

}  // namespace

std::size_t LentDescriptionCount() { return Registry().size(); }

LentFd::LentFd(UniqueFd fd) : fd_(std::move(fd)) {
  if (!fd_) return;
  is_tty_ = ::isatty(fd_.get()) == 1;
  struct stat st{};
  is_regular_ = ::fstat(fd_.get(), &st) == 0 && S_ISREG(st.st_mode);
  if (Description* known = Find(fd_.get())) {
    ++known->users;
    registered_ = true;
    return;
  }
  int flags = ::fcntl(fd_.get(), F_GETFL);
  UniqueFd handle(::fcntl(fd_.get(), F_DUPFD_CLOEXEC, 0));
  if (flags < 0 || !handle) return;  // unusable for bookkeeping: leave its flags alone
  Registry().push_back({std::move(handle), flags, 1});
  registered_ = true;
  SetNonBlocking(fd_.get(), true);
}

LentFd::LentFd(LentFd&& other) noexcept
    : fd_(std::move(other.fd_)),
      registered_(std::exchange(other.registered_, false)),
      is_tty_(other.is_tty_),
      is_regular_(other.is_regular_) {}

LentFd& LentFd::operator=(LentFd&& other) noexcept {
  if (this != &other) {
    Reset();
    fd_ = std::move(other.fd_);
    registered_ = std::exchange(other.registered_, false);
    is_tty_ = other.is_tty_;
    is_regular_ = other.is_regular_;
  }
  return *this;
}

LentFd::~LentFd() { Reset(); }

void LentFd::Reset() {
  if (fd_ && registered_) {
    auto& registry = Registry();
    for (auto it = registry.begin(); it != registry.end(); ++it) {
      if (!SameDescription(it->handle.get(), fd_.get())) continue;
      if (--it->users == 0) {
        ::fcntl(it->handle.get(), F_SETFL, it->original_flags);
        registry.erase(it);
      }
      break;
    }
  }
  registered_ = false;
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
