#include "mux/ssh/connection_pool.h"

#include <algorithm>
#include <utility>

#include "base/log.h"

namespace mconnect::mux {

ConnectionPool::ConnectionPool(Options options, std::unique_ptr<SshConnection> connection,
                               std::function<std::size_t()> fd_room)
    : options_(std::move(options)),
      fd_room_(std::move(fd_room)),
      driver_(std::move(connection), options_.keepalive, options_.keepalive_count_max),
      reconnector_(options_.connect) {
  driver_.SetOverflow([this](std::unique_ptr<ChannelTask> task) { Overflow(std::move(task)); });
  for (int i = 0; i < kParallelOpens; ++i) openers_.push_back(std::make_unique<Reconnector>(options_.connect));
  if (options_.reconnect) driver_.HoldWhileDown(options_.reconnect_wait);
}

ConnectionPool::~ConnectionPool() = default;

void ConnectionPool::SetInbound(SshDriver::InboundHook hook) {
  inbound_ = std::move(hook);
  driver_.SetInbound(inbound_);
  for (auto& driver : extra_) driver->SetInbound(inbound_);
}

bool ConnectionPool::Idle() const {
  return driver_.busy_channels() == 0 && extra_.empty() && overflow_waiting_.empty();
}

bool ConnectionPool::CheckLink(Clock::time_point now) {
  if (!driver_.dead() || link_ != Link::kUp) return false;
  OnConnectionLost(now);
  return !options_.reconnect;
}

void ConnectionPool::Watch(Poller& poller, Clock::time_point now) {
  WakeFor(poller, now);  // first: it may start a reconnect attempt, whose fd is then watched
  // What arrives on a connection only wakes the loop: Pump, a step of the loop, reads it.
  poller.Watch(driver_.fd(), driver_.PollEvents(), nullptr);
  for (auto& extra : extra_) poller.Watch(extra->fd(), extra->PollEvents(), nullptr);
  if (reconnector_.running()) {
    poller.Watch(reconnector_.fd(), POLLIN, [this](short revents) {
      if (revents & POLLIN) OnReconnectOutcome(Clock::now());
    });
  }
  // Whatever a proxy command wrote to its stderr goes to the log.
  poller.Watch(driver_.connection().stream().errors_fd(), POLLIN, [this](short) {
    for (const auto& line : driver_.connection().stream().TakeErrors()) log::Warn("proxy: {}", line);
  });
  // The openers live as long as the pool: a pointer to one stays good for the round.
  for (auto& opener : openers_) {
    if (!opener->running()) continue;
    poller.Watch(opener->fd(), POLLIN, [this, opener = opener.get()](short revents) {
      if (revents & POLLIN) OnOverflowOpened(*opener);
    });
  }
}

void ConnectionPool::WakeFor(Poller& poller, Clock::time_point now) {
  for (SshDriver* driver : Drivers()) poller.WakeBy(driver->NextDeadline());
  // Opens that queue up are spread over more connections once they have waited a moment.
  for (SshDriver* driver : Drivers()) {
    // (Once past, BalanceOpens has had its look: the opens' own replies wake the loop.)
    if (auto oldest = driver->oldest_unopened(); oldest && *oldest + std::chrono::milliseconds(21) > now) {
      poller.WakeBy(*oldest + std::chrono::milliseconds(21));
    }
  }
  // Overflow connections are checked for idleness, tasks waiting for room for a connection to
  // open (or their client gone), each second.
  if (!extra_.empty() || !overflow_waiting_.empty()) poller.WakeBy(now + std::chrono::seconds(1));
  poller.WakeBy(ScheduleReconnect(now));
}

void ConnectionPool::Balance(Clock::time_point now) {
  BalanceOpens(now);
  PlaceWaiting(now);
}

std::size_t ConnectionPool::RunningOpeners() const {
  return static_cast<std::size_t>(
      std::ranges::count_if(openers_, [](const auto& opener) { return opener->running(); }));
}

std::vector<SshDriver*> ConnectionPool::Drivers() {
  std::vector<SshDriver*> drivers{&driver_};
  for (auto& extra : extra_) drivers.push_back(extra.get());
  return drivers;
}

void ConnectionPool::Pump() {
  // By index: an overflow during a Pump may add a connection.
  driver_.Pump();
  for (std::size_t i = 0; i < extra_.size(); ++i) extra_[i]->Pump();
  // Overflow connections that died, or have been idle a while, go away.
  auto now = Clock::now();
  std::erase_if(extra_, [now](const std::unique_ptr<SshDriver>& driver) {
    bool idle = driver->busy_channels() == 0 && now - driver->last_busy() > std::chrono::seconds(10);
    if (driver->dead() || idle) log::Info("closing an overflow connection ({})", driver->dead() ? "lost" : "idle");
    return driver->dead() || idle;
  });
}

void ConnectionPool::Overflow(std::unique_ptr<ChannelTask> task) {
  for (auto& extra : extra_) {
    if (!extra->full() && !extra->dead()) return extra->Start(std::move(task));
  }
  // Placed by the loop (PlaceWaiting): this runs inside a driver's pump, whose queue must not
  // change under it.
  overflow_waiting_.push_back(std::move(task));
}

bool ConnectionPool::MayOpenAnother(Clock::time_point now) const {
  // A connection costs a socket, and a proxy command's pipes; the fds for them must be there
  // besides the master's own reserve.
  constexpr std::size_t kConnectionFds = 8;
  const auto running = RunningOpeners();
  return now >= next_open_ && extra_.size() + 1 + running < kMaxConnections && running < openers_.size() &&
         fd_room_() >= kConnectionFds;
}

void ConnectionPool::OpenAnotherConnection() {
  for (auto& opener : openers_) {
    if (!opener->running()) return opener->Start();  // strict host key, no person
  }
}

void ConnectionPool::PlaceWaiting(Clock::time_point now) {
  std::erase_if(overflow_waiting_, [](std::unique_ptr<ChannelTask>& task) {
    if (!task->Abandoned()) return false;
    task->Abort("gave up waiting for a channel");
    return true;
  });
  // Session tasks queued on a connection the server has just called full would only be refused
  // there one round trip at a time: they come back to wait here.
  for (SshDriver* driver : Drivers()) {
    if (!driver->full() || driver->unopened() == 0) continue;
    for (auto& task : driver->TakeUnopened(driver->unopened(), true)) overflow_waiting_.push_back(std::move(task));
  }
  if (overflow_waiting_.empty()) return;
  if (link_ != Link::kUp) {
    // The main connection holds them while it is being re-opened (SshDriver::HoldWhileDown).
    for (auto& task : overflow_waiting_) driver_.Start(std::move(task));
    overflow_waiting_.clear();
    return;
  }
  // A forwarded connection's channel (direct-tcpip) is not one MaxSessions counts: it never
  // waits for a session slot, but goes to the live connection with the fewest opens queued.
  std::erase_if(overflow_waiting_, [this](std::unique_ptr<ChannelTask>& task) {
    if (task->UsesSessionChannel()) return false;
    SshDriver* shortest = &driver_;
    for (SshDriver* driver : Drivers()) {
      if (!driver->dead() && driver->unopened() < shortest->unopened()) shortest = driver;
    }
    shortest->Start(std::move(task));
    return true;
  });
  if (overflow_waiting_.empty()) return;
  // First to connections with room and a short queue of opens.
  std::size_t placed = 0;
  for (SshDriver* driver : Drivers()) {
    while (placed < overflow_waiting_.size() && !driver->dead() && !driver->full() && driver->unopened() < kKeepOpens) {
      driver->Start(std::move(overflow_waiting_[placed++]));
    }
  }
  overflow_waiting_.erase(overflow_waiting_.begin(), overflow_waiting_.begin() + static_cast<std::ptrdiff_t>(placed));
  if (overflow_waiting_.empty()) return;
  const auto running = RunningOpeners();
  std::vector<SshDriver*> roomy;
  for (SshDriver* driver : Drivers()) {
    if (!driver->dead() && !driver->full()) roomy.push_back(driver);
  }
  if (!roomy.empty()) {
    // A burst of opens, not a lack of room: connections with room take the rest into their
    // queues, unless one being opened will take them.
    if (running > 0) return;
    for (std::size_t i = 0; i < overflow_waiting_.size(); ++i)
      roomy[i % roomy.size()]->Start(std::move(overflow_waiting_[i]));
    overflow_waiting_.clear();
    return;
  }
  // Every connection is full: as many more as the waiting tasks need, judged by how many
  // sessions the server allowed on one, within the cap and the fds. Past that they wait here
  // until a channel closes somewhere (never refused for lack of room: OpenSSH's client would
  // then log in by itself).
  const std::size_t wanted = (overflow_waiting_.size() + SessionsPerConnection() - 1) / SessionsPerConnection();
  for (std::size_t i = running; i < wanted && MayOpenAnother(now); ++i) OpenAnotherConnection();
}

std::size_t ConnectionPool::SessionsPerConnection() {
  std::size_t most = 0;
  for (SshDriver* driver : Drivers()) {
    if (driver->full()) most = std::max(most, driver->busy_channels());
  }
  return most > 0 ? most : 10;  // sshd's default MaxSessions
}

void ConnectionPool::BalanceOpens(Clock::time_point now) {
  if (link_ != Link::kUp) return;
  // A task that waited this long for its open means the opens really queue up (on loopback
  // one takes well under a millisecond).
  constexpr auto kQueued = std::chrono::milliseconds(20);
  std::vector<std::unique_ptr<ChannelTask>> surplus;
  for (SshDriver* driver : Drivers()) {
    auto oldest = driver->oldest_unopened();
    if (driver->dead() || !oldest || now - *oldest < kQueued || driver->unopened() <= kKeepOpens) continue;
    for (auto& task : driver->TakeUnopened(driver->unopened() - kKeepOpens)) surplus.push_back(std::move(task));
  }
  if (surplus.empty()) return;
  // To connections with room in their queue, then to the ones being opened.
  for (SshDriver* driver : Drivers()) {
    while (!surplus.empty() && !driver->dead() && !driver->full() && driver->unopened() < kKeepOpens) {
      driver->Start(std::move(surplus.back()));
      surplus.pop_back();
    }
  }
  if (surplus.empty()) return;
  for (auto& task : surplus) overflow_waiting_.push_back(std::move(task));
  const auto running = RunningOpeners();
  const std::size_t wanted =
      std::min<std::size_t>(openers_.size(), (overflow_waiting_.size() + kKeepOpens) / (kKeepOpens + 1));
  for (std::size_t i = running; i < wanted && extra_.size() + 1 + i < kMaxBurstConnections && MayOpenAnother(now);
       ++i) {
    OpenAnotherConnection();
  }
  PlaceWaiting(now);
}

void ConnectionPool::OnOverflowOpened(Reconnector& opener) {
  auto outcome = opener.Take();
  if (!outcome) return;
  const auto now = Clock::now();
  if (!*outcome) {
    log::Warn("another connection to {} failed: {}", options_.destination, outcome->error().message);
    // Not again at once: a server that refuses connections (MaxStartups) is asked once a second.
    next_open_ = now + std::chrono::seconds(1);
    if (std::ranges::any_of(openers_, [](const auto& other) { return other->running(); })) return;
    if (std::ranges::any_of(Drivers(), [](SshDriver* driver) { return !driver->dead() && !driver->full(); })) {
      return PlaceWaiting(now);
    }
    // Nowhere to go, and no way to make room but waiting: a task that cannot wait hears why.
    if (outcome->error().kind != OpenFailure::kNetwork) {
      auto waiting = std::move(overflow_waiting_);
      overflow_waiting_.clear();
      for (auto& task : waiting)
        task->Abort("another connection for more sessions failed: " + outcome->error().message);
    }
    return;
  }
  auto driver = std::make_unique<SshDriver>(std::move(**outcome), options_.keepalive);
  driver->SetOverflow([this](std::unique_ptr<ChannelTask> next) { Overflow(std::move(next)); });
  driver->SetInbound(inbound_);
  // As many as the server allows on one connection; the rest wait for the next (those opened
  // together share them out).
  const std::size_t share = std::min(overflow_waiting_.size(), SessionsPerConnection());
  for (std::size_t i = 0; i < share; ++i) driver->Start(std::move(overflow_waiting_[i]));
  overflow_waiting_.erase(overflow_waiting_.begin(), overflow_waiting_.begin() + static_cast<std::ptrdiff_t>(share));
  extra_.push_back(std::move(driver));
  ++connections_opened_;
  log::Info("opened overflow connection {} to {}", extra_.size(), options_.destination);
}

void ConnectionPool::OnConnectionLost(Clock::time_point now) {
  link_detail_ = driver_.death();
  if (!options_.reconnect) return;
  link_ = Link::kReconnecting;
  down_since_ = now;
  attempts_ = 0;
  next_attempt_ = now;  // at once: a server that restarted is usually back already
  log::Warn("connection to {} lost ({}); reconnecting, requests wait up to {} s", options_.destination, link_detail_,
            options_.reconnect_wait.count());
}

std::optional<ConnectionPool::Clock::time_point> ConnectionPool::ScheduleReconnect(Clock::time_point now) {
  if (link_ != Link::kReconnecting || reconnector_.running()) return std::nullopt;
  // Someone is waiting: do not make them sit out the backoff, but never retry more than once a
  // second (a refused connect fails in microseconds).
  auto due = next_attempt_;
  if (driver_.waiting()) due = std::min(due, last_attempt_end_ + std::chrono::seconds(1));
  if (now < due) return due;
  ++attempts_;
  log::Info("reconnect attempt {} to {}", attempts_, options_.destination);
  reconnector_.Start();
  if (reconnector_.running()) return std::nullopt;
  // Not even started (out of fds for its eventfd): again after the backoff, not on every turn.
  last_attempt_end_ = now;
  next_attempt_ = now + ReconnectBackoff(attempts_);
  return next_attempt_;
}

void ConnectionPool::OnReconnectOutcome(Clock::time_point now) {
  auto outcome = reconnector_.Take();
  if (!outcome) return;
  last_attempt_end_ = now;
  if (*outcome) {
    driver_.Replace(std::move(**outcome));
    link_ = Link::kUp;
    link_detail_.clear();
    ++reconnects_;
    ++connections_opened_;
    log::Warn("reconnected to {} ({}) after {} s and {} attempt(s)", options_.destination,
              driver_.connection().peer_address().empty() ? "through the proxy" : driver_.connection().peer_address(),
              std::chrono::duration_cast<std::chrono::seconds>(now - down_since_).count(), attempts_);
    return;
  }
  const OpenError& error = outcome->error();
  link_detail_ = error.message;
  if (error.kind == OpenFailure::kNetwork) {
    next_attempt_ = now + ReconnectBackoff(attempts_);
    log::Info("reconnect attempt {} failed: {}; next in {} s", attempts_, error.message,
              ReconnectBackoff(attempts_).count());
    return;
  }
  // A changed host key, or authentication that needs a passphrase or a password: the next
  // `mconnect` sees this in Status and starts a master in the foreground that can ask.
  link_ = Link::kNeedsPerson;
  log::Warn("cannot reconnect to {} without a person: {}", options_.destination, error.message);
  driver_.HoldWhileDown(std::chrono::seconds(0),
                        fmt::format("the connection to {} was lost and re-opening it needs you ({}); run mconnect "
                                    "again to authenticate",
                                    options_.destination, error.message));
}

}  // namespace mconnect::mux
