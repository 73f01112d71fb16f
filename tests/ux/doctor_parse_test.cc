// What `mconnect doctor` makes of what OpenSSH and a server print, and its JSON.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "launcher/doctor.h"

namespace mconnect::launcher {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using HostKey = SshProbe::HostKey;

// OpenSSH 9.2's words, as `ssh -o PreferredAuthentications=none -o BatchMode=yes` prints them.
TEST(SshProbe, PermissionDeniedMeansTheHostKeyPassedAndListsTheMethods) {
  auto probe = ParseSshProbe(255, "root@127.0.0.1: Permission denied (publickey,password,keyboard-interactive).\r\n");
  EXPECT_EQ(probe.host_key, HostKey::kKnown);
  EXPECT_THAT(probe.methods, ElementsAre("publickey", "password", "keyboard-interactive"));
}

TEST(SshProbe, UnknownHostKey) {
  auto probe = ParseSshProbe(255,
                             "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict "
                             "checking.\r\nHost key verification failed.\r\n");
  EXPECT_EQ(probe.host_key, HostKey::kUnknown);
  EXPECT_TRUE(probe.methods.empty());
}

TEST(SshProbe, ChangedHostKey) {
  auto probe = ParseSshProbe(
      255,
      "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\n"
      "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\n"
      "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\n"
      "Host key verification failed.\r\n");
  EXPECT_EQ(probe.host_key, HostKey::kChanged);
}

TEST(SshProbe, NoKeyExchangeSaysWhatSshSaid) {
  auto probe = ParseSshProbe(255, "ssh: connect to host 127.0.0.1 port 1: Connection refused\r\n");
  EXPECT_EQ(probe.host_key, HostKey::kUnreached);
  EXPECT_EQ(probe.said, "ssh: connect to host 127.0.0.1 port 1: Connection refused");
}

TEST(SshProbe, AServerThatNeedsNoAuthentication) {
  auto probe = ParseSshProbe(0, "");
  EXPECT_EQ(probe.host_key, HostKey::kKnown);
  EXPECT_THAT(probe.methods, ElementsAre("none"));
}

TEST(ServerPath, FoundOnThePath) {
  auto path = ParseServerPath("path /usr/bin/mosh-server\n");
  EXPECT_EQ(path.path, "/usr/bin/mosh-server");
  EXPECT_TRUE(path.elsewhere.empty());
}

TEST(ServerPath, FoundOnlyByALoginShellOrInAUsualPlace) {
  auto path = ParseServerPath(
      "search-path /usr/bin:/bin\nelsewhere /opt/homebrew/bin/mosh-server\nelsewhere /opt/homebrew/bin/mosh-server\n"
      "elsewhere /home/me/.local/bin/mosh-server\n");
  EXPECT_EQ(path.path, "");
  EXPECT_EQ(path.search_path, "/usr/bin:/bin");
  EXPECT_THAT(path.elsewhere, ElementsAre("/opt/homebrew/bin/mosh-server", "/home/me/.local/bin/mosh-server"));
}

TEST(ServerLocale, RequestedAndFallbackCharmaps) {
  auto locale = ParseServerLocale("fallback UTF-8\nrequested ANSI_X3.4-1968\n");
  EXPECT_TRUE(locale.has_locale_program);
  EXPECT_EQ(locale.requested, "ANSI_X3.4-1968");
  EXPECT_EQ(locale.fallback, "UTF-8");
  EXPECT_FALSE(ParseServerLocale("no-locale\n").has_locale_program);
}

TEST(ServerCommands, QuoteTheirArguments) {
  EXPECT_THAT(ServerPathCommand("it's"), HasSubstr(" sh 'it'\\''s'"));
  EXPECT_THAT(ServerLocaleCommand({"LANG=fr_FR.UTF-8", "LC_ALL=a b"}), HasSubstr(" sh LANG=fr_FR.UTF-8 'LC_ALL=a b'"));
}

TEST(DoctorReport, JsonHasEveryCheckInOrder) {
  DoctorReport report(false);
  report.Ok("tcp", "connected");
  report.Fail("locale", "no \"UTF-8\"\nlocale", "install one");
  EXPECT_TRUE(report.failed());
  EXPECT_EQ(report.Json("me@h:22"),
            R"({"destination": "me@h:22", "ok": false, "checks": [{"check": "tcp", "ok": true, "detail": "connected", )"
            R"("fix": ""}, {"check": "locale", "ok": false, "detail": "no \"UTF-8\"\nlocale", "fix": "install one"}]})");
}

TEST(JsonQuote, EscapesControlCharacters) { EXPECT_EQ(JsonQuote("a\x01\\"), R"("a\u0001\\")"); }

}  // namespace
}  // namespace mconnect::launcher
