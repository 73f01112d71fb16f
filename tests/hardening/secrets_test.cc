// The mosh session key is a secret: during a live session (tmux runs the real `mconnect`,
// mosh-client takes over the terminal and answers a typed command), the key is nowhere but in
// mosh-client's environment. Scanned byte for byte: /proc/PID/cmdline and /proc/PID/environ of
// every process on the machine (mosh-client's environ excepted), every file under the lab (its
// home, runtime directory with the master's socket directory and log, config directory, the
// sshd's files, tmux's directory), every file written since the test began under /tmp, /var/tmp,
// /run and /dev/shm, and the terminal's scrollback.
// (tests/e2e/mosh_e2e_test.cc TypedCommandRunsInAMoshSessionThroughTheMaster checks the parsed
// argv and environment of every process and the master's log; this goes over everything else.)
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/hardening/hardening.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// Whether the file at `path` holds `secret`, read as raw bytes (at most `limit`).
bool Holds(const fs::path& path, const std::string& secret, std::size_t limit = 64 << 20) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::string data;
  data.resize(limit);
  in.read(data.data(), static_cast<std::streamsize>(limit));
  data.resize(static_cast<std::size_t>(in.gcount()));
  return data.find(secret) != std::string::npos;
}

// Regular files below `root` (links not followed) modified at or after `since`; what cannot be
// read is skipped (another process's private files come and go).
std::vector<fs::path> FilesBelow(const fs::path& root, fs::file_time_type since = fs::file_time_type::min()) {
  std::vector<fs::path> files;
  std::error_code error;
  for (fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, error), end;
       !error && it != end; it.increment(error)) {
    std::error_code stat_error;
    if (!it->is_regular_file(stat_error) || it->is_symlink(stat_error)) continue;
    if (since != fs::file_time_type::min() && it->last_write_time(stat_error) < since) continue;
    if (!stat_error) files.push_back(it->path());
  }
  return files;
}

class SecretsTest : public HardeningTest {
 protected:
  void TearDown() override {
    if (tmux_ && tmux_->PanePid() > 0) KillPid(tmux_->PanePid());  // mosh-client, by pid
    tmux_.reset();
    HardeningTest::TearDown();
  }

  std::unique_ptr<Tmux> tmux_;
};

TEST_F(SecretsTest, TheMoshKeyIsOnlyInMoshClientsEnvironment) {
  const auto began = fs::file_time_type::clock::now() - 2s;  // file times are coarser than the clock
  const std::string dir = lab_->dir().Sub("tmux");
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  tmux_ = std::make_unique<Tmux>(dir);
  ASSERT_TRUE(tmux_->Start("exec " + lab_->ShellCommand({lab_->SshOption(), "lab"}), lab_->env()));
  auto client = WaitForProcess(
      [pid = tmux_->PanePid()](const ProcessInfo& p) { return p.pid == pid && p.exe == "mosh-client"; }, 30s);
  ASSERT_TRUE(client) << "mosh-client never started:\n" << tmux_->CaptureHistory().value_or("");
  ASSERT_TRUE(tmux_->WaitForRegex("[#$] ", 30s)) << tmux_->CaptureHistory().value_or("");
  ASSERT_TRUE(tmux_->Type("echo LIVE-$((6*7))"));
  ASSERT_TRUE(tmux_->SendKeys("Enter"));
  ASSERT_TRUE(tmux_->WaitFor("LIVE-42", 30s)) << tmux_->CaptureHistory().value_or("");
  const std::optional<std::string> key = client->Getenv("MOSH_KEY");
  ASSERT_TRUE(key && key->size() == 22u) << "mosh-client has no 22-character MOSH_KEY";
  ASSERT_TRUE(Holds("/proc/" + std::to_string(client->pid) + "/environ", *key)) << "the scan can see the key";

  // Every process's argv and environment, raw.
  int processes = 0;
  std::vector<std::string> holders;
  std::error_code error;
  for (fs::directory_iterator it("/proc", error), end; !error && it != end; it.increment(error)) {
    const std::string name = it->path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    ++processes;
    if (Holds(it->path() / "cmdline", *key)) holders.push_back("/proc/" + name + "/cmdline");
    if (std::stoi(name) != client->pid && Holds(it->path() / "environ", *key)) {
      holders.push_back("/proc/" + name + "/environ");
    }
  }
  EXPECT_GT(processes, 5);

  // Every file of the lab, and whatever anyone wrote meanwhile where programs keep files.
  std::vector<fs::path> files = FilesBelow(lab_->dir().path());
  const std::size_t lab_files = files.size();
  for (const char* shared : {"/tmp", "/var/tmp", "/run", "/dev/shm"}) {
    for (auto& path : FilesBelow(shared, began)) files.push_back(std::move(path));
  }
  for (const auto& path : files) {
    if (Holds(path, *key)) holders.push_back(path.string());
  }
  EXPECT_TRUE(std::ranges::find(files, fs::path(MasterLogPath(*lab_))) != files.end()) << "the master's log is scanned";

  // What the terminal shows and kept.
  auto screen = tmux_->CaptureHistory();
  ASSERT_TRUE(screen) << screen.error().message;
  if (screen->find(*key) != std::string::npos) holders.push_back("the terminal's scrollback");

  EXPECT_THAT(holders, ::testing::IsEmpty()) << "the mosh key leaked";
  std::cout << "[ scanned  ] " << processes << " processes, " << lab_files << " lab files, "
            << files.size() - lab_files << " recent files elsewhere\n";
}

}  // namespace
}  // namespace mconnect::testing
