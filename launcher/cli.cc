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

#include "launcher/cli_options.h"
#include "remote-ip/strategy.h"

#ifndef MCONNECT_VERSION
#define MCONNECT_VERSION "0.1.0"
#endif

namespace mconnect::launcher {
namespace {

using Command = Options::Command;

constexpr std::string_view kSeeHelp = "; see mconnect --help";

bool IsIpLiteral(const std::string& text) {
  std::array<unsigned char, 16> buffer{};
  return inet_pton(AF_INET, text.c_str(), buffer.data()) == 1 ||
         inet_pton(AF_INET6, text.c_str(), buffer.data()) == 1;
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

// "--predict: 1 required TEXT missing" -> "--predict".
std::string OptionNameOf(const CLI::Error& error) {
  std::string_view what = error.what();
  return std::string(what.substr(0, what.find(':')));
}

}  // namespace

namespace {

// The subcommand, when the first word names one (taken off `args`); else the connecting form.
Command TakeSubcommand(std::vector<std::string>& args) {
  static const std::map<std::string, Command, std::less<>> kSubcommands{
      {"status", Command::kStatus}, {"stop", Command::kStop}, {"ip", Command::kIp},
      {"ssh-config", Command::kSshConfig}, {"doctor", Command::kDoctor}, {"master", Command::kMaster}};
  if (args.empty()) return Command::kConnect;
  auto found = kSubcommands.find(args.front());
  if (found == kSubcommands.end()) return Command::kConnect;
  args.erase(args.begin());
  return found->second;
}

// CLI11 only tokenises: every option of `command` takes each occurrence (TakeAll), unknown words
// are collected (allow_extras) so that we can name them, and we apply the occurrences ourselves.
struct Tokeniser {
  CLI::App app;
  std::map<const CLI::Option*, const cli::OptionSpec*> spec_of;
  const CLI::Option* help = nullptr;
  const CLI::Option* version = nullptr;

  explicit Tokeniser(Command command) {
    app.set_help_flag();
    app.allow_extras();
    for (const cli::OptionSpec& spec : cli::OptionTable()) {
      if ((spec.commands & cli::MaskOf(command)) == 0) continue;
      CLI::Option* option = spec.takes_value ? app.add_option(spec.names) : app.add_flag(spec.names);
      option->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
      spec_of[option] = &spec;
      // By text: two equal literals need not share an address (they do not in an unoptimised build).
      if (std::string_view(spec.names) == cli::kHelpNames) help = option;
      if (std::string_view(spec.names) == cli::kVersionNames) version = option;
    }
  }

  Result<void> Parse(const std::vector<std::string>& args) {
    std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 pops from the back
    try {
      app.parse(std::move(reversed));
    } catch (const CLI::ArgumentMismatch& error) {
      return Fail("option {} needs a value{}", OptionNameOf(error), kSeeHelp);
    } catch (const CLI::ParseError& error) {
      return Fail("{}{}", error.what(), kSeeHelp);
    }
    return {};
  }

  // Every word that is not an option or an option's value, in order, including the first "--"
  // (the later ones are plain words). The host and the command are taken from here rather than
  // from a CLI11 positional, which would split a word like "[a,b]" into a list.
  Result<std::vector<std::string>> Positionals(Command command) const {
    const std::string where = command == Command::kConnect ? "" : fmt::format(" for mconnect {}", cli::NameOf(command));
    std::vector<std::string> positionals;
    bool options_ended = false;
    for (const std::string& word : app.remaining()) {
      if (!options_ended && word == "--") {
        options_ended = true;
        continue;
      }
      if (!options_ended && word.size() > 1 && word.front() == '-') {
        // After the host, the option was most likely meant for the remote command.
        const bool after_host = command == Command::kConnect && !positionals.empty();
        return Fail("unknown option {}{}{}{}", word.substr(0, word.find('=')), where,
                    after_host ? " (a remote command's options go after --: mconnect HOST -- COMMAND ARGS)" : "",
                    kSeeHelp);
      }
      positionals.push_back(word);
    }
    return positionals;
  }

  // Applies the occurrences in the order they were typed.
  Result<void> Replay(Options& options) const {
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
    return {};
  }
};

// The host (and for a session the remote command) from the words left.
Result<void> TakeDestination(Options& options, const std::vector<std::string>& positionals) {
  switch (options.command) {
    case Command::kConnect:
      if (positionals.empty()) return Fail("missing host{}", kSeeHelp);
      options.destination = positionals.front();
      options.remote_command.assign(positionals.begin() + 1, positionals.end());
      break;
    case Command::kStatus:
      if (!positionals.empty()) return Fail("status takes no host (\"{}\"){}", positionals.front(), kSeeHelp);
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
        return Fail("{} takes exactly one [user@]host{}", cli::NameOf(options.command), kSeeHelp);
      }
      options.destination = positionals.front();
      break;
  }
  if (options.command != Command::kStatus && !options.stop_all) return CheckDestination(options.destination);
  return {};
}

// --ssh as words, as mosh.pl's shellwords splits it.
Result<void> SplitSsh(Options& options) {
  auto words = SplitShellWords(options.ssh);
  if (!words) return Fail("--ssh \"{}\": {}", options.ssh, words.error().message);
  if (words->empty()) return Fail("--ssh needs a command");
  options.ssh_argv = std::move(*words);
  return {};
}

}  // namespace

Result<CommandLine> ParseCommandLine(int argc, const char* const* argv) {
  Options options;
  for (int i = 1; i < argc; ++i) options.original_args.emplace_back(argv[i]);
  std::vector<std::string> args = options.original_args;
  options.command = TakeSubcommand(args);

  Tokeniser tokens(options.command);
  if (auto parsed = tokens.Parse(args); !parsed) return Fail(parsed.error());
  auto positionals = tokens.Positionals(options.command);
  if (!positionals) return Fail(positionals.error());
  if (tokens.help != nullptr && tokens.help->count() > 0) return Exit{0, CommandUsageText(options.command)};
  if (tokens.version != nullptr && tokens.version->count() > 0) return Exit{0, "mconnect " MCONNECT_VERSION "\n"};

  if (auto ok = tokens.Replay(options); !ok) return Fail(ok.error());
  if (auto ok = TakeDestination(options, *positionals); !ok) return Fail(ok.error());
  if (auto ok = SplitSsh(options); !ok) return Fail(ok.error());
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
