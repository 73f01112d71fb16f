// The control services the master offers its clients (MasterServices): status, commands run on
// the server, the server's IP address, mosh-server and the relays of mosh's datagrams.
#include "mux/master.h"

#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "base/text.h"
#include "mosh/server.h"
#include "mux/control/requests.h"

namespace mconnect::mux {
namespace {

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
    if (master.pool_.link() == Link::kReconnecting) {
      std::string attempts = master.pool_.attempts() > 0 ? fmt::format("attempt {}; ", master.pool_.attempts()) : "";
      std::string last = master.pool_.link_detail().empty() || master.pool_.link_detail() == master.pool_.main().death()
                             ? ""
                             : "; the last attempt: " + master.pool_.link_detail();
      return MakeError(
          fmt::format("the master for {} is reconnecting to {} port {} ({}lost {} s ago: {}{})", name, config.host,
                      config.port, attempts, seconds(Clock::now() - master.pool_.down_since()),
                      master.pool_.main().death(), last),
          fmt::format("it keeps trying by itself; `mconnect status` shows how it goes, `mconnect stop "
                      "{}` ends it",
                      name));
    }
    // Silence alone does not tell: an idle server with a slow command says nothing either. A
    // request the server never acknowledged while it sent nothing at all, or a keepalive left
    // unanswered, does. (Through a proxy command there is no socket to ask: the request alone.)
    const auto silence = Silence(master.pool_.main());
    const bool unanswered = outcome.unanswered && (!silence || *silence + std::chrono::milliseconds(250) >= waited);
    const bool silent = unanswered || (silence && *silence > config.keepalive + std::chrono::seconds(2));
    if (!silent) return std::nullopt;
    const std::string since = silence ? fmt::format("nothing heard from the server for {} s", seconds(*silence))
                                      : fmt::format("no answer from the server for {} s", seconds(waited));
    const std::string lost =
        config.keepalive_count_max == 0
            ? "the master never declares the connection lost (ServerAliveCountMax 0)"
            : fmt::format(
                  "the master declares the connection lost after {} s of silence (ServerAliveInterval {} "
                  "× (ServerAliveCountMax {} + 1)) and reconnects",
                  config.keepalive.count() * (config.keepalive_count_max + 1), config.keepalive.count(),
                  config.keepalive_count_max);
    return MakeError(
        fmt::format("the connection to {} ({} port {}) is not answering: {}", name, config.host, config.port, since),
        fmt::format("{}; `mconnect stop {}` ends it now", lost, name));
  }

 private:
  SshDriver& driver_;
  std::string host_name_;
};

std::unique_ptr<remoteip::Host> Master::MakeIpHost(SshDriver& driver, std::string host_name) {
  return std::make_unique<IpHost>(driver, std::move(host_name));
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
  for (SshDriver* driver : pool_.Drivers()) channels += driver->busy_channels();
  reply.set_channels(static_cast<std::uint32_t>(channels));
  reply.set_connections(static_cast<std::uint32_t>(pool_.connections()));
  reply.set_connections_opened(pool_.connections_opened());
  reply.set_clients(static_cast<std::uint32_t>(server_.client_count()));
  reply.set_peer_address(pool_.main().connection().peer_address());
  reply.set_execs(pool_.main().tasks_started());
  reply.set_persist_s(static_cast<std::int32_t>(config_.persist.count()));
  // Bytes as the kernel counts them on each SSH connection's socket: no counter of our own
  // in the data path.
  for (SshDriver* driver : pool_.Drivers()) {
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
  switch (pool_.link()) {
    case Link::kUp:
      reply.set_link("up");
      break;
    case Link::kReconnecting:
      reply.set_link("reconnecting");
      break;
    case Link::kNeedsPerson:
      reply.set_link("needs-person");
      break;
  }
  reply.set_link_detail(pool_.link_detail());
  for (const auto& entry : configured_forwards_.entries()) {
    control::ConfiguredForwardStatus& forward = *reply.add_configured_forwards();
    forward.set_kind(std::string(ConfiguredForwards::KindName(entry.forward.spec)));
    forward.set_text(entry.forward.text);
    forward.set_origin(entry.forward.origin);
    forward.set_state(std::string(ConfiguredForwards::StateName(entry.state)));
    forward.set_detail(entry.detail);
    forward.set_server_port(entry.bound_port);
  }
  reply.set_reconnects(pool_.reconnects());
  reply.set_relays(static_cast<std::uint32_t>(relays_.size()));
  std::uint64_t dropped = relay_dropped_;
  for (const auto& [id, relay] : relays_) {
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
  reply.set_channel_window(pool_.main().ChannelWindow());
  return reply;
}

void Master::Exec(const control::ExecRequest& request, Reply<control::ExecReply> reply) {
  auto spec = ExecFromRequest(request);
  if (!spec) return reply(std::unexpected(MakeError(spec.error().message)));
  log::Info("exec: {}", spec->command);
  pool_.main().Exec(std::move(*spec), [this, started = Clock::now(), reply = std::move(reply)](ExecOutcome outcome) {
    IpHost::EndTimedOut(pool_.main(), outcome);
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
  std::vector<std::string> locale = locale_fallback
                                        ? std::vector<std::string>{"LANG=C.UTF-8"}
                                        : std::vector<std::string>(request.locale().begin(), request.locale().end());
  pool_.main().Exec(std::move(spec), [this, request, locale_fallback, started, limit, locale = std::move(locale),
                                      reply = std::move(reply)](ExecOutcome outcome) mutable {
    IpHost::EndTimedOut(pool_.main(), outcome);
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
      return reply(std::unexpected(
          MakeError(fmt::format("mosh-server did not answer within {} s", seconds),
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
  if (pool_.link() != Link::kUp) {
    return reply(std::unexpected(MakeError("the master's connection is down: " + pool_.link_detail())));
  }
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
  // Only this relay's task: finished ones are dropped by the loop (UpdateRelays).
  if (auto task = (*relay)->TaskToStart(Clock::now())) pool_.main().Start(std::move(task));
  relays_.emplace(next_relay_id_++, std::move(*relay));
}

void Master::UpdateRelays(Clock::time_point now) {
  for (auto& [id, relay] : relays_) {
    if (pool_.link() != Link::kUp) break;
    if (auto task = relay->TaskToStart(now)) pool_.main().Start(std::move(task));
  }
  std::erase_if(relays_, [this](const auto& entry) {
    const std::unique_ptr<MoshOverSsh>& relay = entry.second;
    if (!relay->finished()) return false;
    auto stats = relay->stats();
    relay_dropped_ += stats.dropped;
    log::Info("mosh relay on 127.0.0.1:{} done: {} datagrams up, {} down, {} dropped, {} refused, {} channel(s)",
              relay->local_port(), stats.to_server, stats.to_client, stats.dropped, stats.refused, stats.channels);
    return true;
  });
}

}  // namespace mconnect::mux
