// `mconnect status`: the running masters (a table, or --json from control.StatusListing), with
// the sockets no master answers on listed as stale.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "launcher/app.h"
#include "launcher/json.h"
#include "launcher/masters.h"
#include "launcher/profile.h"
#include "launcher/transport.h"
#include "proto/client.h"
#include "proto/socket_path.h"

namespace mconnect::launcher {
namespace {

using std::chrono::milliseconds;

constexpr const char* kRow = "%-28s %7s %8s %-13s %5s %8s %7s %13s  %-36s %s\n";

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

// The socket directory: --socket's, else the profile's socket-dir, else the runtime directory.
std::string SocketDirectory(const Options& options, const std::string& runtime) {
  if (!options.socket_path.empty()) return options.socket_path.substr(0, options.socket_path.rfind('/'));
  std::string profile_path = options.config_path.empty() ? DefaultProfilePath() : options.config_path;
  if (auto profile = LoadProfile(profile_path); profile && !profile->ForHost("").socket_dir.empty()) {
    return profile->ForHost("").socket_dir;
  }
  return runtime;
}

// Sockets in the socket directory that no master answers on (masters of an older mconnect, or
// killed ones).
std::vector<std::string> StaleSockets(const std::string& directory, const std::vector<KnownMaster>& known) {
  std::vector<std::string> stale;
  for (const auto& socket : proto::ListSockets(directory)) {
    const bool known_socket =
        std::ranges::any_of(known, [&](const KnownMaster& m) { return m.record.socket_path() == socket; });
    if (known_socket) continue;
    if (proto::ControlClient::Connect(socket, milliseconds(1000))) continue;  // an older master
    stale.push_back(socket);
  }
  return stale;
}

void PrintJson(const std::vector<KnownMaster>& known, const std::vector<std::string>& stale) {
  control::StatusListing listing;
  for (const auto& m : known) {
    if (m.status) {
      *listing.add_masters() = *m.status;
    } else {
      *listing.add_not_answering() = m.record;
    }
  }
  for (const auto& socket : stale) listing.add_stale_sockets(socket);
  std::printf("%s\n", ToJson(listing).c_str());
}

// A master that did not answer: what its record says.
void PrintSilentRow(const control::MasterRecord& r) {
  const bool starting = r.state() != "serving";
  const auto age =
      static_cast<std::uint64_t>(std::max<long long>(0, std::time(nullptr) - static_cast<long long>(r.started_unix())));
  std::printf(kRow, r.destination().c_str(), std::to_string(r.pid()).c_str(), HumanDuration(age).c_str(),
              starting ? (r.state() == "asking" ? "asking" : "starting") : "not answering", "-", "-", "-", "-", "-",
              r.socket_path().c_str());
  if (!starting) {
    std::printf("    it does not answer (stopped or stuck): `mconnect stop %s` ends it\n",
                r.alias().empty() ? r.destination().c_str() : r.alias().c_str());
  }
}

// The lines under a master's row: how it was started, its link, the transport verdict, and its
// mosh sessions over SSH.
void PrintDetails(const control::StatusReply& m) {
  if (!m.alias().empty() && m.alias() != m.destination())
    std::printf("    started as: mconnect %s\n", m.alias().c_str());
  if (!m.link_detail().empty()) std::printf("    link: %s\n", m.link_detail().c_str());
  if (auto stored = ReadVerdict(VerdictPathFor(m.socket_path()))) {
    // The verdict new sessions with --transport=auto follow (sessions over UDP are mosh-client's
    // and mosh-server's alone: the master does not see them).
    std::printf("    transport for new sessions (auto): %s, %s (%s, %s ago)\n",
                std::string(TransportName(stored->verdict.transport)).c_str(), stored->verdict.why.c_str(),
                stored->key.c_str(),
                HumanDuration(static_cast<std::uint64_t>(std::max<long long>(0, stored->age.count()))).c_str());
  }
  for (const auto& f : m.configured_forwards()) {
    const std::string state = f.state() == "waiting" ? "waiting for the connection" : f.state();
    std::string extra = f.detail().empty() ? "" : " (" + f.detail() + ")";
    if (f.state() == "failed") extra = ": " + f.detail() + " (tried again later)";
    if (f.kind() == "R" && f.state() == "up") extra = fmt::format(" (server port {})", f.server_port());
    std::printf("    forward %s (%s): %s%s\n", f.text().c_str(), f.origin().c_str(), state.c_str(), extra.c_str());
  }
  for (const auto& r : m.relay_sessions()) {
    std::printf(
        "    mosh over SSH: 127.0.0.1:%u -> server UDP %u (mosh-server pid %u, %s relay%s): %s; "
        "%llu up, %llu down, %llu dropped, %llu channel(s)\n",
        r.local_port(), r.server_port(), r.server_pid(), r.relay().empty() ? "starting" : r.relay().c_str(),
        r.carrying() ? "" : ", reopening", r.reason().empty() ? "transport ssh" : r.reason().c_str(),
        static_cast<unsigned long long>(r.to_server()), static_cast<unsigned long long>(r.to_client()),
        static_cast<unsigned long long>(r.dropped()), static_cast<unsigned long long>(r.channels()));
  }
}

void PrintRow(const control::StatusReply& m) {
  std::string last = m.last_ip_address().empty()
                         ? "-"
                         : fmt::format("{} ({}, {} ago)", m.last_ip_address(), m.last_ip_strategy(),
                                       HumanDuration(m.last_ip_age_ms() / 1000));
  // The master counts this status request's own connection among its clients.
  std::printf(kRow, m.destination().c_str(), std::to_string(m.pid()).c_str(),
              HumanDuration(m.uptime_ms() / 1000).c_str(),
              m.stopping()       ? "stopping"
              : m.link().empty() ? "up"
                                 : m.link().c_str(),
              std::to_string(m.connections()).c_str(), std::to_string(m.channels()).c_str(),
              std::to_string(m.clients() > 0 ? m.clients() - 1 : 0).c_str(),
              (HumanBytes(m.bytes_sent()) + "/" + HumanBytes(m.bytes_received())).c_str(), last.c_str(),
              m.socket_path().c_str());
  PrintDetails(m);
}

void PrintTable(const std::vector<KnownMaster>& known, const std::vector<std::string>& stale) {
  std::printf(kRow, "DESTINATION", "PID", "UPTIME", "LINK", "CONNS", "CHANNELS", "CLIENTS", "SENT/RECEIVED",
              "LAST REMOTE-IP (STRATEGY, AGE)", "SOCKET");
  for (const auto& known_master : known) {
    if (known_master.status) {
      PrintRow(*known_master.status);
    } else {
      PrintSilentRow(known_master.record);
    }
  }
  for (const auto& socket : stale) {
    std::printf(kRow, "(stale)", "-", "-", "-", "-", "-", "-", "-", "-", socket.c_str());
  }
}

}  // namespace

int RunStatus(const Options& options) {
  const std::string runtime = proto::DefaultRuntimeDir();
  std::vector<KnownMaster> known = FindMasters(runtime, milliseconds(1000));
  std::vector<std::string> stale = StaleSockets(SocketDirectory(options, runtime), known);
  if (options.json) {
    PrintJson(known, stale);
  } else if (known.empty() && stale.empty()) {
    std::printf("no masters running (runtime directory %s)\n", runtime.c_str());
  } else {
    PrintTable(known, stale);
  }
  return 0;
}

}  // namespace mconnect::launcher
