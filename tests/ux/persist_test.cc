// How long a master stays once nothing is open: the profile's `persist` (and --persist) with
// OpenSSH's ControlPersist meanings, against a real sshd. "no": it exits as soon as its last
// client has gone; "yes" (or 0): it stays until stopped.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/mconnect_lab.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;

class PersistTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto lab = MconnectLab::Start();
    ASSERT_TRUE(lab) << lab.error().message;
    lab_ = std::move(*lab);
  }

  void WriteProfile(const std::string& text) {
    std::filesystem::create_directories(lab_->env().config_home + "/mconnect");
    std::ofstream(lab_->env().config_home + "/mconnect/config.toml") << text;
  }

  // The masters this test started (adopted: AdoptOrphans), still running.
  std::vector<pid_t> Masters() const {
    std::vector<pid_t> pids;
    for (const auto& p : FindProcesses([self = ::getpid()](const ProcessInfo& p) {
           return p.ppid == self && p.exe == "mconnect-mux";
         })) {
      pids.push_back(p.pid);
    }
    return pids;
  }

  bool SocketExists() const { return std::filesystem::exists(lab_->SocketPath()); }

  std::unique_ptr<MconnectLab> lab_;
};

TEST_F(PersistTest, NoEndsTheMasterOnceItsLastClientHasGone) {
  WriteProfile("[host.lab]\npersist = \"no\"\n");
  // The launcher stays connected while this strategy runs on the server: the master has a client.
  std::optional<CommandOutput> ip;
  std::thread launcher([&] {
    auto result = lab_->Run({"ip", lab_->SshOption(), "--remote-ip=command:sleep 3; echo 127.0.0.1", "lab"}, 60s);
    if (result) ip = *result;
  });
  std::vector<pid_t> during;
  for (int i = 0; i < 100 && during.empty(); ++i) {
    std::this_thread::sleep_for(50ms);
    if (SocketExists()) during = Masters();
  }
  std::this_thread::sleep_for(1s);
  const bool served = !Masters().empty() && SocketExists();
  launcher.join();
  ASSERT_TRUE(ip) << "mconnect ip did not run";
  ASSERT_EQ(ip->exit_code, 0) << ip->err;
  ASSERT_EQ(during.size(), 1u) << "no master while mconnect ip ran";
  EXPECT_TRUE(served) << "the master left while its client was still there";

  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    std::this_thread::sleep_for(50ms);
    gone = ProcessGone(during.front()) && !SocketExists();
  }
  EXPECT_TRUE(gone) << "the master still runs 5 s after its last client left; log:\n" << lab_->MasterLog();
}

TEST_F(PersistTest, YesKeepsTheMasterUntilItIsStopped) {
  WriteProfile("[host.lab]\npersist = \"yes\"\n");
  auto ip = lab_->Run({"ip", lab_->SshOption(), "lab"});
  ASSERT_TRUE(ip) << ip.error().message;
  ASSERT_EQ(ip->exit_code, 0) << ip->err;
  std::this_thread::sleep_for(3s);
  auto status = lab_->Status();
  ASSERT_TRUE(status) << "the master left: " << status.error().message << "\n" << lab_->MasterLog();
  EXPECT_TRUE(status->persist_s() == 0) << "0: until stopped, as ControlPersist 0; got " << status->persist_s();

  auto stopped = lab_->Run({"stop", lab_->SshOption(), "lab"});
  ASSERT_TRUE(stopped);
  EXPECT_EQ(stopped->exit_code, 0) << stopped->err;
}

// The command line beats the profile, with the same words.
TEST_F(PersistTest, TheCommandLineSaysNoOverAProfilesYes) {
  WriteProfile("[defaults]\npersist = \"yes\"\n");
  auto ip = lab_->Run({"ip", "--persist=no", lab_->SshOption(), "lab"});
  ASSERT_TRUE(ip) << ip.error().message;
  ASSERT_EQ(ip->exit_code, 0) << ip->err;
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    std::this_thread::sleep_for(50ms);
    gone = Masters().empty() && !SocketExists();
  }
  EXPECT_TRUE(gone) << "the master still runs 5 s after its last client left; log:\n" << lab_->MasterLog();
}

}  // namespace
}  // namespace mconnect::testing
