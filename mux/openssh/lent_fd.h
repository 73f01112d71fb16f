// File descriptors that an OpenSSH mux client lends the master with SCM_RIGHTS: its stdin,
// stdout and stderr, which may be a terminal, a pipe or a regular file. The master makes its
// copy non-blocking for the event loop. That flag lives in the open file description, which the
// client shares, and which other lent fds may share too (a terminal as stdin and stdout, two
// sessions started from one shell): so the description's original flags are recorded once,
// by its first lender, and put back only when its last lent fd is released.
#pragma once

#include <optional>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace mconnect::mux {

class LentFd {
 public:
  LentFd() = default;
  explicit LentFd(UniqueFd fd);
  LentFd(LentFd&& other) noexcept;
  LentFd& operator=(LentFd&& other) noexcept;
  ~LentFd();

  int get() const { return fd_.get(); }
  bool valid() const { return fd_.valid(); }
  bool is_tty() const { return is_tty_; }
  // Regular files are always "ready": poll() says so, read() and write() never block.
  bool is_regular() const { return is_regular_; }
  void Reset();

 private:
  UniqueFd fd_;
  bool registered_ = false;  // counted in the registry of open file descriptions
  bool is_tty_ = false;
  bool is_regular_ = false;
};

// How many open file descriptions the master currently holds lent fds for (tests).
std::size_t LentDescriptionCount();

// Receives the fds passed with SCM_RIGHTS on one data byte. OpenSSH's mm_send_fd passes one per
// byte, but a client may pass up to the kernel's SCM_MAX_FD (253) in one message, and the kernel
// installs every one of them in this process before anyone looks: all are returned, or closed
// here (a truncated or malformed message). nullopt: nothing there yet (EAGAIN). An error: the
// peer closed, sent a byte without fds, or more than the kernel could pass whole.
Result<std::optional<std::vector<UniqueFd>>> ReceiveFds(int socket);

}  // namespace mconnect::mux
