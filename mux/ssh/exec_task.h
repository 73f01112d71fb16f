// A remote command with captured, bounded output and an exit status: what the control
// protocol's Exec, StartMoshServer and the remote-ip `command:` strategy run.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "mux/ssh/channel_task.h"

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
  // With timed_out: the server never answered, not even the request to run the command (no
  // channel, or no reply to the exec request), so the command may never have started. The
  // connection is to blame then, not the command.
  bool unanswered = false;
  bool truncated = false;
  std::string error;  // the channel could not be used; exit_status is meaningless then
  // The command's process group on the server (0: not known, e.g. it never started); with
  // timed_out, EndProcessGroupCommand(process_group) ends what it left running.
  std::int64_t process_group = 0;
};

// Runs `spec.command` so that the process group it runs in on the server is known (see
// ProcessGroupCommand): a command that outlives its timeout is answered for at once, and its
// owner can then end it there with EndProcessGroupCommand, on a channel of its own. (Closing the
// channel does not end a command; nor does a `signal` request reliably: OpenSSH's sshd refuses
// those for root's sessions, which it runs without privilege separation.)
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
  // A libssh2 call's return code as a step: again later, failed (`what`), or done and on to `next`.
  Step After(int rc, LIBSSH2_SESSION* session, std::string_view what, State next);
  Step PumpState(LIBSSH2_SESSION* session, LIBSSH2_CHANNEL* channel);
  // Moves the process group's line out of the command's stderr once it is there.
  void TakeProcessGroup();

  ExecSpec spec_;
  std::string command_;  // what is run: spec_.command in ProcessGroupCommand
  Done done_;
  State state_ = State::kStarting;
  ExecOutcome outcome_;
  Clock::time_point deadline_;
  Clock::time_point close_deadline_;
  bool group_pending_ = true;  // its line has not been seen in stderr yet
};

// The command line that runs `command` through the remote user's shell, as an exec request
// does, after a POSIX sh has written "mconnect-pgid:N" on stderr: N, the sh's parent, is that
// shell, which sshd made a session and process group leader (setsid). Everything the command
// starts stays in that group unless it leaves it itself. The line reads the same in sh, bash,
// zsh, csh and fish.
std::string ProcessGroupCommand(const std::string& command);

// Ends process group `group` on the server: TERM, and KILL a second later for what ignored it.
std::string EndProcessGroupCommand(std::int64_t group);

}  // namespace mconnect::mux
