#include "launcher/cli.h"

#include <initializer_list>
#include <string>
#include <variant>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/subprocess.h"

namespace mconnect::launcher {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;
using Command = Options::Command;

Result<CommandLine> ParseArgs(std::initializer_list<const char*> args) {
  std::vector<const char*> argv{"mconnect"};
  argv.insert(argv.end(), args.begin(), args.end());
  return ParseCommandLine(static_cast<int>(argv.size()), argv.data());
}

// Parses a command line that must succeed and must not be --help/--version.
Options Parse(std::initializer_list<const char*> args) {
  auto parsed = ParseArgs(args);
  if (!parsed) {
    ADD_FAILURE() << "parse failed: " << parsed.error().message;
    return {};
  }
  if (!std::holds_alternative<Options>(*parsed)) {
    ADD_FAILURE() << "parse gave an Exit";
    return {};
  }
  return std::get<Options>(*parsed);
}

// The error of a command line that must fail.
std::string ParseError(std::initializer_list<const char*> args) {
  auto parsed = ParseArgs(args);
  if (parsed) {
    ADD_FAILURE() << "parse succeeded";
    return {};
  }
  return parsed.error().message;
}

TEST(ParseCommandLine, DefaultsAreMosh) {
  const Options o = Parse({"bebou"});
  EXPECT_EQ(o.command, Command::kConnect);
  EXPECT_EQ(o.destination, "bebou");
  EXPECT_THAT(o.remote_command, IsEmpty());
  EXPECT_EQ(o.client, "mosh-client");
  EXPECT_EQ(o.server, "mosh-server");
  EXPECT_EQ(o.predict, "adaptive");
  EXPECT_FALSE(o.predict_overwrite);
  EXPECT_EQ(o.port_range, "");
  EXPECT_EQ(o.family, "prefer-inet");
  EXPECT_EQ(o.ssh, "ssh");
  EXPECT_THAT(o.ssh_argv, ElementsAre("ssh"));
  EXPECT_TRUE(o.ssh_pty);
  EXPECT_TRUE(o.term_init);
  EXPECT_FALSE(o.local);
  EXPECT_EQ(o.bind_server, "ssh");
  EXPECT_THAT(o.remote_ip, IsEmpty());
  EXPECT_EQ(o.verbosity, 0);
  EXPECT_FALSE(o.persist_s);
  EXPECT_FALSE(o.json);
  EXPECT_FALSE(o.timings);
  EXPECT_FALSE(o.explicitly_set.client || o.explicitly_set.server || o.explicitly_set.predict ||
               o.explicitly_set.port_range || o.explicitly_set.remote_ip);
  EXPECT_THAT(o.original_args, ElementsAre("bebou"));
}

TEST(ParseCommandLine, ClientAndServer) {
  const Options o = Parse({"--client=/opt/mosh/bin/mosh-client", "--server", "mosh-server-1.4", "bebou"});
  EXPECT_EQ(o.client, "/opt/mosh/bin/mosh-client");
  EXPECT_EQ(o.server, "mosh-server-1.4");
  EXPECT_TRUE(o.explicitly_set.client);
  EXPECT_TRUE(o.explicitly_set.server);
}

TEST(ParseCommandLine, PredictModes) {
  for (const char* mode : {"adaptive", "always", "never", "experimental"}) {
    const std::string arg = std::string("--predict=") + mode;
    const Options o = Parse({arg.c_str(), "h"});
    EXPECT_EQ(o.predict, mode);
    EXPECT_TRUE(o.explicitly_set.predict);
  }
  EXPECT_EQ(Parse({"-a", "h"}).predict, "always");
  EXPECT_EQ(Parse({"-n", "h"}).predict, "never");
  EXPECT_EQ(Parse({"--predict", "never", "h"}).predict, "never");
}

TEST(ParseCommandLine, LastPredictWinsAsInGetoptLong) {
  EXPECT_EQ(Parse({"--predict=never", "-a", "h"}).predict, "always");
  EXPECT_EQ(Parse({"-a", "-n", "h"}).predict, "never");
  EXPECT_EQ(Parse({"-n", "--predict=experimental", "h"}).predict, "experimental");
  // Only the final value is checked, as mosh.pl does.
  EXPECT_EQ(Parse({"--predict=bogus", "-a", "h"}).predict, "always");
}

TEST(ParseCommandLine, PredictOverwrite) {
  EXPECT_TRUE(Parse({"-o", "h"}).predict_overwrite);
  EXPECT_TRUE(Parse({"--predict-overwrite", "h"}).predict_overwrite);
  EXPECT_FALSE(Parse({"-o", "--no-predict-overwrite", "h"}).predict_overwrite);
}

TEST(ParseCommandLine, Ports) {
  EXPECT_EQ(Parse({"-p", "60001", "h"}).port_range, "60001");
  EXPECT_EQ(Parse({"-p60002", "h"}).port_range, "60002");
  EXPECT_EQ(Parse({"--port=60001:60010", "h"}).port_range, "60001:60010");
  EXPECT_EQ(Parse({"--port", "1:65535", "h"}).port_range, "1:65535");
  EXPECT_EQ(Parse({"-p=60003", "h"}).port_range, "60003");  // Getopt::Long takes this too
  EXPECT_EQ(Parse({"-p", "0", "h"}).port_range, "0");  // mosh.pl allows a lone 0
  EXPECT_EQ(Parse({"-p", "5000:5000", "h"}).port_range, "5000:5000");
  EXPECT_TRUE(Parse({"-p", "60001", "h"}).explicitly_set.port_range);
}

TEST(ParseCommandLine, BadPorts) {
  EXPECT_EQ(ParseError({"-p", "70000", "h"}), "--port \"70000\" is not a port range: 70000 is above 65535");
  EXPECT_THAT(ParseError({"-p", "60010:60001", "h"}), HasSubstr("low port is greater than the high port"));
  EXPECT_THAT(ParseError({"-p", "0:100", "h"}), HasSubstr("cannot start at port 0"));
  EXPECT_THAT(ParseError({"-p", "100:0", "h"}), HasSubstr("not a port range"));
  EXPECT_THAT(ParseError({"-p", "abc", "h"}), HasSubstr("\"abc\" is not a number"));
  EXPECT_THAT(ParseError({"-p", "-1", "h"}), HasSubstr("not a port range"));
  EXPECT_THAT(ParseError({"-p", "+5", "h"}), HasSubstr("not a port range"));
  EXPECT_THAT(ParseError({"-p", "1:", "h"}), HasSubstr("not a port range"));
  EXPECT_THAT(ParseError({"-p", "1:2:3", "h"}), HasSubstr("not a port range"));
  EXPECT_THAT(ParseError({"-p", "", "h"}), HasSubstr("not a port range"));
  EXPECT_THAT(ParseError({"-p", "99999999999999999999", "h"}), HasSubstr("above 65535"));
}

TEST(ParseCommandLine, Family) {
  EXPECT_EQ(Parse({"-4", "h"}).family, "inet");
  EXPECT_EQ(Parse({"-6", "h"}).family, "inet6");
  for (const char* family : {"inet", "inet6", "auto", "all", "prefer-inet", "prefer-inet6"}) {
    const std::string arg = std::string("--family=") + family;
    EXPECT_EQ(Parse({arg.c_str(), "h"}).family, family);
  }
  EXPECT_EQ(Parse({"--family=INET6", "h"}).family, "inet6");  // mosh.pl lower-cases it
  EXPECT_EQ(Parse({"-4", "-6", "h"}).family, "inet6");
  EXPECT_EQ(Parse({"-6", "--family=all", "h"}).family, "all");
  EXPECT_THAT(ParseError({"--family=ipx", "h"}), StartsWith("--family \"ipx\" is not inet, inet6"));
}

TEST(ParseCommandLine, SshCommandIsSplitLikeShellwords) {
  const Options o = Parse({"--ssh=ssh -p 2222 -o 'ProxyJump jump host' -i \"my key\"", "h"});
  EXPECT_EQ(o.ssh, "ssh -p 2222 -o 'ProxyJump jump host' -i \"my key\"");
  EXPECT_THAT(o.ssh_argv, ElementsAre("ssh", "-p", "2222", "-o", "ProxyJump jump host", "-i", "my key"));
  EXPECT_THAT(Parse({"--ssh", "/usr/bin/ssh", "h"}).ssh_argv, ElementsAre("/usr/bin/ssh"));
  EXPECT_THAT(Parse({"--ssh=a\\ b c\"d\\\"e\"", "h"}).ssh_argv, ElementsAre("a b", "cd\"e"));
  EXPECT_THAT(ParseError({"--ssh=ssh 'oops", "h"}), HasSubstr("unbalanced '"));
  EXPECT_THAT(ParseError({"--ssh=ssh \"oops", "h"}), HasSubstr("unbalanced \""));
  EXPECT_EQ(ParseError({"--ssh=  ", "h"}), "--ssh needs a command");
}

TEST(ParseCommandLine, SshPtyAndInit) {
  EXPECT_FALSE(Parse({"--no-ssh-pty", "h"}).ssh_pty);
  EXPECT_TRUE(Parse({"--no-ssh-pty", "--ssh-pty", "h"}).ssh_pty);
  EXPECT_FALSE(Parse({"--no-init", "h"}).term_init);
  EXPECT_TRUE(Parse({"--no-init", "--init", "h"}).term_init);
  EXPECT_FALSE(Parse({"--init", "--no-init", "h"}).term_init);
}

TEST(ParseCommandLine, LocalAndBindServer) {
  EXPECT_TRUE(Parse({"--local", "localhost"}).local);
  EXPECT_EQ(Parse({"--bind-server=any", "h"}).bind_server, "any");
  EXPECT_EQ(Parse({"--bind-server=SSH", "h"}).bind_server, "ssh");  // case-blind, as mosh.pl
  EXPECT_EQ(Parse({"--bind-server", "192.0.2.7", "h"}).bind_server, "192.0.2.7");
  EXPECT_EQ(Parse({"--bind-server=2001:db8::7", "h"}).bind_server, "2001:db8::7");
  EXPECT_EQ(ParseError({"--bind-server=eth0", "h"}), "--bind-server \"eth0\" is not ssh, any or an IP address");
}

TEST(ParseCommandLine, ExperimentalRemoteIpMapsOntoStrategies) {
  EXPECT_THAT(Parse({"--experimental-remote-ip=proxy", "h"}).remote_ip, ElementsAre("peer"));
  EXPECT_THAT(Parse({"--experimental-remote-ip=remote", "h"}).remote_ip, ElementsAre("ssh-connection"));
  EXPECT_THAT(Parse({"--experimental-remote-ip", "local", "h"}).remote_ip, ElementsAre("dns"));
  EXPECT_TRUE(Parse({"--experimental-remote-ip=local", "h"}).explicitly_set.remote_ip);
  EXPECT_EQ(ParseError({"--experimental-remote-ip=nat", "h"}),
            "--experimental-remote-ip \"nat\" is not proxy, local or remote");
}

TEST(ParseCommandLine, RemoteIpChainKeepsCommandLineOrder) {
  const Options o = Parse({"--remote-ip", "command:curl -sS https://ipinfo.io/ip", "--experimental-remote-ip=remote",
                           "--remote-ip=static:203.0.113.9", "--remote-ip=peer", "--remote-ip", "dns", "h"});
  EXPECT_THAT(o.remote_ip, ElementsAre("command:curl -sS https://ipinfo.io/ip", "ssh-connection",
                                       "static:203.0.113.9", "peer", "dns"));
  EXPECT_TRUE(o.explicitly_set.remote_ip);
  EXPECT_THAT(Parse({"--remote-ip=static:2001:db8::1", "h"}).remote_ip, ElementsAre("static:2001:db8::1"));
}

TEST(ParseCommandLine, BadRemoteIp) {
  EXPECT_EQ(ParseError({"--remote-ip=stun", "h"}),
            "--remote-ip: unknown remote-ip strategy \"stun\" (expected command:<shell command>, peer, ssh-connection, dns or static:<ip>)");
  EXPECT_THAT(ParseError({"--remote-ip=command:", "h"}), HasSubstr("needs a shell command"));
  EXPECT_THAT(ParseError({"--remote-ip=command:  ", "h"}), HasSubstr("needs a shell command"));
  EXPECT_THAT(ParseError({"--remote-ip=static:example.org", "h"}), HasSubstr("static:"));
  EXPECT_THAT(ParseError({"--remote-ip=static:", "h"}), HasSubstr("static:"));
  EXPECT_THAT(ParseError({"--remote-ip=Peer", "h"}), HasSubstr("unknown remote-ip strategy"));
}

TEST(ParseCommandLine, OurOptions) {
  const Options o = Parse({"-v", "--persist", "120", "--socket=/run/user/1000/mconnect/bebou", "--config", "/x/c.toml",
                           "--mux=/build/bin/mconnect-mux", "--timings", "-vv", "bebou"});
  EXPECT_EQ(o.verbosity, 3);
  EXPECT_EQ(o.persist_s, 120);
  EXPECT_EQ(o.socket_path, "/run/user/1000/mconnect/bebou");
  EXPECT_EQ(o.config_path, "/x/c.toml");
  EXPECT_EQ(o.mux_path, "/build/bin/mconnect-mux");
  EXPECT_TRUE(o.timings);
}

// --persist has OpenSSH's ControlPersist meanings: yes or 0 = until stopped, no = exit as soon as
// the last client has gone, N = N idle seconds.
TEST(ParseCommandLine, PersistIsControlPersist) {
  EXPECT_EQ(Parse({"--persist=0", "h"}).persist_s, kPersistForever);
  EXPECT_EQ(Parse({"--persist=yes", "h"}).persist_s, kPersistForever);
  EXPECT_EQ(Parse({"--persist", "no", "h"}).persist_s, kPersistNo);
  EXPECT_EQ(Parse({"--persist=30", "h"}).persist_s, 30);
  EXPECT_THAT(CommandUsageText(Command::kDoctor),
              HasSubstr("  --persist={SECONDS|yes|no}     seconds with nothing open before the master exits; yes or 0: "
                        "never; no: at once\n"));
  EXPECT_THAT(CommandUsageText(Command::kMaster), HasSubstr("--persist\ndefaults to yes (never idle out)."));
}

TEST(ParseCommandLine, BadOurOptions) {
  EXPECT_EQ(ParseError({"--persist=-1", "h"}),
            "--persist \"-1\" is not a lifetime: expected yes, no or a number of seconds (0 or more)");
  EXPECT_THAT(ParseError({"--persist=10m", "h"}), HasSubstr("expected yes, no or a number of seconds"));
  EXPECT_THAT(ParseError({"--persist=forever", "h"}), HasSubstr("expected yes, no or a number of seconds"));
  EXPECT_THAT(ParseError({"--persist=99999999999", "h"}), HasSubstr("expected yes, no or a number of seconds"));
  EXPECT_THAT(ParseError({("--socket=/" + std::string(200, 's')).c_str(), "h"}),
              HasSubstr("a Unix socket path holds at most 107"));
  // --json belongs to status and ip only.
  EXPECT_THAT(ParseError({"--json", "h"}), StartsWith("unknown option --json;"));
}

TEST(ParseCommandLine, UserAtHost) {
  EXPECT_EQ(Parse({"alice@bebou"}).destination, "alice@bebou");
  const UserHost d = SplitDestination("alice@bebou");
  EXPECT_EQ(d.user, "alice");
  EXPECT_EQ(d.host, "bebou");
  // mosh.pl's regex: the user is everything up to the last '@'.
  const UserHost e = SplitDestination("a@b@bebou");
  EXPECT_EQ(e.user, "a@b");
  EXPECT_EQ(e.host, "bebou");
  EXPECT_EQ(SplitDestination("bebou").user, "");
  EXPECT_EQ(SplitDestination("bebou").host, "bebou");
}

TEST(ParseCommandLine, BadDestinations) {
  EXPECT_THAT(ParseError({"alice@"}), HasSubstr("has no host"));
  EXPECT_THAT(ParseError({"@bebou"}), HasSubstr("empty user name"));
  EXPECT_EQ(ParseError({"--", "-oProxyCommand=sh"}), "host \"-oProxyCommand=sh\" may not start with '-'");
  EXPECT_THAT(ParseError({"--", "be bou"}), HasSubstr("blank or control character"));
  EXPECT_THAT(ParseError({"--", "be\nbou"}), HasSubstr("blank or control character"));
}

TEST(ParseCommandLine, RemoteCommand) {
  Options o = Parse({"bebou", "--", "ls", "-l", "--color"});
  EXPECT_EQ(o.destination, "bebou");
  EXPECT_THAT(o.remote_command, ElementsAre("ls", "-l", "--color"));

  o = Parse({"bebou", "tmux", "attach"});
  EXPECT_THAT(o.remote_command, ElementsAre("tmux", "attach"));

  // mosh's "[--] host command": -- before the host works too.
  o = Parse({"-a", "--", "bebou", "ls", "-l"});
  EXPECT_EQ(o.destination, "bebou");
  EXPECT_THAT(o.remote_command, ElementsAre("ls", "-l"));
  EXPECT_EQ(o.predict, "always");

  // Only the first -- ends the options; a later one belongs to the command.
  o = Parse({"bebou", "--", "sh", "-c", "x", "--", "y"});
  EXPECT_THAT(o.remote_command, ElementsAre("sh", "-c", "x", "--", "y"));

  EXPECT_THAT(Parse({"bebou", "--"}).remote_command, IsEmpty());

  // Words reach the command untouched, whatever they look like.
  o = Parse({"bebou", "--", "echo", "[a,b]", "[]", "-", "-5", "{}", "a=b"});
  EXPECT_THAT(o.remote_command, ElementsAre("echo", "[a,b]", "[]", "-", "-5", "{}", "a=b"));
  EXPECT_THAT(Parse({"bebou", "echo", "[a,b]", "-"}).remote_command, ElementsAre("echo", "[a,b]", "-"));
}

TEST(ParseCommandLine, OptionsAfterTheHostAreOptionsAsInMosh) {
  const Options o = Parse({"bebou", "--predict=never", "top"});
  EXPECT_EQ(o.predict, "never");
  EXPECT_EQ(o.destination, "bebou");
  EXPECT_THAT(o.remote_command, ElementsAre("top"));
  // An unknown one there was probably meant for the command: say where it goes.
  EXPECT_EQ(ParseError({"bebou", "ls", "-l"}),
            "unknown option -l (a remote command's options go after --: mconnect HOST -- COMMAND ARGS); "
            "see mconnect --help");
}

TEST(ParseCommandLine, UnknownOptionIsOneLine) {
  EXPECT_EQ(ParseError({"--foo", "h"}), "unknown option --foo; see mconnect --help");
  EXPECT_EQ(ParseError({"--foo=bar", "h"}), "unknown option --foo; see mconnect --help");
  EXPECT_EQ(ParseError({"-x", "h"}), "unknown option -x; see mconnect --help");
  EXPECT_EQ(ParseError({"-5", "h"}), "unknown option -5; see mconnect --help");
  EXPECT_EQ(ParseError({"-ax", "h"}), "unknown option -x; see mconnect --help");
  // mosh.pl's internal ProxyCommand helper is not an option of ours.
  EXPECT_EQ(ParseError({"--fake-proxy", "h", "22"}), "unknown option --fake-proxy; see mconnect --help");
  // Unknown options beat --help, as in Getopt::Long.
  EXPECT_EQ(ParseError({"--help", "--foo"}), "unknown option --foo; see mconnect --help");
}

TEST(ParseCommandLine, FlagsTakeNoValue) {
  EXPECT_EQ(ParseError({"--ssh-pty=false", "h"}), "option --ssh-pty takes no value; see mconnect --help");
  EXPECT_EQ(ParseError({"--local=no", "h"}), "option --local takes no value; see mconnect --help");
  EXPECT_EQ(ParseError({"status", "--json=0"}), "option --json takes no value; see mconnect --help");
}

TEST(ParseCommandLine, MissingValueAndMissingHost) {
  EXPECT_EQ(ParseError({}), "missing host; see mconnect --help");
  EXPECT_EQ(ParseError({"-a", "--"}), "missing host; see mconnect --help");
  EXPECT_EQ(ParseError({"bebou", "--predict"}), "option --predict needs a value; see mconnect --help");
  EXPECT_EQ(ParseError({"-p"}), "option --port needs a value; see mconnect --help");
}

TEST(ParseCommandLine, BadPredict) {
  EXPECT_EQ(ParseError({"--predict=sometimes", "h"}),
            "--predict \"sometimes\" is not a prediction mode: expected adaptive, always, never or experimental");
}

TEST(ParseCommandLine, HelpAndVersionAreExits) {
  for (auto args : {std::initializer_list<const char*>{"--help"}, {"-h"}, {"bebou", "--help"},
                    {"--predict=bogus", "--help"}}) {
    auto parsed = ParseArgs(args);
    ASSERT_TRUE(parsed) << parsed.error().message;
    ASSERT_TRUE(std::holds_alternative<Exit>(*parsed));
    EXPECT_EQ(std::get<Exit>(*parsed).code, 0);
    EXPECT_THAT(std::get<Exit>(*parsed).text, StartsWith("Usage: mconnect [options] [--] [user@]host [command...]"));
  }
  // A subcommand's --help is its own: its usage line and exactly the options it takes.
  for (auto args : {std::initializer_list<const char*>{"status", "--help"}, {"doctor", "-h", "bebou"}}) {
    auto parsed = ParseArgs(args);
    ASSERT_TRUE(parsed) << parsed.error().message;
    ASSERT_TRUE(std::holds_alternative<Exit>(*parsed));
    EXPECT_THAT(std::get<Exit>(*parsed).text, StartsWith(std::string("Usage: mconnect ") + *args.begin() + " [options]"));
  }
  auto parsed = ParseArgs({"--version"});
  ASSERT_TRUE(parsed);
  ASSERT_TRUE(std::holds_alternative<Exit>(*parsed));
  EXPECT_THAT(std::get<Exit>(*parsed).text, StartsWith("mconnect "));
}

TEST(ParseCommandLine, HelpMentionsEveryOption) {
  const std::string help = UsageText();
  for (const char* option :
       {"--client", "--server", "--predict=adaptive", "--predict=always", "--predict=never", "--predict=experimental",
        "-o ", "--predict-overwrite", "-4 ", "-6 ", "--family=auto", "-p PORT", "--port=", "--bind-server", "--ssh=",
        "--no-ssh-pty", "--no-init", "--local", "--experimental-remote-ip", "--help", "--version", "--remote-ip",
        "--persist", "--socket", "--config", "--mux", "--timings", "-v ", "status", "stop", "ip HOST",
        "mconnect -- status"}) {
    EXPECT_THAT(help, HasSubstr(option));
  }
}

TEST(ParseCommandLine, MasterAndDoctorTakeTheirOwnOptions) {
  Options o = Parse({"master", "--persist=0", "-v", "bebou"});
  EXPECT_EQ(o.command, Options::Command::kMaster);
  EXPECT_EQ(o.destination, "bebou");
  EXPECT_EQ(o.persist_s, 0);
  o = Parse({"doctor", "--json", "-p", "60001:60010", "--server=/opt/bin/mosh-server", "bebou"});
  EXPECT_EQ(o.command, Options::Command::kDoctor);
  EXPECT_TRUE(o.json);
  EXPECT_EQ(o.port_range, "60001:60010");
  EXPECT_EQ(ParseError({"doctor", "-a", "bebou"}), "unknown option -a for mconnect doctor; see mconnect --help");
  EXPECT_EQ(ParseError({"master", "--json", "bebou"}), "unknown option --json for mconnect master; see mconnect --help");
  EXPECT_EQ(ParseError({"master"}), "master takes exactly one [user@]host; see mconnect --help");
}

TEST(ParseCommandLine, OriginalArgsForMoshClientArgv) {
  EXPECT_THAT(Parse({"-a", "bebou", "--", "ls"}).original_args, ElementsAre("-a", "bebou", "--", "ls"));
  EXPECT_THAT(Parse({"status"}).original_args, ElementsAre("status"));
}

TEST(Subcommands, Status) {
  Options o = Parse({"status"});
  EXPECT_EQ(o.command, Command::kStatus);
  EXPECT_FALSE(o.json);
  o = Parse({"status", "--json", "-v", "--config=/x.toml"});
  EXPECT_TRUE(o.json);
  EXPECT_EQ(o.verbosity, 1);
  EXPECT_EQ(o.config_path, "/x.toml");
  EXPECT_EQ(ParseError({"status", "bebou"}), "status takes no host (\"bebou\"); see mconnect --help");
  EXPECT_EQ(ParseError({"status", "--predict=never"}),
            "unknown option --predict for mconnect status; see mconnect --help");
}

TEST(Subcommands, Stop) {
  const Options o = Parse({"stop", "--ssh=ssh -p 2222", "alice@bebou"});
  EXPECT_EQ(o.command, Command::kStop);
  EXPECT_EQ(o.destination, "alice@bebou");
  EXPECT_THAT(o.ssh_argv, ElementsAre("ssh", "-p", "2222"));
  EXPECT_EQ(Parse({"stop", "--socket", "/tmp/s", "bebou"}).socket_path, "/tmp/s");
  EXPECT_EQ(ParseError({"stop"}), "stop takes exactly one [user@]host; see mconnect --help");
  EXPECT_EQ(ParseError({"stop", "a", "b"}), "stop takes exactly one [user@]host; see mconnect --help");
  EXPECT_THAT(ParseError({"stop", "--json", "a"}), StartsWith("unknown option --json for mconnect stop"));
}

TEST(Subcommands, Ip) {
  const Options o = Parse({"ip", "--json", "--remote-ip=dns", "bebou", "--remote-ip", "peer"});
  EXPECT_EQ(o.command, Command::kIp);
  EXPECT_EQ(o.destination, "bebou");
  EXPECT_TRUE(o.json);
  EXPECT_THAT(o.remote_ip, ElementsAre("dns", "peer"));
  EXPECT_EQ(ParseError({"ip"}), "ip takes exactly one [user@]host; see mconnect --help");
  EXPECT_THAT(ParseError({"ip", "--remote-ip=x", "bebou"}), HasSubstr("unknown remote-ip strategy"));
}

TEST(Subcommands, RecognisedOnlyAsTheFirstArgument) {
  // A host called like a subcommand: -- (or any option) before it.
  Options o = Parse({"--", "status"});
  EXPECT_EQ(o.command, Command::kConnect);
  EXPECT_EQ(o.destination, "status");
  o = Parse({"-4", "ip"});
  EXPECT_EQ(o.command, Command::kConnect);
  EXPECT_EQ(o.destination, "ip");
  // After the host, a subcommand name is just a remote command word.
  o = Parse({"bebou", "status"});
  EXPECT_EQ(o.command, Command::kConnect);
  EXPECT_THAT(o.remote_command, ElementsAre("status"));
  // `stop stop` stops the host called stop.
  o = Parse({"stop", "stop"});
  EXPECT_EQ(o.command, Command::kStop);
  EXPECT_EQ(o.destination, "stop");
}

TEST(PredictionEnvironment, FallsBackLikeMoshPl) {
  Options o = Parse({"h"});
  ASSERT_TRUE(ApplyPredictionEnvironment(o, "never"));
  EXPECT_EQ(o.predict, "never");
  EXPECT_TRUE(o.explicitly_set.predict);  // so the profile does not override it

  o = Parse({"-a", "h"});
  ASSERT_TRUE(ApplyPredictionEnvironment(o, "never"));
  EXPECT_EQ(o.predict, "always");  // the command line wins

  o = Parse({"h"});
  ASSERT_TRUE(ApplyPredictionEnvironment(o, nullptr));
  EXPECT_EQ(o.predict, "adaptive");
  EXPECT_FALSE(o.explicitly_set.predict);

  auto bad = ApplyPredictionEnvironment(o, "sometimes");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message,
            "MOSH_PREDICTION_DISPLAY \"sometimes\" (in the environment) is not a prediction mode: "
            "expected adaptive, always, never or experimental");
}

TEST(SplitShellWords, Words) {
  EXPECT_THAT(*SplitShellWords("  a  b\tc "), ElementsAre("a", "b", "c"));
  EXPECT_THAT(*SplitShellWords("'a b'\"c d\"e"), ElementsAre("a bc de"));
  EXPECT_THAT(*SplitShellWords("'it'\\''s'"), ElementsAre("it's"));
  EXPECT_THAT(*SplitShellWords("''"), ElementsAre(""));
  EXPECT_THAT(*SplitShellWords(""), IsEmpty());
  EXPECT_FALSE(SplitShellWords("a\\"));
}

// The line a hint offers to paste keeps what this command line said about how to reach the
// host, and only what the suggested command takes.
TEST(CommandLineFor, CarriesTheOptionsThatChangeWhatIsReachedShellQuoted) {
  Options o = Parse({"--ssh=ssh -p 1", "-4", "--predict=never", "--socket=/tmp/my socket", "-p", "60001:60010",
                     "--server=/opt/mosh/bin/mosh-server", "--bind-server=any", "--experimental-remote-ip=proxy",
                     "--remote-ip", "command:curl -sS 'https://ipinfo.io/ip'", "--transport=udp", "--config=/x/c.toml",
                     "me@bebou"});
  const std::string doctor = CommandLineFor(Command::kDoctor, o);
  EXPECT_EQ(doctor,
            "mconnect doctor --ssh='ssh -p 1' --config=/x/c.toml --socket='/tmp/my socket' "
            "--server=/opt/mosh/bin/mosh-server --port=60001:60010 --bind-server=any --remote-ip=peer "
            "--remote-ip='command:curl -sS '\\''https://ipinfo.io/ip'\\''' --transport=udp --family=inet me@bebou");
  // Pasted into a shell, it parses back to the same settings.
  auto words = RunCommand({"sh", "-c", "printf '%s\\n' " + doctor});
  ASSERT_TRUE(words) << words.error().message;
  std::vector<std::string> argv_words;
  for (std::size_t at = 0, end; (end = words->out.find('\n', at)) != std::string::npos; at = end + 1) {
    argv_words.push_back(words->out.substr(at, end - at));
  }
  std::vector<const char*> argv;
  for (const auto& word : argv_words) argv.push_back(word.c_str());
  auto parsed = ParseCommandLine(static_cast<int>(argv.size()), argv.data());
  ASSERT_TRUE(parsed) << parsed.error().message;
  const Options& again = std::get<Options>(*parsed);
  EXPECT_EQ(again.command, Command::kDoctor);
  EXPECT_EQ(again.ssh, o.ssh);
  EXPECT_EQ(again.socket_path, o.socket_path);
  EXPECT_EQ(again.config_path, o.config_path);
  EXPECT_EQ(again.server, o.server);
  EXPECT_EQ(again.port_range, o.port_range);
  EXPECT_EQ(again.bind_server, o.bind_server);
  EXPECT_EQ(again.remote_ip, o.remote_ip);
  EXPECT_EQ(again.transport, o.transport);
  EXPECT_EQ(again.family, "inet");  // doctor checks over the family a session would use (-4)
  EXPECT_EQ(again.destination, "me@bebou");

  // `ip` takes neither --server, -p, --bind-server nor --transport, but -4 (as --family=inet).
  EXPECT_EQ(CommandLineFor(Command::kIp, o),
            "mconnect ip --ssh='ssh -p 1' --config=/x/c.toml --socket='/tmp/my socket' --remote-ip=peer "
            "--remote-ip='command:curl -sS '\\''https://ipinfo.io/ip'\\''' --family=inet me@bebou");
  // Nothing given, nothing carried; a host named like a subcommand comes after --.
  EXPECT_EQ(CommandLineFor(Command::kDoctor, Parse({"bebou"})), "mconnect doctor bebou");
  EXPECT_EQ(CommandLineFor(Command::kConnect, Parse({"--", "status"}), "-vv"), "mconnect -vv -- status");
  EXPECT_EQ(CommandLineFor(Command::kConnect, Parse({"--transport=ssh", "bebou"})), "mconnect --transport=ssh bebou");
}

}  // namespace
}  // namespace mconnect::launcher
