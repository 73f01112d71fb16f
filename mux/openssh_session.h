// One OpenSSH mux session (`ssh -S SOCKET host [command]`): the channel side. The mux server
// owns the client's passed fds and moves bytes between them and SessionPipes; this task moves
// bytes between SessionPipes and the SSH channel. Both sides bound their buffers, so a slow
// reader on either end throttles the other (libssh2 stops granting window when we stop reading).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "mux/channel_task.h"
#include "mux/relay.h"

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
