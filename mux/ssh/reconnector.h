// Opens a replacement SSH connection for a master whose connection died, without stopping the
// master's event loop: SshConnection::Open is a blocking, deadline-bounded sequence (TCP or
// proxy, handshake, strict host-key check, authentication without a person), so one attempt
// runs on a background thread and reports through an eventfd the loop polls. That thread is
// the only one besides the loop; it shares nothing with the loop but the finished result.
//
// The eventfd is made once, with the Reconnector (when the master starts), and serves every
// attempt: a connection usually drops when something is short, fds included, and an attempt
// that needed a new fd just to report would have nothing to report through. So Start() needs no
// fd of its own, and what can still fail there (the thread) ends the attempt at once with a
// failed outcome that the loop reads like any other.
#pragma once

#include <chrono>
#include <expected>
#include <memory>
#include <optional>

#include "mux/ssh/connection.h"

namespace mconnect::mux {

class Reconnector {
 public:
  using Outcome = std::expected<std::unique_ptr<SshConnection>, OpenError>;

  // `params` as the master was started with; attempts never ask anything and check the host
  // key strictly (it was verified, or accepted by the user, at the start).
  explicit Reconnector(ConnectParams params);
  // An attempt still running is left to finish on its own; its result is dropped.
  ~Reconnector();
  Reconnector(const Reconnector&) = delete;
  Reconnector& operator=(const Reconnector&) = delete;

  // Starts one attempt. Precondition: !running(). When the thread cannot be made (EAGAIN), the
  // attempt has already failed, as a network failure ("cannot start a connection attempt: ..."),
  // when Start returns: fd() is readable and Take() has it. Only when there is no eventfd at all
  // (none could be made at construction, nor now) does it start nothing, logs why, and running()
  // stays false: the caller's next round tries again.
  void Start();
  bool running() const { return running_; }
  // Readable once the running attempt has finished (poll it only while running()); -1 only when
  // no eventfd could be made.
  int fd() const;
  // The finished attempt's outcome (then !running()), or nothing while it still runs.
  std::optional<Outcome> Take();

 private:
  struct Shared;

  ConnectParams params_;
  // One for the Reconnector's life, shared with the attempt that runs: a thread left running by
  // the destructor still has somewhere to write.
  std::shared_ptr<Shared> shared_;
  bool running_ = false;
};

// Seconds to wait before attempt number `attempt` (1-based) after a failed one: 1, 2, 4, 8,
// then 15 s — short enough to come back soon after a network returns, long enough not to
// hammer a server that refuses.
std::chrono::seconds ReconnectBackoff(int attempt);

}  // namespace mconnect::mux
