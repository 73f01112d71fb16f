// What the master does with a decoded control request, before it touches the connection: the
// bounded parameters it runs with, or the one line that says why it will not. Pure (no fd, no
// libssh2, no clock), so that a fuzzer drives it with every value a protobuf field may hold.
//
// A decoded field is still hostile: every count and size a client sends becomes a loop bound, a
// buffer size or a deadline only through here (a `verbose` of 2^31 once meant 2^31 "-v" words).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "base/result.h"
#include "mosh/server.h"
#include "mux/ssh/exec_task.h"
#include "proto/control.pb.h"
#include "remote-ip/address.h"

namespace mconnect::mux {

inline constexpr std::chrono::milliseconds kDefaultExecTimeout{30000};
inline constexpr std::chrono::milliseconds kMaxExecTimeout{10 * 60 * 1000};
inline constexpr std::size_t kDefaultExecOutput = 64 * 1024;
inline constexpr std::size_t kMaxExecOutput = 256 * 1024;  // both streams fit one control frame
inline constexpr std::size_t kMaxCommandBytes = 32 * 1024;  // one SSH packet of libssh2's
inline constexpr std::size_t kMaxStrategies = 16;
inline constexpr std::chrono::milliseconds kDefaultStrategyTimeout{10000};
inline constexpr std::chrono::milliseconds kMaxStrategyTimeout{60000};
inline constexpr unsigned kMaxVerbose = 4;
inline constexpr unsigned kMaxColors = 1 << 24;  // a direct-color terminal's `tput colors`
inline constexpr std::size_t kMaxStrategyBytes = 4096;
inline constexpr std::size_t kMaxLocaleEntries = 32;
inline constexpr std::size_t kMaxLocaleBytes = 256;
inline constexpr std::size_t kMaxWordBytes = 4096;  // --server, --bind, a port range
inline constexpr std::size_t kMaxCommandWords = 256;
inline constexpr std::size_t kMaxReasonBytes = 200;
// The kernel's largest pid (PID_MAX_LIMIT on 64-bit Linux).
inline constexpr std::uint32_t kMaxPid = 4 * 1024 * 1024;

// `requested_ms`, or `fallback` when 0, never above `most`.
std::chrono::milliseconds BoundedTimeout(std::uint32_t requested_ms, std::chrono::milliseconds fallback,
                                         std::chrono::milliseconds most = kMaxExecTimeout);

Result<ExecSpec> ExecFromRequest(const control::ExecRequest& request);

struct DiscoverParams {
  std::vector<std::string> strategies;  // at least one
  std::chrono::milliseconds timeout;    // per strategy
  bool refresh = false;
  remoteip::Family family = remoteip::Family::kPreferInet;
};
Result<DiscoverParams> DiscoverFromRequest(const control::DiscoverIpRequest& request);

// `locale_fallback`: the server lacked the requested locale; ask for C.UTF-8 instead.
Result<mosh::MoshServerParams> MoshServerFromRequest(const control::StartMoshServerRequest& request, bool locale_fallback);

// MoshServerFromRequest, then the remote command line (BuildMoshServerCommand), which must fit
// one SSH packet too: quoting can make it four times as long as its words.
Result<std::string> MoshServerCommandFromRequest(const control::StartMoshServerRequest& request,
                                                 bool locale_fallback);

struct RelayParams {
  int port = 0;           // mosh-server's UDP port on the server
  std::uint32_t server_pid = 0;
  std::string relay;      // "", "perl" or "mconnect"
  std::string reason;     // sanitized, for status
};
Result<RelayParams> RelayFromRequest(const control::StartRelayRequest& request);

}  // namespace mconnect::mux
