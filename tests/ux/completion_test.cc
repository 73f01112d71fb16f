// The shell completions in contrib/completions, run by the real shells: bash's function with
// COMP_WORDS/COMP_CWORD set and fish's `complete -C` (fast, exact), then bash, zsh and fish
// themselves in a tmux pane, where a person presses Tab. Every HOME is a temporary one; its
// ~/.ssh/config holds `Host *` beside plain hosts, and the shells run in a directory full of files
// (named like hosts and values, too): none may be offered where a host or a value is expected.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/mconnect_lab.h"
#include "tests/support/paths.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::UnorderedElementsAre;
using ::testing::UnorderedElementsAreArray;

const std::vector<std::string> kSubcommands{"status", "stop", "ip", "ssh-config", "doctor", "master"};
const std::vector<std::string> kConfigHosts{"alpha", "beta-box", "eq-host", "gamma"};

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

std::vector<std::string> Plus(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// A HOME whose ~/.ssh/config names hosts plainly, with patterns (`Host *` among them), with
// `Host=NAME`, and through an Include; and a directory full of files, some named like hosts and
// like option values.
struct World {
  World() : env(dir.path()) {
    std::filesystem::create_directories(env.home + "/.ssh/conf.d");
    std::ofstream(env.home + "/.ssh/config") << "Host alpha beta-box *.wild !neg\n"
                                                "  HostName 192.0.2.1\n"
                                                "Host=eq-host\n"
                                                "Include conf.d/*\n"
                                                "Host *\n"
                                                "  User someone\n"
                                                "Match host alpha\n"
                                                "  User me\n";
    std::ofstream(env.home + "/.ssh/conf.d/more") << "Host gamma  # the third\n";
    files = dir.Sub("files");
    std::filesystem::create_directories(files + "/conf.d");
    for (const char* name : {"alpha-notes", "auto", "ssh", "udp.log", "yes", "lab", "status.txt", "README", "x1", "x2",
                             "x3", "x4", "x5", "x6", "x7", "x8", "x9", "conf.d/evil"}) {
      std::ofstream(files + "/" + name) << "Host evil-from-cwd\n";
    }
  }

  TempDir dir;
  LabEnv env;
  std::string files;
};

// COMPREPLY after bash's _mconnect for the command line `words` with the cursor on word `cword`,
// run in `cwd`.
std::vector<std::string> BashComplete(const World& world, const std::vector<std::string>& words, int cword) {
  std::vector<std::string> argv{
      "bash", "--norc", "--noprofile", "-c",
      R"(source "$1" || exit 99; cd "$2" || exit 98; COMP_CWORD=$3; shift 3; COMP_WORDS=("$@"); _mconnect
         printf '%s\n' "${COMPREPLY[@]}")",
      "bash", Script("mconnect.bash"), world.files, std::to_string(cword)};
  argv.insert(argv.end(), words.begin(), words.end());
  auto result = RunCommand(world.env.Command(argv));
  EXPECT_TRUE(result) << result.error().message;
  if (!result) return {};
  EXPECT_EQ(result->exit_code, 0) << result->err;
  std::vector<std::string> replies;
  for (auto& line : Lines(result->out)) {
    if (!line.empty()) replies.push_back(line);
  }
  return replies;
}

// The options `mconnect --help` shows with a value ("--transport={udp|ssh|auto}").
std::vector<std::string> OptionsWithAValue() {
  auto help = RunCommand({std::string(MCONNECT_BIN_DIR) + "/mconnect", "--help"});
  EXPECT_TRUE(help && help->ok());
  std::vector<std::string> names;
  if (!help) return names;
  std::istringstream words(help->out);
  for (std::string word; words >> word;) {
    const std::size_t eq = word.find('=');
    if (word.starts_with("--") && eq != std::string::npos) {
      std::string name = word.substr(0, eq);
      if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    }
  }
  return names;
}

TEST(BashCompletion, OffersOptionsSubcommandsAndHostsFromTheSshConfig) {
  World world;
  EXPECT_THAT(BashComplete(world, {"mconnect", "--pro"}, 1), ElementsAre("--probe-udp"));
  EXPECT_THAT(BashComplete(world, {"mconnect", "do"}, 1), ElementsAre("doctor"));
  EXPECT_THAT(BashComplete(world, {"mconnect", "al"}, 1), ElementsAre("alpha"));
  EXPECT_THAT(BashComplete(world, {"mconnect", "ga"}, 1), ElementsAre("gamma")) << "from the Included file";
  // Bash splits me@be at '@' (COMP_WORDBREAKS) and readline replaces "@be", '@' included.
  EXPECT_THAT(BashComplete(world, {"mconnect", "me", "@", "be"}, 3), ElementsAre("@beta-box"));
  EXPECT_THAT(BashComplete(world, {"mconnect", "me", "@"}, 2),
              UnorderedElementsAre("@alpha", "@beta-box", "@eq-host", "@gamma"));
  EXPECT_THAT(BashComplete(world, {"mconnect", "-a", "g"}, 2), ElementsAre("gamma"));
  EXPECT_THAT(BashComplete(world, {"mconnect", ""}, 1), UnorderedElementsAreArray(Plus(kConfigHosts, kSubcommands)))
      << "no patterns (*.wild, !neg, *), no files of the current directory";
  // A subcommand's own options, and only those.
  EXPECT_THAT(BashComplete(world, {"mconnect", "doctor", "--j"}, 2), ElementsAre("--json"));
  EXPECT_THAT(BashComplete(world, {"mconnect", "status", "--"}, 2),
              UnorderedElementsAre("--config", "--help", "--json", "--version"));
  EXPECT_THAT(BashComplete(world, {"mconnect", "doctor", "ga"}, 2), ElementsAre("gamma"));
  EXPECT_THAT(BashComplete(world, {"mconnect", "status", ""}, 2), IsEmpty()) << "status takes no host";
  EXPECT_THAT(BashComplete(world, {"mconnect", "stop", ""}, 2), IsEmpty()) << "no master runs";
  EXPECT_THAT(BashComplete(world, {"mconnect", "--ssh", ""}, 2), IsEmpty()) << "the value of --ssh is no host";
  EXPECT_THAT(BashComplete(world, {"mconnect", "--"}, 1), Not(Contains("--remote-ip=dns")));
  EXPECT_THAT(BashComplete(world, {"mconnect", "alpha", ""}, 2), IsEmpty()) << "after the host, the remote command";
  EXPECT_THAT(BashComplete(world, {"mconnect", "doctor", "alpha", ""}, 3), IsEmpty());
}

TEST(BashCompletion, OffersTheValuesOfOptionsWithAFixedSet) {
  World world;
  EXPECT_THAT(BashComplete(world, {"mconnect", "--transport", ""}, 2), UnorderedElementsAre("udp", "ssh", "auto"));
  // Bash splits --transport=u at '=' (COMP_WORDBREAKS); without '=' there, it is one word.
  EXPECT_THAT(BashComplete(world, {"mconnect", "--transport", "=", "u"}, 3), ElementsAre("udp"));
  EXPECT_THAT(BashComplete(world, {"mconnect", "--transport", "="}, 2), UnorderedElementsAre("udp", "ssh", "auto"));
  EXPECT_THAT(BashComplete(world, {"mconnect", "--transport=s"}, 1), ElementsAre("--transport=ssh"));
  EXPECT_THAT(BashComplete(world, {"mconnect", "--predict", ""}, 2),
              UnorderedElementsAre("adaptive", "always", "never", "experimental"));
  EXPECT_THAT(BashComplete(world, {"mconnect", "--family", ""}, 2),
              UnorderedElementsAre("inet", "inet6", "auto", "all", "prefer-inet", "prefer-inet6"));
  EXPECT_THAT(BashComplete(world, {"mconnect", "--bind-server", ""}, 2), UnorderedElementsAre("ssh", "any"));
  EXPECT_THAT(BashComplete(world, {"mconnect", "--experimental-remote-ip", ""}, 2),
              UnorderedElementsAre("local", "remote", "proxy"));
  EXPECT_THAT(BashComplete(world, {"mconnect", "doctor", "--remote-ip", ""}, 3),
              UnorderedElementsAre("peer", "ssh-connection", "dns", "command:", "static:"));
  EXPECT_THAT(BashComplete(world, {"mconnect", "--persist", ""}, 2), UnorderedElementsAre("yes", "no"));
  EXPECT_THAT(BashComplete(world, {"mconnect", "--config", "RE"}, 2), ElementsAre("README")) << "a file";
  // After an option's value, the host again.
  EXPECT_THAT(BashComplete(world, {"mconnect", "--transport", "udp", "g"}, 3), ElementsAre("gamma"));
  EXPECT_THAT(BashComplete(world, {"mconnect", "-p", "60001", "g"}, 3), ElementsAre("gamma"));
  // No option that takes a value is completed with host names.
  const auto options = OptionsWithAValue();
  EXPECT_THAT(options, Contains("--transport"));
  for (const auto& option : options) {
    EXPECT_THAT(BashComplete(world, {"mconnect", option, ""}, 2), Not(Contains("alpha"))) << option;
  }
}

// A master runs for the lab's sshd, started as `lab` (its HostName is 127.0.0.1): connecting
// takes `lab`, `stop` takes `lab` or what `mconnect status` shows (user@host:port), never the
// HostName alone, which `stop` would reject.
TEST(MasterCompletion, OffersRunningMastersAsConnectAndStopTakeThem) {
  World world;
  auto lab = MconnectLab::StartWithMaster();
  ASSERT_TRUE(lab) << lab.error().message;
  world.env.Set("XDG_RUNTIME_DIR", (*lab)->env().runtime_dir);
  auto status = (*lab)->Status();
  ASSERT_TRUE(status) << status.error().message;
  const std::string destination = status->destination();
  const std::string port = std::to_string((*lab)->sshd().port());
  ASSERT_EQ(destination, "root@127.0.0.1:" + port);

  EXPECT_THAT(BashComplete(world, {"mconnect", "la"}, 1), ElementsAre("lab"));
  EXPECT_THAT(BashComplete(world, {"mconnect", "127.0"}, 1), IsEmpty());
  EXPECT_THAT(BashComplete(world, {"mconnect", "stop", ""}, 2), UnorderedElementsAre("lab", destination));
  EXPECT_THAT(BashComplete(world, {"mconnect", "stop", "ro"}, 2), ElementsAre(destination));
  EXPECT_THAT(BashComplete(world, {"mconnect", "l", "@", "la"}, 3), ElementsAre("@lab"));
  EXPECT_THAT(BashComplete(world, {"mconnect", "stop", "12"}, 2), IsEmpty());
  // Bash splits user@host:port at '@' and ':' (COMP_WORDBREAKS); readline replaces what follows
  // the last ':', or the last '@' with it.
  EXPECT_THAT(BashComplete(world, {"mconnect", "stop", "root", "@", "127.0.0.1", ":", port.substr(0, 1)}, 6),
              ElementsAre(port));
  EXPECT_THAT(BashComplete(world, {"mconnect", "stop", "root", "@", "127.0.0.1", ":"}, 5), ElementsAre(port));
  EXPECT_THAT(BashComplete(world, {"mconnect", "stop", "root", "@", "1"}, 4), ElementsAre("@127.0.0.1:" + port));
  EXPECT_THAT(BashComplete(world, {"mconnect", "stop", "lab", ""}, 3), IsEmpty()) << "stop takes one master";

  auto fish = RunCommand(world.env.Command({"fish", "--no-config", "-c", "source $argv[1]; or exit 99; complete -C $argv[2]",
                                            Script("mconnect.fish"), "mconnect stop "}));
  ASSERT_TRUE(fish) << fish.error().message;
  EXPECT_THAT(Lines(fish->out), UnorderedElementsAre("lab\tmaster", destination + "\tmaster"));
}

TEST(FishCompletion, OffersOptionsValuesSubcommandsAndHosts) {
  World world;
  auto complete = [&](const std::string& line) {
    auto result = RunCommand(world.env.Command({"fish", "--no-config", "-c",
                                                "source $argv[1]; or exit 99; cd $argv[2]; or exit 98; complete -C $argv[3]",
                                                Script("mconnect.fish"), world.files, line}));
    EXPECT_TRUE(result) << "fish cannot run (scripts/setup installs it): " << result.error().message;
    if (!result) return std::vector<std::string>{};
    EXPECT_EQ(result->exit_code, 0) << result->err;
    return Lines(result->out);
  };
  EXPECT_THAT(complete("mconnect --pro"), ElementsAre("--probe-udp"));
  EXPECT_THAT(complete("mconnect do"), ElementsAre("doctor\tsubcommand"));
  EXPECT_THAT(complete("mconnect doctor al"), ElementsAre("alpha\thost"));
  EXPECT_THAT(complete("mconnect status --j"), ElementsAre("--json"));
  std::vector<std::string> first;
  for (const auto& host : kConfigHosts) first.push_back(host + "\thost");
  for (const auto& sub : kSubcommands) first.push_back(sub + "\tsubcommand");
  EXPECT_THAT(complete("mconnect "), UnorderedElementsAreArray(first));
  EXPECT_THAT(complete("mconnect stop "), IsEmpty()) << "no master runs";
  EXPECT_THAT(complete("mconnect alpha "), IsEmpty());
  EXPECT_THAT(complete("mconnect --transport "), UnorderedElementsAre("udp", "ssh", "auto"));
  EXPECT_THAT(complete("mconnect --transport=s"), ElementsAre("--transport=ssh"));
  EXPECT_THAT(complete("mconnect --persist "), UnorderedElementsAre("yes", "no"));
  EXPECT_THAT(complete("mconnect --predict n"), ElementsAre("never"));
  EXPECT_THAT(complete("mconnect --family prefer"), UnorderedElementsAre("prefer-inet", "prefer-inet6"));
  for (const auto& option : OptionsWithAValue()) {
    EXPECT_THAT(complete("mconnect " + option + " "), Not(Contains("alpha\thost"))) << option;
  }
}

TEST(ZshCompletion, ParsesAsAZshScript) {
  auto result = RunCommand({"zsh", "-n", Script("_mconnect")});
  ASSERT_TRUE(result) << "zsh cannot run (scripts/setup installs it): " << result.error().message;
  EXPECT_EQ(result->exit_code, 0) << result->err;
}

// ---- a person at a terminal --------------------------------------------------------------

// One interactive shell in a tmux pane, with mconnect's completion loaded as a package installs
// it, in `world.files`. Complete() types a line and one Tab, and reads back the command line and
// the choices the shell listed under it.
class ShellPane {
 public:
  struct Offered {
    std::string line;              // the command line after the Tab, without the prompt
    std::set<std::string> words;   // the choices listed (fish's "(description)"s left out)
  };

  ShellPane(const std::string& shell, const World& world) : tmux_(world.dir.Sub("t-" + shell)) {
    std::filesystem::create_directories(world.dir.Sub("t-" + shell));
    const std::string rc = world.dir.Sub(shell + "rc");
    const std::string completions = std::string(MCONNECT_SOURCE_DIR) + "/contrib/completions";
    std::string command = "cd " + ShellQuote(world.files) + " && ";
    if (shell == "bash") {
      std::ofstream(rc) << "PS1='PROMPT> '\nHISTFILE=/dev/null\nbind 'set bell-style none'\n"
                           "bind 'set show-all-if-ambiguous on'\nsource "
                        << ShellQuote(completions + "/mconnect.bash") << "\n";
      command += "exec bash --noprofile --rcfile " + ShellQuote(rc) + " -i";
    } else if (shell == "zsh") {
      std::filesystem::create_directories(rc);
      std::ofstream(rc + "/.zshrc") << "PS1='PROMPT> '\nunsetopt beep\nfpath=(" << ShellQuote(completions)
                                    << " $fpath)\nautoload -U compinit && compinit -u -D\n";
      command += "ZDOTDIR=" + ShellQuote(rc) + " exec zsh -i";
    } else {
      command += "XDG_DATA_HOME=" + ShellQuote(world.dir.Sub("fish-data")) +
                 " exec fish --no-config -C " +
                 ShellQuote("function fish_prompt; echo 'PROMPT> '; end; set -g fish_greeting; "
                            "set -g fish_autosuggestion_enabled 0; source " +
                            ShellQuote(completions + "/mconnect.fish"));
    }
    auto started = tmux_.Start(command, world.env, 150, 40);
    EXPECT_TRUE(started) << started.error().message;
    ready_ = started && tmux_.WaitFor("PROMPT> ", 20s);
    EXPECT_TRUE(ready_) << shell << " shows no prompt:\n" << Screen();
  }

  ~ShellPane() {
    if (tmux_.PanePid() > 0) KillPid(tmux_.PanePid(), 500ms);
  }

  Offered Complete(const std::string& typed) {
    if (!ready_) return {};
    // A fresh, empty command line at the top of a clear screen.
    EXPECT_TRUE(tmux_.SendKeys("C-c"));
    std::this_thread::sleep_for(100ms);
    EXPECT_TRUE(tmux_.SendKeys("C-l"));
    EXPECT_TRUE(WaitForScreen([](const std::vector<std::string>& lines) {
      return lines.size() == 1 && lines[0] == "PROMPT>";
    })) << "no clear prompt:\n" << Screen();
    EXPECT_TRUE(tmux_.Type(typed));
    const std::string echoed = "PROMPT> " + Trimmed(typed);
    EXPECT_TRUE(WaitForScreen([&](const std::vector<std::string>& lines) {
      return lines.size() == 1 && lines[0] == echoed;
    })) << "the typed line does not show:\n" << Screen();
    const std::string before = Screen();
    EXPECT_TRUE(tmux_.SendKeys("Tab"));
    // Until the screen changes and then holds still, or nothing happens for 2 s (nothing offered).
    std::string last = before;
    int still = 0;
    for (auto deadline = std::chrono::steady_clock::now() + 10s; std::chrono::steady_clock::now() < deadline;) {
      std::this_thread::sleep_for(100ms);
      const std::string now = Screen();
      still = now == last ? still + 1 : 0;
      last = now;
      if (now != before && still >= 5) break;
      if (now == before && still >= 20) break;
    }
    return Parse(last);
  }

  std::string Screen() const { return tmux_.Capture().value_or(""); }

 private:
  static std::string Trimmed(std::string text) {
    while (!text.empty() && text.back() == ' ') text.pop_back();
    return text;
  }

  // The screen's non-empty lines, each without trailing blanks.
  std::vector<std::string> ScreenLines() const {
    std::vector<std::string> lines;
    for (auto& line : Lines(Screen())) {
      if (!Trimmed(line).empty()) lines.push_back(Trimmed(line));
    }
    return lines;
  }

  bool WaitForScreen(const std::function<bool(const std::vector<std::string>&)>& done) const {
    for (auto deadline = std::chrono::steady_clock::now() + 10s; std::chrono::steady_clock::now() < deadline;) {
      if (done(ScreenLines())) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }

  static Offered Parse(const std::string& screen) {
    Offered offered;
    bool prompt_seen = false;
    for (std::string line : Lines(screen)) {
      line = Trimmed(line);
      if (line.starts_with("PROMPT>")) {
        if (prompt_seen) break;  // bash prints the prompt again under its list
        prompt_seen = true;
        offered.line = line.size() > 8 ? line.substr(8) : "";
        continue;
      }
      if (!prompt_seen) continue;
      std::istringstream words(line);
      for (std::string word; words >> word;) {
        if (!(word.starts_with('(') && word.ends_with(')'))) offered.words.insert(word);
      }
    }
    return offered;
  }

  Tmux tmux_;
  bool ready_ = false;
};

class InteractiveCompletion : public ::testing::TestWithParam<std::string> {};

// What the issue reported, with a master running for the lab's sshd (started as `lab`; its
// HostName is 127.0.0.1): `mconnect <TAB>` offered every file of the current directory, `stop`
// offered HostNames that `stop` then rejects, `--transport <TAB>` offered host names.
TEST_P(InteractiveCompletion, OffersHostsMastersAndValuesNeverFiles) {
  World world;
  auto lab = MconnectLab::StartWithMaster();
  ASSERT_TRUE(lab) << lab.error().message;
  // The master writes its socket in this runtime directory: `mconnect status` there lists it.
  world.env.Set("XDG_RUNTIME_DIR", (*lab)->env().runtime_dir);
  ShellPane shell(GetParam(), world);
  using Words = std::set<std::string>;
  auto words = [](const std::vector<std::string>& list) { return Words(list.begin(), list.end()); };

  auto first = shell.Complete("mconnect ");
  EXPECT_EQ(first.words, words(Plus(Plus(kConfigHosts, kSubcommands), {"lab"}))) << shell.Screen();

  auto status_reply = (*lab)->Status();
  ASSERT_TRUE(status_reply) << status_reply.error().message;
  const std::string destination = status_reply->destination();  // root@127.0.0.1:PORT
  auto stop = shell.Complete("mconnect stop ");
  EXPECT_EQ(stop.words, (Words{"lab", destination})) << "the running master, as stop takes it:\n" << shell.Screen();
  EXPECT_EQ(shell.Complete("mconnect stop ro").line, "mconnect stop " + destination) << shell.Screen();
  EXPECT_EQ(shell.Complete("mconnect stop root@127.0.0.1:").line, "mconnect stop " + destination) << shell.Screen();
  EXPECT_EQ(shell.Complete("mconnect stop l").line, "mconnect stop lab") << shell.Screen();
  // Never the HostName alone, which stop rejects (fish matches "127" inside the destination).
  auto stop_hostname = shell.Complete("mconnect stop 127");
  EXPECT_THAT(stop_hostname.line, ::testing::AnyOf("mconnect stop 127", "mconnect stop " + destination))
      << shell.Screen();
  EXPECT_THAT(stop_hostname.words, Not(Contains("127.0.0.1"))) << shell.Screen();
  auto status = shell.Complete("mconnect status ");
  EXPECT_EQ(status.line, "mconnect status") << shell.Screen();
  EXPECT_THAT(status.words, IsEmpty()) << shell.Screen();

  EXPECT_EQ(shell.Complete("mconnect --transport ").words, (Words{"udp", "ssh", "auto"})) << shell.Screen();
  EXPECT_EQ(shell.Complete("mconnect --transport=s").line, "mconnect --transport=ssh") << shell.Screen();
  EXPECT_EQ(shell.Complete("mconnect --predict ").words, (Words{"adaptive", "always", "never", "experimental"}))
      << shell.Screen();
  EXPECT_EQ(shell.Complete("mconnect --family ").words,
            (Words{"inet", "inet6", "auto", "all", "prefer-inet", "prefer-inet6"}))
      << shell.Screen();
  EXPECT_EQ(shell.Complete("mconnect --persist ").words, (Words{"yes", "no"})) << shell.Screen();

  auto after_host = shell.Complete("mconnect alpha ");
  EXPECT_EQ(after_host.line, "mconnect alpha") << shell.Screen();
  EXPECT_THAT(after_host.words, IsEmpty()) << shell.Screen();
  EXPECT_EQ(shell.Complete("mconnect doctor g").line, "mconnect doctor gamma") << shell.Screen();
  EXPECT_EQ(shell.Complete("mconnect me@g").line, "mconnect me@gamma") << shell.Screen();
  EXPECT_EQ(shell.Complete("mconnect --pro").line, "mconnect --probe-udp") << shell.Screen();
}

INSTANTIATE_TEST_SUITE_P(Shells, InteractiveCompletion, ::testing::Values("bash", "zsh", "fish"),
                         [](const auto& shell) { return shell.param; });

}  // namespace
}  // namespace mconnect::testing
