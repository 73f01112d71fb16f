// Forwards that listen on this machine: `ssh -S SOCK -O forward -L ...` (fixed destination) and
// `-D ...` (SOCKS4/4a/5 chooses it per connection). Each accepted connection becomes a
// direct-tcpip channel (ForwardTask) relayed through ChannelPipes. They live in the master until
// cancelled (-O cancel) or the master exits, as OpenSSH's own master keeps them.
#pragma once

#include <poll.h>

#include <list>
#include <memory>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "mux/openssh_mux_codec.h"
#include "mux/openssh_session.h"
#include "mux/relay.h"
#include "mux/socks_codec.h"
#include "mux/ssh_driver.h"

namespace mconnect::mux {

class LocalForwards {
 public:
  explicit LocalForwards(SshDriver& driver) : driver_(driver) {}

  // Binds and listens for a -L or -D spec; the error is the reason the client prints.
  Result<void> Open(const openssh::ForwardSpec& spec);
  // Stops listening for a spec opened before (connections already made go on).
  Result<void> Close(const openssh::ForwardSpec& spec);

  void AddPollFds(std::vector<pollfd>& fds);
  void HandleEvents(const pollfd* fds, std::size_t count);
  // Reacts to what the channels did (opened, refused, finished).
  void Update();

  std::size_t listener_count() const { return listeners_.size(); }
  std::size_t connection_count() const { return connections_.size(); }

 private:
  struct Listener {
    openssh::ForwardSpec spec;
    UniqueFd fd;
  };
  struct Connection {
    UniqueFd socket;
    bool dynamic = false;
    // SOCKS negotiation (dynamic only): bytes not yet consumed, and where the parser is.
    std::vector<std::uint8_t> negotiation;
    socks::Stage stage = socks::Stage::kFirst;
    std::optional<socks::Version> version;  // set once the request is complete
    std::shared_ptr<ChannelPipes> pipes;    // set once the channel is requested
    bool replied = false;
    bool done = false;
  };

  void Accept(Listener& listener);
  void Negotiate(Connection& connection);
  void StartChannel(Connection& connection, const std::string& host, int port);
  void Finish(Connection& connection);

  SshDriver& driver_;
  std::list<Listener> listeners_;
  std::list<Connection> connections_;
};

}  // namespace mconnect::mux
