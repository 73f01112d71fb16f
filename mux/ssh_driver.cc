#include "mux/ssh_driver.h"

#include <poll.h>

#include <algorithm>

#include "base/log.h"

namespace mconnect::mux {

struct SshDriver::ExecOp {
  enum class State { kQueued, kOpening, kStarting, kSendingEof, kReading, kClosing, kWaitingClosed };

  ExecSpec spec;
  ExecDone done;
  State state = State::kQueued;
  Ssh2Channel channel;
  ExecOutcome outcome;
  Clock::time_point deadline;
  Clock::time_point close_deadline;
};

namespace {

// A remote process that ignores the channel close must not keep the master waiting forever.
constexpr auto kCloseGrace = std::chrono::seconds(3);

void AppendBounded(std::string& sink, const char* data, std::size_t length, std::size_t limit, bool& truncated) {
  std::size_t room = limit - std::min(limit, sink.size());
  if (length > room) truncated = true;
  sink.append(data, std::min(length, room));
}

}  // namespace

SshDriver::SshDriver(std::unique_ptr<SshConnection> connection, std::chrono::seconds keepalive_interval)
    : connection_(std::move(connection)),
      session_(connection_->session()),
      keepalive_interval_(keepalive_interval),
      next_keepalive_(Clock::now() + keepalive_interval) {
  libssh2_session_set_blocking(session_, 0);
  libssh2_keepalive_config(session_, 1, static_cast<unsigned>(keepalive_interval.count()));
}

SshDriver::~SshDriver() {
  // Channels are freed with the session; finish nobody's callback during destruction.
  for (auto& op : ops_) op->channel.release();
  spare_.release();
}

void SshDriver::Exec(ExecSpec spec, ExecDone done) {
  auto op = std::make_unique<ExecOp>();
  op->deadline = Clock::now() + spec.timeout;
  op->spec = std::move(spec);
  op->done = std::move(done);
  if (dead()) op->outcome.error = death_;
  ops_.push_back(std::move(op));
  ++execs_started_;
}

short SshDriver::PollEvents() const {
  if (dead()) return 0;
  short events = 0;
  int directions = libssh2_session_block_directions(session_);
  if (directions & LIBSSH2_SESSION_BLOCK_OUTBOUND) events |= POLLOUT;
  // Reading is only useful when some call will consume what arrives.
  if (!ops_.empty() || spare_ || (directions & LIBSSH2_SESSION_BLOCK_INBOUND)) events |= POLLIN;
  return events;
}

std::optional<SshDriver::Clock::time_point> SshDriver::NextDeadline() const {
  if (dead()) return std::nullopt;
  Clock::time_point next = next_keepalive_;
  for (const auto& op : ops_) {
    next = std::min(next, op->state >= ExecOp::State::kClosing ? op->close_deadline : op->deadline);
  }
  return next;
}

bool SshDriver::IsFatal(int code) const {
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

void SshDriver::Die(std::string message) {
  if (dead()) return;
  death_ = std::move(message);
  log::Error("SSH connection lost: {}", death_);
}

SshDriver::Step SshDriver::Blocked(const void* who) {
  if (libssh2_session_block_directions(session_) & LIBSSH2_SESSION_BLOCK_OUTBOUND) send_owner_ = who;
  return Step::kBlocked;
}

SshDriver::Step SshDriver::FailOp(ExecOp& op, std::string message) {
  int code = libssh2_session_last_errno(session_);
  if (IsFatal(code)) Die(Ssh2LastError(session_));
  op.outcome.error = std::move(message);
  return Step::kFinished;
}

void SshDriver::Pump() {
  if (dead()) {
    // Everything still queued fails with the reason, once.
    auto ops = std::move(ops_);
    for (auto& op : ops) {
      op->channel.release();
      op->outcome.error = death_;
      op->done(std::move(op->outcome));
    }
    return;
  }
  // The send owner goes first and alone until its call gets through.
  if (send_owner_ == &next_keepalive_) {
    send_owner_ = nullptr;
    if (PumpKeepalive() == Step::kBlocked && send_owner_ != nullptr) return;
  } else if (send_owner_ == &spare_) {
    send_owner_ = nullptr;
    if (PumpSpare() == Step::kBlocked && send_owner_ != nullptr) return;
  }
  if (opening_ == &spare_ && send_owner_ == nullptr) PumpSpare();
  for (auto it = ops_.begin(); it != ops_.end();) {
    ExecOp& op = **it;
    if (send_owner_ != nullptr && send_owner_ != &op) {
      ++it;
      continue;
    }
    send_owner_ = nullptr;
    Step step;
    do {
      step = PumpOp(op);
    } while (step == Step::kProgress);
    if (step == Step::kFinished) {
      if (opening_ == &op) opening_ = nullptr;
      auto finished = std::move(*it);
      it = ops_.erase(it);
      finished->done(std::move(finished->outcome));
      if (dead()) return Pump();
      continue;
    }
    if (send_owner_ == &op) return;
    ++it;
  }
  if (send_owner_ == nullptr) PumpSpare();
  if (send_owner_ == nullptr && Clock::now() >= next_keepalive_) PumpKeepalive();
  if (dead()) Pump();
}

SshDriver::Step SshDriver::PumpKeepalive() {
  int seconds = 0;
  int rc = libssh2_keepalive_send(session_, &seconds);
  if (rc == LIBSSH2_ERROR_EAGAIN) return Blocked(&next_keepalive_);
  if (rc != 0) {
    Die("keepalive failed: " + Ssh2LastError(session_));
    return Step::kFinished;
  }
  next_keepalive_ = Clock::now() + std::chrono::seconds(std::max(1, seconds));
  return Step::kFinished;
}

SshDriver::Step SshDriver::PumpSpare() {
  if (!spare_) {
    // Start an open only when no op waits for the single open slot; one already in flight must
    // be carried through whoever waits, or the slot is never freed.
    bool someone_waits = std::any_of(ops_.begin(), ops_.end(),
                                     [](const auto& op) { return op->state == ExecOp::State::kQueued; });
    if (opening_ != &spare_ && (someone_waits || opening_ != nullptr)) return Step::kBlocked;
    opening_ = &spare_;
    LIBSSH2_CHANNEL* channel = libssh2_channel_open_session(session_);
    if (channel == nullptr) {
      int code = libssh2_session_last_errno(session_);
      if (code == LIBSSH2_ERROR_EAGAIN) return Blocked(&spare_);
      opening_ = nullptr;
      if (IsFatal(code)) Die(Ssh2LastError(session_));
      log::Warn("could not open a spare channel: {}", Ssh2LastError(session_));
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

SshDriver::Step SshDriver::PumpOp(ExecOp& op) {
  using State = ExecOp::State;
  auto now = Clock::now();
  if (!op.outcome.error.empty()) return Step::kFinished;
  if (op.state < State::kClosing && now >= op.deadline && !op.outcome.timed_out) {
    op.outcome.timed_out = true;
    if (op.state == State::kQueued) return Step::kFinished;
    if (op.state != State::kOpening) {
      op.state = State::kClosing;
      op.close_deadline = now + kCloseGrace;
    }
  }
  if (op.state >= State::kClosing && now >= op.close_deadline) {
    log::Warn("command did not close within {} s; dropping its channel", kCloseGrace.count());
    return Step::kFinished;  // the channel is freed with the op
  }

  switch (op.state) {
    case State::kQueued:
      if (spare_) {
        op.channel = std::move(spare_);
        op.state = State::kStarting;
        return Step::kProgress;
      }
      if (opening_ != nullptr) return Step::kBlocked;
      opening_ = &op;
      op.state = State::kOpening;
      [[fallthrough]];
    case State::kOpening: {
      LIBSSH2_CHANNEL* channel = libssh2_channel_open_session(session_);
      if (channel == nullptr) {
        if (libssh2_session_last_errno(session_) == LIBSSH2_ERROR_EAGAIN) return Blocked(&op);
        opening_ = nullptr;
        return FailOp(op, "the server refused a session channel: " + Ssh2LastError(session_));
      }
      opening_ = nullptr;
      op.channel.reset(channel);
      if (op.outcome.timed_out) {
        op.state = State::kClosing;
        op.close_deadline = now + kCloseGrace;
      } else {
        op.state = State::kStarting;
      }
      return Step::kProgress;
    }
    case State::kStarting: {
      int rc = libssh2_channel_exec(op.channel.get(), op.spec.command.c_str());
      if (rc == LIBSSH2_ERROR_EAGAIN) return Blocked(&op);
      if (rc != 0) return FailOp(op, "the server refused to run the command: " + Ssh2LastError(session_));
      op.state = State::kSendingEof;
      return Step::kProgress;
    }
    case State::kSendingEof: {
      int rc = libssh2_channel_send_eof(op.channel.get());
      if (rc == LIBSSH2_ERROR_EAGAIN) return Blocked(&op);
      if (rc != 0) return FailOp(op, "cannot send EOF: " + Ssh2LastError(session_));
      op.state = State::kReading;
      return Step::kProgress;
    }
    case State::kReading: {
      char buffer[16384];
      bool blocked = true;
      for (int stream : {0, SSH_EXTENDED_DATA_STDERR}) {
        ssize_t n = libssh2_channel_read_ex(op.channel.get(), stream, buffer, sizeof buffer);
        if (n == LIBSSH2_ERROR_EAGAIN) continue;
        if (n < 0) return FailOp(op, "reading the command's output failed: " + Ssh2LastError(session_));
        if (n > 0) {
          blocked = false;
          AppendBounded(stream == 0 ? op.outcome.out : op.outcome.err, buffer, static_cast<std::size_t>(n),
                        op.spec.max_output, op.outcome.truncated);
        }
      }
      if (!blocked) return Step::kProgress;
      if (!libssh2_channel_eof(op.channel.get())) return Blocked(&op);
      op.state = State::kClosing;
      op.close_deadline = now + kCloseGrace;
      return Step::kProgress;
    }
    case State::kClosing: {
      int rc = libssh2_channel_close(op.channel.get());
      if (rc == LIBSSH2_ERROR_EAGAIN) return Blocked(&op);
      if (rc != 0) return FailOp(op, "closing the channel failed: " + Ssh2LastError(session_));
      op.state = State::kWaitingClosed;
      return Step::kProgress;
    }
    case State::kWaitingClosed: {
      int rc = libssh2_channel_wait_closed(op.channel.get());
      if (rc == LIBSSH2_ERROR_EAGAIN) {
        // Drain what still arrives so the close can be seen.
        char sink[4096];
        while (libssh2_channel_read_ex(op.channel.get(), 0, sink, sizeof sink) > 0) {
        }
        while (libssh2_channel_read_ex(op.channel.get(), SSH_EXTENDED_DATA_STDERR, sink, sizeof sink) > 0) {
        }
        return Blocked(&op);
      }
      op.outcome.exit_status = libssh2_channel_get_exit_status(op.channel.get());
      char* signal = nullptr;
      std::size_t signal_length = 0;
      if (libssh2_channel_get_exit_signal(op.channel.get(), &signal, &signal_length, nullptr, nullptr, nullptr,
                                          nullptr) == 0 &&
          signal != nullptr) {
        op.outcome.exit_signal.assign(signal, signal_length);
        libssh2_free(session_, signal);
      }
      return Step::kFinished;
    }
  }
  return Step::kFinished;
}

}  // namespace mconnect::mux
