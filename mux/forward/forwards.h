// The master's port forwards, each a local socket relayed to a channel through ChannelPipes:
//  -L  listens here, each connection opens a direct-tcpip channel to a fixed destination
//      (direct-streamlocal when the destination is a Unix socket path on the server);
//  -D  listens here, SOCKS4/4a/5 names the destination per connection;
//      both listen where ssh would: with no address (or "localhost") on 127.0.0.1 and ::1, a
//      family that cannot bind (its port taken) being no error while the other binds;
//  -R  the server listens (tcpip-forward), each connection arrives as a channel and is
//      connected here to the spec's destination;
//  -R  with no destination (connect port 0, OpenSSH's remote dynamic forward): the same, and
//      SOCKS4/4a/5 read from the channel names each connection's destination here.
// Whatever listens or connects here may be a Unix socket path (local_sockets.h). A server-side
// Unix socket listener (-R PATH:...) needs streamlocal-forward@openssh.com, which libssh2 does
// not send: it is refused with that reason.
// They live in the master until cancelled (-O cancel) or the master exits, as OpenSSH's own
// master keeps them. The same relay serves the channels the server opens for a session's agent
// forwarding (ssh -A: to the master's agent socket) and X11 forwarding (ssh -X/-Y: to the
// master's display, once the connection's fake cookie is swapped for the real one).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <sys/socket.h>

#include "base/poller.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "mux/forward/local_sockets.h"
#include "mux/forward/socks_codec.h"
#include "mux/forward/x11_display.h"
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

  // The agent that sessions asking for agent forwarding reach: a socket path; empty: none.
  void SetAgentSocket(std::string path) { agent_socket_ = std::move(path); }
  // The display that sessions asking for X11 forwarding reach (DISPLAY; empty: none), and
  // whether they get its own cookie (ForwardX11Trusted) or an untrusted one.
  void SetDisplay(std::string display, bool trusted) { x11_ = X11Display(std::move(display), trusted); }
  // ssh -X/-Y: the fake cookie for a session's x11-req, or why not.
  Result<X11Request> GrantX11() { return x11_.Grant(); }
  // A channel the server opened for a session that asked for it (SshDriver::SetInbound), on
  // `driver`'s connection: relayed to the agent or the display.
  void AcceptInbound(SshDriver& driver, SshDriver::Inbound kind, LIBSSH2_CHANNEL* channel);

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
    LocalListener socket;  // one fd per address (127.0.0.1 and ::1 for "localhost"), or a Unix socket
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
    // X11: nothing goes to the display before the X client's setup, with its cookie swapped.
    bool x11_setup_pending = false;
    bool done = false;
  };

  Result<void> OpenLocal(const openssh::ForwardSpec& spec);
  void OpenRemote(const openssh::ForwardSpec& spec, Opened done);
  void AcceptRemote(const openssh::ForwardSpec& spec, LIBSSH2_CHANNEL* channel);
  void Accept(Listener& listener, int listen_fd);
  // A connection for a channel the server opened, relayed once our connect to `address` is done.
  Connection& AcceptChannel(SshDriver& driver, LIBSSH2_CHANNEL* channel);
  void ConnectUnix(Connection& connection, const std::string& path, const std::string& what);
  void AcceptX11(Connection& connection);
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
  void OnListenerReady(std::uint64_t id, std::size_t index);
  // With the connection's three poll entries (socket in, socket out, unused).
  void OnConnectionReady(std::uint64_t id, std::span<const pollfd> mine);
  void StartChannel(Connection& connection, const std::string& host, std::uint32_t port);
  void Finish(Connection& connection);
  // The local ends to poll and pump: the socket both ways, but not its output while an X11
  // setup waits for its cookie.
  static LocalEnds EndsOf(const Connection& connection);
  // An X11 connection's setup, once whole: its fake cookie swapped, or the connection closed.
  void SpoofX11(Connection& connection);
  Connection& NewConnection();

  SshDriver& driver_;
  std::string agent_socket_;
  X11Display x11_{"", true};
  std::list<Listener> listeners_;
  std::list<RemoteListener> remote_listeners_;
  std::list<Connection> connections_;
  std::uint64_t next_id_ = 1;
};

}  // namespace mconnect::mux
