#include "launcher/mosh_client.h"

#include <langinfo.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <clocale>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "base/subprocess.h"

extern char** environ;

namespace mconnect::launcher {
namespace {

constexpr std::string_view kLocaleHint = "set a UTF-8 one, e.g. LANG=C.UTF-8 (`locale -a` lists those installed here)";

// Why `path` cannot be executed (as execve would say), or 0 when it can.
int NotRunnable(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return errno;
  if (S_ISDIR(st.st_mode)) return EISDIR;
  if (::access(path.c_str(), X_OK) != 0) return errno;
  return 0;
}

// The variable that decides the character set, as NAME=VALUE ("" when none is set).
std::string CtypeSetting() {
  for (const char* name : {"LC_ALL", "LC_CTYPE", "LANG"}) {
    const char* value = std::getenv(name);
    if (value != nullptr && value[0] != '\0') return fmt::format("{}={}", name, value);
  }
  return "";
}

}  // namespace

Result<std::string> FindClient(const std::string& client) {
  constexpr std::string_view kHint =
      "install mosh here (Debian/Ubuntu: apt install mosh), or name the program with "
      "--client=/full/path/to/mosh-client (or client = \"...\" in the profile)";
  if (client.find('/') != std::string::npos) {
    if (int error = NotRunnable(client); error != 0) {
      return Fail(
          Error{fmt::format("cannot run mosh-client {}: {}", client, std::strerror(error)), std::string(kHint)});
    }
    return client;
  }
  const char* path = std::getenv("PATH");
  std::string_view directories = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  while (true) {
    const std::size_t colon = directories.find(':');
    std::string directory(directories.substr(0, colon));
    std::string candidate = (directory.empty() ? std::string(".") : directory) + "/" + client;
    if (NotRunnable(candidate) == 0) return candidate;
    if (colon == std::string_view::npos) break;
    directories.remove_prefix(colon + 1);
  }
  return Fail(Error{fmt::format("cannot run mosh-client: no {} on PATH", client), std::string(kHint)});
}

bool IsMoshClient(const std::string& path) {
  CommandOptions options;
  options.timeout = std::chrono::seconds(5);
  auto result = RunCommand({path, "--version"}, options);
  return result && result->ok() && result->out.starts_with("mosh-client (mosh ");
}

Result<void> CheckClientLocale() {
  // As mosh-client does it (setlocale(LC_ALL, ""), then the character set), and then back to
  // the C locale this program runs in.
  const std::string saved = std::setlocale(LC_ALL, nullptr);
  const bool installed = std::setlocale(LC_ALL, "") != nullptr;
  const std::string charset = nl_langinfo(CODESET);
  std::setlocale(LC_ALL, saved.c_str());
  if (charset == "UTF-8" || charset == "utf-8") return {};
  const std::string setting = CtypeSetting();
  if (setting.empty()) {
    return Fail(Error{fmt::format("mosh-client needs a UTF-8 locale, and no LC_ALL, LC_CTYPE or LANG is set (the "
                                  "character set is {})",
                                  charset),
                      std::string(kLocaleHint)});
  }
  if (!installed) {
    return Fail(Error{fmt::format("mosh-client needs a UTF-8 locale, and {} is not installed here", setting),
                      std::string(kLocaleHint)});
  }
  return Fail(
      Error{fmt::format("mosh-client needs a UTF-8 locale, and {} gives the character set {}", setting, charset),
            std::string(kLocaleHint)});
}

Result<void> CheckClientTerminal(const std::string& host) {
  if (::isatty(STDIN_FILENO) == 1) return {};
  return Fail(Error{"mosh-client needs a terminal, and standard input is not one",
                    fmt::format("run mconnect in a terminal; for a command without one, use ssh through the master "
                                "(`mconnect ssh-config {}` prints the lines)",
                                host)});
}

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
