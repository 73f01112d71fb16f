#include "launcher/commands/route.h"

#include <algorithm>
#include <cstdio>
#include <vector>

#include <fmt/format.h>

#include "launcher/commands/destination.h"
#include "launcher/commands/master_requests.h"

namespace mconnect::launcher {
namespace {

// The remote-ip chain's answer (or, with --probe-udp, the first address a throwaway mosh-server
// answers at). `probed` says whether a UDP probe already ran, and `answered` its verdict.
struct FoundAddress {
  std::string address;
  bool probed = false;
  bool answered = false;
  std::string probe_detail = {};  // what each probed address said, when none answered
};

// Every address the chain found, once each, in chain order.
std::vector<std::string> CandidateAddresses(const control::DiscoverIpReply& reply) {
  std::vector<std::string> addresses;
  for (const auto& candidate : reply.candidates()) {
    if (!candidate.address().empty() && std::ranges::find(addresses, candidate.address()) == addresses.end()) {
      addresses.push_back(candidate.address());
    }
  }
  return addresses;
}

// --probe-udp: the first of the chain's addresses where a throwaway mosh-server answers.
Result<FoundAddress> ProbeCandidates(MasterLink& link, const Options& options, const control::DiscoverIpReply& ip,
                                     term::ProgressLine& progress) {
  progress.Step("probing UDP");
  auto report = ProbeAddresses(link, options, CandidateAddresses(ip), false);
  if (!report) return Fail(report.error());
  FoundAddress found{ip.address(), true, false, ""};
  auto answered =
      std::ranges::find_if(report->probes, [](const AddressProbe& p) { return p.result && p.result->answered; });
  if (answered != report->probes.end()) {
    found.address = answered->address;
    found.answered = true;
    found.probe_detail =
        fmt::format("mosh-server answered over UDP at {} in {} ms", answered->address, answered->result->rtt.count());
    return found;
  }
  for (const auto& probe : report->probes) {
    found.probe_detail += fmt::format("{}{}: {}", found.probe_detail.empty() ? "" : "; ", probe.address,
                                      probe.result ? probe.result->detail : probe.result.error().message);
  }
  return found;
}

Result<FoundAddress> FindAddress(MasterLink& link, const Options& options, const HostProfile& profile,
                                 term::ProgressLine& progress) {
  auto ip = options.probe_udp ? DiscoverAll(link, options, profile) : DiscoverIp(link, options, profile, false);
  if (!ip) {
    // A failure that knows its fix (the master's reply said it) keeps it.
    return Fail(Error{fmt::format("finding the server's address failed: {}", ip.error().message),
                      ip.error().hint.empty() ? DoctorHint(options) : ip.error().hint});
  }
  if (ip->address().empty()) {
    return Fail(Error{fmt::format("no address for mosh: {}", DescribeFailures(*ip)),
                      fmt::format("try another --remote-ip strategy (see `mconnect ip {}`)", options.destination)});
  }
  if (options.probe_udp) return ProbeCandidates(link, options, *ip, progress);
  if (std::string failures = DescribeFailures(*ip); !failures.empty()) {
    progress.Clear();
    std::fprintf(stderr, "mconnect: %s; using %s\n", failures.c_str(), ip->address().c_str());
  }
  return FoundAddress{.address = ip->address()};
}

// --transport=udp: the chain's address, even where a probe heard nothing (said, with the line
// that would go over SSH instead).
Result<Route> UdpRoute(const Result<FoundAddress>& found, const Options& options, term::ProgressLine& progress) {
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

// A UDP probe of `address`, as a verdict to remember.
Result<TransportVerdict> ProbeVerdict(MasterLink& link, const Options& options, const std::string& address,
                                      term::ProgressLine& progress) {
  progress.Step("probing UDP");
  auto report = ProbeAddresses(link, options, {address}, false);
  if (!report) return Fail(report.error());
  const auto& probe = report->probes.front();
  if (probe.result && probe.result->answered) {
    return TransportVerdict{Transport::kUdp, fmt::format("mosh-server answered over UDP at {} in {} ms", probe.address,
                                                         probe.result->rtt.count())};
  }
  return TransportVerdict{Transport::kSsh,
                          fmt::format("no answer over UDP from {}:{} ({})", probe.address, report->server.port(),
                                      probe.result ? probe.result->detail : probe.result.error().message)};
}

// --transport=auto: UDP where mosh-server answers a probe (this one, an earlier --probe-udp's, or
// a remembered one), else SSH; and SSH when no address was found at all.
Result<Route> AutoRoute(MasterLink& link, const Options& options, const HostProfile& profile,
                        const Result<FoundAddress>& found, term::ProgressLine& progress) {
  if (!found) return Route{Transport::kSsh, "", found.error().message};
  if (found->probed) {
    if (found->answered) return Route{Transport::kUdp, found->address, found->probe_detail};
    return Route{Transport::kSsh, "", "no answer over UDP (" + found->probe_detail + ")"};
  }
  const std::string key = found->address + "/" + LocalAddressTowards(found->address);
  const std::string verdict_path = VerdictPathFor(link.socket_path);
  const auto ttl = std::chrono::seconds(profile.remote_ip_cache_ttl_s);
  if (auto verdict = RecallVerdict(verdict_path, key, ttl))
    return Route{verdict->transport, found->address, verdict->why};
  auto verdict = ProbeVerdict(link, options, found->address, progress);
  if (!verdict) return Fail(verdict.error());
  if (ttl.count() > 0) RememberVerdict(verdict_path, key, *verdict);
  return Route{verdict->transport, found->address, verdict->why};
}

}  // namespace

Result<Route> ChooseRoute(MasterLink& link, const Options& options, const HostProfile& profile,
                          term::ProgressLine& progress) {
  auto transport = ParseTransport(options.transport);
  if (!transport) return Fail(transport.error());
  if (*transport == Transport::kSsh) return Route{Transport::kSsh, "", "transport ssh chosen"};
  progress.Step("finding the server's address");
  auto found = FindAddress(link, options, profile, progress);
  if (*transport == Transport::kUdp) return UdpRoute(found, options, progress);
  return AutoRoute(link, options, profile, found, progress);
}

}  // namespace mconnect::launcher
