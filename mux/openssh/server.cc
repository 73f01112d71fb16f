#include "mux/openssh/server.h"

#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <variant>

#include "base/log.h"
#include "mux/fd_budget/fd_budget.h"
#include "mux/openssh/codec.h"
#include "mux/openssh/escape_filter.h"
#include "mux/openssh/lent_fd.h"
#include "mux/openssh/requests.h"
#include "mux/openssh/session.h"
#include "mux/openssh/tty_modes.h"
#include "mux/ssh/channel_pump.h"

namespace mconnect::mux {
namespace {

namespace ossh = openssh;

// Bounded: a client that sends without reading replies cannot grow these.
constexpr std::size_t kMaxControlOutput = 64 * 1024;

// A client is given this long for its HELLO, for each frame it begins, and for the fds its
// NEW_SESSION or NEW_STDIO_FWD announces: OpenSSH's client sends each of them at once. A client
// idle between whole frames keeps its place (the control protocol's rule too).
constexpr std::chrono::seconds kHandshake{10};

}  // namespace

struct OpenSshMuxServer::Client {
  enum class Phase { kHello, kReady, kReceivingFds, kSession, kDone };

  std::uint64_t id = 0;
  UniqueFd control;
  std::vector<std::uint8_t> in;   // the frame being read, exactly
  std::vector<std::uint8_t> out;  // replies not yet written
  Phase phase = Phase::kHello;
  bool closed = false;
  bool close_after_flush = false;

  // NEW_SESSION or NEW_STDIO_FWD in progress.
  ossh::NewSession request;
  std::optional<ossh::NewStdioForward> stdio_forward;  // set for ssh -W
  std::size_t fds_wanted = 3;
  std::vector<UniqueFd> received;
  std::uint32_t session_id = 0;
  std::shared_ptr<ChannelPipes> pipes;
  LentFd stdin_fd, stdout_fd, stderr_fd;
  bool opened_reported = false;
  bool exit_reported = false;
  std::optional<EscapeFilter> escapes;  // a tty session with an escape character
  winsize window{};
  // Set while the master waits for this client: its HELLO, the rest of a frame it began, the
  // fds it announced.
  std::optional<std::chrono::steady_clock::time_point> deadline;
  std::string refusal;  // no room for this client (see Adopt)
};

OpenSshMuxServer::OpenSshMuxServer(StartChannel start_channel, Hooks hooks)
    : start_channel_(std::move(start_channel)), hooks_(std::move(hooks)) {}
OpenSshMuxServer::~OpenSshMuxServer() = default;

void OpenSshMuxServer::Adopt(UniqueFd fd, std::vector<std::uint8_t> first_bytes, std::string refusal) {
  auto client = std::make_unique<Client>();
  client->id = next_id_++;
  client->control = std::move(fd);
  client->in = std::move(first_bytes);
  client->refusal = std::move(refusal);
  log::Debug("OpenSSH mux client {} connected", client->id);
  Client& ref = *client;
  clients_.emplace(client->id, std::move(client));
  UpdateDeadline(ref);
  // OpenSSH's client sends its HELLO first and then waits for ours.
  Send(ref, ossh::EncodeHello());
}

std::size_t OpenSshMuxServer::session_count() const {
  return static_cast<std::size_t>(std::count_if(clients_.begin(), clients_.end(), [](const auto& entry) {
    return entry.second->phase == Client::Phase::kSession;
  }));
}

std::size_t OpenSshMuxServer::refusing() const {
  return static_cast<std::size_t>(
      std::count_if(clients_.begin(), clients_.end(), [](const auto& entry) { return !entry.second->refusal.empty(); }));
}

std::size_t OpenSshMuxServer::promised_fds() const {
  std::size_t promised = 0;
  for (const auto& [id, client] : clients_) {
    if (client->closed || !client->refusal.empty() || client->phase >= Client::Phase::kSession) continue;
    promised += client->fds_wanted - std::min(client->fds_wanted, client->received.size());
  }
  return promised;
}

void OpenSshMuxServer::UpdateDeadline(Client& client) {
  const bool waiting = client.phase == Client::Phase::kHello || client.phase == Client::Phase::kReceivingFds ||
                       !client.in.empty();
  if (!waiting) {
    client.deadline.reset();
  } else if (!client.deadline) {
    client.deadline = std::chrono::steady_clock::now() + kHandshake;
  }
}

std::optional<std::chrono::steady_clock::time_point> OpenSshMuxServer::NextDeadline() const {
  std::optional<std::chrono::steady_clock::time_point> next;
  for (const auto& [id, client] : clients_) {
    if (client->deadline && (!next || *client->deadline < *next)) next = client->deadline;
  }
  return next;
}

void OpenSshMuxServer::ExpireDeadlines() {
  const auto now = std::chrono::steady_clock::now();
  for (auto& [id, client] : clients_) {
    if (client->closed || !client->deadline || now < *client->deadline) continue;
    Close(*client, client->phase == Client::Phase::kHello          ? "did not finish its HELLO in time"
                   : client->phase == Client::Phase::kReceivingFds ? "did not pass its file descriptors in time"
                                                                   : "did not finish a frame in time");
  }
  std::erase_if(clients_, [](const auto& entry) { return entry.second->closed; });
}

void OpenSshMuxServer::Watch(Poller& poller) {
  std::vector<pollfd> fds;
  for (auto& [id, client] : clients_) {
    fds.clear();
    fds.push_back({client->control.get(), static_cast<short>(client->out.empty() ? POLLIN : POLLIN | POLLOUT), 0});
    if (client->phase == Client::Phase::kSession && client->pipes) {
      LocalEnds ends{client->stdin_fd.get(), client->stdout_fd.get(), client->stderr_fd.get(), nullptr};
      AddLocalPollFds(ends, *client->pipes, fds);
    }
    poller.Watch(fds, [this, id](std::span<const pollfd> ready) { OnEvents(id, ready); });
  }
  poller.Then([this] { std::erase_if(clients_, [](const auto& entry) { return entry.second->closed; }); });
  poller.WakeBy(NextDeadline());
}

void OpenSshMuxServer::OnEvents(std::uint64_t id, std::span<const pollfd> fds) {
  auto it = clients_.find(id);
  if (it == clients_.end()) return;
  Client& client = *it->second;
  const pollfd& control = fds[0];
  if (control.revents & POLLOUT) Flush(client);
  if (!client.closed && (control.revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL))) {
    if (client.phase == Client::Phase::kReceivingFds) {
      TakeFds(client);
    } else {
      ReadControl(client);
    }
    if (!client.closed) UpdateDeadline(client);
  }
  if (!client.closed && fds.size() == 4) PumpFds(client, fds.data() + 1);
}

void OpenSshMuxServer::ReadControl(Client& client) {
  // Read exactly one frame at a time: fds passed after NEW_SESSION ride on the bytes after it.
  auto wanted = ossh::FrameSizeWanted(client.in);
  if (!wanted) return Close(client, ossh::FrameErrorName(wanted.error()));
  std::size_t want = *wanted - client.in.size();
  std::uint8_t buffer[4096];
  ssize_t n = ::read(client.control.get(), buffer, std::min(want, sizeof buffer));
  if (n == 0) {
    if (client.pipes) client.pipes->client_gone = true;
    return Close(client, "");
  }
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return;
    if (client.pipes) client.pipes->client_gone = true;
    return Close(client, std::strerror(errno));
  }
  client.in.insert(client.in.end(), buffer, buffer + n);
  auto parsed = ossh::ParseFrame(client.in);
  if (!parsed) return Close(client, ossh::FrameErrorName(parsed.error()));
  if (!parsed->has_value()) return;
  auto frame = std::move((*parsed)->frame);
  client.in.clear();
  auto message = ossh::DecodeClientMessage(frame);
  if (!message) {
    if (message.error().kind == ossh::DecodeErrorKind::kUnknownType && message.error().request_id) {
      log::Warn("OpenSSH mux client {}: unsupported request {:#x}", client.id, frame.type);
      return Send(client, ossh::EncodeFailure(*message.error().request_id, "request not supported by mconnect"));
    }
    return Close(client, "sent a malformed " + ossh::DescribeDecodeError(message.error()));
  }
  HandleMessage(client, *message);
}

// One decoded request, in the phase the client is in.
void OpenSshMuxServer::HandleMessage(Client& client, ossh::ClientMessage& message) {
  std::visit(
      [&](auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, ossh::Hello>) {
          if (client.phase != Client::Phase::kHello) return Close(client, "sent a second HELLO");
          if (m.version != ossh::kProtocolVersion) return Close(client, "speaks another mux protocol version");
          client.phase = Client::Phase::kReady;
        } else if (client.phase == Client::Phase::kHello) {
          Close(client, "sent a request before HELLO");
        } else if constexpr (std::is_same_v<T, ossh::AliveCheck>) {
          Send(client, ossh::EncodeAlive(m.request_id, static_cast<std::uint32_t>(::getpid())));
        } else if constexpr (std::is_same_v<T, ossh::Terminate>) {
          Send(client, ossh::EncodeOk(m.request_id));
          Flush(client);
          log::Info("exit requested by an OpenSSH client (ssh -O exit)");
          hooks_.terminate();
        } else if constexpr (std::is_same_v<T, ossh::StopListening>) {
          Send(client, ossh::EncodeOk(m.request_id));
          log::Info("stop listening requested by an OpenSSH client (ssh -O stop)");
          hooks_.stop_listening();
        } else if constexpr (std::is_same_v<T, ossh::NewSession>) {
          if (client.phase != Client::Phase::kReady) return Close(client, "sent a second NEW_SESSION");
          client.request = std::move(m);
          client.fds_wanted = 3;  // stdin, stdout, stderr
          client.phase = Client::Phase::kReceivingFds;
          TakeFds(client);
        } else if constexpr (std::is_same_v<T, ossh::NewStdioForward>) {
          if (client.phase != Client::Phase::kReady) return Close(client, "sent a second session request");
          // ssh -W fails with the reason on a FAILURE; it never falls back to a login of its own.
          if (auto reason = InvalidStdioForward(m)) return Send(client, ossh::EncodeFailure(m.request_id, *reason));
          client.request.request_id = m.request_id;
          client.stdio_forward = std::move(m);
          client.fds_wanted = 2;  // stdin, stdout
          client.phase = Client::Phase::kReceivingFds;
          TakeFds(client);
        } else if constexpr (std::is_same_v<T, ossh::OpenForward>) {
          OpenForward(client, m);
        } else if constexpr (std::is_same_v<T, ossh::CloseForward>) {
          CloseForward(client, m);
        } else {
          Send(client, ossh::EncodeFailure(m.request_id, "request not supported by mconnect"));
        }
      },
      message);
}

void OpenSshMuxServer::OpenForward(Client& client, const ossh::OpenForward& m) {
  if (auto reason = InvalidForward(m.forward)) return Send(client, ossh::EncodeFailure(m.request_id, *reason));
  if (!client.refusal.empty()) return Send(client, ossh::EncodeFailure(m.request_id, client.refusal));
  bool allocate = m.forward.type == ossh::kMuxFwdRemote && m.forward.listen_port == 0;
  hooks_.open_forward(m.forward, [this, id = client.id, request_id = m.request_id, allocate](Result<std::uint32_t> port) {
    auto it = clients_.find(id);
    if (it == clients_.end()) return;
    if (!port) return Send(*it->second, ossh::EncodeFailure(request_id, port.error().message));
    Send(*it->second, allocate ? ossh::EncodeRemotePort(request_id, *port) : ossh::EncodeOk(request_id));
  });
}

void OpenSshMuxServer::CloseForward(Client& client, const ossh::CloseForward& m) {
  if (auto reason = InvalidForward(m.forward)) return Send(client, ossh::EncodeFailure(m.request_id, *reason));
  if (!client.refusal.empty()) return Send(client, ossh::EncodeFailure(m.request_id, client.refusal));
  auto done = hooks_.close_forward(m.forward);
  Send(client, done ? ossh::EncodeOk(m.request_id) : ossh::EncodeFailure(m.request_id, done.error().message));
}

void OpenSshMuxServer::TakeFds(Client& client) {
  while (client.received.size() < client.fds_wanted) {
    auto fds = ReceiveFds(client.control.get());
    if (!fds) {
      // Closing here would send `ssh -S` to log in by itself (a closed socket is "no master" to
      // it); the session is refused with the reason instead. Out of fds, recvmsg drops them.
      if (FdBudget::Room() > 0) return RefuseRequest(client, fds.error().message);
      return RefuseRequest(client, fmt::format("the master is out of file descriptors for new sessions (limit {}); end "
                                               "some sessions or forwards, or start it with a higher `ulimit -n`",
                                               FdBudget::Limit()));
    }
    if (!fds->has_value()) return;  // the next one has not arrived yet
    if (client.received.size() + (*fds)->size() > client.fds_wanted) {
      return Close(client, fmt::format("passed {} file descriptors where its request takes {}",
                                       client.received.size() + (*fds)->size(), client.fds_wanted));
    }
    for (auto& fd : **fds) client.received.push_back(std::move(fd));
  }
  StartSession(client);
}

void OpenSshMuxServer::StartSession(Client& client) {
  client.stdin_fd = LentFd(std::move(client.received[0]));
  client.stdout_fd = LentFd(std::move(client.received[1]));
  if (client.received.size() > 2) client.stderr_fd = LentFd(std::move(client.received[2]));
  client.received.clear();
  client.session_id = next_session_id_++;
  client.phase = Client::Phase::kSession;
  client.pipes = std::make_shared<ChannelPipes>();
  if (!client.refusal.empty()) return RefuseRequest(client, client.refusal);
  // A descriptor poll() cannot watch (O_PATH) can carry nothing: say so before any channel.
  const std::pair<const LentFd*, const char*> lent[] = {
      {&client.stdin_fd, "stdin"}, {&client.stdout_fd, "stdout"}, {&client.stderr_fd, "stderr"}};
  for (const auto& [fd, name] : lent) {
    pollfd probe{fd->get(), 0, 0};
    if (fd->valid() && ::poll(&probe, 1, 0) > 0 && (probe.revents & POLLNVAL)) {
      return RefuseRequest(client, fmt::format("the {} it passed cannot be polled (an O_PATH descriptor?)", name));
    }
  }
  if (client.stdio_forward) {
    const auto& forward = *client.stdio_forward;
    log::Info("OpenSSH mux stdio forward {} to {}:{}", client.session_id, forward.host, forward.port);
    start_channel_(std::make_unique<ForwardTask>(forward.host, static_cast<int>(forward.port), "127.0.0.1", 0,
                                                 client.pipes));
    return;
  }

  auto session = SessionFromRequest(client.request);
  if (!session) return RefuseSession(client, session.error());
  SessionRequest request = std::move(*session);
  if (request.env.size() < client.request.env.size()) {
    log::Info("OpenSSH mux session {}: {} of the client's {} environment entries not passed on (not NAME=VALUE, "
              "a name of {} bytes or more, or past the first {})",
              client.session_id, client.request.env.size() - request.env.size(), client.request.env.size(),
              kMaxEnvNameBytes + 1, kMaxSessionEnv);
  }
  if (request.want_tty && client.stdin_fd.is_tty()) {
    termios modes{};
    // libssh2 1.11 caps terminal name + modes at 256 bytes.
    std::size_t room = request.term.size() < 200 ? 256 - request.term.size() : 0;
    if (::tcgetattr(client.stdin_fd.get(), &modes) == 0 && room > 16) {
      request.tty_modes = EncodeTtyModes(modes, room);
    }
    if (::ioctl(client.stdin_fd.get(), TIOCGWINSZ, &client.window) == 0) {
      request.columns = client.window.ws_col;
      request.rows = client.window.ws_row;
      request.width_px = client.window.ws_xpixel;
      request.height_px = client.window.ws_ypixel;
    }
  }
  if (request.tty_modes.empty()) request.tty_modes = std::string(1, '\0');  // TTY_OP_END only
  if (request.want_x11) {
    Result<X11Request> grant = Fail("not served here");
    if (hooks_.grant_x11) grant = hooks_.grant_x11();
    if (grant) request.x11 = std::move(*grant);
    else client.pipes->stderr_data.append(fmt::format("mconnect: no X11 forwarding: {}\r\n", grant.error().message));
  }
  if (request.want_tty && client.request.escape_char != ossh::kNoEscapeChar && client.request.escape_char < 256) {
    client.escapes.emplace(static_cast<char>(client.request.escape_char));
  }
  log::Info("OpenSSH mux session {}: {}{}", client.session_id,
            request.command.empty() ? "shell" : (request.subsystem ? "subsystem " : "exec ") + request.command,
            request.want_tty ? " (pty)" : "");
  start_channel_(std::make_unique<OpenSshSessionTask>(std::move(request), client.pipes));
}

void OpenSshMuxServer::PumpFds(Client& client, const pollfd* fds) {
  LocalEnds ends{client.stdin_fd.get(), client.stdout_fd.get(), client.stderr_fd.get(), nullptr};
  if (client.escapes) {
    ends.input_filter = [&client](std::string_view data, ChannelPipes& pipes) {
      auto out = client.escapes->Filter(data);
      pipes.to_remote += out.to_remote;
      pipes.stderr_data += out.to_local;
      if (out.terminate) {
        log::Info("OpenSSH mux session {}: ~. typed; closing it", client.session_id);
        pipes.client_gone = true;
        pipes.local_eof = true;
      }
    };
  }
  // Whoever read the client's stdout is gone (`ssh host cmd | head`): end the session, as
  // OpenSSH does, rather than read the channel forever into nowhere.
  if (!PumpLocalEnds(ends, *client.pipes, fds)) client.pipes->client_gone = true;
}

void OpenSshMuxServer::Update() {
  for (auto& [id, client_ptr] : clients_) {
    Client& client = *client_ptr;
    if (client.closed || client.phase != Client::Phase::kSession) continue;
    ChannelPipes& pipes = *client.pipes;
    if (!pipes.failure.empty() && !client.opened_reported) {
      log::Warn("OpenSSH mux session {} failed: {}", client.session_id, pipes.failure);
      if (client.stdio_forward) {  // ssh -W prints the reason and exits
        Send(client, ossh::EncodeFailure(client.request.request_id, pipes.failure));
        client.close_after_flush = true;
        client.phase = Client::Phase::kDone;
        Flush(client);
      } else {
        RefuseSession(client, pipes.failure);
      }
      continue;
    }
    if (pipes.opened && !client.opened_reported) {
      client.opened_reported = true;
      Send(client, ossh::EncodeSessionOpened(client.request.request_id, client.session_id));
      if (pipes.tty_failed) Send(client, ossh::EncodeTtyAllocFail(client.session_id));
    }
    if (pipes.finished && pipes.stdout_data.empty() && pipes.stderr_data.empty() && !client.exit_reported) {
      client.exit_reported = true;
      if (client.stdio_forward) {  // ssh -W ends when its control connection closes
        log::Info("OpenSSH mux stdio forward {} closed", client.session_id);
        client.phase = Client::Phase::kDone;
        Close(client, "");
        continue;
      }
      // A command killed by a signal exits ssh with 255, as OpenSSH's client does.
      std::uint32_t status = pipes.exit_signal.empty() ? static_cast<std::uint32_t>(pipes.exit_status) : 255;
      log::Info("OpenSSH mux session {} exited with {}{}", client.session_id, status,
                pipes.exit_signal.empty() ? "" : " (signal " + pipes.exit_signal + ")");
      if (!client.opened_reported) {
        RefuseSession(client, "the session ended before it started");
        continue;
      }
      Send(client, ossh::EncodeExitMessage(client.session_id, status));
      client.close_after_flush = true;
      client.phase = Client::Phase::kDone;
      Flush(client);
    }
  }
  std::erase_if(clients_, [](const auto& entry) { return entry.second->closed; });
}

void OpenSshMuxServer::RefuseRequest(Client& client, std::string_view why) {
  if (!client.stdio_forward) return RefuseSession(client, why);
  // ssh -W fails with the reason on a FAILURE; it never falls back to a login of its own.
  log::Warn("OpenSSH mux client {}: stdio forward refused: {}", client.id, why);
  Send(client, ossh::EncodeFailure(client.request.request_id, why));
  client.close_after_flush = true;
  client.phase = Client::Phase::kDone;
  Flush(client);
}

void OpenSshMuxServer::RefuseSession(Client& client, std::string_view why) {
  // OpenSSH's client takes a FAILURE (or a closed socket) in answer to NEW_SESSION as "no
  // master" and logs in by itself: a second authentication, a 2FA prompt, a connection the user
  // never asked for. So the session "opens" and ends at once with 255, and the reason goes to
  // the stderr the client lent us.
  log::Warn("OpenSSH mux client {}: session refused: {}", client.id, why);
  if (client.session_id == 0) client.session_id = next_session_id_++;
  if (!client.opened_reported) Send(client, ossh::EncodeSessionOpened(client.request.request_id, client.session_id));
  client.opened_reported = true;
  client.exit_reported = true;
  const int err = client.stderr_fd.valid() ? client.stderr_fd.get() : client.stdout_fd.get();
  if (err >= 0) {
    std::string line = fmt::format("mconnect: {}\r\n", why);
    (void)!::write(err, line.data(), line.size());  // at most PIPE_BUF: it fits where POLLOUT would
  }
  if (client.pipes) client.pipes->client_gone = true;
  Send(client, ossh::EncodeExitMessage(client.session_id, 255));
  client.close_after_flush = true;
  client.phase = Client::Phase::kDone;
  Flush(client);
}

void OpenSshMuxServer::OnWindowChange() {
  for (auto& [id, client] : clients_) {
    if (client->phase != Client::Phase::kSession || !client->stdin_fd.is_tty() || !client->request.want_tty) continue;
    winsize size{};
    if (::ioctl(client->stdin_fd.get(), TIOCGWINSZ, &size) != 0) continue;
    if (size.ws_col == client->window.ws_col && size.ws_row == client->window.ws_row &&
        size.ws_xpixel == client->window.ws_xpixel && size.ws_ypixel == client->window.ws_ypixel) {
      continue;
    }
    client->window = size;
    ChannelPipes& pipes = *client->pipes;
    pipes.columns = size.ws_col;
    pipes.rows = size.ws_row;
    pipes.width_px = size.ws_xpixel;
    pipes.height_px = size.ws_ypixel;
    pipes.window_changed = true;
  }
}

void OpenSshMuxServer::Send(Client& client, std::vector<std::uint8_t> frame) {
  if (client.closed) return;
  if (client.out.size() + frame.size() > kMaxControlOutput) return Close(client, "does not read its replies");
  client.out.insert(client.out.end(), frame.begin(), frame.end());
  Flush(client);
}

void OpenSshMuxServer::Flush(Client& client) {
  while (!client.closed && !client.out.empty()) {
    ssize_t n = ::send(client.control.get(), client.out.data(), client.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      if (client.pipes) client.pipes->client_gone = true;
      return Close(client, std::strerror(errno));
    }
    client.out.erase(client.out.begin(), client.out.begin() + n);
  }
  if (client.out.empty() && client.close_after_flush) Close(client, "");
}

void OpenSshMuxServer::Close(Client& client, std::string_view why) {
  if (client.closed) return;
  if (!why.empty()) log::Warn("OpenSSH mux client {}: {}; closing it", client.id, why);
  if (client.pipes && !client.pipes->finished) client.pipes->client_gone = true;
  client.closed = true;
  // In reverse order of lending: when two of them share one open file description (a tty as
  // stdin and stdout, 2>&1), the first one's saved flags are the true originals.
  client.stderr_fd.Reset();
  client.stdout_fd.Reset();
  client.stdin_fd.Reset();
  client.control.Reset();
}

}  // namespace mconnect::mux
