#include "mux/master.h"

#include <linux/tcp.h>
#include <malloc.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/log.h"
#include "base/poll.h"
#include "base/text.h"
#include "mosh/server.h"
#include "mux/control/requests.h"
#include "mux/fd_budget/fd_budget.h"
#include "mux/listener.h"

namespace mconnect::mux {
namespace {

volatile sig_atomic_t g_signal = 0;
volatile sig_atomic_t g_window_changed = 0;
void OnSignal(int signal) { g_signal = signal; }
// OpenSSH's mux clients relay SIGWINCH to the master's pid (from MUX_S_ALIVE).
void OnWindowChange(int) { g_window_changed = 1; }

control::ErrorReply MakeError(std::string message, std::string hint = {}) {
  control::ErrorReply error;
  error.set_message(std::move(message));
  error.set_hint(std::move(hint));
  return error;
}

}  // namespace

// The server as remote-ip strategies see it: commands run over this master's connection. And,
// for every request that runs a command, what the connection had to do with one that timed out.
class Master::IpHost : public remoteip::Host {
 public:
  IpHost(SshDriver& driver, std::string host_name) : driver_(driver), host_name_(std::move(host_name)) {}

  void RunCommand(std::string command, std::chrono::milliseconds timeout,
                  std::function<void(remoteip::CommandOutcome)> done) override {
    driver_.Exec({std::move(command), timeout, 4096}, [this, done = std::move(done)](ExecOutcome outcome) {
      EndTimedOut(driver_, outcome);
      remoteip::CommandOutcome result;
      result.exit_status = outcome.exit_status;
      result.out = std::move(outcome.out);
      result.err = std::move(outcome.err);
      result.timed_out = outcome.timed_out;
      result.unanswered = outcome.unanswered;
      result.error = std::move(outcome.error);
      done(std::move(result));
    });
  }
  std::optional<std::string> PeerAddress() const override {
    // Through a proxy command nobody knows where the stream ends: no answer, not a wrong one.
    const std::string& address = driver_.connection().peer_address();
    if (driver_.dead() || address.empty()) return std::nullopt;
    return address;
  }
  std::string NoPeerAddress() const override {
    if (driver_.dead()) return fmt::format("the master's connection is down ({})", driver_.death());
    return "the master's connection goes through a proxy command (ProxyCommand or ProxyJump), so it has no TCP "
           "peer address";
  }
  std::string HostName() const override { return host_name_; }

  // A command that timed out may still run on the server: its process group is ended there,
  // on a channel of its own (mux/ssh/exec_task.h).
  static void EndTimedOut(SshDriver& driver, const ExecOutcome& outcome) {
    if (!outcome.timed_out || outcome.process_group <= 0) return;
    const std::int64_t group = outcome.process_group;
    log::Info("ending the timed-out command's process group {} on the server", group);
    driver.Exec({EndProcessGroupCommand(group), std::chrono::seconds(5), 1024}, [group](ExecOutcome ended) {
      if (!ended.error.empty() || ended.timed_out) {
        log::Warn("could not end process group {} on the server: {}", group,
                  ended.timed_out ? "no answer within 5 s" : ended.error);
      }
    });
  }

  // How long the server has sent nothing on the main connection, as TCP counts it (the time since
  // data last arrived: keepalive replies are data); nullopt through a proxy command, where there is
  // no TCP socket to ask.
  static std::optional<std::chrono::milliseconds> Silence(const SshDriver& driver) {
    tcp_info info{};
    socklen_t length = sizeof info;
    if (driver.dead() || ::getsockopt(driver.fd(), IPPROTO_TCP, TCP_INFO, &info, &length) != 0) return std::nullopt;
    return std::chrono::milliseconds(info.tcpi_last_data_recv);
  }

  // The connection's part in a request that timed out after `waited`: the master reconnecting,
  // or a server that left the request (or a keepalive) unanswered. nullopt when the connection
  // answers (the command itself was slow then).
  static std::optional<control::ErrorReply> ConnectionTrouble(const Master& master, const ExecOutcome& outcome,
                                                              Clock::duration waited) {
    if (!outcome.timed_out) return std::nullopt;
    const MasterConfig& config = master.config_;
    const std::string& name = config.alias.empty() ? config.host : config.alias;
    auto seconds = [](Clock::duration d) { return std::chrono::duration_cast<std::chrono::seconds>(d).count(); };
    if (master.link_ == Link::kReconnecting) {
      std::string attempts = master.attempts_ > 0 ? fmt::format("attempt {}; ", master.attempts_) : "";
      std::string last = master.link_detail_.empty() || master.link_detail_ == master.driver_.death()
                             ? ""
                             : "; the last attempt: " + master.link_detail_;
      return MakeError(fmt::format("the master for {} is reconnecting to {} port {} ({}lost {} s ago: {}{})", name,
                                   config.host, config.port, attempts, seconds(Clock::now() - master.down_since_),
                                   master.driver_.death(), last),
                       fmt::format("it keeps trying by itself; `mconnect status` shows how it goes, `mconnect stop "
                                   "{}` ends it",
                                   name));
    }
    // Silence alone does not tell: an idle server with a slow command says nothing either. A
    // request the server never acknowledged while it sent nothing at all, or a keepalive left
    // unanswered, does. (Through a proxy command there is no socket to ask: the request alone.)
    const auto silence = Silence(master.driver_);
    const bool unanswered =
        outcome.unanswered && (!silence || *silence + std::chrono::milliseconds(250) >= waited);
    const bool silent = unanswered || (silence && *silence > config.keepalive + std::chrono::seconds(2));
    if (!silent) return std::nullopt;
    const std::string since = silence ? fmt::format("nothing heard from the server for {} s", seconds(*silence))
                                      : fmt::format("no answer from the server for {} s", seconds(waited));
    const std::string lost =
        config.keepalive_count_max == 0
            ? "the master never declares the connection lost (ServerAliveCountMax 0)"
            : fmt::format("the master declares the connection lost after {} s of silence (ServerAliveInterval {} "
                          "× (ServerAliveCountMax {} + 1)) and reconnects",
                          config.keepalive.count() * (config.keepalive_count_max + 1), config.keepalive.count(),
                          config.keepalive_count_max);
    return MakeError(fmt::format("the connection to {} ({} port {}) is not answering: {}", name, config.host,
                                 config.port, since),
                     fmt::format("{}; `mconnect stop {}` ends it now", lost, name));
  }

 private:
  SshDriver& driver_;
  std::string host_name_;
};

Master::Master(MasterConfig config, std::unique_ptr<SshConnection> connection, UniqueFd listen_fd)
    : config_(std::move(config)),
      driver_(std::move(connection), config_.keepalive, config_.keepalive_count_max),
      reconnector_(config_.connect),

      server_(*this),
      forwards_(driver_),
      openssh_([this](std::unique_ptr<ChannelTask> task) { driver_.Start(std::move(task)); },
               {[this] { stopping_ = true; }, [this] { StopListening(); },
                [this](const openssh::ForwardSpec& spec, Forwards::Opened done) {
                  forwards_.Open(spec, std::move(done));
                },
                [this](const openssh::ForwardSpec& spec) { return forwards_.Close(spec); }}),
      listen_fd_(std::move(listen_fd)),
      ip_cache_(config_.remote_ip_ttl),
      ip_host_(std::make_unique<IpHost>(driver_, config_.host)),
      started_(Clock::now()) {
  driver_.SetOverflow([this](std::unique_ptr<ChannelTask> task) { Overflow(std::move(task)); });
  for (int i = 0; i < kParallelOpens; ++i) openers_.push_back(std::make_unique<Reconnector>(config_.connect));
  if (config_.reconnect) driver_.HoldWhileDown(config_.reconnect_wait);
  struct stat st{};
  if (::lstat(config_.socket_path.c_str(), &st) == 0) {
    socket_inode_ = st.st_ino;
    socket_device_ = st.st_dev;
  }
}

Master::~Master() = default;

std::vector<SshDriver*> Master::Drivers() {
  std::vector<SshDriver*> drivers{&driver_};
  for (auto& extra : extra_) drivers.push_back(extra.get());
  return drivers;
}

void Master::PumpDrivers() {
  // By index: an overflow during a Pump may add a connection.
  driver_.Pump();
  for (std::size_t i = 0; i < extra_.size(); ++i) extra_[i]->Pump();
  // Overflow connections that died, or have been idle a while, go away.
  auto now = Clock::now();
  std::erase_if(extra_, [now](const std::unique_ptr<SshDriver>& driver) {
    bool idle = driver->busy_channels() == 0 && now - driver->last_busy() > std::chrono::seconds(10);
    if (driver->dead() || idle) log::Info("closing an overflow connection ({})", driver->dead() ? "lost" : "idle");
    return driver->dead() || idle;
  });
}

void Master::Overflow(std::unique_ptr<ChannelTask> task) {
  for (auto& extra : extra_) {
    if (!extra->full() && !extra->dead()) return extra->Start(std::move(task));
  }
  // Placed by the loop (PlaceWaiting): this runs inside a driver's pump, whose queue must not
  // change under it.
  overflow_waiting_.push_back(std::move(task));
}

bool Master::MayOpenAnother(Clock::time_point now) const {
  // A connection costs a socket, and a proxy command's pipes; the fds for them must be there
  // besides the master's own reserve.
  constexpr std::size_t kConnectionFds = 8;
  const auto running = static_cast<std::size_t>(
      std::ranges::count_if(openers_, [](const auto& opener) { return opener->running(); }));
  return now >= next_open_ && extra_.size() + 1 + running < kMaxConnections && running < openers_.size() &&
         FdBudget::Room(server_.promised_fds() + openssh_.promised_fds()) >= kConnectionFds;
}

void Master::OpenAnotherConnection() {
  for (auto& opener : openers_) {
    if (!opener->running()) return opener->Start();  // strict host key, no person
  }
}

void Master::PlaceWaiting(Clock::time_point now) {
  std::erase_if(overflow_waiting_, [](std::unique_ptr<ChannelTask>& task) {
    if (!task->Abandoned()) return false;
    task->Abort("gave up waiting for a channel");
    return true;
  });
  // Session tasks queued on a connection the server has just called full would only be refused
  // there one round trip at a time: they come back to wait here.
  for (SshDriver* driver : Drivers()) {
    if (!driver->full() || driver->unopened() == 0) continue;
    for (auto& task : driver->TakeUnopened(driver->unopened(), true)) overflow_waiting_.push_back(std::move(task));
  }
  if (overflow_waiting_.empty()) return;
  if (link_ != Link::kUp) {
    // The main connection holds them while it is being re-opened (SshDriver::HoldWhileDown).
    for (auto& task : overflow_waiting_) driver_.Start(std::move(task));
    overflow_waiting_.clear();
    return;
  }
  // A forwarded connection's channel (direct-tcpip) is not one MaxSessions counts: it never
  // waits for a session slot, but goes to the live connection with the fewest opens queued.
  std::erase_if(overflow_waiting_, [this](std::unique_ptr<ChannelTask>& task) {
    if (task->UsesSessionChannel()) return false;
    SshDriver* shortest = &driver_;
    for (SshDriver* driver : Drivers()) {
      if (!driver->dead() && driver->unopened() < shortest->unopened()) shortest = driver;
    }
    shortest->Start(std::move(task));
    return true;
  });
  if (overflow_waiting_.empty()) return;
  // First to connections with room and a short queue of opens.
  std::size_t placed = 0;
  for (SshDriver* driver : Drivers()) {
    while (placed < overflow_waiting_.size() && !driver->dead() && !driver->full() && driver->unopened() < kKeepOpens) {
      driver->Start(std::move(overflow_waiting_[placed++]));
    }
  }
  overflow_waiting_.erase(overflow_waiting_.begin(), overflow_waiting_.begin() + static_cast<std::ptrdiff_t>(placed));
  if (overflow_waiting_.empty()) return;
  const auto running = static_cast<std::size_t>(
      std::ranges::count_if(openers_, [](const auto& opener) { return opener->running(); }));
  std::vector<SshDriver*> roomy;
  for (SshDriver* driver : Drivers()) {
    if (!driver->dead() && !driver->full()) roomy.push_back(driver);
  }
  if (!roomy.empty()) {
    // A burst of opens, not a lack of room: connections with room take the rest into their
    // queues, unless one being opened will take them.
    if (running > 0) return;
    for (std::size_t i = 0; i < overflow_waiting_.size(); ++i) roomy[i % roomy.size()]->Start(std::move(overflow_waiting_[i]));
    overflow_waiting_.clear();
    return;
  }
  // Every connection is full: as many more as the waiting tasks need, judged by how many
  // sessions the server allowed on one, within the cap and the fds. Past that they wait here
  // until a channel closes somewhere (never refused for lack of room: OpenSSH's client would
  // then log in by itself).
  const std::size_t wanted = (overflow_waiting_.size() + SessionsPerConnection() - 1) / SessionsPerConnection();
  for (std::size_t i = running; i < wanted && MayOpenAnother(now); ++i) OpenAnotherConnection();
}

std::size_t Master::SessionsPerConnection() {
  std::size_t most = 0;
  for (SshDriver* driver : Drivers()) {
    if (driver->full()) most = std::max(most, driver->busy_channels());
  }
  return most > 0 ? most : 10;  // sshd's default MaxSessions
}

void Master::BalanceOpens(Clock::time_point now) {
  if (link_ != Link::kUp) return;
  // A task that waited this long for its open means the opens really queue up (on loopback
  // one takes well under a millisecond).
  constexpr auto kQueued = std::chrono::milliseconds(20);
  std::vector<std::unique_ptr<ChannelTask>> surplus;
  for (SshDriver* driver : Drivers()) {
    auto oldest = driver->oldest_unopened();
    if (driver->dead() || !oldest || now - *oldest < kQueued || driver->unopened() <= kKeepOpens) continue;
    for (auto& task : driver->TakeUnopened(driver->unopened() - kKeepOpens)) surplus.push_back(std::move(task));
  }
  if (surplus.empty()) return;
  // To connections with room in their queue, then to the ones being opened.
  for (SshDriver* driver : Drivers()) {
    while (!surplus.empty() && !driver->dead() && !driver->full() && driver->unopened() < kKeepOpens) {
      driver->Start(std::move(surplus.back()));
      surplus.pop_back();
    }
  }
  if (surplus.empty()) return;
  for (auto& task : surplus) overflow_waiting_.push_back(std::move(task));
  const auto running = static_cast<std::size_t>(
      std::ranges::count_if(openers_, [](const auto& opener) { return opener->running(); }));
  const std::size_t wanted =
      std::min<std::size_t>(openers_.size(), (overflow_waiting_.size() + kKeepOpens) / (kKeepOpens + 1));
  for (std::size_t i = running; i < wanted && extra_.size() + 1 + i < kMaxBurstConnections && MayOpenAnother(now); ++i) {
    OpenAnotherConnection();
  }
  PlaceWaiting(now);
}

void Master::OnOverflowOpened(Reconnector& opener) {
  auto outcome = opener.Take();
  if (!outcome) return;
  const auto now = Clock::now();
  if (!*outcome) {
    log::Warn("another connection to {} failed: {}", config_.destination, outcome->error().message);
    // Not again at once: a server that refuses connections (MaxStartups) is asked once a second.
    next_open_ = now + std::chrono::seconds(1);
    if (std::ranges::any_of(openers_, [](const auto& other) { return other->running(); })) return;
    if (std::ranges::any_of(Drivers(), [](SshDriver* driver) { return !driver->dead() && !driver->full(); })) {
      return PlaceWaiting(now);
    }
    // Nowhere to go, and no way to make room but waiting: a task that cannot wait hears why.
    if (outcome->error().kind != OpenFailure::kNetwork) {
      auto waiting = std::move(overflow_waiting_);
      overflow_waiting_.clear();
      for (auto& task : waiting) task->Abort("another connection for more sessions failed: " + outcome->error().message);
    }
    return;
  }
  auto driver = std::make_unique<SshDriver>(std::move(**outcome), config_.keepalive);
  driver->SetOverflow([this](std::unique_ptr<ChannelTask> next) { Overflow(std::move(next)); });
  // As many as the server allows on one connection; the rest wait for the next (those opened
  // together share them out).
  const std::size_t share = std::min(overflow_waiting_.size(), SessionsPerConnection());
  for (std::size_t i = 0; i < share; ++i) driver->Start(std::move(overflow_waiting_[i]));
  overflow_waiting_.erase(overflow_waiting_.begin(), overflow_waiting_.begin() + static_cast<std::ptrdiff_t>(share));
  extra_.push_back(std::move(driver));
  ++connections_opened_;
  log::Info("opened overflow connection {} to {}", extra_.size(), config_.destination);
}

control::StatusReply Master::Status() {
  control::StatusReply reply;
  reply.set_destination(config_.destination);
  reply.set_user(config_.user);
  reply.set_host(config_.host);
  reply.set_port(static_cast<std::uint32_t>(config_.port));
  reply.set_pid(static_cast<std::uint32_t>(::getpid()));
  reply.set_socket_path(config_.socket_path);
  reply.set_alias(config_.alias);
  reply.set_forwards(static_cast<std::uint32_t>(forwards_.listener_count()));
  reply.set_sessions(static_cast<std::uint32_t>(openssh_.session_count()));
  reply.set_stopping(!listen_fd_);
  reply.set_uptime_ms(static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started_).count()));
  std::size_t channels = 0;
  for (SshDriver* driver : Drivers()) channels += driver->busy_channels();
  reply.set_channels(static_cast<std::uint32_t>(channels));
  reply.set_connections(static_cast<std::uint32_t>(1 + extra_.size()));
  reply.set_connections_opened(connections_opened_);
  reply.set_clients(static_cast<std::uint32_t>(server_.client_count()));
  reply.set_peer_address(driver_.connection().peer_address());
  reply.set_execs(driver_.tasks_started());
  reply.set_persist_s(static_cast<std::int32_t>(config_.persist.count()));
  // Bytes as the kernel counts them on each SSH connection's socket: no counter of our own
  // in the data path.
  for (SshDriver* driver : Drivers()) {
    tcp_info info{};
    socklen_t length = sizeof info;
    if (::getsockopt(driver->fd(), IPPROTO_TCP, TCP_INFO, &info, &length) == 0) {
      reply.set_bytes_sent(reply.bytes_sent() + info.tcpi_bytes_acked);
      reply.set_bytes_received(reply.bytes_received() + info.tcpi_bytes_received);
    }
  }
  if (auto latest = ip_cache_.Newest(Clock::now())) {
    reply.set_last_ip_address(latest->hit.address);
    reply.set_last_ip_strategy(latest->spec);
    reply.set_last_ip_age_ms(static_cast<std::uint64_t>(latest->hit.age.count()));
  }
  switch (link_) {
    case Link::kUp: reply.set_link("up"); break;
    case Link::kReconnecting: reply.set_link("reconnecting"); break;
    case Link::kNeedsPerson: reply.set_link("needs-person"); break;
  }
  reply.set_link_detail(link_detail_);
  reply.set_reconnects(reconnects_);
  reply.set_relays(static_cast<std::uint32_t>(relays_.size()));
  std::uint64_t dropped = relay_dropped_;
  for (const auto& relay : relays_) {
    const MoshOverSshStats stats = relay->stats();
    dropped += stats.dropped;
    control::RelaySession& session = *reply.add_relay_sessions();
    session.set_local_port(static_cast<std::uint32_t>(relay->local_port()));
    session.set_server_port(static_cast<std::uint32_t>(relay->remote_port()));
    session.set_server_pid(relay->server_pid());
    session.set_relay(relay->kind());
    session.set_reason(relay->reason());
    session.set_carrying(relay->carrying());
    session.set_to_server(stats.to_server);
    session.set_to_client(stats.to_client);
    session.set_dropped(stats.dropped);
    session.set_channels(stats.channels);
    session.set_refused(stats.refused);
  }
  reply.set_relay_dropped(dropped);
  reply.set_channel_window(driver_.ChannelWindow());
  return reply;
}

void Master::Exec(const control::ExecRequest& request, Reply<control::ExecReply> reply) {
  auto spec = ExecFromRequest(request);
  if (!spec) return reply(std::unexpected(MakeError(spec.error().message)));
  log::Info("exec: {}", spec->command);
  driver_.Exec(std::move(*spec), [this, started = Clock::now(), reply = std::move(reply)](ExecOutcome outcome) {
    IpHost::EndTimedOut(driver_, outcome);
    if (!outcome.error.empty()) return reply(std::unexpected(MakeError(outcome.error)));
    if (auto trouble = IpHost::ConnectionTrouble(*this, outcome, Clock::now() - started)) {
      log::Warn("exec: {}", trouble->message());
      return reply(std::unexpected(std::move(*trouble)));
    }
    control::ExecReply result;
    result.set_stdout(std::move(outcome.out));
    result.set_stderr(std::move(outcome.err));
    result.set_exit_status(outcome.exit_status);
    result.set_exit_signal(outcome.exit_signal);
    result.set_timed_out(outcome.timed_out);
    result.set_truncated(outcome.truncated);
    reply(std::move(result));
  });
}

void Master::DiscoverIp(const control::DiscoverIpRequest& request, Reply<control::DiscoverIpReply> reply) {
  auto params = DiscoverFromRequest(request);
  if (!params) return reply(std::unexpected(MakeError(params.error().message)));
  auto chain = remoteip::Chain::Parse(params->strategies, &ip_cache_, {}, params->family);
  if (!chain) return reply(std::unexpected(MakeError(chain.error().message)));
  if (params->refresh) {
    for (const auto& spec : chain->Specs()) ip_cache_.Erase(spec);  // canonical, as cached
  }
  chain->Run(*ip_host_, params->timeout, [reply = std::move(reply)](remoteip::ChainResult result) {
    control::DiscoverIpReply out;
    for (const auto& candidate : result.candidates) {
      auto* c = out.add_candidates();
      c->set_strategy(candidate.strategy);
      c->set_address(candidate.address);
      c->set_error(candidate.error);
      c->set_elapsed_ms(static_cast<std::uint32_t>(candidate.elapsed.count()));
      c->set_age_ms(static_cast<std::uint64_t>(candidate.age.count()));
      if (!candidate.error.empty()) log::Info("remote-ip: {}", candidate.error);
    }
    if (result.address) {
      out.set_address(*result.address);
      log::Info("remote-ip: {}", *result.address);
    }
    reply(std::move(out));
  });
}

void Master::StartMoshServer(const control::StartMoshServerRequest& request,
                             Reply<control::StartMoshServerReply> reply) {
  RunMoshServer(request, false, std::move(reply));
}

void Master::RunMoshServer(const control::StartMoshServerRequest& request, bool locale_fallback,
                           Reply<control::StartMoshServerReply> reply) {
  auto command = MoshServerCommandFromRequest(request, locale_fallback);
  if (!command) return reply(std::unexpected(MakeError(command.error().message)));

  log::Info("starting mosh-server: {}", *command);
  auto started = Clock::now();
  const auto limit = BoundedTimeout(request.timeout_ms(), std::chrono::milliseconds(20000));
  ExecSpec spec{*command, limit, 16 * 1024};
  // Its output holds the session key: every copy made below until the reply is sent (the parsed
  // key, the reply message, its frame) is cleared as it is freed (mux/ssh/exec_task.h).
  spec.secret_output = true;
  std::vector<std::string> locale = locale_fallback ? std::vector<std::string>{"LANG=C.UTF-8"}
                                                    : std::vector<std::string>(request.locale().begin(), request.locale().end());
  driver_.Exec(std::move(spec), [this, request, locale_fallback, started, limit, locale = std::move(locale),
                                 reply = std::move(reply)](ExecOutcome outcome) mutable {
    IpHost::EndTimedOut(driver_, outcome);
    if (!outcome.error.empty()) return reply(std::unexpected(MakeError("cannot start mosh-server: " + outcome.error)));
    if (auto trouble = IpHost::ConnectionTrouble(*this, outcome, Clock::now() - started)) {
      log::Warn("starting mosh-server: {}", trouble->message());
      return reply(std::unexpected(std::move(*trouble)));
    }
    if (outcome.timed_out) {
      const std::string& name = config_.alias.empty() ? config_.host : config_.alias;
      const std::string server = request.server().empty() ? "mosh-server" : request.server();
      const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(limit).count();
      log::Warn("mosh-server did not answer within {} s", seconds);
      return reply(std::unexpected(MakeError(
          fmt::format("mosh-server did not answer within {} s", seconds),
          fmt::format("check that mosh-server runs on the server: ssh {} {} new", name, server))));
    }
    auto parsed = mosh::ParseMoshServerOutput(outcome.exit_status, outcome.out, outcome.err);
    if (!parsed) {
      if (parsed.error().kind == mosh::MoshServerFailure::kLocale && !locale_fallback) {
        std::string requested;
        for (const auto& entry : locale) requested += (requested.empty() ? "" : " ") + entry;
        log::Warn("the server has no locale for {} ({}); starting it again with LANG=C.UTF-8",
                  requested.empty() ? "its default" : requested, parsed.error().message);
        return RunMoshServer(request, true, std::move(reply));
      }
      log::Warn("mosh-server failed: {}", parsed.error().message);
      return reply(std::unexpected(MakeError(parsed.error().message, parsed.error().hint)));
    }
    control::StartMoshServerReply result;
    result.set_port(parsed->port);
    result.set_key(parsed->key);
    result.set_server_pid(parsed->server_pid);
    std::string used;
    for (const auto& entry : locale) used += (used.empty() ? "" : " ") + entry;
    result.set_locale_used(used);
    result.set_elapsed_ms(static_cast<std::uint32_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count()));
    log::Info("mosh-server listening on UDP port {} (pid {}), key {}", parsed->port, parsed->server_pid,
              Secret{parsed->key});
    reply(std::move(result));
  });
}

void Master::StartRelay(const control::StartRelayRequest& request, Reply<control::StartRelayReply> reply) {
  constexpr std::size_t kMaxRelays = 64;
  if (relays_.size() >= kMaxRelays) {
    return reply(std::unexpected(MakeError(fmt::format("this master already relays {} mosh sessions", kMaxRelays))));
  }
  auto params = RelayFromRequest(request);
  if (!params) return reply(std::unexpected(MakeError(params.error().message)));
  if (link_ != Link::kUp) return reply(std::unexpected(MakeError("the master's connection is down: " + link_detail_)));
  auto relay = MoshOverSsh::Open(params->port, params->server_pid, params->relay);
  if (!relay) return reply(std::unexpected(MakeError(relay.error().message)));
  int local_port = (*relay)->local_port();
  (*relay)->set_reason(params->reason);
  // Answered once the server side has said which relay it is, so the launcher can say so and
  // mosh-client starts only when its datagrams have somewhere to go.
  (*relay)->SetReady([reply = std::move(reply), local_port](Result<std::string> kind) {
    if (!kind) return reply(std::unexpected(MakeError(kind.error().message)));
    control::StartRelayReply result;
    result.set_local_port(static_cast<std::uint32_t>(local_port));
    result.set_relay(*kind);
    reply(std::move(result));
  });
  log::Info("relaying mosh datagrams for UDP port {} (mosh-server pid {}) from 127.0.0.1:{}: {}", request.port(),
            request.server_pid(), local_port, (*relay)->reason());
  // Only this relay's task: erasing finished ones here would shift the loop's poll indices.
  if (auto task = (*relay)->TaskToStart(Clock::now())) driver_.Start(std::move(task));
  relays_.push_back(std::move(*relay));
}

void Master::UpdateRelays(Clock::time_point now) {
  for (auto& relay : relays_) {
    if (link_ != Link::kUp) break;
    if (auto task = relay->TaskToStart(now)) driver_.Start(std::move(task));
  }
  std::erase_if(relays_, [this](const std::unique_ptr<MoshOverSsh>& relay) {
    if (!relay->finished()) return false;
    auto stats = relay->stats();
    relay_dropped_ += stats.dropped;
    log::Info("mosh relay on 127.0.0.1:{} done: {} datagrams up, {} down, {} dropped, {} refused, {} channel(s)",
              relay->local_port(), stats.to_server, stats.to_client, stats.dropped, stats.refused, stats.channels);
    return true;
  });
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

void Master::OnConnectionLost(Clock::time_point now) {
  link_detail_ = driver_.death();
  if (!config_.reconnect) return;
  link_ = Link::kReconnecting;
  down_since_ = now;
  attempts_ = 0;
  next_attempt_ = now;  // at once: a server that restarted is usually back already
  log::Warn("connection to {} lost ({}); reconnecting, requests wait up to {} s", config_.destination,
            link_detail_, config_.reconnect_wait.count());
}

std::optional<Master::Clock::time_point> Master::ScheduleReconnect(Clock::time_point now) {
  if (link_ != Link::kReconnecting || reconnector_.running()) return std::nullopt;
  // Someone is waiting: do not make them sit out the backoff, but never retry more than once a
  // second (a refused connect fails in microseconds).
  auto due = next_attempt_;
  if (driver_.waiting()) due = std::min(due, last_attempt_end_ + std::chrono::seconds(1));
  if (now < due) return due;
  ++attempts_;
  log::Info("reconnect attempt {} to {}", attempts_, config_.destination);
  reconnector_.Start();
  if (reconnector_.running()) return std::nullopt;
  // Not even started (out of fds for its eventfd): again after the backoff, not on every turn.
  last_attempt_end_ = now;
  next_attempt_ = now + ReconnectBackoff(attempts_);
  return next_attempt_;
}

void Master::OnReconnectOutcome(Clock::time_point now) {
  auto outcome = reconnector_.Take();
  if (!outcome) return;
  last_attempt_end_ = now;
  if (*outcome) {
    driver_.Replace(std::move(**outcome));
    link_ = Link::kUp;
    link_detail_.clear();
    ++reconnects_;
    ++connections_opened_;
    log::Warn("reconnected to {} ({}) after {} s and {} attempt(s)", config_.destination,
              driver_.connection().peer_address().empty() ? "through the proxy" : driver_.connection().peer_address(),
              std::chrono::duration_cast<std::chrono::seconds>(now - down_since_).count(), attempts_);
    return;
  }
  const OpenError& error = outcome->error();
  link_detail_ = error.message;
  if (error.kind == OpenFailure::kNetwork) {
    next_attempt_ = now + ReconnectBackoff(attempts_);
    log::Info("reconnect attempt {} failed: {}; next in {} s", attempts_, error.message,
              ReconnectBackoff(attempts_).count());
    return;
  }
  // A changed host key, or authentication that needs a passphrase or a password: the next
  // `mconnect` sees this in Status and starts a master in the foreground that can ask.
  link_ = Link::kNeedsPerson;
  log::Warn("cannot reconnect to {} without a person: {}", config_.destination, error.message);
  driver_.HoldWhileDown(std::chrono::seconds(0),
                        fmt::format("the connection to {} was lost and re-opening it needs you ({}); run mconnect "
                                    "again to authenticate",
                                    config_.destination, error.message));
}

void Master::LogProxyErrors() {
  for (const auto& line : driver_.connection().stream().TakeErrors()) log::Warn("proxy: {}", line);
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

using TimePoint = std::chrono::steady_clock::time_point;

void Earliest(std::optional<TimePoint>& deadline, std::optional<TimePoint> candidate) {
  if (candidate) deadline = deadline ? std::min(*deadline, *candidate) : *candidate;
}

}  // namespace

bool Master::Idle() const {
  // A relayed mosh session keeps the master even while its channel is being replaced.
  return server_.client_count() == 0 && openssh_.client_count() == 0 && driver_.busy_channels() == 0 &&
         extra_.empty() && relays_.empty() && overflow_waiting_.empty();
}

std::optional<Master::Clock::time_point> Master::NextWake(Clock::time_point now, bool accepting) {
  std::optional<Clock::time_point> deadline;
  for (SshDriver* driver : Drivers()) Earliest(deadline, driver->NextDeadline());
  // Opens that queue up are spread over more connections once they have waited a moment.
  for (SshDriver* driver : Drivers()) {
    // (Once past, BalanceOpens has had its look: the opens' own replies wake the loop.)
    if (auto oldest = driver->oldest_unopened(); oldest && *oldest + std::chrono::milliseconds(21) > now) {
      Earliest(deadline, *oldest + std::chrono::milliseconds(21));
    }
  }
  // Overflow connections are checked for idleness, relays for a channel to restart, tasks
  // waiting for room for a connection to open (or their client gone), each second.
  if (!extra_.empty() || !relays_.empty() || !overflow_waiting_.empty()) Earliest(deadline, now + std::chrono::seconds(1));
  for (auto handshake : {server_.NextDeadline(), openssh_.NextDeadline(), forwards_.NextDeadline()}) {
    Earliest(deadline, handshake);
  }
  Earliest(deadline, ScheduleReconnect(now));
  if (listen_fd_) Earliest(deadline, next_socket_check_);
  if (listen_fd_ && !accepting) Earliest(deadline, accept_paused_until_);
  return deadline;
}

Master::PollLayout Master::BuildPollSet(std::vector<pollfd>& fds, bool accepting) {
  PollLayout layout;
  fds.clear();
  fds.push_back({listen_fd_.get(), static_cast<short>(accepting ? POLLIN : 0), 0});
  fds.push_back({driver_.fd(), driver_.PollEvents(), 0});
  fds.push_back({reconnector_.fd(), static_cast<short>(reconnector_.running() ? POLLIN : 0), 0});
  fds.push_back({driver_.connection().stream().errors_fd(), POLLIN, 0});
  layout.first_opener = fds.size();
  for (const auto& opener : openers_) {
    fds.push_back({opener->fd(), static_cast<short>(opener->running() ? POLLIN : 0), 0});
  }
  for (auto& extra : extra_) fds.push_back({extra->fd(), extra->PollEvents(), 0});
  layout.first_client = fds.size();
  server_.AddPollFds(fds);
  layout.openssh_begin = fds.size();
  openssh_.AddPollFds(fds);
  layout.forwards_begin = fds.size();
  forwards_.AddPollFds(fds);
  layout.relays_begin = fds.size();
  for (const auto& relay : relays_) fds.push_back({relay->fd(), POLLIN, 0});
  return layout;
}

void Master::Dispatch(std::vector<pollfd>& fds, const PollLayout& layout, int ready, bool accepting) {
  if (ready > 0 && (fds[kReconnectorEntry].revents & POLLIN)) OnReconnectOutcome(Clock::now());
  if (ready > 0 && fds[kProxyErrorsEntry].revents != 0) LogProxyErrors();
  for (std::size_t i = 0; ready > 0 && i < openers_.size(); ++i) {
    if (fds[layout.first_opener + i].revents & POLLIN) OnOverflowOpened(*openers_[i]);
  }
  PumpDrivers();
  openssh_.Update();
  forwards_.Update();
  if (ready > 0) {
    server_.HandleEvents(fds.data() + layout.first_client, layout.openssh_begin - layout.first_client);
    openssh_.HandleEvents(fds.data() + layout.openssh_begin, layout.forwards_begin - layout.openssh_begin);
    forwards_.HandleEvents(fds.data() + layout.forwards_begin, layout.relays_begin - layout.forwards_begin);
    // StartRelay during this round may have added relays: only those polled are read.
    for (std::size_t i = layout.relays_begin; i < fds.size() && i - layout.relays_begin < relays_.size(); ++i) {
      if (fds[i].revents != 0) relays_[i - layout.relays_begin]->OnReadable();
    }
  }
  // After HandleEvents: the control server's poll entries line up with its clients only until
  // one is removed.
  server_.ExpireHandshakes();
  openssh_.ExpireDeadlines();
  server_.ProcessBacklogs();
  PumpDrivers();  // start what the requests just queued, send what clients just wrote
  BalanceOpens(Clock::now());
  PlaceWaiting(Clock::now());
  openssh_.Update();
  forwards_.Update();
  if (ready > 0 && accepting && listen_fd_ && (fds[kListenEntry].revents & POLLIN)) AcceptClients();
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
  if (driver_.dead() && link_ == Link::kUp) {
    OnConnectionLost(now);
    if (!config_.reconnect) return 255;
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
  std::vector<pollfd> fds;
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
    std::optional<Clock::time_point> deadline = NextWake(now, accepting);
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
      Earliest(deadline, idle_end);
    }

    const PollLayout layout = BuildPollSet(fds, accepting);
    timespec timeout{};
    timespec* timeout_ptr = nullptr;
    if (deadline) {
      auto left = std::max(Clock::duration::zero(), *deadline - now);
      auto seconds = std::chrono::duration_cast<std::chrono::seconds>(left);
      timeout.tv_sec = seconds.count();
      timeout.tv_nsec = std::chrono::duration_cast<std::chrono::nanoseconds>(left - seconds).count();
      timeout_ptr = &timeout;
    }
    int ready = PollDistinct(fds, timeout_ptr, &during_poll);
    if (ready < 0 && errno != EINTR) {
      log::Error("ppoll: {}", std::strerror(errno));
      exit_status = 1;
      break;
    }
    Dispatch(fds, layout, ready, accepting);
  }
  server_.FlushAll();
  RemoveSocket();
  return exit_status;
}

}  // namespace mconnect::mux
