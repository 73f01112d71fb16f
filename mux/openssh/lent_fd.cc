#include "mux/openssh/lent_fd.h"

#include <fcntl.h>
#include <linux/kcmp.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

namespace mconnect::mux {

namespace {

// One open file description that lent fds refer to: the file it opens (to find candidates
// quickly), its flags before we touched them, and the lent fds that share it now. No fd of its
// own: the last lent fd to go puts the flags back through itself.
struct Description {
  dev_t device = 0;
  ino_t inode = 0;
  int original_flags = 0;
  std::vector<int> users;
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

Description* Find(int fd, const struct stat& st) {
  for (auto& description : Registry()) {
    if (description.device == st.st_dev && description.inode == st.st_ino &&
        SameDescription(description.users.front(), fd)) {
      return &description;
    }
  }
  return nullptr;
}

}  // namespace

std::size_t LentDescriptionCount() { return Registry().size(); }

LentFd::LentFd(UniqueFd fd) : fd_(std::move(fd)) {
  if (!fd_) return;
  is_tty_ = ::isatty(fd_.get()) == 1;
  struct stat st{};
  if (::fstat(fd_.get(), &st) != 0) return;  // unusable for bookkeeping: leave its flags alone
  is_regular_ = S_ISREG(st.st_mode);
  if (Description* known = Find(fd_.get(), st)) {
    known->users.push_back(fd_.get());
    registered_ = true;
    return;
  }
  int flags = ::fcntl(fd_.get(), F_GETFL);
  if (flags < 0) return;
  Registry().push_back({st.st_dev, st.st_ino, flags, {fd_.get()}});
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
      auto user = std::find(it->users.begin(), it->users.end(), fd_.get());
      if (user == it->users.end()) continue;
      it->users.erase(user);
      if (it->users.empty()) {
        ::fcntl(fd_.get(), F_SETFL, it->original_flags);
        registry.erase(it);
      }
      break;
    }
  }
  registered_ = false;
  fd_.Reset();
}

Result<std::optional<std::vector<UniqueFd>>> ReceiveFds(int socket) {
  // Room for the most a message may carry (Linux's SCM_MAX_FD), so that the kernel never
  // truncates: what it would cut off it closes, but what it installs is ours to close.
  constexpr std::size_t kMaxFdsPerMessage = 253;
  char byte = 0;
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
  msghdr message{};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof control;
  ssize_t n = ::recvmsg(socket, &message, MSG_CMSG_CLOEXEC);
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return std::optional<std::vector<UniqueFd>>();
    return Fail("receiving file descriptors: {}", std::strerror(errno));
  }
  // Every fd the kernel installed is owned from here on, whatever else is wrong.
  std::vector<UniqueFd> fds;
  for (cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr; header = CMSG_NXTHDR(&message, header)) {
    if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS || header->cmsg_len < CMSG_LEN(0)) {
      continue;
    }
    const std::size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd = -1;
      std::memcpy(&fd, CMSG_DATA(header) + i * sizeof(int), sizeof fd);
      fds.emplace_back(fd);
    }
  }
  if (n == 0) return Fail("the client closed the connection while passing file descriptors");
  // Truncated: more than a message holds, or this process had no fd left to install them in.
  if (message.msg_flags & MSG_CTRUNC) return Fail("not every file descriptor the client passed could be taken");
  if (fds.empty()) return Fail("the client sent a byte without a file descriptor");
  return std::optional<std::vector<UniqueFd>>(std::move(fds));
}

}  // namespace mconnect::mux
