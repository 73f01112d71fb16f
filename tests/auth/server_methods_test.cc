// What the server asks for, against a real sshd: keyboard-interactive and password through a
// real PAM stack (tests/auth/auth_lab.h), publickey + keyboard-interactive (multi-factor), the
// methods the user prefers or disables, an RSA key against an RSA-only server, and the
// unknown-host-key question.
#include <regex>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/auth/auth_lab.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

// ---- keyboard-interactive and password through PAM -------------------------------------------

TEST_F(AuthTest, KeyboardInteractiveThroughPamIsTypedAndRetried) {
  ASSERT_TRUE(RestartWithPam("KbdInteractiveAuthentication yes\nPasswordAuthentication no\n"
                             "PubkeyAuthentication no\n"));
  Tmux& tmux = Pane({"ip", AskingSshOption(), "lab"});
  std::string question = "(" + LocalUser() + "@127.0.0.1) Password: ";
  ASSERT_TRUE(Answer(tmux, question, "wrong password"));
  ASSERT_TRUE(Answer(tmux, question, kPassword, 2));
  auto status = WaitForExit(tmux, 30s);
  ASSERT_EQ(status, 0) << Screen(tmux) << "\nmaster log:\n" << MasterLog() << "\nsshd log:\n" << sshd().Log();
  EXPECT_THAT(Screen(tmux), Not(HasSubstr(kPassword)));
  EXPECT_EQ(pam_->Attempts(), "bad\ngood\n");
  EXPECT_EQ(sshd().CountInLog("Accepted keyboard-interactive/pam for " + LocalUser()), 1) << sshd().Log();
  EXPECT_THAT(MasterLog(), HasSubstr("as keyboard-interactive"));

  auto ssh = ThroughMaster("echo pam-$((6*7))");
  EXPECT_EQ(ssh.exit_code, 0) << ssh.err;
  EXPECT_EQ(ssh.out, "pam-42\n");
  EXPECT_EQ(sshd().CountInLog("Accepted keyboard-interactive"), 1) << sshd().Log();
}

TEST_F(AuthTest, PasswordThroughPamIsTypedAndRetried) {
  ASSERT_TRUE(RestartWithPam("KbdInteractiveAuthentication no\nPasswordAuthentication yes\n"
                             "PubkeyAuthentication no\n"));
  Tmux& tmux = Pane({"ip", AskingSshOption(), "lab"});
  std::string question = LocalUser() + "@127.0.0.1's password: ";
  ASSERT_TRUE(Answer(tmux, question, "wrong password"));
  ASSERT_TRUE(Answer(tmux, question, kPassword, 2));
  auto status = WaitForExit(tmux, 30s);
  ASSERT_EQ(status, 0) << Screen(tmux) << "\nmaster log:\n" << MasterLog() << "\nsshd log:\n" << sshd().Log();
  std::string screen = Screen(tmux);
  EXPECT_THAT(screen, HasSubstr("Permission denied, please try again."));
  EXPECT_THAT(screen, Not(HasSubstr(kPassword)));
  EXPECT_EQ(pam_->Attempts(), "bad\ngood\n");
  EXPECT_EQ(sshd().CountInLog("Accepted password for " + LocalUser()), 1) << sshd().Log();
  EXPECT_EQ(sshd().CountInLog("Failed password for " + LocalUser()), 1) << sshd().Log();
}

TEST_F(AuthTest, PublicKeyThenKeyboardInteractive) {
  // Multi-factor: the key alone is a partial success; the server then wants the password.
  ASSERT_TRUE(RestartWithPam("KbdInteractiveAuthentication yes\nPasswordAuthentication no\n"
                             "AuthenticationMethods publickey,keyboard-interactive\n"));
  Tmux& tmux = Pane({"ip", AskingSshOption(), "lab"});
  ASSERT_TRUE(Answer(tmux, "(" + LocalUser() + "@127.0.0.1) Password: ", kPassword));
  auto status = WaitForExit(tmux, 30s);
  ASSERT_EQ(status, 0) << Screen(tmux) << "\nmaster log:\n" << MasterLog() << "\nsshd log:\n" << sshd().Log();
  EXPECT_EQ(sshd().CountInLog("Partial publickey for " + LocalUser()), 1) << sshd().Log();
  EXPECT_EQ(sshd().CountInLog("Accepted keyboard-interactive/pam for " + LocalUser()), 1) << sshd().Log();
  EXPECT_THAT(MasterLog(), HasSubstr("as publickey (" + key() + ") + keyboard-interactive"));
}

TEST_F(AuthTest, PreferredAuthenticationsOrderIsHonoured) {
  // The server takes both; PreferredAuthentications says password first, so it is asked for
  // although the key alone would do.
  ASSERT_TRUE(RestartWithPam("KbdInteractiveAuthentication no\nPasswordAuthentication yes\n"));
  Tmux& tmux = Pane({"ip", AskingSshOption({"PreferredAuthentications=password,publickey"}), "lab"});
  ASSERT_TRUE(Answer(tmux, LocalUser() + "@127.0.0.1's password: ", kPassword));
  ASSERT_EQ(WaitForExit(tmux, 30s), 0) << Screen(tmux) << "\nmaster log:\n" << MasterLog();
  EXPECT_EQ(sshd().CountInLog("Accepted password"), 1) << sshd().Log();
  EXPECT_EQ(sshd().CountInLog("Accepted publickey"), 0) << sshd().Log();
}

TEST_F(AuthTest, DisabledMethodsAreNotTried) {
  // The server offers only password; PasswordAuthentication=no leaves nothing to try.
  ASSERT_TRUE(RestartWithPam("KbdInteractiveAuthentication no\nPasswordAuthentication yes\n"
                             "PubkeyAuthentication no\n"));
  auto result = RunDetached({"ip", AskingSshOption({"PasswordAuthentication=no"}), "lab"});
  EXPECT_EQ(result.exit_code, 255);
  EXPECT_THAT(result.err, HasSubstr(LocalUser() + "@127.0.0.1: Permission denied (nothing to try; the server allows "
                                                  "password"));
  EXPECT_EQ(Lines(result.err), 1) << result.err;
  EXPECT_EQ(pam_->Attempts(), "");
}

// ---- RSA -------------------------------------------------------------------------------------

TEST_F(AuthTest, RsaKeyAgainstAnRsaOnlyServer) {
  sshd().Stop();
  ASSERT_TRUE(WriteFile(sshd().dir() + "/host_key_type", "rsa\n"));
  // Only the SHA-2 signature algorithms, for the host key and for the user key: what OpenSSH
  // 9.2 allows by default anyway, here written out so that nothing else can pass.
  ASSERT_TRUE(WriteFile(sshd().dir() + "/sshd_config.extra",
                        "HostKeyAlgorithms rsa-sha2-512,rsa-sha2-256\n"
                        "PubkeyAcceptedAlgorithms rsa-sha2-512,rsa-sha2-256\n"));
  std::string rsa_key = lab_->dir().Sub("id_rsa");
  ASSERT_TRUE(Succeeds({"ssh-keygen", "-q", "-t", "rsa", "-b", "3072", "-N", "", "-f", rsa_key}));
  auto rsa_public = ReadFile(rsa_key + ".pub");
  ASSERT_TRUE(rsa_public);
  ASSERT_TRUE(WriteFile(sshd().dir() + "/authorized_keys", *rsa_public));
  ASSERT_TRUE(sshd().Restart());
  ASSERT_TRUE(WriteFile(sshd().known_hosts(), ""));  // the new key is written by the master

  auto result = RunDetached({"ip", SshOption({"IdentityFile=" + rsa_key, "StrictHostKeyChecking=accept-new"}), "lab"});
  ASSERT_EQ(result.exit_code, 0) << result.err << "\nmaster log:\n" << MasterLog() << "\nsshd log:\n" << sshd().Log();
  EXPECT_EQ(sshd().CountInLog("Accepted publickey for " + LocalUser()), 1) << sshd().Log();
  EXPECT_THAT(sshd().Log(), HasSubstr(": RSA SHA256:"));
  auto found = RunCommand(
      {"ssh-keygen", "-F", "[127.0.0.1]:" + std::to_string(sshd().port()), "-f", sshd().known_hosts()});
  ASSERT_TRUE(found);
  EXPECT_EQ(found->exit_code, 0) << found->err;
  EXPECT_THAT(found->out, HasSubstr(" ssh-rsa AAAA"));
}

// ---- host keys -------------------------------------------------------------------------------

// Whether every line of `screen` that holds `text` starts with it: the progress line
// ("mconnect: lab: handshake…") was erased before, not left in front of it.
bool StartsItsLine(const std::string& screen, const std::string& text) {
  bool seen = false;
  for (std::size_t at = screen.find(text); at != std::string::npos; at = screen.find(text, at + 1)) {
    seen = true;
    if (at != 0 && screen[at - 1] != '\n') return false;
  }
  return seen;
}

TEST_F(AuthTest, UnknownHostKeyIsAskedAndYesRecordsIt) {
  ASSERT_TRUE(WriteFile(sshd().known_hosts(), ""));
  auto fingerprint = RunCommand({"ssh-keygen", "-l", "-f", sshd().dir() + "/host_ed25519_key.pub"});
  ASSERT_TRUE(fingerprint && fingerprint->ok());
  std::string sha256 = fingerprint->out.substr(fingerprint->out.find("SHA256:"));
  sha256 = sha256.substr(0, sha256.find(' '));

  Tmux& tmux = Pane({"ip", AskingSshOption({"StrictHostKeyChecking=ask"}), "lab"});
  std::string name = "[127.0.0.1]:" + std::to_string(sshd().port());
  ASSERT_TRUE(Answer(tmux, "Are you sure you want to continue connecting (yes/no/[fingerprint])? ", "yes"));
  ASSERT_EQ(WaitForExit(tmux, 30s), 0) << Screen(tmux) << "\nmaster log:\n" << MasterLog();
  std::string screen = Screen(tmux);
  EXPECT_THAT(screen, HasSubstr("The authenticity of host '" + name + "' can't be established."));
  EXPECT_TRUE(StartsItsLine(screen, "The authenticity of host")) << "after the progress line:\n" << screen;
  EXPECT_THAT(screen, HasSubstr("ED25519 key fingerprint is " + sha256 + "."));
  auto found = RunCommand({"ssh-keygen", "-F", name, "-f", sshd().known_hosts()});
  ASSERT_TRUE(found);
  EXPECT_EQ(found->exit_code, 0) << found->err;
  EXPECT_THAT(found->out, HasSubstr(" ssh-ed25519 AAAA"));
}

// The accept-new notice and the changed-key warning start their own lines too.
TEST_F(AuthTest, HostKeyNoticesStartTheirOwnLines) {
  ASSERT_TRUE(WriteFile(sshd().known_hosts(), ""));
  Tmux& added = Pane({"ip", AskingSshOption({"StrictHostKeyChecking=accept-new"}), "lab"});
  ASSERT_EQ(WaitForExit(added, 30s), 0) << Screen(added);
  EXPECT_TRUE(StartsItsLine(Screen(added), "Warning: Permanently added")) << Screen(added);
  lab_->Cleanup();
  ASSERT_TRUE(sshd().Rekey());
  Tmux& changed = Pane({"ip", AskingSshOption(), "lab"});
  ASSERT_EQ(WaitForExit(changed, 30s), 255) << Screen(changed);
  EXPECT_TRUE(StartsItsLine(Screen(changed), "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!")) << Screen(changed);
}

TEST_F(AuthTest, UnknownHostKeyIsRefusedInBatchAndStrictMode) {
  ASSERT_TRUE(WriteFile(sshd().known_hosts(), ""));
  // The lab's config: BatchMode yes, StrictHostKeyChecking yes; then each alone.
  for (const auto& options : std::vector<std::vector<std::string>>{
           {}, {"BatchMode=no", "StrictHostKeyChecking=yes"}, {"BatchMode=yes", "StrictHostKeyChecking=ask"}}) {
    SCOPED_TRACE(::testing::PrintToString(options));
    auto result = RunDetached({"ip", SshOption(options), "lab"});
    EXPECT_EQ(result.exit_code, 255);
    EXPECT_THAT(result.err, HasSubstr("(host key verification failed)"));
    EXPECT_EQ(Lines(result.err), 1) << result.err;
    EXPECT_EQ(ReadFile(sshd().known_hosts()).value_or("?"), "") << "nothing may be written";
    EXPECT_EQ(lab_->MasterPid(), 0);
  }
  EXPECT_EQ(sshd().CountInLog("Accepted publickey"), 0);
}

}  // namespace
}  // namespace mconnect::testing
