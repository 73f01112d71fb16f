#include "mux/ssh/driver.h"

#include <linux/tcp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <cerrno>

#include "base/log.h"
#include "mux/ssh/byte_stream.h"
#include "mux/ssh/channel_pump.h"

namespace mconnect::mux {
namespace {

bool IsFatal(int code) {
  switch (code) {
    case LIBSSH2_ERROR_SOCKET_SEND:
    case LIBSSH2_ERROR_SOCKET_RECV:
    case LIBSSH2_ERROR_SOCKET_DISCONNECT:
    case LIBSSH2_ERROR_SOCKET_TIMEOUT:
    case LIBSSH2_ERROR_DECRYPT:
    case LIBSSH2_ERROR_KEX_FAILURE:
    case LIBSSH2_ERROR_BAD_USE:
      return true;
    default:
      return false;
  }
}

// The time since boot, suspend included (CLOCK_MONOTONIC leaves suspend out).
std::chrono::nanoseconds BootTime() {
  timespec now{};
  ::clock_gettime(CLOCK_BOOTTIME, &now);
  return std::chrono::seconds(now.tv_sec) + std::chrono::nanoseconds(now.tv_nsec);
}

// A channel the server opened that no session asked for: closed at once, nothing relayed.
class RefusedChannel : public ChannelPump {
 public:
  RefusedChannel() : ChannelPump(std::make_shared<ChannelPipes>()) { pipes_->client_gone = true; }
  bool counts_as_busy() const override { return false; }

 protected:
  Step Setup(LIBSSH2_SESSION*, LIBSSH2_CHANNEL*) override { return Step::kFinished; }
};

// Late or asleep by more than this counts as a pause (the loop itself is never this late).
constexpr auto kPauseSlack = std::chrono::seconds(5);
// After a pause, the server has this long (at most its usual silence) to answer the probe.
constexpr auto kProbeWindow = std::chrono::seconds(15);

}  // namespace

SshDriver::SshDriver(std::unique_ptr<SshConnection> connection, std::chrono::seconds keepalive_interval,
                     int keepalive_count_max)
    : connection_(std::move(connection)),
      session_(connection_->session()),
      keepalive_interval_(keepalive_interval),
      keepalive_count_max_(std::max(0, keepalive_count_max)) {
  StartSession();
}

ssize_t SshDriver::Received(libssh2_socket_t socket, void* buffer, size_t length, int flags, void** abstract) {
  ssize_t n = RecvAckingSmall(socket, buffer, length, flags);
  if (n > 0) {
    auto* driver = static_cast<SshDriver*>(*abstract);
    driver->last_heard_ = Clock::now();
    driver->bytes_heard_ += static_cast<std::uint64_t>(n);
  }
  return n;
}

void SshDriver::AgentOpened(LIBSSH2_SESSION*, LIBSSH2_CHANNEL* channel, void** abstract) {
  static_cast<SshDriver*>(*abstract)->inbound_.emplace_back(Inbound::kAgent, channel);
}

void SshDriver::X11Opened(LIBSSH2_SESSION*, LIBSSH2_CHANNEL* channel, const char*, int, void** abstract) {
  static_cast<SshDriver*>(*abstract)->inbound_.emplace_back(Inbound::kX11, channel);
}

void SshDriver::PlaceInbound() {
  // Each is placed at once, so the queue holds what one round of reading brought: bounded by
  // the server's packets in that round, as any channel's data is.
  auto inbound = std::move(inbound_);
  inbound_.clear();
  for (auto [kind, channel] : inbound) {
    const bool agent = kind == Inbound::kAgent;
    const bool asked = std::any_of(slots_.begin(), slots_.end(), [agent](const Slot& slot) {
      return slot.channel && slot.task && (agent ? slot.task->forwards_agent() : slot.task->forwards_x11());
    });
    if (asked && inbound_hook_) {
      inbound_hook_(*this, kind, channel);
      continue;
    }
    log::Warn("the server opened {} channel, but no session on this connection asked for {}; closed",
              agent ? "an agent" : "an X11", agent ? "agent forwarding" : "X11 forwarding");
    Adopt(channel, std::make_unique<RefusedChannel>());
  }
}

SshDriver::Clock::duration SshDriver::Silence() const {
  // ssh: "Setting a zero ServerAliveCountMax disables connection termination."
  if (keepalive_count_max_ == 0) return Clock::duration::max() / 2;
  return keepalive_interval_ * (keepalive_count_max_ + 1);
}

void SshDriver::StartSession() {
  // Authentication is over, so the session's abstract pointer is free for the reads' hook.
  *libssh2_session_abstract(session_) = this;
  libssh2_session_callback_set2(session_, LIBSSH2_CALLBACK_RECV, reinterpret_cast<libssh2_cb_generic*>(&Received));
  libssh2_session_callback_set2(session_, LIBSSH2_CALLBACK_AUTHAGENT,
                                reinterpret_cast<libssh2_cb_generic*>(&AgentOpened));
  libssh2_session_callback_set2(session_, LIBSSH2_CALLBACK_X11, reinterpret_cast<libssh2_cb_generic*>(&X11Opened));
  libssh2_session_set_blocking(session_, 0);
  libssh2_keepalive_config(session_, 1, static_cast<unsigned>(keepalive_interval_.count()));
  next_keepalive_ = Clock::now() + keepalive_interval_;
  last_heard_ = Clock::now();
  last_check_ = Clock::now();
  last_boot_ = BootTime();
  wake_by_ = Clock::time_point::max();
  probe_ = false;
}

void SshDriver::CheckForPause() {
  const auto now = Clock::now();
  const auto boot = BootTime();
  const auto asleep = (boot - last_boot_) - (now - last_check_);
  // Between two looks the loop either waits in ppoll for what NextDeadline asked, or works on,
  // which takes far less than kPauseSlack: stopped in the middle of a turn counts too.
  const auto expected = wake_by_ == Clock::time_point::max() ? last_check_ : std::max(wake_by_, last_check_);
  const auto late = now - std::min(expected, now);
  last_check_ = now;
  last_boot_ = boot;
  wake_by_ = Clock::time_point::max();
  if (dead() || (late < kPauseSlack && asleep < kPauseSlack)) return;
  const auto paused = std::chrono::duration_cast<std::chrono::seconds>(std::max<Clock::duration>(late, asleep));
  const auto window = std::min<Clock::duration>(Silence(), kProbeWindow);
  log::Warn("the master was {} for {} s; asking the server whether the connection still stands (answer within {} s)",
            late >= kPauseSlack ? "stopped" : "asleep", paused.count(),
            std::chrono::duration_cast<std::chrono::seconds>(window).count());
  // The silence before the pause is forgotten; the answer to the probe decides.
  last_heard_ = now - (Silence() - window);
  next_keepalive_ = now;
  probe_ = true;
}

void SshDriver::Replace(std::unique_ptr<SshConnection> connection) {
  MCONNECT_CHECK(dead());
  // The old session's channels died with it; libssh2 frees them with the session. With its
  // socket shut down, their goodbyes fail at once instead of waiting on a dead path (a
  // non-blocking session_free that hits EAGAIN gives up half way).
  spare_.release();
  inbound_.clear();
  ::shutdown(connection_->fd(), SHUT_RDWR);
  connection_ = std::move(connection);
  session_ = connection_->session();
  opening_ = nullptr;
  send_owner_ = nullptr;
  full_ = false;
  death_.clear();
  StartSession();
}

void SshDriver::HoldWhileDown(std::chrono::seconds budget, std::string refusal) {
  hold_ = budget;
  refusal_ = std::move(refusal);
}

bool SshDriver::waiting() const {
  return std::any_of(slots_.begin(), slots_.end(), [](const Slot& slot) { return !slot.channel; });
}

void SshDriver::PumpDown() {
  auto jobs = std::move(jobs_);
  jobs_.clear();
  for (auto& job : jobs) job->Abort(death_);
  auto now = Clock::now();
  for (auto it = slots_.begin(); it != slots_.end();) {
    std::string why;
    if (it->channel) {
      why = death_;
    } else if (!refusal_.empty()) {
      why = refusal_;
    } else if (hold_.count() == 0) {
      why = death_;
    } else if (it->task->Abandoned() || now - std::max(it->queued, died_at_) >= hold_) {
      why = fmt::format("the connection was lost ({}) and is not back after {} s", death_, hold_.count());
    }
    if (why.empty()) {
      ++it;
      continue;
    }
    it->channel.release();
    auto task = std::move(it->task);
    it = slots_.erase(it);
    task->Abort(why);  // may queue new tasks: slots_ is a list, `it` stays valid
  }
}

SshDriver::~SshDriver() {
  // Channels go with the session; no task gets a callback during destruction.
  for (auto& slot : slots_) slot.channel.release();
  spare_.release();
}

void SshDriver::Start(std::unique_ptr<ChannelTask> task) {
  slots_.push_back(Slot{std::move(task), nullptr});
  ++tasks_started_;
}

void SshDriver::StartJob(std::unique_ptr<SessionJob> job) { jobs_.push_back(std::move(job)); }

void SshDriver::Adopt(LIBSSH2_CHANNEL* channel, std::unique_ptr<ChannelTask> task) {
  slots_.push_back(Slot{std::move(task), Ssh2Channel(channel)});
  ++tasks_started_;
}

std::size_t SshDriver::busy_channels() const {
  return static_cast<std::size_t>(
      std::count_if(slots_.begin(), slots_.end(), [](const Slot& slot) { return slot.task->counts_as_busy(); }));
}

std::size_t SshDriver::unopened() const {
  return static_cast<std::size_t>(std::count_if(slots_.begin(), slots_.end(), [this](const Slot& slot) {
    return !slot.channel && opening_ != &slot;
  }));
}

std::optional<SshDriver::Clock::time_point> SshDriver::oldest_unopened() const {
  for (const auto& slot : slots_) {
    if (!slot.channel && opening_ != &slot) return slot.queued;
  }
  return std::nullopt;
}

std::vector<std::unique_ptr<ChannelTask>> SshDriver::TakeUnopened(std::size_t count, bool sessions_only) {
  std::vector<std::unique_ptr<ChannelTask>> taken;
  for (auto it = slots_.end(); it != slots_.begin() && taken.size() < count;) {
    --it;
    if (it->channel || opening_ == &*it || (sessions_only && !it->task->UsesSessionChannel())) continue;
    taken.push_back(std::move(it->task));
    it = slots_.erase(it);
    --tasks_started_;  // counted again where it runs
  }
  return taken;
}

short SshDriver::PollEvents() const {
  if (dead()) return 0;
  short events = 0;
  int directions = libssh2_session_block_directions(session_);
  if (directions & LIBSSH2_SESSION_BLOCK_OUTBOUND) events |= POLLOUT;
  // Reading is only useful when some call will consume what arrives.
  if (!slots_.empty() || !jobs_.empty() || spare_ || (directions & LIBSSH2_SESSION_BLOCK_INBOUND)) events |= POLLIN;
  return events;
}

std::optional<SshDriver::Clock::time_point> SshDriver::NextDeadline() const {
  if (dead()) {
    std::optional<Clock::time_point> next;
    for (const auto& slot : slots_) {
      if (slot.channel) continue;
      auto expiry = std::max(slot.queued, died_at_) + hold_;
      if (auto deadline = slot.task->Deadline()) expiry = std::min(expiry, *deadline);
      next = next ? std::min(*next, expiry) : expiry;
    }
    return next;
  }
  Clock::time_point next = pump_again_ ? Clock::now() : std::min(next_keepalive_, last_heard_ + Silence());
  for (const auto& slot : slots_) {
    if (auto deadline = slot.task->Deadline()) next = std::min(next, *deadline);
  }
  wake_by_ = std::min(wake_by_, next);
  return next;
}

void SshDriver::Die(std::string message) {
  if (dead()) return;
  death_ = std::move(message);
  died_at_ = Clock::now();
  log::Error("SSH connection lost: {}", death_);
}

void SshDriver::CheckFatal() {
  if (IsFatal(libssh2_session_last_errno(session_))) Die(Ssh2LastError(session_));
}

SshDriver::Step SshDriver::Blocked(const void* who) {
  if (libssh2_session_block_directions(session_) & LIBSSH2_SESSION_BLOCK_OUTBOUND) send_owner_ = who;
  return Step::kBlocked;
}

// Any libssh2 call may read the socket and take in packets for other channels: a later turn in
// the round (the spare channel's open, a keepalive) can take the window adjust or the data an
// earlier task was waiting for, and then the socket stays quiet and nobody wakes that task (a
// hang seen under valgrind: `ssh -S lab cat` with its stdin full, the SSH socket quiet both ways,
// until the next keepalive). So a round that heard from the server is followed by another, a few at most; after that the
// loop comes straight back (NextDeadline).
void SshDriver::Pump() {
  CheckForPause();
  pump_again_ = false;
  for (int round = 0; round < 4; ++round) {
    const std::uint64_t heard = bytes_heard_;
    PumpRound();
    if (bytes_heard_ == heard || dead()) return;
  }
  pump_again_ = true;
}

void SshDriver::PumpRound() {
  if (dead()) return PumpDown();
  if (!slots_.empty()) last_busy_ = Clock::now();
  if (Clock::now() - last_heard_ >= Silence()) {
    Die(fmt::format("no answer from the server for {} s (keepalive every {} s, {} unanswered allowed)",
                    std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - last_heard_).count(),
                    keepalive_interval_.count(), keepalive_count_max_));
    return PumpDown();
  }
  // The send owner goes first and alone until its call gets through.
  if (send_owner_ == &next_keepalive_) {
    send_owner_ = nullptr;
    if (PumpKeepalive() == Step::kBlocked && send_owner_ != nullptr) return;
  } else if (send_owner_ == &spare_) {
    send_owner_ = nullptr;
    if (PumpSpare() == Step::kBlocked && send_owner_ != nullptr) return;
  }
  // An open in flight for the spare must be carried through before anyone else can open.
  if (opening_ == &spare_ && send_owner_ == nullptr) PumpSpare();
  for (auto it = slots_.begin(); it != slots_.end();) {
    if (send_owner_ != nullptr && send_owner_ != &*it) {
      ++it;
      continue;
    }
    send_owner_ = nullptr;
    bool alive = PumpSlot(*it);
    if (dead()) return PumpDown();
    if (!alive) {
      // A channel closed: there may be room again (not so when it was just refused for room).
      if (it->task) full_ = false;
      it = slots_.erase(it);
      continue;
    }
    if (send_owner_ == &*it) return;
    ++it;
  }
  PlaceInbound();
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    if (send_owner_ != nullptr && send_owner_ != it->get()) {
      ++it;
      continue;
    }
    send_owner_ = nullptr;
    Step step;
    do {
      step = (*it)->Pump(session_);
    } while (step == Step::kProgress);
    if (dead()) return PumpDown();
    if (step == Step::kFinished) {
      CheckFatal();
      it = jobs_.erase(it);
      continue;
    }
    Blocked(it->get());
    if (send_owner_ == it->get()) return;
    ++it;
  }
  if (send_owner_ == nullptr) PumpSpare();
  if (send_owner_ == nullptr && Clock::now() >= next_keepalive_) PumpKeepalive();
  PlaceInbound();
  if (dead()) PumpDown();
}

bool SshDriver::PumpSlot(Slot& slot) {
  if (!slot.channel) {
    if (opening_ != &slot && slot.task->Abandoned()) {
      slot.task->Abort("gave up waiting for a channel");
      return false;
    }
    if (spare_ && opening_ != &slot && slot.task->UsesSessionChannel()) {
      slot.channel = std::move(spare_);
    } else {
      if (opening_ != nullptr && opening_ != &slot) return true;  // wait for the open slot
      if (opening_ == nullptr) open_window_ = ChannelWindow();
      opening_ = &slot;
      LIBSSH2_CHANNEL* channel = slot.task->OpenChannel(session_, open_window_);
      if (channel == nullptr) {
        if (libssh2_session_last_errno(session_) == LIBSSH2_ERROR_EAGAIN) {
          Blocked(&slot);
          return true;
        }
        opening_ = nullptr;
        if (libssh2_session_last_errno(session_) == LIBSSH2_ERROR_CHANNEL_FAILURE && overflow_ &&
            slot.task->UsesSessionChannel()) {
          log::Info("the server refused another session channel (MaxSessions?); using another connection");
          full_ = true;
          overflow_(std::move(slot.task));
          return false;
        }
        std::string why = "the server refused the channel: " + Ssh2LastError(session_);
        CheckFatal();
        slot.task->Abort(why);
        return false;
      }
      opening_ = nullptr;
      slot.channel.reset(channel);
    }
  }
  while (true) {
    Step step = slot.task->Pump(session_, slot.channel.get());
    switch (step) {
      case Step::kProgress: continue;
      case Step::kBlocked:
        Blocked(&slot);
        return true;
      case Step::kFinished:
        CheckFatal();
        return false;
    }
  }
}

SshDriver::Step SshDriver::PumpKeepalive() {
  int seconds = 0;
  // libssh2 sends only when its own interval has passed since the last keepalive (wall-clock
  // seconds): a probe shortens it for this one call (2 s, the least libssh2 takes; a pause is
  // longer).
  if (probe_) libssh2_keepalive_config(session_, 1, 2);
  int rc = libssh2_keepalive_send(session_, &seconds);
  if (probe_) {
    libssh2_keepalive_config(session_, 1, static_cast<unsigned>(keepalive_interval_.count()));
    if (rc != LIBSSH2_ERROR_EAGAIN) probe_ = false;
    seconds = static_cast<int>(keepalive_interval_.count());
  }
  if (rc == LIBSSH2_ERROR_EAGAIN) return Blocked(&next_keepalive_);
  if (rc != 0) {
    Die("keepalive failed: " + Ssh2LastError(session_));
    return Step::kFinished;
  }
  next_keepalive_ = Clock::now() + std::chrono::seconds(std::max(1, seconds));
  return Step::kFinished;
}

std::uint32_t SshDriver::ChannelWindow() const {
  // A channel moves at most one window per round trip, so the window is sized from the path's
  // delay: enough for kWindowRate at the smoothed RTT TCP measured, never below libssh2's
  // 2 MiB default (loopback and LANs: a larger window only costs memory and CPU there) and never
  // above 16 MiB (the most a stalled reader can make the master hold for one channel). Through a
  // proxy command there is no TCP socket to ask: the default.
  constexpr std::uint64_t kDefault = LIBSSH2_CHANNEL_WINDOW_DEFAULT;
  constexpr std::uint64_t kMax = 16 << 20;
  constexpr std::uint64_t kWindowRate = 160 << 20;  // bytes per second
  tcp_info info{};
  socklen_t length = sizeof info;
  if (::getsockopt(fd(), IPPROTO_TCP, TCP_INFO, &info, &length) != 0 || info.tcpi_rtt == 0) return kDefault;
  const std::uint64_t window = kWindowRate * info.tcpi_rtt / 1'000'000;
  return static_cast<std::uint32_t>(std::clamp(window, kDefault, kMax));
}

SshDriver::Step SshDriver::PumpSpare() {
  if (!spare_) {
    // Start an open only when no task waits for the single open slot; one already in flight
    // must be carried through whoever waits, or the slot is never freed.
    bool someone_waits =
        std::any_of(slots_.begin(), slots_.end(), [](const Slot& slot) { return !slot.channel; });
    if (opening_ != &spare_ && (someone_waits || opening_ != nullptr)) return Step::kBlocked;
    // The server refused a channel for lack of room: asking again before one closes only earns
    // another refusal a round trip later, over and over.
    if (opening_ != &spare_ && full_) return Step::kBlocked;
    if (opening_ == nullptr) open_window_ = ChannelWindow();
    opening_ = &spare_;
    LIBSSH2_CHANNEL* channel = libssh2_channel_open_ex(session_, "session", sizeof "session" - 1, open_window_,
                                                       LIBSSH2_CHANNEL_PACKET_DEFAULT, nullptr, 0);
    if (channel == nullptr) {
      if (libssh2_session_last_errno(session_) == LIBSSH2_ERROR_EAGAIN) return Blocked(&spare_);
      opening_ = nullptr;
      if (libssh2_session_last_errno(session_) == LIBSSH2_ERROR_CHANNEL_FAILURE) {
        log::Debug("no spare channel for now: {}", Ssh2LastError(session_));
        full_ = true;
        return Step::kFinished;
      }
      log::Warn("could not open a spare channel: {}", Ssh2LastError(session_));
      CheckFatal();
      return Step::kFinished;
    }
    opening_ = nullptr;
    spare_.reset(channel);
    return Step::kProgress;
  }
  // A read on the spare channel makes libssh2 process whatever arrived on the socket.
  char buffer[256];
  ssize_t n = libssh2_channel_read(spare_.get(), buffer, sizeof buffer);
  if (n == LIBSSH2_ERROR_EAGAIN) return Blocked(&spare_);
  if (n < 0 || libssh2_channel_eof(spare_.get())) {
    if (n < 0 && IsFatal(static_cast<int>(n))) {
      Die(Ssh2LastError(session_));
      return Step::kFinished;
    }
    log::Info("the server closed the spare channel; it will be reopened");
    spare_.reset();
  }
  return Step::kProgress;
}

}  // namespace mconnect::mux
