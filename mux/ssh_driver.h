// Drives an authenticated libssh2 session from the master's single-threaded event loop:
// commands run on channels as non-blocking state machines, keepalives go out on a timer, and a
// spare session channel is kept open ahead of demand.
//
// Two libssh2 rules shape this (DESIGN.md, measured on 1.11.1):
//  - only one channel open may be in flight per session, so opens are queued;
//  - after a send returned EAGAIN with a partial packet, exactly that call must be repeated
//    before any other sending call, so the operation that got it is the only one pumped until
//    it gets past it ("send owner").
// The spare channel also gives libssh2 a reason to read the socket when nothing else is open
// (libssh2 only reads inside calls), so keepalive replies and a server's disconnect are seen.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>

#include "base/ssh2.h"
#include "mux/ssh_connection.h"

namespace mconnect::mux {

struct ExecSpec {
  std::string command;
  std::chrono::milliseconds timeout{30000};
  std::size_t max_output = 64 * 1024;  // per stream
};

struct ExecOutcome {
  std::string out;
  std::string err;
  int exit_status = -1;
  std::string exit_signal;
  bool timed_out = false;
  bool truncated = false;
  std::string error;  // the channel could not be used; exit_status is meaningless then
};

class SshDriver {
 public:
  using Clock = std::chrono::steady_clock;
  using ExecDone = std::function<void(ExecOutcome)>;

  SshDriver(std::unique_ptr<SshConnection> connection, std::chrono::seconds keepalive_interval);
  ~SshDriver();

  // Queues a command; `done` runs from a later Pump (never from inside Exec).
  void Exec(ExecSpec spec, ExecDone done);

  int fd() const { return connection_->fd(); }
  short PollEvents() const;
  // Makes all the progress possible without blocking. Call when the socket is ready or a
  // deadline passed; cheap to call spuriously.
  void Pump();
  std::optional<Clock::time_point> NextDeadline() const;

  bool dead() const { return !death_.empty(); }
  const std::string& death() const { return death_; }
  std::size_t busy_channels() const { return ops_.size(); }
  std::uint64_t execs_started() const { return execs_started_; }
  const SshConnection& connection() const { return *connection_; }

 private:
  struct ExecOp;
  enum class Step { kProgress, kBlocked, kFinished };

  Step PumpOp(ExecOp& op);
  Step PumpSpare();
  Step PumpKeepalive();
  // EAGAIN bookkeeping: remembers who must repeat their call when libssh2 blocked on sending.
  Step Blocked(const void* who);
  Step FailOp(ExecOp& op, std::string message);
  void Die(std::string message);
  bool IsFatal(int code) const;

  std::unique_ptr<SshConnection> connection_;
  LIBSSH2_SESSION* session_;
  std::list<std::unique_ptr<ExecOp>> ops_;
  Ssh2Channel spare_;
  const void* opening_ = nullptr;     // the op (or &spare_) whose channel open is in flight
  const void* send_owner_ = nullptr;  // who must repeat a partially sent call
  std::chrono::seconds keepalive_interval_;
  Clock::time_point next_keepalive_;
  std::uint64_t execs_started_ = 0;
  std::string death_;
};

}  // namespace mconnect::mux
