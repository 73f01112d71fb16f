// One registration point for a ppoll() loop, as tmux registers with libevent: each round, every
// part says which fds it wants watched (with the callback that handles them) and by when it wants
// to be woken; Wait() polls once (through PollDistinct) and runs the round's callbacks.
//
// Callbacks run in the order they were registered, and the loop's unconditional work (pumping,
// expiring deadlines) is registered in that same order with Then(), so a round reads from top to
// bottom as its registrations. A callback must not hold a raw pointer or index into a container
// that another callback may change: objects go away during a round (a client closed by another's
// request, a forward cancelled), so callbacks capture ids and look their object up again.
//
// Base-level on purpose: it knows fds, deadlines and callbacks, nothing of the master's parts.
#pragma once

#include <poll.h>
#include <signal.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <span>
#include <vector>

namespace mconnect {

class Poller {
 public:
  using Clock = std::chrono::steady_clock;
  using OnReady = std::function<void(short revents)>;
  // For fds one handler takes together (a session's control socket and its three lent ends).
  using OnGroupReady = std::function<void(std::span<const pollfd> fds)>;
  using Step = std::function<void()>;

  // Watches `fd` for `events` this round; `on_ready` runs with its revents if there are any. A
  // negative fd is never ready; an empty callback only wakes the loop (work done by a Then step).
  void Watch(int fd, short events, OnReady on_ready);
  // Watches several fds this round; `on_ready` runs once, with all their revents, if any is ready.
  void Watch(std::span<const pollfd> fds, OnGroupReady on_ready);
  // Runs `step` at this place in the round's order, whether or not anything was ready (also after
  // a timeout or a signal).
  void Then(Step step);
  // Wait() returns by `when` at the latest (the earliest of all asked for this round).
  void WakeBy(Clock::time_point when);
  void WakeBy(std::optional<Clock::time_point> when);
  std::optional<Clock::time_point> deadline() const { return deadline_; }

  // ppoll()s with `mask` until an fd is ready, the deadline, or a signal; then runs the round's
  // callbacks and steps in order, and forgets the round (what a callback registers is for the
  // next). Returns how many fds were ready, 0 on timeout, -1 with errno (EINTR: a signal, the
  // steps ran; anything else: nothing ran).
  int Wait(const sigset_t* mask);

 private:
  struct Entry {
    std::size_t first = 0;  // into fds_
    std::size_t count = 0;
    OnGroupReady on_ready;
    Step step;
  };
  std::vector<pollfd> fds_;
  std::vector<Entry> entries_;
  std::optional<Clock::time_point> deadline_;
};

}  // namespace mconnect
