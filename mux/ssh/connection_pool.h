// All the SSH connections a master keeps to its server: the main one, re-opened when it is lost
// (with backoff, without a person), and the overflow connections opened past sshd's MaxSessions
// or when a burst of channel opens outgrows the ones there are. Channel tasks are spread over
// them; tasks with no room anywhere wait here until a connection has some.
//
// Connections open on threads (Reconnector), several at once, so that the burst of sessions that
// needs them does not stop the loop for a TCP connect, key exchange and authentication, nor wait
// for them one after another. The pool takes part in the master's loop through the Poller.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/poller.h"
#include "mux/ssh/channel_task.h"
#include "mux/ssh/connection.h"
#include "mux/ssh/driver.h"
#include "mux/ssh/reconnector.h"

namespace mconnect::mux {

class ConnectionPool {
 public:
  using Clock = std::chrono::steady_clock;
  // Connections kept at most (the main one and those opened past sshd's MaxSessions), and the
  // most a burst of channel opens may bring about (past sshd's MaxSessions more follow).
  static constexpr std::size_t kMaxConnections = 32;
  static constexpr std::size_t kMaxBurstConnections = 8;
  // The main connection: up; lost and being re-opened; lost for good until a person helps.
  enum class Link { kUp, kReconnecting, kNeedsPerson };

  struct Options {
    std::string destination;  // user@host:port, for logs and messages
    std::chrono::seconds keepalive{30};
    int keepalive_count_max = 3;
    // When the main connection dies: open a new one and let requests wait this long for it;
    // false: it stays lost (the master exits).
    bool reconnect = true;
    std::chrono::seconds reconnect_wait{30};
    ConnectParams connect;
  };
  // `fd_room`: how many fds are free for another connection, after what the master keeps and
  // what its clients were promised (FdBudget::Room).
  ConnectionPool(Options options, std::unique_ptr<SshConnection> connection, std::function<std::size_t()> fd_room);
  ~ConnectionPool();

  // The main connection: the object stays the same when its connection is re-opened.
  SshDriver& main() { return driver_; }
  // Where every connection's server-opened agent and X11 channels go (SshDriver::SetInbound),
  // the main connection's and the overflow connections' alike.
  void SetInbound(SshDriver::InboundHook hook);
  const SshDriver& main() const { return driver_; }
  std::vector<SshDriver*> Drivers();
  std::size_t connections() const { return 1 + extra_.size(); }
  std::uint64_t connections_opened() const { return connections_opened_; }
  std::uint64_t reconnects() const { return reconnects_; }
  Link link() const { return link_; }
  const std::string& link_detail() const { return link_detail_; }  // why the link is not up
  int attempts() const { return attempts_; }                       // since the connection was lost
  Clock::time_point down_since() const { return down_since_; }
  // No channel busy, no overflow connection, no task waiting for room.
  bool Idle() const;

  // Called each round before the loop waits: notices a main connection that died (and starts
  // re-opening it when the options say so). Returns true when it is lost for good (no reconnect).
  bool CheckLink(Clock::time_point now);
  // Registers the connections' sockets (they only wake the loop: Pump does the work), the
  // attempts that run, a proxy command's stderr, and the deadlines of all of them; starts a
  // reconnect attempt when one is due.
  void Watch(Poller& poller, Clock::time_point now);
  // Runs every connection (SshDriver::Pump); drops overflow connections that died or idle.
  void Pump();
  // After the clients' events: spreads queued opens and places tasks that wait for room.
  void Balance(Clock::time_point now);

 private:
  static constexpr int kParallelOpens = 4;
  // Unopened tasks a connection keeps in its own queue; more are spread or wait in the pool.
  static constexpr std::size_t kKeepOpens = 2;

  // An overflow connection being opened is there, or failed: the waiting tasks go on it, or
  // back to the main connection, or (when nothing can take them) fail.
  void OnOverflowOpened(Reconnector& opener);
  // Starts opening another overflow connection on a free opener (see MayOpenAnother).
  void OpenAnotherConnection();
  // Whether the cap on connections, the openers and the fd budget allow one more now.
  bool MayOpenAnother(Clock::time_point now) const;
  std::size_t RunningOpeners() const;
  // Tasks waiting for room (overflow_waiting_) go to a connection that has it, or to one being
  // opened, or make one be opened; at the cap they wait for a channel to close.
  void PlaceWaiting(Clock::time_point now);
  // Sessions the server allows on one connection, as seen on a full one (else sshd's default).
  std::size_t SessionsPerConnection();
  // Spreads tasks that queue for a channel open (one at a time per connection, a round trip
  // each) over the connections there are, and opens more when a burst outgrows them.
  void BalanceOpens(Clock::time_point now);
  // A task the server refused for lack of room on its connection: run it on another one.
  void Overflow(std::unique_ptr<ChannelTask> task);
  SshDriver::InboundHook inbound_;
  void OnConnectionLost(Clock::time_point now);
  // Starts a reconnect attempt when one is due; returns when the next one is due, if any.
  std::optional<Clock::time_point> ScheduleReconnect(Clock::time_point now);
  void OnReconnectOutcome(Clock::time_point now);
  // When the loop must come back for the connections' own sake.
  void WakeFor(Poller& poller, Clock::time_point now);

  Options options_;
  std::function<std::size_t()> fd_room_;
  SshDriver driver_;
  std::vector<std::unique_ptr<SshDriver>> extra_;  // overflow connections, opened on demand
  std::uint64_t connections_opened_ = 1;
  Link link_ = Link::kUp;
  std::string link_detail_;
  Reconnector reconnector_;
  std::vector<std::unique_ptr<Reconnector>> openers_;
  std::vector<std::unique_ptr<ChannelTask>> overflow_waiting_;
  Clock::time_point next_open_{};  // after a failed overflow connection, not before this
  int attempts_ = 0;
  Clock::time_point down_since_;
  Clock::time_point next_attempt_;
  Clock::time_point last_attempt_end_;
  std::uint64_t reconnects_ = 0;
};

}  // namespace mconnect::mux
