// `mconnect HOST`: settings, the local client's needs, the master, the route and mosh-server at
// once (and for the `ssh` transport its relay), then exec mosh-client.
#include <chrono>
#include <cstdio>
#include <expected>
#include <future>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "base/terminal.h"
#include "launcher/app.h"
#include "launcher/commands/destination.h"
#include "launcher/commands/master_requests.h"
#include "launcher/commands/route.h"
#include "launcher/local.h"
#include "launcher/master_link.h"
#include "launcher/mosh_client.h"
#include "launcher/transport.h"

namespace mconnect::launcher {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

long Since(Clock::time_point start) {
  return static_cast<long>(std::chrono::duration_cast<milliseconds>(Clock::now() - start).count());
}

void PrintError(const Error& error) { term::PrintFailure("mconnect", error); }

// How long each step took, for --timings and -v.
struct Timings {
  Clock::time_point start = Clock::now();
  long resolve_ms = 0;
  long ip_ms = 0;
  long server_ms = 0;
};

struct LocalClient {
  std::string path;
  bool is_mosh_client = false;  // mosh's own: its locale and terminal rules are known
  unsigned colors = 0;          // what `mosh-client -c` says the terminal shows
};

// This machine's part, all of it before the master or the server is asked for anything: a
// mosh-server started for a client that cannot run would be left waiting there.
std::expected<LocalClient, int> CheckLocalClient(const Options& options, term::ProgressLine& progress) {
  auto client = FindClient(options.client);
  // Two runs of the client, each ~12 ms: `-c` (the colours, for mosh-server) runs on a thread of
  // its own while `--version` says whose client it is.
  std::future<unsigned> colors;
  if (client) colors = std::async(std::launch::async, ClientColors, *client);
  const bool mosh_client = client && IsMoshClient(*client);
  Result<void> usable;
  if (!client) usable = Fail(client.error());
  if (usable && mosh_client) usable = CheckClientLocale();
  if (usable && mosh_client) usable = CheckClientTerminal(options.destination);
  if (!usable) {
    progress.Clear();
    PrintError(usable.error());
    return std::unexpected(1);
  }
  return LocalClient{*client, mosh_client, colors.get()};
}

// The master (started if need be; it shows its own steps, connecting and authenticating, on the
// same line). Its requests wait (bounded) for a master whose connection is down to reconnect:
// said now, not after the wait.
std::expected<MasterLink, int> ReachMaster(const Resolved& resolved, const Options& options) {
  auto link = ConnectOrStartMaster(resolved.ssh, options, resolved.profile);
  if (!link) {
    // A failure that knows its fix (a ProxyJump's hop, a socket in use) keeps its own hint.
    Error error = link.error();
    if (error.hint.empty()) error.hint = DoctorHint(options);
    PrintError(error);
    return std::unexpected(kExitConnectionFailed);
  }
  if (link->started) return std::move(*link);
  auto status = link->client.Call<control::StatusReply>(proto::MessageType::kStatus, control::StatusRequest{},
                                                        proto::MessageType::kStatusReply, milliseconds(3000));
  if (status && status->link() == "reconnecting") {
    std::fprintf(stderr,
                 "mconnect: the master's connection to %s is down (%s); this session waits for it to "
                 "reconnect\n",
                 resolved.ssh.host_alias.c_str(), status->link_detail().c_str());
  }
  return std::move(*link);
}

// The session's mosh-server. mconnect's -v stays local, as mosh's own does: a verbose mosh-server
// keeps its stdio, and with it the channel, open for the whole session, so its start would never
// complete.
control::StartMoshServerRequest ServerRequest(const Options& options, const LocalClient& client, bool relayed) {
  control::StartMoshServerRequest request;
  request.set_server(options.server);
  for (const auto& setting : LocaleSettings()) request.add_locale(setting);
  request.set_colors(client.colors);
  request.set_port_range(options.port_range);
  // Over SSH only the relay beside it talks to mosh-server: nothing else need reach its port.
  request.set_bind(relayed ? "127.0.0.1" : options.bind_server);
  for (const auto& word : options.remote_command) request.add_command(word);
  request.set_timeout_ms(20000);
  return request;
}

constexpr milliseconds kServerReplyTimeout{30000};

std::expected<control::StartMoshServerReply, int> ServerStarted(Result<control::StartMoshServerReply> server,
                                                                const control::StartMoshServerRequest& asked,
                                                                const Options& options, term::ProgressLine& progress) {
  if (!server) {
    progress.Clear();
    PrintError(server.error());
    return std::unexpected(1);
  }
  // The master starts mosh-server again with LANG=C.UTF-8 when the server has none of ours.
  if (const std::string locale = fmt::format("{}", fmt::join(asked.locale(), " "));
      options.verbosity > 0 && server->locale_used() != locale && !locale.empty()) {
    progress.Clear();
    std::fprintf(stderr, "mconnect: the server has no locale for %s; mosh-server runs with %s instead\n",
                 locale.c_str(), server->locale_used().c_str());
  }
  return std::move(*server);
}

std::expected<control::StartMoshServerReply, int> StartSessionServer(MasterLink& link, const Options& options,
                                                                     const LocalClient& client, bool relayed,
                                                                     term::ProgressLine& progress) {
  progress.Step("starting mosh-server");
  const auto request = ServerRequest(options, client, relayed);
  return ServerStarted(link.client.Call<control::StartMoshServerReply>(proto::MessageType::kStartMoshServer, request,
                                                                       proto::MessageType::kStartMoshServerReply,
                                                                       kServerReplyTimeout),
                       request, options, progress);
}

// The session's mosh-server asked for on a connection of its own as soon as the master is
// reached, so that it starts while the route is found instead of after it. Its bind depends on
// the route, so `relayed` is a guess: the transport asked for, or for `auto` the verdict it
// remembers; a wrong guess costs the start that waiting would have cost.
struct EarlyServer {
  std::optional<proto::ControlClient> client;
  control::StartMoshServerRequest request;
  bool relayed = false;
};

bool GuessRelayed(const Options& options, const MasterLink& link, const HostProfile& profile) {
  auto transport = ParseTransport(options.transport);
  if (!transport || *transport != Transport::kAuto) return transport && *transport == Transport::kSsh;
  auto stored = ReadVerdict(VerdictPathFor(link.socket_path));
  return stored && VerdictCurrent(*stored, std::chrono::seconds(profile.remote_ip_cache_ttl_s)) &&
         stored->verdict.transport == Transport::kSsh;
}

EarlyServer AskEarly(const MasterLink& link, const Options& options, const LocalClient& client,
                     const HostProfile& profile) {
  EarlyServer early;
  early.relayed = GuessRelayed(options, link, profile);
  early.request = ServerRequest(options, client, early.relayed);
  // Without a second connection the start waits for the route, as it would have anyway.
  auto second = proto::ControlClient::Connect(link.socket_path, milliseconds(3000));
  if (!second || !second->Send(proto::MessageType::kStartMoshServer, early.request, milliseconds(3000))) return early;
  early.client = std::move(*second);
  return early;
}

Result<control::StartMoshServerReply> Collect(EarlyServer& early) {
  auto reply = early.client->Receive<control::StartMoshServerReply>(
      proto::MessageType::kStartMoshServer, proto::MessageType::kStartMoshServerReply, kServerReplyTimeout);
  early.client.reset();
  return reply;
}

// An early mosh-server the session will not use (the route failed, or went the other way):
// stopped, not left waiting for a client.
void Abandon(EarlyServer& early, MasterLink& link) {
  if (!early.client) return;
  if (auto unused = Collect(early)) KillServer(link, unused->server_pid());
}

// Where mosh-client sends its datagrams.
struct Endpoint {
  std::string address;
  unsigned port = 0;
};

// For the `ssh` transport: the relay beside mosh-server, and the master's local UDP port for it.
std::expected<Endpoint, int> StartRelay(MasterLink& link, const Options& options, const Route& route,
                                        const control::StartMoshServerReply& server, term::ProgressLine& progress) {
  progress.Step("starting the relay for mosh over SSH");
  control::StartRelayRequest relay;
  relay.set_port(server.port());
  relay.set_server_pid(server.server_pid());
  relay.set_reason(route.reason);
  auto started = link.client.Call<control::StartRelayReply>(proto::MessageType::kStartRelay, relay,
                                                            proto::MessageType::kStartRelayReply, milliseconds(30000));
  if (!started) {
    progress.Clear();
    KillServer(link, server.server_pid());
    PrintError(Error{"mosh over SSH failed: " + started.error().message,
                     fmt::format("the server needs perl (or mconnect) for the relay; `{}` checks it",
                                 CommandLineFor(Options::Command::kDoctor, options))});
    return std::unexpected(1);
  }
  progress.Clear();
  std::fprintf(stderr, "mconnect: mosh over SSH (%s relay on the server): %s\n", started->relay().c_str(),
               route.reason.c_str());
  return Endpoint{"127.0.0.1", started->local_port()};
}

void PrintTimings(const Resolved& resolved, const MasterLink& link, const Route& route,
                  const control::StartMoshServerReply& server, const Endpoint& endpoint, const Timings& timings) {
  const bool relayed = route.transport == Transport::kSsh;
  std::fprintf(stderr,
               "mconnect: %s master %s in %ld ms (pid %u) · %s %s in %ld ms (%s) · mosh-server port %u in %ld ms · "
               "total %ld ms (ssh -G %ld ms%s)\n",
               resolved.ssh.host_alias.c_str(), link.started ? "started" : "reused",
               static_cast<long>(link.elapsed.count()), link.client.master_pid(), relayed ? "over SSH" : "udp to",
               relayed ? "" : endpoint.address.c_str(), timings.ip_ms, route.reason.c_str(), server.port(),
               timings.server_ms, Since(timings.start), timings.resolve_ms,
               resolved.ssh.kept_answer ? ", its kept answer" : "");
}

// From the master on: the route and mosh-server at once, the relay for the `ssh` transport,
// then mosh-client.
int RunSession(Options& options, const Resolved& resolved, const LocalClient& client, MasterLink& link,
               Timings& timings, term::ProgressLine& progress) {
  const auto asked = Clock::now();
  EarlyServer early = AskEarly(link, options, client, resolved.profile);
  auto route = ChooseRoute(link, options, resolved.profile, progress);
  if (!route) {
    Abandon(early, link);
    progress.Clear();
    PrintError(route.error());
    return 1;
  }
  const bool relayed = route->transport == Transport::kSsh;
  timings.ip_ms = Since(asked);
  std::expected<control::StartMoshServerReply, int> server;
  if (early.client && early.relayed == relayed) {
    progress.Step("starting mosh-server");
    server = ServerStarted(Collect(early), early.request, options, progress);
  } else {
    Abandon(early, link);
    server = StartSessionServer(link, options, client, relayed, progress);
  }
  if (!server) return server.error();
  timings.server_ms = Since(asked);
  auto endpoint = relayed ? StartRelay(link, options, *route, *server, progress)
                          : std::expected<Endpoint, int>(Endpoint{route->address, server->port()});
  if (!endpoint) return endpoint.error();
  progress.Clear();
  if (options.timings || options.verbosity > 0) PrintTimings(resolved, link, *route, *server, *endpoint, timings);
  PrintError(ExecMoshClient(options, endpoint->address, endpoint->port, server->key()));
  return 1;
}

}  // namespace

int RunConnect(Options options) {
  Timings timings;
  if (options.local) return RunLocal(options);
  term::ProgressLine progress("mconnect: " + options.destination);
  progress.Step("reading ssh settings (ssh -G)");
  auto resolved = ResolveOrExit(options);
  progress.Clear();
  if (!resolved) return resolved.error();
  timings.resolve_ms = Since(timings.start);
  auto client = CheckLocalClient(options, progress);
  if (!client) return client.error();
  progress.Clear();
  auto link = ReachMaster(*resolved, options);
  if (!link) return link.error();
  return RunSession(options, *resolved, *client, *link, timings, progress);
}

}  // namespace mconnect::launcher
