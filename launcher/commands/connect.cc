// `mconnect HOST`: settings, the local client's needs, the master, the route, mosh-server (and
// for the `ssh` transport its relay), then exec mosh-client.
#include <chrono>
#include <cstdio>
#include <expected>
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
};

// This machine's part, checked before the server is asked for anything: a mosh-server started
// for a client that cannot run is left waiting there.
std::expected<LocalClient, int> CheckLocalClient(const Options& options, term::ProgressLine& progress) {
  auto client = FindClient(options.client);
  const bool mosh_client = client && IsMoshClient(*client);
  if (Result<void> locale = mosh_client ? CheckClientLocale() : Result<void>(); !client || !locale) {
    progress.Clear();
    PrintError(client ? locale.error() : client.error());
    return std::unexpected(1);
  }
  return LocalClient{*client, mosh_client};
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
std::expected<control::StartMoshServerReply, int> StartSessionServer(MasterLink& link, const Options& options,
                                                                     const LocalClient& client, bool relayed,
                                                                     term::ProgressLine& progress) {
  progress.Step("starting mosh-server");
  control::StartMoshServerRequest request;
  request.set_server(options.server);
  const std::vector<std::string> locale = LocaleSettings();
  for (const auto& setting : locale) request.add_locale(setting);
  request.set_colors(ClientColors(client.path));
  request.set_port_range(options.port_range);
  // Over SSH only the relay beside it talks to mosh-server: nothing else need reach its port.
  request.set_bind(relayed ? "127.0.0.1" : options.bind_server);
  for (const auto& word : options.remote_command) request.add_command(word);
  request.set_timeout_ms(20000);
  auto server = link.client.Call<control::StartMoshServerReply>(
      proto::MessageType::kStartMoshServer, request, proto::MessageType::kStartMoshServerReply, milliseconds(30000));
  if (!server) {
    progress.Clear();
    PrintError(server.error());
    return std::unexpected(1);
  }
  // The master starts mosh-server again with LANG=C.UTF-8 when the server has none of ours.
  if (const std::string asked = fmt::format("{}", fmt::join(locale, " "));
      options.verbosity > 0 && server->locale_used() != asked && !asked.empty()) {
    progress.Clear();
    std::fprintf(stderr, "mconnect: the server has no locale for %s; mosh-server runs with %s instead\n", asked.c_str(),
                 server->locale_used().c_str());
  }
  return std::move(*server);
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
               "total %ld ms (ssh -G %ld ms)\n",
               resolved.ssh.host_alias.c_str(), link.started ? "started" : "reused",
               static_cast<long>(link.elapsed.count()), link.client.master_pid(), relayed ? "over SSH" : "udp to",
               relayed ? "" : endpoint.address.c_str(), timings.ip_ms, route.reason.c_str(), server.port(),
               timings.server_ms, Since(timings.start), timings.resolve_ms);
}

// From the master on: the route, mosh-server (and its relay), then mosh-client.
int RunSession(Options& options, const Resolved& resolved, const LocalClient& client, MasterLink& link,
               Timings& timings, term::ProgressLine& progress) {
  auto step = Clock::now();
  auto route = ChooseRoute(link, options, resolved.profile, progress);
  if (!route) {
    progress.Clear();
    PrintError(route.error());
    return 1;
  }
  const bool relayed = route->transport == Transport::kSsh;
  timings.ip_ms = Since(step);
  // Only now, so that the route's failures (which a session without a terminal can still run
  // into and learn from) come first; but before the session's mosh-server.
  if (auto terminal = client.is_mosh_client ? CheckClientTerminal(options.destination) : Result<void>(); !terminal) {
    progress.Clear();
    PrintError(terminal.error());
    return 1;
  }
  step = Clock::now();
  auto server = StartSessionServer(link, options, client, relayed, progress);
  if (!server) return server.error();
  timings.server_ms = Since(step);
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
