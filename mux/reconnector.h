// Opens a replacement SSH connection for a master whose connection died, without stopping the
// master's event loop: SshConnection::Open is a blocking, deadline-bounded sequence (TCP or
// proxy, handshake, strict host-key check, authentication without a person), so one attempt
// runs on a background thread and reports through an eventfd the loop polls. That thread is
// the only one besides the loop; it shares nothing with the loop but the finished result.
#pragma once

#include <chrono>
#include <expected>
#include <memory>
#include <optional>

#include "mux/ssh_connection.h"

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

  // Starts one attempt. Precondition: !running().
  void Start();
  bool running() const { return running_; }
  // Readable once the running attempt has finished; -1 when no attempt ever ran.
  int fd() const;
  // The finished attempt's outcome (then !running()), or nothing while it still runs.
  std::optional<Outcome> Take();

 private:
  struct Shared;

  ConnectParams params_;
  std::shared_ptr<Shared> shared_;
  bool running_ = false;
};

// Seconds to wait before attempt number `attempt` (1-based) after a failed one: 1, 2, 4, 8,
// then 15 s — short enough to come back soon after a network returns, long enough not to
// hammer a server that refuses.
std::chrono::seconds ReconnectBackoff(int attempt);

}  // namespace mconnect::mux
