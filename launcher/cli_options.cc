#include "launcher/cli_options.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "base/subprocess.h"

namespace mconnect::launcher {
namespace cli {
namespace {

using Command = Options::Command;

// The table's usual rows: a flag set to `Value`; the value taken as it is; the same, marked as
// given on the command line (so that the profile does not override it).
template <auto Field, bool Value>
Result<void> Flag(Options& o, const std::string&) {
  o.*Field = Value;
  return {};
}
template <auto Field>
Result<void> Take(Options& o, const std::string& v) {
  o.*Field = v;
  return {};
}
template <auto Field, auto Given>
Result<void> TakeExplicit(Options& o, const std::string& v) {
  o.*Field = v;
  o.explicitly_set.*Given = true;
  return {};
}


std::string Lower(std::string_view text) {
  std::string out(text);
  std::ranges::transform(out, out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

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

}  // namespace

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

const std::vector<OptionSpec>& OptionTable() {
  static const std::vector<OptionSpec> kTable{
      // mosh.pl's options.
      {"--client", true, kConnect, TakeExplicit<&Options::client, &Options::Explicit::client>},
      {"--server", true, kConnect | kDoctor, TakeExplicit<&Options::server, &Options::Explicit::server>},
      {"--predict", true, kConnect, TakeExplicit<&Options::predict, &Options::Explicit::predict>},
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
      {"-o,--predict-overwrite", false, kConnect, Flag<&Options::predict_overwrite, true>},
      {"--no-predict-overwrite", false, kConnect, Flag<&Options::predict_overwrite, false>},
      {"-p,--port", true, kConnect | kDoctor,
       [](Options& o, const std::string& v) -> Result<void> {
         // Getopt::Long also takes `-p=N`, which CLI11 hands over as "=N".
         o.port_range = v.starts_with('=') ? v.substr(1) : v;
         o.explicitly_set.port_range = true;
         return {};
       }},
      {"--family", true, kConnect | kIp | kDoctor,
       [](Options& o, const std::string& v) -> Result<void> {
         o.family = Lower(v);  // mosh.pl lower-cases it too
         return {};
       }},
      {"-4", false, kConnect | kIp | kDoctor,
       [](Options& o, const std::string&) -> Result<void> {
         o.family = "inet";
         return {};
       }},
      {"-6", false, kConnect | kIp | kDoctor,
       [](Options& o, const std::string&) -> Result<void> {
         o.family = "inet6";
         return {};
       }},
      {"--ssh", true, kConnect | kStop | kIp | kSshConfig | kDoctor | kMaster, Take<&Options::ssh>},
      {"--ssh-pty", false, kConnect, Flag<&Options::ssh_pty, true>},
      {"--no-ssh-pty", false, kConnect, Flag<&Options::ssh_pty, false>},
      {"--init", false, kConnect, Flag<&Options::term_init, true>},
      {"--no-init", false, kConnect, Flag<&Options::term_init, false>},
      {"--local", false, kConnect, Flag<&Options::local, true>},
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
      {"--socket", true, kConnect | kStop | kIp | kSshConfig | kDoctor | kMaster, Take<&Options::socket_path>},
      {"--config", true, kAll, Take<&Options::config_path>},
      {"--mux", true, kConnect | kIp | kDoctor | kMaster, Take<&Options::mux_path>},
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
      {"--timings", false, kConnect | kIp, Flag<&Options::timings, true>},
      {"--json", false, kStatus | kIp | kDoctor, Flag<&Options::json, true>},
      {"--all", false, kStop, Flag<&Options::stop_all, true>},
      {"--force", false, kStop, Flag<&Options::force, true>},
  };
  return kTable;
}

}  // namespace cli

namespace {

using Command = Options::Command;
using cli::MaskOf;
using cli::NameOf;
using cli::OptionSpec;
using cli::OptionTable;

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
      {cli::kHelpNames, {nullptr, "this message"}},
      {cli::kVersionNames, {nullptr, "version information"}},
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

}  // namespace mconnect::launcher
