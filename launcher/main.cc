// mconnect: `mconnect bebou` replaces `mosh bebou`. See launcher/cli.h for the command line.
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <variant>

#include "base/log.h"
#include "launcher/app.h"
#include "launcher/cli.h"
#include "mosh/relay_server.h"

namespace {

// `mconnect relay PORT PID` runs on the server, started by a master over SSH (mosh/relay_server.h);
// `mconnect relay --check` tells that master this mconnect has it. Not a user's command, so it
// stays out of the mosh-style command line.
int RelayMain(int argc, char** argv) {
  if (argc == 3 && std::string_view(argv[2]) == "--check") return 0;
  char* end = nullptr;
  long port = argc == 4 ? std::strtol(argv[2], &end, 10) : 0;
  bool port_ok = end != nullptr && *end == '\0' && port > 0 && port <= 65535;
  long pid = argc == 4 ? std::strtol(argv[3], &end, 10) : -1;
  if (!port_ok || *end != '\0' || pid < 0 || pid > 0x7fffffff) {
    std::fprintf(stderr, "usage: mconnect relay PORT PID (run by mconnect's master over SSH)\n");
    return 2;
  }
  return mconnect::mosh::RunRelay(static_cast<int>(port), static_cast<std::uint32_t>(pid));
}

}  // namespace

int main(int argc, char** argv) {
  using namespace mconnect::launcher;
  if (argc >= 2 && std::string_view(argv[1]) == "relay") return RelayMain(argc, argv);
  auto parsed = ParseCommandLine(argc, argv);
  if (!parsed) {
    std::fprintf(stderr, "mconnect: %s\n", parsed.error().message.c_str());
    return 2;
  }
  if (auto* exit = std::get_if<Exit>(&*parsed)) {
    std::fputs(exit->text.c_str(), exit->code == 0 ? stdout : stderr);
    return exit->code;
  }
  Options options = std::get<Options>(std::move(*parsed));
  mconnect::log::ToStderr("mconnect", options.verbosity);
  if (auto predicted = ApplyPredictionEnvironment(options, std::getenv("MOSH_PREDICTION_DISPLAY")); !predicted) {
    std::fprintf(stderr, "mconnect: %s\n", predicted.error().message.c_str());
    return 2;
  }
  switch (options.command) {
    case Options::Command::kConnect: return RunConnect(std::move(options));
    case Options::Command::kStatus: return RunStatus(options);
    case Options::Command::kStop: return RunStop(options);
    case Options::Command::kIp: return RunIp(std::move(options));
    case Options::Command::kSshConfig: return RunSshConfig(options);
    case Options::Command::kDoctor: return RunDoctor(std::move(options));
    case Options::Command::kMaster: return RunMaster(std::move(options));
  }
  return 2;
}
