// The master: one authenticated SSH connection to one destination, served on a Unix socket.
// Wires its parts (the connection pool, the control server, the OpenSSH mux server, the forwards,
// the mosh relays, the listening socket and the remote-ip cache) to a single ppoll() loop, where
// each registers through a Poller, and decides when to exit (idle for `persist`, Stop, a signal,
// or the connection lost). The control services it offers are in master_services.cc.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/poller.h"
#include "base/unique_fd.h"
#include "mux/control/server.h"
#include "mux/forward/configured_forwards.h"
#include "mux/forward/forwards.h"
#include "mux/mosh_over_ssh/mosh_over_ssh.h"
#include "mux/openssh/server.h"
#include "mux/ssh/connection_pool.h"
#include "mux/ssh/driver.h"
#include "remote-ip/cache.h"
#include "remote-ip/strategy.h"

namespace mconnect::mux {

struct MasterConfig {
  std::string destination;  // user@host:port, for status and logs
  std::string alias;        // the host name as the user typed it
  std::string user;
  std::string host;
  int port = 22;
  std::string socket_path;
  // With no client: N > 0 exit after N s, 0 stay until stopped, < 0 exit as soon as the last
  // client has gone (OpenSSH's ControlPersist N, yes, no).
  std::chrono::seconds persist{600};
  std::chrono::seconds keepalive{30};
  int keepalive_count_max = 3;  // unanswered keepalives before the connection counts as dead
  // When the connection dies: open a new one (with backoff, without a person), and let requests
  // wait this long for it; false: exit 255 as OpenSSH's master does.
  bool reconnect = true;
  std::chrono::seconds reconnect_wait{30};
  std::chrono::seconds remote_ip_ttl{300};
  // The agent a session's agent forwarding (ssh -A) reaches: ForwardAgent's socket, else the
  // master's $SSH_AUTH_SOCK; empty: none (such sessions' agent channels are closed).
  std::string agent_socket;
  // The display a session's X11 forwarding (ssh -X/-Y) reaches: the master's DISPLAY; empty:
  // none. Trusted: the display's own cookie; else an untrusted one (ForwardX11Trusted no).
  std::string display;
  bool x11_trusted = true;
  // How to open more connections to the same destination, when the server's MaxSessions is
  // reached or the connection was lost (authentication without a person: agent or unencrypted
  // keys; the host key is known by now, so it is checked strictly).
  ConnectParams connect;
  // Forwards opened at start and kept (ssh config, profile); ExitOnForwardFailure.
  std::vector<ConfiguredForward> forwards;
  bool exit_on_forward_failure = false;
};

class Master : public MasterServices {
 public:
  static constexpr std::size_t kMaxConnections = ConnectionPool::kMaxConnections;

  Master(MasterConfig config, std::unique_ptr<SshConnection> connection, UniqueFd listen_fd);
  ~Master() override;

  // Opens the configured forwards, before the master detaches: the local ones listen when this
  // returns. Fails (one line) when one cannot and ExitOnForwardFailure says the master must not
  // go on; else each failure is a warning and the forward is tried again later.
  Result<void> OpenConfiguredForwards();
  // Serves until it is time to go; returns the process exit status.
  int Run();

  // The control services (master_services.cc).
  control::StatusReply Status() override;
  void Exec(const control::ExecRequest& request, Reply<control::ExecReply> reply) override;
  void DiscoverIp(const control::DiscoverIpRequest& request, Reply<control::DiscoverIpReply> reply) override;
  void StartMoshServer(const control::StartMoshServerRequest& request,
                       Reply<control::StartMoshServerReply> reply) override;
  void StartRelay(const control::StartRelayRequest& request, Reply<control::StartRelayReply> reply) override;
  void Stop(bool when_idle) override;
  void AdoptOpenSshClient(UniqueFd fd, std::vector<std::uint8_t> first_bytes, std::string refusal) override;

 private:
  class IpHost;
  // The server as remote-ip strategies see it, over the main connection (master_services.cc).
  static std::unique_ptr<remoteip::Host> MakeIpHost(SshDriver& driver, std::string host_name);
  using Clock = std::chrono::steady_clock;
  using Link = ConnectionPool::Link;

  void AcceptClients();
  void RunMoshServer(const control::StartMoshServerRequest& request, bool locale_fallback,
                     Reply<control::StartMoshServerReply> reply);
  void RemoveSocket();

  // The loop's steps (Run).
  bool Idle() const;
  std::optional<int> ExitReason(Clock::time_point now);
  // Registers every part for one round, in the order their work is done (see there why).
  void Watch(Poller& poller, Clock::time_point now, bool accepting);
  // Starts relay channels that need one (while the link is up) and drops finished relays.
  void UpdateRelays(Clock::time_point now);
  // ssh -O stop: no new clients; exit once the current ones are done.
  void StopListening();
  // The socket file is checked now and then: removed by someone (an OpenSSH master leaving the
  // same ControlPath, a cleanup script), it is published again; replaced by someone else's, it
  // is left to them and this master takes no new clients.
  void CheckSocket(Clock::time_point now);

  MasterConfig config_;
  ConnectionPool pool_;
  // By id: a relay's poll callback finds it again, or finds it gone.
  std::map<std::uint64_t, std::unique_ptr<MoshOverSsh>> relays_;
  std::uint64_t next_relay_id_ = 1;
  std::uint64_t relay_dropped_ = 0;  // by relays that have finished
  ControlServer server_;
  Forwards forwards_;
  ConfiguredForwards configured_forwards_;
  OpenSshMuxServer openssh_;
  UniqueFd listen_fd_;
  // After an accept() that failed and may have left a client queued (out of fds with no spare):
  // the listening socket is not polled before this, or the loop would spin on it.
  Clock::time_point accept_paused_until_{};
  remoteip::Cache ip_cache_;
  std::unique_ptr<remoteip::Host> ip_host_;
  Clock::time_point started_;
  bool stopping_ = false;
  // The socket file as published (the listening fd's own inode is sockfs's, not the path's).
  ino_t socket_inode_ = 0;
  dev_t socket_device_ = 0;
  Clock::time_point next_socket_check_{};
};

}  // namespace mconnect::mux
