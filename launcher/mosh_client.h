// Handing over to the stock mosh-client, as mosh.pl does: the key travels only in MOSH_KEY
// (mosh-client reads and unsets it), argv[1] is "-# ORIGINAL ARGS |" so `ps` stays readable.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "launcher/cli.h"

namespace mconnect::launcher {

// Colour count for mosh-server's -c, from `mosh-client -c` (as mosh.pl asks it).
unsigned ClientColors(const std::string& client);

// LANG, LANGUAGE and LC_* of this process as NAME=VALUE, for mosh-server's -l.
std::vector<std::string> LocaleSettings();

// argv for mosh-client (no key in it).
std::vector<std::string> MoshClientArgv(const Options& options, const std::string& address, unsigned port);

// Replaces this process with mosh-client. Returns only on failure.
Error ExecMoshClient(const Options& options, const std::string& address, unsigned port, const std::string& key);

}  // namespace mconnect::launcher
