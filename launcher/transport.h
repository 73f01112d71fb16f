// How mosh's datagrams travel: `udp` (mosh as designed, mosh-client straight to mosh-server),
// `ssh` (over the master's SSH connection through a relay: for networks that block UDP and
// servers with no open port), or `auto`: `udp` when mosh-server answers a UDP probe at the
// chosen address, else `ssh`. The probe's verdict is remembered per destination and address for
// the remote-ip cache time, so a warm start does not pay for the probe again.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"

namespace mconnect::launcher {

enum class Transport { kUdp, kSsh, kAuto };

Result<Transport> ParseTransport(std::string_view text);
std::string_view TransportName(Transport transport);

// A remembered verdict for `auto`: Transport::kUdp or kSsh, for `address` only.
struct TransportVerdict {
  Transport transport = Transport::kUdp;
  std::string why;  // "mosh-server answered over UDP in 3 ms", "no answer over UDP (...)"
};

// A verdict lives in one small file beside the destination's master socket
// (VerdictPathFor); nothing secret is in it. A verdict older than `ttl`, for another address,
// or unreadable counts as none. Remembering is best effort: a file that cannot be written only
// means the next start probes again.
// The address this machine sends from towards `address` (its route's source): part of a
// verdict's key, so that a verdict is not reused once this machine is on another network.
// Empty when `address` is no IP literal or has no route. Sends nothing.
std::string LocalAddressTowards(const std::string& address);

std::string VerdictPathFor(const std::string& socket_path);
// What the file holds, whatever its key and age (for `mconnect status`).
struct StoredVerdict {
  std::string key;  // "SERVER-ADDRESS/LOCAL-ADDRESS"
  TransportVerdict verdict;
  std::chrono::seconds age{0};
};
std::optional<StoredVerdict> ReadVerdict(const std::string& path);

// Whether a stored verdict still decides new sessions: younger than `ttl` (the remote-ip cache
// time of its host's profile) and not from the future. RecallVerdict's rule, for `mconnect
// status` to tell a verdict in force from an expired one, which the next session probes anew.
bool VerdictCurrent(const StoredVerdict& stored, std::chrono::seconds ttl);

std::optional<TransportVerdict> RecallVerdict(const std::string& path, const std::string& address,
                                              std::chrono::seconds ttl);
void RememberVerdict(const std::string& path, const std::string& address, const TransportVerdict& verdict);

}  // namespace mconnect::launcher
