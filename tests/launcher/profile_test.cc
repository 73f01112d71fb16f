#include "launcher/profile.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "launcher/cli.h"
#include "tests/support/paths.h"

namespace mconnect::launcher {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Every test gets its own mkdtemp directory; nothing touches the real home.
class ProfileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "mconnect-profile-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Writes `text` as NAME in the temp dir; returns its path.
  std::string Write(const std::string& text, const std::string& name = "config.toml") {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
    return path;
  }

  Profile Load(const std::string& text) {
    auto profile = LoadProfile(Write(text));
    if (!profile) {
      ADD_FAILURE() << profile.error().message;
      return {};
    }
    return *profile;
  }

  // The error for `text`, with the temp dir's path replaced by "config.toml".
  std::string LoadError(const std::string& text) {
    const std::string path = Write(text);
    auto profile = LoadProfile(path);
    if (profile) {
      ADD_FAILURE() << "profile loaded:\n" << text;
      return {};
    }
    std::string message = profile.error().message;
    if (message.starts_with(path)) message.replace(0, path.size(), "config.toml");
    return message;
  }

  std::string dir_;
};

Options ParseOk(std::initializer_list<const char*> args) {
  std::vector<const char*> argv{"mconnect"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto parsed = ParseCommandLine(static_cast<int>(argv.size()), argv.data());
  EXPECT_TRUE(parsed && std::holds_alternative<Options>(*parsed));
  return parsed && std::holds_alternative<Options>(*parsed) ? std::get<Options>(*parsed) : Options{};
}

TEST_F(ProfileTest, MissingFileGivesBuiltInDefaults) {
  auto profile = LoadProfile(dir_ + "/nonexistent/config.toml");
  ASSERT_TRUE(profile) << profile.error().message;
  EXPECT_EQ(profile->path(), "");
  const HostProfile host = profile->ForHost("bebou");
  const HostProfile defaults;
  EXPECT_EQ(host.remote_ip, defaults.remote_ip);
  EXPECT_THAT(host.remote_ip, ElementsAre("peer", "dns"));
  EXPECT_EQ(host.remote_ip_cache_ttl_s, 300);
  EXPECT_EQ(host.mosh_ports, "");
  EXPECT_EQ(host.predict, "adaptive");
  EXPECT_EQ(host.server, "mosh-server");
  EXPECT_EQ(host.client, "mosh-client");
  EXPECT_EQ(host.persist_s, 600);
  EXPECT_EQ(host.keepalive_s, 30);
  EXPECT_EQ(host.socket_dir, "");
  EXPECT_EQ(host.host_key_policy, "ask");
}

TEST_F(ProfileTest, MissingFileNamedByTheUserIsAnError) {
  const std::string path = dir_ + "/nope.toml";
  auto profile = LoadProfile(path, MissingProfile::kFail);
  ASSERT_FALSE(profile);
  EXPECT_EQ(profile.error().message, path + ": no such file");
}

TEST_F(ProfileTest, EmptyFileGivesDefaults) {
  const Profile profile = Load("# nothing yet\n");
  EXPECT_EQ(profile.ForHost("x").persist_s, 600);
}

TEST_F(ProfileTest, UnreadableFileIsAnError) {
  ::mkdir((dir_ + "/adir").c_str(), 0700);
  auto profile = LoadProfile(dir_ + "/adir");
  ASSERT_FALSE(profile);
  EXPECT_EQ(profile.error().message, dir_ + "/adir: not a regular file");
}

TEST_F(ProfileTest, EveryKey) {
  const Profile profile = Load(R"(
[defaults]
remote-ip = ["command:curl -sS https://ipinfo.io/ip", "peer", "ssh-connection", "dns", "static:192.0.2.1"]
remote-ip-cache-ttl = 60
mosh-ports = "60001:60999"
predict = "never"
server = "/opt/mosh/bin/mosh-server"
client = "/opt/mosh/bin/mosh-client"
persist = 0
keepalive = 15
socket-dir = "/run/user/1000/mc"
host-key-policy = "strict"
transport = "ssh"
)");
  const HostProfile host = profile.ForHost("anything");
  EXPECT_THAT(host.remote_ip,
              ElementsAre("command:curl -sS https://ipinfo.io/ip", "peer", "ssh-connection", "dns", "static:192.0.2.1"));
  EXPECT_EQ(host.remote_ip_cache_ttl_s, 60);
  EXPECT_EQ(host.mosh_ports, "60001:60999");
  EXPECT_EQ(host.predict, "never");
  EXPECT_EQ(host.server, "/opt/mosh/bin/mosh-server");
  EXPECT_EQ(host.client, "/opt/mosh/bin/mosh-client");
  EXPECT_EQ(host.persist_s, 0);
  EXPECT_EQ(host.keepalive_s, 15);
  EXPECT_EQ(host.socket_dir, "/run/user/1000/mc");
  EXPECT_EQ(host.host_key_policy, "strict");
  EXPECT_EQ(host.transport, "ssh");
}

TEST_F(ProfileTest, HostTablesOverrideDefaultsInFileOrder) {
  const Profile profile = Load(R"(
[defaults]
persist = 100
predict = "always"

[host."*"]
persist = 200
keepalive = 5

[host.bebou]
remote-ip = ["command:curl -sS https://ipinfo.io/ip", "peer"]
persist = 300

[host."*.example.org"]
mosh-ports = "61000:61010"

[host."a*"]
persist = 400
)");
  HostProfile bebou = profile.ForHost("bebou");
  EXPECT_THAT(bebou.remote_ip, ElementsAre("command:curl -sS https://ipinfo.io/ip", "peer"));
  EXPECT_EQ(bebou.persist_s, 300);  // [host.bebou] comes after [host."*"]
  EXPECT_EQ(bebou.keepalive_s, 5);  // from [host."*"]
  EXPECT_EQ(bebou.predict, "always");  // from [defaults]
  EXPECT_EQ(bebou.mosh_ports, "");

  // Sorted by key, "a*" would come before "bebou"; file order puts it last.
  const HostProfile alpha = profile.ForHost("alpha");
  EXPECT_EQ(alpha.persist_s, 400);

  const HostProfile web = profile.ForHost("WWW.Example.ORG");  // host names are case-blind
  EXPECT_EQ(web.mosh_ports, "61000:61010");
  EXPECT_EQ(web.persist_s, 200);
  EXPECT_THAT(web.remote_ip, ElementsAre("peer", "dns"));  // built-in

  EXPECT_EQ(profile.ForHost("example.org").mosh_ports, "");  // "*.example.org" needs a dot
}

TEST_F(ProfileTest, GlobCharacterClasses) {
  const Profile profile = Load(R"(
[host."node[0-9]"]
persist = 1
[host."db?"]
persist = 2
)");
  EXPECT_EQ(profile.ForHost("node7").persist_s, 1);
  EXPECT_EQ(profile.ForHost("node10").persist_s, 600);
  EXPECT_EQ(profile.ForHost("db1").persist_s, 2);
  EXPECT_EQ(profile.ForHost("db12").persist_s, 600);
}

TEST_F(ProfileTest, PrecedenceCommandLineThenHostThenDefaultsThenBuiltIn) {
  const Profile profile = Load(R"(
[defaults]
predict = "never"
server = "profile-server"
client = "profile-client"
persist = 100
mosh-ports = "60100:60200"

[host.bebou]
server = "bebou-server"
remote-ip = ["dns"]
)");
  // Nothing on the command line: host table, then defaults.
  Options o = ParseOk({"alice@bebou"});
  ApplyProfile(o, profile.ForHost(SplitDestination(o.destination).host));
  EXPECT_EQ(o.server, "bebou-server");
  EXPECT_EQ(o.client, "profile-client");
  EXPECT_EQ(o.predict, "never");
  EXPECT_EQ(o.persist_s, 100);
  EXPECT_EQ(o.port_range, "60100:60200");
  EXPECT_THAT(o.remote_ip, ElementsAre("dns"));

  // Everything on the command line wins.
  o = ParseOk({"--server=cli-server", "--client=cli-client", "-a", "--persist=5", "-p", "7000", "--remote-ip=peer",
               "bebou"});
  ApplyProfile(o, profile.ForHost("bebou"));
  EXPECT_EQ(o.server, "cli-server");
  EXPECT_EQ(o.client, "cli-client");
  EXPECT_EQ(o.predict, "always");
  EXPECT_EQ(o.persist_s, 5);
  EXPECT_EQ(o.port_range, "7000");
  EXPECT_THAT(o.remote_ip, ElementsAre("peer"));

  // mosh's --experimental-remote-ip counts as the command line too.
  o = ParseOk({"--experimental-remote-ip=remote", "bebou"});
  ApplyProfile(o, profile.ForHost("bebou"));
  EXPECT_THAT(o.remote_ip, ElementsAre("ssh-connection"));

  // MOSH_PREDICTION_DISPLAY beats the profile.
  o = ParseOk({"bebou"});
  ASSERT_TRUE(ApplyPredictionEnvironment(o, "experimental"));
  ApplyProfile(o, profile.ForHost("bebou"));
  EXPECT_EQ(o.predict, "experimental");

  // Neither command line nor profile: built-in defaults.
  o = ParseOk({"elsewhere"});
  ApplyProfile(o, Profile().ForHost("elsewhere"));
  EXPECT_EQ(o.server, "mosh-server");
  EXPECT_EQ(o.client, "mosh-client");
  EXPECT_EQ(o.predict, "adaptive");
  EXPECT_EQ(o.persist_s, 600);
  EXPECT_EQ(o.port_range, "");
  EXPECT_THAT(o.remote_ip, ElementsAre("peer", "dns"));
}

TEST_F(ProfileTest, SyntaxErrorNamesFileAndLine) {
  EXPECT_THAT(LoadError("[defaults]\npersist = \n"), StartsWith("config.toml:2: "));
  EXPECT_THAT(LoadError("[defaults\n"), StartsWith("config.toml:1: "));
  EXPECT_THAT(LoadError("[defaults]\npersist = 1\npersist = 2\n"), StartsWith("config.toml:3: "));
}

TEST_F(ProfileTest, UnknownKeysAreErrors) {
  EXPECT_EQ(LoadError("[defaults]\npersist = 1\nremote_ip = [\"peer\"]\n"),
            "config.toml:3: unknown key \"remote_ip\" in [defaults] (did you mean \"remote-ip\"?)");
  EXPECT_EQ(LoadError("\n[host.bebou]\nprdict = \"never\"\n"),
            "config.toml:3: unknown key \"prdict\" in [host.bebou] (did you mean \"predict\"?)");
  EXPECT_EQ(LoadError("[host.\"*.example.org\"]\ncolour = true\n"),
            "config.toml:2: unknown key \"colour\" in [host.\"*.example.org\"]");
  EXPECT_EQ(LoadError("[default]\npersist = 1\n"),
            "config.toml:1: unknown key \"default\"; the profile holds [defaults] and [host.NAME] tables "
            "(did you mean \"defaults\"?)");
  EXPECT_EQ(LoadError("persist = 1\n"),
            "config.toml:1: unknown key \"persist\"; the profile holds [defaults] and [host.NAME] tables");
}

TEST_F(ProfileTest, WrongTypesAreErrors) {
  EXPECT_EQ(LoadError("[defaults]\n\npersist = \"600\"\n"),
            "config.toml:3: persist \"600\" is neither \"yes\" nor \"no\" (seconds are a number: persist = 600)");
  EXPECT_EQ(LoadError("[defaults]\npersist = true\n"),
            "config.toml:2: persist must be a number of seconds, \"yes\" or \"no\", not a boolean");
  EXPECT_EQ(LoadError("[defaults]\nkeepalive = 1.5\n"),
            "config.toml:2: keepalive must be an integer (seconds), not a float");
  EXPECT_EQ(LoadError("[defaults]\nremote-ip = \"peer\"\n"),
            "config.toml:2: remote-ip must be an array of strategies like [\"peer\"], not a string");
  EXPECT_EQ(LoadError("[defaults]\nremote-ip = [\"peer\",\n  3]\n"),
            "config.toml:3: remote-ip must be a string, not an integer");
  EXPECT_EQ(LoadError("[defaults]\nmosh-ports = 60001\n"), "config.toml:2: mosh-ports must be a string, not an integer");
  EXPECT_EQ(LoadError("[defaults]\npredict = true\n"), "config.toml:2: predict must be a string, not a boolean");
  EXPECT_EQ(LoadError("[defaults]\nserver = []\n"), "config.toml:2: server must be a string, not an array");
  EXPECT_EQ(LoadError("defaults = 3\n"), "config.toml:1: defaults must be a table ([defaults]), not an integer");
  EXPECT_EQ(LoadError("host = \"bebou\"\n"), "config.toml:1: host must hold [host.NAME] tables, not a string");
  EXPECT_EQ(LoadError("[host]\nbebou = 1\n"), "config.toml:2: host.bebou must be a table ([host.bebou]), not an integer");
}

TEST_F(ProfileTest, BadValuesAreErrors) {
  EXPECT_EQ(LoadError("[defaults]\nmosh-ports = \"70000\"\n"),
            "config.toml:2: mosh-ports \"70000\" is not a port range: 70000 is above 65535");
  EXPECT_EQ(LoadError("[host.bebou]\nmosh-ports = \"61000:60000\"\n"),
            "config.toml:2: mosh-ports \"61000:60000\" is not a port range: the low port is greater than the high port");
  EXPECT_EQ(LoadError("[defaults]\npredict = \"sometimes\"\n"),
            "config.toml:2: predict \"sometimes\" is not a prediction mode: "
            "expected adaptive, always, never or experimental");
  EXPECT_EQ(LoadError("[defaults]\nhost-key-policy = \"yes\"\n"),
            "config.toml:2: host-key-policy \"yes\" is not a host-key policy: expected ask, accept-new or strict");
  EXPECT_EQ(LoadError("[defaults]\npersist = -5\n"), "config.toml:2: persist is -5; it must be 0 or more seconds");
  EXPECT_EQ(LoadError("[host.bebou]\ntransport = \"tcp\"\n"),
            "config.toml:2: transport \"tcp\" is not a transport: expected udp, ssh or auto");
  EXPECT_EQ(LoadError("[defaults]\nremote-ip-cache-ttl = -1\n"),
            "config.toml:2: remote-ip-cache-ttl is -1; it must be 0 or more seconds");
  EXPECT_EQ(LoadError("[defaults]\nkeepalive = 99999999999\n"),
            "config.toml:2: keepalive is 99999999999; at most 2147483647 seconds");
  EXPECT_EQ(LoadError("[defaults]\nremote-ip = [\n  \"peer\",\n  \"ipinfo\",\n]\n"),
            "config.toml:4: remote-ip: unknown remote-ip strategy \"ipinfo\" "
            "(expected command:<shell command>, peer, ssh-connection, dns or static:<ip>)");
  EXPECT_EQ(LoadError("[defaults]\nremote-ip = [\"static:bebou.example.org\"]\n"),
            "config.toml:2: remote-ip: static:bebou.example.org: not an IP literal");
  EXPECT_EQ(LoadError("[defaults]\nremote-ip = [\"command:\"]\n"),
            "config.toml:2: remote-ip: command: needs a shell command to run on the server, "
            "e.g. command:curl -sS https://ipinfo.io/ip");
  EXPECT_EQ(LoadError("[defaults]\nremote-ip = []\n"),
            "config.toml:2: remote-ip is empty: name at least one strategy");
  EXPECT_EQ(LoadError("[defaults]\nserver = \"\"\n"), "config.toml:2: server is empty");
  EXPECT_EQ(LoadError("[defaults]\nclient = \"\"\n"), "config.toml:2: client is empty");
  EXPECT_EQ(LoadError("[defaults]\nsocket-dir = \"run/mc\"\n"),
            "config.toml:2: socket-dir \"run/mc\" is not an absolute path");
  EXPECT_EQ(LoadError("[host.\"\"]\npersist = 1\n"), "config.toml:1: host.\"\" has an empty host pattern");
}

// persist has OpenSSH's ControlPersist meanings: a number of seconds (0: until stopped), "yes"
// (the same as 0) or "no" (exit as soon as the last client has gone).
TEST_F(ProfileTest, PersistIsControlPersist) {
  const Profile profile = Load(R"(
[defaults]
persist = 0
[host.kept]
persist = "yes"
[host.brief]
persist = "no"
[host.timed]
persist = 90
)");
  EXPECT_EQ(profile.ForHost("other").persist_s, kPersistForever);
  EXPECT_EQ(profile.ForHost("kept").persist_s, kPersistForever);
  EXPECT_EQ(profile.ForHost("brief").persist_s, kPersistNo);
  EXPECT_EQ(profile.ForHost("timed").persist_s, 90);
  EXPECT_EQ(LoadError("[defaults]\npersist = \"forever\"\n"),
            "config.toml:2: persist \"forever\" is neither \"yes\" nor \"no\" (seconds are a number: persist = 600)");
  // The command line still wins.
  Options o = ParseOk({"--persist=no", "kept"});
  ApplyProfile(o, profile.ForHost("kept"));
  EXPECT_EQ(o.persist_s, kPersistNo);
}

TEST_F(ProfileTest, EveryHostTableIsCheckedNotOnlyTheOneInUse) {
  EXPECT_THAT(LoadError("[host.never-used]\npredict = \"bogus\"\n"), StartsWith("config.toml:2: predict \"bogus\""));
}

TEST_F(ProfileTest, ErrorUsesThePathAsGiven) {
  Write("[defaults]\nkeepalive = \"x\"\n", "relative.toml");
  const std::string cwd = std::filesystem::current_path().string();
  ASSERT_EQ(::chdir(dir_.c_str()), 0);
  auto profile = LoadProfile("relative.toml");
  ASSERT_EQ(::chdir(cwd.c_str()), 0);
  ASSERT_FALSE(profile);
  EXPECT_EQ(profile.error().message, "relative.toml:2: keepalive must be an integer (seconds), not a string");
}

TEST_F(ProfileTest, EmptyMoshPortsMeansMoshServerDefault) {
  EXPECT_EQ(Load("[defaults]\nmosh-ports = \"\"\n").ForHost("x").mosh_ports, "");
}

TEST_F(ProfileTest, ForwardsAreCheckedEntryByEntry) {
  const Profile profile = Load("[defaults]\nforward = [\"D 1080\"]\n[host.bebou]\n"
                               "forward = [\"L 8080:localhost:80\", \"R 9000:localhost:9000\"]\n");
  EXPECT_THAT(profile.ForHost("bebou").forward, ElementsAre("L 8080:localhost:80", "R 9000:localhost:9000"));
  EXPECT_THAT(profile.ForHost("other").forward, ElementsAre("D 1080"));
  EXPECT_TRUE(Profile().ForHost("x").forward.empty());
  EXPECT_EQ(LoadError("[host.bebou]\nforward = [\"L 8080:localhost:80\",\n  \"X 80\"]\n"),
            "config.toml:3: forward \"X 80\" is not a forward: expected L, R or D, a blank, then the forward as "
            "ssh's -L, -R or -D take it (\"L 8080:localhost:80\")");
  EXPECT_EQ(LoadError("[defaults]\nforward = [\"L 8080:localhost:0\"]\n"),
            "config.toml:2: forward \"L 8080:localhost:0\" is not a forward: L: destination port \"0\" is not a "
            "number from 1 to 65535");
  EXPECT_EQ(LoadError("[defaults]\nforward = \"L 8080:localhost:80\"\n"),
            "config.toml:2: forward must be an array of forwards like [\"L 8080:localhost:80\"], not a string");
  EXPECT_EQ(LoadError("[defaults]\nforward = [1080]\n"), "config.toml:2: forward must be a string, not an integer");
}

TEST_F(ProfileTest, ExampleProfileLoads) {
  const std::string example = std::string(MCONNECT_SOURCE_DIR) + "/contrib/config.toml.example";
  ASSERT_TRUE(std::filesystem::exists(example)) << example;
  auto profile = LoadProfile(example, MissingProfile::kFail);
  ASSERT_TRUE(profile) << profile.error().message;
  // The example sets every key; check a few that show it was really read.
  const HostProfile defaults = profile->ForHost("some-other-host");
  EXPECT_THAT(defaults.remote_ip, ElementsAre("peer", "dns"));
  EXPECT_EQ(defaults.mosh_ports, "60001:60999");
  const HostProfile bebou = profile->ForHost("bebou");
  EXPECT_THAT(bebou.remote_ip, ElementsAre("command:curl -sS https://ipinfo.io/ip", "peer"));
  EXPECT_THAT(bebou.forward, ElementsAre("L 8080:localhost:80", "R 9000:localhost:9000", "D 1080"));
}

// Saves an environment variable and puts it back.
class ScopedEnv {
 public:
  explicit ScopedEnv(const char* name) : name_(name) {
    if (const char* value = std::getenv(name)) saved_ = value;
  }
  ~ScopedEnv() {
    if (saved_) {
      ::setenv(name_, saved_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> saved_;
};

TEST(DefaultProfilePath, FollowsXdg) {
  ScopedEnv xdg("XDG_CONFIG_HOME");
  ScopedEnv home("HOME");
  ::setenv("HOME", "/home/alice", 1);
  ::setenv("XDG_CONFIG_HOME", "/xdg/config", 1);
  EXPECT_EQ(DefaultProfilePath(), "/xdg/config/mconnect/config.toml");
  ::unsetenv("XDG_CONFIG_HOME");
  EXPECT_EQ(DefaultProfilePath(), "/home/alice/.config/mconnect/config.toml");
  ::setenv("XDG_CONFIG_HOME", "", 1);
  EXPECT_EQ(DefaultProfilePath(), "/home/alice/.config/mconnect/config.toml");
  ::setenv("XDG_CONFIG_HOME", "relative/dir", 1);  // the XDG spec says to ignore it
  EXPECT_EQ(DefaultProfilePath(), "/home/alice/.config/mconnect/config.toml");
  ::unsetenv("XDG_CONFIG_HOME");
  ::unsetenv("HOME");  // the passwd entry's home then
  EXPECT_THAT(DefaultProfilePath(), HasSubstr("/.config/mconnect/config.toml"));
  EXPECT_THAT(DefaultProfilePath(), StartsWith("/"));
}

}  // namespace
}  // namespace mconnect::launcher
