// The `mconnect` command line: mosh.pl's options with mosh's meanings, then ours (long options
// only, plus -v), then the subcommands.
//
//   mconnect [options] [--] [user@]host [command...]
//   mconnect status [--json]
//   mconnect stop [--ssh=COMMAND] [user@]host
//   mconnect ip [--json] [--remote-ip=STRATEGY]... [user@]host
//   mconnect ssh-config [--ssh=COMMAND] [user@]host
//   mconnect doctor [--json] [options] [user@]host
//   mconnect master [options] [user@]host
//
// A subcommand is recognised only as the very first argument, so a host that happens to be
// called `status`, `stop` or `ip` stays reachable: `mconnect -- status` (or any option before
// it, `mconnect -4 status`) connects to the host `status`.
//
// Option parsing follows mosh.pl's Getopt::Long defaults where a user could notice: options may
// come after the host too (`mconnect bebou --predict=never`), `--` ends them, every word after the
// host is the remote command, and a repeated option's last occurrence wins. So a remote command
// that has options of its own goes after `--`: `mconnect bebou -- ls -l`. Not reproduced:
// Getopt::Long's unique-prefix abbreviations (`--pred=never`), single-dash long options
// (`-predict=never`) and mosh.pl's internal `--fake-proxy`; `-v` is our verbosity, not an
// abbreviation of `--version`.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/result.h"

namespace mconnect::launcher {

struct Options {
  enum class Command { kConnect, kStatus, kStop, kIp, kSshConfig, kDoctor, kMaster };
  Command command = Command::kConnect;

  std::string destination;                  // [user@]host as typed (kConnect, kStop, kIp)
  std::vector<std::string> remote_command;  // words after the host; empty = login shell

  // mosh.pl's options, with mosh's defaults.
  std::string client = "mosh-client";  // --client=PATH
  std::string server = "mosh-server";  // --server=COMMAND, run by the remote shell
  std::string predict = "adaptive";    // --predict, -a, -n; becomes MOSH_PREDICTION_DISPLAY
  bool predict_overwrite = false;      // -o: MOSH_PREDICTION_OVERWRITE=yes for mosh-client
  std::string port_range;              // -p: "N" or "N:M"; empty = mosh-server's 60001:60999
  std::string family = "prefer-inet";  // --family, -4, -6 (lower case, validated)
  std::string ssh = "ssh";             // --ssh=COMMAND as typed...
  std::vector<std::string> ssh_argv = {"ssh"};  // ...and split into words as mosh.pl's shellwords
  bool ssh_pty = true;                 // --[no-]ssh-pty
  bool term_init = true;               // --[no-]init; false = MOSH_NO_TERM_INIT=1 for mosh-client
  // --local: no SSH at all; mosh-server runs on this machine and mosh-client is pointed at the
  // destination as typed (mosh.pl prints it as the MOSH IP). With --bind-server=ssh (the default)
  // mosh-server is then told `-i HOST` instead of `-s`, exactly as mosh.pl does.
  bool local = false;
  // --bind-server: "ssh" (mosh-server -s: reply from the address the SSH connection reached),
  // "any" (no flag), or an IP literal (mosh-server -i IP). "ssh"/"any" are stored lower case.
  std::string bind_server = "ssh";

  // The remote-ip strategy chain (first valid answer wins), in command-line order, from
  // --remote-ip and from mosh's --experimental-remote-ip, which maps onto the strategy that does
  // what mosh's mode does: proxy -> peer (the address our own TCP connection reached; mosh gets
  // it from its ProxyCommand), remote -> ssh-connection ($SSH_CONNECTION on the server),
  // local -> dns (resolve the host on this machine; mosh.pl also points ssh at that address,
  // which we need not: the master's connection is already made). Each occurrence of either
  // option appends one strategy. Empty = the profile's chain.
  std::vector<std::string> remote_ip;

  // Ours.
  int verbosity = 0;              // -v, repeatable
  std::optional<int> persist_s;   // --persist: the master's idle lifetime (kPersist* below)
  std::string socket_path;        // --socket PATH: the master's socket; empty = computed
  std::string config_path;        // --config FILE: the profile; empty = DefaultProfilePath()
  std::string mux_path;           // --mux PATH: the mconnect-mux executable (tests)
  bool json = false;              // --json (status, ip, doctor)
  bool stop_all = false;          // stop --all: every master
  bool force = false;             // stop --force: end its sessions and forwards without asking
  // `mconnect master`: a master that must be started becomes this process and stays in the
  // foreground (MasterConfig.foreground) instead of detaching.
  bool foreground_master = false;
  bool timings = false;           // --timings: print how long each step took
  // --probe-udp: before connecting, ask every remote-ip strategy and use the first address at
  // which a throwaway mosh-server answers over UDP (instead of the chain's first answer).
  bool probe_udp = false;
  // --transport: how mosh's datagrams travel; udp, ssh or auto (lower case, validated).
  std::string transport = "auto";

  // Every argument after argv[0], for mosh-client's `-# ARGS |` argv (keeps `ps` readable).
  std::vector<std::string> original_args;

  // Which profile-backed fields the user chose, so that ApplyProfile fills only the others
  // (command line > profile > built-in default). persist_s says so by having a value.
  struct Explicit {
    bool client = false;
    bool server = false;
    bool predict = false;  // also set by ApplyPredictionEnvironment
    bool port_range = false;
    bool remote_ip = false;
    bool probe_udp = false;
    bool transport = false;
  } explicitly_set;
};

// The master's lifetime once nothing is open, with OpenSSH's ControlPersist meanings: `yes` or 0
// stays until stopped, `no` exits as soon as the last client has gone, N > 0 exits after N idle
// seconds. Options::persist_s and HostProfile::persist_s hold it as an int, and the launcher hands
// that int to the master as MasterConfig.persist_s.
inline constexpr int kPersistForever = 0;  // yes
inline constexpr int kPersistNo = -1;      // no
// "yes", "no" or a number of seconds (0 or more) -> the int above. The error is a short reason.
Result<int> ParsePersist(std::string_view text);

// --help and --version: print `text` on stdout and exit with `code`; nothing else happens.
struct Exit {
  int code = 0;
  std::string text;
};

using CommandLine = std::variant<Options, Exit>;

// Parses argv (argv[0] is the program name). The error is one line without the program name,
// ending in "; see mconnect --help" where that helps; main prints it as "mconnect: MESSAGE".
// Unknown options are reported before --help is honoured (as Getopt::Long does); values are
// checked after, so `--predict=bogus --help` still prints the help.
Result<CommandLine> ParseCommandLine(int argc, const char* const* argv);

// mosh.pl's fallback for the prediction mode: MOSH_PREDICTION_DISPLAY, used when the command
// line gave none (so it beats the profile). `value` is getenv's answer (nullptr = unset). The
// launcher must then export options.predict as MOSH_PREDICTION_DISPLAY for mosh-client, which
// reads that variable itself.
Result<void> ApplyPredictionEnvironment(Options& options, const char* value);

// [user@]host split as mosh.pl does (the user is everything up to the last '@').
struct UserHost {
  std::string user;  // empty when none was given
  std::string host;  // the alias as typed: what `ssh -G` and the profile's [host.X] match
};
UserHost SplitDestination(std::string_view destination);

// Checks shared by the command line and the profile. Each error is a short reason, without
// the value or the option name: the caller says where the value came from.

// "N" (0..65535; 0 lets mosh-server pick, as mosh.pl allows) or "N:M" (1 <= N <= M <= 65535).
Result<void> CheckPortRange(std::string_view range);
// command:CMD, peer, ssh-connection, dns or static:IP (an IPv4 or IPv6 literal).
Result<void> CheckRemoteIpSpec(std::string_view spec);
// adaptive, always, never or experimental.
Result<void> CheckPredict(std::string_view mode);

// Splits a command into words as Perl's Text::ParseWords::shellwords does for mosh.pl's --ssh:
// blanks separate words, '...' is literal, "..." and bare text honour backslash escapes.
// An unbalanced quote is an error (shellwords would return nothing at all).
Result<std::vector<std::string>> SplitShellWords(std::string_view command);

// `mconnect COMMAND [flags] [options] [user@]host` for the same destination: a line to paste into
// a hint. It carries over, shell-quoted, the options of this command line that decide what is
// reached and how (--ssh, --config, --socket, --mux, --server, -p, --bind-server, --remote-ip,
// --transport, --family for -4 and -6 too) and that COMMAND takes. Values
// that came from the profile are left out: COMMAND reads the same profile. `flags` goes in as
// given, right after COMMAND ("-vv").
std::string CommandLineFor(Options::Command command, const Options& options, std::string_view flags = {});

// The --help text.
std::string UsageText();
// `mconnect COMMAND --help`: UsageText() for the connecting form; for a subcommand, its usage
// and exactly the options it accepts.
std::string CommandUsageText(Options::Command command);
// Every option name COMMAND accepts ("-p", "--port", ...), in the option table's order.
std::vector<std::string> OptionNames(Options::Command command);

}  // namespace mconnect::launcher
