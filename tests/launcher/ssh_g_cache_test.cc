// The ssh -G cache against the real ssh: what it keeps, and every change that must make it ask
// ssh again.
#include "launcher/ssh_g_cache.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>

#include "base/subprocess.h"
#include "launcher/ssh_config.h"

namespace mconnect::launcher {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::system_clock;

void Write(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

// A HOME of its own with no ~/.ssh/config, a config file for -F, and an empty cache directory;
// SSHG_TEST_KEY set for the configs that expand it.
class SshGCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/mconnect-sshg.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = pattern;
    fs::create_directories(root_ / "home" / ".ssh");
    fs::create_directories(root_ / "cache");
    if (const char* home = std::getenv("HOME")) old_home_ = home;
    ::setenv("HOME", (root_ / "home").c_str(), 1);
    ::setenv("SSHG_TEST_KEY", "one", 1);
    config_ = root_ / "config";
    command_ = "ssh -F " + config_.string();
    Write(config_, "Host lab\n  HostName 192.0.2.7\n  Port 2222\n");
  }
  void TearDown() override {
    if (old_home_) ::setenv("HOME", old_home_->c_str(), 1);
    ::unsetenv("SSHG_TEST_KEY");
    fs::remove_all(root_);
  }

  // Runs `COMMAND -v -G lab` as the launcher does, after the file times it may see have
  // settled, and offers the answer to the cache: its output, and whether it was kept.
  std::pair<std::string, bool> RunAndKeep() {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const auto started = Clock::now();
    auto result = RunCommand(ShellCommand("exec " + command_ + " -v -G lab"));
    EXPECT_TRUE(result && result->ok()) << (result ? result->err : result.error().message);
    if (!result) return {"", false};
    return {result->out, cache().Keep(command_, "lab", result->out, result->err, started)};
  }

  SshGCache cache() const { return SshGCache((root_ / "cache").string()); }

  fs::path root_;
  fs::path config_;
  std::string command_;
  std::optional<std::string> old_home_;
};

TEST_F(SshGCacheTest, AnAnswerIsFoundAgainWhileNothingItCameFromChanged) {
  auto [output, kept] = RunAndKeep();
  ASSERT_TRUE(kept);
  EXPECT_NE(output.find("hostname 192.0.2.7"), std::string::npos) << output;
  auto found = cache().Find(command_, "lab");
  ASSERT_TRUE(found);
  EXPECT_EQ(*found, output);
  EXPECT_FALSE(cache().Find(command_, "other"));
  EXPECT_FALSE(cache().Find(command_ + " -4", "lab"));
  // Only this user may read it.
  for (const auto& entry : fs::directory_iterator(root_ / "cache")) {
    EXPECT_EQ(fs::status(entry).permissions() & (fs::perms::group_all | fs::perms::others_all), fs::perms::none);
  }
}

TEST_F(SshGCacheTest, AnEditedConfigIsNoticed) {
  ASSERT_TRUE(RunAndKeep().second);
  Write(config_, "Host lab\n  HostName 192.0.2.7\n  Port 2200\n");
  EXPECT_FALSE(cache().Find(command_, "lab"));
}

TEST_F(SshGCacheTest, AnEditThatKeepsTheSizeAndTheSecondIsNoticed) {
  ASSERT_TRUE(RunAndKeep().second);
  struct stat before{};
  ASSERT_EQ(::stat(config_.c_str(), &before), 0);
  Write(config_, "Host lab\n  HostName 192.0.2.8\n  Port 2222\n");
  // Same size; mtime put back as it was: the ctime still moves.
  timespec times[2] = {before.st_atim, before.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, config_.c_str(), times, 0), 0);
  EXPECT_FALSE(cache().Find(command_, "lab"));
}

TEST_F(SshGCacheTest, AFileAddedWhereAnIncludePatternLooksIsNoticed) {
  fs::create_directories(root_ / "conf.d");
  Write(root_ / "conf.d" / "a.conf", "Host lab\n  User alice\n");
  Write(config_, "Include " + (root_ / "conf.d").string() + "/*.conf\nHost lab\n  HostName 192.0.2.7\n");
  auto [output, kept] = RunAndKeep();
  ASSERT_TRUE(kept);
  EXPECT_NE(output.find("user alice"), std::string::npos);
  ASSERT_TRUE(cache().Find(command_, "lab"));
  Write(root_ / "conf.d" / "0.conf", "Host lab\n  User bob\n");
  EXPECT_FALSE(cache().Find(command_, "lab"));
}

TEST_F(SshGCacheTest, AnIncludedFileThatChangesIsNoticed) {
  Write(root_ / "more.conf", "Host lab\n  User alice\n");
  Write(config_, "Include " + (root_ / "more.conf").string() + "\nHost lab\n  HostName 192.0.2.7\n");
  ASSERT_TRUE(RunAndKeep().second);
  ASSERT_TRUE(cache().Find(command_, "lab"));
  Write(root_ / "more.conf", "Host lab\n  User bob\n");
  EXPECT_FALSE(cache().Find(command_, "lab"));
}

TEST_F(SshGCacheTest, AUserConfigThatAppearsIsNoticed) {
  command_ = "ssh";  // reads ~/.ssh/config when there is one
  ASSERT_TRUE(RunAndKeep().second);
  ASSERT_TRUE(cache().Find(command_, "lab"));
  Write(root_ / "home" / ".ssh" / "config", "Host lab\n  Port 2200\n");
  EXPECT_FALSE(cache().Find(command_, "lab"));
}

// ssh 9.2 prints this one unexpanded and expands it when it uses it; other versions and other
// directives expand in -G's output. Either way an answer is kept per value.
TEST_F(SshGCacheTest, AVariableTheConfigNamesIsPartOfTheAnswer) {
  Write(config_, "Host lab\n  HostName 192.0.2.7\n  IdentityFile /keys/${SSHG_TEST_KEY}\n");
  ASSERT_TRUE(RunAndKeep().second);
  ASSERT_TRUE(cache().Find(command_, "lab"));
  ::setenv("SSHG_TEST_KEY", "two", 1);
  EXPECT_FALSE(cache().Find(command_, "lab"));
  ::setenv("SSHG_TEST_KEY", "one", 1);
  EXPECT_TRUE(cache().Find(command_, "lab"));
}

TEST_F(SshGCacheTest, ConfigsThatDependOnMoreThanFilesAreNeverKept) {
  for (const char* line : {"Match exec \"true\"\n  Port 2200\n", "Match host lab exec true\n  Port 2200\n",
                           "CanonicalizeHostname yes\n"}) {
    Write(config_, std::string(line) + "Host lab\n  HostName 192.0.2.7\n");
    EXPECT_FALSE(RunAndKeep().second) << line;
    EXPECT_FALSE(cache().Find(command_, "lab")) << line;
  }
}

TEST_F(SshGCacheTest, AConfigChangedAfterSshStartedIsNotKept) {
  const auto started = Clock::now() - std::chrono::seconds(5);  // as if ssh had run back then
  auto result = RunCommand(ShellCommand("exec " + command_ + " -v -G lab"));
  ASSERT_TRUE(result && result->ok());
  EXPECT_FALSE(cache().Keep(command_, "lab", result->out, result->err, started));
}

TEST_F(SshGCacheTest, ADamagedEntryIsAMiss) {
  ASSERT_TRUE(RunAndKeep().second);
  fs::path entry = fs::directory_iterator(root_ / "cache")->path();
  std::string text;
  {
    std::ifstream in(entry);
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  Write(entry, text.substr(0, text.size() - 10));  // output cut short
  EXPECT_FALSE(cache().Find(command_, "lab"));
  Write(entry, "mconnect-ssh-G 1\nquery zz\n");
  EXPECT_FALSE(cache().Find(command_, "lab"));
  Write(entry, "");
  EXPECT_FALSE(cache().Find(command_, "lab"));
}

// The launcher's way in: with a cache, a warm start runs no ssh at all. An "ssh" on a path of
// its own counts its runs and runs the real one.
class ResolveWithCacheTest : public SshGCacheTest {
 protected:
  void SetUp() override {
    SshGCacheTest::SetUp();
    fs::create_directories(root_ / "bin");
    const fs::path wrapper = root_ / "bin" / "ssh";
    Write(wrapper, "#!/bin/sh\necho run >> " + (root_ / "runs").string() + "\nexec ssh \"$@\"\n");
    fs::permissions(wrapper, fs::perms::owner_all);
    command_ = wrapper.string() + " -F " + config_.string();
  }
  int Runs() const {
    std::ifstream in(root_ / "runs");
    int lines = 0;
    for (std::string line; std::getline(in, line);) ++lines;
    return lines;
  }
  Result<SshSettings> Resolve() {
    // Past the slack a just-written file is given before an answer from it is kept.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const SshGCache here = cache();
    return ResolveSshSettings(command_, "lab", &here);
  }
};

TEST_F(ResolveWithCacheTest, AWarmStartRunsNoSshAndAnEditRunsItAgain) {
  auto first = Resolve();
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_FALSE(first->kept_answer);
  EXPECT_EQ(Runs(), 1);
  auto second = Resolve();
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_TRUE(second->kept_answer);
  EXPECT_EQ(Runs(), 1) << "the kept answer is used";
  EXPECT_EQ(second->hostname, "192.0.2.7");
  EXPECT_EQ(second->port, 2222);
  Write(config_, "Host lab\n  HostName 192.0.2.7\n  Port 2200\n");
  auto third = Resolve();
  ASSERT_TRUE(third) << third.error().message;
  EXPECT_FALSE(third->kept_answer);
  EXPECT_EQ(Runs(), 2);
  EXPECT_EQ(third->port, 2200);
  // Without a cache (every subcommand but a session's start), ssh runs each time.
  ASSERT_TRUE(ResolveSshSettings(command_, "lab"));
  EXPECT_EQ(Runs(), 3);
}

// -v puts ssh's banner and debug lines first: the line shown is still the one that says what failed.
TEST_F(ResolveWithCacheTest, AFailureStillSaysWhatFailed) {
  Write(config_, "Host lab\n  NoSuchOption yes\n");
  auto settings = Resolve();
  ASSERT_FALSE(settings);
  EXPECT_NE(settings.error().message.find("Bad configuration option: nosuchoption"), std::string::npos)
      << settings.error().message;
  EXPECT_EQ(settings.error().message.find("OpenSSH_"), std::string::npos) << settings.error().message;
  EXPECT_EQ(settings.error().message.find("debug1"), std::string::npos) << settings.error().message;
  EXPECT_EQ(std::distance(fs::directory_iterator(root_ / "cache"), fs::directory_iterator()), 0) << "nothing kept";
}

TEST(SshCommandCacheable, OnlySshWithOptionsTheShellLeavesAlone) {
  EXPECT_TRUE(SshCommandCacheable(""));
  EXPECT_TRUE(SshCommandCacheable("ssh"));
  EXPECT_TRUE(SshCommandCacheable("ssh -F /home/a/.ssh/other -o Port=22 -4"));
  EXPECT_TRUE(SshCommandCacheable("/usr/bin/ssh -o ProxyJump=none"));
  EXPECT_FALSE(SshCommandCacheable("mywrapper -F x"));
  EXPECT_FALSE(SshCommandCacheable("ssh -F 'a b'"));
  EXPECT_FALSE(SshCommandCacheable("ssh -F $HOME/x"));
  EXPECT_FALSE(SshCommandCacheable("ssh -F ~/x"));
  EXPECT_FALSE(SshCommandCacheable("ssh -F x; rm y"));
  EXPECT_FALSE(SshCommandCacheable("ssh -F x*"));
  EXPECT_FALSE(SshCommandCacheable("env ssh"));
}

TEST(ConfigFilesRead, NamesEachFileOnceInOrder) {
  auto files = ConfigFilesRead(
      "OpenSSH_9.2p1 Debian-2+deb12u3, OpenSSL 3.0.15\n"
      "debug1: Reading configuration data /home/a/.ssh/config\n"
      "debug1: Reading configuration data /home/a/.ssh/conf.d/x\r\n"
      "debug1: /home/a/.ssh/config line 3: Applying options for lab\n"
      "debug1: Reading configuration data /etc/ssh/ssh_config\n"
      "debug1: Reading configuration data /home/a/.ssh/conf.d/x\n");
  EXPECT_EQ(files, (std::vector<std::string>{"/home/a/.ssh/config", "/home/a/.ssh/conf.d/x", "/etc/ssh/ssh_config"}));
}

}  // namespace
}  // namespace mconnect::launcher
