// A remote command with captured, bounded output and an exit status: what the control
// protocol's Exec, StartMoshServer and the remote-ip `command:` strategy run.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>

#include "mux/channel_task.h"

namespace mconnect::mux {

struct ExecSpec {
  std::string command;
  std::chrono::milliseconds timeout{30000};
  std::size_t max_output = 64 * 1024;  // per stream
  // The output holds a secret (mosh-server's session key). It is read, and handed to `done`,
  // with WipeFrees on (base/secret.h): every copy made of it until `done` returns (the read
  // buffer growing, a parser's temporaries, a reply message and its frame) is cleared when
  // freed, and the stack they used is cleared after. An outcome never reported is cleared with
  // the task. A copy `done` keeps beyond its return is its own to clear.
  bool secret_output = false;
};

struct ExecOutcome {
  std::string out;
  std::string err;
  int exit_status = -1;
  std::string exit_signal;
  bool timed_out = false;
  bool truncated = false;
  std::string error;  // the channel could not be used; exit_status is meaningless then
};

class ExecTask : public ChannelTask {
 public:
  using Done = std::function<void(ExecOutcome)>;

  ExecTask(ExecSpec spec, Done done);
  ~ExecTask() override;

  Step Pump(LIBSSH2_SESSION* session, LIBSSH2_CHANNEL* channel) override;
  bool Abandoned() const override { return Clock::now() >= deadline_; }
  void Abort(const std::string& why) override;
  std::optional<Clock::time_point> Deadline() const override;

 private:
  enum class State { kStarting, kSendingEof, kReading, kClosing, kWaitingClosed };

  // Calls `done_` once, with the outcome so far.
  void Report();
  Step Finish();
  Step Fail(LIBSSH2_SESSION* session, std::string_view what);
  Step PumpState(LIBSSH2_SESSION* session, LIBSSH2_CHANNEL* channel);

  ExecSpec spec_;
  Done done_;
  State state_ = State::kStarting;
  ExecOutcome outcome_;
  Clock::time_point deadline_;
  Clock::time_point close_deadline_;
};

}  // namespace mconnect::mux
