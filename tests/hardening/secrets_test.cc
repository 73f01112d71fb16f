// The mosh session key is a secret: during a live session (tmux runs the real `mconnect`,
// mosh-client takes over the terminal and answers a typed command), the key is nowhere but in
// mosh-client's environment. Scanned byte for byte: /proc/PID/cmdline and /proc/PID/environ of
// every process on the machine (mosh-client's environ excepted), every file under the lab (its
// home, runtime directory with the master's socket directory and log, config directory, the
// sshd's files, tmux's directory), every file written since the test began under /tmp, /var/tmp,
// /run and /dev/shm, and the terminal's scrollback.
// (tests/e2e/mosh_e2e_test.cc TypedCommandRunsInAMoshSessionThroughTheMaster checks the parsed
// argv and environment of every process and the master's log; this goes over everything else.)
// The master's own memory too: once mosh-client runs, the key is in none of the master's
// writable mappings (heap, stack, anonymous, data), read through /proc/PID/mem; and after a
// master authenticated with an encrypted key whose passphrase came from SSH_ASKPASS, the
// passphrase is nowhere in it either. Reading another process's memory needs root; without it
// these tests skip, or fail under CI=true.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/unique_fd.h"
#include "tests/hardening/hardening.h"
#include "tests/support/require.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// Whether the file at `path` holds `secret`, read as raw bytes (at most `limit`).
bool Holds(const fs::path& path, const std::string& secret, std::size_t limit = 64 << 20) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  // Read as it comes: sizing a buffer to `limit` first zero-filled 64 MiB for each of the few
  // hundred files and /proc entries (half a minute of this test).
  std::string data;
  char chunk[1 << 16];
  while (data.size() < limit) {
    in.read(chunk, static_cast<std::streamsize>(std::min(sizeof chunk, limit - data.size())));
    if (in.gcount() <= 0) break;
    data.append(chunk, static_cast<std::size_t>(in.gcount()));
  }
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

// What a scan of a process's memory found.
struct MemoryScan {
  std::vector<std::string> hits;  // "0xADDRESS in MAPPING" for each occurrence
  std::size_t bytes = 0;          // bytes read
  int mappings = 0;               // mappings read
  int skipped = 0;                // reservations too large to be memory in use (kMaxMapping)
};

// A writable mapping larger than this is address space reserved, not memory in use (ASan's
// shadow: terabytes). Reading it through /proc/PID/mem would fault in page tables for all of
// it, and the OOM killer would end the process being scanned.
constexpr std::uint64_t kMaxMapping = std::uint64_t{4} << 30;

// Every occurrence of `needle` in the memory process `pid` can write (heap, stack, anonymous
// mappings, the data of its executable and libraries), from /proc/PID/maps and /proc/PID/mem.
// Fails when nothing could be read (not root, or the process is gone).
Result<MemoryScan> ScanMemory(pid_t pid, std::string_view needle) {
  const std::string proc = "/proc/" + std::to_string(pid);
  auto maps = ReadFile(proc + "/maps");
  if (!maps) return Fail("cannot read {}/maps: {}", proc, maps.error().message);
  UniqueFd mem(::open((proc + "/mem").c_str(), O_RDONLY | O_CLOEXEC));
  if (!mem) return Fail("cannot open {}/mem: {}", proc, std::strerror(errno));
  MemoryScan scan;
  std::istringstream lines(*maps);
  constexpr std::size_t kChunk = 1 << 20;
  std::string data;
  for (std::string line; std::getline(lines, line);) {
    // START-END PERMS OFFSET DEV INODE [PATH]
    std::istringstream fields(line);
    std::string range, perms, offset, device, inode, path;
    fields >> range >> perms >> offset >> device >> inode;
    std::getline(fields >> std::ws, path);
    if (perms.size() < 2 || perms[0] != 'r' || perms[1] != 'w') continue;
    const std::size_t dash = range.find('-');
    const std::uint64_t start = std::stoull(range.substr(0, dash), nullptr, 16);
    const std::uint64_t end = std::stoull(range.substr(dash + 1), nullptr, 16);
    const std::string where = path.empty() ? "[anon]" : path;
    if (end - start > kMaxMapping) {
      ++scan.skipped;
      continue;
    }
    bool read_any = false;
    // Chunks overlap by needle.size() - 1 bytes, so that nothing is missed at their borders.
    for (std::uint64_t at = start; at < end;) {
      const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, end - at));
      data.resize(want);
      ssize_t n = ::pread(mem.get(), data.data(), want, static_cast<off_t>(at));
      if (n <= 0) break;  // a guard page, or the mapping went away
      read_any = true;
      data.resize(static_cast<std::size_t>(n));
      scan.bytes += data.size();
      for (std::size_t found = data.find(needle); found != std::string::npos; found = data.find(needle, found + 1)) {
        std::ostringstream hit;
        hit << "0x" << std::hex << at + found << " in " << where;
        scan.hits.push_back(hit.str());
      }
      if (at + data.size() >= end || data.size() < needle.size()) break;
      at += data.size() - (needle.size() - 1);
    }
    if (read_any) ++scan.mappings;
  }
  if (scan.bytes == 0) return Fail("nothing of {}'s memory could be read", proc);
  return scan;
}

#define REQUIRE_ROOT() MCONNECT_REQUIRE_ROOT("to read another process's memory")

class SecretsTest : public HardeningTest {
 protected:
  void TearDown() override {
    if (tmux_ && tmux_->PanePid() > 0) KillPid(tmux_->PanePid());  // mosh-client, by pid
    tmux_.reset();
    HardeningTest::TearDown();
  }

  // A live mosh session through the master in tmux (a typed command answered); the key is
  // mosh-client's MOSH_KEY.
  struct Session {
    ProcessInfo client;
    std::string key;
  };
  std::optional<Session> StartSession() {
    const std::string dir = lab_->dir().Sub("tmux");
    EXPECT_EQ(::mkdir(dir.c_str(), 0700), 0);
    tmux_ = std::make_unique<Tmux>(dir);
    auto started = tmux_->Start("exec " + lab_->ShellCommand({lab_->SshOption(), "lab"}), lab_->env());
    EXPECT_TRUE(started) << started.error().message;
    if (!started) return std::nullopt;
    auto client = WaitForProcess(
        [pid = tmux_->PanePid()](const ProcessInfo& p) { return p.pid == pid && p.exe == "mosh-client"; }, 30s);
    EXPECT_TRUE(client) << "mosh-client never started:\n" << tmux_->CaptureHistory().value_or("");
    if (!client) return std::nullopt;
    bool live = tmux_->WaitForRegex("[#$] ", 30s) && tmux_->Type("echo LIVE-$((6*7))") &&
                tmux_->SendKeys("Enter") && tmux_->WaitFor("LIVE-42", 30s);
    EXPECT_TRUE(live) << tmux_->CaptureHistory().value_or("");
    if (!live) return std::nullopt;
    std::optional<std::string> key = client->Getenv("MOSH_KEY");
    EXPECT_TRUE(key && key->size() == 22u) << "mosh-client has no 22-character MOSH_KEY";
    if (!key || key->size() != 22u) return std::nullopt;
    return Session{*client, *key};
  }

  std::unique_ptr<Tmux> tmux_;
};

TEST_F(SecretsTest, TheMoshKeyIsOnlyInMoshClientsEnvironment) {
  const auto began = fs::file_time_type::clock::now() - 2s;  // file times are coarser than the clock
  auto session = StartSession();
  ASSERT_TRUE(session);
  const ProcessInfo& client = session->client;
  const std::string& key = session->key;
  ASSERT_TRUE(Holds("/proc/" + std::to_string(client.pid) + "/environ", key)) << "the scan can see the key";

  // Every process's argv and environment, raw.
  int processes = 0;
  std::vector<std::string> holders;
  std::error_code error;
  for (fs::directory_iterator it("/proc", error), end; !error && it != end; it.increment(error)) {
    const std::string name = it->path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    ++processes;
    if (Holds(it->path() / "cmdline", key)) holders.push_back("/proc/" + name + "/cmdline");
    if (std::stoi(name) != client.pid && Holds(it->path() / "environ", key)) {
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
    if (Holds(path, key)) holders.push_back(path.string());
  }
  EXPECT_TRUE(std::ranges::find(files, fs::path(MasterLogPath(*lab_))) != files.end()) << "the master's log is scanned";

  // What the terminal shows and kept.
  auto screen = tmux_->CaptureHistory();
  ASSERT_TRUE(screen) << screen.error().message;
  if (screen->find(key) != std::string::npos) holders.push_back("the terminal's scrollback");

  EXPECT_THAT(holders, ::testing::IsEmpty()) << "the mosh key leaked";
  std::cout << "[ scanned  ] " << processes << " processes, " << lab_files << " lab files, "
            << files.size() - lab_files << " recent files elsewhere\n";
}

TEST_F(SecretsTest, TheMoshKeyIsNotInTheMastersMemory) {
  REQUIRE_ROOT();
  auto session = StartSession();
  ASSERT_TRUE(session);
  const pid_t master = lab_->MasterPid();
  ASSERT_GT(master, 0) << "no master answers";

  // The scan finds the key where it must be: in mosh-client.
  auto in_client = ScanMemory(session->client.pid, session->key);
  ASSERT_TRUE(in_client) << in_client.error().message;
  ASSERT_FALSE(in_client->hits.empty()) << "the scan cannot see the key in mosh-client's memory";

  // Whole, and by halves: a freed small block loses its first 16 bytes to malloc's free-list
  // pointers, and half of a key is still a leak (66 bits; no chance match in a few MiB).
  std::vector<std::string> holders;
  MemoryScan scan;
  const std::string_view key = session->key;
  for (std::string_view part : {key, key.substr(0, 11), key.substr(11)}) {
    auto in_master = ScanMemory(master, part);
    ASSERT_TRUE(in_master) << in_master.error().message;
    for (const auto& hit : in_master->hits) holders.push_back(std::string(part) + " at " + hit);
    scan = *in_master;
  }
  EXPECT_THAT(holders, ::testing::IsEmpty()) << "the master still holds (part of) the mosh key " << key;
  std::cout << "[ scanned  ] the master's " << scan.mappings << " writable mappings, " << scan.bytes / 1024
            << " KiB (" << scan.skipped << " reservations over 4 GiB skipped)\n";
}

TEST_F(SecretsTest, TheAskpassPassphraseIsNotInTheMastersMemory) {
  REQUIRE_ROOT();
  // 48 random characters, looked for whole and by thirds: a freed small block loses its first
  // 16 bytes to malloc's free-list pointers, and the rest of a passphrase is a leak too.
  std::random_device random;
  std::string passphrase;
  for (int i = 0; i < 6; ++i) passphrase += fmt::format("{:08x}", random());
  const std::string key = lab_->sshd().user_key();
  auto encrypted = RunCommand({"ssh-keygen", "-q", "-p", "-P", "", "-N", passphrase, "-f", key});
  ASSERT_TRUE(encrypted && encrypted->ok()) << (encrypted ? encrypted->err : encrypted.error().message);
  const std::string askpass = lab_->dir().Sub("askpass");
  {
    std::ofstream out(askpass);
    out << "#!/bin/sh\necho " << passphrase << "\n";
  }
  ASSERT_EQ(::chmod(askpass.c_str(), 0700), 0);
  lab_->env().Set("SSH_ASKPASS", askpass).Set("SSH_ASKPASS_REQUIRE", "force");

  // `mconnect master` (as a systemd unit runs it): the master authenticates, then only waits.
  // No terminal at all (setsid): the passphrase can only come from the askpass program.
  std::vector<std::string> argv{"setsid", "-w"};
  for (auto& word : lab_->Command({"master", lab_->SshOption() + " -o BatchMode=no", "lab"})) argv.push_back(word);
  UniqueFd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
  ASSERT_TRUE(null);
  Spawned launcher(argv, null.get(), null.get(), null.get());
  ASSERT_GT(launcher.pid(), 0);
  pid_t master = 0;
  ASSERT_TRUE(Eventually([&] { return (master = lab_->MasterPid()) > 0; }, Scaled(60s))) << "no master answers";
  ASSERT_GE(lab_->sshd().CountInLog("Accepted publickey"), 1) << lab_->sshd().Log();

  // The scan sees what the master was given: the askpass program's path, in its environment.
  auto control = ScanMemory(master, askpass);
  ASSERT_TRUE(control) << control.error().message;
  ASSERT_FALSE(control->hits.empty()) << "the scan cannot see the master's environment";

  std::vector<std::string> holders;
  MemoryScan scan;
  const std::string_view whole = passphrase;
  for (std::string_view part : {whole, whole.substr(0, 16), whole.substr(16, 16), whole.substr(32)}) {
    auto in_master = ScanMemory(master, part);
    ASSERT_TRUE(in_master) << in_master.error().message;
    for (const auto& hit : in_master->hits) holders.push_back(std::string(part) + " at " + hit);
    scan = *in_master;
  }
  EXPECT_THAT(holders, ::testing::IsEmpty()) << "the master still holds (part of) the passphrase " << passphrase;
  std::cout << "[ scanned  ] the master's " << scan.mappings << " writable mappings, " << scan.bytes / 1024
            << " KiB (" << scan.skipped << " reservations over 4 GiB skipped)\n";

  StopMasterGracefully(*lab_);
  EXPECT_GE(launcher.WaitExit(Scaled(10s)), 0) << "mconnect master outlived its master";
}

}  // namespace
}  // namespace mconnect::testing
