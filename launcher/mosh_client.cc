#include "launcher/mosh_client.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "base/subprocess.h"

extern char** environ;

namespace mconnect::launcher {

unsigned ClientColors(const std::string& client) {
  CommandOptions options;
  options.timeout = std::chrono::seconds(5);
  auto result = RunCommand({client, "-c"}, options);
  if (!result || !result->ok()) return 0;
  unsigned colors = 0;
  for (char c : result->out) {
    if (c < '0' || c > '9') break;
    colors = colors * 10 + static_cast<unsigned>(c - '0');
    if (colors > 1u << 24) return 0;
  }
  return colors;
}

std::vector<std::string> LocaleSettings() {
  std::vector<std::string> settings;
  for (const char* name : {"LANG", "LANGUAGE", "LC_CTYPE", "LC_NUMERIC", "LC_TIME", "LC_COLLATE", "LC_MONETARY",
                           "LC_MESSAGES", "LC_PAPER", "LC_NAME", "LC_ADDRESS", "LC_TELEPHONE", "LC_MEASUREMENT",
                           "LC_IDENTIFICATION", "LC_ALL"}) {
    const char* value = std::getenv(name);
    if (value != nullptr && value[0] != '\0') settings.push_back(std::string(name) + "=" + value);
  }
  return settings;
}

std::vector<std::string> MoshClientArgv(const Options& options, const std::string& address, unsigned port) {
  std::string shown = "-#";
  for (const auto& arg : options.original_args) shown += " " + arg;
  shown += " |";
  return {options.client, shown, address, std::to_string(port)};
}

Error ExecMoshClient(const Options& options, const std::string& address, unsigned port, const std::string& key) {
  ::setenv("MOSH_KEY", key.c_str(), 1);
  ::setenv("MOSH_PREDICTION_DISPLAY", options.predict.c_str(), 1);
  if (options.predict_overwrite) ::setenv("MOSH_PREDICTION_OVERWRITE", "yes", 1);
  if (!options.term_init) ::setenv("MOSH_NO_TERM_INIT", "1", 1);
  auto args = MoshClientArgv(options, address, port);
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  ::execvp(argv[0], argv.data());
  int error = errno;
  ::unsetenv("MOSH_KEY");
  return Error{fmt::format("cannot run {}: {}", options.client, std::strerror(error))};
}

}  // namespace mconnect::launcher
