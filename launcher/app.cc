#include "launcher/app.h"

#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string_view>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <google/protobuf/util/json_util.h>

#include "base/log.h"
#include "base/subprocess.h"
#include "base/terminal.h"
#include "base/unique_fd.h"
#include "launcher/doctor.h"
#include "launcher/local.h"
#include "launcher/master_link.h"
#include "launcher/masters.h"
#include "launcher/mosh_client.h"
#include "launcher/profile.h"
#include "launcher/ssh_config.h"
#include "launcher/transport.h"
#include "mosh/udp_probe.h"
#include "proto/socket_path.h"

namespace mconnect::launcher {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// One line, and a hint on the next when there is one (the master's replies carry theirs).
void PrintError(const Error& error, std::string_view hint = {}) { term::PrintFailure("mconnect", error.message, hint); }

// The hint for a failure to reach or authenticate to the destination: the doctor command with the
// options that decide what it checks (--ssh, --socket, --remote-ip, ...), ready to paste.
std::string DoctorHint(const Options& options) {
  return fmt::format("`{}` checks each step and says what to fix", CommandLineFor(Options::Command::kDoctor, options));
}

long Since(Clock::time_point start) {
  return static_cast<long>(std::chrono::duration_cast<milliseconds>(Clock::now() - start).count());
}

std::string Json(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

// The ssh command that `ssh -G` runs as: with -4 or -6 for --family=inet or inet6, as mosh.pl
// passes them to ssh, so that ssh's AddressFamily (which the master connects over) follows.
std::string SshForSettings(const Options& options) {
  if (options.family == "inet") return options.ssh + " -4";
  if (options.family == "inet6") return options.ssh + " -6";
  return options.ssh;
}

// Everything the connect, stop and ip commands need before they talk to a master.
struct Resolved {
  SshSettings ssh;
  HostProfile profile;
};

Result<Resolved> Resolve(Options& options) {
  std::string profile_path = options.config_path.empty() ? DefaultProfilePath() : options.config_path;
  auto profile = LoadProfile(profile_path, options.config_path.empty() ? MissingProfile::kUseDefaults
                                                                       : MissingProfile::kFail);
  if (!profile) {
    return Fail("{}\nhint: fix that line of {} (`man mconnect-config` lists every key)", profile.error().message,
                profile_path);
  }
  HostProfile host = profile->ForHost(SplitDestination(options.destination).host);
  ApplyProfile(options, host);
  auto ssh = ResolveSshSettings(SshForSettings(options), options.destination);
  if (!ssh) {
    return Fail("{}\nhint: check the host name and what `{} -G {}` prints", ssh.error().message, options.ssh,
                options.destination);
  }
  return Resolved{std::move(*ssh), std::move(host)};
}

// Resolve(), then the master (started if need be). A failure is printed (with `hint`) and
// becomes the exit status.
struct Connected {
  Resolved resolved;
  MasterLink link;
};
std::expected<Connected, int> ResolveAndConnect(Options& options, std::string_view hint) {
  auto resolved = Resolve(options);
  if (!resolved) {
    PrintError(resolved.error());
    return std::unexpected(kExitConnectionFailed);
  }
  auto link = ConnectOrStartMaster(resolved->ssh, options, resolved->profile);
  if (!link) {
    PrintError(link.error(), hint);
    return std::unexpected(kExitConnectionFailed);
  }
  return Connected{std::move(*resolved), std::move(*link)};
}

control::DiscoverIpRequest IpRequest(const Options& options, const HostProfile& profile, bool refresh) {
  control::DiscoverIpRequest request;
  for (const auto& spec : options.remote_ip) request.add_strategies(spec);
  request.set_timeout_ms(static_cast<std::uint32_t>(profile.remote_ip_timeout_s) * 1000);
  request.set_refresh(refresh);
  request.set_family(options.family);
  return request;
}

// How long the whole chain may take: every strategy its timeout, and some slack.
milliseconds ChainBudget(const Options& options, const HostProfile& profile) {
  std::size_t strategies = std::max<std::size_t>(1, options.remote_ip.size());
  return milliseconds(static_cast<long>(strategies) * profile.remote_ip_timeout_s * 1000 + 5000);
}

std::string DescribeFailures(const control::DiscoverIpReply& reply) {
  std::string text;
  for (const auto& candidate : reply.candidates()) {
    if (candidate.error().empty()) continue;
    text += (text.empty() ? "" : "; ") + candidate.error();
  }
  return text;
}

// Every strategy's answer (not only the first), in chain order.
Result<control::DiscoverIpReply> DiscoverAll(MasterLink& link, const Options& options, const HostProfile& profile) {
  control::DiscoverIpReply all;
  for (const auto& spec : options.remote_ip) {
    Options one = options;
    one.remote_ip = {spec};
    auto answer = link.client.Call<control::DiscoverIpReply>(proto::MessageType::kDiscoverIp,
                                                             IpRequest(one, profile, false),
                                                             proto::MessageType::kDiscoverIpReply, ChainBudget(one, profile));
    if (!answer) return Fail(answer.error());
    for (const auto& candidate : answer->candidates()) *all.add_candidates() = candidate;
    if (all.address().empty()) all.set_address(answer->address());
  }
  return all;
}

// Ends mosh-server `pid` on the server (a throwaway, or a session whose relay failed), without
// waiting: the master runs the kill while we go on. (After an authentic datagram TERM starts a
// shutdown handshake with nobody, so KILL follows 200 ms later: a first session used to wait
// that out, and a round trip, before its own mosh-server was even asked for.)
void KillServer(MasterLink& link, std::uint32_t pid) {
  if (pid == 0) return;
  control::ExecRequest kill;
  kill.set_command(fmt::format("kill {0} 2>/dev/null; sleep 0.2; kill -9 {0} 2>/dev/null; true", pid));
  kill.set_timeout_ms(5000);
  auto errand = proto::ControlClient::Connect(link.socket_path, milliseconds(3000));
  Result<void> posted = errand ? errand->Post(proto::MessageType::kExec, kill, milliseconds(3000))
                               : Result<void>(Fail(errand.error()));
  if (!posted) log::Debug("could not ask the master to end mosh-server {}: {}", pid, posted.error().message);
}

// A mosh-server that runs `sleep 60` (a probe needs it only to answer), bound as `bind` says.
Result<control::StartMoshServerReply> StartThrowawayServer(MasterLink& link, const Options& options,
                                                           const std::string& bind) {
  control::StartMoshServerRequest request;
  request.set_server(options.server);
  for (const auto& setting : LocaleSettings()) request.add_locale(setting);
  request.set_port_range(options.port_range);
  request.set_bind(bind);
  request.add_command("sleep");
  request.add_command("60");
  request.set_timeout_ms(20000);
  return link.client.Call<control::StartMoshServerReply>(proto::MessageType::kStartMoshServer, request,
                                                         proto::MessageType::kStartMoshServerReply, milliseconds(30000));
}

struct AddressProbe {
  std::string address;
  Result<mosh::ProbeResult> result;
};
struct ProbeReport {
  control::StartMoshServerReply server;  // the throwaway one
  std::vector<AddressProbe> probes;      // in the order tried
};

// Starts a throwaway mosh-server over the master (an authentic datagram makes mosh-server roam
// to its sender, so the server a real session uses is never probed), probes `addresses` in
// order until one answers (or all, with `all`), then kills it.
Result<ProbeReport> ProbeAddresses(MasterLink& link, const Options& options, const std::vector<std::string>& addresses,
                                   bool all) {
  auto server = StartThrowawayServer(link, options, options.bind_server);
  if (!server) return Fail(server.error());
  ProbeReport report{*server, {}};
  for (const auto& address : addresses) {
    auto result =
        mosh::ProbeMoshServer(address, static_cast<std::uint16_t>(server->port()), server->key(), milliseconds(2000));
    bool answered = result && result->answered;
    report.probes.push_back({address, std::move(result)});
    if (answered && !all) break;
  }
  KillServer(link, server->server_pid());
  return report;
}

// The `ssh` transport end to end, for doctor: a throwaway mosh-server on the server's loopback,
// a relay to it over the master, and a UDP probe through the relay; then the server is killed
// (the relay ends with it).
struct RelayProbe {
  std::string relay;  // "perl" or "mconnect"
  mosh::ProbeResult result;
};
Result<RelayProbe> ProbeThroughRelay(MasterLink& link, const Options& options) {
  auto server = StartThrowawayServer(link, options, "127.0.0.1");
  if (!server) return Fail(server.error());
  control::StartRelayRequest relay;
  relay.set_port(server->port());
  relay.set_server_pid(server->server_pid());
  relay.set_reason("mconnect doctor's probe");
  auto started = link.client.Call<control::StartRelayReply>(proto::MessageType::kStartRelay, relay,
                                                            proto::MessageType::kStartRelayReply, milliseconds(30000));
  if (!started) {
    KillServer(link, server->server_pid());
    return Fail(started.error());
  }
  auto result = mosh::ProbeMoshServer("127.0.0.1", static_cast<std::uint16_t>(started->local_port()), server->key(),
                                      milliseconds(5000));
  KillServer(link, server->server_pid());
  if (!result) return Fail(result.error());
  return RelayProbe{started->relay(), *result};
}

// 42s, 5m03s, 2h07m, 3d04h.
std::string HumanDuration(std::uint64_t seconds) {
  if (seconds < 60) return fmt::format("{}s", seconds);
  if (seconds < 3600) return fmt::format("{}m{:02}s", seconds / 60, seconds % 60);
  if (seconds < 86400) return fmt::format("{}h{:02}m", seconds / 3600, seconds % 3600 / 60);
  return fmt::format("{}d{:02}h", seconds / 86400, seconds % 86400 / 3600);
}

// 812B, 4.2K, 17.0M, 1.3G (powers of 1024).
std::string HumanBytes(std::uint64_t bytes) {
  if (bytes < 1024) return fmt::format("{}B", bytes);
  double value = static_cast<double>(bytes);
  for (const char* unit : {"K", "M", "G", "T"}) {
    value /= 1024;
    if (value < 1024 || std::string_view(unit) == "T") return fmt::format("{:.1f}{}", value, unit);
  }
  return "";
}

// Returns once process `pid` (not our child) has exited.
Result<void> WaitForExit(pid_t pid) {
  UniqueFd fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!fd) {
    if (errno == ESRCH) return {};
    return Fail("cannot watch pid {}: {}", pid, std::strerror(errno));
  }
  pollfd pfd{fd.get(), POLLIN, 0};
  while (::poll(&pfd, 1, -1) < 0) {
    if (errno != EINTR) return Fail("poll: {}", std::strerror(errno));
  }
  return {};
}

}  // namespace

namespace {

// Resolve() for a session and `mconnect ip`, which print its failure and exit with the status
// it calls for: a profile error is the user's file to fix (1; 2 when --config names no file, a
// bad command line), not a failed connection; ssh's settings failing is 255, as ssh exits.
std::expected<Resolved, int> ResolveOrExit(Options& options) {
  const std::string path = options.config_path.empty() ? DefaultProfilePath() : options.config_path;
  const bool named = !options.config_path.empty();
  auto profile = LoadProfile(path, named ? MissingProfile::kFail : MissingProfile::kUseDefaults);
  if (!profile) {
    struct stat st{};
    if (named && ::stat(path.c_str(), &st) != 0) {
      PrintError(profile.error(), "check the path given to --config (without it, the default profile is read)");
      return std::unexpected(2);
    }
    PrintError(profile.error(), fmt::format("fix that line of {} (`man mconnect-config` lists every key)", path));
    return std::unexpected(1);
  }
  HostProfile host = profile->ForHost(SplitDestination(options.destination).host);
  ApplyProfile(options, host);
  auto ssh = ResolveSshSettings(SshForSettings(options), options.destination);
  if (!ssh) {
    PrintError(ssh.error(), fmt::format("check the host name and what `{} -G {}` prints", options.ssh,
                                        options.destination));
    return std::unexpected(kExitConnectionFailed);
  }
  return Resolved{std::move(*ssh), std::move(host)};
}

// Where mosh-client is to send its datagrams, and how they get to mosh-server.
struct Route {
  Transport transport = Transport::kUdp;
  std::string address;  // for udp: where mosh-server is reachable; for ssh: unused
  std::string reason;   // why this transport (for ssh: shown to the user and in status)
};

// The remote-ip chain's answer (or, with --probe-udp, the first address a throwaway mosh-server
// answers at). `probed` says whether a UDP probe already ran, and `answered` its verdict.
struct FoundAddress {
  std::string address;
  bool probed = false;
  bool answered = false;
  std::string probe_detail;  // what each probed address said, when none answered
};

Result<FoundAddress> FindAddress(MasterLink& link, const Options& options, const HostProfile& profile,
                                 term::ProgressLine& progress) {
  auto ip = options.probe_udp ? DiscoverAll(link, options, profile)
                              : link.client.Call<control::DiscoverIpReply>(
                                    proto::MessageType::kDiscoverIp, IpRequest(options, profile, false),
                                    proto::MessageType::kDiscoverIpReply, ChainBudget(options, profile));
  if (!ip) {
    return Fail("finding the server's address failed: {}\nhint: {}", ip.error().message, DoctorHint(options));
  }
  if (ip->address().empty()) {
    return Fail("no address for mosh: {}\nhint: try another --remote-ip strategy (see `mconnect ip {}`)",
                DescribeFailures(*ip), options.destination);
  }
  FoundAddress found;
  found.address = ip->address();
  if (!options.probe_udp) {
    if (std::string failures = DescribeFailures(*ip); !failures.empty()) {
      progress.Clear();
      std::fprintf(stderr, "mconnect: %s; using %s\n", failures.c_str(), ip->address().c_str());
    }
    return found;
  }
  std::vector<std::string> addresses;
  for (const auto& candidate : ip->candidates()) {
    if (!candidate.address().empty() && std::ranges::find(addresses, candidate.address()) == addresses.end()) {
      addresses.push_back(candidate.address());
    }
  }
  progress.Step("probing UDP");
  auto report = ProbeAddresses(link, options, addresses, false);
  if (!report) return Fail(report.error());
  found.probed = true;
  auto answered = std::ranges::find_if(report->probes, [](const AddressProbe& p) { return p.result && p.result->answered; });
  if (answered != report->probes.end()) {
    found.address = answered->address;
    found.answered = true;
    found.probe_detail = fmt::format("mosh-server answered over UDP at {} in {} ms", answered->address,
                                     answered->result->rtt.count());
    return found;
  }
  for (const auto& probe : report->probes) {
    found.probe_detail += fmt::format("{}{}: {}", found.probe_detail.empty() ? "" : "; ", probe.address,
                                      probe.result ? probe.result->detail : probe.result.error().message);
  }
  return found;
}

// Decides how mosh's datagrams travel: the command line's or profile's transport, and for
// `auto` a UDP probe's verdict (remembered beside the master's socket for the remote-ip cache
// time, for this server address seen from this machine's address).
Result<Route> ChooseRoute(MasterLink& link, const Options& options, const HostProfile& profile,
                          term::ProgressLine& progress) {
  auto transport = ParseTransport(options.transport);
  if (!transport) return Fail(transport.error());
  if (*transport == Transport::kSsh) return Route{Transport::kSsh, "", "transport ssh chosen"};

  progress.Step("finding the server's address");
  auto found = FindAddress(link, options, profile, progress);
  if (*transport == Transport::kUdp) {
    if (!found) return Fail(found.error());
    if (found->probed && !found->answered) {
      Options over_ssh = options;
      over_ssh.transport = "ssh";
      over_ssh.explicitly_set.transport = true;
      progress.Clear();
      std::fprintf(stderr,
                   "mconnect: no address answered over UDP (%s); trying %s anyway (transport udp)\n"
                   "mconnect: hint: `%s` carries mosh over SSH instead, as transport auto (the default) would\n",
                   found->probe_detail.c_str(), found->address.c_str(),
                   CommandLineFor(Options::Command::kConnect, over_ssh).c_str());
    }
    return Route{Transport::kUdp, found->address, "transport udp chosen"};
  }
  // auto
  if (!found) return Route{Transport::kSsh, "", term::SplitHint(found.error().message).message};
  if (found->probed) {
    if (found->answered) return Route{Transport::kUdp, found->address, found->probe_detail};
    return Route{Transport::kSsh, "", "no answer over UDP (" + found->probe_detail + ")"};
  }
  const std::string key = found->address + "/" + LocalAddressTowards(found->address);
  const std::string verdict_path = VerdictPathFor(link.socket_path);
  const auto ttl = std::chrono::seconds(profile.remote_ip_cache_ttl_s);
  if (auto verdict = RecallVerdict(verdict_path, key, ttl)) {
    return Route{verdict->transport, found->address, verdict->why};
  }
  progress.Step("probing UDP");
  auto report = ProbeAddresses(link, options, {found->address}, false);
  if (!report) return Fail(report.error());
  const auto& probe = report->probes.front();
  TransportVerdict verdict;
  if (probe.result && probe.result->answered) {
    verdict = {Transport::kUdp, fmt::format("mosh-server answered over UDP at {} in {} ms", probe.address,
                                            probe.result->rtt.count())};
  } else {
    verdict = {Transport::kSsh, fmt::format("no answer over UDP from {}:{} ({})", probe.address, report->server.port(),
                                            probe.result ? probe.result->detail : probe.result.error().message)};
  }
  if (ttl.count() > 0) RememberVerdict(verdict_path, key, verdict);
  return Route{verdict.transport, found->address, verdict.why};
}

}  // namespace

int RunConnect(Options options) {
  auto start = Clock::now();
  if (options.local) return RunLocal(options);
  term::ProgressLine progress("mconnect: " + options.destination);
  progress.Step("reading ssh settings (ssh -G)");
  auto resolved = ResolveOrExit(options);
  progress.Clear();
  if (!resolved) return resolved.error();
  long resolve_ms = Since(start);
  // This machine's part is checked before the server is asked for anything: a mosh-server
  // started for a client that cannot run is left waiting there.
  auto client = FindClient(options.client);
  const bool mosh_client = client && IsMoshClient(*client);
  if (Result<void> locale = mosh_client ? CheckClientLocale() : Result<void>(); !client || !locale) {
    progress.Clear();
    PrintError(client ? locale.error() : client.error());
    return 1;
  }

  // The master shows its own steps (connecting, authenticating) on the same line.
  progress.Clear();
  auto link = ConnectOrStartMaster(resolved->ssh, options, resolved->profile);
  if (!link) {
    // A failure that knows its fix (a ProxyJump's hop, a socket in use) keeps its own hint.
    const bool own_hint = !term::SplitHint(link.error().message).hint.empty();
    PrintError(link.error(), own_hint ? "" : DoctorHint(options));
    return kExitConnectionFailed;
  }
  if (!link->started) {
    auto status = link->client.Call<control::StatusReply>(proto::MessageType::kStatus, control::StatusRequest{},
                                                          proto::MessageType::kStatusReply, milliseconds(3000));
    // Its requests wait (bounded) for the master to reconnect: said now, not after the wait.
    if (status && status->link() == "reconnecting") {
      std::fprintf(stderr, "mconnect: the master's connection to %s is down (%s); this session waits for it to "
                   "reconnect\n", resolved->ssh.host_alias.c_str(), status->link_detail().c_str());
    }
  }

  auto step = Clock::now();
  auto route = ChooseRoute(*link, options, resolved->profile, progress);
  if (!route) {
    progress.Clear();
    PrintError(route.error());
    return 1;
  }
  const bool relayed = route->transport == Transport::kSsh;
  long ip_ms = Since(step);
  // Only now, so that the route's failures (which a session without a terminal can still run
  // into and learn from) come first; but before the session's mosh-server.
  if (auto terminal = mosh_client ? CheckClientTerminal(options.destination) : Result<void>(); !terminal) {
    progress.Clear();
    PrintError(terminal.error());
    return 1;
  }

  step = Clock::now();
  progress.Step("starting mosh-server");
  control::StartMoshServerRequest request;
  request.set_server(options.server);
  const std::vector<std::string> locale = LocaleSettings();
  for (const auto& setting : locale) request.add_locale(setting);
  request.set_colors(ClientColors(*client));
  request.set_port_range(options.port_range);
  // Over SSH only the relay beside it talks to mosh-server: nothing else need reach its port.
  request.set_bind(relayed ? "127.0.0.1" : options.bind_server);
  for (const auto& word : options.remote_command) request.add_command(word);
  request.set_timeout_ms(20000);
  // mconnect's -v stays local, as mosh's own does: a verbose mosh-server keeps its stdio, and
  // with it the channel, open for the whole session, so its start would never complete.
  auto server = link->client.Call<control::StartMoshServerReply>(
      proto::MessageType::kStartMoshServer, request, proto::MessageType::kStartMoshServerReply, milliseconds(30000));
  if (!server) {
    progress.Clear();
    PrintError(server.error());
    return 1;
  }
  long server_ms = Since(step);
  // The master starts mosh-server again with LANG=C.UTF-8 when the server has none of ours.
  if (const std::string asked = fmt::format("{}", fmt::join(locale, " "));
      options.verbosity > 0 && server->locale_used() != asked && !asked.empty()) {
    progress.Clear();
    std::fprintf(stderr, "mconnect: the server has no locale for %s; mosh-server runs with %s instead\n",
                 asked.c_str(), server->locale_used().c_str());
  }

  std::string address = route->address;
  unsigned port = server->port();
  if (relayed) {
    progress.Step("starting the relay for mosh over SSH");
    control::StartRelayRequest relay;
    relay.set_port(server->port());
    relay.set_server_pid(server->server_pid());
    relay.set_reason(route->reason);
    auto started = link->client.Call<control::StartRelayReply>(proto::MessageType::kStartRelay, relay,
                                                               proto::MessageType::kStartRelayReply, milliseconds(30000));
    if (!started) {
      progress.Clear();
      KillServer(*link, server->server_pid());
      PrintError(Error{"mosh over SSH failed: " + started.error().message},
                 fmt::format("the server needs perl (or mconnect) for the relay; `{}` checks it",
                             CommandLineFor(Options::Command::kDoctor, options)));
      return 1;
    }
    address = "127.0.0.1";
    port = started->local_port();
    progress.Clear();
    std::fprintf(stderr, "mconnect: mosh over SSH (%s relay on the server): %s\n", started->relay().c_str(),
                 route->reason.c_str());
  }
  progress.Clear();

  if (options.timings || options.verbosity > 0) {
    std::fprintf(stderr,
                 "mconnect: %s master %s in %ld ms (pid %u) · %s %s in %ld ms (%s) · mosh-server port %u in %ld ms · "
                 "total %ld ms (ssh -G %ld ms)\n",
                 resolved->ssh.host_alias.c_str(), link->started ? "started" : "reused",
                 static_cast<long>(link->elapsed.count()), link->client.master_pid(),
                 relayed ? "over SSH" : "udp to", relayed ? "" : address.c_str(), ip_ms, route->reason.c_str(),
                 server->port(), server_ms, Since(start), resolve_ms);
  }
  Error failed = ExecMoshClient(options, address, port, server->key());
  PrintError(failed);
  return 1;
}

int RunIp(Options options) {
  auto resolved = ResolveOrExit(options);
  if (!resolved) return resolved.error();
  auto link = ConnectOrStartMaster(resolved->ssh, options, resolved->profile);
  if (!link) {
    PrintError(link.error());
    return kExitConnectionFailed;
  }
  // Every strategy of the chain, not only up to the first answer: the point is to compare them.
  auto ip = DiscoverAll(*link, options, resolved->profile);
  if (!ip) {
    PrintError(ip.error());
    return 1;
  }
  if (options.json) {
    std::printf("%s\n", Json(*ip).c_str());
  } else {
    for (const auto& candidate : ip->candidates()) {
      std::string age = candidate.age_ms() > 0 ? fmt::format(", cached {} s ago", candidate.age_ms() / 1000) : "";
      if (candidate.error().empty()) {
        std::printf("%-40s %s (%u ms%s)\n", candidate.strategy().c_str(), candidate.address().c_str(),
                    candidate.elapsed_ms(), age.c_str());
      } else {
        std::printf("%-40s failed: %s (%u ms)\n", candidate.strategy().c_str(), candidate.error().c_str(),
                    candidate.elapsed_ms());
      }
    }
  }
  return ip->address().empty() ? 1 : 0;
}

int RunStatus(const Options& options) {
  const std::string runtime = proto::DefaultRuntimeDir();
  std::vector<KnownMaster> known = FindMasters(runtime, milliseconds(1000));
  // Sockets in the socket directory that no master answers on (masters of an older mconnect,
  // or killed ones): listed as stale.
  std::string directory = runtime;
  if (!options.socket_path.empty()) {
    directory = options.socket_path.substr(0, options.socket_path.rfind('/'));
  } else {
    std::string profile_path = options.config_path.empty() ? DefaultProfilePath() : options.config_path;
    if (auto profile = LoadProfile(profile_path); profile && !profile->ForHost("").socket_dir.empty()) {
      directory = profile->ForHost("").socket_dir;
    }
  }
  std::vector<std::string> stale;
  for (const auto& socket : proto::ListSockets(directory)) {
    const bool known_socket = std::ranges::any_of(known, [&](const KnownMaster& m) { return m.record.socket_path() == socket; });
    if (known_socket) continue;
    if (proto::ControlClient::Connect(socket, milliseconds(1000))) continue;  // an older master
    stale.push_back(socket);
  }
  if (options.json) {
    control::StatusListing listing;
    for (const auto& m : known) {
      if (m.status) {
        *listing.add_masters() = *m.status;
      } else {
        *listing.add_not_answering() = m.record;
      }
    }
    for (const auto& socket : stale) listing.add_stale_sockets(socket);
    std::printf("%s\n", Json(listing).c_str());
    return 0;
  }
  if (known.empty() && stale.empty()) {
    std::printf("no masters running (runtime directory %s)\n", runtime.c_str());
    return 0;
  }
  constexpr const char* kRow = "%-28s %7s %8s %-13s %5s %8s %7s %13s  %-36s %s\n";
  std::printf(kRow, "DESTINATION", "PID", "UPTIME", "LINK", "CONNS", "CHANNELS", "CLIENTS", "SENT/RECEIVED",
              "LAST REMOTE-IP (STRATEGY, AGE)", "SOCKET");
  for (const auto& known_master : known) {
    if (!known_master.status) {
      const auto& r = known_master.record;
      const bool starting = r.state() != "serving";
      const std::uint64_t age = static_cast<std::uint64_t>(std::max<long long>(0, std::time(nullptr) - static_cast<long long>(r.started_unix())));
      std::printf(kRow, r.destination().c_str(), std::to_string(r.pid()).c_str(), HumanDuration(age).c_str(),
                  starting ? (r.state() == "asking" ? "asking" : "starting") : "not answering", "-", "-", "-", "-", "-",
                  r.socket_path().c_str());
      if (!starting) {
        std::printf("    it does not answer (stopped or stuck): `mconnect stop %s` ends it\n",
                    r.alias().empty() ? r.destination().c_str() : r.alias().c_str());
      }
      continue;
    }
    const auto& m = *known_master.status;
    std::string last = m.last_ip_address().empty()
                           ? "-"
                           : fmt::format("{} ({}, {} ago)", m.last_ip_address(), m.last_ip_strategy(),
                                         HumanDuration(m.last_ip_age_ms() / 1000));
    // The master counts this status request's own connection among its clients.
    std::printf(kRow, m.destination().c_str(), std::to_string(m.pid()).c_str(),
                HumanDuration(m.uptime_ms() / 1000).c_str(),
                m.stopping() ? "stopping" : m.link().empty() ? "up" : m.link().c_str(),
                std::to_string(m.connections()).c_str(), std::to_string(m.channels()).c_str(),
                std::to_string(m.clients() > 0 ? m.clients() - 1 : 0).c_str(),
                (HumanBytes(m.bytes_sent()) + "/" + HumanBytes(m.bytes_received())).c_str(), last.c_str(),
                m.socket_path().c_str());
    if (!m.alias().empty() && m.alias() != m.destination()) std::printf("    started as: mconnect %s\n", m.alias().c_str());
    if (!m.link_detail().empty()) std::printf("    link: %s\n", m.link_detail().c_str());
    if (auto stored = ReadVerdict(VerdictPathFor(m.socket_path()))) {
      // The verdict new sessions with --transport=auto follow (sessions over UDP are mosh-client's
      // and mosh-server's alone: the master does not see them).
      std::printf("    transport for new sessions (auto): %s, %s (%s, %s ago)\n",
                  std::string(TransportName(stored->verdict.transport)).c_str(), stored->verdict.why.c_str(),
                  stored->key.c_str(), HumanDuration(static_cast<std::uint64_t>(std::max<long long>(0, stored->age.count()))).c_str());
    }
    for (const auto& r : m.relay_sessions()) {
      std::printf("    mosh over SSH: 127.0.0.1:%u -> server UDP %u (mosh-server pid %u, %s relay%s): %s; "
                  "%llu up, %llu down, %llu dropped, %llu channel(s)\n",
                  r.local_port(), r.server_port(), r.server_pid(), r.relay().empty() ? "starting" : r.relay().c_str(),
                  r.carrying() ? "" : ", reopening", r.reason().empty() ? "transport ssh" : r.reason().c_str(),
                  static_cast<unsigned long long>(r.to_server()), static_cast<unsigned long long>(r.to_client()),
                  static_cast<unsigned long long>(r.dropped()), static_cast<unsigned long long>(r.channels()));
    }
  }
  for (const auto& socket : stale) {
    std::printf(kRow, "(stale)", "-", "-", "-", "-", "-", "-", "-", "-", socket.c_str());
  }
  return 0;
}

// One line per check, in the order a session needs them; each failure says what to fix. A
// failure that the later checks depend on (no TCP, no master) ends the run there.
int RunDoctor(Options options) {
  DoctorReport report(!options.json);
  auto finish = [&](int status) {
    if (options.json) std::printf("%s\n", report.Json(options.destination).c_str());
    return report.failed() && status == 0 ? 1 : status;
  };
  const std::string& host = options.destination;

  auto resolved = Resolve(options);
  if (!resolved) {
    term::Failure failure = term::SplitHint(resolved.error().message);
    report.Fail("ssh settings", std::move(failure.message), std::move(failure.hint));
    return finish(kExitConnectionFailed);
  }
  const SshSettings& ssh = resolved->ssh;
  report.Ok("ssh settings", fmt::format("{} ({} -G {}: {} identity file(s), StrictHostKeyChecking {})",
                                        DestinationName(ssh), options.ssh, host, ssh.identity_files.size(),
                                        ssh.strict_host_key_checking.empty() ? "ask" : ssh.strict_host_key_checking));

  const bool proxied = !ssh.proxy_jump.empty() || !ssh.proxy_command.empty();
  if (proxied) {
    report.Ok("tcp", fmt::format("through {} (the host key check below goes through it)",
                                 ssh.proxy_jump.empty() ? "ProxyCommand" : "ProxyJump " + ssh.proxy_jump));
  } else {
    auto start = Clock::now();
    auto tcp = ReachTcp(ssh.hostname, ssh.port, std::chrono::seconds(ssh.connect_timeout_s > 0 ? ssh.connect_timeout_s : 10));
    if (!tcp) {
      report.Fail("tcp", tcp.error().message,
                  fmt::format("check HostName and Port (`{} -G {}`), that sshd runs on the server and that no "
                              "firewall drops TCP port {}",
                              options.ssh, host, ssh.port));
      return finish(kExitConnectionFailed);
    }
    report.Ok("tcp", fmt::format("connected to {} in {} ms", *tcp, Since(start)));
  }

  // Host key and authentication methods, from the user's own ssh (never authenticating, never
  // writing known_hosts).
  std::vector<std::string> probe_argv = options.ssh_argv;
  for (auto& word : SshProbeArguments(host)) probe_argv.push_back(std::move(word));
  CommandOptions probe_options;
  probe_options.timeout = std::chrono::seconds(30);
  auto probe_run = RunCommand(probe_argv, probe_options);
  SshProbe probe = probe_run ? ParseSshProbe(probe_run->exit_code, probe_run->err) : SshProbe{};
  if (!probe_run) probe.said = probe_run.error().message;
  std::string known_hosts = fmt::format("{}", fmt::join(ssh.user_known_hosts_files, " "));
  const std::string& policy = ssh.strict_host_key_checking;
  switch (probe.host_key) {
    case SshProbe::HostKey::kKnown:
      report.Ok("host key", fmt::format("known and matching ({})", known_hosts));
      break;
    case SshProbe::HostKey::kUnknown:
      if (policy == "accept-new" || policy == "no") {
        report.Ok("host key", fmt::format("not known yet; added to {} on the first connection "
                                          "(StrictHostKeyChecking {})", known_hosts, policy));
      } else {
        report.Fail("host key", fmt::format("the server's host key is not in {}", known_hosts),
                    fmt::format("connect once with `ssh {}` and compare the fingerprint with the server's "
                                "(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub there) before answering yes",
                                host));
      }
      break;
    case SshProbe::HostKey::kChanged:
      report.Fail("host key", fmt::format("the server's host key has CHANGED since it was stored in {}", known_hosts),
                  fmt::format("if the server was reinstalled or rekeyed, remove the old key with `ssh-keygen -R {}` "
                              "and connect again; otherwise do not connect",
                              ssh.port == 22 ? ssh.hostname : fmt::format("'[{}]:{}'", ssh.hostname, ssh.port)));
      return finish(kExitConnectionFailed);
    case SshProbe::HostKey::kUnreached:
      report.Fail("host key", fmt::format("ssh stopped before the host key: {}", probe.said),
                  fmt::format("run `{} -v {}` to see where it stops", options.ssh, host));
      return finish(kExitConnectionFailed);
  }

  if (probe.methods.empty()) {
    report.Fail("auth", "not checked: ssh stopped at the host key", "fix the host key first");
  } else {
    std::string offered = fmt::format("{}", fmt::join(probe.methods, ","));
    auto offers = [&](std::string_view method) { return std::ranges::find(probe.methods, method) != probe.methods.end(); };
    const bool agent = ssh.identity_agent != "none" &&
                       (!ssh.identity_agent.empty() || std::getenv("SSH_AUTH_SOCK") != nullptr);
    const auto keys = std::ranges::count_if(ssh.identity_files,
                                            [](const std::string& file) { return ::access(file.c_str(), R_OK) == 0; });
    if (!offers("publickey") && !offers("keyboard-interactive") && !offers("password") && !offers("none")) {
      report.Fail("auth", fmt::format("the server offers only {}", offered),
                  "ask the server's administrator to allow publickey authentication");
    } else if (offers("publickey") && probe.methods.size() == 1 && keys == 0 && !agent) {
      report.Fail("auth", "the server takes only keys, and there is no agent and no readable IdentityFile",
                  fmt::format("create a key with `ssh-keygen -t ed25519` and install it with `ssh-copy-id {}`", host));
    } else {
      report.Ok("auth", fmt::format("the server offers {}; mconnect has {} key file(s){}", offered, keys,
                                    agent ? " and an agent" : ""));
    }
  }

  auto link = ConnectOrStartMaster(ssh, options, resolved->profile);
  if (!link) {
    report.Fail("master",
                link.error().message.empty() ? "could not connect or authenticate (see above)" : link.error().message,
                fmt::format("run `{} -v {}` to see what the server says", options.ssh, host));
    return finish(kExitConnectionFailed);
  }
  report.Ok("master", fmt::format("{} (pid {}, {})", link->started ? "started" : "running", link->client.master_pid(),
                                  link->socket_path));

  auto remote = [&](const std::string& command) {
    control::ExecRequest request;
    request.set_command(command);
    request.set_timeout_ms(20000);
    return link->client.Call<control::ExecReply>(proto::MessageType::kExec, request, proto::MessageType::kExecReply,
                                                 milliseconds(30000));
  };
  auto server_words = SplitShellWords(options.server);
  std::string program = server_words && !server_words->empty() ? server_words->front() : options.server;
  auto where = remote(ServerPathCommand(program));
  if (!where) {
    report.Fail("mosh-server", where.error().message, "");
  } else if (ServerPath path = ParseServerPath(where->stdout()); !path.path.empty()) {
    report.Ok("mosh-server", fmt::format("{} is {} on the non-interactive PATH", program, path.path));
  } else if (!path.elsewhere.empty()) {
    report.Fail("mosh-server", fmt::format("{} is not on the PATH of non-interactive shells on {} ({}), but {} exists",
                                           program, host, path.search_path, path.elsewhere.front()),
                fmt::format("use --server={} (or server = \"{}\" under [host.{}] in config.toml), or add its "
                            "directory to PATH in a file non-interactive shells read (~/.bashrc, ~/.zshenv)",
                            path.elsewhere.front(), path.elsewhere.front(), SplitDestination(host).host));
    options.server = path.elsewhere.front();  // so that the checks below can still run it
  } else {
    report.Fail("mosh-server", fmt::format("{} is not installed on {} (PATH {})", program, host, path.search_path),
                "install mosh on the server (Debian/Ubuntu: apt install mosh-server or mosh), or give its full "
                "path with --server=/full/path/to/mosh-server");
  }

  const std::vector<std::string> locale_settings = LocaleSettings();
  const std::string requested =
      locale_settings.empty() ? "the server's default locale" : fmt::format("{}", fmt::join(locale_settings, " "));
  auto charmap = remote(ServerLocaleCommand(locale_settings));
  if (!charmap) {
    report.Fail("locale", charmap.error().message, "");
  } else if (ServerLocale locale = ParseServerLocale(charmap->stdout()); !locale.has_locale_program) {
    report.Fail("locale", "cannot tell: the server has no `locale` program",
                "the mosh-server check below shows whether it accepts your locale");
  } else if (locale.requested == "UTF-8") {
    report.Ok("locale", fmt::format("{} is UTF-8 on the server", requested));
  } else if (locale.fallback == "UTF-8") {
    report.Ok("locale", fmt::format("{} gives {} on the server; mosh-server will run with LANG=C.UTF-8", requested,
                                    locale.requested.empty() ? "nothing" : locale.requested));
  } else {
    const std::string tried = requested == "LANG=C.UTF-8" ? requested : requested + " or LANG=C.UTF-8";
    report.Fail("locale",
                fmt::format("the server has no UTF-8 locale: with {} its character set is {}, and mosh-server "
                            "refuses to start without UTF-8",
                            tried, locale.requested.empty() ? "unknown" : locale.requested),
                "install a UTF-8 locale on the server (Debian/Ubuntu: apt install locales, then dpkg-reconfigure "
                "locales or locale-gen en_US.UTF-8), and check that nothing there (LOCPATH, LC_ALL in shell startup "
                "files, sshd's SetEnv) overrides it");
  }

  auto ip = link->client.Call<control::DiscoverIpReply>(proto::MessageType::kDiscoverIp,
                                                        IpRequest(options, resolved->profile, true),
                                                        proto::MessageType::kDiscoverIpReply,
                                                        ChainBudget(options, resolved->profile));
  if (!ip) {
    report.Fail("remote-ip", ip.error().message, "");
    return finish(1);
  }
  bool answered = false;
  for (const auto& candidate : ip->candidates()) {
    // A failing strategy is only a problem when no later one answers: said, not counted.
    if (candidate.error().empty()) {
      answered = true;
      report.Ok("remote-ip", fmt::format("{} -> {} ({} ms)", candidate.strategy(), candidate.address(),
                                         candidate.elapsed_ms()));
    } else if (!options.json) {
      std::printf("      %-14s %s\n", "", candidate.error().c_str());
    }
  }
  if (ip->address().empty() || !answered) {
    report.Fail("remote-ip", fmt::format("no strategy found an address: {}", DescribeFailures(*ip)),
                fmt::format("add a working --remote-ip strategy (see `{}` and contrib/remote-ip/README.md)",
                            CommandLineFor(Options::Command::kIp, options)));
    return finish(1);
  }

  const Transport transport = ParseTransport(options.transport).value_or(Transport::kAuto);
  bool udp_answered = false;
  std::string udp_why;
  if (transport != Transport::kSsh) {
    auto probed = ProbeAddresses(*link, options, {ip->address()}, true);
    if (!probed) {
      term::Failure failure = term::SplitHint(probed.error().message);
      report.Fail("server start", std::move(failure.message), std::move(failure.hint));
      return finish(1);
    }
    const auto& server = probed->server;
    report.Ok("server start", fmt::format("mosh-server started on UDP port {} in {} ms (locale {})", server.port(),
                                         server.elapsed_ms(), server.locale_used()));
    std::string range = options.port_range.empty() ? "60001:60999" : options.port_range;
    const auto& udp = probed->probes.front().result;
    if (!udp) {
      udp_why = udp.error().message;
      report.Fail("udp", udp.error().message, "");
    } else if (udp->answered) {
      udp_answered = true;
      udp_why = fmt::format("mosh-server answered over UDP at {} in {} ms", ip->address(), udp->rtt.count());
      report.Ok("udp", fmt::format("{}:{} answered in {} ms", ip->address(), server.port(), udp->rtt.count()));
    } else {
      udp_why = fmt::format("no answer over UDP from {}:{}", ip->address(), server.port());
      report.Fail("udp", fmt::format("{}:{}: {}", ip->address(), server.port(), udp->detail),
                  fmt::format("UDP is blocked on the way to {}: forward UDP ports {} to the server (mosh-server "
                              "tried port {}), or let mosh go over SSH (see relay below)",
                              ip->address(), range, server.port()));
    }
  }
  if (udp_answered) {
    report.Ok("transport", transport == Transport::kUdp ? "udp (--transport=udp): " + udp_why : "udp (auto): " + udp_why);
    return finish(0);
  }
  // From here on UDP does not pass (or was not asked for): does the relay over SSH?
  auto relayed = ProbeThroughRelay(*link, options);
  if (!relayed) {
    term::Failure failure = term::SplitHint(relayed.error().message);
    report.Fail("relay", std::move(failure.message),
                failure.hint.empty() ? "the relay beside mosh-server needs perl (or mconnect) on the server's PATH"
                                     : std::move(failure.hint));
  } else if (!relayed->result.answered) {
    report.Fail("relay", fmt::format("mosh-server did not answer through the {} relay: {}", relayed->relay,
                                     relayed->result.detail),
                fmt::format("run `mconnect -vv {}` and read the master's log", host));
  } else {
    report.Ok("relay", fmt::format("mosh-server answered through the {} relay over SSH in {} ms", relayed->relay,
                                   relayed->result.rtt.count()));
  }
  const bool relay_answers = relayed && relayed->result.answered;
  if (transport == Transport::kUdp) {
    // The one verdict on the transport: a session with --transport=udp would hear nothing.
    Options over_ssh = options;
    over_ssh.transport = "ssh";
    over_ssh.explicitly_set.transport = true;
    report.Fail("transport", "udp (--transport=udp): mosh-client would hear nothing from mosh-server (" + udp_why + ")",
                relay_answers ? fmt::format("mosh over SSH works here (relay above): run `{}`, or {} (auto, the "
                                            "default, then goes over SSH by itself)",
                                            CommandLineFor(Options::Command::kConnect, over_ssh),
                                            options.explicitly_set.transport
                                                ? "leave out --transport=udp"
                                                : "take transport = \"udp\" out of the profile")
                              : "forward the UDP ports (see udp above); mosh over SSH does not work either (relay above)");
    return finish(1);
  }
  if (!relay_answers) return finish(1);
  report.Ok("transport", transport == Transport::kSsh ? "ssh (--transport=ssh): mosh's datagrams go over the master"
                                                      : "ssh (auto): " + udp_why + "; mosh's datagrams go over the master");
  return finish(0);
}

// Keeps the master for a destination up for a service manager: starts it in the foreground
// (this process becomes mconnect-mux), or, when one is already running, stays until it exits.
int RunMaster(Options options) {
  options.foreground_master = true;
  if (!options.persist_s) options.persist_s = 0;  // a service's master does not idle out
  auto connected = ResolveAndConnect(options, DoctorHint(options));
  if (!connected) return connected.error();
  auto& [resolved, link] = *connected;
  auto pid = static_cast<pid_t>(link.client.master_pid());
  std::fprintf(stderr, "mconnect: a master for %s is already running (pid %d, %s); waiting for it to exit\n",
               DestinationName(resolved.ssh).c_str(), pid, link.socket_path.c_str());
  if (auto waited = WaitForExit(pid); !waited) {
    PrintError(waited.error());
    return 1;
  }
  return 0;
}

int RunSshConfig(const Options& options) {
  Options resolved_options = options;
  auto resolved = Resolve(resolved_options);
  if (!resolved) {
    PrintError(resolved.error());
    return kExitConnectionFailed;
  }
  const SshSettings& ssh = resolved->ssh;
  if (!ssh.control_path.empty() && options.socket_path.empty()) {
    auto path = ExpandControlPath(ssh.control_path, ssh);
    std::printf("# %s already has ControlPath %s;\n# mconnect's master listens there, so plain `ssh %s` uses it.\n",
                ssh.host_alias.c_str(), path ? path->c_str() : ssh.control_path.c_str(), ssh.host_alias.c_str());
    return 0;
  }
  // The same name the master uses (USER@HOST:PORT.sock), written with ssh's own tokens so the
  // lines stay right if HostName, User or Port change.
  // With --socket, that path ('%' doubled: ssh expands tokens in ControlPath).
  std::string directory = resolved->profile.socket_dir.empty() ? proto::DefaultRuntimeDir()
                                                               : resolved->profile.socket_dir;
  std::string control_path = directory + "/%r@%h:%p.sock";
  if (!options.socket_path.empty()) {
    control_path.clear();
    for (char c : options.socket_path) control_path += c == '%' ? std::string("%%") : std::string(1, c);
  }
  const std::string& host = ssh.host_alias;
  const std::string lines =
      fmt::format("Host {}\n    ControlPath {}\n    ControlMaster no\n", host, control_path);
  // ssh keeps the first ControlPath it reads: appended, the lines may come too late.
  auto place = PlaceControlPathLines(ssh, options.ssh_argv, lines);
  if (!place) {
    log::Debug("cannot tell where the lines take effect: {}", place.error().message);
    place = ControlPathPlace{ControlPathPlace::Kind::kAppend, "~/.ssh/config", 0, ""};
  }
  const std::string uses = fmt::format("plain `ssh {}` (and scp, rsync, git) then use mconnect's master\n"
                                       "# when one is running, and connect as usual when none is.",
                                       host);
  switch (place->kind) {
    case ControlPathPlace::Kind::kAppend:
      std::printf("# Add to %s: %s\n%s", place->file.c_str(), uses.c_str(), lines.c_str());
      return 0;
    case ControlPathPlace::Kind::kAbove:
      std::printf("# Put these lines in %s above line %d (`%s`, the first block there that applies to %s):\n"
                  "# ssh keeps the first ControlPath it reads, and one read before the end of the file\n"
                  "# (`ControlPath none` counts) would win over them. There, %s\n%s",
                  place->file.c_str(), place->line, place->block.c_str(), host.c_str(), uses.c_str(), lines.c_str());
      return 0;
    case ControlPathPlace::Kind::kOverridden:
      PrintError(Error{fmt::format("{} sets ControlPath for every host {}, outside any Host or Match block, and ssh "
                                   "keeps the first value it reads: no lines for {} can change it",
                                   place->file, place->line > 0 ? fmt::format("above line {}", place->line)
                                                                : std::string("before any block for it"),
                                   host)},
                 "edit that ControlPath line, or move it into a `Host *` block at the end of the file");
      return 1;
  }
  return 0;
}

// "3 sessions and 1 forward", "1 mosh session over SSH", ... (empty: nothing).
std::string Carried(const control::StatusReply& status) {
  std::vector<std::string> parts;
  auto count = [&parts](std::uint32_t n, std::string_view one, std::string_view many) {
    if (n > 0) parts.push_back(fmt::format("{} {}", n, n == 1 ? one : many));
  };
  count(status.sessions(), "session", "sessions");
  count(status.relay_sessions_size() > 0 ? static_cast<std::uint32_t>(status.relay_sessions_size()) : 0,
        "mosh session over SSH", "mosh sessions over SSH");
  count(status.forwards(), "forward", "forwards");
  if (parts.empty() && status.channels() > 0) count(status.channels(), "channel", "channels");
  std::string text;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    text += (i == 0 ? "" : i + 1 == parts.size() ? " and " : ", ") + parts[i];
  }
  return text;
}

// Asks on the terminal; no terminal, or anything but y/yes, is no.
bool Confirm(const std::string& question) {
  if (::isatty(STDIN_FILENO) != 1 || ::isatty(STDERR_FILENO) != 1) return false;
  std::fprintf(stderr, "%s [y/N] ", question.c_str());
  std::fflush(stderr);
  char line[64] = {};
  if (std::fgets(line, sizeof line, stdin) == nullptr) return false;
  std::string answer(line);
  while (!answer.empty() && (answer.back() == '\n' || answer.back() == '\r' || answer.back() == ' ')) answer.pop_back();
  return answer == "y" || answer == "Y" || answer == "yes";
}

// Stops one master; prints what it did. Returns the exit status.
int StopMaster(const KnownMaster& master, bool force) {
  const std::string name = master.record.alias().empty() ? master.record.destination() : master.record.alias();
  const unsigned pid = master.record.pid();
  if (!master.status) {
    auto ended = EndSilentMaster(master, milliseconds(2000));
    if (!ended) {
      PrintError(ended.error());
      return 1;
    }
    std::printf("the master for %s (pid %u) did not answer; ended it with %s\n", master.record.destination().c_str(),
                pid, *ended == SIGKILL ? "SIGKILL" : "SIGTERM");
    return 0;
  }
  const std::string carried = Carried(*master.status);
  bool now = force || carried.empty();
  if (!now) {
    now = Confirm(fmt::format("The master for {} carries {}. End them now?", master.record.destination(), carried));
  }
  auto client = proto::ControlClient::Connect(master.record.socket_path(), milliseconds(2000));
  if (!client) {
    PrintError(Error{fmt::format("the master for {} stopped answering: {}", master.record.destination(),
                                 client.error().message)});
    return 1;
  }
  control::StopRequest request;
  request.set_when_idle(!now);
  auto stopped = client->Call<control::StopReply>(proto::MessageType::kStop, request, proto::MessageType::kStopReply,
                                                  milliseconds(5000));
  if (!stopped) {
    PrintError(stopped.error());
    return 1;
  }
  if (!now) {
    std::printf("the master for %s (pid %u) takes no new clients and exits once what it carries (%s) has "
                "ended; `mconnect stop --force %s` ends it now\n",
                master.record.destination().c_str(), pid, carried.c_str(), name.c_str());
    return 0;
  }
  // The master removes its socket on the way out; wait for that (bounded) so that a command
  // run right after `mconnect stop` sees no master.
  auto deadline = Clock::now() + std::chrono::seconds(5);
  struct stat st{};
  while (::stat(master.record.socket_path().c_str(), &st) == 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  std::printf("stopped master for %s (pid %u)%s\n", master.record.destination().c_str(), pid,
              carried.empty() ? "" : fmt::format(", ending its {}", carried).c_str());
  return 0;
}

int RunStop(const Options& options) {
  std::vector<KnownMaster> known = FindMasters(proto::DefaultRuntimeDir(), milliseconds(1000));
  std::vector<const KnownMaster*> chosen;
  for (const auto& master : known) {
    if (options.stop_all || Names(master, options.destination)) chosen.push_back(&master);
  }
  if (options.stop_all && chosen.empty()) {
    std::printf("no masters running\n");
    return 0;
  }
  if (chosen.empty()) {
    // A host name as ssh knows it (another alias of the same destination, user@host): the
    // socket its settings lead to.
    Options resolved_options = options;
    auto resolved = Resolve(resolved_options);
    if (!resolved) {
      PrintError(resolved.error());
      return 1;
    }
    auto socket_path = SocketPathFor(resolved->ssh, resolved_options, resolved->profile);
    for (const auto& master : known) {
      if ((socket_path && master.record.socket_path() == *socket_path) ||
          master.record.destination() == DestinationName(resolved->ssh)) {
        chosen.push_back(&master);
      }
    }
    if (chosen.empty()) {
      PrintError(Error{fmt::format("no master running for {} ({})", options.destination,
                                   DestinationName(resolved->ssh))},
                 "`mconnect status` lists the running masters by the names `mconnect stop` takes");
      return 1;
    }
  }
  int status = 0;
  for (const KnownMaster* master : chosen) status = std::max(status, StopMaster(*master, options.force));
  return status;
}

}  // namespace mconnect::launcher
