// What `mconnect doctor` makes of what OpenSSH and a server print, and its JSON.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <google/protobuf/util/json_util.h>

#include "launcher/doctor.h"
#include "launcher/doctor.pb.h"

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

// The report's JSON, read back into the message it was printed from.
doctor::Report Parsed(const std::string& json) {
  doctor::Report report;
  const auto parsed = google::protobuf::util::JsonStringToMessage(json, &report);
  EXPECT_TRUE(parsed.ok()) << parsed.ToString() << "\nin: " << json;
  return report;
}

TEST(DoctorReport, JsonHasEveryCheckInOrder) {
  DoctorReport report(false);
  report.Ok("tcp", "connected");
  report.Fail("locale", "no \"UTF-8\"\nlocale", "install one");
  EXPECT_TRUE(report.failed());
  const std::string json = report.Json("me@h:22");
  EXPECT_EQ(json.find('\n'), std::string::npos) << "one line: " << json;
  const doctor::Report parsed = Parsed(json);
  EXPECT_EQ(parsed.destination(), "me@h:22");
  EXPECT_FALSE(parsed.ok());
  ASSERT_EQ(parsed.checks_size(), 2) << json;
  EXPECT_EQ(parsed.checks(0).check(), "tcp");
  EXPECT_TRUE(parsed.checks(0).ok());
  EXPECT_EQ(parsed.checks(0).detail(), "connected");
  EXPECT_EQ(parsed.checks(0).fix(), "");
  EXPECT_EQ(parsed.checks(1).check(), "locale");
  EXPECT_FALSE(parsed.checks(1).ok());
  EXPECT_EQ(parsed.checks(1).detail(), "no \"UTF-8\"\nlocale");
  EXPECT_EQ(parsed.checks(1).fix(), "install one");
  // Every field is there, zero values too, under the names scripts know.
  EXPECT_THAT(json, HasSubstr(R"({"check":"tcp","ok":true,"detail":"connected","fix":"","result":"ok"})"));
}

// A warning is said and kept, and fails nothing.
TEST(DoctorReport, AWarningIsInTheJsonAndFailsNothing) {
  DoctorReport report(false);
  report.Add("remote-ip", Warning("command:false: exited 1"));
  report.Ok("remote-ip", "peer -> 127.0.0.1 (0 ms)");
  EXPECT_FALSE(report.failed());
  const doctor::Report parsed = Parsed(report.Json("h"));
  EXPECT_TRUE(parsed.ok());
  ASSERT_EQ(parsed.checks_size(), 2);
  EXPECT_EQ(parsed.checks(0).result(), "warning");
  EXPECT_TRUE(parsed.checks(0).ok());
  EXPECT_EQ(parsed.checks(1).result(), "ok");
}

TEST(DoctorReport, JsonEscapesControlCharactersQuotesAndBackslashes) {
  DoctorReport report(false);
  report.Fail("x", "a\x01\\\"", "");
  EXPECT_THAT(report.Json("h"), HasSubstr(R"("detail":"a\u0001\\\"")"));
}

// Bytes that are no UTF-8 (a path, what a server said) become U+FFFD; the rest stays as it was.
TEST(DoctorReport, JsonReplacesBytesThatAreNotUtf8) {
  DoctorReport report(false);
  report.Ok("master", "at /tmp/\xff\xfe.sock, caf\xc3\xa9 \xe2\x82");
  EXPECT_EQ(Parsed(report.Json("h")).checks(0).detail(), "at /tmp/\uFFFD\uFFFD.sock, caf\u00e9 \uFFFD\uFFFD");
}

}  // namespace
}  // namespace mconnect::launcher
