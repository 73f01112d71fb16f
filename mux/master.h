// The master: one authenticated SSH connection to one destination, served on a Unix socket.
// Wires the SSH driver, the control server, the listening socket and the remote-ip cache to a
// single ppoll() loop, and decides when to exit (idle for `persist`, Stop, a signal, or the
// connection lost).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <list>
#include <memory>
#include <string>

#include "base/unique_fd.h"
#include "mux/control_server.h"
#include "mux/forwards.h"
#include "mux/openssh_mux_server.h"
#include "mux/ssh_driver.h"
#include "remote-ip/cache.h"
#include "remote-ip/strategy.h"

namespace mconnect::mux {

struct MasterConfig {
  std::string destination;  // user@host:port, for status and logs
  std::string user;
  std::string host;
  int port = 22;
  std::string socket_path;
  std::chrono::seconds persist{600};  // 0: stay until stopped
  std::chrono::seconds keepalive{30};
  std::chrono::seconds remote_ip_ttl{300};
  // How to open more connections to the same destination when the server's MaxSessions is
  // reached (authentication without a person: agent or unencrypted keys; the host key is known
  // by now, so it is checked strictly).
  ConnectParams connect;
};

class Master : public MasterServices {
 public:
  Master(MasterConfig config, std::unique_ptr<SshConnection> connection, UniqueFd listen_fd);
  ~Master() override;

  // Serves until it is time to go; returns the process exit status.
  int Run();

  control::StatusReply Status() override;
  void Exec(const control::ExecRequest& request, Reply<control::ExecReply> reply) override;
  void DiscoverIp(const control::DiscoverIpRequest& request, Reply<control::DiscoverIpReply> reply) override;
  void StartMoshServer(const control::StartMoshServerRequest& request,
                       Reply<control::StartMoshServerReply> reply) override;
  void Stop() override { stopping_ = true; }
  void AdoptOpenSshClient(UniqueFd fd, std::vector<std::uint8_t> first_bytes) override;

 private:
  class IpHost;
  using Clock = std::chrono::steady_clock;

  void AcceptClients();
  // A task the server refused for lack of room on its connection: run it on another one.
  void Overflow(std::unique_ptr<ChannelTask> task);
  void PumpDrivers();
  std::vector<SshDriver*> Drivers();
  void RunMoshServer(const control::StartMoshServerRequest& request, bool locale_fallback,
                     Reply<control::StartMoshServerReply> reply);
  void RemoveSocket();
  // ssh -O stop: no new clients; exit once the current ones are done.
  void StopListening();

  MasterConfig config_;
  SshDriver driver_;
  std::vector<std::unique_ptr<SshDriver>> extra_;  // overflow connections, opened on demand
  std::uint64_t connections_opened_ = 1;
  ControlServer server_;
  Forwards forwards_;
  OpenSshMuxServer openssh_;
  UniqueFd listen_fd_;
  remoteip::Cache ip_cache_;
  std::unique_ptr<IpHost> ip_host_;
  Clock::time_point started_;
  bool stopping_ = false;
  // The socket file as published (the listening fd's own inode is sockfs's, not the path's).
  ino_t socket_inode_ = 0;
  dev_t socket_device_ = 0;
};

}  // namespace mconnect::mux
