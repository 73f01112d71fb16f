// The shell completions in contrib/completions, run by the real shells: bash's function with
// COMP_WORDS/COMP_CWORD set, fish's `complete -C`, zsh's parser. Every HOME is a temporary one.
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/mconnect_lab.h"

namespace mconnect::testing {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::UnorderedElementsAre;

std::string Script(const std::string& name) {
  return std::string(MCONNECT_SOURCE_DIR) + "/contrib/completions/" + name;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

// COMPREPLY after bash's _mconnect for the command line `words` with the cursor on word `cword`.
std::vector<std::string> BashComplete(const LabEnv& env, const std::vector<std::string>& words, int cword) {
  std::vector<std::string> argv{
      "bash", "--norc", "--noprofile", "-c",
      R"(source "$1" || exit 99; COMP_CWORD=$2; shift 2; COMP_WORDS=("$@"); _mconnect; printf '%s\n' "${COMPREPLY[@]}")",
      "bash", Script("mconnect.bash"), std::to_string(cword)};
  argv.insert(argv.end(), words.begin(), words.end());
  auto result = RunCommand(env.Command(argv));
  EXPECT_TRUE(result) << result.error().message;
  if (!result) return {};
  EXPECT_EQ(result->exit_code, 0) << result->err;
  std::vector<std::string> replies;
  for (auto& line : Lines(result->out)) {
    if (!line.empty()) replies.push_back(line);
  }
  return replies;
}

// A HOME whose ~/.ssh/config names hosts plainly, with patterns, and through an Include.
void WriteSshConfig(const LabEnv& env) {
  std::filesystem::create_directories(env.home + "/.ssh/conf.d");
  std::ofstream(env.home + "/.ssh/config") << "Host alpha beta-box *.wild !neg\n"
                                              "  HostName 192.0.2.1\n"
                                              "Include conf.d/*\n"
                                              "Match host alpha\n"
                                              "  User me\n";
  std::ofstream(env.home + "/.ssh/conf.d/more") << "Host gamma\n";
}

TEST(BashCompletion, OffersOptionsSubcommandsAndHostsFromTheSshConfig) {
  TempDir dir;
  LabEnv env(dir.path());
  WriteSshConfig(env);
  EXPECT_THAT(BashComplete(env, {"mconnect", "--pro"}, 1), ElementsAre("--probe-udp"));
  EXPECT_THAT(BashComplete(env, {"mconnect", "do"}, 1), ElementsAre("doctor"));
  EXPECT_THAT(BashComplete(env, {"mconnect", "al"}, 1), ElementsAre("alpha"));
  EXPECT_THAT(BashComplete(env, {"mconnect", "ga"}, 1), ElementsAre("gamma")) << "from the Included file";
  EXPECT_THAT(BashComplete(env, {"mconnect", "me@be"}, 1), ElementsAre("me@beta-box"));
  EXPECT_THAT(BashComplete(env, {"mconnect", "-a", "g"}, 2), ElementsAre("gamma"));
  auto first = BashComplete(env, {"mconnect", ""}, 1);
  EXPECT_THAT(first, UnorderedElementsAre("alpha", "beta-box", "gamma", "status", "stop", "ip", "ssh-config", "doctor",
                                          "master"))
      << "no patterns (*.wild, !neg)";
  // A subcommand's own options, and only those.
  EXPECT_THAT(BashComplete(env, {"mconnect", "doctor", "--j"}, 2), ElementsAre("--json"));
  EXPECT_THAT(BashComplete(env, {"mconnect", "status", "--"}, 2),
              UnorderedElementsAre("--config", "--help", "--json", "--version"));
  EXPECT_THAT(BashComplete(env, {"mconnect", "doctor", "ga"}, 2), ElementsAre("gamma"));
  EXPECT_THAT(BashComplete(env, {"mconnect", "status", ""}, 2), IsEmpty()) << "status takes no host";
  EXPECT_THAT(BashComplete(env, {"mconnect", "--ssh", ""}, 2), IsEmpty()) << "the value of --ssh is no host";
  EXPECT_THAT(BashComplete(env, {"mconnect", "--"}, 1), Not(Contains("--remote-ip=dns")));
}

TEST(BashCompletion, OffersTheHostOfARunningMaster) {
  auto lab = MconnectLab::StartWithMaster();
  ASSERT_TRUE(lab) << lab.error().message;
  EXPECT_THAT(BashComplete((*lab)->env(), {"mconnect", "127.0"}, 1), ElementsAre("127.0.0.1"));
}

TEST(FishCompletion, OffersOptionsSubcommandsAndHosts) {
  TempDir dir;
  LabEnv env(dir.path());
  WriteSshConfig(env);
  auto complete = [&](const std::string& line) {
    auto result = RunCommand(env.Command(
        {"fish", "--no-config", "-c", "source $argv[1]; or exit 99; complete -C $argv[2]", Script("mconnect.fish"), line}));
    EXPECT_TRUE(result) << "fish cannot run (scripts/setup installs it): " << result.error().message;
    if (!result) return std::vector<std::string>{};
    EXPECT_EQ(result->exit_code, 0) << result->err;
    return Lines(result->out);
  };
  EXPECT_THAT(complete("mconnect --pro"), ElementsAre("--probe-udp"));
  EXPECT_THAT(complete("mconnect do"), ElementsAre("doctor\tsubcommand"));
  EXPECT_THAT(complete("mconnect doctor al"), ElementsAre("alpha\thost"));
  EXPECT_THAT(complete("mconnect status --j"), ElementsAre("--json"));
}

TEST(ZshCompletion, ParsesAsAZshScript) {
  auto result = RunCommand({"zsh", "-n", Script("_mconnect")});
  ASSERT_TRUE(result) << "zsh cannot run (scripts/setup installs it): " << result.error().message;
  EXPECT_EQ(result->exit_code, 0) << result->err;
}

// _mconnect's own decisions, with zsh's completion builtins replaced by stubs that print what
// they are given (the real compadd then filters by the prefix; _ssh_hosts is zsh's own).
TEST(ZshCompletion, OffersEachSubcommandsOptionsSubcommandsAndHosts) {
  TempDir dir;
  LabEnv env(dir.path());
  auto offered = [&](int current, const std::vector<std::string>& words) {
    std::vector<std::string> argv{"zsh", "-f", "-c", R"zsh(
compadd() { local a; for a in "$@"; do [[ $a == -- ]] || print -r -- "$a"; done }
compset() { [[ $1 == -P && $PREFIX == *@* ]] && PREFIX=${PREFIX#*@}; return 0 }
_ssh_hosts() { print -r -- "(ssh hosts)" }
source $1 >/dev/null 2>&1 || exit 99
CURRENT=$2; shift 2; words=("$@"); PREFIX=${words[CURRENT]}
_mconnect)zsh", "zsh", Script("_mconnect"), std::to_string(current)};
    argv.insert(argv.end(), words.begin(), words.end());
    auto result = RunCommand(env.Command(argv));
    EXPECT_TRUE(result) << "zsh cannot run (scripts/setup installs it): " << result.error().message;
    if (!result) return std::vector<std::string>{};
    EXPECT_EQ(result->exit_code, 0) << result->err;
    return Lines(result->out);
  };
  EXPECT_THAT(offered(3, {"mconnect", "status", "--"}),
              UnorderedElementsAre("-h", "--help", "--version", "-v", "--config", "--json"));
  EXPECT_THAT(offered(2, {"mconnect", "--pro"}), Contains("--probe-udp"));
  EXPECT_THAT(offered(2, {"mconnect", "--pro"}), Not(Contains("--json")));
  EXPECT_THAT(offered(2, {"mconnect", "d"}), UnorderedElementsAre("status", "stop", "ip", "ssh-config", "doctor",
                                                                  "master", "(ssh hosts)"));
  EXPECT_THAT(offered(3, {"mconnect", "doctor", "b"}), ElementsAre("(ssh hosts)"));
  EXPECT_THAT(offered(3, {"mconnect", "status", ""}), IsEmpty());
  EXPECT_THAT(offered(3, {"mconnect", "--ssh", ""}), IsEmpty());
}

}  // namespace
}  // namespace mconnect::testing
