#include "launcher/app.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include <google/protobuf/util/json_util.h>

#include "base/log.h"
#include "launcher/master_link.h"
#include "launcher/mosh_client.h"
#include "launcher/profile.h"
#include "launcher/ssh_config.h"
#include "proto/socket_path.h"
#include "remote-ip/udp_probe.h"

namespace mconnect::launcher {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

void PrintError(const Error& error) {
  if (!error.message.empty()) std::fprintf(stderr, "mconnect: %s\n", error.message.c_str());
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

// Everything the connect, stop and ip commands need before they talk to a master.
struct Resolved {
  SshSettings ssh;
  HostProfile profile;
};

Result<Resolved> Resolve(Options& options) {
  std::string profile_path = options.config_path.empty() ? DefaultProfilePath() : options.config_path;
  auto profile = LoadProfile(profile_path, options.config_path.empty() ? MissingProfile::kUseDefaults
                                                                       : MissingProfile::kFail);
  if (!profile) return Fail(profile.error());
  HostProfile host = profile->ForHost(SplitDestination(options.destination).host);
  ApplyProfile(options, host);
  auto ssh = ResolveSshSettings(options.ssh, options.destination);
  if (!ssh) return Fail(ssh.error());
  return Resolved{std::move(*ssh), std::move(host)};
}

control::DiscoverIpRequest IpRequest(const Options& options, const HostProfile& profile, bool refresh) {
  control::DiscoverIpRequest request;
  for (const auto& spec : options.remote_ip) request.add_strategies(spec);
  request.set_timeout_ms(static_cast<std::uint32_t>(profile.remote_ip_timeout_s) * 1000);
  request.set_refresh(refresh);
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

struct AddressProbe {
  std::string address;
  Result<remoteip::ProbeResult> result;
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
  control::StartMoshServerRequest request;
  request.set_server(options.server);
  for (const auto& setting : LocaleSettings()) request.add_locale(setting);
  request.set_port_range(options.port_range);
  request.set_bind(options.bind_server);
  request.add_command("sleep");
  request.add_command("60");
  request.set_timeout_ms(20000);
  auto server = link.client.Call<control::StartMoshServerReply>(
      proto::MessageType::kStartMoshServer, request, proto::MessageType::kStartMoshServerReply, milliseconds(30000));
  if (!server) return Fail(server.error());
  ProbeReport report{*server, {}};
  for (const auto& address : addresses) {
    auto result = remoteip::ProbeMoshServer(address, static_cast<std::uint16_t>(server->port()), server->key(),
                                            milliseconds(2000));
    bool answered = result && result->answered;
    report.probes.push_back({address, std::move(result)});
    if (answered && !all) break;
  }
  if (server->server_pid() != 0) {
    // It heard the probe, so TERM starts a shutdown handshake with nobody: KILL what is left.
    control::ExecRequest kill;
    kill.set_command(fmt::format("kill {0} 2>/dev/null; sleep 0.2; kill -9 {0} 2>/dev/null; true",
                                 server->server_pid()));
    kill.set_timeout_ms(5000);
    (void)link.client.Call<control::ExecReply>(proto::MessageType::kExec, kill, proto::MessageType::kExecReply,
                                               milliseconds(10000));
  }
  return report;
}

}  // namespace

int RunConnect(Options options) {
  auto start = Clock::now();
  if (options.local) {
    PrintError(Error{"--local is not supported by this version of mconnect"});
    return 1;
  }
  auto resolved = Resolve(options);
  if (!resolved) {
    PrintError(resolved.error());
    return kExitConnectionFailed;
  }
  long resolve_ms = Since(start);

  auto link = ConnectOrStartMaster(resolved->ssh, options, resolved->profile);
  if (!link) {
    PrintError(link.error());
    return kExitConnectionFailed;
  }

  auto step = Clock::now();
  auto ip = options.probe_udp
                ? DiscoverAll(*link, options, resolved->profile)
                : link->client.Call<control::DiscoverIpReply>(proto::MessageType::kDiscoverIp,
                                                              IpRequest(options, resolved->profile, false),
                                                              proto::MessageType::kDiscoverIpReply,
                                                              ChainBudget(options, resolved->profile));
  if (!ip) {
    PrintError(Error{"finding the server's address failed: " + ip.error().message});
    return 1;
  }
  if (ip->address().empty()) {
    PrintError(Error{"no address for mosh: " + DescribeFailures(*ip)});
    return 1;
  }
  if (options.probe_udp) {
    std::vector<std::string> addresses;
    for (const auto& candidate : ip->candidates()) {
      if (!candidate.address().empty() &&
          std::find(addresses.begin(), addresses.end(), candidate.address()) == addresses.end()) {
        addresses.push_back(candidate.address());
      }
    }
    auto report = ProbeAddresses(*link, options, addresses, false);
    if (!report) {
      PrintError(report.error());
      return 1;
    }
    auto answered = std::find_if(report->probes.begin(), report->probes.end(),
                                 [](const AddressProbe& p) { return p.result && p.result->answered; });
    if (answered != report->probes.end()) {
      ip->set_address(answered->address);
    } else {
      std::string tried;
      for (const auto& probe : report->probes) {
        tried += fmt::format("{}{}: {}", tried.empty() ? "" : "; ", probe.address,
                             probe.result ? probe.result->detail : probe.result.error().message);
      }
      std::fprintf(stderr, "mconnect: no address answered over UDP (%s); trying %s anyway\n", tried.c_str(),
                   ip->address().c_str());
    }
  } else if (std::string failures = DescribeFailures(*ip); !failures.empty()) {
    std::fprintf(stderr, "mconnect: %s; using %s\n", failures.c_str(), ip->address().c_str());
  }
  long ip_ms = Since(step);

  step = Clock::now();
  control::StartMoshServerRequest request;
  request.set_server(options.server);
  for (const auto& setting : LocaleSettings()) request.add_locale(setting);
  request.set_colors(ClientColors(options.client));
  request.set_port_range(options.port_range);
  request.set_bind(options.bind_server);
  for (const auto& word : options.remote_command) request.add_command(word);
  request.set_timeout_ms(20000);
  request.set_verbose(static_cast<std::uint32_t>(std::max(0, options.verbosity - 1)));
  auto server = link->client.Call<control::StartMoshServerReply>(
      proto::MessageType::kStartMoshServer, request, proto::MessageType::kStartMoshServerReply, milliseconds(30000));
  if (!server) {
    PrintError(server.error());
    return 1;
  }
  long server_ms = Since(step);

  if (options.timings || options.verbosity > 0) {
    std::fprintf(stderr,
                 "mconnect: %s master %s in %ld ms (pid %u) · address %s in %ld ms · mosh-server port %u in %ld ms · "
                 "total %ld ms (ssh -G %ld ms)\n",
                 resolved->ssh.host_alias.c_str(), link->started ? "started" : "reused",
                 static_cast<long>(link->elapsed.count()), link->client.master_pid(), ip->address().c_str(), ip_ms,
                 server->port(), server_ms, Since(start), resolve_ms);
  }
  Error failed = ExecMoshClient(options, ip->address(), server->port(), server->key());
  PrintError(failed);
  return 1;
}

int RunIp(Options options) {
  auto resolved = Resolve(options);
  if (!resolved) {
    PrintError(resolved.error());
    return kExitConnectionFailed;
  }
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
  std::string directory = proto::DefaultRuntimeDir();
  if (!options.socket_path.empty()) {
    directory = options.socket_path.substr(0, options.socket_path.rfind('/'));
  } else {
    std::string profile_path = options.config_path.empty() ? DefaultProfilePath() : options.config_path;
    if (auto profile = LoadProfile(profile_path); profile && !profile->ForHost("").socket_dir.empty()) {
      directory = profile->ForHost("").socket_dir;
    }
  }
  std::vector<control::StatusReply> masters;
  std::vector<std::string> stale;
  for (const auto& socket : proto::ListSockets(directory)) {
    auto client = proto::ControlClient::Connect(socket, milliseconds(1000));
    if (!client) {
      stale.push_back(socket);
      continue;
    }
    auto status = client->Call<control::StatusReply>(proto::MessageType::kStatus, control::StatusRequest{},
                                                     proto::MessageType::kStatusReply, milliseconds(2000));
    if (status) masters.push_back(std::move(*status));
  }
  if (options.json) {
    std::string out = "{\"masters\": [";
    for (std::size_t i = 0; i < masters.size(); ++i) out += (i ? ", " : "") + Json(masters[i]);
    out += "], \"stale_sockets\": [";
    for (std::size_t i = 0; i < stale.size(); ++i) out += fmt::format("{}\"{}\"", i ? ", " : "", stale[i]);
    out += "]}";
    std::printf("%s\n", out.c_str());
    return 0;
  }
  if (masters.empty() && stale.empty()) {
    std::printf("no masters running (socket directory %s)\n", directory.c_str());
    return 0;
  }
  std::printf("%-32s %8s %10s %5s %8s %7s  %s\n", "DESTINATION", "PID", "UPTIME", "CONNS", "CHANNELS", "EXECS",
              "SOCKET");
  for (const auto& m : masters) {
    std::printf("%-32s %8u %9lus %5u %8u %7lu  %s\n", m.destination().c_str(), m.pid(),
                static_cast<unsigned long>(m.uptime_ms() / 1000), m.connections(), m.channels(),
                static_cast<unsigned long>(m.execs()), m.socket_path().c_str());
  }
  for (const auto& socket : stale) {
    std::printf("%-32s %8s %10s %5s %8s %7s  %s\n", "(stale)", "-", "-", "-", "-", "-", socket.c_str());
  }
  return 0;
}

// One line per check, in the order a session needs them; the first failure says what to fix and
// stops the checks that depend on it.
int RunDoctor(Options options) {
  int failures = 0;
  auto ok = [](std::string_view what, const std::string& detail) {
    std::printf("ok    %-14s %s\n", std::string(what).c_str(), detail.c_str());
  };
  auto fail = [&failures](std::string_view what, const std::string& detail, const std::string& hint) {
    ++failures;
    std::printf("FAIL  %-14s %s\n", std::string(what).c_str(), detail.c_str());
    if (!hint.empty()) std::printf("      %-14s fix: %s\n", "", hint.c_str());
  };

  auto resolved = Resolve(options);
  if (!resolved) {
    fail("ssh settings", resolved.error().message, "check `ssh -G " + options.destination + "`");
    return kExitConnectionFailed;
  }
  const SshSettings& ssh = resolved->ssh;
  ok("ssh settings", fmt::format("{} (ssh -G {})", DestinationName(ssh), options.destination));

  auto link = ConnectOrStartMaster(ssh, options, resolved->profile);
  if (!link) {
    fail("master", link.error().message.empty() ? "could not connect or authenticate (see above)" : link.error().message,
         "run `ssh " + options.destination + "` to see what the server says");
    return kExitConnectionFailed;
  }
  ok("master", fmt::format("{} (pid {}, {})", link->started ? "started" : "running", link->client.master_pid(),
                           link->socket_path));

  auto ip = link->client.Call<control::DiscoverIpReply>(proto::MessageType::kDiscoverIp,
                                                        IpRequest(options, resolved->profile, true),
                                                        proto::MessageType::kDiscoverIpReply,
                                                        ChainBudget(options, resolved->profile));
  if (!ip) {
    fail("remote-ip", ip.error().message, "");
    return 1;
  }
  for (const auto& candidate : ip->candidates()) {
    if (candidate.error().empty()) {
      ok("remote-ip", fmt::format("{} -> {} ({} ms)", candidate.strategy(), candidate.address(), candidate.elapsed_ms()));
    } else {
      fail("remote-ip", candidate.error(), "");
      --failures;  // a failing strategy is only a problem when no later one answers
    }
  }
  if (ip->address().empty()) {
    fail("remote-ip", "no strategy found an address", "add a working strategy: see contrib/remote-ip/README.md");
    return 1;
  }

  auto report = ProbeAddresses(*link, options, {ip->address()}, true);
  if (!report) {
    fail("mosh-server", report.error().message, "");
    return 1;
  }
  const auto& server = report->server;
  ok("mosh-server", fmt::format("started on UDP port {} in {} ms (locale {})", server.port(), server.elapsed_ms(),
                                server.locale_used()));
  std::string range = options.port_range.empty() ? "60001:60999" : options.port_range;
  const auto& probe = report->probes.front().result;
  if (!probe) {
    fail("udp", probe.error().message, "");
  } else if (probe->answered) {
    ok("udp", fmt::format("{}:{} answered in {} ms", ip->address(), server.port(), probe->rtt.count()));
  } else {
    fail("udp", fmt::format("{}:{}: {}", ip->address(), server.port(), probe->detail),
         fmt::format("UDP is blocked on the way to {}: forward UDP ports {} to the server (mosh-server tried port {})",
                     ip->address(), range, server.port()));
  }
  return failures == 0 ? 0 : 1;
}

int RunSshConfig(const Options& options) {
  Options resolved_options = options;
  auto resolved = Resolve(resolved_options);
  if (!resolved) {
    PrintError(resolved.error());
    return kExitConnectionFailed;
  }
  const SshSettings& ssh = resolved->ssh;
  if (!ssh.control_path.empty()) {
    auto path = ExpandControlPath(ssh.control_path, ssh);
    std::printf("# %s already has ControlPath %s;\n# mconnect's master listens there, so plain `ssh %s` uses it.\n",
                ssh.host_alias.c_str(), path ? path->c_str() : ssh.control_path.c_str(), ssh.host_alias.c_str());
    return 0;
  }
  // The same name the master uses (USER@HOST:PORT.sock), written with ssh's own tokens so the
  // lines stay right if HostName, User or Port change.
  std::string directory = resolved->profile.socket_dir.empty() ? proto::DefaultRuntimeDir()
                                                               : resolved->profile.socket_dir;
  std::printf(
      "# Add to ~/.ssh/config: plain `ssh %s` (and scp, rsync, git) then use mconnect's master\n"
      "# when one is running, and connect as usual when none is.\n"
      "Host %s\n"
      "    ControlPath %s/%%r@%%h:%%p.sock\n"
      "    ControlMaster no\n",
      ssh.host_alias.c_str(), ssh.host_alias.c_str(), directory.c_str());
  return 0;
}

int RunStop(const Options& options) {
  Options resolved_options = options;
  auto resolved = Resolve(resolved_options);
  if (!resolved) {
    PrintError(resolved.error());
    return kExitConnectionFailed;
  }
  auto socket_path = SocketPathFor(resolved->ssh, resolved_options, resolved->profile);
  if (!socket_path) {
    PrintError(socket_path.error());
    return 1;
  }
  const std::string& socket = *socket_path;
  auto client = proto::ControlClient::Connect(socket, milliseconds(2000));
  if (!client) {
    PrintError(Error{fmt::format("no master running for {} ({})", DestinationName(resolved->ssh), socket)});
    return 1;
  }
  std::uint32_t pid = client->master_pid();
  auto stopped = client->Call<control::StopReply>(proto::MessageType::kStop, control::StopRequest{},
                                                  proto::MessageType::kStopReply, milliseconds(5000));
  if (!stopped) {
    PrintError(stopped.error());
    return 1;
  }
  // The master removes its socket on the way out; wait for that (bounded) so that a command
  // run right after `mconnect stop` sees no master.
  auto deadline = Clock::now() + std::chrono::seconds(5);
  struct stat st{};
  while (::stat(socket.c_str(), &st) == 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  std::printf("stopped master for %s (pid %u)\n", DestinationName(resolved->ssh).c_str(), pid);
  return 0;
}

}  // namespace mconnect::launcher
