// The OpenSSH side of the master's socket: unchanged `ssh -S SOCKET` clients (and scp, rsync,
// git through them) speak OpenSSH's control protocol v4 (PROTOCOL.mux). One session per control
// connection, as OpenSSH's own master does: the client lends its stdin, stdout and stderr with
// SCM_RIGHTS and we relay them to an SSH session channel.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/poller.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "mux/openssh/codec.h"
#include "mux/openssh/session.h"
#include "mux/ssh/channel_task.h"

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
    // ssh -X/-Y: a fake cookie for the session's x11-req, or why the master cannot forward X11
    // (said on the client's stderr; the session goes on without).
    std::function<Result<X11Request>()> grant_x11;
  };

  // Takes each channel task this server makes (a session, an ssh -W forward) to whatever opens
  // channels: the master's SshDriver, a fuzzer's stub. The task reports back only through the
  // pipes it shares with its client, so the server needs nothing else of the connection.
  using StartChannel = std::function<void(std::unique_ptr<ChannelTask>)>;

  OpenSshMuxServer(StartChannel start_channel, Hooks hooks);
  ~OpenSshMuxServer();

  // A connection whose first 8 bytes (length and type of OpenSSH's HELLO) were already read.
  // With a `refusal`: there is no room for this client; its session ends at once with that
  // reason on its stderr, its forwards fail with it (what it asks of the master alone is served).
  void Adopt(UniqueFd fd, std::vector<std::uint8_t> first_bytes, std::string refusal = {});
  // Clients being refused right now.
  std::size_t refusing() const;
  // The fds admitted clients have yet to pass (a session lends three once it asks for one): the
  // master keeps room for them (FdBudget::Room), so that none is turned away halfway through.
  std::size_t promised_fds() const;

  // Registers each client's fds for this round (its control socket, and a session's three lent
  // ends), and a wake-up for the first deadline (NextDeadline).
  void Watch(Poller& poller);
  // Reacts to what the channel side did (opened, output, finished); call after the driver ran.
  void Update();
  // SIGWINCH from a client: re-read the sizes of the terminals we were lent.
  void OnWindowChange();

  std::size_t client_count() const { return clients_.size(); }
  // Clients with a session or a stdio forward under way.
  std::size_t session_count() const;
  // Closes the clients that owe the master a HELLO, the rest of a frame or their fds, and have run
  // out of time for it.
  void ExpireDeadlines();

 private:
  struct Client;

  // One client's turn in a round, its control socket's entry first. Its requests may close other
  // clients: each is looked up by id, and closed ones are removed once the round's events ran.
  void OnEvents(std::uint64_t id, std::span<const pollfd> fds);
  // When the first such client runs out of time.
  std::optional<std::chrono::steady_clock::time_point> NextDeadline() const;
  void ReadControl(Client& client);
  void HandleMessage(Client& client, openssh::ClientMessage& message);
  void OpenForward(Client& client, const openssh::OpenForward& m);
  void CloseForward(Client& client, const openssh::CloseForward& m);
  void Dispatch(Client& client, std::uint32_t type, const std::vector<std::uint8_t>& frame);
  void TakeFds(Client& client);
  // Answers NEW_SESSION with a session that ends at once (255), its reason on the client's stderr.
  void RefuseSession(Client& client, std::string_view why);
  // RefuseSession for a session, a FAILURE for an ssh -W (which does not log in by itself).
  void RefuseRequest(Client& client, std::string_view why);
  void UpdateDeadline(Client& client);
  void StartSession(Client& client);
  void PumpFds(Client& client, const pollfd* fds);
  void Send(Client& client, std::vector<std::uint8_t> frame);
  void Flush(Client& client);
  void Close(Client& client, std::string_view why);

  StartChannel start_channel_;
  Hooks hooks_;
  std::map<std::uint64_t, std::unique_ptr<Client>> clients_;
  std::uint64_t next_id_ = 1;
  std::uint32_t next_session_id_ = 1;
};

}  // namespace mconnect::mux
