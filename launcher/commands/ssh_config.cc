// `mconnect ssh-config HOST`: the ~/.ssh/config lines that make plain `ssh HOST` (scp, rsync,
// git) use mconnect's master, and where in the user's file they must go to take effect.
#include <cstdio>
#include <string>

#include <fmt/format.h>

#include "base/log.h"
#include "base/terminal.h"
#include "launcher/app.h"
#include "launcher/commands/destination.h"
#include "launcher/control_path_place.h"
#include "launcher/ssh_config.h"
#include "proto/socket_path.h"

namespace mconnect::launcher {
namespace {

// The same name the master uses (USER@HOST:PORT.sock), written with ssh's own tokens so the
// lines stay right if HostName, User or Port change. With --socket, that path ('%' doubled: ssh
// expands tokens in ControlPath).
std::string ControlPathFor(const Options& options, const HostProfile& profile) {
  if (!options.socket_path.empty()) {
    std::string path;
    for (char c : options.socket_path) path += c == '%' ? std::string("%%") : std::string(1, c);
    return path;
  }
  std::string directory = profile.socket_dir.empty() ? proto::DefaultRuntimeDir() : profile.socket_dir;
  return directory + "/%r@%h:%p.sock";
}

// Prints the lines where `place` says they take effect; returns the exit status.
int PrintLines(const ControlPathPlace& place, const std::string& host, const std::string& lines) {
  const std::string uses = fmt::format(
      "plain `ssh {}` (and scp, rsync, git) then use mconnect's master\n"
      "# when one is running, and connect as usual when none is.",
      host);
  switch (place.kind) {
    case ControlPathPlace::Kind::kAppend:
      std::printf("# Add to %s: %s\n%s", place.file.c_str(), uses.c_str(), lines.c_str());
      return 0;
    case ControlPathPlace::Kind::kAbove:
      std::printf(
          "# Put these lines in %s above line %d (`%s`, the first block there that applies to %s):\n"
          "# ssh keeps the first ControlPath it reads, and one read before the end of the file\n"
          "# (`ControlPath none` counts) would win over them. There, %s\n%s",
          place.file.c_str(), place.line, place.block.c_str(), host.c_str(), uses.c_str(), lines.c_str());
      return 0;
    case ControlPathPlace::Kind::kOverridden:
      term::PrintFailure(
          "mconnect",
          Error{fmt::format(
                    "{} sets ControlPath for every host {}, outside any Host or Match block, and ssh keeps the "
                    "first value it reads: no lines for {} can change it",
                    place.file,
                    place.line > 0 ? fmt::format("above line {}", place.line) : std::string("before any block for it"),
                    host),
                "edit that ControlPath line, or move it into a `Host *` block at the end of the file"});
      return 1;
  }
  return 0;
}

}  // namespace

int RunSshConfig(const Options& options) {
  Options resolved_options = options;
  auto resolved = Resolve(resolved_options);
  if (!resolved) {
    term::PrintFailure("mconnect", resolved.error());
    return kExitConnectionFailed;
  }
  const SshSettings& ssh = resolved->ssh;
  if (!ssh.control_path.empty() && options.socket_path.empty()) {
    auto path = ExpandControlPath(ssh.control_path, ssh);
    std::printf("# %s already has ControlPath %s;\n# mconnect's master listens there, so plain `ssh %s` uses it.\n",
                ssh.host_alias.c_str(), path ? path->c_str() : ssh.control_path.c_str(), ssh.host_alias.c_str());
    return 0;
  }
  const std::string& host = ssh.host_alias;
  const std::string lines = fmt::format("Host {}\n    ControlPath {}\n    ControlMaster no\n", host,
                                        ControlPathFor(options, resolved->profile));
  // ssh keeps the first ControlPath it reads: appended, the lines may come too late.
  auto place = PlaceControlPathLines(ssh, options.ssh_argv, lines);
  if (!place) {
    log::Debug("cannot tell where the lines take effect: {}", place.error().message);
    place = ControlPathPlace{ControlPathPlace::Kind::kAppend, "~/.ssh/config", 0, ""};
  }
  return PrintLines(*place, host, lines);
}

}  // namespace mconnect::launcher
