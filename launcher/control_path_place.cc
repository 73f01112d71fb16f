#include "launcher/control_path_place.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "base/subprocess.h"
#include "base/text.h"
#include "base/unique_fd.h"

namespace mconnect::launcher {
namespace {

// `ssh_argv` without its -F (the file to read instead of ~/.ssh/config), and that file.
std::pair<std::vector<std::string>, std::string> SplitConfigFile(const std::vector<std::string>& ssh_argv) {
  std::vector<std::string> rest;
  std::string file;
  for (std::size_t i = 0; i < ssh_argv.size(); ++i) {
    if (ssh_argv[i] == "-F" && i + 1 < ssh_argv.size()) {
      file = ssh_argv[++i];
    } else if (ssh_argv[i].starts_with("-F") && ssh_argv[i].size() > 2) {
      file = ssh_argv[i].substr(2);
    } else {
      rest.push_back(ssh_argv[i]);
    }
  }
  if (rest.empty()) rest.push_back("ssh");
  if (file.empty()) {
    const char* home = std::getenv("HOME");
    file = std::string(home != nullptr ? home : "") + "/.ssh/config";
  }
  return {std::move(rest), ExpandTilde(file)};
}

// The ControlPath ssh gives `host` when it reads `text` as its config ("" for none).
Result<std::string> ControlPathWith(const std::vector<std::string>& ssh, const std::string& text,
                                    const std::string& host) {
  const char* tmpdir = std::getenv("TMPDIR");
  std::string path = std::string(tmpdir != nullptr && tmpdir[0] == '/' ? tmpdir : "/tmp") + "/mconnect-ssh-config.XXXXXX";
  UniqueFd fd(::mkstemp(path.data()));  // 0600
  if (!fd) return Fail("cannot create a file in {}: {}", path.substr(0, path.rfind('/')), std::strerror(errno));
  struct Remove {
    std::string path;
    ~Remove() { ::unlink(path.c_str()); }
  } remove{path};
  if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    return Fail("cannot write {}: {}", path, std::strerror(errno));
  }
  std::vector<std::string> argv = ssh;
  argv.insert(argv.end(), {"-F", path, "-G", host});
  CommandOptions options;
  options.timeout = kSshGTimeout;
  auto result = RunCommand(argv, options);
  if (!result || !result->ok()) return Fail("`ssh -G {}` on a copy of the config failed", SanitizeForMessage(host, 80));
  auto settings = ParseSshG(result->out, host);
  if (!settings) return Fail(settings.error());
  return settings->control_path;
}

}  // namespace

Result<ControlPathPlace> PlaceControlPathLines(const SshSettings& settings, const std::vector<std::string>& ssh_argv,
                                               const std::string& lines) {
  auto [ssh, file] = SplitConfigFile(ssh_argv);
  ControlPathPlace place;
  place.file = file;
  std::string text;
  if (std::ifstream in(file); in) {
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  } else {
    return place;  // a new file: nothing comes before the lines
  }
  const std::string& host = settings.host_alias;
  const std::string separated = text.empty() || text.back() == '\n' ? text : text + "\n";
  auto appended = ControlPathWith(ssh, separated + lines, host);
  if (!appended) return Fail(appended.error());
  if (!appended->empty()) return place;

  // The first block of `file` that applies, as ssh -v tells: "FILE line N: Applying options for".
  std::vector<std::string> argv = ssh;
  argv.insert(argv.end(), {"-F", file, "-v", "-G", host});
  CommandOptions options;
  options.timeout = kSshGTimeout;
  auto verbose = RunCommand(argv, options);
  if (!verbose) return Fail(verbose.error());
  const std::string marker = "debug1: " + file + " line ";
  for (std::size_t at = verbose->err.find(marker); at != std::string::npos; at = verbose->err.find(marker, at + 1)) {
    const std::size_t number = at + marker.size();
    const std::size_t colon = verbose->err.find(": Applying options for ", number);
    if (colon == std::string::npos || verbose->err.find('\n', number) < colon) continue;
    place.line = std::atoi(verbose->err.substr(number, colon - number).c_str());
    break;
  }
  std::vector<std::string> file_lines;
  std::istringstream split(separated);
  for (std::string line; std::getline(split, line);) file_lines.push_back(line);
  place.kind = ControlPathPlace::Kind::kOverridden;
  if (place.line < 1 || static_cast<std::size_t>(place.line) > file_lines.size()) {
    place.line = 0;  // no block applies: what comes first is outside any
    return place;
  }
  std::string above;
  for (int i = 0; i < place.line - 1; ++i) above += file_lines[static_cast<std::size_t>(i)] + "\n";
  std::string below;
  for (std::size_t i = static_cast<std::size_t>(place.line) - 1; i < file_lines.size(); ++i) below += file_lines[i] + "\n";
  auto inserted = ControlPathWith(ssh, above + lines + below, host);
  if (!inserted) return Fail(inserted.error());
  if (inserted->empty()) return place;
  place.kind = ControlPathPlace::Kind::kAbove;
  place.block = std::string(Trim(file_lines[static_cast<std::size_t>(place.line) - 1]));
  return place;
}

}  // namespace mconnect::launcher
