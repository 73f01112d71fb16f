// The channel pump: moves bytes between an SSH channel and the local side of a session or
// forward. The local side (the mux server's lent fds, a forwarded socket) and the channel side
// meet in ChannelPipes; both bound what they buffer, so a slow reader on either end throttles the
// other (libssh2 stops granting window when we stop reading).
#pragma once

#include <libssh2.h>
#include <poll.h>

#include <cstddef>
#include <functional>
#include <string_view>
#include <memory>
#include <string>
#include <vector>

#include "base/byte_queue.h"
#include "mux/ssh/channel_task.h"

namespace mconnect::mux {

// Shared between the fd side (the mux server) and the channel side (the task). Single-threaded:
// each side only looks at it from the master's loop.
struct ChannelPipes {
  static constexpr std::size_t kBufferLimit = 256 * 1024;

  ByteQueue to_remote;         // from the client's stdin
  bool local_eof = false;      // stdin ended; EOF goes to the channel once to_remote drains
  ByteQueue stdout_data;       // for the client's stdout
  ByteQueue stderr_data;       // for the client's stderr
  bool opened = false;         // channel open and the command started
  bool tty_failed = false;     // the pty request was refused (the session goes on without)
  std::string failure;         // the session could not start
  // The server will send nothing more (its EOF, or its CLOSE) and all it sent is in the two
  // queues: once they drain, the local side ends its output (a forwarded socket is shut down for
  // writing), while its input may still flow to the server.
  bool remote_eof = false;
  bool finished = false;       // the channel closed; exit_status / exit_signal are set
  int exit_status = -1;
  std::string exit_signal;
  bool client_gone = false;    // the control connection closed: close the channel
  bool window_changed = false;  // columns/rows below changed: send window-change
  int columns = 0, rows = 0, width_px = 0, height_px = 0;
};

enum class PumpResult {
  kProgress,  // bytes moved; call again
  kBlocked,   // nothing more until the socket or the local side moves (a partly sent packet
              // must be finished first: call again before any other sending call)
  kFailed,    // the channel broke
};

// One step of pumping, each direction on its own as OpenSSH's channels do: local input to the
// channel, then our EOF once the local side's input ended and all of it went (`eof_sent`); the
// server's output (stdout and stderr) to the pipes while they have room, until its EOF
// (`pipes.remote_eof`). Neither direction's end stops the other.
PumpResult PumpChannel(LIBSSH2_SESSION* session, LIBSSH2_CHANNEL* channel, ChannelPipes& pipes, bool& eof_sent);

// The local side: fds that read into `to_remote` and write out `stdout_data` / `stderr_data`.
// `input` and `output` may be the same fd (a socket); `errors` may be -1.
struct LocalEnds {
  int input = -1;
  int output = -1;
  int errors = -1;
  // Sees what is read from `input` before it goes to `to_remote` (terminal escapes); null: none.
  std::function<void(std::string_view, ChannelPipes&)> input_filter;
};
// Three pollfds (input, output, errors) for the ends' current wishes; -1 fds are ignored by poll.
void AddLocalPollFds(const LocalEnds& ends, const ChannelPipes& pipes, std::vector<pollfd>& fds);
// Takes back those three pollfds' events and moves bytes. Returns false when the output end is
// gone (its reader closed) or an end cannot be polled at all: the caller then ends the pump.
bool PumpLocalEnds(const LocalEnds& ends, ChannelPipes& pipes, const pollfd* fds);

// A channel task that sets its channel up (subclass), pumps both directions until each has
// ended, then closes and reports the exit status into the pipes. The channel closes (our CLOSE)
// when both directions are done, when the server closed it (a session whose command exited:
// what we still had for it is dropped), when it broke, or when the local side left.
class ChannelPump : public ChannelTask {
 public:
  explicit ChannelPump(std::shared_ptr<ChannelPipes> pipes) : pipes_(std::move(pipes)) {}

  Step Pump(LIBSSH2_SESSION* session, LIBSSH2_CHANNEL* channel) final;
  bool Abandoned() const override { return pipes_->client_gone; }
  void Abort(const std::string& why) override;

 protected:
  // Requests before the pump (env, pty, exec...). kFinished when done; a failure is reported by
  // setting pipes_->failure before returning kFinished.
  virtual Step Setup(LIBSSH2_SESSION* session, LIBSSH2_CHANNEL* channel) = 0;
  // Called before each pump step (a pending window change); kBlocked after EAGAIN.
  virtual Step BeforePump(LIBSSH2_SESSION*, LIBSSH2_CHANNEL*) { return Step::kFinished; }

  std::shared_ptr<ChannelPipes> pipes_;

 private:
  enum class State { kSetup, kPumping, kClosing, kWaitingClosed };

  Step Finish(LIBSSH2_SESSION* session, LIBSSH2_CHANNEL* channel);

  State state_ = State::kSetup;
  bool eof_sent_ = false;
  bool close_sent_ = false;
  // Reading or writing the channel failed (the connection broke): whatever libssh2 says of the
  // exit status then is its default 0, not the command's, so the client gets 255 as from ssh.
  bool failed_ = false;
};

}  // namespace mconnect::mux
