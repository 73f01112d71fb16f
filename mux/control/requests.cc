#include "mux/control/requests.h"

#include <algorithm>

#include "base/text.h"

namespace mconnect::mux {

std::chrono::milliseconds BoundedTimeout(std::uint32_t requested_ms, std::chrono::milliseconds fallback,
                                         std::chrono::milliseconds most) {
  if (requested_ms == 0) return std::min(fallback, most);
  return std::min(std::chrono::milliseconds(requested_ms), most);
}

Result<ExecSpec> ExecFromRequest(const control::ExecRequest& request) {
  if (request.command().empty()) return Fail("Exec needs a command");
  if (request.command().size() > kMaxCommandBytes) {
    return Fail("the command is {} bytes long; at most {} fit one SSH packet", request.command().size(),
                kMaxCommandBytes);
  }
  ExecSpec spec;
  spec.command = request.command();
  spec.timeout = BoundedTimeout(request.timeout_ms(), kDefaultExecTimeout);
  spec.max_output =
      request.max_output() == 0 ? kDefaultExecOutput : std::min<std::size_t>(request.max_output(), kMaxExecOutput);
  return spec;
}

Result<DiscoverParams> DiscoverFromRequest(const control::DiscoverIpRequest& request) {
  if (static_cast<std::size_t>(request.strategies_size()) > kMaxStrategies) {
    return Fail("{} remote-ip strategies asked for; at most {}", request.strategies_size(), kMaxStrategies);
  }
  DiscoverParams params;
  for (const auto& spec : request.strategies()) {
    if (spec.size() > kMaxStrategyBytes) {
      return Fail("a remote-ip strategy of {} bytes; at most {}", spec.size(), kMaxStrategyBytes);
    }
    params.strategies.push_back(spec);
  }
  if (params.strategies.empty()) params.strategies.push_back("peer");
  params.timeout = BoundedTimeout(request.timeout_ms(), kDefaultStrategyTimeout, kMaxStrategyTimeout);
  params.refresh = request.refresh();
  if (!request.family().empty()) {
    auto family = remoteip::ParseFamily(request.family());
    if (!family) return Fail(std::move(family.error()));
    params.family = *family;
  }
  return params;
}

Result<mosh::MoshServerParams> MoshServerFromRequest(const control::StartMoshServerRequest& request, bool locale_fallback) {
  if (request.verbose() > kMaxVerbose) {
    return Fail("verbose {} is out of range (mosh-server takes 0 to {} -v)", request.verbose(), kMaxVerbose);
  }
  if (request.colors() > kMaxColors) return Fail("colors {} is out of range (0 to {})", request.colors(), kMaxColors);
  if (request.server().size() > kMaxWordBytes || request.bind().size() > kMaxWordBytes ||
      request.port_range().size() > kMaxWordBytes) {
    return Fail("a mosh-server setting longer than {} bytes", kMaxWordBytes);
  }
  if (static_cast<std::size_t>(request.locale_size()) > kMaxLocaleEntries) {
    return Fail("{} locale settings; at most {}", request.locale_size(), kMaxLocaleEntries);
  }
  if (static_cast<std::size_t>(request.command_size()) > kMaxCommandWords) {
    return Fail("a command of {} words; at most {}", request.command_size(), kMaxCommandWords);
  }
  std::size_t command_bytes = 0;
  for (const auto& word : request.command()) command_bytes += word.size() + 1;
  if (command_bytes > kMaxCommandBytes) {
    return Fail("the command is {} bytes long; at most {} fit one SSH packet", command_bytes, kMaxCommandBytes);
  }
  mosh::MoshServerParams params;
  if (!request.server().empty()) params.server = request.server();
  if (locale_fallback) {
    params.locale = {"LANG=C.UTF-8"};
  } else {
    for (const auto& entry : request.locale()) {
      if (entry.size() > kMaxLocaleBytes) return Fail("a locale setting of {} bytes; at most {}", entry.size(), kMaxLocaleBytes);
      params.locale.push_back(entry);
    }
  }
  params.colors = request.colors();
  params.port_range = request.port_range();
  if (!request.bind().empty()) params.bind = request.bind();
  params.command.assign(request.command().begin(), request.command().end());
  params.verbose = static_cast<int>(request.verbose());
  return params;
}

Result<std::string> MoshServerCommandFromRequest(const control::StartMoshServerRequest& request,
                                                 bool locale_fallback) {
  auto params = MoshServerFromRequest(request, locale_fallback);
  if (!params) return Fail(params.error());
  auto command = mosh::BuildMoshServerCommand(*params);
  if (!command) return Fail(command.error());
  if (command->size() > kMaxCommandBytes) {
    return Fail("the mosh-server command line is {} bytes long; at most {} fit one SSH packet", command->size(),
                kMaxCommandBytes);
  }
  return command;
}

Result<RelayParams> RelayFromRequest(const control::StartRelayRequest& request) {
  if (request.port() == 0 || request.port() > 65535) {
    return Fail("relay: mosh-server's port {} is not a UDP port (1 to 65535)", request.port());
  }
  // The relay ends when this pid has gone: 0 (kill(0, 0) asks about the whole process group), 1
  // (init never goes) and anything past the kernel's range (0xFFFFFFFF would be kill(-1, ...))
  // would keep it, and its channel, for as long as the master lives.
  if (request.server_pid() < 2 || request.server_pid() > kMaxPid) {
    return Fail("relay: {} is not the pid of a mosh-server (2 to {})", request.server_pid(), kMaxPid);
  }
  if (request.relay().size() > kMaxWordBytes) return Fail("relay: unknown relay kind");
  RelayParams params;
  params.port = static_cast<int>(request.port());
  params.server_pid = request.server_pid();
  params.relay = request.relay();
  params.reason = SanitizeForMessage(request.reason(), kMaxReasonBytes);
  return params;
}

}  // namespace mconnect::mux
