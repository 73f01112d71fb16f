// The MasterConfig a launcher hands a master it starts: what the launcher puts in it from `ssh -G`,
// the command line and the profile, and that it comes out of the master's reading (the memfd the
// master inherits, or a text file by hand) as it went in, every value checked against the bounds
// mconnect-mux's flags had, one line naming the field when one is refused.
#include <climits>
#include <cstdint>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include "base/subprocess.h"
#include "launcher/master_link.h"
#include "proto/master_config.h"
#include "tests/support/paths.h"

namespace mconnect::launcher {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Config = control::MasterConfig;

// Every setting away from its default, so that each one shows in the message.
SshSettings FullSettings() {
  SshSettings s;
  s.host_alias = "bebou";
  s.hostname = "bebou.example.org";
  s.user = "alice";
  s.port = 2222;
  s.address_family = "inet6";
  s.identity_files = {"/home/alice/.ssh/id_ed25519", "/home/alice/.ssh/id_rsa"};
  s.identities_only = true;
  s.identity_agent = "none";
  s.user_known_hosts_files = {"/home/alice/.ssh/known_hosts", "/home/alice/.ssh/known_hosts2"};
  s.global_known_hosts_files = {"/etc/ssh/ssh_known_hosts"};
  s.strict_host_key_checking = "accept-new";
  s.host_key_alias = "bebou-key";
  s.connect_timeout_s = 7;
  s.server_alive_interval_s = 45;
  s.server_alive_count_max = 5;
  s.batch_mode = true;
  s.ciphers = "aes256-gcm@openssh.com,chacha20-poly1305@openssh.com";
  s.preferred_authentications = "keyboard-interactive,,publickey";
  s.pubkey_authentication = false;
  s.kbd_interactive_authentication = false;
  s.password_authentication = false;
  s.number_of_password_prompts = 1;
  return s;
}

Options FullOptions() {
  Options o;
  o.verbosity = 2;
  o.persist_s = 120;
  return o;
}

HostProfile FullProfile() {
  HostProfile p;
  p.remote_ip_cache_ttl_s = 90;
  p.keepalive_s = 20;
  return p;
}

Config ConfigFor(const SshSettings& s, const Options& o = {}, const HostProfile& p = {}) {
  auto config = MasterConfigFor(s, o, p, "/run/user/1000/mconnect/bebou.sock", "", false);
  EXPECT_TRUE(config) << config.error().message;
  return config.value_or(Config{});
}

// Through the channel the master reads: the memfd, read back from its fd.
Result<Config> ThroughFile(const Config& config) {
  auto file = proto::MasterConfigFile(config);
  if (!file) return Fail(file.error());
  return proto::ReadMasterConfig(file->get());
}

bool Same(const google::protobuf::Message& a, const google::protobuf::Message& b) {
  return google::protobuf::util::MessageDifferencer::Equals(a, b);
}

TEST(MasterConfig, TheLauncherFillsEverySettingFromItsInputs) {
  auto config = MasterConfigFor(FullSettings(), FullOptions(), FullProfile(), "/tmp/s.sock", "ssh -W %h:%p jump", true);
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->user(), "alice");
  EXPECT_EQ(config->host(), "bebou.example.org");
  EXPECT_EQ(config->port(), 2222u);
  EXPECT_EQ(config->address_family(), Config::ADDRESS_FAMILY_INET6);
  EXPECT_EQ(config->alias(), "bebou");
  EXPECT_EQ(config->proxy_command(), "ssh -W %h:%p jump");
  EXPECT_EQ(config->host_key_alias(), "bebou-key");
  // User files first (new keys go to the first), then the global ones.
  EXPECT_THAT(config->known_hosts_files(),
              ElementsAre("/home/alice/.ssh/known_hosts", "/home/alice/.ssh/known_hosts2", "/etc/ssh/ssh_known_hosts"));
  EXPECT_EQ(config->strict_host_key_checking(), Config::HOST_KEY_CHECKING_ACCEPT_NEW);
  EXPECT_THAT(config->identity_files(), ElementsAre("/home/alice/.ssh/id_ed25519", "/home/alice/.ssh/id_rsa"));
  EXPECT_TRUE(config->identities_only());
  EXPECT_EQ(config->identity_agent(), "none");
  EXPECT_EQ(config->ciphers(), "aes256-gcm@openssh.com,chacha20-poly1305@openssh.com");
  EXPECT_THAT(config->preferred_authentications(), ElementsAre("keyboard-interactive", "publickey"));
  EXPECT_FALSE(config->pubkey_authentication());
  EXPECT_FALSE(config->kbd_interactive_authentication());
  EXPECT_FALSE(config->password_authentication());
  EXPECT_EQ(config->number_of_password_prompts(), 1u);
  EXPECT_TRUE(config->batch_mode());
  EXPECT_EQ(config->connect_timeout_s(), 7u);
  EXPECT_EQ(config->keepalive_s(), 45u);  // ServerAliveInterval beats the profile's keepalive
  EXPECT_EQ(config->keepalive_count(), 5u);
  EXPECT_EQ(config->persist_s(), 120);  // --persist beats the profile
  EXPECT_EQ(config->remote_ip_ttl_s(), 90u);
  EXPECT_EQ(config->socket_path(), "/tmp/s.sock");
  EXPECT_TRUE(config->chosen_socket());
  EXPECT_FALSE(config->foreground());
  EXPECT_TRUE(config->progress());
  EXPECT_EQ(config->verbosity(), 2u);
  // What the launcher never sets, the master defaults.
  EXPECT_FALSE(config->has_reconnect());
  EXPECT_FALSE(config->has_reconnect_wait_s());
  EXPECT_EQ(config->log_path(), "");
}

TEST(MasterConfig, ComesOutOfTheMastersReadingAsItWentIn) {
  auto config = MasterConfigFor(FullSettings(), FullOptions(), FullProfile(), "/tmp/s.sock", "ssh -W %h:%p jump", true);
  ASSERT_TRUE(config) << config.error().message;
  auto read = ThroughFile(*config);
  ASSERT_TRUE(read) << read.error().message;
  // The two fields the launcher leaves unset come back with the master's defaults; the rest as sent.
  EXPECT_TRUE(read->reconnect());
  EXPECT_EQ(read->reconnect_wait_s(), 30u);
  Config expected = *config;
  expected.set_reconnect(true);
  expected.set_reconnect_wait_s(30);
  EXPECT_TRUE(Same(*read, expected)) << read->DebugString();

  // By hand: the same message in text format, as `mconnect -vv` logs it.
  auto text = proto::ParseMasterConfigText(config->ShortDebugString());
  ASSERT_TRUE(text) << text.error().message;
  EXPECT_TRUE(Same(*text, expected)) << text->DebugString();
}

TEST(MasterConfig, ForegroundAndLaunchersDefaultsGoInTheMessage) {
  Options o;
  o.foreground_master = true;  // `mconnect master`
  SshSettings s = FullSettings();
  s.connect_timeout_s = 0;        // ConnectTimeout none
  s.server_alive_interval_s = 0;  // none: the profile's keepalive
  s.server_alive_count_max = -1;  // never below 0
  HostProfile p;
  p.keepalive_s = 25;
  Config config = ConfigFor(s, o, p);
  EXPECT_TRUE(config.foreground());
  EXPECT_FALSE(config.has_connect_timeout_s());
  EXPECT_EQ(config.keepalive_s(), 25u);
  EXPECT_EQ(config.keepalive_count(), 0u);
  EXPECT_EQ(config.persist_s(), 600);  // the profile's
  EXPECT_EQ(config.verbosity(), 0u);
  p.keepalive_s = 0;  // neither: one keepalive an hour
  EXPECT_EQ(ConfigFor(s, o, p).keepalive_s(), 3600u);
  auto read = ThroughFile(config);
  ASSERT_TRUE(read) << read.error().message;
  EXPECT_EQ(read->connect_timeout_s(), 15u);
}

TEST(MasterConfig, HostKeyCheckingAndAddressFamilyAreOneOfASet) {
  SshSettings s = FullSettings();
  HostProfile p;
  s.batch_mode = false;
  const std::pair<const char*, Config::HostKeyChecking> ssh[] = {{"yes", Config::HOST_KEY_CHECKING_YES},
                                                                 {"no", Config::HOST_KEY_CHECKING_NO},
                                                                 {"accept-new", Config::HOST_KEY_CHECKING_ACCEPT_NEW},
                                                                 {"ask", Config::HOST_KEY_CHECKING_ASK}};
  for (const auto& [value, expected] : ssh) {
    s.strict_host_key_checking = value;
    EXPECT_EQ(ConfigFor(s, {}, p).strict_host_key_checking(), expected) << value;
  }
  // ssh's "ask" (or nothing) leaves it to the profile; BatchMode has nobody to ask.
  s.strict_host_key_checking = "";
  p.host_key_policy = "strict";
  EXPECT_EQ(ConfigFor(s, {}, p).strict_host_key_checking(), Config::HOST_KEY_CHECKING_YES);
  p.host_key_policy = "accept-new";
  EXPECT_EQ(ConfigFor(s, {}, p).strict_host_key_checking(), Config::HOST_KEY_CHECKING_ACCEPT_NEW);
  p.host_key_policy = "ask";
  s.batch_mode = true;
  EXPECT_EQ(ConfigFor(s, {}, p).strict_host_key_checking(), Config::HOST_KEY_CHECKING_YES);

  for (const auto& [value, expected] :
       {std::pair{"any", Config::ADDRESS_FAMILY_ANY}, std::pair{"inet", Config::ADDRESS_FAMILY_INET},
        std::pair{"inet6", Config::ADDRESS_FAMILY_INET6}}) {
    s.address_family = value;
    EXPECT_EQ(ConfigFor(s, {}, p).address_family(), expected) << value;
  }
  s.address_family = "inet7";
  auto refused = MasterConfigFor(s, {}, p, "/tmp/s", "", false);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message, "unknown AddressFamily \"inet7\" (any, inet or inet6)");
  s.address_family = "any";
  s.strict_host_key_checking = "maybe";
  refused = MasterConfigFor(s, {}, p, "/tmp/s", "", false);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message, "unknown host-key policy \"maybe\" (yes, accept-new, ask or no)");
}

Config Minimal() {
  Config config;
  config.set_user("alice");
  config.set_host("bebou");
  config.set_socket_path("/tmp/s.sock");
  return config;
}

TEST(MasterConfig, UnsetFieldsGetTheMastersDefaults) {
  auto checked = proto::CheckMasterConfig(Minimal());
  ASSERT_TRUE(checked) << checked.error().message;
  EXPECT_EQ(checked->port(), 22u);
  EXPECT_EQ(checked->address_family(), Config::ADDRESS_FAMILY_ANY);
  EXPECT_EQ(checked->strict_host_key_checking(), Config::HOST_KEY_CHECKING_ASK);
  EXPECT_TRUE(checked->pubkey_authentication());
  EXPECT_TRUE(checked->kbd_interactive_authentication());
  EXPECT_TRUE(checked->password_authentication());
  EXPECT_EQ(checked->number_of_password_prompts(), 3u);
  EXPECT_EQ(checked->connect_timeout_s(), 15u);
  EXPECT_EQ(checked->keepalive_s(), 30u);
  EXPECT_EQ(checked->keepalive_count(), 3u);
  EXPECT_TRUE(checked->reconnect());
  EXPECT_EQ(checked->reconnect_wait_s(), 30u);
  EXPECT_EQ(checked->persist_s(), 600);
  EXPECT_EQ(checked->remote_ip_ttl_s(), 300u);
  EXPECT_FALSE(checked->foreground());
  EXPECT_EQ(checked->verbosity(), 0u);
}

struct Refusal {
  std::function<void(Config&)> change;
  std::string line;
};

// Each value out of the bounds mconnect-mux's flags had (CLI11's checks), and each required one
// missing: refused, with one line that names the field.
const std::vector<Refusal>& Refusals() {
  static const std::vector<Refusal> refusals = {
      {[](Config& c) { c.clear_user(); }, "MasterConfig.user is missing (required)"},
      {[](Config& c) { c.clear_host(); }, "MasterConfig.host is missing (required)"},
      {[](Config& c) { c.clear_socket_path(); }, "MasterConfig.socket_path is missing (required)"},
      {[](Config& c) { c.set_port(0); }, "MasterConfig.port is 0; expected 1..65535"},
      {[](Config& c) { c.set_port(65536); }, "MasterConfig.port is 65536; expected 1..65535"},
      {[](Config& c) { c.set_keepalive_s(0); }, "MasterConfig.keepalive_s is 0; expected 1..86400"},
      {[](Config& c) { c.set_keepalive_s(86401); }, "MasterConfig.keepalive_s is 86401; expected 1..86400"},
      {[](Config& c) { c.set_keepalive_count(1001); }, "MasterConfig.keepalive_count is 1001; expected 0..1000"},
      {[](Config& c) { c.set_reconnect_wait_s(3601); }, "MasterConfig.reconnect_wait_s is 3601; expected 0..3600"},
      {[](Config& c) { c.set_persist_s(-2); }, "MasterConfig.persist_s is -2; expected -1..2147483647"},
      {[](Config& c) { c.set_connect_timeout_s(0); }, "MasterConfig.connect_timeout_s is 0; expected 1..2147483647"},
      {[](Config& c) { c.set_connect_timeout_s(2147483648u); },
       "MasterConfig.connect_timeout_s is 2147483648; expected 1..2147483647"},
      {[](Config& c) { c.set_number_of_password_prompts(UINT32_MAX); },
       "MasterConfig.number_of_password_prompts is 4294967295; expected 0..2147483647"},
      {[](Config& c) { c.set_remote_ip_ttl_s(2147483648u); },
       "MasterConfig.remote_ip_ttl_s is 2147483648; expected 0..2147483647"},
      {[](Config& c) { c.set_verbosity(2147483648u); }, "MasterConfig.verbosity is 2147483648; expected 0..2147483647"},
      {[](Config& c) { c.set_address_family(static_cast<Config::AddressFamily>(7)); },
       "MasterConfig.address_family is 7; expected ADDRESS_FAMILY_ANY, _INET or _INET6"},
      {[](Config& c) { c.set_strict_host_key_checking(static_cast<Config::HostKeyChecking>(-1)); },
       "MasterConfig.strict_host_key_checking is -1; expected HOST_KEY_CHECKING_ASK, _YES, _ACCEPT_NEW or _NO"},
      {[](Config& c) { c.add_identity_files(std::string("/home/a\0b", 9)); },
       "MasterConfig.identity_files holds a NUL byte"},
      {[](Config& c) { c.set_socket_path(std::string("/tmp/s\0.sock", 12)); },
       "MasterConfig.socket_path holds a NUL byte"},
      // Configured forwards: as OpenSSH's mux client could send them, and no more than a few.
      {[](Config& c) { c.add_forwards()->set_listen_port(70000); }, "MasterConfig.forwards[0]: port out of range"},
      {[](Config& c) { c.add_forwards()->set_listen_port(8080); }, "MasterConfig.forwards[0]: missing connect host"},
      {[](Config& c) {
         auto* f = c.add_forwards();
         f->set_listen_port(8080);
         f->set_connect_host("db");
       },
       "MasterConfig.forwards[0]: connect port 0"},
      {[](Config& c) {
         auto* f = c.add_forwards();
         f->set_kind(control::ConfiguredForward::KIND_DYNAMIC);
       },
       "MasterConfig.forwards[0]: listen port 0"},
      {[](Config& c) {
         auto* f = c.add_forwards();
         f->set_kind(control::ConfiguredForward::KIND_DYNAMIC);
         f->set_listen_port(proto::kPortStreamLocal);
         f->set_listen_host("/tmp/socks");
       },
       "MasterConfig.forwards[0]: a dynamic forward cannot listen on a Unix socket"},
      {[](Config& c) { c.add_forwards()->set_kind(static_cast<control::ConfiguredForward::Kind>(9)); },
       "MasterConfig.forwards[0]: unknown kind"},
      {[](Config& c) {
         auto* f = c.add_forwards();
         f->set_kind(control::ConfiguredForward::KIND_DYNAMIC);
         f->set_listen_port(1080);
         f->set_text(std::string("D\0", 2));
       },
       "MasterConfig.forwards[0]: holds a NUL byte"},
      {[](Config& c) {
         for (int i = 0; i <= proto::kMaxConfiguredForwards; ++i) {
           auto* f = c.add_forwards();
           f->set_kind(control::ConfiguredForward::KIND_DYNAMIC);
           f->set_listen_port(1080);
         }
       },
       "MasterConfig.forwards has 65; at most 64"},
  };
  return refusals;
}

TEST(MasterConfig, EachOutOfRangeOrMissingValueIsRefusedWithALineNamingIt) {
  for (const auto& refusal : Refusals()) {
    Config config = Minimal();
    refusal.change(config);
    auto checked = ThroughFile(config);  // the way the master reads it
    ASSERT_FALSE(checked) << "accepted: " << config.ShortDebugString();
    EXPECT_EQ(checked.error().message, refusal.line);
  }
}

// The ssh config's forwards, then the profile's, and ExitOnForwardFailure.
TEST(MasterConfig, ForwardsFromTheSshConfigAndTheProfile) {
  SshSettings settings = FullSettings();
  auto ssh_forwards = ParseSshGForwards({{"localforward", "8080 [localhost]:80"}, {"remoteforward", "0 [db]:5432"}});
  ASSERT_TRUE(ssh_forwards) << ssh_forwards.error().message;
  settings.forwards = *ssh_forwards;
  settings.exit_on_forward_failure = true;
  HostProfile profile = FullProfile();
  profile.forward = {"D 127.0.0.1:1080"};
  Config config = ConfigFor(settings, {}, profile);
  ASSERT_EQ(config.forwards_size(), 3);
  EXPECT_EQ(config.forwards(0).text(), "L 8080 [localhost]:80");
  EXPECT_EQ(config.forwards(1).kind(), control::ConfiguredForward::KIND_REMOTE);
  EXPECT_EQ(config.forwards(1).listen_port(), 0u);
  EXPECT_EQ(config.forwards(2).origin(), control::ConfiguredForward::ORIGIN_PROFILE);
  EXPECT_EQ(config.forwards(2).listen_host(), "127.0.0.1");
  EXPECT_TRUE(config.exit_on_forward_failure());
  auto read = ThroughFile(config);
  ASSERT_TRUE(read) << read.error().message;
  ASSERT_EQ(read->forwards_size(), 3);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(Same(read->forwards(i), config.forwards(i))) << i;
  EXPECT_TRUE(read->exit_on_forward_failure());
}

TEST(MasterConfig, TheBoundsThemselvesAreAccepted) {
  const std::vector<std::function<void(Config&)>> edges = {
      [](Config& c) { c.set_port(1); },
      [](Config& c) { c.set_port(65535); },
      [](Config& c) { c.set_keepalive_s(1); },
      [](Config& c) { c.set_keepalive_s(86400); },
      [](Config& c) { c.set_keepalive_count(0); },
      [](Config& c) { c.set_keepalive_count(1000); },
      [](Config& c) { c.set_reconnect_wait_s(0); },
      [](Config& c) { c.set_reconnect_wait_s(3600); },
      [](Config& c) { c.set_persist_s(-1); },
      [](Config& c) { c.set_persist_s(0); },
      [](Config& c) { c.set_persist_s(INT_MAX); },
      [](Config& c) { c.set_connect_timeout_s(1); },
      [](Config& c) { c.set_number_of_password_prompts(0); },
      [](Config& c) { c.set_remote_ip_ttl_s(0); },
  };
  for (std::size_t i = 0; i < edges.size(); ++i) {
    Config config = Minimal();
    edges[i](config);
    auto checked = ThroughFile(config);
    EXPECT_TRUE(checked) << config.ShortDebugString() << ": " << checked.error().message;
  }
}

TEST(MasterConfig, WhatIsNoMasterConfigIsRefused) {
  auto garbage = proto::ParseMasterConfig("\xff\xff\xff\xff");
  ASSERT_FALSE(garbage);
  EXPECT_EQ(garbage.error().message, "the master's config (4 bytes) is not a serialized MasterConfig");
  auto empty = proto::ParseMasterConfig("");
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().message, "MasterConfig.user is missing (required)");
  auto typo = proto::ParseMasterConfigText("user: \"alice\"\nhost: \"bebou\"\nsocket: \"/tmp/s\"\n");
  ASSERT_FALSE(typo);
  EXPECT_THAT(typo.error().message, HasSubstr("line 3, column"));
  EXPECT_THAT(typo.error().message, HasSubstr("socket"));
  auto huge = proto::ParseMasterConfig(std::string(proto::kMaxMasterConfigBytes + 1, '\0'));
  EXPECT_FALSE(huge);
}

// Found by tests/fuzz/master_config_fuzz.cc: a host that is not UTF-8 was taken in text format
// and refused serialized. ssh takes such names and file names; so does the master, both ways.
TEST(MasterConfig, NamesThatAreNotUtf8PassBothWays) {
  Config config = Minimal();
  config.set_host("h\xd8");
  config.set_user("\xe9lodie");
  config.add_identity_files("/home/\xe9lodie/.ssh/id_ed25519");
  auto serialized = ThroughFile(config);
  ASSERT_TRUE(serialized) << serialized.error().message;
  auto text = proto::ParseMasterConfigText("user: \"\\351lodie\" host: \"h\xd8\" socket_path: \"/tmp/s.sock\" "
                                           "identity_files: \"/home/\\351lodie/.ssh/id_ed25519\"");
  ASSERT_TRUE(text) << text.error().message;
  EXPECT_TRUE(Same(*serialized, *text)) << serialized->ShortDebugString() << " vs " << text->ShortDebugString();
  EXPECT_EQ(text->host(), "h\xd8");
}

// ---- the master itself: it refuses before it does anything, with that one line, exit 255.

struct Ran {
  int exit_code = -1;
  std::string err;
};

Ran RunMux(const std::vector<std::string>& args) {
  std::vector<std::string> argv{std::string(MCONNECT_BIN_DIR) + "/mconnect-mux"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto result = RunCommand(argv);
  EXPECT_TRUE(result) << result.error().message;
  return result ? Ran{result->exit_code, result->err} : Ran{};
}

std::string WriteText(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(MasterConfig, TheMasterRefusesABadConfigWithOneLine) {
  Config config = Minimal();
  config.set_port(70000);
  const std::string file = WriteText("port.textproto", config.DebugString());
  Ran ran = RunMux({"--config=" + file});
  EXPECT_EQ(ran.exit_code, 255);
  EXPECT_EQ(ran.err, "mconnect-mux: " + file + ": MasterConfig.port is 70000; expected 1..65535\n");

  ran = RunMux({});
  EXPECT_EQ(ran.exit_code, 255);
  EXPECT_EQ(ran.err, "mconnect-mux: no settings: --config-fd=N (as mconnect starts it) or --config=FILE\n");

  // Through the fd the launcher uses (here the shell's, from a file holding the bytes).
  Config no_user = Minimal();
  no_user.clear_user();
  const std::string bytes = WriteText("no-user.bin", no_user.SerializeAsString());
  auto result = RunCommand(
      ShellCommand("exec \"$1\" --config-fd=3 3<\"$2\"", {std::string(MCONNECT_BIN_DIR) + "/mconnect-mux", bytes}));
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result->exit_code, 255);
  EXPECT_EQ(result->err, "mconnect-mux: MasterConfig.user is missing (required)\n");
}

}  // namespace
}  // namespace mconnect::launcher
