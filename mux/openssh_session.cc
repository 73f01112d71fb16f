#include "mux/openssh_session.h"

#include "base/log.h"
#include "base/ssh2.h"

namespace mconnect::mux {

OpenSshSessionTask::OpenSshSessionTask(SessionRequest request, std::shared_ptr<SessionPipes> pipes)
    : request_(std::move(request)), pipes_(std::move(pipes)) {}

void OpenSshSessionTask::Abort(const std::string& why) {
  if (!pipes_->opened) {
    pipes_->failure = why;
  } else {
    pipes_->finished = true;
    pipes_->exit_status = 255;
  }
}

ChannelTask::Step OpenSshSessionTask::Pump(LIBSSH2_SESSION* session, LIBSSH2_CHANNEL* channel) {
  if (pipes_->client_gone && state_ < State::kClosing) state_ = State::kClosing;
  switch (state_) {
    case State::kEnv: {
      // Servers refuse variables they do not AcceptEnv; like ssh, carry on without them.
      while (env_index_ < request_.env.size()) {
        const std::string& entry = request_.env[env_index_];
        std::size_t equals = entry.find('=');
        std::string name = entry.substr(0, equals);
        std::string value = equals == std::string::npos ? "" : entry.substr(equals + 1);
        int rc = libssh2_channel_setenv_ex(channel, name.c_str(), static_cast<unsigned>(name.size()), value.c_str(),
                                           static_cast<unsigned>(value.size()));
        if (rc == LIBSSH2_ERROR_EAGAIN) return Step::kBlocked;
        if (rc != 0) log::Debug("the server did not accept {}", name);
        ++env_index_;
      }
      state_ = request_.want_tty ? State::kPty : State::kStart;
      return Step::kProgress;
    }
    case State::kPty: {
      int rc = libssh2_channel_request_pty_ex(channel, request_.term.c_str(), static_cast<unsigned>(request_.term.size()),
                                              request_.tty_modes.data(),
                                              static_cast<unsigned>(request_.tty_modes.size()), request_.columns,
                                              request_.rows, request_.width_px, request_.height_px);
      if (rc == LIBSSH2_ERROR_EAGAIN) return Step::kBlocked;
      if (rc != 0) {
        log::Info("pty request refused: {}", Ssh2LastError(session));
        pipes_->tty_failed = true;
      }
      state_ = State::kStart;
      return Step::kProgress;
    }
    case State::kStart: {
      int rc;
      if (request_.subsystem) {
        rc = libssh2_channel_subsystem(channel, request_.command.c_str());
      } else if (request_.command.empty()) {
        rc = libssh2_channel_shell(channel);
      } else {
        rc = libssh2_channel_exec(channel, request_.command.c_str());
      }
      if (rc == LIBSSH2_ERROR_EAGAIN) return Step::kBlocked;
      if (rc != 0) {
        pipes_->failure = "the server refused the session: " + Ssh2LastError(session);
        return Step::kFinished;
      }
      pipes_->opened = true;
      state_ = State::kStreaming;
      return Step::kProgress;
    }
    case State::kStreaming:
      return Stream(session, channel);
    case State::kClosing: {
      int rc = libssh2_channel_close(channel);
      if (rc == LIBSSH2_ERROR_EAGAIN) return Step::kBlocked;
      close_sent_ = true;
      state_ = State::kWaitingClosed;
      return Step::kProgress;
    }
    case State::kWaitingClosed: {
      int rc = libssh2_channel_wait_closed(channel);
      if (rc == LIBSSH2_ERROR_EAGAIN) {
        char sink[4096];
        while (libssh2_channel_read_ex(channel, 0, sink, sizeof sink) > 0) {
        }
        while (libssh2_channel_read_ex(channel, SSH_EXTENDED_DATA_STDERR, sink, sizeof sink) > 0) {
        }
        return Step::kBlocked;
      }
      if (!close_sent_) {  // the server closed first: answer its CLOSE
        state_ = State::kClosing;
        return Step::kProgress;
      }
      return Finish(session, channel);
    }
  }
  return Step::kFinished;
}

ChannelTask::Step OpenSshSessionTask::Stream(LIBSSH2_SESSION* session, LIBSSH2_CHANNEL* channel) {
  if (pipes_->window_changed || resizing_) {
    resizing_ = true;
    pipes_->window_changed = false;
    int rc = libssh2_channel_request_pty_size_ex(channel, pipes_->columns, pipes_->rows, pipes_->width_px,
                                                 pipes_->height_px);
    if (rc == LIBSSH2_ERROR_EAGAIN) return Step::kBlocked;
    resizing_ = false;
  }
  switch (RelayChannel(session, channel, *pipes_, eof_sent_)) {
    case RelayResult::kProgress: return Step::kProgress;
    case RelayResult::kBlocked: return Step::kBlocked;
    case RelayResult::kRemoteDone:
      // Wait for the server's CLOSE (the exit status comes before it), then close our side.
      state_ = State::kWaitingClosed;
      return Step::kProgress;
    case RelayResult::kFailed:
      state_ = State::kClosing;
      return Step::kProgress;
  }
  return Step::kBlocked;
}

ChannelTask::Step OpenSshSessionTask::Finish(LIBSSH2_SESSION* session, LIBSSH2_CHANNEL* channel) {
  pipes_->exit_status = libssh2_channel_get_exit_status(channel);
  char* signal = nullptr;
  std::size_t length = 0;
  if (libssh2_channel_get_exit_signal(channel, &signal, &length, nullptr, nullptr, nullptr, nullptr) == 0 &&
      signal != nullptr) {
    pipes_->exit_signal.assign(signal, length);
    libssh2_free(session, signal);
  }
  pipes_->finished = true;
  return Step::kFinished;
}

}  // namespace mconnect::mux
