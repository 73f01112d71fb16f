#include "mux/ssh/exec_task.h"

#include <algorithm>
#include <charconv>
#include <string>
#include <string_view>
#include <utility>

#include "base/log.h"
#include "base/secret.h"
#include "base/ssh2.h"
#include "mux/ssh/channel_end.h"

namespace mconnect::mux {
namespace {

// A remote process that ignores the channel close must not keep the slot forever.
constexpr auto kCloseGrace = std::chrono::seconds(3);
constexpr std::string_view kGroupTag = "mconnect-pgid:";

void AppendBounded(std::string& sink, const char* data, std::size_t length, std::size_t limit, bool& truncated) {
  std::size_t room = limit - std::min(limit, sink.size());
  if (length > room) truncated = true;
  sink.append(data, std::min(length, room));
}

}  // namespace

ExecTask::ExecTask(ExecSpec spec, Done done)
    : spec_(std::move(spec)),
      command_(ProcessGroupCommand(spec_.command)),
      done_(std::move(done)),
      deadline_(Clock::now() + spec_.timeout) {}

ExecTask::~ExecTask() {
  if (!spec_.secret_output) return;
  Wipe(outcome_.out);
  Wipe(outcome_.err);
}

std::string ProcessGroupCommand(const std::string& command) {
  return fmt::format("sh -c 'echo {}$PPID >&2'; {}", kGroupTag, command);
}

std::string EndProcessGroupCommand(std::int64_t group) {
  return fmt::format("sh -c 'kill -TERM -{0} 2>/dev/null; sleep 1; kill -KILL -{0} 2>/dev/null; true'", group);
}

std::optional<ChannelTask::Clock::time_point> ExecTask::Deadline() const {
  return state_ >= State::kClosing ? close_deadline_ : deadline_;
}

void ExecTask::Abort(const std::string& why) {
  if (Clock::now() >= deadline_) {
    outcome_.timed_out = true;
    outcome_.unanswered = true;  // it never had a channel
  } else {
    outcome_.error = why;
  }
  Report();
}

void ExecTask::Report() {
  if (!done_) return;
  WipeFrees wipe_frees(spec_.secret_output);
  std::exchange(done_, nullptr)(std::move(outcome_));
  if (spec_.secret_output) WipeStack();
}

ChannelTask::Step ExecTask::Finish() {
  Report();
  return Step::kFinished;
}

ChannelTask::Step ExecTask::After(int rc, LIBSSH2_SESSION* session, std::string_view what, State next) {
  if (rc == LIBSSH2_ERROR_EAGAIN) return Step::kBlocked;
  if (rc != 0) return Fail(session, what);
  state_ = next;
  return Step::kProgress;
}

ChannelTask::Step ExecTask::Fail(LIBSSH2_SESSION* session, std::string_view what) {
  outcome_.error = fmt::format("{}: {}", what, Ssh2LastError(session));
  return Finish();
}

ChannelTask::Step ExecTask::Pump(LIBSSH2_SESSION* session, LIBSSH2_CHANNEL* channel) {
  if (!spec_.secret_output) return PumpState(session, channel);
  // The output passes through blocks freed on the way (libssh2's own are cleared by its
  // allocator, mux/ssh/auth.h; a growing string's are by WipeFrees) and through the stack.
  WipeFrees wipe_frees;
  Step step = PumpState(session, channel);
  WipeStack();
  return step;
}

void ExecTask::TakeProcessGroup() {
  // The line is the first the sh writes; the remote user's shell startup files may have written
  // before it. Until it is complete, it stays where it is.
  std::string& err = outcome_.err;
  const std::size_t at = err.find(kGroupTag);
  if (at == std::string::npos || (at > 0 && err[at - 1] != '\n')) return;
  const std::size_t end = err.find('\n', at);
  if (end == std::string::npos) return;
  std::int64_t group = 0;
  const std::string_view digits(err.data() + at + kGroupTag.size(), end - at - kGroupTag.size());
  auto [last, problem] = std::from_chars(digits.data(), digits.data() + digits.size(), group);
  // Only a plausible pid is ever killed: never 0 or 1 (kill -0 is the killer's own group).
  if (problem == std::errc() && last == digits.data() + digits.size() && group > 1) outcome_.process_group = group;
  err.erase(at, end + 1 - at);
  group_pending_ = false;
}

ChannelTask::Step ExecTask::PumpState(LIBSSH2_SESSION* session, LIBSSH2_CHANNEL* channel) {
  auto now = Clock::now();
  if (state_ < State::kClosing && now >= deadline_) {
    // Answer at the deadline; closing the channel (which a stuck command may drag out) goes
    // on in the background, and the owner ends the command (process_group).
    outcome_.timed_out = true;
    // Still waiting for the exec request's reply: nothing was heard for this command at all,
    // unless the reply is there now, unread (a last look, as the pump would have had).
    outcome_.unanswered =
        state_ == State::kStarting && libssh2_channel_exec(channel, command_.c_str()) == LIBSSH2_ERROR_EAGAIN;
    Report();
    state_ = State::kClosing;
    close_deadline_ = now + kCloseGrace;
  }
  if (state_ >= State::kClosing && now >= close_deadline_) {
    log::Warn("command did not close within {} s; dropping its channel", kCloseGrace.count());
    return Finish();
  }

  switch (state_) {
    case State::kStarting:
      return After(libssh2_channel_exec(channel, command_.c_str()), session, "the server refused to run the command",
                   State::kSendingEof);
    case State::kSendingEof:
      return After(libssh2_channel_send_eof(channel), session, "cannot send EOF", State::kReading);
    case State::kReading: {
      char buffer[16384];
      bool got = false;
      bool failed = false;
      for (int stream : {0, SSH_EXTENDED_DATA_STDERR}) {
        ssize_t n = libssh2_channel_read_ex(channel, stream, buffer, sizeof buffer);
        if (n == LIBSSH2_ERROR_EAGAIN || n == 0) continue;
        if (n < 0) {
          failed = true;
          break;
        }
        got = true;
        AppendBounded(stream == 0 ? outcome_.out : outcome_.err, buffer, static_cast<std::size_t>(n),
                      spec_.max_output, outcome_.truncated);
        if (stream != 0 && group_pending_) TakeProcessGroup();
      }
      if (spec_.secret_output) Wipe(buffer, sizeof buffer);
      if (failed) return Fail(session, "reading the command's output failed");
      if (got) return Step::kProgress;
      if (!libssh2_channel_eof(channel)) return Step::kBlocked;
      state_ = State::kClosing;
      close_deadline_ = now + kCloseGrace;
      return Step::kProgress;
    }
    case State::kClosing:
      return After(libssh2_channel_close(channel), session, "closing the channel failed", State::kWaitingClosed);
    case State::kWaitingClosed: {
      // Output that still arrives (a timed-out command's) is discarded so the close is seen.
      if (!WaitClosedDiscarding(channel)) return Step::kBlocked;
      ChannelExit exit = ReadChannelExit(session, channel);
      outcome_.exit_status = exit.status;
      outcome_.exit_signal = std::move(exit.signal);
      return Finish();
    }
  }
  return Finish();
}

}  // namespace mconnect::mux
