// `mconnect ip HOST`: every remote-ip strategy of the chain, with what it found and how long it
// took (a table, or --json).
#include <cstdio>
#include <string>

#include <fmt/format.h>

#include "base/terminal.h"
#include "launcher/app.h"
#include "launcher/commands/destination.h"
#include "launcher/commands/master_requests.h"
#include "launcher/json.h"
#include "launcher/master_link.h"

namespace mconnect::launcher {
namespace {

void PrintCandidates(const control::DiscoverIpReply& ip) {
  for (const auto& candidate : ip.candidates()) {
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

}  // namespace

int RunIp(Options options) {
  auto resolved = ResolveOrExit(options);
  if (!resolved) return resolved.error();
  auto link = ConnectOrStartMaster(resolved->ssh, options, resolved->profile);
  if (!link) {
    term::PrintFailure("mconnect", link.error());
    return kExitConnectionFailed;
  }
  // Every strategy of the chain, not only up to the first answer: the point is to compare them.
  auto ip = DiscoverAll(*link, options, resolved->profile);
  if (!ip) {
    term::PrintFailure("mconnect", ip.error());
    return 1;
  }
  if (options.json) {
    std::printf("%s\n", ToJson(*ip).c_str());
  } else {
    PrintCandidates(*ip);
  }
  return ip->address().empty() ? 1 : 0;
}

}  // namespace mconnect::launcher
