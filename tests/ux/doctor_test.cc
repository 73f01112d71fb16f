// `mconnect doctor` against a real sshd: all OK on the lab as it is; and on a lab whose
// server sessions lack mosh-server on their PATH, or lack a UTF-8 locale, or whose host key
// changed, or where UDP does not pass, the failing check names the problem and the fix. And the
// hints that send a person to doctor carry the options that decide what it checks. Its --json
// is JSON whatever the values hold.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include "launcher/doctor.pb.h"
#include "tests/support/mconnect_lab.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

const std::vector<std::string> kChecks{"ssh settings", "tcp",       "host key",     "auth", "master",
                                       "mosh-server",  "locale",    "remote-ip",    "server start", "udp"};

class DoctorTest : public ::testing::Test {
 protected:
  void Start(const std::string& sshd_config_extra = "") {
    auto lab = MconnectLab::Start(sshd_config_extra);
    ASSERT_TRUE(lab) << lab.error().message;
    lab_ = std::move(*lab);
  }

  CommandOutput Doctor(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args{"doctor", lab_->SshOption()};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back("lab");
    auto result = lab_->Run(args, 90s);
    EXPECT_TRUE(result) << result.error().message;
    return result ? *result : CommandOutput{};
  }

  // A command through plain ssh to the lab, as a user would check it by hand.
  CommandOutput Ssh(const std::string& command) {
    auto result = RunCommand({"ssh", "-F", lab_->sshd().ssh_config(), "lab", command});
    EXPECT_TRUE(result) << result.error().message;
    return result ? *result : CommandOutput{};
  }

  std::unique_ptr<MconnectLab> lab_;
};

// doctor --json's output, as the message it was printed from.
doctor::Report ParseReport(const std::string& json) {
  doctor::Report report;
  const auto parsed = google::protobuf::util::JsonStringToMessage(json, &report);
  EXPECT_TRUE(parsed.ok()) << parsed.ToString() << "\nin: " << json;
  return report;
}

bool HasPassed(const doctor::Report& report, const std::string& name) {
  return std::ranges::any_of(report.checks(), [&](const doctor::Check& c) { return c.check() == name && c.ok(); });
}

// What `python3 -m json.tool` says of `json`: its exit status and stderr.
CommandOutput JsonTool(const std::string& json) {
  CommandOptions feed;
  feed.input = json;
  auto tool = RunCommand({"python3", "-m", "json.tool"}, feed);
  EXPECT_TRUE(tool) << tool.error().message;
  return tool ? *tool : CommandOutput{};
}

TEST_F(DoctorTest, EveryCheckPassesAgainstTheLabInOrder) {
  Start();
  auto doctor = Doctor();
  EXPECT_EQ(doctor.exit_code, 0) << doctor.out << doctor.err;
  std::size_t at = 0;
  for (const auto& check : kChecks) {
    std::size_t found = doctor.out.find("OK    " + check, at);
    EXPECT_NE(found, std::string::npos) << check << " missing or out of order in:\n" << doctor.out;
    if (found != std::string::npos) at = found;
  }
  EXPECT_THAT(doctor.out, Not(HasSubstr("FAIL")));

  auto json = Doctor({"--json"});
  EXPECT_EQ(json.exit_code, 0) << json.out << json.err;
  const doctor::Report report = ParseReport(json.out);
  EXPECT_TRUE(report.ok()) << json.out;
  for (const auto& check : kChecks) EXPECT_TRUE(HasPassed(report, check)) << check << " missing in:\n" << json.out;
}

// A socket directory whose name holds a quote and a backslash (both legal in a path): the master
// check's line names the socket, and the JSON is still JSON, with the path in it as on disk.
TEST_F(DoctorTest, JsonStaysJsonWithQuotesAndBackslashesInValues) {
  Start();
  const std::string dir = lab_->dir().Sub("q\"b\\s");
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0) << std::strerror(errno);
  const std::string profile = lab_->dir().Sub("profile.toml");
  std::ofstream(profile) << "[defaults]\nsocket-dir = '" << dir << "'\n";
  auto json = Doctor({"--json", "--config", profile});
  EXPECT_EQ(json.exit_code, 0) << json.out << json.err;
  EXPECT_THAT(json.out, HasSubstr("q\\\"b\\\\s"));
  auto tool = JsonTool(json.out);
  EXPECT_EQ(tool.exit_code, 0) << tool.err << "\nin: " << json.out;
  const doctor::Report report = ParseReport(json.out);
  auto master = std::ranges::find_if(report.checks(), [](const doctor::Check& c) { return c.check() == "master"; });
  ASSERT_NE(master, report.checks().end()) << json.out;
  EXPECT_THAT(master->detail(), HasSubstr(dir + "/")) << json.out;
}

// A byte that is no UTF-8 in a value (a --socket path may hold any byte) becomes U+FFFD: the JSON
// stays JSON. It used to carry the byte as it was, and JSON text is UTF-8 (RFC 8259): a reader
// that decodes strictly, as below, refused it.
TEST_F(DoctorTest, JsonStaysJsonWithBytesThatAreNotUtf8) {
  Start();
  auto json = Doctor({"--json", "--socket=" + lab_->dir().Sub("not\xffutf8.sock")});
  EXPECT_EQ(json.exit_code, 0) << json.out << json.err;
  auto tool = JsonTool(json.out);
  EXPECT_EQ(tool.exit_code, 0) << tool.err << "\nin: " << json.out;
  EXPECT_THAT(json.out, HasSubstr("not\xEF\xBF\xBDutf8.sock"));
  CommandOptions feed;
  feed.input = json.out;
  auto strict = RunCommand(
      {"python3", "-c", "import json, sys\njson.loads(sys.stdin.buffer.read().decode('utf-8', 'strict'))\n"}, feed);
  ASSERT_TRUE(strict) << strict.error().message;
  EXPECT_EQ(strict->exit_code, 0) << strict->err << "\nin: " << json.out;
}

// The server's sessions get a PATH (sshd's SetEnv) that holds the usual tools but no mosh-server.
TEST_F(DoctorTest, MoshServerOffTheNonInteractivePathNamesWhereItIsAndTheFix) {
  TempDir bin;
  for (const char* tool : {"sh", "bash", "env", "sleep", "kill", "cat", "tail", "locale", "true", "grep", "sed"}) {
    std::string target = std::string("/usr/bin/") + tool;
    if (::access(target.c_str(), X_OK) == 0) std::filesystem::create_symlink(target, bin.Sub(tool));
  }
  ASSERT_EQ(::access("/usr/bin/mosh-server", X_OK), 0) << "the lab needs mosh-server in /usr/bin (apt install mosh)";
  Start("SetEnv PATH=" + bin.path());
  auto by_hand = Ssh("command -v mosh-server || echo none");
  ASSERT_EQ(by_hand.out, "none\n") << "the lab's sessions still find mosh-server: " << by_hand.out << by_hand.err;

  auto doctor = Doctor();
  EXPECT_EQ(doctor.exit_code, 1) << doctor.out << doctor.err;
  EXPECT_THAT(doctor.out, HasSubstr("FAIL  mosh-server    mosh-server is not on the PATH of non-interactive shells"));
  // The remote account's own startup files may put more in front (this one is the real root's).
  EXPECT_THAT(doctor.out, HasSubstr(bin.path() + "), but /usr/bin/mosh-server exists"));
  EXPECT_THAT(doctor.out, HasSubstr("fix: use --server=/usr/bin/mosh-server"));
  // The later checks ran mosh-server from where it was found.
  EXPECT_THAT(doctor.out, HasSubstr("OK    server start"));
  EXPECT_THAT(doctor.out, HasSubstr("OK    udp"));
}

// The server's sessions get LOCPATH (sshd's SetEnv) pointing at locale data where C.UTF-8 is not
// UTF-8 (compiled from ISO-8859-1), so no UTF-8 locale can be had there, as on a server whose
// locale data lacks it. mosh-server itself refuses to start there.
TEST_F(DoctorTest, AServerWithoutAUtf8LocaleNamesTheProblemAndTheFix) {
  TempDir locales;
  auto made = RunCommand({"localedef", "-i", "C", "-f", "ISO-8859-1", locales.Sub("C.UTF-8")});
  ASSERT_TRUE(made) << made.error().message;
  ASSERT_EQ(made->exit_code, 0) << "localedef: " << made->err;
  Start("SetEnv LOCPATH=" + locales.path());
  auto by_hand = Ssh("mosh-server new -l LANG=C.UTF-8 -- true");
  ASSERT_NE(by_hand.exit_code, 0);
  ASSERT_THAT(by_hand.err, HasSubstr("mosh-server needs a UTF-8 native locale to run"));

  auto doctor = Doctor();
  EXPECT_EQ(doctor.exit_code, 1) << doctor.out << doctor.err;
  EXPECT_THAT(doctor.out, HasSubstr("FAIL  locale         the server has no UTF-8 locale: with LANG=C.UTF-8 its "
                                    "character set is ANSI_X3.4-1968"));
  EXPECT_THAT(doctor.out, HasSubstr("fix: install a UTF-8 locale on the server"));
  EXPECT_THAT(doctor.out, HasSubstr("FAIL  server start"));
  EXPECT_THAT(doctor.out, HasSubstr("UTF-8"));
}

TEST_F(DoctorTest, AChangedHostKeyIsNamedAndEndsTheChecks) {
  Start();
  auto rekeyed = lab_->sshd().Rekey();
  ASSERT_TRUE(rekeyed) << rekeyed.error().message;
  auto doctor = Doctor();
  EXPECT_EQ(doctor.exit_code, 255) << doctor.out << doctor.err;
  EXPECT_THAT(doctor.out, HasSubstr("OK    tcp"));
  EXPECT_THAT(doctor.out, HasSubstr("FAIL  host key       the server's host key has CHANGED"));
  EXPECT_THAT(doctor.out, HasSubstr("fix: if the server was reinstalled or rekeyed, remove the old key with "
                                    "`ssh-keygen -R '[127.0.0.1]:"));
  EXPECT_THAT(doctor.out, Not(HasSubstr("master")));
  EXPECT_EQ(lab_->MasterPid(), 0) << "no master may start on a changed host key";
}

TEST_F(DoctorTest, NothingListeningIsATcpFailureWithTheFix) {
  Start();
  lab_->sshd().Stop();
  auto doctor = Doctor();
  EXPECT_EQ(doctor.exit_code, 255) << doctor.out << doctor.err;
  EXPECT_THAT(doctor.out, HasSubstr("FAIL  tcp            cannot reach 127.0.0.1 port "));
  EXPECT_THAT(doctor.out, HasSubstr("Connection refused"));
  EXPECT_THAT(doctor.out, HasSubstr("fix: check HostName and Port"));
}

// `mconnect --ssh='ssh -p 1' bebou` fails; its hint used to say `mconnect doctor bebou`, which
// checks the usual port and finds nothing wrong. The hint carries the options that decide what
// is reached, shell-quoted, and pasted into a shell it checks what failed.
TEST_F(DoctorTest, TheHintOfAFailedConnectionCarriesItsOptions) {
  Start();
  const std::string ssh = "ssh -F " + lab_->sshd().ssh_config() + " -o Port=1";
  // A client that needs no terminal: the session gets as far as the connection.
  auto failed =
      lab_->Run({"--ssh=" + ssh, "--transport=udp", "-p", "60001:60010", "-4", "--client=/bin/true", "lab"}, 60s);
  ASSERT_TRUE(failed) << failed.error().message;
  EXPECT_EQ(failed->exit_code, 255) << failed->err;
  // -4 too: doctor checks over the family the session asked for.
  const std::string hint = "mconnect doctor --ssh='" + ssh + "' --port=60001:60010 --transport=udp --family=inet lab";
  EXPECT_THAT(failed->err, HasSubstr("hint: `" + hint + "` checks each step and says what to fix")) << failed->err;

  CommandOptions options;
  options.timeout = 90s;
  auto pasted = RunCommand(lab_->env().Command({"sh", "-c", hint}), options);
  ASSERT_TRUE(pasted) << pasted.error().message;
  EXPECT_EQ(pasted->exit_code, 255) << pasted->out << pasted->err;
  EXPECT_THAT(pasted->out, HasSubstr("FAIL  tcp            cannot reach 127.0.0.1 port 1 ("));
}

// With --transport=udp and UDP not passing (the probe aims at 127.0.0.2, where nothing answers:
// mosh-server listens on the SSH connection's 127.0.0.1 only), the udp check fails, and so does
// the transport, once: no OK for what just failed. The fix is the line that works, over SSH.
TEST_F(DoctorTest, TransportUdpWhereUdpDoesNotPassFailsOnceAndNamesWhatWorks) {
  Start();
  auto blocked = Doctor({"--transport=udp", "--remote-ip=static:127.0.0.2"});
  EXPECT_EQ(blocked.exit_code, 1) << blocked.out << blocked.err;
  EXPECT_THAT(blocked.out, HasSubstr("FAIL  udp            127.0.0.2:"));
  EXPECT_THAT(blocked.out, HasSubstr("fix: UDP is blocked on the way to 127.0.0.2: forward UDP ports 60001:60999 to "
                                     "the server (mosh-server tried port "));
  EXPECT_THAT(blocked.out, HasSubstr("), or let mosh go over SSH (see relay below)\n"));
  EXPECT_THAT(blocked.out, HasSubstr("OK    relay          mosh-server answered through the"));
  EXPECT_THAT(blocked.out, HasSubstr("FAIL  transport      udp (--transport=udp): mosh-client would hear nothing from "
                                     "mosh-server (no answer over UDP from 127.0.0.2:"));
  EXPECT_THAT(blocked.out, HasSubstr("fix: mosh over SSH works here (relay above): run `mconnect --ssh='ssh -F " +
                                     lab_->sshd().ssh_config() +
                                     "' --remote-ip=static:127.0.0.2 --transport=ssh lab`, or leave out "
                                     "--transport=udp (auto, the default, then goes over SSH by itself)"));
  EXPECT_THAT(blocked.out, Not(HasSubstr("OK    transport")));

  auto passing = Doctor({"--transport=udp"});
  EXPECT_EQ(passing.exit_code, 0) << passing.out << passing.err;
  EXPECT_THAT(passing.out, HasSubstr("OK    transport      udp (--transport=udp): mosh-server answered over UDP at "
                                     "127.0.0.1 in "));
  EXPECT_THAT(passing.out, Not(HasSubstr("FAIL")));
}

// The same with `transport = "udp"` in the profile: the fix names the profile.
TEST_F(DoctorTest, TransportUdpFromTheProfileWhereUdpDoesNotPassNamesTheProfile) {
  Start();
  std::filesystem::create_directories(lab_->env().config_home + "/mconnect");
  std::ofstream(lab_->env().config_home + "/mconnect/config.toml") << "[defaults]\ntransport = \"udp\"\n";
  auto blocked = Doctor({"--remote-ip=static:127.0.0.2"});
  EXPECT_EQ(blocked.exit_code, 1) << blocked.out << blocked.err;
  EXPECT_THAT(blocked.out, HasSubstr("fix: mosh over SSH works here (relay above): run `mconnect --ssh='ssh -F " +
                                     lab_->sshd().ssh_config() +
                                     "' --remote-ip=static:127.0.0.2 --transport=ssh lab`, or take transport = \"udp\" "
                                     "out of the profile (auto, the default, then goes over SSH by itself)"));
}

// Neither UDP nor the relay (the server's sessions have no perl and no mconnect on their PATH):
// the transport fails once more, and its fix says that SSH is no way out either.
TEST_F(DoctorTest, TransportUdpWhereNeitherUdpNorTheRelayPassesSaysSo) {
  TempDir bin;
  for (const char* tool : {"sh", "bash", "env", "sleep", "kill", "cat", "tail", "locale", "true", "grep", "sed",
                           "mosh-server"}) {
    std::string target = std::string("/usr/bin/") + tool;
    if (::access(target.c_str(), X_OK) == 0) std::filesystem::create_symlink(target, bin.Sub(tool));
  }
  Start("SetEnv PATH=" + bin.path());
  auto blocked = Doctor({"--transport=udp", "--remote-ip=static:127.0.0.2"});
  EXPECT_EQ(blocked.exit_code, 1) << blocked.out << blocked.err;
  EXPECT_THAT(blocked.out, HasSubstr("FAIL  udp            127.0.0.2:"));
  EXPECT_THAT(blocked.out, HasSubstr("FAIL  relay"));
  EXPECT_THAT(blocked.out, HasSubstr("FAIL  transport      udp (--transport=udp): mosh-client would hear nothing"));
  EXPECT_THAT(blocked.out, HasSubstr("fix: forward the UDP ports (see udp above); mosh over SSH does not work either "
                                     "(relay above)"));
  EXPECT_THAT(blocked.out, Not(HasSubstr("OK    transport")));
}

// The remote-ip check's fix names the `mconnect ip` line with the same --ssh and chain.
TEST_F(DoctorTest, ARemoteIpFailureNamesTheIpLineWithItsOptions) {
  Start();
  auto failed = Doctor({"--remote-ip=command:true"});
  EXPECT_EQ(failed.exit_code, 1) << failed.out << failed.err;
  EXPECT_THAT(failed.out, HasSubstr("fix: add a working --remote-ip strategy (see `mconnect ip --ssh='ssh -F " +
                                    lab_->sshd().ssh_config() +
                                    "' --remote-ip=command:true lab` and contrib/remote-ip/README.md)"));
}

// A session with --transport=udp --probe-udp where no address answers still tries UDP, as told,
// and says which line would carry mosh over SSH instead. (The client is one that needs no
// terminal, and exits at once.)
TEST_F(DoctorTest, ASessionWithTransportUdpWhereUdpDoesNotPassNamesTheWayOverSsh) {
  Start();
  auto session = lab_->Run({lab_->SshOption(), "--transport=udp", "--probe-udp", "--remote-ip=static:127.0.0.2",
                            "--client=/bin/true", "lab"},
                           60s);
  ASSERT_TRUE(session) << session.error().message;
  EXPECT_THAT(session->err, HasSubstr("mconnect: no address answered over UDP (127.0.0.2: "));
  EXPECT_THAT(session->err, HasSubstr("); trying 127.0.0.2 anyway (transport udp)\nmconnect: hint: `mconnect --ssh='ssh -F " +
                                      lab_->sshd().ssh_config() +
                                      "' --remote-ip=static:127.0.0.2 --transport=ssh lab` carries mosh over SSH instead, "
                                      "as transport auto (the default) would\n"))
      << session->err;
}

}  // namespace
}  // namespace mconnect::testing
