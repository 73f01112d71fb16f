// The manual pages against the program: every option and subcommand that `mconnect --help`
// (and each subcommand's --help) lists is in mconnect(1) and the other way round, the profile
// keys of mconnect-config(5) are those of contrib/config.toml.example, the exit statuses are the
// ones the code returns, and groff renders every page without a single warning.
#include <algorithm>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/subprocess.h"
#include "launcher/app.h"
#include "launcher/cli.h"
#include "launcher/profile.h"
#include "tests/support/paths.h"

namespace mconnect::launcher {
namespace {

using Names = std::set<std::string>;
using Command = Options::Command;

const std::map<std::string, Command> kSubcommands{{"status", Command::kStatus},   {"stop", Command::kStop},
                                                  {"ip", Command::kIp},           {"ssh-config", Command::kSshConfig},
                                                  {"doctor", Command::kDoctor},   {"master", Command::kMaster}};
// Every subcommand takes these too; the man page says so once, under OPTIONS.
const Names kEverywhere{"-h", "--help", "--version"};

std::string Page(const std::string& name) {
  std::ifstream in(std::string(MCONNECT_SOURCE_DIR) + "/man/" + name);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The lines of section NAME (".Sh NAME" up to the next .Sh), with mdoc's "\-" as "-".
std::vector<std::string> Section(const std::string& page, const std::string& name) {
  std::vector<std::string> lines;
  bool inside = false;
  for (std::string line : Lines(page)) {
    if (line.starts_with(".Sh ")) {
      inside = line == ".Sh " + name;
      continue;
    }
    if (!inside) continue;
    for (std::size_t at; (at = line.find("\\-")) != std::string::npos;) line.erase(at, 1);
    lines.push_back(line);
  }
  return lines;
}

std::vector<std::string> Words(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> words;
  for (std::string word; in >> word;) words.push_back(word);
  return words;
}

// The options an mdoc line names: the arguments of each Fl macro up to the next macro
// ("Fl p , -port Ns = Ns Ar port" names -p and --port).
Names Flags(const std::string& line) {
  static const std::regex kMacro("[A-Z][a-z][a-z]?");
  Names flags;
  bool in_flag = false;
  for (const std::string& word : Words(line)) {
    if (word == "Fl" || word == ".Fl") {
      in_flag = true;
    } else if (std::regex_match(word, kMacro) || (word.starts_with('.') && word.size() > 1)) {
      in_flag = false;
    } else if (in_flag && word != "," && word != "|") {
      flags.insert("-" + word);
    }
  }
  return flags;
}

// The option words that begin the lines of a --help text ("-p, --port=PORT  ..." gives -p and
// --port; words quoted in the descriptions do not count).
Names HelpOptions(const std::string& help) {
  static const std::regex kOption("--?[A-Za-z0-9][-A-Za-z0-9]*");
  Names names;
  for (const std::string& line : Lines(help)) {
    for (std::string word : Words(line)) {
      word = word.substr(0, word.find_first_of("=,"));
      if (!std::regex_match(word, kOption)) break;
      names.insert(word);
    }
  }
  return names;
}

std::string Help(const std::vector<std::string>& args) {
  std::vector<std::string> argv{std::string(MCONNECT_BIN_DIR) + "/mconnect"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto result = RunCommand(argv);
  EXPECT_TRUE(result) << result.error().message;
  if (!result) return "";
  EXPECT_EQ(result->exit_code, 0) << result->err;
  return result->out;
}

Names Set(const std::vector<std::string>& names) { return {names.begin(), names.end()}; }

Names Minus(Names names, const Names& drop) {
  for (const auto& name : drop) names.erase(name);
  return names;
}

TEST(ManPage, OptionsSectionListsExactlyTheOptionsOfEveryCommand) {
  Names all = Set(OptionNames(Command::kConnect));
  for (const auto& [name, command] : kSubcommands) all.merge(Set(OptionNames(command)));
  Names documented;
  for (const std::string& line : Section(Page("mconnect.1"), "OPTIONS")) {
    if (line.starts_with(".It ")) documented.merge(Flags(line));
  }
  EXPECT_EQ(documented, all);
}

TEST(ManPage, MainHelpListsExactlyTheConnectOptions) {
  EXPECT_EQ(HelpOptions(Help({"--help"})), Set(OptionNames(Command::kConnect)));
}

// The remote-ip chain used when neither the command line nor the profile names one: the
// built-in default, said the same way by --help and the page.
TEST(ManPage, TheDefaultRemoteIpChainIsTheBuiltInOneInHelpAndPage) {
  std::string chain;
  for (const auto& strategy : mconnect::launcher::HostProfile{}.remote_ip) chain += (chain.empty() ? "" : ", ") + strategy;
  const std::string help = std::regex_replace(Help({"--help"}), std::regex(R"(\s+)"), " ");
  EXPECT_THAT(help, ::testing::HasSubstr("(default: the profile's, else " + chain + "):"));
  std::string page_chain;
  for (const auto& strategy : mconnect::launcher::HostProfile{}.remote_ip) {
    page_chain += (page_chain.empty() ? ".Cm " : " , ") + strategy;
  }
  const std::string page = std::regex_replace(Page("mconnect.1"), std::regex(R"(\s+)"), " ");
  EXPECT_THAT(page, ::testing::HasSubstr("The default is the profile's chain, else " + page_chain + " ."));
}

TEST(ManPage, EachSubcommandsHelpAndSynopsisListExactlyItsOptions) {
  // SYNOPSIS: one block per ".Nm mconnect" line; a subcommand's block starts with ".Cm NAME".
  std::map<std::string, Names> synopsis;
  std::string current;
  for (const std::string& line : Section(Page("mconnect.1"), "SYNOPSIS")) {
    if (line.starts_with(".Nm")) {
      current = "(connect)";
      continue;
    }
    if (line.starts_with(".Cm ") && current == "(connect)" && synopsis.count(Words(line)[1]) == 0) {
      current = Words(line)[1];
      synopsis[current];
      continue;
    }
    if (current != "(connect)") synopsis[current].merge(Flags(line));
  }
  Names subcommands;
  for (const auto& [name, flags] : synopsis) subcommands.insert(name);
  Names expected;
  for (const auto& [name, command] : kSubcommands) expected.insert(name);
  EXPECT_EQ(subcommands, expected) << "SYNOPSIS";

  for (const auto& [name, command] : kSubcommands) {
    SCOPED_TRACE(name);
    const std::string help = Help({name, "--help"});
    EXPECT_THAT(help, ::testing::StartsWith("Usage: mconnect " + name));
    const Names accepted = Set(OptionNames(command));
    EXPECT_EQ(HelpOptions(help), accepted);
    EXPECT_EQ(synopsis[name], Minus(accepted, kEverywhere));
  }
}

TEST(ManPage, CommandsSectionDescribesEverySubcommand) {
  Names described;
  for (const std::string& line : Section(Page("mconnect.1"), "COMMANDS")) {
    if (line.starts_with(".It Cm ")) described.insert(Words(line)[2]);
  }
  Names expected;
  for (const auto& [name, command] : kSubcommands) expected.insert(name);
  EXPECT_EQ(described, expected);
  const std::string help = Help({"--help"});
  for (const auto& name : expected) EXPECT_THAT(help, ::testing::HasSubstr("        " + name + " ")) << name;
}

TEST(ManPage, ExitStatusesAreTheCodes) {
  Names statuses;
  for (const std::string& line : Section(Page("mconnect.1"), "EXIT STATUS")) {
    if (line.starts_with(".It ")) statuses.insert(Words(line)[1]);
  }
  EXPECT_EQ(statuses, (Names{"0", "1", "2", "255"}));
  EXPECT_EQ(kExitConnectionFailed, 255);
  // A bad command line is 2, as main() returns for a parse error.
  auto bad = RunCommand({std::string(MCONNECT_BIN_DIR) + "/mconnect", "--no-such-option", "h"});
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->exit_code, 2);
  EXPECT_THAT(Help({"--help"}), ::testing::HasSubstr("255 when the connection or authentication failed"));
}

TEST(ConfigPage, KeysAreThoseOfTheExampleProfile) {
  Names documented;
  for (const std::string& line : Section(Page("mconnect-config.5"), "KEYS")) {
    if (line.starts_with(".It Cm ")) documented.insert(Words(line)[2]);
  }
  std::ifstream example(std::string(MCONNECT_SOURCE_DIR) + "/contrib/config.toml.example");
  static const std::regex kKey("^([a-z][a-z-]*) *=.*");
  Names keys;
  for (std::string line; std::getline(example, line);) {
    std::smatch match;
    if (std::regex_match(line, match, kKey)) keys.insert(match[1]);
  }
  EXPECT_FALSE(keys.empty());
  EXPECT_EQ(documented, keys);
}

// A session's status is mosh-client's, which is 0 whatever the remote command returned (see
// tests/ux/exit_status_test.cc): the page and the help say so, not that it is the command's.
TEST(ManPage, ExitStatusOfASessionIsMoshClientsNotTheCommands) {
  std::string section;
  for (const std::string& line : Section(Page("mconnect.1"), "EXIT STATUS")) section += line + " ";
  EXPECT_THAT(section, ::testing::HasSubstr("mosh-client exits 0 whatever the remote command returned"));
  EXPECT_THAT(section, ::testing::Not(::testing::HasSubstr("whose exit status is the command's")));
  EXPECT_THAT(Help({"--help"}), ::testing::HasSubstr("the status is mosh-client's: 0 whatever the remote command"));
}

// persist (--persist) has one meaning everywhere, OpenSSH's ControlPersist: a number of seconds,
// "yes" or 0 until stopped, "no" exit as soon as the last client has gone.
TEST(ConfigPage, PersistHasControlPersistsMeaningsEverywhere) {
  std::string config;
  for (const std::string& line : Section(Page("mconnect-config.5"), "KEYS")) config += line + " ";
  std::string options;
  for (const std::string& line : Section(Page("mconnect.1"), "OPTIONS")) options += line + " ";
  std::ifstream in(std::string(MCONNECT_SOURCE_DIR) + "/contrib/config.toml.example");
  std::stringstream example;
  example << in.rdbuf();
  const std::string help = Help({"--help"});
  for (const std::string& text : {config, options, example.str(), help}) {
    EXPECT_THAT(text, ::testing::HasSubstr("ControlPersist"));
    EXPECT_THAT(text, ::testing::HasSubstr("as soon as"));
    EXPECT_THAT(text, ::testing::Not(::testing::HasSubstr("0 exits as soon as")));
    EXPECT_THAT(text, ::testing::Not(::testing::HasSubstr("0 = exit as soon as")));
  }
  EXPECT_THAT(config, ::testing::HasSubstr("or 0: until it is stopped;"));
  EXPECT_THAT(example.str(), ::testing::HasSubstr("\"yes\" or 0 = until `mconnect stop`; \"no\" = exit as soon as the last client"));
  EXPECT_THAT(help, ::testing::HasSubstr("SECONDS, yes (or 0:\n                             until stopped) or no (exit as soon as the last\n"
                                         "                             client has gone)"));
}

TEST(ManPage, GroffRendersEveryPageWithoutWarnings) {
  for (const char* page : {"mconnect.1", "mconnect-mux.1", "mconnect-config.5"}) {
    SCOPED_TRACE(page);
    auto rendered = RunCommand(
        {"groff", "-ww", "-mdoc", "-Tutf8", "-z", std::string(MCONNECT_SOURCE_DIR) + "/man/" + page});
    ASSERT_TRUE(rendered) << "groff cannot run (scripts/setup installs groff-base): " << rendered.error().message;
    EXPECT_EQ(rendered->exit_code, 0);
    EXPECT_EQ(rendered->err, "") << "groff's warnings";
  }
}

}  // namespace
}  // namespace mconnect::launcher
