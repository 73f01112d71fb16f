// mconnect beside OpenSSH and a daily user's habits: OpenSSH's own master at the same
// ControlPath, a ControlPath from the ssh config on a fresh login, files beside it, a run after
// `su`, a master that is stopped (SIGSTOP) or whose socket vanished, and `status` and `stop`
// speaking one language. Real sshd, real OpenSSH clients and masters.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <future>
#include <fstream>
#include <regex>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "proto/socket_path.h"
#include "tests/support/lab_fixture.h"
#include "tests/support/mconnect_lab.h"
#include "tests/support/paths.h"
#include "tests/support/require.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;

bool Eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  for (auto deadline = std::chrono::steady_clock::now() + timeout; std::chrono::steady_clock::now() < deadline;
       std::this_thread::sleep_for(20ms)) {
    if (condition()) return true;
  }
  return condition();
}

std::vector<std::string> Entries(const std::string& directory) {
  std::vector<std::string> names;
  std::error_code error;
  for (fs::directory_iterator it(directory, error), end; !error && it != end; it.increment(error)) {
    names.push_back(it->path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

class HabitsTest : public LabTest {
 protected:
  void TearDown() override {
    for (pid_t pid : stop_) KillPid(pid);
    LabTest::TearDown();
  }

  CommandOutput Mconnect(const std::vector<std::string>& args, std::chrono::milliseconds timeout = 30s) {
    auto result = lab_->Run(args, timeout);
    EXPECT_TRUE(result) << result.error().message;
    return result ? *result : CommandOutput{};
  }

  // An ssh_config whose `Host lab` says ControlPath DIR/cp-%C first (ssh keeps the first value),
  // then the lab's own settings.
  std::string ConfigWithControlPath(const std::string& dir) {
    const std::string config = lab_->dir().Sub("ssh_config_cp");
    std::ofstream(config) << "Host lab\n    ControlPath " << dir << "/cp-%C\n"
                          << ReadFile(lab_->sshd().ssh_config()).value_or("");
    return config;
  }

  CommandOutput Ssh(const std::vector<std::string>& args, std::chrono::milliseconds timeout = 20s) {
    CommandOptions options;
    options.timeout = timeout;
    auto result = RunCommand(lab_->env().Command(args), options);
    EXPECT_TRUE(result) << result.error().message;
    return result ? *result : CommandOutput{};
  }

  // The pid `ssh -O check` reports at the config's ControlPath, or 0.
  pid_t CheckedPid(const std::string& config) {
    auto check = Ssh({"ssh", "-F", config, "-O", "check", "lab"});
    std::smatch match;
    const std::string err = check.err;
    if (!std::regex_search(err, match, std::regex(R"(Master running \(pid=(\d+)\))"))) return 0;
    return static_cast<pid_t>(std::stoi(match[1]));
  }

  std::vector<pid_t> stop_;
};

// ---- OpenSSH's own master, and the socket ---------------------------------------------------

TEST_F(HabitsTest, OpenSshMasterAtTheSameControlPathIsLeftAloneAndMconnectTakesItsOwnSocket) {
  const std::string dir = lab_->dir().Sub("cp");
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  const std::string config = ConfigWithControlPath(dir);
  auto openssh = Ssh({"ssh", "-F", config, "-o", "ControlMaster=yes", "-o", "ControlPersist=120", "-fN", "lab"});
  ASSERT_EQ(openssh.exit_code, 0) << openssh.err;
  const pid_t openssh_master = CheckedPid(config);
  ASSERT_GT(openssh_master, 0) << "OpenSSH's master did not start";
  stop_.push_back(openssh_master);

  auto ip = Mconnect({"ip", "--ssh=ssh -F " + config, "lab"});
  EXPECT_EQ(ip.exit_code, 0) << ip.err;
  EXPECT_THAT(ip.err, HasSubstr("mconnect: your ControlPath " + dir + "/cp-"));
  EXPECT_THAT(ip.err, HasSubstr("is in use by an OpenSSH master (pid " + std::to_string(openssh_master) +
                                "); mconnect's master uses " + lab_->SocketPath()));
  EXPECT_EQ(CheckedPid(config), openssh_master) << "OpenSSH's master lost its socket";
  EXPECT_GT(lab_->MasterPid(), 0) << "mconnect's master does not serve its own socket";
  // And again: the second run finds mconnect's master at once, OpenSSH's still there.
  auto again = Mconnect({"ip", "--ssh=ssh -F " + config, "lab"});
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(CheckedPid(config), openssh_master);
  Ssh({"ssh", "-F", config, "-O", "exit", "lab"});
}

TEST_F(HabitsTest, AMasterWhoseSocketWasRemovedPublishesItAgain) {
  ASSERT_EQ(Mconnect({"ip", lab_->SshOption(), "lab"}).exit_code, 0);
  const pid_t master = lab_->MasterPid();
  ASSERT_GT(master, 0);
  ASSERT_EQ(::unlink(lab_->SocketPath().c_str()), 0);
  EXPECT_TRUE(Eventually([&] { return lab_->MasterPid() == master; }, 15s)) << "the socket did not come back";
  EXPECT_EQ(lab_->CountInMasterLog("was removed by someone; published it again"), 1);
}

// Two aliases of one user@host:port share a master, as OpenSSH's %r@%h:%p does; when their
// identity differs, the second says which master it reuses and how to get one of its own.
TEST_F(HabitsTest, AnAliasWithAnotherIdentitySaysWhichMasterItShares) {
  const std::string key = lab_->dir().Sub("id_work");
  fs::copy_file(lab_->sshd().user_key(), key);
  ASSERT_EQ(::chmod(key.c_str(), 0600), 0);
  std::string lab_config = ReadFile(lab_->sshd().ssh_config()).value_or("");
  const auto block = lab_config.find("Host lab\n");
  ASSERT_NE(block, std::string::npos) << lab_config;
  lab_config.replace(block, 9, "Host lab lab-work\n");
  const std::string config = lab_->dir().Sub("ssh_config_work");
  std::ofstream(config) << "Host lab-work\n    IdentityFile " << key << "\n" << lab_config;

  auto first = Mconnect({"ip", "--ssh=ssh -F " + config, "lab"});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_THAT(first.err, Not(HasSubstr("shares the master")));
  auto work = Mconnect({"ip", "--ssh=ssh -F " + config, "lab-work"});
  EXPECT_EQ(work.exit_code, 0) << work.err;
  EXPECT_THAT(work.err, HasSubstr("mconnect: lab-work shares the master for "));
  EXPECT_THAT(work.err, HasSubstr(" (started as `mconnect lab`), which uses IdentityFile "));
  EXPECT_THAT(work.err, HasSubstr("(lab-work's: " + key));
  EXPECT_THAT(work.err, HasSubstr("mconnect: hint: for a master of its own, give lab-work its own socket"));
  EXPECT_EQ(lab_->sshd().CountInLog("Accepted publickey"), 1) << "one master for both";
  auto again = Mconnect({"ip", "--ssh=ssh -F " + config, "lab"});
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_THAT(again.err, Not(HasSubstr("shares the master")));
}

// ---- the runtime directory ------------------------------------------------------------------

// After a reboot nothing exists under XDG_RUNTIME_DIR; with the ControlPath that
// `mconnect ssh-config` advises, the socket is the user's and everything else is mconnect's.
TEST_F(HabitsTest, FreshLoginWithAControlPathElsewhereWorksAndLeavesNothingBesideIt) {
  const std::string dir = lab_->dir().Sub("cp");
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  const std::string config = ConfigWithControlPath(dir);
  const std::string runtime = lab_->env().runtime_dir + "/mconnect";
  ASSERT_FALSE(fs::exists(runtime));

  auto ip = Mconnect({"ip", "--ssh=ssh -F " + config, "lab"});
  ASSERT_EQ(ip.exit_code, 0) << ip.err;
  struct stat st{};
  ASSERT_EQ(::stat(runtime.c_str(), &st), 0) << "no runtime directory was made";
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  auto beside = Entries(dir);
  ASSERT_EQ(beside.size(), 1u) << "beside the ControlPath: " << ::testing::PrintToString(beside);
  EXPECT_TRUE(beside.front().starts_with("cp-")) << beside.front();
  EXPECT_THAT(Entries(runtime), ::testing::Contains(::testing::EndsWith(".lock")));

  auto stop = Mconnect({"stop", "--ssh=ssh -F " + config, "lab"});
  EXPECT_EQ(stop.exit_code, 0) << stop.err;
  for (const auto& name : Entries(runtime)) EXPECT_FALSE(name.ends_with(".lock") || name.ends_with(".master")) << name;
  // A name that never reached a master leaves no lock behind either.
  auto failed = Mconnect({"ip", lab_->SshOption() + " -o HostName=nosuchhost.invalid", "lab"});
  EXPECT_NE(failed.exit_code, 0);
  for (const auto& name : Entries(runtime)) EXPECT_FALSE(name.ends_with(".lock")) << name;
}

// After `su`, XDG_RUNTIME_DIR is still the user's: a run as root must not make a directory of
// root's in it (the user would be locked out of their own).
TEST_F(HabitsTest, AfterSuNothingIsMadeInTheUsersRuntimeDirectory) {
  MCONNECT_REQUIRE_ROOT("to act as two users");
  ASSERT_EQ(::chmod(lab_->dir().path().c_str(), 0711), 0);  // the other user passes through to its own
  const std::string users = lab_->dir().Sub("user-run");
  ASSERT_EQ(::mkdir(users.c_str(), 0700), 0);
  ASSERT_EQ(::chown(users.c_str(), 65534, 65534), 0);
  lab_->env().Set("XDG_RUNTIME_DIR", users);
  auto status = Mconnect({"status"});
  EXPECT_EQ(status.exit_code, 0) << status.err;
  EXPECT_THAT(status.out, HasSubstr("/tmp/mconnect-0"));
  EXPECT_TRUE(Entries(users).empty()) << "root made something in another user's runtime directory";

  // And a user whose runtime directory already holds root's directory (from an older mconnect)
  // is told what to do.
  ASSERT_EQ(::mkdir((users + "/mconnect").c_str(), 0700), 0);
  auto locked_out = RunCommand({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "env", "-i",
                                "XDG_RUNTIME_DIR=" + users, "HOME=/nonexistent", "PATH=/usr/bin:/bin",
                                std::string(MCONNECT_BIN_DIR) + "/mconnect", "ip", "--ssh=ssh -F /dev/null -o HostName=127.0.0.1 -o Port=1", "lab"});
  ASSERT_TRUE(locked_out) << locked_out.error().message;
  EXPECT_NE(locked_out->exit_code, 0);
  EXPECT_THAT(locked_out->err, HasSubstr(users + "/mconnect belongs to uid 0, not to you (uid 65534)"));
  EXPECT_THAT(locked_out->err, HasSubstr("remove it with: sudo rm -r " + users + "/mconnect"));
}

// ---- a sick master, and the names status and stop use ----------------------------------------

TEST_F(HabitsTest, StoppedMasterIsListedWithItsPidAndStopEndsIt) {
  ASSERT_EQ(Mconnect({"ip", lab_->SshOption(), "lab"}).exit_code, 0);
  const pid_t master = lab_->MasterPid();
  ASSERT_GT(master, 0);
  stop_.push_back(master);
  ASSERT_EQ(::kill(master, SIGSTOP), 0);

  auto status = Mconnect({"status"});
  EXPECT_THAT(status.out, HasSubstr(std::to_string(master)));
  EXPECT_THAT(status.out, HasSubstr("not answering"));
  EXPECT_THAT(status.out, HasSubstr("`mconnect stop lab` ends it"));
  auto session = Mconnect({"ip", lab_->SshOption(), "lab"});
  EXPECT_NE(session.exit_code, 0);
  EXPECT_THAT(session.err, HasSubstr("does not answer (pid " + std::to_string(master) + ")"));
  EXPECT_THAT(session.err, HasSubstr("hint: `mconnect stop lab` ends it"));

  auto stop = Mconnect({"stop", lab_->SshOption(), "lab"});
  EXPECT_EQ(stop.exit_code, 0) << stop.err;
  EXPECT_THAT(stop.out, HasSubstr("(pid " + std::to_string(master) + ") did not answer; ended it with SIGKILL"));
  EXPECT_TRUE(ProcessGone(master));
  // And the next mconnect starts a fresh one.
  EXPECT_EQ(Mconnect({"ip", lab_->SshOption(), "lab"}).exit_code, 0);
  EXPECT_GT(lab_->MasterPid(), 0);
}

TEST_F(HabitsTest, StopTakesTheNamesStatusShows) {
  auto start = [&] {
    auto ip = Mconnect({"ip", lab_->SshOption(), "lab"});
    EXPECT_EQ(ip.exit_code, 0) << ip.err;
    return lab_->MasterPid();
  };
  const std::string destination = "root@127.0.0.1:" + std::to_string(lab_->sshd().port());
  for (const std::string& name : {std::string("destination"), std::string("pid"), std::string("--all")}) {
    const pid_t master = start();
    ASSERT_GT(master, 0);
    auto status = Mconnect({"status"});
    EXPECT_THAT(status.out, HasSubstr(destination));
    std::vector<std::string> args{"stop"};
    if (name == "destination") args.push_back(destination);
    if (name == "pid") args.push_back(std::to_string(master));
    if (name == "--all") args.push_back("--all");
    auto stop = Mconnect(args);
    EXPECT_EQ(stop.exit_code, 0) << name << ": " << stop.err;
    EXPECT_THAT(stop.out, HasSubstr("stopped master for " + destination + " (pid " + std::to_string(master) + ")"))
        << name;
    EXPECT_TRUE(Eventually([&] { return ProcessGone(master); }, 10s)) << name;
  }
  auto none = Mconnect({"stop", "root@127.0.0.1:1"});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_THAT(none.err, HasSubstr("no master running for root@127.0.0.1:1"));
}

// `ssh -O stop`'s way when nobody can be asked: no new clients, exit once what runs has ended;
// --force ends it now.
TEST_F(HabitsTest, StopWithASessionOpenLetsItFinishUnlessForced) {
  ASSERT_EQ(Mconnect({"ip", lab_->SshOption(), "lab"}).exit_code, 0);
  const pid_t master = lab_->MasterPid();
  ASSERT_GT(master, 0);
  auto session = std::async(std::launch::async, [&] {
    return Ssh({"ssh", "-F", lab_->sshd().ssh_config(), "-S", lab_->SocketPath(), "lab", "sleep 3; echo finished"});
  });
  ASSERT_TRUE(Eventually([&] { auto s = lab_->Status(); return s && s->sessions() == 1; }, 10s));
  auto stop = Mconnect({"stop", lab_->SshOption(), "lab"});
  EXPECT_EQ(stop.exit_code, 0) << stop.err;
  EXPECT_THAT(stop.out, HasSubstr("takes no new clients and exits once what it carries (1 session) has ended; "
                                  "`mconnect stop --force lab` ends it now"));
  auto finished = session.get();
  EXPECT_EQ(finished.exit_code, 0) << finished.err;
  EXPECT_EQ(finished.out, "finished\n");
  EXPECT_TRUE(Eventually([&] { return ProcessGone(master); }, 10s)) << "the master outlived its last session";

  ASSERT_EQ(Mconnect({"ip", lab_->SshOption(), "lab"}).exit_code, 0);
  const pid_t second = lab_->MasterPid();
  auto forced_session = std::async(std::launch::async, [&] {
    return Ssh({"ssh", "-F", lab_->sshd().ssh_config(), "-S", lab_->SocketPath(), "lab", "sleep 30; echo finished"});
  });
  ASSERT_TRUE(Eventually([&] { auto s = lab_->Status(); return s && s->sessions() == 1; }, 10s));
  auto forced = Mconnect({"stop", "--force", lab_->SshOption(), "lab"});
  EXPECT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_THAT(forced.out, HasSubstr("stopped master for root@127.0.0.1:" + std::to_string(lab_->sshd().port()) +
                                    " (pid " + std::to_string(second) + "), ending its 1 session"));
  EXPECT_NE(forced_session.get().exit_code, 0);
  EXPECT_TRUE(Eventually([&] { return ProcessGone(second); }, 10s));
}

}  // namespace
}  // namespace mconnect::testing
