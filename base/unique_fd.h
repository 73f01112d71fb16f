// Owns one file descriptor; closes it exactly once. Move-only.
#pragma once

#include <cstddef>
#include <string>
#include <utility>

#include "base/result.h"

namespace mconnect {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.Release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) Reset(other.Release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }
  int Release() { return std::exchange(fd_, -1); }
  void Reset(int fd = -1);

 private:
  int fd_ = -1;
};

// Sets or clears O_NONBLOCK; returns false (errno set) on failure.
bool SetNonBlocking(int fd, bool non_blocking = true);

// Everything `fd` reads until its end, at most `max_bytes`; else the error, as the rest of a line
// that names the file: strerror's text, or "larger than N MiB" (KiB, bytes).
Result<std::string> ReadToEnd(int fd, std::size_t max_bytes);

}  // namespace mconnect
