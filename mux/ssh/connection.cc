#include "mux/ssh/connection.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/ranges.h>

#include "base/log.h"
#include "mux/ssh/byte_stream.h"
#include "mux/ssh/cipher_order.h"

namespace mconnect::mux {
namespace {

using Clock = std::chrono::steady_clock;

// libssh2's reads from the first byte of the handshake on: RecvAckingSmall (the handshake and
// authentication are runs of small messages). SshDriver installs its own once connected.
ssize_t HandshakeRecv(libssh2_socket_t socket, void* buffer, size_t length, int flags, void** /*abstract*/) {
  return RecvAckingSmall(socket, buffer, length, flags);
}

}  // namespace

std::expected<std::unique_ptr<SshConnection>, OpenError> SshConnection::Open(const ConnectParams& params,
                                                                              const ProgressFn& progress) {
  auto failed = [](OpenFailure kind, Error error) { return std::unexpected(OpenError{std::move(error.message), kind}); };
  Ssh2GlobalInit();
  auto deadline = Clock::now() + params.timeout;
  std::unique_ptr<SshConnection> connection(new SshConnection());

  // Read known_hosts (ssh-keygen -F for hashed entries) before connecting: it takes a few ms
  // that the server would otherwise wait through after accepting.
  HostKeyCheck check;
  check.host = params.host_key_alias.empty() ? params.host : params.host_key_alias;
  check.port = params.host_key_alias.empty() ? params.port : -1;
  check.known_hosts_files = params.known_hosts_files;
  check.policy = params.host_key_policy;
  std::string methods = PreferredHostKeyMethods(check);

  progress("connecting");
  auto stream = params.proxy_command.empty()
                    ? ByteStream::ConnectTcp(params.host, params.port, params.address_family, deadline)
                    : ByteStream::StartProxy(params.proxy_command);
  if (!stream) return failed(OpenFailure::kNetwork, stream.error());
  connection->stream_ = std::move(*stream);

  connection->session_.reset(NewSession());  // clears every block libssh2 frees (mux/ssh/auth.h)
  LIBSSH2_SESSION* session = connection->session_.get();
  if (session == nullptr) return failed(OpenFailure::kNetwork, Error{"cannot create an SSH session"});
  libssh2_session_set_blocking(session, 1);
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  libssh2_session_set_timeout(session, std::max<long>(1, left.count()));

  if (libssh2_session_method_pref(session, LIBSSH2_METHOD_HOSTKEY, methods.c_str()) != 0) {
    log::Debug("host key preference {} not accepted: {}", methods, Ssh2LastError(session));
  }
  if (std::string ciphers = CipherPreference(params.ciphers, CpuHasAesInstructions()); !ciphers.empty()) {
    for (int direction : {LIBSSH2_METHOD_CRYPT_CS, LIBSSH2_METHOD_CRYPT_SC}) {
      if (libssh2_session_method_pref(session, direction, ciphers.c_str()) != 0) {
        log::Debug("cipher preference {} not accepted: {}", ciphers, Ssh2LastError(session));
      }
    }
  }

  libssh2_session_callback_set2(session, LIBSSH2_CALLBACK_RECV, reinterpret_cast<libssh2_cb_generic*>(&HandshakeRecv));
  progress("handshake");
  if (libssh2_session_handshake(session, connection->stream_.fd()) != 0) {
    std::string why = Ssh2LastError(session);
    // Through a proxy, its own complaint says more than libssh2's "connection closed".
    for (const auto& line : connection->stream_.TakeErrors(true)) why += "; proxy: " + line;
    return failed(OpenFailure::kNetwork,
                  Error{fmt::format("SSH handshake with {} port {} failed: {}", params.host, params.port, why)});
  }
  auto method = [session](int which) {
    const char* name = libssh2_session_methods(session, which);
    return name != nullptr ? name : "?";
  };
  log::Info("negotiated {}, host key {}, cipher {} / {}, MAC {} / {}", method(LIBSSH2_METHOD_KEX),
            method(LIBSSH2_METHOD_HOSTKEY), method(LIBSSH2_METHOD_CRYPT_CS), method(LIBSSH2_METHOD_CRYPT_SC),
            method(LIBSSH2_METHOD_MAC_CS), method(LIBSSH2_METHOD_MAC_SC));
  auto verified = VerifyHostKey(session, check);
  if (!verified) {
    // A known_hosts that cannot be read now (out of fds...) says nothing about the key: retried
    // like the network, not handed to a person as an unknown key would be.
    const bool unreadable = verified.error().kind == HostKeyFailure::kUnreadable;
    return failed(unreadable ? OpenFailure::kNetwork : OpenFailure::kHostKey, Error{verified.error().message});
  }

  progress("authenticating");
  auto authenticated = connection->Authenticate(params);
  if (!authenticated) return failed(OpenFailure::kAuthentication, authenticated.error());
  libssh2_session_set_timeout(session, 0);
  return connection;
}

Result<void> SshConnection::Authenticate(const ConnectParams& params) {
  AuthRequest request;
  request.user = params.user;
  // ssh names the HostKeyAlias, when there is one, in its password prompts.
  request.host = params.host_key_alias.empty() ? params.host : params.host_key_alias;
  request.identity_files = params.identity_files;
  request.identities_only = params.identities_only;
  request.identity_agent = params.identity_agent;
  request.options = params.auth;
  request.interactive = params.interactive;
  auto method = mux::Authenticate(session_.get(), request);
  if (!method) return Fail(method.error());
  auth_method_ = std::move(*method);
  return {};
}

SshConnection::~SshConnection() {
  if (session_) {
    libssh2_session_set_blocking(session_.get(), 0);
    libssh2_session_disconnect(session_.get(), "mconnect master exiting");
    // A non-blocking session_free that must still close open channels (the spare one) waits for
    // the server's answer, gets EAGAIN, gives up half way and leaks the session (valgrind saw
    // 81 KiB). With the socket shut down, those goodbyes fail at once and everything is freed.
    ::shutdown(stream_.fd(), SHUT_RDWR);
  }
}

}  // namespace mconnect::mux
