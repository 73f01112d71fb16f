// One OpenSSH mux session (`ssh -S SOCKET host [command]`): the channel side. The mux server
// owns the client's passed fds and moves bytes between them and SessionPipes; this task moves
// bytes between SessionPipes and the SSH channel. Both sides bound their buffers, so a slow
// reader on either end throttles the other (libssh2 stops granting window when we stop reading).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "mux/channel_task.h"

namespace mconnect::mux {

struct SessionRequest {
  std::string term;
  std::string command;   // empty: the login shell
  bool subsystem = false;  // command names a subsystem (sftp)
  bool want_tty = false;
  std::string tty_modes;  // EncodeTtyModes of the client's terminal
  int columns = 80;
  int rows = 24;
  int width_px = 0;
  int height_px = 0;
  std::vector<std::string> env;  // NAME=VALUE, already filtered
};

// Shared between the fd side (the mux server) and the channel side (the task). Single-threaded:
// each side only looks at it from the master's loop.
struct SessionPipes {
  static constexpr std::size_t kBufferLimit = 256 * 1024;

  std::string to_remote;       // from the client's stdin
  bool local_eof = false;      // stdin ended; EOF goes to the channel once to_remote drains
  std::string stdout_data;     // for the client's stdout
  std::string stderr_data;     // for the client's stderr
  bool opened = false;         // channel open and the command started
  bool tty_failed = false;     // the pty request was refused (the session goes on without)
  std::string failure;         // the session could not start
  bool finished = false;       // the channel closed; exit_status / exit_signal are set
  int exit_status = -1;
  std::string exit_signal;
  bool client_gone = false;    // the control connection closed: close the channel
  bool window_changed = false;  // columns/rows below changed: send window-change
  int columns = 0, rows = 0, width_px = 0, height_px = 0;
};

class OpenSshSessionTask : public ChannelTask {
 public:
  OpenSshSessionTask(SessionRequest request, std::shared_ptr<SessionPipes> pipes);

  Step Pump(LIBSSH2_SESSION* session, LIBSSH2_CHANNEL* channel) override;
  bool Abandoned() const override { return pipes_->client_gone; }
  void Abort(const std::string& why) override;

 private:
  enum class State { kEnv, kPty, kStart, kStreaming, kClosing, kWaitingClosed };

  Step Stream(LIBSSH2_SESSION* session, LIBSSH2_CHANNEL* channel);
  Step Finish(LIBSSH2_SESSION* session, LIBSSH2_CHANNEL* channel);

  SessionRequest request_;
  std::shared_ptr<SessionPipes> pipes_;
  State state_ = State::kEnv;
  std::size_t env_index_ = 0;
  bool eof_sent_ = false;
  bool resizing_ = false;
  bool close_sent_ = false;
};

}  // namespace mconnect::mux
