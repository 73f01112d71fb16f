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
#include <span>
#include <string_view>
#include <variant>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "base/log.h"
#include "mux/fd_budget/fd_budget.h"

namespace mconnect::mux {
namespace {

bool SameListen(const openssh::ForwardSpec& a, const openssh::ForwardSpec& b) {
  if (a.type != b.type || a.listen_port != b.listen_port) return false;
  if (a.listen_port == openssh::kPortStreamLocal) return a.listen_host == b.listen_host;
  return BindAddressOf(a.listen_host).described == BindAddressOf(b.listen_host).described;
}

// OpenSSH's remote dynamic forward (-R [bind:]port alone): connect port 0, host "socks".
bool RemoteDynamic(const openssh::ForwardSpec& spec) {
  return spec.type == openssh::kMuxFwdRemote && spec.connect_port == 0;
}

std::vector<std::uint8_t> SocksAnswer(socks::Version version, bool granted) {
  return version == socks::Version::kSocks5
             ? socks::Socks5Reply(granted ? socks::kSocks5Succeeded : socks::kSocks5ConnectionRefused)
             : socks::Socks4Reply(granted);
}

std::string_view AsText(std::span<const std::uint8_t> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

}  // namespace

void Forwards::Open(const openssh::ForwardSpec& spec, Opened done) {
  if (spec.type == openssh::kMuxFwdRemote) return OpenRemote(spec, std::move(done));
  auto opened = OpenLocal(spec);
  if (!opened) return done(Fail(opened.error()));
  done(std::uint32_t{0});
}

void Forwards::OpenRemote(const openssh::ForwardSpec& spec, Opened done) {
  if (spec.listen_port == openssh::kPortStreamLocal) {
    return done(Fail("mconnect cannot listen on a Unix socket on the server: libssh2 has no "
                     "streamlocal-forward@openssh.com"));
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
        log::Info("forward -R listening on the server at {}:{} -> {}", listener->spec.listen_host, *bound,
                  RemoteDynamic(listener->spec)
                      ? std::string("SOCKS here")
                      : Endpoint(listener->spec.connect_host, listener->spec.connect_port));
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
  if (FdBudget::Room() == 0) {
    log::Warn("out of file descriptors; refusing a connection to {}", what);
    return Finish(connection);
  }
  auto socket = mux::ConnectLocal(path, openssh::kPortStreamLocal);
  if (!socket) {
    log::Info("{}: {}", what, socket.error().message);
    return Finish(connection);
  }
  connection.socket = std::move(*socket);
  connection.connecting = true;
}

void Forwards::AcceptRemote(const openssh::ForwardSpec& spec, LIBSSH2_CHANNEL* channel) {
  Connection& connection = AcceptChannel(driver_, channel);
  std::string destination = RemoteDynamic(spec) ? "SOCKS" : Endpoint(spec.connect_host, spec.connect_port);
  if (FdBudget::Room() == 0) {
    log::Warn("-R: out of file descriptors; refusing a connection to {}", destination);
    return Finish(connection);
  }
  if (RemoteDynamic(spec)) {
    connection.dynamic = connection.socks_on_channel = true;
    return;
  }
  auto socket = mux::ConnectLocal(spec.connect_host, spec.connect_port);
  if (!socket) {
    log::Info("-R: {}", socket.error().message);
    return Finish(connection);
  }
  connection.socket = std::move(*socket);
  connection.connecting = true;
}

Result<void> Forwards::OpenLocal(const openssh::ForwardSpec& spec) {
  for (const auto& listener : listeners_) {
    if (SameListen(listener.spec, spec)) return {};  // OpenSSH answers OK to a repeat too
  }
  auto socket = ListenLocal(spec.listen_host, spec.listen_port);
  if (!socket) return Fail(socket.error());
  const std::string where = spec.listen_port == openssh::kPortStreamLocal
                                ? spec.listen_host
                                : fmt::format("{} port {} ({} socket{})", BindAddressOf(spec.listen_host).described,
                                              spec.listen_port, socket->fds.size(), socket->fds.size() == 1 ? "" : "s");
  log::Info("forward {} listening on {}{}", spec.type == openssh::kMuxFwdDynamic ? "-D" : "-L", where,
            spec.type == openssh::kMuxFwdDynamic ? "" : " -> " + Endpoint(spec.connect_host, spec.connect_port));
  listeners_.push_back({next_id_++, spec, std::move(*socket)});
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
    for (std::size_t index = 0; index < listener.socket.fds.size(); ++index) {
      poller.Watch(listener.socket.fds[index].get(), static_cast<short>(now < listener.paused_until ? 0 : POLLIN),
                   [this, id = listener.id, index](short revents) {
                     if (revents & POLLIN) OnListenerReady(id, index);
                   });
    }
  }
  std::vector<pollfd> fds;
  for (const auto& connection : connections_) {
    fds.clear();
    if (!connection.socket) {
      // Remote dynamic before its connect here: only the channel moves.
      fds.assign(3, pollfd{-1, 0, 0});
    } else if (connection.connecting || !connection.pipes) {
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
  if (listener != listeners_.end() && index < listener->socket.fds.size()) Accept(*listener, listener->socket.fds[index].get());
}

void Forwards::OnConnectionReady(std::uint64_t id, std::span<const pollfd> mine) {
  auto found = std::ranges::find(connections_, id, &Connection::id);
  if (found == connections_.end() || found->done || !found->socket) return;
  Connection& connection = *found;
  if (connection.connecting) {
    if (mine[0].revents == 0) return;
    int error = 0;
    socklen_t length = sizeof error;
    ::getsockopt(connection.socket.get(), SOL_SOCKET, SO_ERROR, &error, &length);
    return Connected(connection, error);
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
      log::Warn("forward on {}: out of file descriptors; connections wait",
                Endpoint(listener.spec.listen_host, listener.spec.listen_port));
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
      StartChannel(connection, listener.spec.connect_host, listener.spec.connect_port);
    }
  }
}

void Forwards::Negotiate(Connection& connection) {
  std::uint8_t buffer[socks::kMaxMessageBytes];
  std::size_t room = sizeof buffer - std::min(connection.negotiation.size(), sizeof buffer);
  ssize_t n = ::read(connection.socket.get(), buffer, room);
  if (n <= 0) {
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    return Finish(connection);
  }
  connection.negotiation.insert(connection.negotiation.end(), buffer, buffer + n);
  socks::Request request;
  auto send = [&connection](std::span<const std::uint8_t> bytes) {
    (void)::send(connection.socket.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
  };
  switch (AdvanceSocks(connection, request, send)) {
    case SocksProgress::kNeedMore: return;
    case SocksProgress::kRefused: return Finish(connection);
    case SocksProgress::kRequest: break;
  }
  std::string early(connection.negotiation.begin(), connection.negotiation.end());
  connection.negotiation.clear();
  StartChannel(connection, request.host, request.port);
  connection.pipes->to_remote.append(early);  // application data sent before our reply
}

void Forwards::NegotiateOnChannel(Connection& connection) {
  ChannelPipes& pipes = *connection.pipes;
  if (pipes.local_eof) return;  // refused: the answer drains, then the channel closes
  // At most one message's worth is kept: ParseSocks never needs more (socks_codec.h).
  while (!pipes.stdout_data.empty() && connection.negotiation.size() < socks::kMaxMessageBytes) {
    std::string_view chunk = pipes.stdout_data.Front();
    std::size_t take = std::min(chunk.size(), socks::kMaxMessageBytes - connection.negotiation.size());
    connection.negotiation.insert(connection.negotiation.end(), chunk.begin(), chunk.begin() + take);
    pipes.stdout_data.consume(take);
  }
  socks::Request request;
  auto send = [&pipes](std::span<const std::uint8_t> bytes) { pipes.to_remote.append(AsText(bytes)); };
  switch (AdvanceSocks(connection, request, send)) {
    case SocksProgress::kNeedMore:
      if (pipes.remote_eof) pipes.local_eof = true;  // the SOCKS client left before asking
      return;
    case SocksProgress::kRefused: pipes.local_eof = true; return;
    case SocksProgress::kRequest: break;
  }
  pipes.stdout_data.prepend(AsText(connection.negotiation));  // sent ahead of our answer
  connection.negotiation.clear();
  auto socket = ConnectLocal(request.host, request.port);
  if (!socket) {
    log::Info("-R SOCKS: {}", socket.error().message);
    send(SocksAnswer(*connection.version, false));
    pipes.local_eof = true;
    return;
  }
  log::Debug("-R SOCKS connection to {}:{}", request.host, request.port);
  connection.socket = std::move(*socket);
  connection.connecting = true;
}

Forwards::SocksProgress Forwards::AdvanceSocks(Connection& connection, socks::Request& request,
                                               const std::function<void(std::span<const std::uint8_t>)>& send) {
  while (true) {
    auto step = socks::ParseSocks(connection.negotiation, connection.stage);
    if (!step) {
      log::Info("SOCKS client refused: {}", socks::SocksErrorName(step.error().kind));
      if (!step.error().reply.empty()) send(step.error().reply);
      return SocksProgress::kRefused;
    }
    if (std::holds_alternative<socks::NeedMore>(*step)) return SocksProgress::kNeedMore;
    if (auto* reply = std::get_if<socks::ReplyAndContinue>(&*step)) {
      send(reply->reply);
      connection.negotiation.erase(connection.negotiation.begin(),
                                   connection.negotiation.begin() + static_cast<std::ptrdiff_t>(reply->consumed));
      connection.stage = reply->next;
      continue;
    }
    request = std::get<socks::Request>(*step);
    connection.version = request.version;
    connection.negotiation.erase(connection.negotiation.begin(),
                                 connection.negotiation.begin() + static_cast<std::ptrdiff_t>(request.consumed));
    return SocksProgress::kRequest;
  }
}

void Forwards::Connected(Connection& connection, int error) {
  connection.connecting = false;
  if (error != 0) log::Info("-R: connecting to the destination failed: {}", std::strerror(error));
  if (connection.socks_on_channel) {
    auto answer = SocksAnswer(*connection.version, error == 0);
    connection.pipes->to_remote.append(AsText(answer));
    connection.replied = true;
    if (error == 0) return;
    connection.socket.Reset();
    connection.pipes->local_eof = true;  // the refusal drains, then the channel closes
    return;
  }
  if (error != 0) Finish(connection);
}

void Forwards::StartChannel(Connection& connection, const std::string& host, std::uint32_t port) {
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
  log::Debug("forwarded connection from {}:{} to {}", address, origin_port, Endpoint(host, port));
  driver_.Start(port == openssh::kPortStreamLocal
                    ? ForwardTask::ToUnixSocket(host, address, origin_port, connection.pipes)
                    : std::make_unique<ForwardTask>(host, static_cast<int>(port), address, origin_port,
                                                    connection.pipes));
}

void Forwards::Update() {
  for (auto& connection : connections_) {
    if (connection.done || !connection.pipes) continue;
    ChannelPipes& pipes = *connection.pipes;
    if (connection.x11_setup_pending) {
      SpoofX11(connection);
      if (connection.done) continue;
    }
    if (connection.socks_on_channel && !connection.socket && !connection.replied) NegotiateOnChannel(connection);
    bool socks_pending = connection.dynamic && !connection.socks_on_channel && !connection.replied;
    if (socks_pending && (pipes.opened || !pipes.failure.empty())) {
      bool granted = pipes.opened;
      auto reply = SocksAnswer(*connection.version, granted);
      pipes.stdout_data.prepend(AsText(reply));
      connection.replied = true;
      if (!granted) {
        (void)::send(connection.socket.get(), reply.data(), reply.size(), MSG_NOSIGNAL);
        Finish(connection);
        continue;
      }
    }
    if (pipes.remote_eof && pipes.stdout_data.empty() && !connection.output_shut && connection.socket) {
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
    } else if (pipes.finished && (pipes.client_gone || !connection.socket)) {
      Finish(connection);  // the local side left, or never came (a refused remote SOCKS request)
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
