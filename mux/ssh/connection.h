// One authenticated SSH connection: TCP (TCP_NODELAY), handshake, host-key check,
// authentication (mux/ssh/auth.h). Everything here runs once, in the foreground, blocking, with an absolute
// deadline; afterwards the session is switched to non-blocking for the master's event loop.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <expected>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/ssh2.h"
#include "base/unique_fd.h"
#include "mux/ssh/auth.h"
#include "mux/ssh/byte_stream.h"
#include "mux/ssh/host_key.h"

namespace mconnect::mux {

struct ConnectParams {
  std::string user;
  std::string host;            // HostName to connect to
  int port = 22;
  int address_family = AF_UNSPEC;  // AddressFamily: AF_INET or AF_INET6 for one of them only
  std::string host_key_alias;  // HostKeyAlias, if any
  std::vector<std::string> known_hosts_files;
  HostKeyPolicy host_key_policy = HostKeyPolicy::kAsk;
  std::vector<std::string> identity_files;
  bool identities_only = false;
  std::string identity_agent;  // socket path; empty: $SSH_AUTH_SOCK; "none": no agent
  std::string ciphers;         // `ssh -G`'s Ciphers list; empty: none given (mux/ssh/cipher_order.h)
  AuthOptions auth;            // PreferredAuthentications, BatchMode, ... (mux/ssh/auth.h)
  std::chrono::seconds timeout{15};
  // When set, the SSH stream is this command's stdin and stdout (ProxyCommand, or the
  // `ssh -W` that ProxyJump stands for), run through /bin/sh instead of a TCP connection.
  std::string proxy_command;
  // False when no person is there to answer (reconnects, overflow connections): nothing is
  // asked, and what would need an answer fails with OpenFailure::kNeedsPerson.
  bool interactive = true;
};

// Why Open failed. The master's reconnect loop retries kNetwork on its own: whatever passes by
// itself (the network, or something short on this machine: fds, threads, a known_hosts that
// cannot be read now). The others wait for a person (a changed or unknown host key, a
// passphrase, a password, a refused key).
enum class OpenFailure { kNetwork, kHostKey, kAuthentication };
struct OpenError {
  std::string message;
  OpenFailure kind = OpenFailure::kNetwork;
};

// What the user sees while the slow steps run.
using ProgressFn = std::function<void(std::string_view step)>;

class SshConnection {
 public:
  static std::expected<std::unique_ptr<SshConnection>, OpenError> Open(const ConnectParams& params,
                                                                       const ProgressFn& progress);

  LIBSSH2_SESSION* session() const { return session_.get(); }
  int fd() const { return stream_.fd(); }
  // The address the TCP connection reached (the `peer` remote-ip strategy); empty through a
  // proxy command.
  const std::string& peer_address() const { return stream_.peer_address(); }
  ByteStream& stream() { return stream_; }
  const std::string& auth_method() const { return auth_method_; }

  // Sends SSH_MSG_DISCONNECT (best effort) before the session is freed.
  ~SshConnection();

 private:
  SshConnection() = default;
  Result<void> Authenticate(const ConnectParams& params);

  ByteStream stream_;  // declared first: destroyed after the session that uses it
  Ssh2Session session_;
  std::string auth_method_;
};

}  // namespace mconnect::mux
