#include "mux/ssh_connection.h"

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

namespace mconnect::mux {
namespace {

using Clock = std::chrono::steady_clock;

std::string AddressText(const sockaddr* address) {
  char text[INET6_ADDRSTRLEN] = "";
  if (address->sa_family == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(address)->sin_addr, text, sizeof text);
  } else if (address->sa_family == AF_INET6) {
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr, text, sizeof text);
  }
  return text;
}

// Tries each resolved address in turn until one connects or the deadline passes.
Result<std::pair<UniqueFd, std::string>> ConnectTcp(const std::string& host, int port, Clock::time_point deadline) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  std::string service = std::to_string(port);
  int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found);
  if (rc != 0) return Fail("could not resolve hostname {}: {}", host, ::gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses(found, ::freeaddrinfo);

  std::string last_error = "no address";
  for (addrinfo* ai = addresses.get(); ai != nullptr; ai = ai->ai_next) {
    UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol));
    if (!fd) {
      last_error = std::strerror(errno);
      continue;
    }
    if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
      last_error = std::strerror(errno);
      continue;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    pollfd pfd{fd.get(), POLLOUT, 0};
    if (left.count() <= 0 || ::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) {
      last_error = "Connection timed out";
      continue;
    }
    int error = 0;
    socklen_t length = sizeof error;
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &length);
    if (error != 0) {
      last_error = std::strerror(error);
      continue;
    }
    int one = 1;
    // Without TCP_NODELAY the handshake stalls on Nagle + delayed ACK (DESIGN.md: +40 ms at RTT 0).
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    SetNonBlocking(fd.get(), false);
    return std::pair{std::move(fd), AddressText(ai->ai_addr)};
  }
  return Fail("connect to host {} port {}: {}", host, port, last_error);
}

bool Contains(const char* list, std::string_view method) {
  if (list == nullptr) return false;
  std::string_view methods(list);
  std::size_t start = 0;
  while (start <= methods.size()) {
    std::size_t end = methods.find(',', start);
    if (end == std::string_view::npos) end = methods.size();
    if (methods.substr(start, end - start) == method) return true;
    start = end + 1;
  }
  return false;
}

}  // namespace

std::expected<std::unique_ptr<SshConnection>, OpenError> SshConnection::Open(const ConnectParams& params,
                                                                              const ProgressFn& progress) {
  auto failed = [](OpenFailure kind, Error error) { return std::unexpected(OpenError{std::move(error.message), kind}); };
  Ssh2GlobalInit();
  auto deadline = Clock::now() + params.timeout;
  std::unique_ptr<SshConnection> connection(new SshConnection());

  progress("connecting");
  auto tcp = ConnectTcp(params.host, params.port, deadline);
  if (!tcp) return failed(OpenFailure::kNetwork, tcp.error());
  connection->socket_ = std::move(tcp->first);
  connection->peer_address_ = std::move(tcp->second);

  connection->session_.reset(libssh2_session_init());
  LIBSSH2_SESSION* session = connection->session_.get();
  if (session == nullptr) return failed(OpenFailure::kNetwork, Error{"cannot create an SSH session"});
  libssh2_session_set_blocking(session, 1);
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  libssh2_session_set_timeout(session, std::max<long>(1, left.count()));

  HostKeyCheck check;
  check.host = params.host_key_alias.empty() ? params.host : params.host_key_alias;
  check.port = params.host_key_alias.empty() ? params.port : -1;
  check.known_hosts_files = params.known_hosts_files;
  check.policy = params.host_key_policy;
  std::string methods = PreferredHostKeyMethods(check);
  if (libssh2_session_method_pref(session, LIBSSH2_METHOD_HOSTKEY, methods.c_str()) != 0) {
    log::Debug("host key preference {} not accepted: {}", methods, Ssh2LastError(session));
  }

  progress("handshake");
  if (libssh2_session_handshake(session, connection->socket_.get()) != 0) {
    return failed(OpenFailure::kNetwork, Error{fmt::format("SSH handshake with {} port {} failed: {}", params.host,
                                                           params.port, Ssh2LastError(session))});
  }
  auto verified = VerifyHostKey(session, check);
  if (!verified) return failed(OpenFailure::kHostKey, verified.error());

  progress("authenticating");
  auto authenticated = connection->Authenticate(params);
  if (!authenticated) return failed(OpenFailure::kAuthentication, authenticated.error());
  libssh2_session_set_timeout(session, 0);
  return connection;
}

Result<void> SshConnection::Authenticate(const ConnectParams& params) {
  LIBSSH2_SESSION* session = session_.get();
  const char* methods =
      libssh2_userauth_list(session, params.user.c_str(), static_cast<unsigned>(params.user.size()));
  if (methods == nullptr) {
    if (libssh2_userauth_authenticated(session)) {
      auth_method_ = "none";
      return {};
    }
    return Fail("{}@{}: the server offered no authentication methods: {}", params.user, params.host,
                Ssh2LastError(session));
  }
  log::Info("server offers authentication methods: {}", methods);
  if (!Contains(methods, "publickey")) {
    return Fail("{}@{}: the server does not accept public keys (it offers: {})", params.user, params.host, methods);
  }

  std::vector<std::string> tried;
  const std::string& agent_socket = params.identity_agent;
  bool use_agent = !params.identities_only && agent_socket != "none" &&
                   (!agent_socket.empty() || std::getenv("SSH_AUTH_SOCK") != nullptr);
  if (use_agent) {
    Ssh2Agent agent(libssh2_agent_init(session));
    if (agent) {
      if (!agent_socket.empty()) libssh2_agent_set_identity_path(agent.get(), agent_socket.c_str());
      if (libssh2_agent_connect(agent.get()) == 0 && libssh2_agent_list_identities(agent.get()) == 0) {
        libssh2_agent_publickey* identity = nullptr;
        while (libssh2_agent_get_identity(agent.get(), &identity, identity) == 0) {
          tried.push_back(fmt::format("agent key \"{}\"", identity->comment ? identity->comment : ""));
          if (libssh2_agent_userauth(agent.get(), params.user.c_str(), identity) == 0) {
            auth_method_ = "publickey (agent)";
            log::Info("authenticated with {}", tried.back());
            return {};
          }
        }
      } else {
        log::Info("ssh-agent not usable: {}", Ssh2LastError(session));
      }
    }
  }

  for (const auto& file : params.identity_files) {
    if (::access(file.c_str(), R_OK) != 0) continue;
    std::string public_file = file + ".pub";
    bool has_public = ::access(public_file.c_str(), R_OK) == 0;
    tried.push_back(file);
    int rc = libssh2_userauth_publickey_fromfile_ex(session, params.user.c_str(),
                                                    static_cast<unsigned>(params.user.size()),
                                                    has_public ? public_file.c_str() : nullptr, file.c_str(), nullptr);
    if (rc == 0) {
      auth_method_ = "publickey (" + file + ")";
      log::Info("authenticated with {}", file);
      return {};
    }
    log::Info("key {} refused: {}", file, Ssh2LastError(session));
  }
  if (tried.empty()) {
    return Fail("{}@{}: no key to offer (no ssh-agent, and none of the IdentityFile entries exists)", params.user,
                params.host);
  }
  return Fail("{}@{}: permission denied (publickey); tried {}", params.user, params.host, fmt::join(tried, ", "));
}

SshConnection::~SshConnection() {
  if (session_) {
    libssh2_session_set_blocking(session_.get(), 0);
    libssh2_session_disconnect(session_.get(), "mconnect master exiting");
  }
}

}  // namespace mconnect::mux
