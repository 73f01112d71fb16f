// A raw OpenSSH mux client for tests: it speaks PROTOCOL.mux's framing by hand on a
// non-blocking connection to a master's socket, so a test can send what OpenSSH's own client
// never would (garbage, cut frames, fds several to a message). Every wait is bounded. And small
// helpers for the pipes such a client lends the master.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "mux/openssh/codec.h"
#include "proto/client.h"

namespace mconnect::testing {

// OpenSSH's HELLO, exactly as its client sends it first: length 8, MUX_MSG_HELLO, version 4.
inline const std::vector<std::uint8_t> kOpenSshHello = {0x00, 0x00, 0x00, 0x08, 0x00, 0x00,
                                                        0x00, 0x01, 0x00, 0x00, 0x00, 0x04};

// The frame of `message` (empty when it cannot be encoded).
std::vector<std::uint8_t> EncodeMux(const mux::openssh::ClientMessage& message);
// A NEW_SESSION for `command`, without a tty or an escape character.
mux::openssh::NewSession MuxSessionRequest(std::uint32_t request_id, std::string command);

// A raw, non-blocking connection to the master's socket that speaks OpenSSH's framing by hand.
// Every wait is bounded.
class MuxSocket {
  using Clock = std::chrono::steady_clock;
  using Bytes = std::vector<std::uint8_t>;


 public:
  explicit MuxSocket(const std::string& path) {
    auto fd = proto::ConnectUnix(path);
    if (!fd) {
      error_ = fd.error().message;
      return;
    }
    fd_ = std::move(*fd);
    SetNonBlocking(fd_.get(), true);
  }

  bool valid() const { return fd_.valid(); }
  const std::string& error() const { return error_; }
  int fd() const { return fd_.get(); }
  // The master's end is gone: a send failed with EPIPE/ECONNRESET, or a read saw EOF/ECONNRESET.
  bool peer_closed() const { return peer_closed_; }

  // Writes all of `bytes`, waiting at most `timeout` for room. False (error() says why) when the
  // master closed the connection or would not take the bytes in time.
  bool Send(std::span<const std::uint8_t> bytes, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    auto deadline = Clock::now() + timeout;
    std::size_t sent = 0;
    while (sent < bytes.size()) {
      ssize_t n = ::send(fd_.get(), bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n > 0) {
        sent += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
        peer_closed_ = true;
        error_ = std::strerror(errno);
        return false;
      }
      if (n < 0 && errno != EAGAIN && errno != EINTR) {
        error_ = std::string("send: ") + std::strerror(errno);
        return false;
      }
      if (!WaitFor(POLLOUT, deadline)) {
        error_ = "the master took no more bytes for " + std::to_string(timeout.count()) + " ms";
        return false;
      }
    }
    return true;
  }

  // One fd on one data byte with SCM_RIGHTS, as OpenSSH's mm_send_fd passes each of them.
  bool SendFd(int fd) { return SendFds({fd}); }
  // Several fds on one data byte, in one SCM_RIGHTS message: what OpenSSH never sends, but a
  // client may.
  bool SendFds(const std::vector<int>& fds) {
    char byte = 0;
    iovec iov{&byte, 1};
    std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()), 0);
    msghdr message{};
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    message.msg_control = control.data();
    message.msg_controllen = control.size();
    cmsghdr* header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(header), fds.data(), sizeof(int) * fds.size());
    auto deadline = Clock::now() + std::chrono::seconds(5);
    while (true) {
      if (::sendmsg(fd_.get(), &message, MSG_NOSIGNAL) == 1) return true;
      if (errno != EAGAIN && errno != EINTR) {
        error_ = std::string("sendmsg: ") + std::strerror(errno);
        return false;
      }
      if (!WaitFor(POLLOUT, deadline)) {
        error_ = "sendmsg: no room for 5 s";
        return false;
      }
    }
  }

  void ShutdownWrite() { ::shutdown(fd_.get(), SHUT_WR); }

  // The master's next frame, or nullopt (error() says why) at EOF or after `timeout`.
  std::optional<mux::openssh::Frame> ReadFrame(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    auto deadline = Clock::now() + timeout;
    while (true) {
      auto parsed = mux::openssh::ParseFrame(in_);
      if (!parsed) {
        error_ = "the master sent a bad frame: " + std::string(mux::openssh::FrameErrorName(parsed.error()));
        return std::nullopt;
      }
      if (parsed->has_value()) {
        in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>((*parsed)->consumed));
        return std::move((*parsed)->frame);
      }
      if (peer_closed_) {
        error_ = "the master closed the connection";
        return std::nullopt;
      }
      if (!ReadSome(deadline) && !peer_closed_) {
        error_ = "no frame from the master within " + std::to_string(timeout.count()) + " ms";
        return std::nullopt;
      }
    }
  }

  // True when the master closes the connection within `timeout`: a read returns 0 or
  // ECONNRESET. Whatever the master still sends before that is read and counted, not kept.
  bool ClosedWithin(std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    in_.clear();
    while (!peer_closed_) {
      if (!ReadSome(deadline) && !peer_closed_) return false;
      drained_ += in_.size();
      in_.clear();
    }
    return true;
  }

  // The master's end went away (POLLHUP/POLLERR), observed without reading anything.
  bool HungUpWithin(std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      pollfd pfd{fd_.get(), 0, 0};
      if (::poll(&pfd, 1, 50) > 0 && (pfd.revents & (POLLHUP | POLLERR))) return true;
    }
    return false;
  }

  std::size_t drained() const { return drained_; }

 private:
  bool WaitFor(short events, Clock::time_point deadline) {
    while (true) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return false;
      pollfd pfd{fd_.get(), events, 0};
      int ready = ::poll(&pfd, 1, static_cast<int>(std::min<long long>(left, 100)));
      if (ready > 0) return true;
    }
  }

  // One read into in_: false on timeout or EOF (peer_closed_ then set).
  bool ReadSome(Clock::time_point deadline) {
    while (true) {
      std::uint8_t buffer[16384];
      ssize_t n = ::read(fd_.get(), buffer, sizeof buffer);
      if (n > 0) {
        in_.insert(in_.end(), buffer, buffer + n);
        return true;
      }
      if (n == 0 || errno == ECONNRESET) {
        peer_closed_ = true;
        return false;
      }
      if (errno != EAGAIN && errno != EINTR) {
        error_ = std::string("read: ") + std::strerror(errno);
        peer_closed_ = true;
        return false;
      }
      if (!WaitFor(POLLIN, deadline)) return false;
    }
  }

  UniqueFd fd_;
  Bytes in_;
  std::string error_;
  bool peer_closed_ = false;
  std::size_t drained_ = 0;
};

struct Pipe {
  UniqueFd read;
  UniqueFd write;
};

// A pipe, both ends close-on-exec (invalid ends when the process is out of fds).
Pipe MakePipe();
// True once nobody reads the pipe any more: a write fails with EPIPE (SIGPIPE must be ignored).
bool ReaderGoneWithin(int write_end, std::chrono::milliseconds timeout);
// True once every writer of the pipe is gone: read() returns 0 (data before that is dropped).
bool WritersGoneWithin(int read_end, std::chrono::milliseconds timeout);
// Reads what is in a pipe until `text` arrived or `timeout` passed; returns what was read.
std::string ReadUntil(int read_end, const std::string& text, std::chrono::milliseconds timeout);

}  // namespace mconnect::testing
