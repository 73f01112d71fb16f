#include "mux/mosh_over_ssh/mosh_over_ssh.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>

#include <fmt/format.h>

#include "base/log.h"
#include "base/ssh2.h"
#include "base/subprocess.h"
#include "base/text.h"
#include "base/udp_socket_owner.h"
#include "mosh/datagram_frame.h"
#include "mosh/perl_relay.h"
#include "mux/ssh/channel_end.h"

namespace mconnect::mux {
namespace {

using Clock = std::chrono::steady_clock;

// Frames waiting for the channel (about 50 of mosh's datagrams): beyond that, drop.
constexpr std::size_t kMaxQueued = 64 * 1024;
// After a channel failed while the connection stayed up, wait this long before the next.
constexpr auto kRestartPause = std::chrono::seconds(1);
// A server side that never says hello is not going to work.
constexpr auto kHelloTimeout = std::chrono::seconds(15);
// A refused sender stays refused this long without another look at /proc: a flood from one
// port costs one lookup a second. Short, because the port may pass to one of our sockets.
constexpr auto kRefusedHold = std::chrono::seconds(1);
// Lookups of new senders in /proc per second, at most: a flood from ever new ports cannot make
// the loop read /proc without bound. mosh-client needs one per port hop.
constexpr int kLookupsPerSecond = 32;
// Refusals go to the log at most this often, with a count of those in between.
constexpr auto kRefusalReportInterval = std::chrono::seconds(10);

bool SameEndpoint(const sockaddr_in& a, const sockaddr_in& b) {
  return a.sin_addr.s_addr == b.sin_addr.s_addr && a.sin_port == b.sin_port;
}

std::string Endpoint(const sockaddr_in& address) {
  char text[INET_ADDRSTRLEN] = "?";
  ::inet_ntop(AF_INET, &address.sin_addr, text, sizeof text);
  return fmt::format("{}:{}", text, ntohs(address.sin_port));
}

// Who may use the relay's port, and where mosh-server's datagrams go.
//
// The port is on 127.0.0.1, which every local user can reach, and mosh-client may change its
// source port at any time (it moves to a new one when it hears nothing for a while). So the
// return address is the latest sender whose socket belongs to this process's user, as
// /proc/net/udp{,6} lists it; a datagram from anybody else's socket, or from one that cannot be
// told, is refused. The verdict on the return address is kept: /proc is read only when the
// source changes.
//
// The socket stays unconnected. connect(2) to mosh-client's address would have the kernel hold
// sends to it, but a connected UDP socket also receives from that address alone: mosh-client's
// next source port would never be heard, and the session would hang on a port it has left.
// Sends go with sendto(2), and only ever to the address kept here.
//
// What this does not cover: a port that mosh-client has closed (when it exits) could be bound
// by another user, who would then receive mosh-server's datagrams (encrypted under the session
// key) until mosh-server gives up on the client.
class SenderGate {
 public:
  explicit SenderGate(int local_port) : local_port_(local_port), uid_(::geteuid()) {}

  // True when a datagram from `from` may be relayed; `from` is then the return address.
  bool Admit(const sockaddr_storage& from, socklen_t length, Clock::time_point now);
  const std::optional<sockaddr_in>& client() const { return client_; }

 private:
  // Why `source` is refused, or "" when its socket is ours.
  std::string Check(const sockaddr_in& source) const;
  void NoteRefusal(const sockaddr_in& source, const std::string& why, Clock::time_point now);

  int local_port_;
  uid_t uid_;
  std::optional<sockaddr_in> client_;
  std::optional<sockaddr_in> refused_;  // the last refused sender, until refused_until_
  std::string refused_why_;
  Clock::time_point refused_until_{};
  int lookups_left_ = 0;
  Clock::time_point lookups_renew_{};
  Clock::time_point next_report_{};
  std::uint64_t unreported_ = 0;
};

bool SenderGate::Admit(const sockaddr_storage& from, socklen_t length, Clock::time_point now) {
  if (from.ss_family != AF_INET || length < static_cast<socklen_t>(sizeof(sockaddr_in))) {
    return false;  // cannot happen on an IPv4 socket; nothing to attribute or answer
  }
  sockaddr_in source;
  std::memcpy(&source, &from, sizeof source);
  if (client_ && SameEndpoint(*client_, source)) return true;
  if (refused_ && SameEndpoint(*refused_, source) && now < refused_until_) {
    NoteRefusal(source, refused_why_, now);
    return false;
  }
  if (now >= lookups_renew_) {
    lookups_left_ = kLookupsPerSecond;
    lookups_renew_ = now + std::chrono::seconds(1);
  }
  if (lookups_left_ == 0) {
    // Not remembered as a verdict: the next datagram from there gets its lookup.
    NoteRefusal(source, "too many new senders this second to look them all up", now);
    return false;
  }
  --lookups_left_;
  std::string why = Check(source);
  if (!why.empty()) {
    refused_ = source;
    refused_why_ = std::move(why);
    refused_until_ = now + kRefusedHold;
    NoteRefusal(source, refused_why_, now);
    return false;
  }
  if (client_) log::Info("mosh relay on 127.0.0.1:{}: mosh-client now sends from {}", local_port_, Endpoint(source));
  client_ = source;
  if (refused_ && SameEndpoint(*refused_, source)) refused_.reset();
  return true;
}

std::string SenderGate::Check(const sockaddr_in& source) const {
  auto uids = UdpSenderUidsFromProc(source);
  if (!uids) return "cannot tell whose socket it is: " + uids.error().message;
  if (uids->empty()) return "no socket is listed as sending from there";
  for (uid_t uid : *uids) {
    if (uid != uid_) return fmt::format("its socket belongs to uid {}, not to this user (uid {})", uid, uid_);
  }
  return {};
}

void SenderGate::NoteRefusal(const sockaddr_in& source, const std::string& why, Clock::time_point now) {
  ++unreported_;
  if (now < next_report_) return;
  std::string more = unreported_ > 1 ? fmt::format(" ({} refused since the last report)", unreported_) : "";
  log::Warn("mosh relay on 127.0.0.1:{}: refused datagrams from {}: {}{}; further refusals are logged at most "
            "every {} s",
            local_port_, Endpoint(source), why, more, kRefusalReportInterval.count());
  unreported_ = 0;
  next_report_ = now + kRefusalReportInterval;
}

}  // namespace

std::string RelayCommand(int port, std::uint32_t server_pid, std::string_view only) {
  std::string args = std::to_string(port) + " " + std::to_string(server_pid);
  std::string mconnect = "exec mconnect relay " + args;
  std::string perl = "exec perl -e " + ShellQuote(mosh::kPerlRelay) + " " + args;
  if (only == "mconnect") return mconnect;
  if (only == "perl") return perl;
  return "if command -v mconnect >/dev/null 2>&1 && mconnect relay --check >/dev/null 2>&1; then " + mconnect +
         "; fi; " + perl;
}

struct MoshOverSshState {
  MoshOverSshState(UniqueFd local_socket, std::string relay_command, int local_port)
      : socket(std::move(local_socket)), command(std::move(relay_command)), senders(local_port) {}

  UniqueFd socket;
  std::string command;
  SenderGate senders;  // mosh-client's address (it may change: it roams too), and nobody else's
  std::string to_server;    // frames for the channel
  bool task_running = false;
  bool finished = false;
  Clock::time_point restart_at{};
  std::string kind;
  MoshOverSsh::Ready ready;
  MoshOverSshStats stats;

  void Report(Result<std::string> result) {
    if (ready) std::exchange(ready, nullptr)(std::move(result));
  }
  void SendToClient(std::string_view datagram) {
    const std::optional<sockaddr_in>& client = senders.client();
    if (!client) return;
    // Non-blocking: a full socket buffer loses the datagram, as the network would.
    if (::sendto(socket.get(), datagram.data(), datagram.size(), MSG_DONTWAIT,
                 reinterpret_cast<const sockaddr*>(&*client), sizeof *client) >= 0) {
      ++stats.to_client;
    }
  }
};

namespace {

// One channel's worth of relaying: exec the server side, then shuttle frames both ways.
class DatagramChannelTask : public ChannelTask {
 public:
  explicit DatagramChannelTask(std::shared_ptr<MoshOverSshState> state)
      : state_(std::move(state)), hello_deadline_(Clock::now() + kHelloTimeout) {}
  ~DatagramChannelTask() override { state_->task_running = false; }

  Step Pump(LIBSSH2_SESSION* session, LIBSSH2_CHANNEL* channel) override;
  void Abort(const std::string& why) override {
    log::Warn("mosh relay channel: {}", why);
    state_->Report(Fail("cannot open the relay's channel: {}", why));
    state_->restart_at = Clock::now() + kRestartPause;
  }
  std::optional<Clock::time_point> Deadline() const override {
    if (state_->kind.empty()) return hello_deadline_;
    return std::nullopt;
  }

 private:
  enum class Phase { kStarting, kRelaying, kClosing, kWaitingClosed };
  Step End(LIBSSH2_SESSION* session, LIBSSH2_CHANNEL* channel);
  // The channel has closed: whether the relay is over for good (mosh-server gone, or it never
  // started) or another channel is to follow.
  void Closed(LIBSSH2_SESSION* session, LIBSSH2_CHANNEL* channel);
  void TakeErrors();

  std::shared_ptr<MoshOverSshState> state_;
  Phase phase_ = Phase::kStarting;
  std::string from_server_;
  std::string errors_;  // the server side's stderr, a line at a time
  bool server_done_ = false;  // it said mosh-server has gone
  Clock::time_point hello_deadline_;
};

void DatagramChannelTask::TakeErrors() {
  for (std::size_t end; (end = errors_.find('\n')) != std::string::npos; errors_.erase(0, end + 1)) {
    std::string line = errors_.substr(0, end);
    constexpr std::string_view kPrefix = "mconnect-relay: ";
    bool ours = line.starts_with(kPrefix) && line.find(':', kPrefix.size()) == std::string::npos;
    if (ours && state_->kind.empty()) {
      state_->kind = line.substr(kPrefix.size());
      log::Info("mosh relay running on the server ({})", state_->kind);
      state_->Report(state_->kind);
    } else if (ours && line == "mconnect-relay: done") {
      server_done_ = true;
    } else {
      log::Warn("mosh relay: {}", line);
    }
  }
  if (errors_.size() > 4096) errors_.clear();  // a chatty server side cannot grow this
}

ChannelTask::Step DatagramChannelTask::Pump(LIBSSH2_SESSION* session, LIBSSH2_CHANNEL* channel) {
  switch (phase_) {
    case Phase::kStarting: {
      int rc = libssh2_channel_exec(channel, state_->command.c_str());
      if (rc == LIBSSH2_ERROR_EAGAIN) return Step::kBlocked;
      if (rc != 0) {
        state_->Report(Fail("the server refused to run the relay: {}", Ssh2LastError(session)));
        state_->finished = true;
        return Step::kFinished;
      }
      ++state_->stats.channels;
      phase_ = Phase::kRelaying;
      return Step::kProgress;
    }
    case Phase::kRelaying: {
      if (state_->kind.empty() && Clock::now() >= hello_deadline_) {
        state_->Report(Fail("the relay did not start on the server within {} s", kHelloTimeout.count()));
        state_->finished = true;
        phase_ = Phase::kClosing;
        return Step::kProgress;
      }
      bool progress = false;
      // Towards the server: whole frames from the front (a repeated call after EAGAIN sends
      // the same bytes, as libssh2 wants).
      if (!state_->to_server.empty()) {
        ssize_t n = libssh2_channel_write(channel, state_->to_server.data(), state_->to_server.size());
        if (n == LIBSSH2_ERROR_EAGAIN) return Step::kBlocked;
        if (n < 0) return End(session, channel);
        state_->to_server.erase(0, static_cast<std::size_t>(n));
        progress = true;
      }
      char buffer[16384];
      ssize_t n = libssh2_channel_read(channel, buffer, sizeof buffer);
      if (n > 0) {
        from_server_.append(buffer, static_cast<std::size_t>(n));
        std::size_t used = mosh::TakeDatagramFrames(
            from_server_, [this](std::string_view datagram) { state_->SendToClient(datagram); });
        from_server_.erase(0, used);
        progress = true;
      } else if (n < 0 && n != LIBSSH2_ERROR_EAGAIN) {
        return End(session, channel);
      }
      ssize_t e = libssh2_channel_read_stderr(channel, buffer, sizeof buffer);
      if (e > 0) {
        errors_.append(buffer, static_cast<std::size_t>(e));
        TakeErrors();
        progress = true;
      }
      if (progress) return Step::kProgress;
      if (libssh2_channel_eof(channel)) return End(session, channel);
      return Step::kBlocked;
    }
    case Phase::kClosing: {
      int rc = libssh2_channel_close(channel);
      if (rc == LIBSSH2_ERROR_EAGAIN) return Step::kBlocked;
      phase_ = Phase::kWaitingClosed;
      return Step::kProgress;
    }
    case Phase::kWaitingClosed:
      if (!WaitClosedDiscarding(channel)) return Step::kBlocked;
      Closed(session, channel);
      return Step::kFinished;
  }
  return Step::kFinished;
}

void DatagramChannelTask::Closed(LIBSSH2_SESSION* session, LIBSSH2_CHANNEL* channel) {
  ChannelExit exit = ReadChannelExit(session, channel);
  if (!errors_.empty()) {
    errors_ += '\n';
    TakeErrors();
  }
  // libssh2 reads a missing exit status as 0: only the relay's own word says it is over.
  if (server_done_) {
    log::Info("mosh relay: mosh-server has exited; the relay ends");
    state_->finished = true;
  } else if (state_->kind.empty()) {
    // It never started (no perl, a broken mconnect): trying again will not help.
    state_->Report(Fail("the relay could not start on the server (exit status {})", exit.status));
    state_->finished = true;
  } else {
    log::Warn("mosh relay ended with status {}{}; starting another", exit.status,
              exit.signal.empty() ? "" : " (signal " + exit.signal + ")");
    state_->restart_at = Clock::now() + kRestartPause;
  }
}

ChannelTask::Step DatagramChannelTask::End(LIBSSH2_SESSION*, LIBSSH2_CHANNEL*) {
  phase_ = Phase::kClosing;
  return Step::kProgress;
}

}  // namespace

Result<std::unique_ptr<MoshOverSsh>> MoshOverSsh::Open(int remote_port, std::uint32_t server_pid,
                                                      std::string_view only) {
  if (remote_port <= 0 || remote_port > 65535) return Fail("relay: bad mosh-server port {}", remote_port);
  if (!only.empty() && only != "perl" && only != "mconnect") {
    return Fail("relay: unknown relay \"{}\" (perl or mconnect)", SanitizeForMessage(only));
  }
  UniqueFd socket(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!socket) return Fail("relay: socket: {}", std::strerror(errno));
  sockaddr_in local{};
  local.sin_family = AF_INET;
  local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(socket.get(), reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
    return Fail("relay: bind 127.0.0.1: {}", std::strerror(errno));
  }
  socklen_t length = sizeof local;
  ::getsockname(socket.get(), reinterpret_cast<sockaddr*>(&local), &length);
  const int local_port = ntohs(local.sin_port);
  auto state =
      std::make_shared<MoshOverSshState>(std::move(socket), RelayCommand(remote_port, server_pid, only), local_port);
  return std::unique_ptr<MoshOverSsh>(new MoshOverSsh(std::move(state), local_port, remote_port, server_pid));
}

MoshOverSsh::MoshOverSsh(std::shared_ptr<MoshOverSshState> state, int local_port, int remote_port,
                         std::uint32_t server_pid)
    : state_(std::move(state)), local_port_(local_port), remote_port_(remote_port), server_pid_(server_pid) {}

MoshOverSsh::~MoshOverSsh() {
  // A task still on the driver keeps the state; it must no longer report to anyone.
  state_->ready = nullptr;
  state_->finished = true;
}

void MoshOverSsh::SetReady(Ready ready) { state_->ready = std::move(ready); }

int MoshOverSsh::fd() const { return state_->socket.get(); }
bool MoshOverSsh::finished() const { return state_->finished && !state_->task_running; }
const std::string& MoshOverSsh::kind() const { return state_->kind; }
bool MoshOverSsh::carrying() const { return state_->task_running && !state_->kind.empty(); }
MoshOverSshStats MoshOverSsh::stats() const { return state_->stats; }

void MoshOverSsh::OnReadable() {
  char buffer[mosh::kMaxRelayedDatagram];
  for (int i = 0; i < 64; ++i) {
    sockaddr_storage from{};
    socklen_t from_length = sizeof from;
    ssize_t n = ::recvfrom(state_->socket.get(), buffer, sizeof buffer, 0, reinterpret_cast<sockaddr*>(&from),
                           &from_length);
    if (n < 0) return;  // EAGAIN, or an ICMP error for an earlier send: nothing to take
    if (!state_->senders.Admit(from, from_length, Clock::now())) {
      ++state_->stats.refused;
      continue;
    }
    if (!state_->task_running || state_->to_server.size() + static_cast<std::size_t>(n) + 2 > kMaxQueued) {
      ++state_->stats.dropped;
      continue;
    }
    mosh::AppendDatagramFrame(state_->to_server, std::string_view(buffer, static_cast<std::size_t>(n)));
    ++state_->stats.to_server;
  }
}

std::unique_ptr<ChannelTask> MoshOverSsh::TaskToStart(Clock::time_point now) {
  if (state_->finished || state_->task_running || now < state_->restart_at) return nullptr;
  state_->task_running = true;
  // What was queued for the lost channel is stale: mosh resends what still matters.
  state_->to_server.clear();
  return std::make_unique<DatagramChannelTask>(state_);
}

}  // namespace mconnect::mux
