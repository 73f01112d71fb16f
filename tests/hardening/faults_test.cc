// Faults around a working master: its sshd killed under a transfer, the master itself killed,
// and a full disk where it keeps its socket, lock and log.
//
// Already shown elsewhere: reconnecting after sshd stops and comes back, requests waiting for it,
// a changed host key after it (tests/master/reconnect_test.cc); the stale socket of a killed
// master replaced (tests/master/master_test.cc StaleSocketOfAKilledMasterIsReplaced). Here the
// kill is SIGKILL by pid in the middle of a real `ssh -S` transfer, and the stale lock too.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <future>
#include <random>
#include <set>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/unique_fd.h"
#include "proto/client.h"
#include "tests/hardening/hardening.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

std::string RandomBytes(std::size_t size) {
  std::mt19937_64 random(20261123);
  std::string bytes(size, '\0');
  for (auto& byte : bytes) byte = static_cast<char>(random());
  return bytes;
}

class FaultsTest : public HardeningTest {
 protected:
  // `ssh -S SOCKET lab cat` with `input`: what came back.
  CommandOutput Cat(const std::string& input) {
    CommandOptions options;
    options.timeout = Scaled(60s);
    options.input = input;
    options.max_output = input.size() + 1;
    auto result = RunCommand(Ssh({"lab", "cat"}), options);
    EXPECT_TRUE(result) << result.error().message;
    return result ? *result : CommandOutput{};
  }

  std::optional<std::string> Link() {
    auto status = StatusOf(*lab_, Scaled(2s));
    if (!status) return std::nullopt;
    return status->link();
  }

};

// Reads a pipe in the background and counts the bytes, until EOF.
class Drain {
 public:
  explicit Drain(UniqueFd fd)
      : fd_(std::move(fd)), reader_(std::async(std::launch::async, [this] {
          char buffer[65536];
          while (true) {
            pollfd pfd{fd_.get(), POLLIN, 0};
            if (::poll(&pfd, 1, 60000) <= 0) return;
            ssize_t n = ::read(fd_.get(), buffer, sizeof buffer);
            if (n <= 0) return;
            bytes_ += static_cast<std::size_t>(n);
          }
        })) {}
  ~Drain() { reader_.wait(); }
  std::size_t bytes() const { return bytes_; }

 private:
  UniqueFd fd_;
  std::atomic<std::size_t> bytes_{0};
  std::future<void> reader_;
};

struct Pipe {
  UniqueFd read, write;
};
Pipe MakePipe() {
  int fds[2] = {-1, -1};
  EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0) << std::strerror(errno);
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

TEST_F(FaultsTest, SshdKilledUnderATransferFailsTheClientAndTheMasterReconnects) {
  ASSERT_TRUE(StartMaster(*lab_));
  const pid_t master = lab_->MasterPid();
  ASSERT_GT(master, 0);

  Pipe out = MakePipe();
  UniqueFd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
  Spawned transfer(Ssh({"lab", "head -c 4000000000 /dev/zero"}), null.get(), out.write.get(), null.get());
  out.write.Reset();
  Drain received(std::move(out.read));
  ASSERT_TRUE(Eventually([&] { return received.bytes() > (16u << 20); }, Scaled(30s)))
      << "the transfer never got going: " << received.bytes() << " bytes";

  // Every sshd process of the lab, by pid: the listener and the ones serving the master.
  std::set<pid_t> sshd{lab_->sshd().pid()};
  for (bool grew = true; grew;) {
    grew = false;
    for (const auto& p : FindProcesses([&](const ProcessInfo& p) { return sshd.contains(p.ppid); })) {
      grew |= sshd.insert(p.pid).second;
    }
  }
  ASSERT_GE(sshd.size(), 2u) << "no sshd process serves the master";
  for (pid_t pid : sshd) ::kill(pid, SIGKILL);
  const auto killed = Clock::now();
  const std::size_t at_kill = received.bytes();

  // The client is told: it exits non-zero, soon.
  const int code = transfer.WaitExit(Scaled(10s));
  ASSERT_NE(code, -1) << "ssh -S still runs 10 s after its server was killed";
  EXPECT_NE(code, 0);
  std::cout << "[ measured ] ssh -S exited " << code << " after "
            << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed).count() << " ms, "
            << at_kill / (1 << 20) << " MiB received before the kill\n";
  EXPECT_EQ(lab_->MasterPid(), master);
  auto link = Link();
  EXPECT_EQ(link.value_or("(no answer)"), "reconnecting");

  // The server comes back: the master reconnects by itself, and serves new sessions.
  lab_->sshd().Stop();  // forgets (and reaps) the killed sshd
  ASSERT_TRUE(lab_->sshd().Restart());
  ASSERT_TRUE(Eventually([&] { return Link() == "up"; }, Scaled(30s))) << "link: " << Link().value_or("?");
  EXPECT_EQ(lab_->MasterPid(), master);
  const std::string data = RandomBytes(1 << 20);
  auto after = Cat(data);
  EXPECT_EQ(after.exit_code, 0) << after.err;
  EXPECT_TRUE(after.out == data) << "a transfer after the reconnect came back different";
}

TEST_F(FaultsTest, KilledMasterLeavesAStaleSocketAndLockThatTheNextMconnectReplaces) {
  ASSERT_TRUE(StartMaster(*lab_));
  const pid_t master = lab_->MasterPid();
  ASSERT_GT(master, 0);
  const std::string socket = lab_->SocketPath();
  const std::string lock = socket.substr(0, socket.size() - 5) + ".lock";

  // A client in the middle of a session when the master dies. Killed any earlier (before the
  // master has answered SESSION_OPENED), OpenSSH's client quietly makes a connection of its own
  // instead (seen under valgrind), so the kill waits for the command's first output.
  Pipe out = MakePipe();
  UniqueFd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
  Spawned session(Ssh({"lab", "echo started; exec sleep 60"}), null.get(), out.write.get(), null.get());
  out.write.Reset();
  std::string said;
  ASSERT_TRUE(Eventually(
      [&] {
        pollfd pfd{out.read.get(), POLLIN, 0};
        char buffer[64];
        ssize_t n = ::poll(&pfd, 1, 0) > 0 ? ::read(out.read.get(), buffer, sizeof buffer) : 0;
        if (n > 0) said.append(buffer, static_cast<std::size_t>(n));
        return said.find("started") != std::string::npos;
      },
      Scaled(20s)))
      << MasterLog(*lab_);
  ASSERT_EQ(::kill(master, SIGKILL), 0);
  ASSERT_TRUE(Eventually([&] { return ProcessGone(master); }, 5s));
  const int code = session.WaitExit(Scaled(10s));
  EXPECT_NE(code, -1) << "ssh -S still runs after its master was killed";
  EXPECT_NE(code, 0);

  // Both files stay behind: a socket nobody listens at, and a lock nobody holds.
  struct stat stale{};
  ASSERT_EQ(::lstat(socket.c_str(), &stale), 0) << "a killed master leaves its socket";
  auto refused = proto::ConnectUnix(socket);
  ASSERT_FALSE(refused);
  EXPECT_THAT(refused.error().message, HasSubstr("Connection refused"));
  ASSERT_EQ(::access(lock.c_str(), F_OK), 0) << "a killed master leaves its lock file";
  {
    UniqueFd held(::open(lock.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
    ASSERT_TRUE(held) << std::strerror(errno);
    EXPECT_EQ(::flock(held.get(), LOCK_EX | LOCK_NB), 0) << "the dead master's lock is still held";
  }  // released

  auto next = StartMaster(*lab_);
  ASSERT_TRUE(next) << next.error().message;
  const pid_t replacement = lab_->MasterPid();
  EXPECT_GT(replacement, 0);
  EXPECT_NE(replacement, master);
  struct stat fresh{};
  ASSERT_EQ(::lstat(socket.c_str(), &fresh), 0);
  EXPECT_TRUE(S_ISSOCK(fresh.st_mode));
  UniqueFd probe(::open(lock.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
  ASSERT_TRUE(probe);
  EXPECT_EQ(::flock(probe.get(), LOCK_EX | LOCK_NB), -1) << "the new master does not hold the lock";
  EXPECT_EQ(errno, EWOULDBLOCK);
  auto works = Cat("still here\n");
  EXPECT_EQ(works.out, "still here\n") << works.err;
}

// The runtime directory (socket directory, lock, log) on a 512 KiB tmpfs that is then filled up.
class FullDiskTest : public FaultsTest {
 protected:
  void SetUp() override {
    FaultsTest::SetUp();
    if (HasFailure()) return;
    mount_ = lab_->env().runtime_dir;
    ASSERT_EQ(::mount("mconnect-full", mount_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=512k,mode=0700"), 0)
        << "this test mounts a small tmpfs and needs root (CAP_SYS_ADMIN): " << std::strerror(errno);
    mounted_ = true;
  }
  void TearDown() override {
    FaultsTest::TearDown();
    if (lab_) lab_->Cleanup();  // the master lives in the mount
    if (mounted_) {
      EXPECT_EQ(::umount2(mount_.c_str(), MNT_DETACH), 0) << std::strerror(errno);
    }
  }

  // Writes a filler file until the file system has no room left; returns its size.
  std::size_t Fill() {
    UniqueFd filler(::open((mount_ + "/filler").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
    EXPECT_TRUE(filler) << std::strerror(errno);
    std::string block(4096, 'f');
    std::size_t written = 0;
    while (true) {
      ssize_t n = ::write(filler.get(), block.data(), block.size());
      if (n <= 0) break;
      written += static_cast<std::size_t>(n);
    }
    EXPECT_EQ(errno, ENOSPC);
    return written;
  }

  bool Full() {
    struct statvfs fs{};
    return ::statvfs(mount_.c_str(), &fs) == 0 && fs.f_bavail == 0;
  }

  std::string mount_;
  bool mounted_ = false;
};

TEST_F(FullDiskTest, SessionsGoOnWhenTheLogCannotBeWritten) {
  ASSERT_TRUE(StartMaster(*lab_));
  const pid_t master = lab_->MasterPid();
  ASSERT_GT(master, 0);
  Fill();
  ASSERT_TRUE(Full());
  const auto log_size = [&] {
    struct stat st{};
    return ::stat(MasterLogPath(*lab_).c_str(), &st) == 0 ? st.st_size : -1;
  };
  const off_t log_before = log_size();

  // A session of the running master, byte-exact, and a remote-ip question.
  const std::string data = RandomBytes(8 << 20);
  auto cat = Cat(data);
  EXPECT_EQ(cat.exit_code, 0) << cat.err;
  EXPECT_TRUE(cat.out == data) << "8 MiB through the master came back different";
  auto ip = StartMaster(*lab_);
  EXPECT_TRUE(ip) << ip.error().message;
  EXPECT_EQ(lab_->MasterPid(), master);
  EXPECT_LE(log_size(), log_before + 4096) << "the log grew on a full file system?";

  // A new master, started on the full file system, serves too: its lock, socket and (empty) log
  // need inodes, not blocks.
  auto stop = lab_->Run({"stop", lab_->SshOption(), "lab"});
  ASSERT_TRUE(stop && stop->exit_code == 0) << (stop ? stop->err : stop.error().message);
  Fill();  // the stopped master's lock and record gave back their blocks
  ASSERT_TRUE(Full());
  auto restarted = StartMaster(*lab_);
  ASSERT_TRUE(restarted) << restarted.error().message;
  EXPECT_NE(lab_->MasterPid(), master);
  auto again = Cat(data);
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_TRUE(again.out == data);

  // And a mosh session starts: mosh-server through the master, its key to the client. The client
  // is a stand-in that needs no terminal and says what it got.
  const std::string client = lab_->dir().Sub("mosh-client");
  std::ofstream(client) << "#!/bin/sh\n"
                           "if [ \"$1\" = -c ]; then echo 256; exit 0; fi\n"
                           "echo \"client: key of ${#MOSH_KEY} characters for $2 port $3\"\n";
  ASSERT_EQ(::chmod(client.c_str(), 0755), 0);
  auto session = lab_->Run({lab_->SshOption(), "--client=" + client, "lab"}, Scaled(60s));
  ASSERT_TRUE(session) << session.error().message;
  EXPECT_EQ(session->exit_code, 0) << session->err;
  EXPECT_THAT(session->out, HasSubstr("client: key of 22 characters for 127.0.0.1 port 60"));
  EXPECT_TRUE(Full());
}

}  // namespace
}  // namespace mconnect::testing
