#include "launcher/cli.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "base/subprocess.h"
#include "remote-ip/strategy.h"

#ifndef MCONNECT_VERSION
#define MCONNECT_VERSION "0.1.0"
#endif

namespace mconnect::launcher {
namespace {

using Command = Options::Command;

constexpr std::string_view kSeeHelp = "; see mconnect --help";

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

unsigned MaskOf(Command command) {
  switch (command) {
    case Command::kConnect: return kConnect;
    case Command::kStatus: return kStatus;
    case Command::kStop: return kStop;
    case Command::kIp: return kIp;
    case Command::kSshConfig: return kSshConfig;
    case Command::kDoctor: return kDoctor;
    case Command::kMaster: return kMaster;
  }
  return 0;
}

std::string_view NameOf(Command command) {
  switch (command) {
    case Command::kConnect: return "";
    case Command::kStatus: return "status";
    case Command::kStop: return "stop";
    case Command::kIp: return "ip";
    case Command::kSshConfig: return "ssh-config";
    case Command::kDoctor: return "doctor";
    case Command::kMaster: return "master";
  }
  return "";
}

std::string Lower(std::string_view text) {
  std::string out(text);
  std::ranges::transform(out, out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

bool IsIpLiteral(const std::string& text) {
  std::array<unsigned char, 16> buffer{};
  return inet_pton(AF_INET, text.c_str(), buffer.data()) == 1 ||
         inet_pton(AF_INET6, text.c_str(), buffer.data()) == 1;
}

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

Result<void> MapExperimentalRemoteIp(Options& o, const std::string& v) {
  static const std::map<std::string, std::string, std::less<>> kMosh{
      {"proxy", "peer"}, {"remote", "ssh-connection"}, {"local", "dns"}};
  auto found = kMosh.find(v);
  if (found == kMosh.end()) {
    return Fail("--experimental-remote-ip \"{}\" is not proxy, local or remote", v);
  }
  o.remote_ip.push_back(found->second);
  o.explicitly_set.remote_ip = true;
  return {};
}

// --help and --version are looked for before any value is applied; their apply does nothing.
constexpr const char* kHelpNames = "-h,--help";
constexpr const char* kVersionNames = "--version";

const std::vector<OptionSpec>& OptionTable() {
  static const std::vector<OptionSpec> kTable{
      // mosh.pl's options.
      {"--client", true, kConnect,
       [](Options& o, const std::string& v) -> Result<void> {
         o.client = v;
         o.explicitly_set.client = true;
         return {};
       }},
      {"--server", true, kConnect | kDoctor,
       [](Options& o, const std::string& v) -> Result<void> {
         o.server = v;
         o.explicitly_set.server = true;
         return {};
       }},
      {"--predict", true, kConnect,
       [](Options& o, const std::string& v) -> Result<void> {
         o.predict = v;
         o.explicitly_set.predict = true;
         return {};
       }},
      {"-a", false, kConnect,
       [](Options& o, const std::string&) -> Result<void> {
         o.predict = "always";
         o.explicitly_set.predict = true;
         return {};
       }},
      {"-n", false, kConnect,
       [](Options& o, const std::string&) -> Result<void> {
         o.predict = "never";
         o.explicitly_set.predict = true;
         return {};
       }},
      {"-o,--predict-overwrite", false, kConnect,
       [](Options& o, const std::string&) -> Result<void> {
         o.predict_overwrite = true;
         return {};
       }},
      {"--no-predict-overwrite", false, kConnect,
       [](Options& o, const std::string&) -> Result<void> {
         o.predict_overwrite = false;
         return {};
       }},
      {"-p,--port", true, kConnect | kDoctor,
       [](Options& o, const std::string& v) -> Result<void> {
         // Getopt::Long also takes `-p=N`, which CLI11 hands over as "=N".
         o.port_range = v.starts_with('=') ? v.substr(1) : v;
         o.explicitly_set.port_range = true;
         return {};
       }},
      {"--family", true, kConnect | kIp,
       [](Options& o, const std::string& v) -> Result<void> {
         o.family = Lower(v);  // mosh.pl lower-cases it too
         return {};
       }},
      {"-4", false, kConnect | kIp,
       [](Options& o, const std::string&) -> Result<void> {
         o.family = "inet";
         return {};
       }},
      {"-6", false, kConnect | kIp,
       [](Options& o, const std::string&) -> Result<void> {
         o.family = "inet6";
         return {};
       }},
      {"--ssh", true, kConnect | kStop | kIp | kSshConfig | kDoctor | kMaster,
       [](Options& o, const std::string& v) -> Result<void> {
         o.ssh = v;
         return {};
       }},
      {"--ssh-pty", false, kConnect,
       [](Options& o, const std::string&) -> Result<void> {
         o.ssh_pty = true;
         return {};
       }},
      {"--no-ssh-pty", false, kConnect,
       [](Options& o, const std::string&) -> Result<void> {
         o.ssh_pty = false;
         return {};
       }},
      {"--init", false, kConnect,
       [](Options& o, const std::string&) -> Result<void> {
         o.term_init = true;
         return {};
       }},
      {"--no-init", false, kConnect,
       [](Options& o, const std::string&) -> Result<void> {
         o.term_init = false;
         return {};
       }},
      {"--local", false, kConnect,
       [](Options& o, const std::string&) -> Result<void> {
         o.local = true;
         return {};
       }},
      {"--bind-server", true, kConnect | kDoctor,
       [](Options& o, const std::string& v) -> Result<void> {
         const std::string lower = Lower(v);  // mosh.pl matches ssh and any case-blind
         o.bind_server = (lower == "ssh" || lower == "any") ? lower : v;
         return {};
       }},
      {"--experimental-remote-ip", true, kConnect | kDoctor, MapExperimentalRemoteIp},
      {kHelpNames, false, kAll, [](Options&, const std::string&) -> Result<void> { return {}; }},
      {kVersionNames, false, kAll, [](Options&, const std::string&) -> Result<void> { return {}; }},

      // Ours.
      {"--remote-ip", true, kConnect | kIp | kDoctor,
       [](Options& o, const std::string& v) -> Result<void> {
         o.remote_ip.push_back(v);
         o.explicitly_set.remote_ip = true;
         return {};
       }},
      {"-v", false, kAll,
       [](Options& o, const std::string&) -> Result<void> {
         ++o.verbosity;
         return {};
       }},
      {"--persist", true, kConnect | kIp | kDoctor | kMaster,
       [](Options& o, const std::string& v) -> Result<void> {
         auto persist = ParsePersist(v);
         if (!persist) return Fail("--persist \"{}\" is not a lifetime: {}", v, persist.error().message);
         o.persist_s = *persist;
         return {};
       }},
      {"--socket", true, kConnect | kStop | kIp | kSshConfig | kDoctor | kMaster,
       [](Options& o, const std::string& v) -> Result<void> {
         o.socket_path = v;
         return {};
       }},
      {"--config", true, kAll,
       [](Options& o, const std::string& v) -> Result<void> {
         o.config_path = v;
         return {};
       }},
      {"--mux", true, kConnect | kIp | kDoctor | kMaster,
       [](Options& o, const std::string& v) -> Result<void> {
         o.mux_path = v;
         return {};
       }},
      {"--transport", true, kConnect | kDoctor,
       [](Options& o, const std::string& v) -> Result<void> {
         o.transport = Lower(v);
         o.explicitly_set.transport = true;
         return {};
       }},
      {"--probe-udp", false, kConnect,
       [](Options& o, const std::string&) -> Result<void> {
         o.probe_udp = true;
         o.explicitly_set.probe_udp = true;
         return {};
       }},
      {"--timings", false, kConnect | kIp,
       [](Options& o, const std::string&) -> Result<void> {
         o.timings = true;
         return {};
       }},
      {"--json", false, kStatus | kIp | kDoctor,
       [](Options& o, const std::string&) -> Result<void> {
         o.json = true;
         return {};
       }},
      {"--all", false, kStop,
       [](Options& o, const std::string&) -> Result<void> {
         o.stop_all = true;
         return {};
       }},
      {"--force", false, kStop,
       [](Options& o, const std::string&) -> Result<void> {
         o.force = true;
         return {};
       }},
  };
  return kTable;
}

// The longest path a Unix socket address holds (sun_path, with its terminating NUL).
constexpr std::size_t kMaxSocketPath = 107;

Result<void> CheckDestination(std::string_view destination) {
  const UserHost split = SplitDestination(destination);
  if (split.host.empty()) return Fail("\"{}\" has no host{}", destination, kSeeHelp);
  if (destination.find('@') != std::string_view::npos && split.user.empty()) {
    return Fail("\"{}\" has an empty user name", destination);
  }
  // A leading '-' would reach ssh as an option (CVE-2017-1000117 is that bug in git).
  if (split.host.front() == '-') {
    return Fail("host \"{}\" may not start with '-'", split.host);
  }
  for (const unsigned char c : destination) {
    if (std::iscntrl(c) || c == ' ' || c == '\t') {
      return Fail("destination \"{}\" contains a blank or control character", destination);
    }
  }
  return {};
}

// Checks the final values, once every occurrence has been applied.
Result<void> CheckOptions(const Options& o) {
  if (auto ok = CheckPredict(o.predict); !ok) {
    return Fail("--predict \"{}\" is not a prediction mode: {}", o.predict, ok.error().message);
  }
  if (o.explicitly_set.port_range) {
    if (auto ok = CheckPortRange(o.port_range); !ok) {
      return Fail("--port \"{}\" is not a port range: {}", o.port_range, ok.error().message);
    }
  }
  if (auto family = remoteip::ParseFamily(o.family); !family) return Fail("--{}", family.error().message);
  if (o.bind_server != "ssh" && o.bind_server != "any" && !IsIpLiteral(o.bind_server)) {
    return Fail("--bind-server \"{}\" is not ssh, any or an IP address", o.bind_server);
  }
  for (const std::string& spec : o.remote_ip) {
    if (auto ok = CheckRemoteIpSpec(spec); !ok) {
      return Fail("--remote-ip: {}", ok.error().message);
    }
  }
  if (o.transport != "udp" && o.transport != "ssh" && o.transport != "auto") {
    return Fail("--transport \"{}\" is not udp, ssh or auto", o.transport);
  }
  if (o.client.empty()) return Fail("--client needs a program");
  if (o.server.empty()) return Fail("--server needs a command");
  if (o.socket_path.size() > kMaxSocketPath) {
    return Fail("--socket path is {} bytes; a Unix socket path holds at most {}", o.socket_path.size(),
                kMaxSocketPath);
  }
  return {};
}

// What a subcommand's --help says about each option it accepts. The list of options comes from
// OptionTable's masks, so a subcommand's help cannot disagree with what it parses.
struct OptionHelp {
  const char* value;  // "COMMAND" for --ssh=COMMAND; nullptr for a flag
  const char* text;
};

const std::map<std::string_view, OptionHelp>& SubcommandOptionHelp() {
  static const std::map<std::string_view, OptionHelp> kHelp{
      {"--server", {"COMMAND", "mosh-server on the remote machine (default: \"mosh-server\")"}},
      {"-p,--port", {"PORT[:PORT2]", "server-side UDP port or range"}},
      {"--bind-server", {"{ssh|any|IP}", "ask the server to reply from an IP address"}},
      {"--ssh", {"COMMAND", "ssh command whose settings (ssh -G) are used (default: \"ssh\")"}},
      {"--experimental-remote-ip", {"(local|remote|proxy)", "same as --remote-ip=dns, ssh-connection, peer"}},
      {kHelpNames, {nullptr, "this message"}},
      {kVersionNames, {nullptr, "version information"}},
      {"--remote-ip", {"STRATEGY", "a remote-ip strategy; repeat for a fallback chain"}},
      {"-v", {nullptr, "more detail on stderr (repeat for more)"}},
      {"--persist", {"{SECONDS|yes|no}", "seconds with nothing open before the master exits; yes or 0: never; no: at once"}},
      {"--socket", {"PATH", "the master's socket (default: from the profile)"}},
      {"--config", {"FILE", "profile (default: ~/.config/mconnect/config.toml)"}},
      {"--mux", {"PATH", "the mconnect-mux program to start"}},
      {"--timings", {nullptr, "print how long each step took"}},
      {"--transport", {"{udp|ssh|auto}", "how mosh's datagrams travel (default: auto)"}},
      {"--json", {nullptr, "print JSON instead of a table, for scripts"}},
      {"--all", {nullptr, "stop every master"}},
      {"--force", {nullptr, "end the master's sessions and forwards without asking"}},
  };
  return kHelp;
}

struct SubcommandInfo {
  const char* arguments;  // after "mconnect NAME [options]"
  const char* summary;
};

SubcommandInfo InfoOf(Command command) {
  switch (command) {
    case Command::kConnect: break;
    case Command::kStatus: return {"", "List the running masters: destination, pid, uptime, channels, clients, bytes,\n"
                                       "the last remote-ip answer with its age, and the socket."};
    case Command::kStop:
      return {" [--force] [--all | [user@]host | user@host:port | pid]",
              "Stop a master: named as you typed it, as `mconnect status` shows it, or by its pid.\n"
              "With sessions or forwards open it asks on a terminal first; without a terminal (or\n"
              "when told no) it stops as `ssh -O stop` does: no new clients, and it exits once the\n"
              "last of them has ended. --force ends them now. A master that does not answer (a\n"
              "stopped process) is ended by its pid: SIGTERM, then SIGKILL."};
    case Command::kIp: return {" [user@]host", "Ask every remote-ip strategy of the chain for the server's address."};
    case Command::kSshConfig:
      return {" [user@]host", "Print the ~/.ssh/config lines that make plain `ssh host` (scp, rsync, git)\n"
                              "use host's master."};
    case Command::kDoctor:
      return {" [user@]host", "Check, in order, each step to a working mosh session and say what to fix:\n"
                              "ssh settings, TCP, host key, authentication, master, mosh-server on the\n"
                              "PATH, the server's UTF-8 locale, remote-ip answers, the UDP probe, and\n"
                              "the SSH relay when UDP does not pass."};
    case Command::kMaster:
      return {" [user@]host", "Start the master for host (or use the running one) and stay in the\n"
                              "foreground until it exits, as a systemd service does. --persist\n"
                              "defaults to yes (never idle out)."};
  }
  return {"", ""};
}

// "--predict: 1 required TEXT missing" -> "--predict".
std::string OptionNameOf(const CLI::Error& error) {
  std::string_view what = error.what();
  return std::string(what.substr(0, what.find(':')));
}

}  // namespace

std::string UsageText() {
  return R"(Usage: mconnect [options] [--] [user@]host [command...]
       mconnect status [--json]
       mconnect stop [--force] [--ssh=COMMAND] [user@]host | --all
       mconnect ip [--json] [--remote-ip=STRATEGY]... [user@]host
       mconnect ssh-config [--ssh=COMMAND] [user@]host
       mconnect doctor [--json] [options] [user@]host
       mconnect master [options] [user@]host

mosh's options, with mosh's meanings:
        --client=PATH        mosh client on local machine
                                (default: "mosh-client")
        --server=COMMAND     mosh server on remote machine
                                (default: "mosh-server")

        --predict=adaptive      local echo for slower links [default]
-a      --predict=always        use local echo even on fast links
-n      --predict=never         never use local echo
        --predict=experimental  aggressively echo even when incorrect

-o      --predict-overwrite     prediction overwrites instead of inserting
        --no-predict-overwrite  prediction inserts [default]

-4      --family=inet        use IPv4 only
-6      --family=inet6       use IPv6 only
        --family=auto        autodetect network type for single-family hosts only
        --family=all         try all network types
        --family=prefer-inet use all network types, but try IPv4 first [default]
        --family=prefer-inet6 use all network types, but try IPv6 first
-p PORT[:PORT2]
        --port=PORT[:PORT2]  server-side UDP port or range
                                (No effect on server-side SSH port)
        --bind-server={ssh|any|IP}  ask the server to reply from an IP address
                                       (default: "ssh")

        --ssh=COMMAND        ssh command to run when setting up session
                                (example: "ssh -p 2222")
                                (default: "ssh")

        --no-ssh-pty         do not allocate a pseudo tty on ssh connection
        --ssh-pty            allocate one (accepted; mosh-server needs none)

        --no-init            do not send terminal initialization string
        --init               send it [default]

        --local              run mosh-server locally without using ssh

        --experimental-remote-ip=(local|remote|proxy)  same as --remote-ip=dns,
                             --remote-ip=ssh-connection, --remote-ip=peer

-h      --help               this message
        --version            version information

mconnect's options:
        --remote-ip=STRATEGY how to find the address where the server's mosh port
                             is reachable; repeat for a fallback chain, first
                             valid answer wins (default: the profile's, else
                             peer, dns):
                               command:CMD  run CMD on the server, e.g.
                                            "command:curl -sS https://ipinfo.io/ip"
                               peer         the address the SSH connection reached
                               ssh-connection  $SSH_CONNECTION on the server
                               dns          resolve the host name on this machine
                               static:IP    this address
        --persist={SECONDS|yes|no}  how long the SSH master stays with nothing
                             open, as ssh's ControlPersist: SECONDS, yes (or 0:
                             until stopped) or no (exit as soon as the last
                             client has gone) (default: the profile's, else 600)
        --socket=PATH        the master's socket (default: from the profile)
        --config=FILE        profile (default: ~/.config/mconnect/config.toml)
        --mux=PATH           the mconnect-mux program to start
        --transport={udp|ssh|auto}  how mosh's datagrams travel: udp (mosh as
                             designed), ssh (over the master, for networks that
                             block UDP and servers with no open port), auto (udp
                             when mosh-server answers a UDP probe, else ssh)
                             (default: the profile's, else auto)
        --probe-udp          use the first remote-ip answer where a throwaway
                             mosh-server really answers over UDP
        --timings            print how long each step took
-v                           more detail on stderr (repeat for more)

Subcommands (only as the first argument):
        status [--json]      list the running masters
        stop HOST            stop HOST's master
        ip HOST [--json]     show the addresses each remote-ip strategy finds
        doctor HOST [--json] check each step to a working mosh session, and what
                             to fix: settings, TCP, host key, authentication,
                             master, mosh-server, locale, addresses, UDP
        master HOST          start or reuse HOST's master and stay in the
                             foreground until it exits (for a systemd unit)
        ssh-config HOST      print the ~/.ssh/config lines that make plain
                             `ssh HOST` (scp, rsync, git) use HOST's master

Options after the host are still options, as in mosh: a remote command with
options of its own goes after --, as in "mconnect bebou -- ls -l".
A host named like a subcommand is reached with "mconnect -- status".
"mconnect SUBCOMMAND --help" lists the options each subcommand takes.

Exit status: 0 on success, 255 when the connection or authentication failed
(as ssh), 2 for a bad command line, 1 for any other failure. Once a session
runs, the status is mosh-client's: 0 whatever the remote command returned, as
with mosh.
)";
}

std::string CommandLineFor(Options::Command command, const Options& options, std::string_view flags) {
  const std::vector<std::string> accepted = OptionNames(command);
  std::string line = fmt::format("mconnect{}{}{}{}", command == Command::kConnect ? "" : " ", NameOf(command),
                                 flags.empty() ? "" : " ", flags);
  auto add = [&](std::string_view name, std::string_view value) {
    if (std::ranges::find(accepted, name) != accepted.end()) line += fmt::format(" {}={}", name, ShellQuote(value));
  };
  if (options.ssh != "ssh") add("--ssh", options.ssh);
  if (!options.config_path.empty()) add("--config", options.config_path);
  if (!options.socket_path.empty()) add("--socket", options.socket_path);
  if (!options.mux_path.empty()) add("--mux", options.mux_path);
  if (options.explicitly_set.server) add("--server", options.server);
  if (options.explicitly_set.port_range) add("--port", options.port_range);
  if (options.bind_server != "ssh") add("--bind-server", options.bind_server);
  if (options.explicitly_set.remote_ip) {
    for (const std::string& spec : options.remote_ip) add("--remote-ip", spec);
  }
  if (options.explicitly_set.transport) add("--transport", options.transport);
  if (options.family != "prefer-inet") add("--family", options.family);
  // A host named like a subcommand is a host only after "--" (cli.h).
  static constexpr std::array<std::string_view, 6> kNames{"status", "stop", "ip", "ssh-config", "doctor", "master"};
  const bool ambiguous = command == Command::kConnect && std::ranges::find(kNames, options.destination) != kNames.end();
  return line + (ambiguous ? " -- " : " ") + ShellQuote(options.destination);
}

std::vector<std::string> OptionNames(Options::Command command) {
  std::vector<std::string> names;
  for (const OptionSpec& spec : OptionTable()) {
    if ((spec.commands & MaskOf(command)) == 0) continue;
    std::string_view all = spec.names;
    for (std::size_t comma; (comma = all.find(',')) != std::string_view::npos; all.remove_prefix(comma + 1)) {
      names.emplace_back(all.substr(0, comma));
    }
    names.emplace_back(all);
  }
  return names;
}

std::string CommandUsageText(Options::Command command) {
  if (command == Command::kConnect) return UsageText();
  const SubcommandInfo info = InfoOf(command);
  std::string text = fmt::format("Usage: mconnect {} [options]{}\n\n{}\n\nOptions:\n", NameOf(command),
                                 info.arguments, info.summary);
  for (const OptionSpec& spec : OptionTable()) {
    if ((spec.commands & MaskOf(command)) == 0) continue;
    // An option without a SubcommandOptionHelp entry still shows (VALUE for one that takes a
    // value); tests/ux/man_page_test.cc then fails until the man page lists it too.
    auto found = SubcommandOptionHelp().find(spec.names);
    const OptionHelp help = found != SubcommandOptionHelp().end()
                                ? found->second
                                : OptionHelp{spec.takes_value ? "VALUE" : nullptr, ""};
    std::string names = spec.names;  // CLI11's "-p,--port" reads "-p, --port" here
    if (auto comma = names.find(','); comma != std::string::npos) names.insert(comma + 1, " ");
    if (help.value != nullptr) names += fmt::format("={}", help.value);
    text += fmt::format("  {:<30} {}\n", names, help.text);
  }
  return text;
}

Result<CommandLine> ParseCommandLine(int argc, const char* const* argv) {
  Options options;
  for (int i = 1; i < argc; ++i) options.original_args.emplace_back(argv[i]);

  std::vector<std::string> args = options.original_args;
  static const std::map<std::string, Command, std::less<>> kSubcommands{
      {"status", Command::kStatus}, {"stop", Command::kStop}, {"ip", Command::kIp},
      {"ssh-config", Command::kSshConfig}, {"doctor", Command::kDoctor}, {"master", Command::kMaster}};
  if (!args.empty()) {
    if (auto found = kSubcommands.find(args.front()); found != kSubcommands.end()) {
      options.command = found->second;
      args.erase(args.begin());
    }
  }
  const unsigned mask = MaskOf(options.command);
  const std::string where =
      options.command == Command::kConnect ? "" : fmt::format(" for mconnect {}", NameOf(options.command));

  // CLI11 only tokenises: every option takes each occurrence (TakeAll), unknown words are
  // collected (allow_extras) so that we can name them, and we apply the occurrences ourselves.
  CLI::App app;
  app.set_help_flag();
  app.allow_extras();
  std::map<const CLI::Option*, const OptionSpec*> spec_of;
  const CLI::Option* help = nullptr;
  const CLI::Option* version = nullptr;
  for (const OptionSpec& spec : OptionTable()) {
    if ((spec.commands & mask) == 0) continue;
    CLI::Option* option = spec.takes_value ? app.add_option(spec.names) : app.add_flag(spec.names);
    option->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    spec_of[option] = &spec;
    if (spec.names == kHelpNames) help = option;
    if (spec.names == kVersionNames) version = option;
  }
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 pops from the back
  try {
    app.parse(std::move(reversed));
  } catch (const CLI::ArgumentMismatch& error) {
    return Fail("option {} needs a value{}", OptionNameOf(error), kSeeHelp);
  } catch (const CLI::ParseError& error) {
    return Fail("{}{}", error.what(), kSeeHelp);
  }

  // Every word that is not an option or an option's value, in order, including the first "--"
  // (the later ones are plain words). The host and the command are taken from here rather than
  // from a CLI11 positional, which would split a word like "[a,b]" into a list.
  std::vector<std::string> positionals;
  bool options_ended = false;
  for (const std::string& word : app.remaining()) {
    if (!options_ended && word == "--") {
      options_ended = true;
      continue;
    }
    if (!options_ended && word.size() > 1 && word.front() == '-') {
      // After the host, the option was most likely meant for the remote command.
      const bool after_host = options.command == Command::kConnect && !positionals.empty();
      return Fail("unknown option {}{}{}{}", word.substr(0, word.find('=')), where,
                  after_host ? " (a remote command's options go after --: mconnect HOST -- COMMAND ARGS)" : "",
                  kSeeHelp);
    }
    positionals.push_back(word);
  }

  if (help != nullptr && help->count() > 0) return Exit{0, CommandUsageText(options.command)};
  if (version != nullptr && version->count() > 0) {
    return Exit{0, "mconnect " MCONNECT_VERSION "\n"};
  }

  // Replay the occurrences in the order they were typed.
  std::map<const CLI::Option*, std::size_t> next_result;
  for (const CLI::Option* option : app.parse_order()) {
    auto spec = spec_of.find(option);
    MCONNECT_CHECK(spec != spec_of.end());
    const std::vector<std::string>& results = option->results();
    std::size_t& index = next_result[option];
    MCONNECT_CHECK(index < results.size());
    const std::string& value = results[index++];
    // CLI11 lets `--flag=VALUE` through with VALUE as the result; Getopt::Long refuses it, and
    // silently reading `--ssh-pty=false` as --ssh-pty would be worse.
    if (!spec->second->takes_value && value != "true") {
      return Fail("option {} takes no value{}", option->get_name(), kSeeHelp);
    }
    if (auto ok = spec->second->apply(options, value); !ok) return Fail(ok.error());
  }

  switch (options.command) {
    case Command::kConnect:
      if (positionals.empty()) return Fail("missing host{}", kSeeHelp);
      options.destination = positionals.front();
      options.remote_command.assign(positionals.begin() + 1, positionals.end());
      break;
    case Command::kStatus:
      if (!positionals.empty()) {
        return Fail("status takes no host (\"{}\"){}", positionals.front(), kSeeHelp);
      }
      break;
    case Command::kStop:
      if (options.stop_all) {
        if (!positionals.empty()) return Fail("stop --all takes no host (\"{}\"){}", positionals.front(), kSeeHelp);
        break;
      }
      [[fallthrough]];
    case Command::kIp:
    case Command::kSshConfig:
    case Command::kDoctor:
    case Command::kMaster:
      if (positionals.size() != 1) {
        return Fail("{} takes exactly one [user@]host{}", NameOf(options.command), kSeeHelp);
      }
      options.destination = positionals.front();
      break;
  }
  if (options.command != Command::kStatus && !options.stop_all) {
    if (auto ok = CheckDestination(options.destination); !ok) return Fail(ok.error());
  }

  auto words = SplitShellWords(options.ssh);
  if (!words) return Fail("--ssh \"{}\": {}", options.ssh, words.error().message);
  if (words->empty()) return Fail("--ssh needs a command");
  options.ssh_argv = std::move(*words);

  if (auto ok = CheckOptions(options); !ok) return Fail(ok.error());
  return options;
}

Result<void> ApplyPredictionEnvironment(Options& options, const char* value) {
  if (options.explicitly_set.predict || value == nullptr) return {};
  if (auto ok = CheckPredict(value); !ok) {
    return Fail("MOSH_PREDICTION_DISPLAY \"{}\" (in the environment) is not a prediction mode: {}", value,
                ok.error().message);
  }
  options.predict = value;
  options.explicitly_set.predict = true;
  return {};
}

UserHost SplitDestination(std::string_view destination) {
  const std::size_t at = destination.rfind('@');
  if (at == std::string_view::npos) return {"", std::string(destination)};
  return {std::string(destination.substr(0, at)), std::string(destination.substr(at + 1))};
}

Result<void> CheckPortRange(std::string_view range) {
  // Parses one port: digits only (no sign, no blank), at most 65535.
  auto port = [](std::string_view text) -> Result<int> {
    if (text.empty() || !std::ranges::all_of(text, [](char c) { return c >= '0' && c <= '9'; })) {
      return Fail("\"{}\" is not a number", text);
    }
    int value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc{} || end != text.data() + text.size() || value > 65535) {
      return Fail("{} is above 65535", text);
    }
    return value;
  };
  const std::size_t colon = range.find(':');
  if (colon == std::string_view::npos) {
    auto single = port(range);
    if (!single) return Fail(single.error());
    return {};
  }
  auto low = port(range.substr(0, colon));
  if (!low) return Fail(low.error());
  auto high = port(range.substr(colon + 1));
  if (!high) return Fail(high.error());
  if (*low == 0) return Fail("a range cannot start at port 0");
  if (*low > *high) return Fail("the low port is greater than the high port");
  return {};
}

Result<void> CheckRemoteIpSpec(std::string_view spec) {
  // One grammar, the one the master runs: remote-ip/strategy.h.
  auto strategy = remoteip::ParseStrategy(spec);
  if (!strategy) return Fail(strategy.error());
  return {};
}

Result<int> ParsePersist(std::string_view text) {
  if (text == "yes") return kPersistForever;
  if (text == "no") return kPersistNo;
  int seconds = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), seconds);
  if (text.empty() || error != std::errc{} || end != text.data() + text.size() || seconds < 0) {
    return Fail("expected yes, no or a number of seconds (0 or more)");
  }
  return seconds;
}

Result<void> CheckPredict(std::string_view mode) {
  if (mode == "adaptive" || mode == "always" || mode == "never" || mode == "experimental") return {};
  return Fail("expected adaptive, always, never or experimental");
}

Result<std::vector<std::string>> SplitShellWords(std::string_view command) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  for (std::size_t i = 0; i < command.size(); ++i) {
    const char c = command[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
      continue;
    }
    in_word = true;
    if (c == '\\') {
      if (++i == command.size()) return Fail("ends with a lone backslash");
      word += command[i];
    } else if (c == '\'') {
      const std::size_t close = command.find('\'', i + 1);
      if (close == std::string_view::npos) return Fail("unbalanced '");
      word.append(command.substr(i + 1, close - i - 1));
      i = close;
    } else if (c == '"') {
      for (++i;; ++i) {
        if (i == command.size()) return Fail("unbalanced \"");
        if (command[i] == '"') break;
        if (command[i] == '\\' && i + 1 < command.size()) ++i;
        word += command[i];
      }
    } else {
      word += c;
    }
  }
  if (in_word) words.push_back(std::move(word));
  return words;
}

}  // namespace mconnect::launcher
