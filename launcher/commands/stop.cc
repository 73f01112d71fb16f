// `mconnect stop HOST | --all`: asks a master to stop (now, or once what it carries has ended),
// and ends one that does not answer by its pid.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <expected>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "base/terminal.h"
#include "launcher/app.h"
#include "launcher/commands/destination.h"
#include "launcher/master_link.h"
#include "launcher/masters.h"
#include "proto/client.h"
#include "proto/socket_path.h"

namespace mconnect::launcher {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

void PrintError(const Error& error) { term::PrintFailure("mconnect", error); }

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

// A master that does not answer: ended by its pid.
int EndSilent(const KnownMaster& master) {
  auto ended = EndSilentMaster(master, milliseconds(2000));
  if (!ended) {
    PrintError(ended.error());
    return 1;
  }
  std::printf("the master for %s (pid %u) did not answer; ended it with %s\n", master.record.destination().c_str(),
              master.record.pid(), *ended == SIGKILL ? "SIGKILL" : "SIGTERM");
  return 0;
}

// Sends Stop: now, or (`when_idle`) once what the master carries has ended.
Result<void> AskToStop(const KnownMaster& master, bool when_idle) {
  auto client = proto::ControlClient::Connect(master.record.socket_path(), milliseconds(2000));
  if (!client) {
    return Fail(Error{
        fmt::format("the master for {} stopped answering: {}", master.record.destination(), client.error().message),
        client.error().hint});
  }
  control::StopRequest request;
  request.set_when_idle(when_idle);
  auto stopped = client->Call<control::StopReply>(proto::MessageType::kStop, request, proto::MessageType::kStopReply,
                                                  milliseconds(5000));
  if (!stopped) return Fail(stopped.error());
  return {};
}

// The master removes its socket on the way out; waits for that (bounded) so that a command run
// right after `mconnect stop` sees no master.
void WaitForSocketGone(const std::string& socket_path) {
  auto deadline = Clock::now() + std::chrono::seconds(5);
  struct stat st {};
  while (::stat(socket_path.c_str(), &st) == 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(20));
  }
}

// Stops one master; prints what it did. Returns the exit status.
int StopMaster(const KnownMaster& master, bool force) {
  if (!master.status) return EndSilent(master);
  const std::string name = master.record.alias().empty() ? master.record.destination() : master.record.alias();
  const unsigned pid = master.record.pid();
  const std::string carried = Carried(*master.status);
  bool now = force || carried.empty();
  if (!now) {
    now = Confirm(fmt::format("The master for {} carries {}. End them now?", master.record.destination(), carried));
  }
  if (auto asked = AskToStop(master, !now); !asked) {
    PrintError(asked.error());
    return 1;
  }
  if (!now) {
    std::printf(
        "the master for %s (pid %u) takes no new clients and exits once what it carries (%s) has "
        "ended; `mconnect stop --force %s` ends it now\n",
        master.record.destination().c_str(), pid, carried.c_str(), name.c_str());
    return 0;
  }
  WaitForSocketGone(master.record.socket_path());
  std::printf("stopped master for %s (pid %u)%s\n", master.record.destination().c_str(), pid,
              carried.empty() ? "" : fmt::format(", ending its {}", carried).c_str());
  return 0;
}

// A host name as ssh knows it (another alias of the same destination, user@host): the masters
// at the socket its settings lead to. Prints why when there are none.
std::expected<std::vector<const KnownMaster*>, int> MastersBySettings(const Options& options,
                                                                      const std::vector<KnownMaster>& known) {
  Options resolved_options = options;
  auto resolved = Resolve(resolved_options);
  if (!resolved) {
    PrintError(resolved.error());
    return std::unexpected(1);
  }
  auto socket_path = SocketPathFor(resolved->ssh, resolved_options, resolved->profile);
  std::vector<const KnownMaster*> chosen;
  for (const auto& master : known) {
    if ((socket_path && master.record.socket_path() == *socket_path) ||
        master.record.destination() == DestinationName(resolved->ssh)) {
      chosen.push_back(&master);
    }
  }
  if (chosen.empty()) {
    PrintError(Error{fmt::format("no master running for {} ({})", options.destination, DestinationName(resolved->ssh)),
                     "`mconnect status` lists the running masters by the names `mconnect stop` takes"});
    return std::unexpected(1);
  }
  return chosen;
}

}  // namespace

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
    auto found = MastersBySettings(options, known);
    if (!found) return found.error();
    chosen = std::move(*found);
  }
  int status = 0;
  for (const KnownMaster* master : chosen) status = std::max(status, StopMaster(*master, options.force));
  return status;
}

}  // namespace mconnect::launcher
