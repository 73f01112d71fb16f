// `mconnect doctor HOST`: every step a session depends on, in the order a session needs them,
// as a table of checks. Each check is a function that reads what the earlier ones found and
// returns its results (usually one line; none when it does not apply); a failure that the later
// checks depend on (no TCP, no master) ends the run there. The report (launcher/doctor.h)
// prints each result as it comes, or the JSON at the end.
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "base/subprocess.h"
#include "launcher/app.h"
#include "launcher/commands/destination.h"
#include "launcher/commands/master_requests.h"
#include "launcher/doctor.h"
#include "launcher/master_link.h"
#include "launcher/mosh_client.h"
#include "launcher/transport.h"

namespace mconnect::launcher {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// What the checks find, for the checks after them.
struct Findings {
  Options options;                        // the mosh-server check may correct options.server
  std::optional<Resolved> resolved = {};  // ssh settings
  SshProbe probe = {};                    // host key
  std::optional<MasterLink> link = {};    // master
  control::DiscoverIpReply ip = {};       // remote-ip
  std::optional<ProbeReport> udp = {};    // server start: the throwaway server and its UDP probe
  bool udp_answered = false;              // udp
  std::string udp_why = {};               // udp: its verdict in words, for the transport check
  bool relay_answers = false;             // relay
};

// A check's results, and whether the checks after it can run.
struct Outcome {
  enum class Then { kGoOn, kStop, kStopUnreached };
  std::vector<CheckResult> results;
  Then then = Then::kGoOn;
};
Outcome GoOn(CheckResult result) { return {{std::move(result)}, Outcome::Then::kGoOn}; }
Outcome Stop(CheckResult result) { return {{std::move(result)}, Outcome::Then::kStop}; }
// The destination cannot be reached: the run ends with ssh's exit status for that.
Outcome Unreached(CheckResult result) { return {{std::move(result)}, Outcome::Then::kStopUnreached}; }
Outcome DoesNotApply() { return {}; }

Transport TransportOf(const Options& options) { return ParseTransport(options.transport).value_or(Transport::kAuto); }

// The user's ssh command as a session runs it, word by word: with -4 or -6 for --family.
std::vector<std::string> SshArgvWithFamily(const Options& options) {
  std::vector<std::string> argv = options.ssh_argv;
  if (const std::string_view flag = SshFamilyFlag(options); !flag.empty()) argv.emplace_back(flag);
  return argv;
}

Outcome CheckSshSettings(Findings& f) {
  auto resolved = Resolve(f.options);
  if (!resolved) return Unreached(Failed(resolved.error()));
  f.resolved = std::move(*resolved);
  const SshSettings& ssh = f.resolved->ssh;
  return GoOn(Passed(fmt::format("{} ({} -G {}: {} identity file(s), StrictHostKeyChecking {})", DestinationName(ssh),
                                 SshWithFamily(f.options), f.options.destination, ssh.identity_files.size(),
                                 ssh.strict_host_key_checking.empty() ? "ask" : ssh.strict_host_key_checking)));
}

Outcome CheckTcp(Findings& f) {
  const SshSettings& ssh = f.resolved->ssh;
  if (!ssh.proxy_jump.empty() || !ssh.proxy_command.empty()) {
    return GoOn(Passed(fmt::format("through {} (the host key check below goes through it)",
                                   ssh.proxy_jump.empty() ? "ProxyCommand" : "ProxyJump " + ssh.proxy_jump)));
  }
  // The family the master connects over: ssh's AddressFamily, which -4/-6 set (see Resolve).
  const int family = ssh.address_family == "inet" ? AF_INET : ssh.address_family == "inet6" ? AF_INET6 : AF_UNSPEC;
  auto start = Clock::now();
  auto tcp = ReachTcp(ssh.hostname, ssh.port, family,
                      std::chrono::seconds(ssh.connect_timeout_s > 0 ? ssh.connect_timeout_s : 10));
  if (!tcp) {
    return Unreached(Failed(tcp.error().message,
                            fmt::format("check HostName and Port (`{} -G {}`), that sshd runs on the server and that "
                                        "no firewall drops TCP port {}",
                                        SshWithFamily(f.options), f.options.destination, ssh.port)));
  }
  auto elapsed = std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
  return GoOn(Passed(fmt::format("connected to {} in {} ms", *tcp, elapsed)));
}

// The user's own ssh, asked for the host key and the authentication methods (never
// authenticating, never writing known_hosts).
SshProbe ProbeWithSsh(const Options& options) {
  std::vector<std::string> argv = SshArgvWithFamily(options);
  for (auto& word : SshProbeArguments(options.destination)) argv.push_back(std::move(word));
  CommandOptions run;
  run.timeout = std::chrono::seconds(30);
  auto ran = RunCommand(argv, run);
  SshProbe probe = ran ? ParseSshProbe(ran->exit_code, ran->err) : SshProbe{};
  if (!ran) probe.said = ran.error().message;
  return probe;
}

Outcome CheckHostKey(Findings& f) {
  f.probe = ProbeWithSsh(f.options);
  const SshSettings& ssh = f.resolved->ssh;
  const std::string& host = f.options.destination;
  const std::string known_hosts = fmt::format("{}", fmt::join(ssh.user_known_hosts_files, " "));
  const std::string& policy = ssh.strict_host_key_checking;
  switch (f.probe.host_key) {
    case SshProbe::HostKey::kKnown:
      return GoOn(Passed(fmt::format("known and matching ({})", known_hosts)));
    case SshProbe::HostKey::kUnknown:
      if (policy == "accept-new" || policy == "no") {
        return GoOn(
            Passed(fmt::format("not known yet; added to {} on the first connection "
                               "(StrictHostKeyChecking {})",
                               known_hosts, policy)));
      }
      return GoOn(Failed(fmt::format("the server's host key is not in {}", known_hosts),
                         fmt::format("connect once with `ssh {}` and compare the fingerprint with the server's "
                                     "(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub there) before answering yes",
                                     host)));
    case SshProbe::HostKey::kChanged:
      return Unreached(
          Failed(fmt::format("the server's host key has CHANGED since it was stored in {}", known_hosts),
                 fmt::format("if the server was reinstalled or rekeyed, remove the old key with `ssh-keygen -R {}` and "
                             "connect again; otherwise do not connect",
                             ssh.port == 22 ? ssh.hostname : fmt::format("'[{}]:{}'", ssh.hostname, ssh.port))));
    case SshProbe::HostKey::kUnreached:
      return Unreached(Failed(fmt::format("ssh stopped before the host key: {}", f.probe.said),
                              fmt::format("run `{} -v {}` to see where it stops", SshWithFamily(f.options), host)));
  }
  return DoesNotApply();
}

Outcome CheckAuth(Findings& f) {
  const std::vector<std::string>& methods = f.probe.methods;
  if (methods.empty()) return GoOn(Failed("not checked: ssh stopped at the host key", "fix the host key first"));
  const SshSettings& ssh = f.resolved->ssh;
  const std::string offered = fmt::format("{}", fmt::join(methods, ","));
  auto offers = [&](std::string_view method) { return std::ranges::find(methods, method) != methods.end(); };
  const bool agent =
      ssh.identity_agent != "none" && (!ssh.identity_agent.empty() || std::getenv("SSH_AUTH_SOCK") != nullptr);
  const auto keys = std::ranges::count_if(ssh.identity_files,
                                          [](const std::string& file) { return ::access(file.c_str(), R_OK) == 0; });
  if (!offers("publickey") && !offers("keyboard-interactive") && !offers("password") && !offers("none")) {
    return GoOn(Failed(fmt::format("the server offers only {}", offered),
                       "ask the server's administrator to allow publickey authentication"));
  }
  if (offers("publickey") && methods.size() == 1 && keys == 0 && !agent) {
    return GoOn(Failed("the server takes only keys, and there is no agent and no readable IdentityFile",
                       fmt::format("create a key with `ssh-keygen -t ed25519` and install it with `ssh-copy-id {}`",
                                   f.options.destination)));
  }
  return GoOn(Passed(
      fmt::format("the server offers {}; mconnect has {} key file(s){}", offered, keys, agent ? " and an agent" : "")));
}

Outcome CheckMaster(Findings& f) {
  auto link = ConnectOrStartMaster(f.resolved->ssh, f.options, f.resolved->profile);
  if (!link) {
    // An empty message: the master said why on the terminal itself.
    Error error = link.error();
    if (error.message.empty()) error.message = "could not connect or authenticate (see above)";
    return Unreached(Failed(error, fmt::format("run `{} -v {}` to see what the server says", SshWithFamily(f.options),
                                               f.options.destination)));
  }
  f.link = std::move(*link);
  return GoOn(Passed(fmt::format("{} (pid {}, {})", f.link->started ? "started" : "running",
                                 f.link->client.master_pid(), f.link->socket_path)));
}

Result<control::ExecReply> RunRemote(MasterLink& link, const std::string& command) {
  control::ExecRequest request;
  request.set_command(command);
  request.set_timeout_ms(20000);
  return link.client.Call<control::ExecReply>(proto::MessageType::kExec, request, proto::MessageType::kExecReply,
                                              milliseconds(30000));
}

Outcome CheckMoshServer(Findings& f) {
  const std::string& host = f.options.destination;
  auto words = SplitShellWords(f.options.server);
  const std::string program = words && !words->empty() ? words->front() : f.options.server;
  auto where = RunRemote(*f.link, ServerPathCommand(program));
  if (!where) return GoOn(Failed(where.error()));
  const ServerPath path = ParseServerPath(where->stdout());
  if (!path.path.empty()) return GoOn(Passed(fmt::format("{} is {} on the non-interactive PATH", program, path.path)));
  if (path.elsewhere.empty()) {
    return GoOn(Failed(fmt::format("{} is not installed on {} (PATH {})", program, host, path.search_path),
                       "install mosh on the server (Debian/Ubuntu: apt install mosh-server or mosh), or give its "
                       "full path with --server=/full/path/to/mosh-server"));
  }
  const std::string& found = path.elsewhere.front();
  f.options.server = found;  // so that the checks below can still run it
  return GoOn(Failed(fmt::format("{} is not on the PATH of non-interactive shells on {} ({}), but {} exists", program,
                                 host, path.search_path, found),
                     fmt::format("use --server={} (or server = \"{}\" under [host.{}] in config.toml), or add its "
                                 "directory to PATH in a file non-interactive shells read (~/.bashrc, ~/.zshenv)",
                                 found, found, SplitDestination(host).host)));
}

Outcome CheckLocale(Findings& f) {
  const std::vector<std::string> settings = LocaleSettings();
  const std::string requested =
      settings.empty() ? "the server's default locale" : fmt::format("{}", fmt::join(settings, " "));
  auto charmap = RunRemote(*f.link, ServerLocaleCommand(settings));
  if (!charmap) return GoOn(Failed(charmap.error()));
  const ServerLocale locale = ParseServerLocale(charmap->stdout());
  if (!locale.has_locale_program) {
    return GoOn(Failed("cannot tell: the server has no `locale` program",
                       "the mosh-server check below shows whether it accepts your locale"));
  }
  if (locale.requested == "UTF-8") return GoOn(Passed(fmt::format("{} is UTF-8 on the server", requested)));
  if (locale.fallback == "UTF-8") {
    return GoOn(Passed(fmt::format("{} gives {} on the server; mosh-server will run with LANG=C.UTF-8", requested,
                                   locale.requested.empty() ? "nothing" : locale.requested)));
  }
  const std::string tried = requested == "LANG=C.UTF-8" ? requested : requested + " or LANG=C.UTF-8";
  return GoOn(Failed(fmt::format("the server has no UTF-8 locale: with {} its character set is {}, and mosh-server "
                                 "refuses to start without UTF-8",
                                 tried, locale.requested.empty() ? "unknown" : locale.requested),
                     "install a UTF-8 locale on the server (Debian/Ubuntu: apt install locales, then dpkg-reconfigure "
                     "locales or locale-gen en_US.UTF-8), and check that nothing there (LOCPATH, LC_ALL in shell "
                     "startup files, sshd's SetEnv) overrides it"));
}

// One line per strategy that answered; one that failed is only a problem when no later one
// answers: said (a warning), not counted.
Outcome CheckRemoteIp(Findings& f) {
  auto ip = DiscoverIp(*f.link, f.options, f.resolved->profile, true);
  if (!ip) return Stop(Failed(ip.error()));
  f.ip = std::move(*ip);
  Outcome outcome;
  bool answered = false;
  for (const auto& candidate : f.ip.candidates()) {
    if (!candidate.error().empty()) {
      outcome.results.push_back(Warning(candidate.error()));
      continue;
    }
    answered = true;
    outcome.results.push_back(
        Passed(fmt::format("{} -> {} ({} ms)", candidate.strategy(), candidate.address(), candidate.elapsed_ms())));
  }
  if (f.ip.address().empty() || !answered) {
    outcome.results.push_back(
        Failed(fmt::format("no strategy found an address: {}", DescribeFailures(f.ip)),
               fmt::format("add a working --remote-ip strategy (see `{}` and contrib/remote-ip/README.md)",
                           CommandLineFor(Options::Command::kIp, f.options))));
    outcome.then = Outcome::Then::kStop;
  }
  return outcome;
}

// A throwaway mosh-server and a UDP probe of it at the chain's address (unless mosh goes over
// SSH anyway): this check says whether it started, the next one what the probe heard.
Outcome CheckServerStart(Findings& f) {
  if (TransportOf(f.options) == Transport::kSsh) return DoesNotApply();
  auto probed = ProbeAddresses(*f.link, f.options, {f.ip.address()}, true);
  if (!probed) return Stop(Failed(probed.error()));
  f.udp = std::move(*probed);
  const auto& server = f.udp->server;
  return GoOn(Passed(fmt::format("mosh-server started on UDP port {} in {} ms (locale {})", server.port(),
                                 server.elapsed_ms(), server.locale_used())));
}

Outcome CheckUdp(Findings& f) {
  if (!f.udp) return DoesNotApply();
  const std::string& address = f.ip.address();
  const unsigned port = f.udp->server.port();
  const auto& udp = f.udp->probes.front().result;
  if (!udp) {
    f.udp_why = udp.error().message;
    return GoOn(Failed(udp.error().message, ""));
  }
  if (udp->answered) {
    f.udp_answered = true;
    f.udp_why = fmt::format("mosh-server answered over UDP at {} in {} ms", address, udp->rtt.count());
    return GoOn(Passed(fmt::format("{}:{} answered in {} ms", address, port, udp->rtt.count())));
  }
  f.udp_why = fmt::format("no answer over UDP from {}:{}", address, port);
  const std::string range = f.options.port_range.empty() ? "60001:60999" : f.options.port_range;
  return GoOn(Failed(fmt::format("{}:{}: {}", address, port, udp->detail),
                     fmt::format("UDP is blocked on the way to {}: forward UDP ports {} to the server (mosh-server "
                                 "tried port {}), or let mosh go over SSH (see relay below)",
                                 address, range, port)));
}

// Where UDP does not pass (or was not asked for): does the relay over SSH?
Outcome CheckRelay(Findings& f) {
  if (f.udp_answered) return DoesNotApply();
  auto relayed = ProbeThroughRelay(*f.link, f.options);
  if (!relayed) {
    return GoOn(Failed(relayed.error(), "the relay beside mosh-server needs perl (or mconnect) on the server's PATH"));
  }
  if (!relayed->result.answered) {
    return GoOn(Failed(
        fmt::format("mosh-server did not answer through the {} relay: {}", relayed->relay, relayed->result.detail),
        fmt::format("run `mconnect -vv {}` and read the master's log", f.options.destination)));
  }
  f.relay_answers = true;
  return GoOn(Passed(fmt::format("mosh-server answered through the {} relay over SSH in {} ms", relayed->relay,
                                 relayed->result.rtt.count())));
}

// The one verdict on the transport a session would use: with --transport=udp where UDP does not
// pass, a failure (mosh-client would hear nothing), whose fix is the line that works.
Outcome CheckTransport(Findings& f) {
  const Transport transport = TransportOf(f.options);
  if (f.udp_answered) {
    return GoOn(Passed((transport == Transport::kUdp ? "udp (--transport=udp): " : "udp (auto): ") + f.udp_why));
  }
  if (transport == Transport::kUdp) {
    Options over_ssh = f.options;
    over_ssh.transport = "ssh";
    over_ssh.explicitly_set.transport = true;
    const std::string works = fmt::format(
        "mosh over SSH works here (relay above): run `{}`, or {} (auto, the default, then goes over SSH "
        "by itself)",
        CommandLineFor(Options::Command::kConnect, over_ssh),
        f.options.explicitly_set.transport ? "leave out --transport=udp"
                                           : "take transport = \"udp\" out of the profile");
    return GoOn(Failed("udp (--transport=udp): mosh-client would hear nothing from mosh-server (" + f.udp_why + ")",
                       f.relay_answers ? works
                                       : "forward the UDP ports (see udp above); mosh over SSH does not work either "
                                         "(relay above)"));
  }
  if (!f.relay_answers) return DoesNotApply();  // the relay's failure says it all
  return GoOn(Passed(transport == Transport::kSsh
                         ? "ssh (--transport=ssh): mosh's datagrams go over the master"
                         : "ssh (auto): " + f.udp_why + "; mosh's datagrams go over the master"));
}

struct DoctorCheck {
  std::string_view name;
  Outcome (*run)(Findings&);
};

// In the order a session needs them.
constexpr std::array<DoctorCheck, 12> kChecks{{
    {"ssh settings", CheckSshSettings},
    {"tcp", CheckTcp},
    {"host key", CheckHostKey},
    {"auth", CheckAuth},
    {"master", CheckMaster},
    {"mosh-server", CheckMoshServer},
    {"locale", CheckLocale},
    {"remote-ip", CheckRemoteIp},
    {"server start", CheckServerStart},
    {"udp", CheckUdp},
    {"relay", CheckRelay},
    {"transport", CheckTransport},
}};

// Runs the checks in order into `report`; returns the exit status: 255 when the destination could
// not be reached, else 1 when a check failed, else 0.
int RunChecks(Findings& findings, DoctorReport& report) {
  for (const DoctorCheck& check : kChecks) {
    Outcome outcome = check.run(findings);
    for (CheckResult& result : outcome.results) report.Add(std::string(check.name), std::move(result));
    if (outcome.then == Outcome::Then::kStopUnreached) return kExitConnectionFailed;
    if (outcome.then == Outcome::Then::kStop) break;
  }
  return report.failed() ? 1 : 0;
}

}  // namespace

int RunDoctor(Options options) {
  DoctorReport report(!options.json);
  Findings findings{.options = std::move(options)};
  const int status = RunChecks(findings, report);
  if (findings.options.json) std::printf("%s\n", report.Json(findings.options.destination).c_str());
  return status;
}

}  // namespace mconnect::launcher
