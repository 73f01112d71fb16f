#include "mosh/server.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mconnect::mosh {
namespace {

// Captured from mosh 1.4.0 (Debian 12): `mosh-server new -c 256 -s -l LANG=C.UTF-8` run with
// no SSH_CONNECTION in its environment.
constexpr std::string_view kKey = "zo/8liqAN5tEXUEsoSl+Jg";
constexpr std::string_view kRealStdout = "\r\nMOSH CONNECT 60001 zo/8liqAN5tEXUEsoSl+Jg\n";
constexpr std::string_view kRealStderr =
    "Warning: SSH_CONNECTION not found; binding to any interface.\n"
    "\n"
    "mosh-server (mosh 1.4.0) [build mosh 1.4.0]\n"
    "Copyright 2012 Keith Winstein <mosh-devel@mit.edu>\n"
    "License GPLv3+: GNU GPL version 3 or later <http://gnu.org/licenses/gpl.html>.\n"
    "This is free software: you are free to change and redistribute it.\n"
    "There is NO WARRANTY, to the extent permitted by law.\n"
    "\n"
    "[mosh-server detached, pid = 5074]\n";

// Captured: `mosh-server new -c 256 -s -l LANG=xx_XX.UTF-8` (a locale the server lacks); the
// locale dump goes to stdout, the explanation to stderr.
constexpr std::string_view kLocaleStdout =
    "LANG=xx_XX.UTF-8\nLANGUAGE=\nLC_CTYPE=\"xx_XX.UTF-8\"\nLC_NUMERIC=\"xx_XX.UTF-8\"\nLC_ALL=\n";
constexpr std::string_view kLocaleStderr =
    "Warning: SSH_CONNECTION not found; binding to any interface.\n"
    "The locale requested by LANG=xx_XX.UTF-8 isn't available here.\n"
    "Running `locale-gen xx_XX.UTF-8' may be necessary.\n"
    "\n"
    "mosh-server needs a UTF-8 native locale to run.\n"
    "\n"
    "Unfortunately, the local environment ([no charset variables]) specifies\n"
    "the character set \"US-ASCII\",\n"
    "\n"
    "The client-supplied environment (LANG=xx_XX.UTF-8) specifies\n"
    "the character set \"US-ASCII\".\n"
    "\n"
    "locale: Cannot set LC_CTYPE to default locale: No such file or directory\n";

// Captured: LANG=C and no -l at all.
constexpr std::string_view kNoUtf8Stderr =
    "mosh-server needs a UTF-8 native locale to run.\n"
    "\n"
    "Unfortunately, the local environment (LANG=C) specifies\n"
    "the character set \"US-ASCII\",\n";

// Captured: `mosh-server new -p 70000`.
constexpr std::string_view kBadRangeStderr =
    "(Low) port number 70000 outside valid range [0..65535]\n"
    "mosh-server: Bad UDP port range (70000)\n"
    "Usage: mosh-server new [-s] [-v] [-i LOCALADDR] [-p PORT[:PORT2]] [-c COLORS] [-l NAME=VALUE] [-- COMMAND...]\n";

void ExpectNoKey(const MoshServerError& error, std::string_view key) {
  EXPECT_EQ(error.message.find(key), std::string::npos) << error.message;
  EXPECT_EQ(error.hint.find(key), std::string::npos) << error.hint;
}

TEST(ParseMoshServerOutput, ReadsRealOutput) {
  auto connect = ParseMoshServerOutput(0, kRealStdout, kRealStderr);
  ASSERT_TRUE(connect) << connect.error().message;
  EXPECT_EQ(connect->port, 60001);
  EXPECT_EQ(connect->key, kKey);
  EXPECT_EQ(connect->server_pid, 5074u);
}

TEST(ParseMoshServerOutput, AcceptsCrlfAndTrailingSpace) {
  auto connect = ParseMoshServerOutput(0, "MOSH CONNECT 60002 zo/8liqAN5tEXUEsoSl+Jg \t\r\n", "");
  ASSERT_TRUE(connect) << connect.error().message;
  EXPECT_EQ(connect->port, 60002);
  EXPECT_EQ(connect->key, kKey);
  EXPECT_EQ(connect->server_pid, 0u);
}

TEST(ParseMoshServerOutput, FindsTheLineAmongShellNoise) {
  std::string out = "Welcome to the server!\nlast login: yesterday\nMOSH CONNECT 1 AAAAAAAAAAAAAAAAAAAAAA\nbye\n";
  auto connect = ParseMoshServerOutput(0, out, "");
  ASSERT_TRUE(connect);
  EXPECT_EQ(connect->port, 1);
}

TEST(ParseMoshServerOutput, ConnectLineWinsOverExitStatus) {
  EXPECT_TRUE(ParseMoshServerOutput(1, kRealStdout, kRealStderr));
}

TEST(ParseMoshServerOutput, LineMustStartTheLine) {
  auto result = ParseMoshServerOutput(0, " MOSH CONNECT 60001 zo/8liqAN5tEXUEsoSl+Jg\n", "");
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().kind, MoshServerFailure::kNoConnectLine);
}

TEST(ParseMoshServerOutput, RejectsTruncatedKey) {
  std::string key21(kKey.substr(0, 21));
  auto result = ParseMoshServerOutput(0, "MOSH CONNECT 60001 " + key21 + "\n", kRealStderr);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().kind, MoshServerFailure::kNoConnectLine);
  EXPECT_EQ(result.error().message,
            "mosh-server printed a malformed MOSH CONNECT line (a key of 21 base64 characters, not 22)");
  ExpectNoKey(result.error(), key21);
}

TEST(ParseMoshServerOutput, RejectsTwentyThreeCharacterKey) {
  std::string key23 = std::string(kKey) + "Q";
  auto result = ParseMoshServerOutput(0, "MOSH CONNECT 60001 " + key23 + "\n", "");
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().kind, MoshServerFailure::kNoConnectLine);
  ExpectNoKey(result.error(), key23.substr(0, 10));
}

TEST(ParseMoshServerOutput, RejectsKeyWithForeignCharacters) {
  auto result = ParseMoshServerOutput(0, "MOSH CONNECT 60001 zo/8liqAN5tEXUEsoSl-Jg\n", "");
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().kind, MoshServerFailure::kNoConnectLine);
  ExpectNoKey(result.error(), "zo/8liqAN5");
}

TEST(ParseMoshServerOutput, RejectsTextAfterTheKey) {
  auto result = ParseMoshServerOutput(0, std::string("MOSH CONNECT 60001 ") + std::string(kKey) + " extra\n", "");
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().message,
            "mosh-server printed a malformed MOSH CONNECT line (unexpected text after the key)");
}

TEST(ParseMoshServerOutput, RejectsPortZeroAndAbove65535) {
  for (std::string port : {"0", "70000", "65536", "99999999999999999999999"}) {
    auto result = ParseMoshServerOutput(0, "MOSH CONNECT " + port + " " + std::string(kKey) + "\n", "");
    ASSERT_FALSE(result) << port;
    EXPECT_EQ(result.error().kind, MoshServerFailure::kBadPort) << port;
    EXPECT_NE(result.error().message.find("outside 1..65535"), std::string::npos);
    ExpectNoKey(result.error(), kKey);
  }
  auto top = ParseMoshServerOutput(0, "MOSH CONNECT 65535 " + std::string(kKey), "");
  ASSERT_TRUE(top);
  EXPECT_EQ(top->port, 65535);
  auto padded = ParseMoshServerOutput(0, "MOSH CONNECT 060001 " + std::string(kKey), "");
  ASSERT_TRUE(padded);
  EXPECT_EQ(padded->port, 60001);
}

TEST(ParseMoshServerOutput, RejectsMissingOrNonNumericPort) {
  for (std::string line : {"MOSH CONNECT  " + std::string(kKey), "MOSH CONNECT x1 " + std::string(kKey),
                           "MOSH CONNECT 60001" + std::string(kKey), "MOSH CONNECT 60001\t" + std::string(kKey)}) {
    auto result = ParseMoshServerOutput(0, line, "");
    ASSERT_FALSE(result) << line;
    EXPECT_EQ(result.error().kind, MoshServerFailure::kNoConnectLine) << line;
    ExpectNoKey(result.error(), kKey);
  }
}

TEST(ParseMoshServerOutput, TheFirstConnectLineDecides) {
  std::string out = "MOSH CONNECT 60001 short\nMOSH CONNECT 60002 " + std::string(kKey) + "\n";
  EXPECT_FALSE(ParseMoshServerOutput(0, out, ""));
}

TEST(ParseMoshServerOutput, KeyNeverLeaksThroughQuotedStderr) {
  // A wrapper that copies stdout to stderr must not get the key into the message.
  std::string out = "MOSH CONNECT 60001 " + std::string(kKey) + "Z\n";
  std::string err = "wrapper: saw MOSH CONNECT 60001 " + std::string(kKey) + "Z\n";
  auto result = ParseMoshServerOutput(1, out, err);
  ASSERT_FALSE(result);
  ExpectNoKey(result.error(), kKey);
  auto result2 = ParseMoshServerOutput(1, "no line here\n", err);
  ASSERT_FALSE(result2);
  ExpectNoKey(result2.error(), kKey);
  auto result3 = ParseMoshServerOutput(1, "", "debug: key is " + std::string(kKey) + "\n");
  ASSERT_FALSE(result3);  // nothing marks this as a key; only keys from stdout are known
  auto result4 = ParseMoshServerOutput(1, "MOSH CONNECT 0 " + std::string(kKey) + "\n",
                                       "echo: " + std::string(kKey) + "\n");
  ASSERT_FALSE(result4);
  ExpectNoKey(result4.error(), kKey);
}

// Found by mosh_connect_fuzz: a short "key" that also occurs in the redaction marker looped
// forever. Redaction must terminate whatever the candidates are.
TEST(ParseMoshServerOutput, RedactionTerminatesOnAnyCandidate) {
  auto short_run = ParseMoshServerOutput(1, "MOSH CONNECT 60021 e locale\n", "bash: line 1: e: not here\n");
  ASSERT_FALSE(short_run);
  EXPECT_EQ(short_run.error().message,
            "mosh-server printed a malformed MOSH CONNECT line (a key of 1 base64 characters, not 22)");
  auto marker_like =
      ParseMoshServerOutput(1, "note: MOSH CONNECT 1 keykeykeykey\n", "oops keykeykeykey keykeykeykey\n");
  ASSERT_FALSE(marker_like);
  EXPECT_EQ(marker_like.error().message, "mosh-server printed no MOSH CONNECT line (exit status 1): oops <key> <key>");
}

TEST(ParseMoshServerOutput, MissingLocaleAsksForTheFallback) {
  auto result = ParseMoshServerOutput(1, kLocaleStdout, kLocaleStderr);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().kind, MoshServerFailure::kLocale);
  EXPECT_EQ(result.error().message, "mosh-server: The locale requested by LANG=xx_XX.UTF-8 isn't available here.");
  EXPECT_NE(result.error().hint.find("LANG=C.UTF-8"), std::string::npos);

  auto no_utf8 = ParseMoshServerOutput(1, "", kNoUtf8Stderr);
  ASSERT_FALSE(no_utf8);
  EXPECT_EQ(no_utf8.error().kind, MoshServerFailure::kLocale);
  EXPECT_EQ(no_utf8.error().message, "mosh-server needs a UTF-8 native locale to run");
}

TEST(ParseMoshServerOutput, MissingServerSaysHowToFixIt) {
  constexpr std::string_view kHint =
      "install mosh on the server, or pass --server=/full/path/to/mosh-server (mosh-server must be on the PATH "
      "of non-interactive shells)";
  struct Case {
    int status;
    std::string err;
  };
  for (const auto& c : {Case{127, "bash: line 1: mosh-server: command not found\n"},
                        Case{127, "sh: 1: exec: mosh-server: not found\n"},
                        Case{127, ""},
                        Case{1, "zsh:1: command not found: mosh-server\n"},
                        Case{127, "bash: /opt/mosh/bin/mosh-server: No such file or directory\n"}}) {
    auto result = ParseMoshServerOutput(c.status, "", c.err);
    ASSERT_FALSE(result) << c.err;
    EXPECT_EQ(result.error().kind, MoshServerFailure::kNotFound) << c.err;
    EXPECT_EQ(result.error().hint, kHint);
    EXPECT_TRUE(result.error().message.starts_with("mosh-server not found on the server")) << result.error().message;
  }
  EXPECT_EQ(ParseMoshServerOutput(127, "", "bash: line 1: mosh-server: command not found\n").error().message,
            "mosh-server not found on the server: bash: line 1: mosh-server: command not found");
}

TEST(ParseMoshServerOutput, AnythingElseQuotesTheFirstTellingStderrLine) {
  auto result = ParseMoshServerOutput(1, "", kBadRangeStderr);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().kind, MoshServerFailure::kNoConnectLine);
  EXPECT_EQ(result.error().message,
            "mosh-server printed no MOSH CONNECT line (exit status 1): (Low) port number 70000 outside valid range "
            "[0..65535]");

  auto banner_only = ParseMoshServerOutput(0, "", "\nmosh-server (mosh 1.4.0) [build mosh 1.4.0]\nCopyright 2012\n"
                                                  "Error binding to IP 192.0.2.1: bind: Cannot assign\n");
  ASSERT_FALSE(banner_only);
  EXPECT_EQ(banner_only.error().message,
            "mosh-server printed no MOSH CONNECT line (exit status 0): Error binding to IP 192.0.2.1: bind: Cannot "
            "assign");

  auto silent = ParseMoshServerOutput(0, "", "");
  ASSERT_FALSE(silent);
  EXPECT_EQ(silent.error().message, "mosh-server printed no MOSH CONNECT line (exit status 0)");
}

TEST(ParseMoshServerOutput, QuotedStderrIsSanitized) {
  auto result = ParseMoshServerOutput(1, "", "\x1b]0;evil\x07 title" + std::string(500, 'x') + "\n");
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().message.find('\x1b'), std::string::npos);
  EXPECT_LT(result.error().message.size(), 250u);
}

TEST(ParseMoshServerOutput, PidIsOptionalAndBounded) {
  std::string out = "MOSH CONNECT 60001 " + std::string(kKey) + "\n";
  EXPECT_EQ(ParseMoshServerOutput(0, out, "[mosh-server detached, pid = 99999999999]\n")->server_pid, 0u);
  EXPECT_EQ(ParseMoshServerOutput(0, out, "[mosh-server detached, pid = 4294967295]\n")->server_pid, 4294967295u);
  EXPECT_EQ(ParseMoshServerOutput(0, out, "[mosh-server detached, pid = 12")->server_pid, 0u);
  EXPECT_EQ(ParseMoshServerOutput(0, out, "[mosh-server detached, pid = x]")->server_pid, 0u);
}

TEST(BuildMoshServerCommand, FollowsMoshPlOrder) {
  MoshServerParams params;
  params.colors = 256;
  params.port_range = "60001:60010";
  params.verbose = 2;
  params.locale = {"LANG=en_US.UTF-8", "LC_ALL="};
  params.command = {"tmux", "new", "-A", "-s", "main session"};
  auto command = BuildMoshServerCommand(params);
  ASSERT_TRUE(command) << command.error().message;
  EXPECT_EQ(*command,
            "mosh-server new -c 256 -s -p 60001:60010 -v -v -l LANG=en_US.UTF-8 -l LC_ALL= -- tmux new -A -s "
            "'main session'");
}

TEST(BuildMoshServerCommand, MinimalCommand) {
  EXPECT_EQ(BuildMoshServerCommand({}).value_or(""), "mosh-server new -c 0 -s");
}

TEST(BuildMoshServerCommand, BindModes) {
  MoshServerParams params;
  params.bind = "any";
  EXPECT_EQ(BuildMoshServerCommand(params).value_or(""), "mosh-server new -c 0");
  params.bind = "SSH";
  EXPECT_EQ(BuildMoshServerCommand(params).value_or(""), "mosh-server new -c 0 -s");
  params.bind = "2001:db8::1";
  EXPECT_EQ(BuildMoshServerCommand(params).value_or(""), "mosh-server new -c 0 -i 2001:db8::1");
  params.bind = "server.example; rm -rf ~";
  auto bad = BuildMoshServerCommand(params);
  ASSERT_FALSE(bad);
  EXPECT_TRUE(bad.error().message.starts_with("bad --bind-server")) << bad.error().message;
}

TEST(BuildMoshServerCommand, QuotesEveryWordAgainstTheShell) {
  MoshServerParams params;
  params.server = "/opt/mosh/bin/mosh-server";
  params.locale = {"LANG=it's; $(reboot)"};
  params.command = {"echo", "$HOME", "`id`", "a'b", ""};
  auto command = BuildMoshServerCommand(params);
  ASSERT_TRUE(command) << command.error().message;
  EXPECT_EQ(*command,
            "/opt/mosh/bin/mosh-server new -c 0 -s -l 'LANG=it'\\''s; $(reboot)' -- echo '$HOME' '`id`' 'a'\\''b' ''");
}

TEST(BuildMoshServerCommand, ServerIsACommandPrefixLikeMosh) {
  MoshServerParams params;
  params.server = "env LD_LIBRARY_PATH=/opt/lib mosh-server";
  EXPECT_EQ(BuildMoshServerCommand(params).value_or(""), "env LD_LIBRARY_PATH=/opt/lib mosh-server new -c 0 -s");
  params.server = "  ";
  EXPECT_FALSE(BuildMoshServerCommand(params));
  params.server = "mosh-server\nreboot";
  EXPECT_FALSE(BuildMoshServerCommand(params));
}

TEST(BuildMoshServerCommand, ValidatesPortRanges) {
  for (std::string good : {"1", "60001", "65535", "60000:61000", "5:5"}) {
    MoshServerParams params;
    params.port_range = good;
    EXPECT_TRUE(BuildMoshServerCommand(params)) << good;
  }
  for (std::string bad : {"0", "65536", "61000:60000", "1:", ":2", "a", "1:2:3", "-1", "60001-60010", " 1",
                          "99999999999999999999"}) {
    MoshServerParams params;
    params.port_range = bad;
    auto command = BuildMoshServerCommand(params);
    ASSERT_FALSE(command) << bad;
    EXPECT_TRUE(command.error().message.starts_with("bad mosh port range")) << command.error().message;
  }
}

TEST(BuildMoshServerCommand, ValidatesLocaleEntries) {
  for (std::string bad : std::vector<std::string>{"LANG", "=C.UTF-8", "1LANG=C", "LA NG=C", "LANG;x=C",
                                                 "LANG=C\nx", std::string("LANG=C\0x", 8)}) {
    MoshServerParams params;
    params.locale = {bad};
    EXPECT_FALSE(BuildMoshServerCommand(params)) << bad;
  }
}

TEST(BuildMoshServerCommand, RejectsNulInCommand) {
  MoshServerParams params;
  params.command = {std::string("a\0b", 3)};
  EXPECT_FALSE(BuildMoshServerCommand(params));
}

}  // namespace
}  // namespace mconnect::mosh
