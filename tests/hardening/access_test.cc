// Who may use the master's socket, and what a planted file can make it do.
//
// Already shown elsewhere (not repeated here): the socket's 0600 and its directory's 0700 modes
// (tests/master/master_test.cc SocketIsPrivate) and a 0755 socket directory refused with a chmod
// hint (LooseSocketDirectory). Here: a real OpenSSH client running as another uid, first as the
// file system stops it, then with CAP_DAC_OVERRIDE so that only SO_PEERCRED is left to refuse it;
// owners of socket, directory, lock and log; a directory of another owner or behind a symlink;
// a chosen socket directory others may write to; links planted at the socket, lock and log paths;
// ancestors of the socket directory others may write to (a runtime directory that is 0777 without
// the sticky bit, one further up, one behind a link), and the sticky, root-owned ones that are fine.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iostream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/hardening/hardening.h"
#include "tests/support/require.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr uid_t kNobody = 65534;

struct stat Lstat(const std::string& path) {
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0) st.st_mode = 0;
  return st;
}

class AccessTest : public HardeningTest {
 protected:
  void SetUp() override {
    HardeningTest::SetUp();
    if (lab_) directory_ = lab_->env().runtime_dir + "/mconnect";
  }

  // `ssh -O check lab` against the master's socket, run as nobody:nogroup with no groups, through
  // setpriv. `caps`: also give it CAP_DAC_OVERRIDE (inheritable + ambient, so it survives the
  // exec of ssh), which lets it past the socket's and directories' modes.
  CommandOutput CheckAsNobody(bool caps) { return CheckAs("nobody", "nogroup", caps); }
  CommandOutput CheckAs(const std::string& user, const std::string& group, bool caps) {
    std::vector<std::string> argv = AsUser(user, group, caps);
    argv.insert(argv.end(), {"env", "-i", "HOME=/", "PATH=/usr/bin:/bin", "ssh", "-F", "/dev/null", "-o",
                             "ControlPath=" + lab_->SocketPath(), "-O", "check", "lab"});
    CommandOptions options;
    options.timeout = 20s;
    auto result = RunCommand(argv, options);
    EXPECT_TRUE(result) << result.error().message;
    return result ? *result : CommandOutput{};
  }
  // The setpriv prefix that runs a command as USER:GROUP with no other groups.
  static std::vector<std::string> AsUser(const std::string& user, const std::string& group, bool caps) {
    std::vector<std::string> argv{"setpriv", "--reuid=" + user, "--regid=" + group, "--clear-groups"};
    if (caps) argv.insert(argv.end(), {"--inh-caps=-all,+dac_override", "--ambient-caps=-all,+dac_override"});
    return argv;
  }

  // `mconnect ip lab` that must fail; returns its stderr.
  std::string IpFails(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args{"ip", lab_->SshOption()};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back("lab");
    auto result = lab_->Run(args);
    EXPECT_TRUE(result) << result.error().message;
    if (!result) return "";
    EXPECT_NE(result->exit_code, 0) << "mconnect started although it should have refused:\n" << result->err;
    EXPECT_FALSE(result->timed_out);
    return result->err;
  }

  std::string directory_;
};

TEST_F(AccessTest, AnotherUidIsStoppedByTheModesAndThenBySoPeercred) {
  ASSERT_TRUE(StartMaster(*lab_));
  const pid_t master = lab_->MasterPid();
  ASSERT_GT(master, 0);

  // The same command as the owner: the master answers it.
  auto own = RunCommand({"ssh", "-F", "/dev/null", "-o", "ControlPath=" + lab_->SocketPath(), "-O", "check", "lab"});
  ASSERT_TRUE(own);
  ASSERT_EQ(own->exit_code, 0) << own->err;
  EXPECT_THAT(own->err, HasSubstr("Master running (pid=" + std::to_string(master) + ")"));

  // Another uid does not even reach the socket: 0700 directories, a 0600 socket.
  auto plain = CheckAsNobody(false);
  EXPECT_EQ(plain.exit_code, 255) << plain.err;
  EXPECT_THAT(plain.err, HasSubstr("Permission denied")) << "setpriv/ssh said: " << plain.err;
  EXPECT_THAT(MasterLog(*lab_), Not(HasSubstr("uid 65534"))) << "it cannot have reached the master";

  // With the modes out of its way (CAP_DAC_OVERRIDE), it connects, and the master's SO_PEERCRED
  // check is what refuses it: the connection is closed before any reply.
  auto past_modes = CheckAsNobody(true);
  EXPECT_EQ(past_modes.exit_code, 255) << past_modes.err;
  EXPECT_THAT(past_modes.err, Not(HasSubstr("Permission denied"))) << "the capability did not take effect";
  EXPECT_THAT(past_modes.err, Not(HasSubstr("Master running")));
  EXPECT_TRUE(Eventually(
      [&] { return MasterLog(*lab_).find("refused a client running as uid 65534") != std::string::npos; }, 5s))
      << MasterLog(*lab_);
  EXPECT_EQ(lab_->MasterPid(), master);
}

// As with OpenSSH's mux (a peer whose euid is 0 or the master's uid): root may use a user's
// master, and another user still may not. The lab is handed to nobody, whose master it becomes.
TEST_F(AccessTest, RootMayUseAUsersMasterAndAnotherUidMayNot) {
  MCONNECT_REQUIRE_ROOT("to run a master as another user and a client as root");
  auto chowned = RunCommand({"chown", "-R", "nobody:nogroup", lab_->dir().path()});
  ASSERT_TRUE(chowned && chowned->exit_code == 0) << (chowned ? chowned->err : chowned.error().message);
  std::vector<std::string> start = AsUser("nobody", "nogroup", false);
  for (const auto& word : lab_->Command({"ip", lab_->SshOption(), "lab"})) start.push_back(word);
  CommandOptions options;
  options.timeout = Scaled(30s);
  auto started = RunCommand(start, options);
  ASSERT_TRUE(started) << started.error().message;
  ASSERT_EQ(started->exit_code, 0) << started->err;
  struct stat socket = Lstat(lab_->SocketPath());
  ASSERT_EQ(socket.st_uid, kNobody) << "the master's socket is nobody's";

  // root, through the file system's modes by right, and past SO_PEERCRED as OpenSSH's mux lets it.
  auto check = RunCommand({"ssh", "-F", "/dev/null", "-o", "ControlPath=" + lab_->SocketPath(), "-O", "check", "lab"});
  ASSERT_TRUE(check);
  EXPECT_EQ(check->exit_code, 0) << check->err << "\n" << MasterLog(*lab_);
  EXPECT_THAT(check->err, HasSubstr("Master running"));
  auto session = RunCommand(Ssh({"lab", "echo through-nobodys-master"}), options);
  ASSERT_TRUE(session);
  EXPECT_EQ(session->exit_code, 0) << session->err;
  EXPECT_EQ(session->out, "through-nobodys-master\n");

  // A third user, even past the modes, is refused by the master.
  auto daemon = CheckAs("daemon", "daemon", true);
  EXPECT_EQ(daemon.exit_code, 255) << daemon.err;
  EXPECT_THAT(daemon.err, Not(HasSubstr("Master running")));
  EXPECT_TRUE(Eventually(
      [&] { return MasterLog(*lab_).find("refused a client running as uid 1 ") != std::string::npos; }, 5s))
      << MasterLog(*lab_);
  EXPECT_EQ(lab_->sshd().CountInLog("Accepted publickey"), 1) << "every client used nobody's master";
}

TEST_F(AccessTest, SocketDirectoryLockAndLogBelongToTheUserAlone) {
  ASSERT_TRUE(StartMaster(*lab_));
  const uid_t me = ::getuid();
  struct Expected {
    std::string path;
    mode_t type;
    mode_t mode;
  };
  const std::string base = lab_->SocketPath().substr(0, lab_->SocketPath().size() - 5);
  for (const auto& [path, type, mode] : std::vector<Expected>{{directory_, S_IFDIR, 0700},
                                                               {lab_->SocketPath(), S_IFSOCK, 0600},
                                                               {base + ".lock", S_IFREG, 0600},
                                                               {base + ".log", S_IFREG, 0600}}) {
    struct stat st = Lstat(path);
    EXPECT_EQ(st.st_mode & S_IFMT, type) << path;
    EXPECT_EQ(st.st_mode & 07777, mode) << path;
    EXPECT_EQ(st.st_uid, me) << path;
  }
}

TEST_F(AccessTest, SocketDirectoryOfAnotherOwnerOrBehindALinkIsRefused) {
  // Another owner, even with mode 0700.
  ASSERT_EQ(::mkdir(directory_.c_str(), 0700), 0);
  ASSERT_EQ(::chown(directory_.c_str(), kNobody, kNobody), 0);
  EXPECT_THAT(IpFails(), HasSubstr("socket directory " + directory_ + " belongs to uid 65534, not to you"));
  ASSERT_EQ(::rmdir(directory_.c_str()), 0);

  // A symlink to a private directory of ours: still refused (it could be switched under us).
  const std::string real = lab_->dir().Sub("elsewhere");
  ASSERT_EQ(::mkdir(real.c_str(), 0700), 0);
  ASSERT_EQ(::symlink(real.c_str(), directory_.c_str()), 0);
  EXPECT_THAT(IpFails(), HasSubstr("socket directory " + directory_ + " is a symbolic link"));
  ASSERT_EQ(::unlink(directory_.c_str()), 0);

  // A socket path the user chose, in a directory anyone may write to (no sticky bit).
  const std::string open_dir = lab_->dir().Sub("open");
  ASSERT_EQ(::mkdir(open_dir.c_str(), 0777), 0);
  ASSERT_EQ(::chmod(open_dir.c_str(), 0777), 0);
  EXPECT_THAT(IpFails({"--socket", open_dir + "/m.sock"}), HasSubstr("can be changed by other users"));
  EXPECT_EQ(::access((open_dir + "/m.sock").c_str(), F_OK), -1) << "nothing was created there";

  EXPECT_EQ(lab_->MasterPid(), 0);
  // Refused before connecting anywhere: the only connections sshd saw are sshd-lab's readiness
  // probes, which close before the key exchange.
  EXPECT_EQ(lab_->sshd().CountInLog("Connection from"), lab_->sshd().CountInLog("kex_exchange_identification"))
      << lab_->sshd().Log();
}

// Whoever may write to a directory on the way to the socket directory can rename `mconnect` away
// and put their own in its place. The launcher refuses such a runtime directory with one line
// that names it, its owner and mode, and the fix, and starts no master.
class RuntimeDirectoryTest : public AccessTest {
 protected:
  // XDG_RUNTIME_DIR for the launcher (and for where the lab looks for the socket).
  void UseRuntimeDirectory(const std::string& path) {
    lab_->env().Set("XDG_RUNTIME_DIR", path);
    lab_->env().runtime_dir = path;
    directory_ = path + "/mconnect";
  }
  // A fresh directory with exactly `mode`, owned by `owner`.
  static void MakeDirectory(const std::string& path, mode_t mode, uid_t owner = ::getuid()) {
    ASSERT_EQ(::mkdir(path.c_str(), 0700), 0) << path;
    ASSERT_EQ(::chown(path.c_str(), owner, owner), 0) << path;
    ASSERT_EQ(::chmod(path.c_str(), mode), 0) << path;
  }
  // The master that StartMaster must not have started: none answers, no socket directory.
  void ExpectNoMaster() {
    EXPECT_EQ(lab_->MasterPid(), 0);
    EXPECT_EQ(::access(directory_.c_str(), F_OK), -1) << "nothing was created in " << directory_;
    EXPECT_EQ(lab_->sshd().CountInLog("Connection from"), lab_->sshd().CountInLog("kex_exchange_identification"))
        << "it connected to the server";
  }
};

TEST_F(RuntimeDirectoryTest, WorldWritableWithoutStickyBitIsRefused) {
  const std::string open_run = lab_->dir().Sub("open-run");
  MakeDirectory(open_run, 0777);
  UseRuntimeDirectory(open_run);
  const std::string said = IpFails();
  std::cout << "[ said ] " << said;
  EXPECT_THAT(said, HasSubstr("socket directory " + directory_ + " is not safe: " + open_run + " (owner uid " +
                              std::to_string(::getuid()) + ", mode 0777) can be written to by other users"));
  EXPECT_THAT(said, HasSubstr("chmod go-w " + open_run));
  EXPECT_THAT(said, HasSubstr("XDG_RUNTIME_DIR"));
  EXPECT_EQ(std::count(said.begin(), said.end(), '\n'), 1) << "one line";
  ExpectNoMaster();
}

TEST_F(RuntimeDirectoryTest, WritableAncestorTwoLevelsUpIsRefused) {
  const std::string open = lab_->dir().Sub("open");
  MakeDirectory(open, 0777);
  MakeDirectory(open + "/private", 0700);
  UseRuntimeDirectory(open + "/private");
  const std::string said = IpFails();
  EXPECT_THAT(said, HasSubstr("is not safe: " + open + " (owner uid " + std::to_string(::getuid()) + ", mode 0777)"));
  ExpectNoMaster();

  // The same for a socket path the user chose (with a runtime directory that passes: it is
  // checked first).
  UseRuntimeDirectory(lab_->dir().Sub("run"));
  MakeDirectory(open + "/chosen", 0700);
  EXPECT_THAT(IpFails({"--socket", open + "/chosen/m.sock"}),
              HasSubstr("socket directory " + open + "/chosen is not safe: " + open + " (owner uid"));
  EXPECT_EQ(::access((open + "/chosen/m.sock").c_str(), F_OK), -1) << "nothing was created there";
}

TEST_F(RuntimeDirectoryTest, WritableAncestorBehindALinkIsRefused) {
  // A link of ours to a private directory inside a 0777 one: what counts is where it leads.
  const std::string open = lab_->dir().Sub("open");
  MakeDirectory(open, 0777);
  MakeDirectory(open + "/private", 0700);
  ASSERT_EQ(::symlink((open + "/private").c_str(), lab_->dir().Sub("link").c_str()), 0);
  UseRuntimeDirectory(lab_->dir().Sub("link"));
  EXPECT_THAT(IpFails(), HasSubstr("is not safe: " + open + " (owner uid"));
  ExpectNoMaster();
}

TEST_F(RuntimeDirectoryTest, StickyDirectoryOfAnotherOwnerIsRefused) {
  // Sticky, but its owner may still rename what others put in it. (As XDG_RUNTIME_DIR, another
  // user's directory is not used at all: HabitsTest.AfterSuNothingIsMadeInTheUsersRuntimeDirectory.)
  const std::string sticky = lab_->dir().Sub("sticky-nobody");
  MakeDirectory(sticky, 01777, kNobody);
  MakeDirectory(sticky + "/chosen", 0700);
  EXPECT_THAT(IpFails({"--socket", sticky + "/chosen/m.sock"}),
              HasSubstr("is not safe: " + sticky + " (owner uid 65534, mode 1777) belongs to another user"));
  EXPECT_EQ(::access((sticky + "/chosen/m.sock").c_str(), F_OK), -1) << "nothing was created there";
}

TEST_F(RuntimeDirectoryTest, StickyRootOwnedParentAndRootOwnedLinksAreAccepted) {
  ASSERT_EQ(::getuid(), 0u) << "the sticky directory must be root's";
  // Like /tmp: 1777 and root's. Nobody else can rename our `mconnect` in it.
  const std::string sticky = lab_->dir().Sub("sticky");
  MakeDirectory(sticky, 01777);
  UseRuntimeDirectory(sticky);
  auto started = StartMaster(*lab_);
  ASSERT_TRUE(started) << started.error().message;
  EXPECT_GT(lab_->MasterPid(), 0);
  StopMasterGracefully(*lab_);

  // Like /var/run -> /run: a link owned by root, to a directory that passes.
  const std::string link = lab_->dir().Sub("run-link");
  ASSERT_EQ(::symlink(lab_->dir().Sub("run").c_str(), link.c_str()), 0);
  UseRuntimeDirectory(link);
  started = StartMaster(*lab_);
  ASSERT_TRUE(started) << started.error().message;
  EXPECT_GT(lab_->MasterPid(), 0);
}

// A link planted where the master will create a file: the master must not write through it.
class PlantedLinkTest : public AccessTest {
 protected:
  void SetUp() override {
    AccessTest::SetUp();
    if (HasFailure()) return;
    ASSERT_EQ(::mkdir(directory_.c_str(), 0700), 0);
    target_ = lab_->dir().Sub("precious");
    std::ofstream(target_) << kContents;
    ASSERT_EQ(::chmod(target_.c_str(), 0644), 0);
  }

  // The target is as it was, and the link is still a link to it.
  void ExpectUntouched(const std::string& link) {
    EXPECT_EQ(ReadFile(target_).value_or("(unreadable)"), kContents);
    EXPECT_EQ(Lstat(target_).st_mode & 07777, 0644u);
    EXPECT_TRUE(S_ISLNK(Lstat(link).st_mode)) << link << " was replaced";
  }

  std::string Base() const { return lab_->SocketPath().substr(0, lab_->SocketPath().size() - 5); }

  static constexpr const char* kContents = "not the master's to touch\n";
  std::string target_;
};

TEST_F(PlantedLinkTest, AtTheSocketPath) {
  ASSERT_EQ(::symlink(target_.c_str(), lab_->SocketPath().c_str()), 0);
  EXPECT_THAT(IpFails(), HasSubstr(lab_->SocketPath() + " exists and is not a socket"));
  ExpectUntouched(lab_->SocketPath());
}

TEST_F(PlantedLinkTest, AtTheLockPath) {
  ASSERT_EQ(::symlink(target_.c_str(), (Base() + ".lock").c_str()), 0);
  EXPECT_THAT(IpFails(), HasSubstr("cannot open lock file " + Base() + ".lock"));
  ExpectUntouched(Base() + ".lock");
}

// The master still serves (a log is a convenience), but writes nothing through the link.
TEST_F(PlantedLinkTest, AtTheLogPath) {
  ASSERT_EQ(::symlink(target_.c_str(), (Base() + ".log").c_str()), 0);
  auto started = StartMaster(*lab_);
  ASSERT_TRUE(started) << started.error().message;
  auto status = StatusOf(*lab_, 5s);
  EXPECT_TRUE(status) << status.error().message;
  ExpectUntouched(Base() + ".log");
}

}  // namespace
}  // namespace mconnect::testing
