// The pure parts of authentication, without a server: key files, method order, prompt routes,
// the askpass program, what the server may print, and the secret strings.
#include <cstdint>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/auth/auth_lab.h"
#include "mux/ssh/auth.h"
#include "mux/ssh/prompt.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

// ---- the pure parts --------------------------------------------------------------------------

class KeyFiles : public ::testing::Test {
 protected:
  // A key made by ssh-keygen with ARGS, read back.
  std::string Make(const std::string& name, const std::vector<std::string>& args) {
    std::string path = dir_.Sub(name);
    std::vector<std::string> argv{"ssh-keygen", "-q", "-C", "test", "-f", path};
    argv.insert(argv.end(), args.begin(), args.end());
    EXPECT_TRUE(Succeeds(argv));
    return ReadFile(path).value_or("");
  }
  std::vector<std::uint8_t> PublicBlob(const std::string& name) {
    auto line = ReadFile(dir_.Sub(name + ".pub"));
    auto blob = line ? mux::ParsePublicKeyLine(*line) : Fail(line.error());
    EXPECT_TRUE(blob) << blob.error().message;
    return blob ? *blob : std::vector<std::uint8_t>{};
  }

  TempDir dir_;
};

TEST_F(KeyFiles, OpenSshFormatTellsEncryptionAndCarriesThePublicKey) {
  auto plain = mux::InspectPrivateKey(Make("plain", {"-t", "ed25519", "-N", ""}));
  ASSERT_TRUE(plain) << plain.error().message;
  EXPECT_EQ(plain->format, mux::PrivateKeyInfo::Format::kOpenSsh);
  EXPECT_FALSE(plain->encrypted);
  EXPECT_EQ(plain->public_blob, PublicBlob("plain"));

  auto locked = mux::InspectPrivateKey(Make("locked", {"-t", "ed25519", "-N", "secret"}));
  ASSERT_TRUE(locked) << locked.error().message;
  EXPECT_TRUE(locked->encrypted);
  EXPECT_EQ(locked->public_blob, PublicBlob("locked"));
}

TEST_F(KeyFiles, PemAndPkcs8TellEncryption) {
  auto pem = mux::InspectPrivateKey(Make("pem", {"-t", "rsa", "-b", "1024", "-m", "PEM", "-N", ""}));
  ASSERT_TRUE(pem) << pem.error().message;
  EXPECT_EQ(pem->format, mux::PrivateKeyInfo::Format::kPem);
  EXPECT_FALSE(pem->encrypted);
  auto pem_locked = mux::InspectPrivateKey(Make("pem-locked", {"-t", "rsa", "-b", "1024", "-m", "PEM", "-N", "secret"}));
  ASSERT_TRUE(pem_locked) << pem_locked.error().message;
  EXPECT_TRUE(pem_locked->encrypted);
  auto pkcs8 = mux::InspectPrivateKey(Make("pkcs8", {"-t", "ecdsa", "-m", "PKCS8", "-N", "secret"}));
  ASSERT_TRUE(pkcs8) << pkcs8.error().message;
  EXPECT_EQ(pkcs8->format, mux::PrivateKeyInfo::Format::kPkcs8);
  EXPECT_TRUE(pkcs8->encrypted);
}

TEST_F(KeyFiles, DamagedFilesAreErrorsNotCrashes) {
  std::string key = Make("damaged", {"-t", "ed25519", "-N", ""});
  EXPECT_FALSE(mux::InspectPrivateKey("hello"));
  EXPECT_FALSE(mux::InspectPrivateKey("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"));
  for (std::size_t cut : {40u, 60u, 100u, 200u}) {
    std::string truncated = key.substr(0, cut) + "\n-----END OPENSSH PRIVATE KEY-----\n";
    EXPECT_FALSE(mux::InspectPrivateKey(truncated)) << "cut at " << cut;
  }
  EXPECT_FALSE(mux::InspectPrivateKey("-----BEGIN OPENSSH PRIVATE KEY-----\n!!!!\n-----END OPENSSH PRIVATE KEY-----\n"));
  auto line = ReadFile(dir_.Sub("damaged.pub"));
  ASSERT_TRUE(line);
  ASSERT_TRUE(mux::ParsePublicKeyLine(*line));
  EXPECT_FALSE(mux::ParsePublicKeyLine("ssh-rsa" + line->substr(line->find(' '))))
      << "the label must match the key's own type";
  EXPECT_FALSE(mux::ParsePublicKeyLine("ssh-ed25519"));
}

TEST(AuthMethods, OrderFollowsPreferredAuthenticationsAndTheSwitches) {
  mux::AuthOptions options;
  EXPECT_EQ(mux::MethodOrder(options),
            (std::vector<std::string>{"publickey", "keyboard-interactive", "password"}));
  options.preferred = mux::SplitMethods("gssapi-with-mic,password,,publickey,password");
  EXPECT_EQ(mux::MethodOrder(options), (std::vector<std::string>{"password", "publickey"}));
  options.preferred.clear();
  options.kbd_interactive = false;
  options.pubkey = false;
  EXPECT_EQ(mux::MethodOrder(options), (std::vector<std::string>{"password"}));
  EXPECT_EQ(mux::SplitMethods("publickey,keyboard-interactive"),
            (std::vector<std::string>{"publickey", "keyboard-interactive"}));
}

TEST(PromptRoute, FollowsOpenSshReadPassphrase) {
  using mux::PromptRoute;
  auto route = [](std::string require, bool display, bool terminal) {
    mux::PromptSetting setting;
    setting.askpass_require = std::move(require);
    setting.askpass = "/bin/true";
    setting.display = display;
    setting.terminal = terminal;
    return mux::ChoosePromptRoute(setting);
  };
  EXPECT_EQ(route("", false, true), PromptRoute::kTerminal);
  EXPECT_EQ(route("", true, true), PromptRoute::kTerminal);
  EXPECT_EQ(route("", true, false), PromptRoute::kAskpass);
  EXPECT_EQ(route("", false, false), PromptRoute::kNobody);
  EXPECT_EQ(route("force", false, true), PromptRoute::kAskpass);
  EXPECT_EQ(route("FORCE", false, false), PromptRoute::kAskpass);
  EXPECT_EQ(route("prefer", true, true), PromptRoute::kAskpass);
  EXPECT_EQ(route("prefer", false, true), PromptRoute::kTerminal);
  EXPECT_EQ(route("prefer", false, false), PromptRoute::kNobody);
  EXPECT_EQ(route("never", true, true), PromptRoute::kTerminal);
  EXPECT_EQ(route("never", true, false), PromptRoute::kNobody);
}

TEST(Prompter, AskpassProgramGivesTheFirstLine) {
  TempDir dir;
  std::string program = dir.Sub("askpass");
  ASSERT_TRUE(WriteScript(program, "printf 'first line\\r\\nsecond line\\n'\n"));
  mux::PromptSetting setting;
  setting.askpass_require = "force";
  setting.askpass = program;
  mux::Prompter prompter(setting);
  ASSERT_EQ(prompter.route(), mux::PromptRoute::kAskpass);
  auto answer = prompter.Ask("Question? ", false);
  ASSERT_TRUE(answer) << answer.error().message;
  EXPECT_EQ(answer->view(), "first line");

  ASSERT_TRUE(WriteScript(program, "echo never-used; exit 1\n"));
  auto refused = prompter.Ask("Question? ", false);
  ASSERT_FALSE(refused);
  EXPECT_THAT(refused.error().message, HasSubstr("exit status 1"));

  mux::Prompter nobody;
  EXPECT_FALSE(nobody.CanAsk());
  EXPECT_FALSE(nobody.Ask("Question? ", false));
}

TEST(Prompter, ServerTextIsMadeHarmless) {
  EXPECT_EQ(mux::SanitizeForTerminal("Password: "), "Password: ");
  EXPECT_EQ(mux::SanitizeForTerminal("one\ntwo\tthree"), "one\ntwo\tthree");
  EXPECT_EQ(mux::SanitizeForTerminal("\x1b[2Jclear"), "?[2Jclear");
  EXPECT_EQ(mux::SanitizeForTerminal("csi \xc2\x9b" "2J"), "csi ?2J");
  EXPECT_EQ(mux::SanitizeForTerminal("caf\xc3\xa9 \xe2\x9c\x93"), "caf\xc3\xa9 \xe2\x9c\x93");
  EXPECT_EQ(mux::SanitizeForTerminal("bad \xff\xc3"), "bad ??");
}

TEST(SecretString, KeepsItsBytesUntilItGoes) {
  mux::SecretString secret("hunter2");
  EXPECT_EQ(secret.view(), "hunter2");
  EXPECT_STREQ(secret.c_str(), "hunter2");
  mux::SecretString moved = std::move(secret);
  EXPECT_EQ(moved.view(), "hunter2");
  EXPECT_TRUE(secret.empty());  // NOLINT(bugprone-use-after-move): a moved-from secret is empty
  EXPECT_STREQ(secret.c_str(), "");
  std::string copy = "a passphrase held in a std::string";
  mux::ClearString(copy);
  EXPECT_TRUE(copy.empty());
}

}  // namespace
}  // namespace mconnect::testing
