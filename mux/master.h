// The master: one authenticated SSH connection to one destination, served on a Unix socket.
// Wires the SSH driver, the control server, the listening socket and the remote-ip cache to a
// single ppoll() loop, and decides when to exit (idle for `persist`, Stop, a signal, or the
// connection lost).
#pragma once

#include <poll.h>
#include <sys/types.h>

#include <chrono>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "mux/control/server.h"
#include "mux/forward/forwards.h"
#include "mux/mosh_over_ssh/mosh_over_ssh.h"
#include "mux/openssh/server.h"
#include "mux/reconnector.h"
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
  // How to open more connections to the same destination, when the server's MaxSessions is
  // reached or the connection was lost (authentication without a person: agent or unencrypted
  // keys; the host key is known by now, so it is checked strictly).
  ConnectParams connect;
};

class Master : public MasterServices {
 public:
  // All the SSH connections a master keeps to its server (the main one and those it opens past
  // sshd's MaxSessions). Connections opened at once (each on a thread of its own), and the most a
  // burst of channel opens may bring about (past sshd's MaxSessions more follow), are below.
  static constexpr std::size_t kMaxConnections = 32;

  Master(MasterConfig config, std::unique_ptr<SshConnection> connection, UniqueFd listen_fd);
  ~Master() override;

  // Serves until it is time to go; returns the process exit status.
  int Run();

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
  using Clock = std::chrono::steady_clock;
  static constexpr int kParallelOpens = 4;
  static constexpr std::size_t kMaxBurstConnections = 8;
  // Unopened tasks a connection keeps in its own queue; more are spread or wait in the master.
  static constexpr std::size_t kKeepOpens = 2;
  // The main connection: up; lost and being re-opened; lost for good until a person helps.
  enum class Link { kUp, kReconnecting, kNeedsPerson };

  void AcceptClients();
  // An overflow connection being opened is there, or failed: the waiting tasks go on it, or
  // back to the main connection, or (when nothing can take them) fail.
  void OnOverflowOpened(Reconnector& opener);
  // Starts opening another overflow connection on a free opener (see MayOpenAnother).
  void OpenAnotherConnection();
  // Whether the cap on connections, the openers and the fd budget allow one more now.
  bool MayOpenAnother(Clock::time_point now) const;
  // Tasks waiting for room (overflow_waiting_) go to a connection that has it, or to one being
  // opened, or make one be opened; at the cap they wait for a channel to close.
  void PlaceWaiting(Clock::time_point now);
  // Sessions the server allows on one connection, as seen on a full one (else sshd's default).
  std::size_t SessionsPerConnection();
  // Spreads tasks that queue for a channel open (one at a time per connection, a round trip
  // each) over the connections there are, and opens more when a burst outgrows them.
  void BalanceOpens(Clock::time_point now);
  // A task the server refused for lack of room on its connection: run it on another one.
  void Overflow(std::unique_ptr<ChannelTask> task);
  void PumpDrivers();
  std::vector<SshDriver*> Drivers();
  void RunMoshServer(const control::StartMoshServerRequest& request, bool locale_fallback,
                     Reply<control::StartMoshServerReply> reply);
  void RemoveSocket();
  void OnConnectionLost(Clock::time_point now);
  // Starts a reconnect attempt when one is due; returns when the next one is due, if any.
  std::optional<Clock::time_point> ScheduleReconnect(Clock::time_point now);
  void OnReconnectOutcome(Clock::time_point now);
  // Whatever a proxy command wrote to its stderr goes to the log.
  void LogProxyErrors();

  // The loop's steps (Run). The poll set's fixed entries come first, then one range per part.
  static constexpr std::size_t kListenEntry = 0;
  static constexpr std::size_t kReconnectorEntry = 2;
  static constexpr std::size_t kProxyErrorsEntry = 3;
  struct PollLayout {
    std::size_t first_opener = 0;
    std::size_t first_client = 0;  // the control server's clients
    std::size_t openssh_begin = 0;
    std::size_t forwards_begin = 0;
    std::size_t relays_begin = 0;
  };
  bool Idle() const;
  std::optional<int> ExitReason(Clock::time_point now);
  std::optional<Clock::time_point> NextWake(Clock::time_point now, bool accepting);
  PollLayout BuildPollSet(std::vector<pollfd>& fds, bool accepting);
  void Dispatch(std::vector<pollfd>& fds, const PollLayout& layout, int ready, bool accepting);
  // Starts relay channels that need one (while the link is up) and drops finished relays.
  void UpdateRelays(Clock::time_point now);
  // ssh -O stop: no new clients; exit once the current ones are done.
  void StopListening();
  // The socket file is checked now and then: removed by someone (an OpenSSH master leaving the
  // same ControlPath, a cleanup script), it is published again; replaced by someone else's, it
  // is left to them and this master takes no new clients.
  void CheckSocket(Clock::time_point now);

  MasterConfig config_;
  SshDriver driver_;
  std::vector<std::unique_ptr<SshDriver>> extra_;  // overflow connections, opened on demand
  std::uint64_t connections_opened_ = 1;
  Link link_ = Link::kUp;
  std::string link_detail_;  // why the link is not up
  Reconnector reconnector_;
  // Overflow connections open on threads too (Reconnector), several at once, so that the burst
  // of sessions that needs them does not stop the loop for a TCP connect, key exchange and
  // authentication, nor wait for them one after another; the tasks wait here meanwhile.
  std::vector<std::unique_ptr<Reconnector>> openers_;
  std::vector<std::unique_ptr<ChannelTask>> overflow_waiting_;
  Clock::time_point next_open_{};  // after a failed overflow connection, not before this
  int attempts_ = 0;  // since the connection was lost
  Clock::time_point down_since_;
  Clock::time_point next_attempt_;
  Clock::time_point last_attempt_end_;
  std::uint64_t reconnects_ = 0;
  std::vector<std::unique_ptr<MoshOverSsh>> relays_;
  std::uint64_t relay_dropped_ = 0;  // by relays that have finished
  ControlServer server_;
  Forwards forwards_;
  OpenSshMuxServer openssh_;
  UniqueFd listen_fd_;
  // After an accept() that failed and may have left a client queued (out of fds with no spare):
  // the listening socket is not polled before this, or the loop would spin on it.
  Clock::time_point accept_paused_until_{};
  remoteip::Cache ip_cache_;
  std::unique_ptr<IpHost> ip_host_;
  Clock::time_point started_;
  bool stopping_ = false;
  // The socket file as published (the listening fd's own inode is sockfs's, not the path's).
  ino_t socket_inode_ = 0;
  dev_t socket_device_ = 0;
  Clock::time_point next_socket_check_{};
};

}  // namespace mconnect::mux
