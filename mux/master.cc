#include "mux/master.h"

#include <malloc.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/log.h"
#include "mux/fd_budget/fd_budget.h"
#include "mux/listener.h"

namespace mconnect::mux {
namespace {

volatile sig_atomic_t g_signal = 0;
volatile sig_atomic_t g_window_changed = 0;
void OnSignal(int signal) { g_signal = signal; }
// OpenSSH's mux clients relay SIGWINCH to the master's pid (from MUX_S_ALIVE).
void OnWindowChange(int) { g_window_changed = 1; }

}  // namespace

Master::Master(MasterConfig config, std::unique_ptr<SshConnection> connection, UniqueFd listen_fd)
    : config_(std::move(config)),
      pool_({config_.destination, config_.keepalive, config_.keepalive_count_max, config_.reconnect,
             config_.reconnect_wait, config_.connect},
            std::move(connection), [this] { return FdBudget::Room(server_.promised_fds() + openssh_.promised_fds()); }),
      server_(*this),
      forwards_(pool_.main()),
      configured_forwards_(forwards_, config_.forwards, config_.exit_on_forward_failure),
      openssh_(
          [this](std::unique_ptr<ChannelTask> task) { pool_.main().Start(std::move(task)); },
          {[this] { stopping_ = true; }, [this] { StopListening(); },
           [this](const openssh::ForwardSpec& spec, Forwards::Opened done) { forwards_.Open(spec, std::move(done)); },
           [this](const openssh::ForwardSpec& spec) { return forwards_.Close(spec); },
           [this] { return forwards_.GrantX11(); }}),
      listen_fd_(std::move(listen_fd)),
      ip_cache_(config_.remote_ip_ttl),
      ip_host_(MakeIpHost(pool_.main(), config_.host)),
      started_(Clock::now()) {
  forwards_.SetAgentSocket(config_.agent_socket);
  forwards_.SetDisplay(config_.display, config_.x11_trusted);
  pool_.SetInbound([this](SshDriver& driver, SshDriver::Inbound kind, LIBSSH2_CHANNEL* channel) {
    forwards_.AcceptInbound(driver, kind, channel);
  });
  struct stat st{};
  if (::lstat(config_.socket_path.c_str(), &st) == 0) {
    socket_inode_ = st.st_ino;
    socket_device_ = st.st_dev;
  }
}

Master::~Master() = default;

Result<void> Master::OpenConfiguredForwards() {
  configured_forwards_.Start();
  if (configured_forwards_.fatal()) return Fail("{}", *configured_forwards_.fatal());
  return {};
}

void Master::AdoptOpenSshClient(UniqueFd fd, std::vector<std::uint8_t> first_bytes, std::string refusal) {
  openssh_.Adopt(std::move(fd), std::move(first_bytes), std::move(refusal));
}

void Master::Stop(bool when_idle) {
  if (!when_idle) {
    stopping_ = true;
    return;
  }
  log::Info("stop requested once idle: taking no new clients");
  StopListening();
}

void Master::StopListening() {
  RemoveSocket();
  listen_fd_.Reset();
}

void Master::CheckSocket(Clock::time_point now) {
  if (!listen_fd_ || now < next_socket_check_) return;
  next_socket_check_ = now + std::chrono::seconds(5);
  struct stat there{};
  if (::lstat(config_.socket_path.c_str(), &there) == 0) {
    if (there.st_ino == socket_inode_ && there.st_dev == socket_device_) return;
    log::Warn("{} is someone else's socket now; this master takes no new clients and exits once idle",
              config_.socket_path);
    listen_fd_.Reset();
    return;
  }
  if (errno != ENOENT) return;
  auto listener = Listen(config_.socket_path);
  if (!listener) {
    log::Warn("the socket {} was removed and cannot be published again ({}); exiting once idle",
              config_.socket_path, listener.error().message);
    listen_fd_.Reset();
    return;
  }
  listen_fd_ = std::move(*listener);
  if (::lstat(config_.socket_path.c_str(), &there) == 0) {
    socket_inode_ = there.st_ino;
    socket_device_ = there.st_dev;
  }
  log::Warn("the socket {} was removed by someone; published it again", config_.socket_path);
}

void Master::AcceptClients() {
  // A client is admitted while what it may cost leaves the master's reserve alone. Past that, a
  // few at a time are let in to be refused with a message (each briefly holding its connection
  // and, for an OpenSSH session, the three fds it lends, from the reserve); the rest wait in the
  // socket's backlog until those are done.
  constexpr std::size_t kMaxRefusing = 4;
  std::size_t room = FdBudget::Room(server_.promised_fds() + openssh_.promised_fds());
  for (int i = 0; i < 64; ++i) {
    const bool fits = room >= FdBudget::kClientCost;
    if (!fits && server_.refusing() + openssh_.refusing() >= kMaxRefusing) {
      accept_paused_until_ = Clock::now() + std::chrono::milliseconds(100);
      return;
    }
    auto client = AcceptOwnUid(listen_fd_.get());
    if (!client) {
      log::Warn("{}; not accepting for 1 s", client.error().message);
      accept_paused_until_ = Clock::now() + std::chrono::seconds(1);
      return;
    }
    if (!client->valid()) return;
    if (fits) {
      room -= FdBudget::kClientCost;
      server_.Add(std::move(*client));
      continue;
    }
    const std::size_t limit = FdBudget::Limit();
    log::Warn("refused a new client: out of file descriptors (limit {}, {} kept for the master itself)", limit,
              FdBudget::kReserve);
    server_.Add(std::move(*client),
                fmt::format("the master for {} is out of file descriptors for new clients (limit {})",
                            config_.destination, limit),
                "end some sessions or forwards, or start the master with a higher `ulimit -n`");
  }
}

void Master::RemoveSocket() {
  // Only remove the path if it is still our socket: a newer master may have replaced it.
  struct stat there{};
  if (::lstat(config_.socket_path.c_str(), &there) == 0 && there.st_ino == socket_inode_ &&
      there.st_dev == socket_device_) {
    ::unlink(config_.socket_path.c_str());
  }
}

namespace {

// Blocks the signals the master handles, so that they arrive only inside ppoll; returns the mask
// ppoll runs with.
sigset_t InstallSignals() {
  sigset_t blocked, during_poll;
  sigemptyset(&blocked);
  for (int signal : {SIGTERM, SIGINT, SIGHUP, SIGWINCH}) {
    sigaddset(&blocked, signal);
    struct sigaction action{};
    action.sa_handler = signal == SIGWINCH ? OnWindowChange : OnSignal;
    ::sigaction(signal, &action, nullptr);
  }
  ::signal(SIGPIPE, SIG_IGN);
  ::sigprocmask(SIG_BLOCK, &blocked, &during_poll);
  for (int signal : {SIGTERM, SIGINT, SIGHUP, SIGWINCH}) sigdelset(&during_poll, signal);
  return during_poll;
}

}  // namespace

bool Master::Idle() const {
  // A relayed mosh session keeps the master even while its channel is being replaced.
  return server_.client_count() == 0 && openssh_.client_count() == 0 && pool_.Idle() && relays_.empty();
}

void Master::Watch(Poller& poller, Clock::time_point now, bool accepting) {
  // The connections' own events come first: a reconnect or an overflow connection that has just
  // opened takes its tasks before the drivers run.
  pool_.Watch(poller, now);
  // Pumped before the clients' events, so what the server sent is in the clients' buffers (and a
  // finished channel's end noticed by Update) when they are read and written.
  poller.Then([this] {
    pool_.Pump();
    openssh_.Update();
    forwards_.Update();
    configured_forwards_.Update(pool_.link() == Link::kUp && !pool_.main().dead(), pool_.reconnects(), Clock::now());
  });
  poller.WakeBy(configured_forwards_.NextDeadline());
  server_.Watch(poller);
  openssh_.Watch(poller);
  forwards_.Watch(poller);
  for (const auto& [id, relay] : relays_) {
    // Relays are dropped only between rounds (UpdateRelays); StartRelay may add one this round.
    poller.Watch(relay->fd(), POLLIN, [this, id](short) {
      if (auto it = relays_.find(id); it != relays_.end()) it->second->OnReadable();
    });
  }
  // Relays are checked for a channel to restart each second.
  if (!relays_.empty()) poller.WakeBy(now + std::chrono::seconds(1));
  poller.Then([this] {
    // After the clients' events: deadlines are judged on what was just read, and the requests
    // read (and backlogs answered) queue their channels before the drivers run again to start
    // them and send what clients just wrote; then queued opens are spread over the connections.
    server_.ExpireHandshakes();
    openssh_.ExpireDeadlines();
    server_.ProcessBacklogs();
    pool_.Pump();
    pool_.Balance(Clock::now());
    openssh_.Update();
    forwards_.Update();
  });
  if (listen_fd_) poller.WakeBy(next_socket_check_);
  if (listen_fd_ && !accepting) poller.WakeBy(accept_paused_until_);
  // Accepting last: a new client starts on a round of its own, after this one's work is done.
  if (accepting) {
    poller.Watch(listen_fd_.get(), POLLIN, [this](short revents) {
      if (listen_fd_ && (revents & POLLIN)) AcceptClients();  // a Stop this round may have closed it
    });
  }
}

// Why the loop ends, when it does: nullopt while it goes on.
std::optional<int> Master::ExitReason(Clock::time_point now) {
  if (g_signal != 0) {
    log::Info("signal {}: exiting", static_cast<int>(g_signal));
    return 0;
  }
  if (stopping_) {
    log::Info("stop requested: exiting");
    return 0;
  }
  if (pool_.CheckLink(now)) return 255;  // lost, and not to be re-opened
  if (configured_forwards_.fatal()) {
    log::Error("{}: exiting", *configured_forwards_.fatal());
    return 255;
  }
  return std::nullopt;
}

int Master::Run() {
  const sigset_t during_poll = InstallSignals();
  log::Info("master for {} serving {} (persist {} s)", config_.destination, config_.socket_path,
            config_.persist.count());
  int exit_status = 0;
  Clock::time_point idle_since = Clock::now();
  bool trimmed = false;
  bool served = false;  // a client has come (and maybe gone)
  Poller poller;
  while (true) {
    auto now = Clock::now();
    if (auto reason = ExitReason(now)) {
      exit_status = *reason;
      break;
    }
    UpdateRelays(now);
    CheckSocket(now);
    const bool idle = Idle();
    if (!listen_fd_ && idle) {
      log::Info("stopped listening and the last client is done: exiting");
      break;
    }
    if (g_window_changed != 0) {
      g_window_changed = 0;
      openssh_.OnWindowChange();
    }
    if (!idle) {
      idle_since = now;
      trimmed = false;
      served = true;
    } else if (!trimmed) {
      // The last client is gone: give back to the kernel what its buffers (windows of up to
      // 16 MiB, a hundred clients' frames) left in the heap, so an idle master stays small.
      ::malloc_trim(0);
      trimmed = true;
    }
    const bool accepting = listen_fd_ && now >= accept_paused_until_;
    Watch(poller, now, accepting);
    if (config_.persist.count() != 0) {
      // persist < 0 (ControlPersist no): leave as soon as the last client has gone. Until a first
      // one came, wait for the launcher that started this master: it connects once we detached.
      const std::chrono::seconds linger = config_.persist.count() > 0 ? config_.persist
                                          : served                    ? std::chrono::seconds(0)
                                                                      : std::chrono::seconds(30);
      auto idle_end = idle_since + linger;
      if (idle && now >= idle_end) {
        log::Info("idle for {} s: exiting", linger.count());
        break;
      }
      poller.WakeBy(idle_end);
    }
    if (poller.Wait(&during_poll) < 0 && errno != EINTR) {
      log::Error("ppoll: {}", std::strerror(errno));
      exit_status = 1;
      break;
    }
  }
  server_.FlushAll();
  RemoveSocket();
  return exit_status;
}

}  // namespace mconnect::mux
