#include "base/poller.h"

#include <algorithm>
#include <cerrno>
#include <utility>

#include "base/poll.h"

namespace mconnect {

void Poller::Watch(int fd, short events, OnReady on_ready) {
  const pollfd entry{fd, events, 0};
  if (!on_ready) return Watch(std::span<const pollfd>(&entry, 1), nullptr);
  Watch(std::span<const pollfd>(&entry, 1),
        [on_ready = std::move(on_ready)](std::span<const pollfd> fds) { on_ready(fds[0].revents); });
}

void Poller::Watch(std::span<const pollfd> fds, OnGroupReady on_ready) {
  entries_.push_back({fds_.size(), fds.size(), std::move(on_ready), nullptr});
  fds_.insert(fds_.end(), fds.begin(), fds.end());
}

void Poller::Then(Step step) { entries_.push_back({fds_.size(), 0, nullptr, std::move(step)}); }

void Poller::WakeBy(Clock::time_point when) { deadline_ = deadline_ ? std::min(*deadline_, when) : when; }

void Poller::WakeBy(std::optional<Clock::time_point> when) {
  if (when) WakeBy(*when);
}

int Poller::Wait(const sigset_t* mask) {
  // The round is taken out first: callbacks may register for the next one meanwhile.
  std::vector<pollfd> fds = std::exchange(fds_, {});
  std::vector<Entry> entries = std::exchange(entries_, {});
  const std::optional<Clock::time_point> deadline = std::exchange(deadline_, std::nullopt);
  timespec timeout{};
  if (deadline) {
    const auto left = std::max(Clock::duration::zero(), *deadline - Clock::now());
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(left);
    timeout.tv_sec = seconds.count();
    timeout.tv_nsec = std::chrono::duration_cast<std::chrono::nanoseconds>(left - seconds).count();
  }
  const int ready = PollDistinct(fds, deadline ? &timeout : nullptr, mask);
  if (ready < 0 && errno != EINTR) return -1;
  const int poll_errno = errno;
  for (const Entry& entry : entries) {
    if (entry.step) {
      entry.step();
      continue;
    }
    const std::span<const pollfd> mine(fds.data() + entry.first, entry.count);
    if (ready > 0 && entry.on_ready && std::ranges::any_of(mine, [](const pollfd& p) { return p.revents != 0; })) {
      entry.on_ready(mine);
    }
  }
  errno = poll_errno;
  return ready;
}

}  // namespace mconnect
