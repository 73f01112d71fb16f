// Handing over to the stock mosh-client, as mosh.pl does: the key travels only in MOSH_KEY
// (mosh-client reads and unsets it), argv[1] is "-# ORIGINAL ARGS |" so `ps` stays readable.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "launcher/cli.h"

namespace mconnect::launcher {

// What this machine must offer the client, checked before the server is asked for a mosh-server
// (one started for a client that then cannot run is left waiting there). Each failure is one
// line with a hint (Error::hint).
//
// The program, as execvp would find it (a name with a slash as given, else on PATH); its path.
Result<std::string> FindClient(const std::string& client);
// Whether `path` is mosh's own mosh-client (its --version says so): only then are its needs
// below known. Another program given as --client is trusted to know its own.
bool IsMoshClient(const std::string& path);
// mosh-client's locale rule: the environment's locale (LC_ALL, else LC_CTYPE, else LANG) must be
// installed here and its character set UTF-8.
Result<void> CheckClientLocale();
// mosh-client's terminal rule: standard input must be a terminal. `host` names the destination
// in the hint.
Result<void> CheckClientTerminal(const std::string& host);

// Colour count for mosh-server's -c, from `mosh-client -c` (as mosh.pl asks it).
unsigned ClientColors(const std::string& client);

// LANG, LANGUAGE and LC_* of this process as NAME=VALUE, for mosh-server's -l.
std::vector<std::string> LocaleSettings();

// argv for mosh-client (no key in it).
std::vector<std::string> MoshClientArgv(const Options& options, const std::string& address, unsigned port);

// Replaces this process with mosh-client. Returns only on failure.
Error ExecMoshClient(const Options& options, const std::string& address, unsigned port, const std::string& key);

}  // namespace mconnect::launcher
