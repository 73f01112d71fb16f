// Drives an authenticated libssh2 session from the master's single-threaded event loop:
// channel tasks (mux/ssh/channel_task.h) get their channels and are pumped, keepalives go out on a
// timer, and a spare session channel is kept open ahead of demand.
//
// Two libssh2 rules shape this (measured on libssh2 1.11.1):
//  - only one channel open may be in flight per session, so opens are queued;
//  - after a send returned EAGAIN with a partial packet, exactly that call must be repeated
//    before any other sending call, so whoever got it is the only one pumped until it gets
//    past it ("send owner").
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
#include <utility>
#include <vector>

#include "base/ssh2.h"
#include "mux/ssh/channel_task.h"
#include "mux/ssh/connection.h"
#include "mux/ssh/exec_task.h"

namespace mconnect::mux {

class SshDriver {
 public:
  using Clock = std::chrono::steady_clock;

  // The connection counts as dead once nothing has been heard from the server for
  // keepalive_interval × (keepalive_count_max + 1): ssh's ServerAliveInterval/CountMax.
  SshDriver(std::unique_ptr<SshConnection> connection, std::chrono::seconds keepalive_interval,
            int keepalive_count_max = 3);
  ~SshDriver();

  // Queues a task; it gets a channel (or Abort) from a later Pump, never from inside Start.
  void Start(std::unique_ptr<ChannelTask> task);
  void Exec(ExecSpec spec, ExecTask::Done done) {
    Start(std::make_unique<ExecTask>(std::move(spec), std::move(done)));
  }

  // A session job (remote forward listener), pumped with the channel tasks.
  void StartJob(std::unique_ptr<SessionJob> job);
  // A channel the server opened (a connection to a remote forward): its task starts at once.
  void Adopt(LIBSSH2_CHANNEL* channel, std::unique_ptr<ChannelTask> task);

  // Channels the server opens on its own for a session: an agent connection
  // (auth-agent@openssh.com) or an X11 connection ("x11"). libssh2 accepts them (its own refusal
  // of an agent channel sends a malformed packet), and hands them here; one that a live task of
  // this connection asked for (ChannelTask::forwards_agent/forwards_x11) goes to the hook, which
  // must Adopt it; any other is closed at once.
  enum class Inbound { kAgent, kX11 };
  using InboundHook = std::function<void(SshDriver&, Inbound, LIBSSH2_CHANNEL*)>;
  void SetInbound(InboundHook hook) { inbound_hook_ = std::move(hook); }

  int fd() const { return connection_->fd(); }
  short PollEvents() const;
  // Makes all the progress possible without blocking. Call when the socket is ready, a deadline
  // passed, or a task has new local work; cheap to call spuriously.
  void Pump();
  std::optional<Clock::time_point> NextDeadline() const;

  // Where a task goes when the server refuses its channel for lack of room (sshd's
  // MaxSessions): another connection to the same destination. Unset: the task is aborted.
  void SetOverflow(std::function<void(std::unique_ptr<ChannelTask>)> overflow) { overflow_ = std::move(overflow); }
  // The server refused a channel and none has closed since: send new tasks elsewhere.
  bool full() const { return full_; }
  Clock::time_point last_busy() const { return last_busy_; }

  bool dead() const { return !death_.empty(); }
  const std::string& death() const { return death_; }

  // While dead: how long a queued task may wait for Replace before it is aborted (0, the
  // default: at once). A non-empty `refusal` aborts every waiting task with it, now and later.
  void HoldWhileDown(std::chrono::seconds budget, std::string refusal = {});
  // Tasks queued for a channel they have not got (the master reconnects sooner for them).
  bool waiting() const;
  // A new connection to the same destination for a dead driver; queued tasks carry on with it.
  void Replace(std::unique_ptr<SshConnection> connection);
  std::size_t busy_channels() const;
  // The receive window for a new session channel, from the path's round-trip time.
  std::uint32_t ChannelWindow() const;
  // Tasks queued for a channel whose open has not started (libssh2 opens one channel at a time
  // per connection, a round trip each), and since when the oldest has waited.
  std::size_t unopened() const;
  std::optional<Clock::time_point> oldest_unopened() const;
  // Removes up to `count` of them, the newest first, for another connection to open; with
  // `sessions_only`, only those that need a session channel (the ones MaxSessions refuses).
  std::vector<std::unique_ptr<ChannelTask>> TakeUnopened(std::size_t count, bool sessions_only = false);
  std::uint64_t tasks_started() const { return tasks_started_; }
  const SshConnection& connection() const { return *connection_; }
  SshConnection& connection() { return *connection_; }

 private:
  struct Slot {
    std::unique_ptr<ChannelTask> task;
    Ssh2Channel channel;
    Clock::time_point queued = Clock::now();
  };
  using Step = ChannelTask::Step;

  // Pumps one slot until it blocks or finishes; false when it finished (or was aborted).
  bool PumpSlot(Slot& slot);
  Step PumpSpare();
  Step PumpKeepalive();
  // After an EAGAIN: remembers `who` when libssh2 blocked on sending.
  Step Blocked(const void* who);
  void Die(std::string message);
  void CheckFatal();
  // How long the server may stay silent before the connection counts as dead (max(): never).
  Clock::duration Silence() const;
  // A master that was stopped (SIGSTOP, a debugger, a starved machine) or asleep (suspend, as a
  // laptop's lid) heard nothing meanwhile through no fault of the server: its silence must not
  // count. Seen as a wake-up far later than NextDeadline asked for, or CLOCK_BOOTTIME running
  // ahead of CLOCK_MONOTONIC (which stands still in suspend). Then the connection gets a probe
  // (a keepalive now) and a short window to answer it, instead of being declared dead.
  void CheckForPause();
  // libssh2's socket reads go through here: anything read is news from the server.
  static ssize_t Received(libssh2_socket_t socket, void* buffer, size_t length, int flags, void** abstract);
  // libssh2's callbacks for the server's channel opens (inside a libssh2 call: they only queue).
  static void AgentOpened(LIBSSH2_SESSION* session, LIBSSH2_CHANNEL* channel, void** abstract);
  static void X11Opened(LIBSSH2_SESSION* session, LIBSSH2_CHANNEL* channel, const char* host, int port,
                        void** abstract);
  // Hands the queued server-opened channels to the hook, or closes them.
  void PlaceInbound();
  // Dead: aborts what had a channel, and what waited for one longer than the hold allows.
  void PumpDown();
  // One turn for everyone (Pump repeats it while turns hear from the server).
  void PumpRound();
  void StartSession();

  std::unique_ptr<SshConnection> connection_;
  LIBSSH2_SESSION* session_;
  std::list<Slot> slots_;
  std::list<std::unique_ptr<SessionJob>> jobs_;
  Ssh2Channel spare_;
  const void* opening_ = nullptr;     // the slot (or &spare_) whose channel open is in flight
  std::uint32_t open_window_ = 0;     // its receive window, fixed when the open started
  const void* send_owner_ = nullptr;  // who must repeat a partially sent call
  std::chrono::seconds keepalive_interval_;
  int keepalive_count_max_;
  Clock::time_point next_keepalive_;
  Clock::time_point last_heard_ = Clock::now();  // set by Received
  std::uint64_t bytes_heard_ = 0;                 // set by Received
  bool pump_again_ = false;  // the last Pump still heard news: come back at once (NextDeadline)
  // CheckForPause: when the loop promised to come back (set by NextDeadline), the clocks at the
  // last look, and whether a keepalive must go out now whatever libssh2's timer says.
  mutable Clock::time_point wake_by_ = Clock::time_point::max();
  Clock::time_point last_check_ = Clock::now();
  Clock::duration last_boot_{};
  bool probe_ = false;
  std::chrono::seconds hold_{0};
  std::string refusal_;
  std::uint64_t tasks_started_ = 0;
  std::function<void(std::unique_ptr<ChannelTask>)> overflow_;
  std::vector<std::pair<Inbound, LIBSSH2_CHANNEL*>> inbound_;  // opened by the server, not yet placed
  InboundHook inbound_hook_;
  bool full_ = false;
  Clock::time_point last_busy_ = Clock::now();
  std::string death_;
  Clock::time_point died_at_;
};

}  // namespace mconnect::mux
