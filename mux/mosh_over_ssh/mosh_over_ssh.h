// Mosh over SSH (MoshOverSsh), the master's half of mosh's `ssh` transport: when no UDP path
// reaches the server, mosh-client talks to a UDP socket on this machine's loopback, and the master
// carries each datagram, length-framed (mosh/datagram_frame.h), over an SSH channel to a small
// relay on the server (RelayCommand), which exchanges them with mosh-server on the server's
// loopback. It sits in its own folder because it is neither OpenSSH's mux nor a forward: it
// needs only the SSH channel plumbing (mux/ssh/) and the datagram framing.
//
// Datagrams are never merged or split. Under backpressure they are dropped, never queued without
// bound: mosh is built for loss and resends what matters. When the master's connection is lost
// the channel goes with it; MoshOverSsh keeps its local socket (mosh-client keeps sending there)
// and the master starts a new channel once it has reconnected. mosh-server roams to the new
// server-side relay's address on its own, as it does when a client changes networks.
//
// The server side ends (and this MoshOverSsh with it) when mosh-server has exited.
//
// The local socket is on 127.0.0.1, where every local user can send to it. Only datagrams from
// a socket of this process's user are relayed, and only such a socket becomes the address that
// mosh-server's datagrams go to (mosh_over_ssh.cc says how, and why the socket stays unconnected).
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "mux/ssh/channel_task.h"

namespace mconnect::mux {

// The shell command that runs the relay on the server for mosh-server's UDP PORT and PID:
// `mconnect relay` when the server has mconnect, else a short perl program (perl is essential
// on Debian and Ubuntu, and mosh's own launcher is perl). Its first line on stderr says which.
// `only` ("perl" or "mconnect") forces one of them.
std::string RelayCommand(int port, std::uint32_t server_pid, std::string_view only = {});

struct MoshOverSshStats {
  std::uint64_t to_server = 0;    // datagrams from mosh-client, sent on
  std::uint64_t to_client = 0;    // datagrams from mosh-server, sent on
  std::uint64_t dropped = 0;      // from mosh-client while the channel was full or down
  std::uint64_t refused = 0;      // from a socket not of this user's (or of nobody's we could tell)
  std::uint64_t channels = 0;     // channels opened (1 + one per reconnect)
};

struct MoshOverSshState;  // shared by the MoshOverSsh and the task that runs its current channel

class MoshOverSsh {
 public:
  // Called once: with the server side's name ("perl", "mconnect") when it has said hello, or
  // with an error when it could not start.
  using Ready = std::function<void(Result<std::string>)>;

  // Binds 127.0.0.1:0 for mosh-client.
  static Result<std::unique_ptr<MoshOverSsh>> Open(int remote_port, std::uint32_t server_pid,
                                                   std::string_view only = {});
  ~MoshOverSsh();

  void SetReady(Ready ready);

  int local_port() const { return local_port_; }
  int remote_port() const { return remote_port_; }
  std::uint32_t server_pid() const { return server_pid_; }
  // Why this session goes over SSH, as the launcher said (for status).
  void set_reason(std::string reason) { reason_ = std::move(reason); }
  const std::string& reason() const { return reason_; }
  // A channel carries the datagrams now (false while one is being opened or replaced).
  bool carrying() const;
  int fd() const;
  // Takes what mosh-client sent: queued for the channel, or dropped when there is no room.
  // Datagrams from another user's socket are refused (counted, and logged now and then).
  void OnReadable();
  // A task to start on the SSH driver when no channel carries the datagrams now (first start,
  // after a lost connection); nullptr otherwise, and once this has finished.
  std::unique_ptr<ChannelTask> TaskToStart(std::chrono::steady_clock::time_point now);
  // The server side ended for good (mosh-server is gone, or it could not start at all).
  bool finished() const;
  const std::string& kind() const;
  MoshOverSshStats stats() const;

 private:
  MoshOverSsh(std::shared_ptr<MoshOverSshState> state, int local_port, int remote_port, std::uint32_t server_pid);

  std::shared_ptr<MoshOverSshState> state_;
  int local_port_;
  int remote_port_;
  std::uint32_t server_pid_;
  std::string reason_;
};

}  // namespace mconnect::mux
