// The byte stream an SSH session runs over: a TCP connection, or a proxy command's stdin and
// stdout (ProxyCommand, and the `ssh -W` that ProxyJump stands for) through a socketpair.
// libssh2 only needs a socket it can send() and recv() on; both kinds are one.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace mconnect::mux {

// recv(2) for libssh2 (the convention of its LIBSSH2_RECV_FUNC: -errno on failure) that ACKs a
// small read at once. sshd writes with Nagle on (it sets TCP_NODELAY only for sessions with a
// pty), so its second small message in a row waits for our ACK of the first, and Linux delays
// that ACK up to 40 ms while we have nothing to send. Measured with bench/run at RTT 50 (strace
// of the master): the channel-open confirmation right after authentication arrived 93 ms, about
// two round trips, late. Bulk reads (a full buffer) are left alone: no syscall per read there.
// Harmless on a proxy's socketpair, where TCP_QUICKACK does not apply.
ssize_t RecvAckingSmall(int socket, void* buffer, std::size_t length, int flags);

class ByteStream {
 public:
  using Clock = std::chrono::steady_clock;

  // Tries each resolved address in turn until one connects or the deadline passes; sets
  // TCP_NODELAY. The fd is left blocking, for the handshake.
  static Result<ByteStream> ConnectTcp(const std::string& host, int port, int family, Clock::time_point deadline);

  // Runs `exec COMMAND` through /bin/sh with one end of a socketpair as its stdin and stdout
  // and a pipe as its stderr (see TakeErrors). The command keeps the controlling terminal, so
  // an `ssh -W` can ask its own questions; it ignores SIGHUP and SIGINT so that the terminal
  // closing does not cut a master that has detached from it.
  static Result<ByteStream> StartProxy(const std::string& command);

  ByteStream() = default;
  ByteStream(ByteStream&& other) noexcept;
  ByteStream& operator=(ByteStream&& other) noexcept;
  // Stops the proxy command, if any (SIGTERM, reaped when it is our child).
  ~ByteStream();

  int fd() const { return socket_.get(); }
  // The address a TCP connection reached; empty through a proxy (nobody knows it).
  const std::string& peer_address() const { return peer_address_; }
  pid_t proxy_pid() const { return proxy_pid_; }
  // The read end of the proxy's stderr (non-blocking), or -1.
  int errors_fd() const { return errors_.get(); }
  // Whatever the proxy wrote to stderr so far, as complete lines (a partial last line is kept
  // for the next call unless `all`); never blocks.
  std::vector<std::string> TakeErrors(bool all = false);

 private:
  void StopProxy();

  UniqueFd socket_;
  std::string peer_address_;
  pid_t proxy_pid_ = 0;
  UniqueFd errors_;
  std::string partial_error_;
};

}  // namespace mconnect::mux
