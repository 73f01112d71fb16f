// What the commands ask of a running master beyond a single call: the remote-ip chain (all of
// it, or up to its first answer), and UDP probes of a throwaway mosh-server, straight or through
// the `ssh` transport's relay. Used by connect (the route), ip and doctor.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "launcher/cli.h"
#include "launcher/master_link.h"
#include "launcher/profile.h"
#include "proto/control.pb.h"
#include "mosh/udp_probe.h"

namespace mconnect::launcher {

// The chain of `options.remote_ip` (the profile's when the command line gave none), up to its
// first answer; `refresh` skips the master's cache.
Result<control::DiscoverIpReply> DiscoverIp(MasterLink& link, const Options& options, const HostProfile& profile,
                                            bool refresh);
// Every strategy's answer (not only the first), in chain order.
Result<control::DiscoverIpReply> DiscoverAll(MasterLink& link, const Options& options, const HostProfile& profile);
// "peer: no address; dns: ..." : what the failed strategies said, in order.
std::string DescribeFailures(const control::DiscoverIpReply& reply);

// Ends mosh-server `pid` on the server (a throwaway, or a session's whose relay failed) without
// waiting: the master runs the kill while we go on.
void KillServer(MasterLink& link, std::uint32_t pid);

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
                                   bool all);

// The `ssh` transport end to end: a throwaway mosh-server on the server's loopback, a relay to it
// over the master, and a UDP probe through the relay; then the server is killed (the relay ends
// with it).
struct RelayProbe {
  std::string relay;  // "perl" or "mconnect"
  mosh::ProbeResult result;
};
Result<RelayProbe> ProbeThroughRelay(MasterLink& link, const Options& options);

}  // namespace mconnect::launcher
