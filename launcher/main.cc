// mconnect: `mconnect bebou` replaces `mosh bebou`. See launcher/cli.h for the command line.
#include <cstdio>
#include <cstdlib>
#include <variant>

#include "base/log.h"
#include "launcher/app.h"
#include "launcher/cli.h"

int main(int argc, char** argv) {
  using namespace mconnect::launcher;
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
  }
  return 2;
}
