// The command line's tables, for cli.cc and cli_options.cc only (cli.h is the interface): every
// option with the commands that take it and what one occurrence of it does to Options, and the
// subcommands' names. cli.cc parses with them; cli_options.cc makes the help texts from them.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "launcher/cli.h"

namespace mconnect::launcher::cli {

// Which commands accept an option.
enum CommandMask : unsigned {
  kConnect = 1U << 0,
  kStatus = 1U << 1,
  kStop = 1U << 2,
  kIp = 1U << 3,
  kSshConfig = 1U << 4,
  kDoctor = 1U << 5,
  kMaster = 1U << 6,
  kAll = kConnect | kStatus | kStop | kIp | kSshConfig | kDoctor | kMaster,
};

unsigned MaskOf(Options::Command command);
// "status", "ssh-config", ...; "" for the connecting form.
std::string_view NameOf(Options::Command command);

// What one occurrence of an option does. Occurrences are applied in command-line order, so the
// last one wins (Getopt::Long's rule, which mosh.pl relies on: `--predict=never -a` is always)
// and --remote-ip / --experimental-remote-ip build the chain in the order typed. Values are
// stored raw here and checked once at the end, as mosh.pl checks the final value.
using Apply = Result<void> (*)(Options&, const std::string& value);

struct OptionSpec {
  const char* names;  // CLI11 syntax
  bool takes_value;
  unsigned commands;
  Apply apply;
};


// --help and --version are looked for before any value is applied; their apply does nothing.
constexpr const char* kHelpNames = "-h,--help";
constexpr const char* kVersionNames = "--version";

// Every option, mosh.pl's first, in the order --help lists them.
const std::vector<OptionSpec>& OptionTable();

}  // namespace mconnect::launcher::cli
