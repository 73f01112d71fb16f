#include "mux/forward/forwards.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "base/log.h"
#include "mux/fd_budget/fd_budget.h"

namespace mconnect::mux {
namespace {

// Addresses one forward listens on: "localhost" is two; a name with more addresses stops there.
constexpr std::size_t kMaxListenAddresses = 8;

// Where a -L or -D forward listens, as ssh decides for its own listeners (channels.c,
// channel_fwd_bind_addr, with GatewayPorts no): no address or "localhost" is every loopback
// address (127.0.0.1 and ::1), "*" every address of each family, anything else that address.
struct BindAddress {
  std::optional<std::string> node;  // nullopt: getaddrinfo's own loopback or wildcard addresses
  bool wildcard = false;
  std::string described;            // for messages: "localhost", "*" or the address
};

BindAddress BindAddressOf(const std::string& listen_host) {
  if (listen_host.empty() || listen_host == "localhost") return {std::nullopt, false, "localhost"};
  if (listen_host == "*") return {std::nullopt, true, "*"};
  return {listen_host, false, listen_host};
}

std::string NumericAddress(const addrinfo& ai) {
  char host[NI_MAXHOST] = "?";
  ::getnameinfo(ai.ai_addr, ai.ai_addrlen, host, sizeof host, nullptr, 0, NI_NUMERICHOST);
  return host;
}

// One listening socket per address the bind address stands for. As ssh does, an address that
// cannot be bound (its port taken, its family missing) is no error while another binds; each
// address binds `port` on its own (port 0: each family gets a port of its own, as with ssh -L 0).
Result<std::vector<UniqueFd>> ListenTcp(const BindAddress& bind, std::uint32_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (bind.wildcard ? AI_PASSIVE : 0);
  addrinfo* found = nullptr;
  std::string service = std::to_string(port);
  if (int rc = ::getaddrinfo(bind.node ? bind.node->c_str() : nullptr, service.c_str(), &hints, &found); rc != 0) {
    return Fail("cannot resolve listen address {}: {}", bind.described, ::gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses(found, ::freeaddrinfo);
  std::vector<UniqueFd> fds;
  std::vector<std::string> errors;
  for (addrinfo* ai = addresses.get(); ai != nullptr && fds.size() < kMaxListenAddresses; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol));
    int one = 1;
    if (fd) ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    // The IPv6 socket leaves the IPv4 addresses to the IPv4 one (the wildcard :: would take both).
    if (fd && ai->ai_family == AF_INET6) ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (fd && ::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd.get(), 64) == 0) {
      fds.push_back(std::move(fd));
    } else {
      int error = errno;  // before getnameinfo may change it
      errors.push_back(fmt::format("{}: {}", NumericAddress(*ai), std::strerror(error)));
    }
  }
  if (fds.empty()) {
    return Fail("cannot listen on {} port {}: {}", bind.described, port,
                errors.empty() ? std::string("no address") : fmt::format("{}", fmt::join(errors, "; ")));
  }
  for (const auto& error : errors) log::Info("forward on {} port {}: not on {}", bind.described, port, error);
  return fds;
}

bool SameListen(const openssh::ForwardSpec& a, const openssh::ForwardSpec& b) {
  return a.type == b.type && BindAddressOf(a.listen_host).described == BindAddressOf(b.listen_host).described &&
         a.listen_port == b.listen_port;
}

}  // namespace

void Forwards::Open(const openssh::ForwardSpec& spec, Opened done) {
  if (spec.type == openssh::kMuxFwdRemote) return OpenRemote(spec, std::move(done));
  auto opened = OpenLocal(spec);
  if (!opened) return done(Fail(opened.error()));
  done(std::uint32_t{0});
}

void Forwards::OpenRemote(const openssh::ForwardSpec& spec, Opened done) {
  if (spec.listen_port == openssh::kPortStreamLocal || spec.connect_port == openssh::kPortStreamLocal) {
    return done(Fail("forwarding Unix sockets is not supported by mconnect yet"));
  }
  // As ssh does: no address means the server's loopback, "*" every address.
  std::string host = spec.listen_host.empty() ? "localhost" : spec.listen_host == "*" ? "" : spec.listen_host;
  auto shared = std::make_shared<RemoteListenJob::Shared>();
  remote_listeners_.push_back({spec, shared});
  auto* listener = &remote_listeners_.back();
  driver_.StartJob(std::make_unique<RemoteListenJob>(
      host, static_cast<int>(spec.listen_port), shared,
      [this, listener, done = std::move(done)](Result<int> bound) {
        if (!bound) {
          remote_listeners_.remove_if([listener](const RemoteListener& l) { return &l == listener; });
          return done(Fail(bound.error()));
        }
        listener->spec.listen_port = static_cast<std::uint32_t>(*bound);
        log::Info("forward -R listening on the server at {}:{} -> {}:{}", listener->spec.listen_host, *bound,
                  listener->spec.connect_host, listener->spec.connect_port);
        done(static_cast<std::uint32_t>(*bound));
      },
      [this, listener](LIBSSH2_CHANNEL* channel) { AcceptRemote(listener->spec, channel); }));
}

Forwards::Connection& Forwards::AcceptChannel(SshDriver& driver, LIBSSH2_CHANNEL* channel) {
  Connection& connection = NewConnection();
  connection.pipes = std::make_shared<ChannelPipes>();
  driver.Adopt(channel, std::make_unique<AcceptedForwardTask>(connection.pipes));
  return connection;
}

void Forwards::ConnectLocal(Connection& connection, const sockaddr* address, socklen_t length,
                            const std::string& what) {
  UniqueFd socket(::socket(address->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!socket || (::connect(socket.get(), address, length) != 0 && errno != EINPROGRESS)) {
    log::Info("cannot connect to {}: {}", what, std::strerror(errno));
    return Finish(connection);
  }
  connection.socket = std::move(socket);
  connection.connecting = true;
}

void Forwards::AcceptInbound(SshDriver& driver, SshDriver::Inbound kind, LIBSSH2_CHANNEL* channel) {
  Connection& connection = AcceptChannel(driver, channel);
  if (kind == SshDriver::Inbound::kX11) return AcceptX11(connection);
  if (agent_socket_.empty()) {
    log::Warn("a session's agent connection closed: the master has no agent (SSH_AUTH_SOCK was unset when it "
              "started, and ForwardAgent names no socket)");
    return Finish(connection);
  }
  log::Debug("agent connection from the server to {}", agent_socket_);
  ConnectUnix(connection, agent_socket_, "the agent at " + agent_socket_);
}

void Forwards::AcceptX11(Connection& connection) {
  auto local = x11_.Local();
  if (!local) {
    log::Warn("the server opened an X11 channel, but the master has no local display");
    return Finish(connection);
  }
  log::Debug("X11 connection from the server to {}", local->socket_path);
  connection.x11_setup_pending = true;
  ConnectUnix(connection, local->socket_path, "the X display at " + local->socket_path);
}

void Forwards::SpoofX11(Connection& connection) {
  ChannelPipes& pipes = *connection.pipes;
  if (pipes.stdout_data.empty()) return;
  // The setup is at most 12 + 2 × 65538 bytes, within what the pipes hold (kBufferLimit).
  std::string head = pipes.stdout_data.ToString();
  auto step = x11::Spoof(head, x11_.grants());
  if (!step) {
    log::Warn("X11 connection from the server closed: {}", step.error());
    return Finish(connection);
  }
  if (std::holds_alternative<x11::NeedMore>(*step)) {
    if (pipes.remote_eof) Finish(connection);
    return;
  }
  const auto& spoofed = std::get<x11::Spoofed>(*step);
  pipes.stdout_data.consume(spoofed.consumed);
  pipes.stdout_data.prepend(spoofed.setup);
  connection.x11_setup_pending = false;
}

void Forwards::ConnectUnix(Connection& connection, const std::string& path, const std::string& what) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof address.sun_path) {
    log::Warn("cannot connect to {}: the path is too long for a Unix socket", what);
    return Finish(connection);
  }
  if (FdBudget::Room() == 0) {
    log::Warn("out of file descriptors; refusing a connection to {}", what);
    return Finish(connection);
  }
  std::memcpy(address.sun_path, path.data(), path.size());
  ConnectLocal(connection, reinterpret_cast<const sockaddr*>(&address), sizeof address, what);
}

void Forwards::AcceptRemote(const openssh::ForwardSpec& spec, LIBSSH2_CHANNEL* channel) {
  Connection& connection = AcceptChannel(driver_, channel);
  if (FdBudget::Room() == 0) {
    log::Warn("-R: out of file descriptors; refusing a connection to {}:{}", spec.connect_host, spec.connect_port);
    return Finish(connection);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  std::string service = std::to_string(spec.connect_port);
  if (::getaddrinfo(spec.connect_host.c_str(), service.c_str(), &hints, &found) != 0 || found == nullptr) {
    log::Info("-R: cannot resolve {}", spec.connect_host);
    return Finish(connection);
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses(found, ::freeaddrinfo);
  ConnectLocal(connection, found->ai_addr, found->ai_addrlen,
               fmt::format("-R's destination {}:{}", spec.connect_host, spec.connect_port));
}

Result<void> Forwards::OpenLocal(const openssh::ForwardSpec& spec) {
  if (spec.listen_port == openssh::kPortStreamLocal || spec.connect_port == openssh::kPortStreamLocal) {
    return Fail("forwarding Unix sockets is not supported by mconnect yet");
  }
  for (const auto& listener : listeners_) {
    if (SameListen(listener.spec, spec)) return {};  // OpenSSH answers OK to a repeat too
  }
  BindAddress bind = BindAddressOf(spec.listen_host);
  auto fds = ListenTcp(bind, spec.listen_port);
  if (!fds) return Fail(fds.error());
  log::Info("forward {} listening on {} port {} ({} socket{}){}", spec.type == openssh::kMuxFwdDynamic ? "-D" : "-L",
            bind.described, spec.listen_port, fds->size(), fds->size() == 1 ? "" : "s",
            spec.type == openssh::kMuxFwdDynamic ? "" : fmt::format(" -> {}:{}", spec.connect_host, spec.connect_port));
  listeners_.push_back({next_id_++, spec, std::move(*fds)});
  return {};
}

Result<void> Forwards::Close(const openssh::ForwardSpec& spec) {
  if (spec.type == openssh::kMuxFwdRemote) {
    for (auto it = remote_listeners_.begin(); it != remote_listeners_.end(); ++it) {
      if (it->spec.listen_port == spec.listen_port && it->spec.listen_host == spec.listen_host) {
        it->shared->cancel = true;
        remote_listeners_.erase(it);
        return {};
      }
    }
    return Fail("no such forward");
  }
  for (auto it = listeners_.begin(); it != listeners_.end(); ++it) {
    if (SameListen(it->spec, spec)) {
      listeners_.erase(it);
      return {};
    }
  }
  return Fail("no such forward");
}

Forwards::Connection& Forwards::NewConnection() {
  Connection& connection = connections_.emplace_back();
  connection.id = next_id_++;
  return connection;
}

void Forwards::Watch(Poller& poller) {
  const auto now = std::chrono::steady_clock::now();
  for (const auto& listener : listeners_) {
    for (std::size_t index = 0; index < listener.fds.size(); ++index) {
      poller.Watch(listener.fds[index].get(), static_cast<short>(now < listener.paused_until ? 0 : POLLIN),
                   [this, id = listener.id, index](short revents) {
                     if (revents & POLLIN) OnListenerReady(id, index);
                   });
    }
  }
  std::vector<pollfd> fds;
  for (const auto& connection : connections_) {
    fds.clear();
    if (connection.connecting || !connection.pipes) {
      // Our connect in progress (-R), or the SOCKS negotiation.
      fds.push_back({connection.socket.get(), static_cast<short>(connection.connecting ? POLLOUT : POLLIN), 0});
      fds.push_back({-1, 0, 0});
      fds.push_back({-1, 0, 0});
    } else {
      AddLocalPollFds(EndsOf(connection), *connection.pipes, fds);
    }
    poller.Watch(fds, [this, id = connection.id](std::span<const pollfd> mine) { OnConnectionReady(id, mine); });
  }
  poller.Then([this] { Update(); });
  poller.WakeBy(NextDeadline());
}

void Forwards::OnListenerReady(std::uint64_t id, std::size_t index) {
  auto listener = std::ranges::find(listeners_, id, &Listener::id);
  if (listener != listeners_.end() && index < listener->fds.size()) Accept(*listener, listener->fds[index].get());
}

void Forwards::OnConnectionReady(std::uint64_t id, std::span<const pollfd> mine) {
  auto found = std::ranges::find(connections_, id, &Connection::id);
  if (found == connections_.end() || found->done) return;
  Connection& connection = *found;
  if (connection.connecting) {
    if (mine[0].revents == 0) return;
    int error = 0;
    socklen_t length = sizeof error;
    ::getsockopt(connection.socket.get(), SOL_SOCKET, SO_ERROR, &error, &length);
    if (error != 0) {
      log::Info("connecting a forwarded channel's local end failed: {}", std::strerror(error));
      Finish(connection);
    }
    connection.connecting = false;
    return;
  }
  if (!connection.pipes) {
    if (mine[0].revents) Negotiate(connection);
    return;
  }
  if (!PumpLocalEnds(EndsOf(connection), *connection.pipes, mine.data())) connection.pipes->client_gone = true;
}

LocalEnds Forwards::EndsOf(const Connection& connection) {
  int socket = connection.socket.get();
  return LocalEnds{socket, connection.x11_setup_pending ? -1 : socket, -1, nullptr};
}

std::optional<std::chrono::steady_clock::time_point> Forwards::NextDeadline() const {
  std::optional<std::chrono::steady_clock::time_point> next;
  const auto now = std::chrono::steady_clock::now();
  for (const auto& listener : listeners_) {
    if (listener.paused_until > now && (!next || listener.paused_until < *next)) next = listener.paused_until;
  }
  return next;
}

void Forwards::Accept(Listener& listener, int listen_fd) {
  std::size_t room = FdBudget::Room();
  for (int i = 0; i < 16; ++i) {
    if (room == 0) {
      log::Warn("forward on port {}: out of file descriptors; connections wait", listener.spec.listen_port);
      listener.paused_until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
      return;
    }
    --room;
    sockaddr_storage peer{};
    socklen_t length = sizeof peer;
    UniqueFd socket(::accept4(listen_fd, reinterpret_cast<sockaddr*>(&peer), &length,
                              SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!socket) return;
    Connection& connection = NewConnection();
    connection.socket = std::move(socket);
    connection.dynamic = listener.spec.type == openssh::kMuxFwdDynamic;
    if (!connection.dynamic) {
      StartChannel(connection, listener.spec.connect_host, static_cast<int>(listener.spec.connect_port));
    }
  }
}

void Forwards::Negotiate(Connection& connection) {
  std::uint8_t buffer[1024];
  ssize_t n = ::read(connection.socket.get(), buffer, sizeof buffer);
  if (n <= 0) {
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    return Finish(connection);
  }
  connection.negotiation.insert(connection.negotiation.end(), buffer, buffer + n);
  while (!connection.pipes && !connection.done) {
    auto step = socks::ParseSocks(connection.negotiation, connection.stage);
    if (!step) {
      log::Info("SOCKS client refused: {}", socks::SocksErrorName(step.error().kind));
      if (!step.error().reply.empty()) {
        (void)::send(connection.socket.get(), step.error().reply.data(), step.error().reply.size(), MSG_NOSIGNAL);
      }
      return Finish(connection);
    }
    if (std::holds_alternative<socks::NeedMore>(*step)) return;
    if (auto* reply = std::get_if<socks::ReplyAndContinue>(&*step)) {
      (void)::send(connection.socket.get(), reply->reply.data(), reply->reply.size(), MSG_NOSIGNAL);
      connection.negotiation.erase(connection.negotiation.begin(),
                                   connection.negotiation.begin() + static_cast<std::ptrdiff_t>(reply->consumed));
      connection.stage = reply->next;
      continue;
    }
    const auto& request = std::get<socks::Request>(*step);
    connection.version = request.version;
    std::string early(connection.negotiation.begin() + static_cast<std::ptrdiff_t>(request.consumed),
                      connection.negotiation.end());
    connection.negotiation.clear();
    StartChannel(connection, request.host, request.port);
    connection.pipes->to_remote.append(early);  // application data sent before our reply
  }
}

void Forwards::StartChannel(Connection& connection, const std::string& host, int port) {
  connection.pipes = std::make_shared<ChannelPipes>();
  sockaddr_storage peer{};
  socklen_t length = sizeof peer;
  char address[INET6_ADDRSTRLEN] = "127.0.0.1";
  int origin_port = 0;
  if (::getpeername(connection.socket.get(), reinterpret_cast<sockaddr*>(&peer), &length) == 0) {
    if (peer.ss_family == AF_INET) {
      auto* in = reinterpret_cast<sockaddr_in*>(&peer);
      ::inet_ntop(AF_INET, &in->sin_addr, address, sizeof address);
      origin_port = ntohs(in->sin_port);
    } else if (peer.ss_family == AF_INET6) {
      auto* in6 = reinterpret_cast<sockaddr_in6*>(&peer);
      ::inet_ntop(AF_INET6, &in6->sin6_addr, address, sizeof address);
      origin_port = ntohs(in6->sin6_port);
    }
  }
  log::Debug("forwarded connection from {}:{} to {}:{}", address, origin_port, host, port);
  driver_.Start(std::make_unique<ForwardTask>(host, port, address, origin_port, connection.pipes));
}

void Forwards::Update() {
  for (auto& connection : connections_) {
    if (connection.done || !connection.pipes) continue;
    ChannelPipes& pipes = *connection.pipes;
    if (connection.x11_setup_pending) {
      SpoofX11(connection);
      if (connection.done) continue;
    }
    bool socks_pending = connection.dynamic && !connection.replied;
    if (socks_pending && (pipes.opened || !pipes.failure.empty())) {
      bool granted = pipes.opened;
      auto reply = *connection.version == socks::Version::kSocks5
                       ? socks::Socks5Reply(granted ? socks::kSocks5Succeeded : socks::kSocks5ConnectionRefused)
                       : socks::Socks4Reply(granted);
      pipes.stdout_data.prepend(std::string_view(reinterpret_cast<const char*>(reply.data()), reply.size()));
      connection.replied = true;
      if (!granted) {
        (void)::send(connection.socket.get(), reply.data(), reply.size(), MSG_NOSIGNAL);
        Finish(connection);
        continue;
      }
    }
    if (pipes.remote_eof && pipes.stdout_data.empty() && !connection.output_shut) {
      // The far end closed first (an HTTP/1.0 server): pass its EOF on, and keep reading what the
      // local client still sends until it closes too.
      ::shutdown(connection.socket.get(), SHUT_WR);
      connection.output_shut = true;
    }
    if (!pipes.failure.empty() && !pipes.opened) {
      log::Info("forwarded connection refused by the server: {}", pipes.failure);
      Finish(connection);
    } else if (pipes.finished && pipes.stdout_data.empty()) {
      Finish(connection);
    } else if (pipes.client_gone && pipes.finished) {
      Finish(connection);
    }
  }
  connections_.remove_if([](const Connection& connection) { return connection.done; });
}

void Forwards::Finish(Connection& connection) {
  if (connection.pipes && !connection.pipes->finished) connection.pipes->client_gone = true;
  connection.socket.Reset();
  connection.done = true;
}

}  // namespace mconnect::mux
