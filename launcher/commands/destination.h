// What every command that reaches a destination does first: the profile's [host.X] section
// applied to the options, and ssh's own settings for the host (`ssh -G`). Each failure carries
// the hint that fixes it.
#pragma once

#include <expected>
#include <string>
#include <string_view>

#include "base/result.h"
#include "launcher/app.h"
#include "launcher/cli.h"
#include "launcher/profile.h"
#include "launcher/ssh_config.h"

namespace mconnect::launcher {

struct Resolved {
  SshSettings ssh;
  HostProfile profile;
};

// Loads the profile (--config, else the default path), applies its section for the destination
// to `options` (command line > profile > default), and runs `ssh -G` with -4/-6 for --family.
Result<Resolved> Resolve(Options& options);

// ssh's -4 or -6 for --family=inet or inet6 (as mosh.pl passes them to ssh), else "": what every
// ssh a session runs for the destination is given.
std::string_view SshFamilyFlag(const Options& options);
// The ssh command line (--ssh) with SshFamilyFlag: what `ssh -G` runs as, so that ssh's
// AddressFamily (which the master connects over) follows.
std::string SshWithFamily(const Options& options);

// Resolve() for a session and `mconnect ip`, which print its failure and exit with the status
// it calls for: a profile error is the user's file to fix (1; 2 when --config names no file, a
// bad command line), not a failed connection; ssh's settings failing is 255, as ssh exits.
// `ssh -G`'s answer may come from the cache in the runtime directory (launcher/ssh_g_cache.h).
std::expected<Resolved, int> ResolveOrExit(Options& options);

// The hint for a failure to reach or authenticate to the destination: the doctor command with the
// options that decide what it checks (--ssh, --socket, --remote-ip, ...), ready to paste.
std::string DoctorHint(const Options& options);

}  // namespace mconnect::launcher
