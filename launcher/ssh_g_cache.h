// `ssh -G`'s answer, kept in mconnect's runtime directory so that a warm start does not fork ssh
// (about 25 ms of a start that is otherwise a few ms of the launcher's own).
//
// An answer is used again only while everything it came from is as it was:
//  - the ssh command line and the host (the key's text), the ssh program itself (its path on
//    PATH, inode, size and mtime: an upgrade changes the defaults it prints), the local host
//    name, and the environment variables ssh reads or the config expands (HOME, USER, LOGNAME,
//    SSH_AUTH_SOCK and every ${NAME} in the files read);
//  - every config file ssh read, as `ssh -v -G` names them ("Reading configuration data"), by
//    device, inode, size, mtime and ctime; the default files it would read had they been there
//    (~/.ssh/config, /etc/ssh/ssh_config), as absent;
//  - the directories of every Include pattern, by mtime and ctime, so that a file added to or
//    removed from a conf.d/ is noticed.
// Some configurations depend on more than files and are never kept: `Match exec` (a command's
// exit status), `Match localnetwork` (the network), `CanonicalizeHostname` (DNS), an Include
// with a wildcard above its last component. So is an ssh command that the shell would do more
// with than split on blanks (quotes, $, ~, globs, redirections): its meaning is the shell's.
//
// Entries are files of their own (0600, written whole and renamed into place) named by a SHA-256
// of the key; a damaged or foreign entry is a miss, never an error.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mconnect::launcher {

// Whether `ssh -G` through this command may be kept: the command is ssh (by name on PATH or an
// absolute path ending in /ssh) and options made only of characters the shell leaves alone.
bool SshCommandCacheable(std::string_view ssh_command);

// What ssh read, from the stderr of `ssh -v -G`, in order, each once.
std::vector<std::string> ConfigFilesRead(std::string_view verbose_stderr);

class SshGCache {
 public:
  // Entries live in `directory` (created by the caller: the runtime directory's ssh-G/).
  explicit SshGCache(std::string directory) : directory_(std::move(directory)) {}

  // The output kept for `ssh_command -G host`, if there is one and nothing it came from changed.
  std::optional<std::string> Find(std::string_view ssh_command, std::string_view host) const;

  // Keeps `output` (stdout of a successful `ssh_command -v -G host` started at `started`, whose
  // stderr is `verbose_stderr`) unless the configuration it came from cannot be kept (see above)
  // or a file it read changed since `started`. Returns whether it was kept; failing to write is
  // not an error (the next start runs ssh again).
  bool Keep(std::string_view ssh_command, std::string_view host, std::string_view output,
            std::string_view verbose_stderr, std::chrono::system_clock::time_point started) const;

 private:
  std::string directory_;
};

}  // namespace mconnect::launcher
