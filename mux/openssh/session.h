// One OpenSSH mux session (`ssh -S SOCKET host [command]`), channel side: env, pty and the
// shell/exec/subsystem request, then the channel pump (mux/ssh/channel_pump.h) with window changes.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "mux/ssh/channel_pump.h"

namespace mconnect::mux {

// X11 forwarding the master granted a session (ssh -X/-Y): what its x11-req carries. The
// cookie is a fake one (hex), which the master swaps for the real one when the server connects.
struct X11Request {
  std::string proto;       // "MIT-MAGIC-COOKIE-1"
  std::string cookie_hex;
  int screen = 0;
};

struct SessionRequest {
  std::string term;
  std::string command;     // empty: the login shell
  bool subsystem = false;  // command names a subsystem (sftp)
  bool want_tty = false;
  std::string tty_modes;   // EncodeTtyModes of the client's terminal
  int columns = 80;
  int rows = 24;
  int width_px = 0;
  int height_px = 0;
  std::vector<std::string> env;  // NAME=VALUE, already filtered
  bool forward_agent = false;    // ssh -A: auth-agent-req@openssh.com, then the master's agent
  bool want_x11 = false;         // ssh -X/-Y asked; `x11` is set when the master can serve it
  std::optional<X11Request> x11;
};

class OpenSshSessionTask : public ChannelPump {
 public:
  OpenSshSessionTask(SessionRequest request, std::shared_ptr<ChannelPipes> pipes)
      : ChannelPump(std::move(pipes)), request_(std::move(request)) {}

  // The session asked for an agent: the server's agent channels are taken while it lives.
  bool forwards_agent() const override { return agent_forwarded_ && !pipes_->finished; }
  // The server took the x11-req: its X11 channels are this session's, while it lives.
  bool forwards_x11() const override { return x11_forwarded_ && !pipes_->finished; }

 protected:
  Step Setup(LIBSSH2_SESSION* session, LIBSSH2_CHANNEL* channel) override;
  Step BeforePump(LIBSSH2_SESSION* session, LIBSSH2_CHANNEL* channel) override;

 private:
  enum class Phase { kEnv, kX11, kAgent, kPty, kStart };

  SessionRequest request_;
  Phase phase_ = Phase::kEnv;
  bool agent_forwarded_ = false;
  bool x11_forwarded_ = false;
  std::size_t env_index_ = 0;
  bool resizing_ = false;
};

// A direct-tcpip channel to host:port (ssh -W, -L, -D), or a direct-streamlocal channel to a
// Unix socket path on the server (-L ...:PATH): no setup, just the pump.
class ForwardTask : public ChannelPump {
 public:
  ForwardTask(std::string host, int port, std::string origin_host, int origin_port,
              std::shared_ptr<ChannelPipes> pipes)
      : ChannelPump(std::move(pipes)),
        host_(std::move(host)),
        port_(port),
        origin_host_(std::move(origin_host)),
        origin_port_(origin_port) {}
  static std::unique_ptr<ForwardTask> ToUnixSocket(std::string path, std::string origin_host, int origin_port,
                                                   std::shared_ptr<ChannelPipes> pipes) {
    auto task = std::make_unique<ForwardTask>(std::move(path), 0, std::move(origin_host), origin_port,
                                              std::move(pipes));
    task->unix_socket_ = true;
    return task;
  }

  LIBSSH2_CHANNEL* OpenChannel(LIBSSH2_SESSION* session, std::uint32_t) override {
    if (unix_socket_) {
      return libssh2_channel_direct_streamlocal_ex(session, host_.c_str(), origin_host_.c_str(), origin_port_);
    }
    return libssh2_channel_direct_tcpip_ex(session, host_.c_str(), port_, origin_host_.c_str(), origin_port_);
  }
  bool UsesSessionChannel() const override { return false; }

 protected:
  Step Setup(LIBSSH2_SESSION*, LIBSSH2_CHANNEL*) override { return Step::kFinished; }

 private:
  std::string host_;  // or the path
  int port_;
  std::string origin_host_;
  int origin_port_;
  bool unix_socket_ = false;
};

// A channel the server opened for a remote forward (-R): already open, nothing to set up.
class AcceptedForwardTask : public ChannelPump {
 public:
  using ChannelPump::ChannelPump;

 protected:
  Step Setup(LIBSSH2_SESSION*, LIBSSH2_CHANNEL*) override { return Step::kFinished; }
};

// The server's listener for a remote forward (tcpip-forward), and the channels it accepts.
class RemoteListenJob : public SessionJob {
 public:
  struct Shared {
    bool cancel = false;  // -O cancel: stop listening
    bool ended = false;   // the job is gone (cancelled, refused, or the connection died)
  };
  using Ready = std::function<void(Result<int>)>;  // the port the server bound, or why not
  using Accepted = std::function<void(LIBSSH2_CHANNEL*)>;

  RemoteListenJob(std::string host, int port, std::shared_ptr<Shared> shared, Ready ready, Accepted accepted)
      : host_(std::move(host)), port_(port), shared_(std::move(shared)), ready_(std::move(ready)),
        accepted_(std::move(accepted)) {}
  ~RemoteListenJob() override { shared_->ended = true; }

  ChannelTask::Step Pump(LIBSSH2_SESSION* session) override;
  void Abort(const std::string& why) override;

 private:
  std::string host_;
  int port_;
  std::shared_ptr<Shared> shared_;
  Ready ready_;
  Accepted accepted_;
  LIBSSH2_LISTENER* listener_ = nullptr;
};

}  // namespace mconnect::mux
