#include "mux/openssh/session.h"

#include "base/log.h"
#include "base/ssh2.h"

namespace mconnect::mux {

ChannelTask::Step OpenSshSessionTask::Setup(LIBSSH2_SESSION* session, LIBSSH2_CHANNEL* channel) {
  switch (phase_) {
    case Phase::kEnv:
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
      phase_ = Phase::kX11;
      return Step::kProgress;
    case Phase::kX11:
      if (request_.x11) {
        const X11Request& x11 = *request_.x11;
        int rc = libssh2_channel_x11_req_ex(channel, 0, x11.proto.c_str(), x11.cookie_hex.c_str(), x11.screen);
        if (rc == LIBSSH2_ERROR_EAGAIN) return Step::kBlocked;
        if (rc != 0) {
          // ssh's words; the session goes on without X11, as with ssh.
          log::Info("the server refused X11 forwarding: {}", Ssh2LastError(session));
          pipes_->stderr_data.append("X11 forwarding request failed on channel 0\r\n");
        }
        x11_forwarded_ = rc == 0;
      }
      phase_ = Phase::kAgent;
      return Step::kProgress;
    case Phase::kAgent:
      if (request_.forward_agent) {
        int rc = libssh2_channel_request_auth_agent(channel);
        if (rc == LIBSSH2_ERROR_EAGAIN) return Step::kBlocked;
        // sshd answers only the first request of a connection with success, and gives the agent
        // socket it made then to every later session of the connection: a refusal is no proof
        // that no agent channel will come for this session (ssh does not even ask for a reply).
        if (rc != 0) log::Debug("the server did not confirm agent forwarding: {}", Ssh2LastError(session));
        agent_forwarded_ = true;
      }
      phase_ = request_.want_tty ? Phase::kPty : Phase::kStart;
      return Step::kProgress;
    case Phase::kPty: {
      int rc = libssh2_channel_request_pty_ex(channel, request_.term.c_str(), static_cast<unsigned>(request_.term.size()),
                                              request_.tty_modes.data(),
                                              static_cast<unsigned>(request_.tty_modes.size()), request_.columns,
                                              request_.rows, request_.width_px, request_.height_px);
      if (rc == LIBSSH2_ERROR_EAGAIN) return Step::kBlocked;
      if (rc != 0) {
        log::Info("pty request refused: {}", Ssh2LastError(session));
        pipes_->tty_failed = true;
      }
      phase_ = Phase::kStart;
      return Step::kProgress;
    }
    case Phase::kStart: {
      int rc;
      if (request_.subsystem) {
        rc = libssh2_channel_subsystem(channel, request_.command.c_str());
      } else if (request_.command.empty()) {
        rc = libssh2_channel_shell(channel);
      } else {
        rc = libssh2_channel_exec(channel, request_.command.c_str());
      }
      if (rc == LIBSSH2_ERROR_EAGAIN) return Step::kBlocked;
      if (rc != 0) pipes_->failure = "the server refused the session: " + Ssh2LastError(session);
      return Step::kFinished;
    }
  }
  return Step::kFinished;
}

ChannelTask::Step OpenSshSessionTask::BeforePump(LIBSSH2_SESSION*, LIBSSH2_CHANNEL* channel) {
  if (!pipes_->window_changed && !resizing_) return Step::kFinished;
  resizing_ = true;
  pipes_->window_changed = false;
  int rc = libssh2_channel_request_pty_size_ex(channel, pipes_->columns, pipes_->rows, pipes_->width_px,
                                               pipes_->height_px);
  if (rc == LIBSSH2_ERROR_EAGAIN) return Step::kBlocked;
  resizing_ = false;
  return Step::kFinished;
}

ChannelTask::Step RemoteListenJob::Pump(LIBSSH2_SESSION* session) {
  using Step = ChannelTask::Step;
  if (listener_ == nullptr) {
    int bound = 0;
    listener_ = libssh2_channel_forward_listen_ex(session, host_.c_str(), port_, &bound, 16);
    if (listener_ == nullptr) {
      if (libssh2_session_last_errno(session) == LIBSSH2_ERROR_EAGAIN) return Step::kBlocked;
      if (ready_) ready_(Fail("the server refused to listen on {}:{}: {}", host_, port_, Ssh2LastError(session)));
      ready_ = nullptr;
      return Step::kFinished;
    }
    if (ready_) ready_(port_ != 0 ? port_ : bound);
    ready_ = nullptr;
    return Step::kProgress;
  }
  if (shared_->cancel) {
    int rc = libssh2_channel_forward_cancel(listener_);
    if (rc == LIBSSH2_ERROR_EAGAIN) return Step::kBlocked;
    log::Info("remote forward on {}:{} cancelled", host_, port_);
    return Step::kFinished;
  }
  LIBSSH2_CHANNEL* channel = libssh2_channel_forward_accept(listener_);
  if (channel == nullptr) {
    if (libssh2_session_last_errno(session) == LIBSSH2_ERROR_EAGAIN) return Step::kBlocked;
    log::Warn("remote forward on {}:{} stopped: {}", host_, port_, Ssh2LastError(session));
    return Step::kFinished;
  }
  accepted_(channel);
  return Step::kProgress;
}

void RemoteListenJob::Abort(const std::string& why) {
  if (ready_) ready_(Fail("{}", why));
  ready_ = nullptr;
}

}  // namespace mconnect::mux
