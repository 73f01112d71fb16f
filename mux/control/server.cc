#include "mux/control/server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "base/log.h"
#include "base/secret.h"
#include "mux/fd_budget/fd_budget.h"

namespace mconnect::mux {
namespace {

// A client that does not read its replies cannot make the master hold more than this.
constexpr std::size_t kMaxQueuedOutput = 4 * proto::kMaxFrameBytes;
// Backpressure: a client with this much of its replies unsent is not read until it takes them.
// Without it, a client that pipelines requests and never reads kept the loop busy answering them
// and made it hold up to kMaxQueuedOutput each (20 such clients in tests/hardening/load_test:
// the master's peak RSS 112 MiB, 35 MiB with the pause; under valgrind, others' Status 100 s).
constexpr std::size_t kReadPauseOutput = 64 * 1024;
constexpr std::chrono::seconds kHelloDeadline{10};
// A frame begun must be finished within this, counted while the master reads (not while it
// holds back for the client to take its replies): a client cut mid-frame cannot hold its slot.
constexpr std::chrono::seconds kFrameDeadline{10};

}  // namespace

struct ControlServer::Client {
  std::uint64_t id = 0;
  UniqueFd fd;
  std::vector<std::uint8_t> in;
  std::vector<std::uint8_t> out;
  bool identified = false;  // the first frame was ours
  bool hello_done = false;
  bool closed = false;
  bool backlog = false;  // complete frames wait in `in`: nothing more is read until they are answered
  std::chrono::steady_clock::time_point hello_deadline;
  std::string refusal;  // no room for this client: say this, and nothing else
  std::string refusal_hint;
  // Set while `in` holds the start of a frame and the master is reading.
  std::optional<std::chrono::steady_clock::time_point> frame_deadline;

  bool reading() const { return out.size() < kReadPauseOutput && !backlog; }
};

const std::map<std::uint32_t, ControlServer::Handler>& ControlServer::Handlers() {
  using T = proto::MessageType;
  static const std::map<std::uint32_t, Handler> handlers = {
      {static_cast<std::uint32_t>(T::kHello), &ControlServer::OnHello},
      {static_cast<std::uint32_t>(T::kStatus), &ControlServer::OnStatus},
      {static_cast<std::uint32_t>(T::kExec), &ControlServer::OnExec},
      {static_cast<std::uint32_t>(T::kDiscoverIp), &ControlServer::OnDiscoverIp},
      {static_cast<std::uint32_t>(T::kStartMoshServer), &ControlServer::OnStartMoshServer},
      {static_cast<std::uint32_t>(T::kStartRelay), &ControlServer::OnStartRelay},
      {static_cast<std::uint32_t>(T::kStop), &ControlServer::OnStop},
  };
  return handlers;
}

ControlServer::ControlServer(MasterServices& services) : services_(services) {}
ControlServer::~ControlServer() = default;

void ControlServer::Add(UniqueFd fd, std::string refusal, std::string refusal_hint) {
  auto client = std::make_unique<Client>();
  client->id = next_id_++;
  client->fd = std::move(fd);
  client->hello_deadline = std::chrono::steady_clock::now() + kHelloDeadline;
  client->refusal = std::move(refusal);
  client->refusal_hint = std::move(refusal_hint);
  clients_.emplace(client->id, std::move(client));
}

std::size_t ControlServer::refusing() const {
  return static_cast<std::size_t>(
      std::count_if(clients_.begin(), clients_.end(), [](const auto& entry) { return !entry.second->refusal.empty(); }));
}

std::size_t ControlServer::promised_fds() const {
  return static_cast<std::size_t>(std::count_if(clients_.begin(), clients_.end(), [](const auto& entry) {
           return !entry.second->closed && entry.second->refusal.empty() && !entry.second->hello_done;
         })) *
         (FdBudget::kClientCost - 1);
}

void ControlServer::Watch(Poller& poller) {
  for (const auto& [id, client] : clients_) {
    short events = client->out.size() < kReadPauseOutput && !client->backlog ? POLLIN : 0;
    if (!client->out.empty()) events |= POLLOUT;
    poller.Watch(client->fd.get(), events, [this, id](short revents) { OnEvents(id, revents); });
  }
  poller.Then([this] { std::erase_if(clients_, [](const auto& entry) { return entry.second->closed; }); });
  poller.WakeBy(NextDeadline());
}

void ControlServer::OnEvents(std::uint64_t id, short revents) {
  auto it = clients_.find(id);
  if (it == clients_.end() || it->second->closed) return;
  Client& client = *it->second;
  if (revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) ReadFrom(client);
  if (!client.closed && (revents & POLLOUT)) WriteTo(client);
}

std::optional<std::chrono::steady_clock::time_point> ControlServer::NextDeadline() const {
  std::optional<std::chrono::steady_clock::time_point> next;
  for (const auto& [id, client] : clients_) {
    if (client->backlog && client->out.size() < kReadPauseOutput) return std::chrono::steady_clock::now();
    if (!client->hello_done && (!next || client->hello_deadline < *next)) next = client->hello_deadline;
    if (client->frame_deadline && (!next || *client->frame_deadline < *next)) next = client->frame_deadline;
  }
  return next;
}

void ControlServer::ExpireHandshakes() {
  auto now = std::chrono::steady_clock::now();
  for (auto& [id, client] : clients_) {
    if (!client->hello_done && now >= client->hello_deadline) Close(*client, "did not finish its Hello in time");
    // The clock of a frame runs only while the master reads it.
    if (!client->reading()) client->frame_deadline.reset();
    if (client->frame_deadline && now >= *client->frame_deadline) Close(*client, "did not finish a frame in time");
  }
  std::erase_if(clients_, [](const auto& entry) { return entry.second->closed; });
}

void ControlServer::Close(Client& client, std::string_view why) {
  if (client.closed) return;
  if (!why.empty()) log::Warn("control client {}: {}; closing it", client.id, why);
  client.closed = true;
  Wipe(client.out);  // replies never taken may hold a secret (the mosh key)
  client.fd.Reset();
}

void ControlServer::ReadFrom(Client& client) {
  std::uint8_t buffer[16384];
  // Until the protocol is known, read no further than the first frame's length and type: an
  // OpenSSH client's later bytes may carry file descriptors, which a plain read() would drop.
  constexpr std::size_t kIdentifyBytes = 8;
  std::size_t want = client.identified ? sizeof buffer : kIdentifyBytes - client.in.size();
  ssize_t n = ::read(client.fd.get(), buffer, want);
  if (n == 0) return Close(client, "");
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return;
    return Close(client, std::strerror(errno));
  }
  client.in.insert(client.in.end(), buffer, buffer + n);

  if (!client.identified) {
    switch (proto::IdentifyProtocol(client.in)) {
      case proto::Protocol::kNeedMore: return;
      case proto::Protocol::kControl:
        client.identified = true;
        if (!client.refusal.empty()) return Refuse(client);
        break;
      case proto::Protocol::kOpenSshMux:
        services_.AdoptOpenSshClient(std::move(client.fd), std::move(client.in), std::move(client.refusal));
        client.closed = true;
        return;
      case proto::Protocol::kUnknown: return Close(client, "sent a first frame of no known protocol");
    }
  }
  ProcessFrames(client);
}

void ControlServer::Refuse(Client& client) {
  control::ErrorReply error;
  error.set_message(client.refusal);
  error.set_hint(client.refusal_hint);
  std::vector<std::uint8_t> frame;
  (void)proto::AppendFrame(frame, proto::MessageType::kError, error);
  // One small frame: it fits the socket's buffer, or the client is not reading anyway.
  (void)::send(client.fd.get(), frame.data(), frame.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  Close(client, "");
}

void ControlServer::ProcessFrames(Client& client) {
  // One read may bring two thousand pipelined requests; answering them all in one go kept the
  // loop from everyone else for seconds (tests/hardening/load_test under a sanitizer).
  constexpr int kFramesPerTurn = 32;
  std::size_t offset = 0;
  for (int frames = 0; !client.closed && frames < kFramesPerTurn && client.out.size() < kReadPauseOutput; ++frames) {
    auto parsed = proto::ParseFrame(std::span(client.in).subspan(offset));
    if (!parsed) return Close(client, proto::FrameErrorName(parsed.error()));
    if (!parsed->has_value()) break;
    offset += (*parsed)->consumed;
    Dispatch(client, (*parsed)->frame);
  }
  if (client.closed) return;
  client.in.erase(client.in.begin(), client.in.begin() + static_cast<std::ptrdiff_t>(offset));
  auto next = proto::ParseFrame(client.in);
  client.backlog = next && next->has_value();
  if (client.in.empty() || !client.reading()) {
    client.frame_deadline.reset();
  } else if (!client.frame_deadline) {
    client.frame_deadline = std::chrono::steady_clock::now() + kFrameDeadline;
  }
}

void ControlServer::ProcessBacklogs() {
  for (auto& [id, client] : clients_) {
    if (client->backlog && client->out.size() < kReadPauseOutput) ProcessFrames(*client);
  }
  std::erase_if(clients_, [](const auto& entry) { return entry.second->closed; });
}

void ControlServer::WriteTo(Client& client) {
  // Replies may carry a secret (StartMoshServerReply's key): what has been written, and what
  // will never be, leaves no copy behind in `out`.
  while (!client.out.empty()) {
    ssize_t n = ::write(client.fd.get(), client.out.data(), client.out.size());
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      Wipe(client.out);
      return Close(client, std::strerror(errno));
    }
    EraseFrontWiped(client.out, static_cast<std::size_t>(n));
  }
}

void ControlServer::Dispatch(Client& client, const proto::Frame& frame) {
  log::Debug("control client {}: {}", client.id, proto::MessageTypeName(frame.type));
  if (!client.hello_done && frame.type != static_cast<std::uint32_t>(proto::MessageType::kHello)) {
    return Close(client, "sent a request before Hello");
  }
  auto handler = Handlers().find(frame.type);
  if (handler == Handlers().end()) {
    control::ErrorReply error;
    error.set_message(fmt::format("unknown request type {:#x}", frame.type));
    return Send(client, proto::MessageType::kError, error);
  }
  (this->*handler->second)(client, frame);
}

void ControlServer::Send(Client& client, proto::MessageType type, const google::protobuf::MessageLite& message) {
  if (client.closed) return;
  if (client.out.size() > kMaxQueuedOutput) {
    Wipe(client.out);  // replies it will never get
    return Close(client, "does not read its replies");
  }
  // Grown here rather than by the vector, whose reallocation would free the replies queued so
  // far (a mosh key among them, maybe) without clearing them.
  constexpr std::size_t kFrameHeader = 8;
  ReserveWiped(client.out, client.out.size() + kFrameHeader + std::min(message.ByteSizeLong(), proto::kMaxFrameBytes));
  if (!proto::AppendFrame(client.out, type, message)) {
    control::ErrorReply error;
    error.set_message("reply too large for one frame");
    proto::AppendFrame(client.out, proto::MessageType::kError, error);
  }
  WriteTo(client);
}

void ControlServer::SendTo(std::uint64_t client_id, proto::MessageType type,
                           const google::protobuf::MessageLite& message) {
  auto it = clients_.find(client_id);
  if (it == clients_.end()) {
    log::Debug("control client {} left before its {} was ready", client_id, proto::MessageTypeName(
                                                                                 static_cast<std::uint32_t>(type)));
    return;
  }
  Send(*it->second, type, message);
}

template <typename T>
MasterServices::Reply<T> ControlServer::ReplyTo(const Client& client, proto::MessageType type) {
  return [this, id = client.id, type](std::expected<T, control::ErrorReply> result) {
    if (result) {
      SendTo(id, type, *result);
    } else {
      SendTo(id, proto::MessageType::kError, result.error());
    }
  };
}

void ControlServer::OnHello(Client& client, const proto::Frame& frame) {
  control::Hello hello;
  if (!proto::DecodePayload(frame, hello)) return Close(client, "sent a malformed Hello");
  if (hello.version() != proto::kProtocolVersion) {
    log::Warn("control client {} speaks version {}, this master {}", client.id, hello.version(),
              proto::kProtocolVersion);
  }
  client.hello_done = true;
  control::HelloReply reply;
  reply.set_version(proto::kProtocolVersion);
  reply.set_program("mconnect-mux");
  reply.set_pid(static_cast<std::uint32_t>(::getpid()));
  Send(client, proto::MessageType::kHelloReply, reply);
}

void ControlServer::OnStatus(Client& client, const proto::Frame&) {
  control::StatusReply reply = services_.Status();
  reply.set_clients(static_cast<std::uint32_t>(clients_.size()));
  Send(client, proto::MessageType::kStatusReply, reply);
}

// The requests answered by the master's services take the same steps: decode, or close the client
// that sent something malformed; then ask, with where the reply goes.
template <typename Request, typename Answer>
void ControlServer::Ask(Client& client, const proto::Frame& frame, std::string_view name, proto::MessageType reply_type,
                        void (MasterServices::*ask)(const Request&, MasterServices::Reply<Answer>)) {
  Request request;
  if (!proto::DecodePayload(frame, request)) return Close(client, fmt::format("sent a malformed {}", name));
  (services_.*ask)(request, ReplyTo<Answer>(client, reply_type));
}

void ControlServer::OnExec(Client& client, const proto::Frame& frame) {
  Ask(client, frame, "Exec", proto::MessageType::kExecReply, &MasterServices::Exec);
}

void ControlServer::OnDiscoverIp(Client& client, const proto::Frame& frame) {
  Ask(client, frame, "DiscoverIp", proto::MessageType::kDiscoverIpReply, &MasterServices::DiscoverIp);
}

void ControlServer::OnStartMoshServer(Client& client, const proto::Frame& frame) {
  Ask(client, frame, "StartMoshServer", proto::MessageType::kStartMoshServerReply, &MasterServices::StartMoshServer);
}

void ControlServer::OnStartRelay(Client& client, const proto::Frame& frame) {
  Ask(client, frame, "StartRelay", proto::MessageType::kStartRelayReply, &MasterServices::StartRelay);
}

void ControlServer::OnStop(Client& client, const proto::Frame& frame) {
  control::StopRequest request;
  if (!proto::DecodePayload(frame, request)) return Close(client, "sent a malformed Stop");
  Send(client, proto::MessageType::kStopReply, control::StopReply{});
  services_.Stop(request.when_idle());
}

void ControlServer::FlushAll() {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
  for (auto& [id, client] : clients_) {
    while (!client->closed && !client->out.empty() && std::chrono::steady_clock::now() < deadline) {
      pollfd fd{client->fd.get(), POLLOUT, 0};
      if (::poll(&fd, 1, 50) > 0) WriteTo(*client);
    }
  }
}

}  // namespace mconnect::mux
