// One OpenSSH mux session (`ssh -S SOCKET host [command]`), channel side: env, pty and the
// shell/exec/subsystem request, then the relay (mux/relay.h) with window changes.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "mux/relay.h"

namespace mconnect::mux {

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
};

class OpenSshSessionTask : public RelayTask {
 public:
  OpenSshSessionTask(SessionRequest request, std::shared_ptr<ChannelPipes> pipes)
      : RelayTask(std::move(pipes)), request_(std::move(request)) {}

 protected:
  Step Setup(LIBSSH2_SESSION* session, LIBSSH2_CHANNEL* channel) override;
  Step BeforeRelay(LIBSSH2_SESSION* session, LIBSSH2_CHANNEL* channel) override;

 private:
  enum class Phase { kEnv, kPty, kStart };

  SessionRequest request_;
  Phase phase_ = Phase::kEnv;
  std::size_t env_index_ = 0;
  bool resizing_ = false;
};

// A direct-tcpip channel to host:port (ssh -W, -L, -D): no setup, just the relay.
class ForwardTask : public RelayTask {
 public:
  ForwardTask(std::string host, int port, std::string origin_host, int origin_port,
              std::shared_ptr<ChannelPipes> pipes)
      : RelayTask(std::move(pipes)),
        host_(std::move(host)),
        port_(port),
        origin_host_(std::move(origin_host)),
        origin_port_(origin_port) {}

  LIBSSH2_CHANNEL* OpenChannel(LIBSSH2_SESSION* session) override {
    return libssh2_channel_direct_tcpip_ex(session, host_.c_str(), port_, origin_host_.c_str(), origin_port_);
  }
  bool UsesSessionChannel() const override { return false; }

 protected:
  Step Setup(LIBSSH2_SESSION*, LIBSSH2_CHANNEL*) override { return Step::kFinished; }

 private:
  std::string host_;
  int port_;
  std::string origin_host_;
  int origin_port_;
};

}  // namespace mconnect::mux
