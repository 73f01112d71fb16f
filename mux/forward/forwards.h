// The master's port forwards, each a local socket relayed to a channel through ChannelPipes:
//  -L  listens here, each connection opens a direct-tcpip channel to a fixed destination
//      (direct-streamlocal when the destination is a Unix socket path on the server);
//  -D  listens here, SOCKS4/4a/5 names the destination per connection;
//  -R  the server listens (tcpip-forward), each connection arrives as a channel and is
//      connected here to the spec's destination;
//  -R  with no destination (connect port 0, OpenSSH's remote dynamic forward): the same, and
//      SOCKS4/4a/5 read from the channel names each connection's destination here.
// Whatever listens or connects here may be a Unix socket path (local_sockets.h). A server-side
// Unix socket listener (-R PATH:...) needs streamlocal-forward@openssh.com, which libssh2 does
// not send: it is refused with that reason.
// They live in the master until cancelled (-O cancel) or the master exits, as OpenSSH's own
// master keeps them.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "base/poller.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "mux/forward/local_sockets.h"
#include "mux/forward/socks_codec.h"
#include "mux/openssh/codec.h"
#include "mux/openssh/session.h"
#include "mux/ssh/channel_pump.h"
#include "mux/ssh/driver.h"

namespace mconnect::mux {

class Forwards {
 public:
  explicit Forwards(SshDriver& driver) : driver_(driver) {}

  // Opens any forward; `done` gets the port the server allocated for `-R 0:...` (else 0) or the
  // reason the client prints. -L/-D answer at once, -R once the server answered.
  using Opened = std::function<void(Result<std::uint32_t>)>;
  void Open(const openssh::ForwardSpec& spec, Opened done);
  // Stops listening for a spec opened before (connections already made go on).
  Result<void> Close(const openssh::ForwardSpec& spec);

  // Registers the listeners and connections for this round, and a wake-up for when a listener
  // paused for lack of fds is to be polled again.
  void Watch(Poller& poller);
  // Reacts to what the channels did (opened, refused, finished).
  void Update();

  std::size_t listener_count() const { return listeners_.size(); }
  std::size_t connection_count() const { return connections_.size(); }

 private:
  struct Listener {
    std::uint64_t id = 0;
    openssh::ForwardSpec spec;
    LocalListener socket;
    // Out of fds (mux/fd_budget/fd_budget.h): connections wait in the backlog, unpolled until then.
    std::chrono::steady_clock::time_point paused_until{};
  };
  struct RemoteListener {
    openssh::ForwardSpec spec;
    std::shared_ptr<RemoteListenJob::Shared> shared;
  };
  struct Connection {
    std::uint64_t id = 0;
    UniqueFd socket;
    bool connecting = false;  // -R: our connect to the destination is in progress
    bool dynamic = false;
    // Remote dynamic: the SOCKS client is on the server, its messages come over the channel.
    bool socks_on_channel = false;
    // SOCKS negotiation (dynamic only): bytes not yet consumed, and where the parser is.
    std::vector<std::uint8_t> negotiation;
    socks::Stage stage = socks::Stage::kFirst;
    std::optional<socks::Version> version;  // set once the request is complete
    std::shared_ptr<ChannelPipes> pipes;    // set once the channel is requested
    bool replied = false;
    bool output_shut = false;  // the server's direction ended and reached the socket: SHUT_WR sent
    bool done = false;
  };

  Result<void> OpenLocal(const openssh::ForwardSpec& spec);
  void OpenRemote(const openssh::ForwardSpec& spec, Opened done);
  void AcceptRemote(const openssh::ForwardSpec& spec, LIBSSH2_CHANNEL* channel);
  void Accept(Listener& listener);
  void Negotiate(Connection& connection);
  // Remote dynamic: SOCKS from what the channel brought, then the connect here.
  void NegotiateOnChannel(Connection& connection);
  // Parses the SOCKS bytes kept in the connection; `send` carries answers to the SOCKS client.
  // kRequest leaves the destination in `request` and what followed it in `negotiation`.
  enum class SocksProgress { kNeedMore, kRequest, kRefused };
  SocksProgress AdvanceSocks(Connection& connection, socks::Request& request,
                             const std::function<void(std::span<const std::uint8_t>)>& send);
  // The connect to the destination here ended (-R): pump, or answer the SOCKS client and end.
  void Connected(Connection& connection, int error);
  // When a listener paused for lack of fds is to be polled again.
  std::optional<std::chrono::steady_clock::time_point> NextDeadline() const;
  // A listener's or a connection's turn in a round. Between Watch and these, listeners and
  // connections may be removed (a cancel from a client, a finished connection): each is looked up
  // by its id, never reached through something kept from Watch.
  void OnListenerReady(std::uint64_t id);
  // With the connection's three poll entries (socket in, socket out, unused).
  void OnConnectionReady(std::uint64_t id, std::span<const pollfd> mine);
  void StartChannel(Connection& connection, const std::string& host, std::uint32_t port);
  void Finish(Connection& connection);
  Connection& NewConnection();

  SshDriver& driver_;
  std::list<Listener> listeners_;
  std::list<RemoteListener> remote_listeners_;
  std::list<Connection> connections_;
  std::uint64_t next_id_ = 1;
};

}  // namespace mconnect::mux
