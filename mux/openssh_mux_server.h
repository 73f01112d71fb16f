// The OpenSSH side of the master's socket: unchanged `ssh -S SOCKET` clients (and scp, rsync,
// git through them) speak OpenSSH's control protocol v4 (PROTOCOL.mux). One session per control
// connection, as OpenSSH's own master does: the client lends its stdin, stdout and stderr with
// SCM_RIGHTS and we relay them to an SSH session channel.
#pragma once

#include <poll.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "mux/openssh_mux_codec.h"
#include "mux/ssh_driver.h"

namespace mconnect::mux {

class OpenSshMuxServer {
 public:
  struct Hooks {
    std::function<void()> terminate;       // ssh -O exit
    std::function<void()> stop_listening;  // ssh -O stop
    // ssh -O forward (and -L/-R/-D given with a session): the answer may come later (-R waits
    // for the server); it carries the port the server allocated for -R 0, else 0.
    std::function<void(const openssh::ForwardSpec&, std::function<void(Result<std::uint32_t>)>)> open_forward;
    // ssh -O cancel; the error is the reason sent.
    std::function<Result<void>(const openssh::ForwardSpec&)> close_forward;
  };

  OpenSshMuxServer(SshDriver& driver, Hooks hooks);
  ~OpenSshMuxServer();

  // A connection whose first 8 bytes (length and type of OpenSSH's HELLO) were already read.
  void Adopt(UniqueFd fd, std::vector<std::uint8_t> first_bytes);

  // Appends this server's pollfds; HandleEvents takes back the same number, same order.
  void AddPollFds(std::vector<pollfd>& fds);
  void HandleEvents(const pollfd* fds, std::size_t count);
  // Reacts to what the channel side did (opened, output, finished); call after the driver ran.
  void Update();
  // SIGWINCH from a client: re-read the sizes of the terminals we were lent.
  void OnWindowChange();

  std::size_t client_count() const { return clients_.size(); }

 private:
  struct Client;

  void ReadControl(Client& client);
  void Dispatch(Client& client, std::uint32_t type, const std::vector<std::uint8_t>& frame);
  void ReceiveFds(Client& client);
  void StartSession(Client& client);
  void PumpFds(Client& client, const pollfd* fds);
  void Send(Client& client, std::vector<std::uint8_t> frame);
  void Flush(Client& client);
  void Close(Client& client, std::string_view why);

  SshDriver& driver_;
  Hooks hooks_;
  std::map<std::uint64_t, std::unique_ptr<Client>> clients_;
  std::uint64_t next_id_ = 1;
  std::uint32_t next_session_id_ = 1;
  // How many pollfds each client added in the last AddPollFds, in map order.
  std::vector<std::pair<std::uint64_t, std::size_t>> poll_layout_;
};

}  // namespace mconnect::mux
