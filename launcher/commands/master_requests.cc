#include "launcher/commands/master_requests.h"

#include <algorithm>

#include <fmt/format.h>

#include "base/log.h"
#include "launcher/mosh_client.h"

namespace mconnect::launcher {
namespace {

using std::chrono::milliseconds;

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
  return link.client.Call<control::StartMoshServerReply>(
      proto::MessageType::kStartMoshServer, request, proto::MessageType::kStartMoshServerReply, milliseconds(30000));
}

}  // namespace

Result<control::DiscoverIpReply> DiscoverIp(MasterLink& link, const Options& options, const HostProfile& profile,
                                            bool refresh) {
  return link.client.Call<control::DiscoverIpReply>(
      proto::MessageType::kDiscoverIp, IpRequest(options, profile, refresh), proto::MessageType::kDiscoverIpReply,
      ChainBudget(options, profile));
}

Result<control::DiscoverIpReply> DiscoverAll(MasterLink& link, const Options& options, const HostProfile& profile) {
  control::DiscoverIpReply all;
  for (const auto& spec : options.remote_ip) {
    Options one = options;
    one.remote_ip = {spec};
    auto answer = DiscoverIp(link, one, profile, false);
    if (!answer) return Fail(answer.error());
    for (const auto& candidate : answer->candidates()) *all.add_candidates() = candidate;
    if (all.address().empty()) all.set_address(answer->address());
  }
  return all;
}

std::string DescribeFailures(const control::DiscoverIpReply& reply) {
  std::string text;
  for (const auto& candidate : reply.candidates()) {
    if (candidate.error().empty()) continue;
    text += (text.empty() ? "" : "; ") + candidate.error();
  }
  return text;
}

// (After an authentic datagram TERM starts a shutdown handshake with nobody, so KILL follows
// 200 ms later: a first session used to wait that out, and a round trip, before its own
// mosh-server was even asked for.)
void KillServer(MasterLink& link, std::uint32_t pid) {
  if (pid == 0) return;
  control::ExecRequest kill;
  kill.set_command(fmt::format("kill {0} 2>/dev/null; sleep 0.2; kill -9 {0} 2>/dev/null; true", pid));
  kill.set_timeout_ms(5000);
  auto errand = proto::ControlClient::Connect(link.socket_path, milliseconds(3000));
  Result<void> posted =
      errand ? errand->Post(proto::MessageType::kExec, kill, milliseconds(3000)) : Result<void>(Fail(errand.error()));
  if (!posted) log::Debug("could not ask the master to end mosh-server {}: {}", pid, posted.error().message);
}

Result<ProbeReport> ProbeAddresses(MasterLink& link, const Options& options, const std::vector<std::string>& addresses,
                                   bool all) {
  auto server = StartThrowawayServer(link, options, options.bind_server);
  if (!server) return Fail(server.error());
  ProbeReport report{*server, {}};
  for (const auto& address : addresses) {
    auto result = mosh::ProbeMoshServer(address, static_cast<std::uint16_t>(server->port()), server->key(),
                                            milliseconds(2000));
    bool answered = result && result->answered;
    report.probes.push_back({address, std::move(result)});
    if (answered && !all) break;
  }
  KillServer(link, server->server_pid());
  return report;
}

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

}  // namespace mconnect::launcher
