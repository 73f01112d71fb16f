// The fixture of the OpenSSH robustness tests (tests/master/openssh_*_test.cc): a master with
// an unchanged `ssh -S SOCKET lab cat` moving 64 MiB through it, raw mux clients on its socket,
// and what the tests check afterwards (the transfer, the master's pid, its one authentication).
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <future>
#include <optional>
#include <random>
#include <regex>
#include <span>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/unique_fd.h"
#include "mux/openssh/codec.h"
#include "proto/client.h"
#include "proto/control.pb.h"
#include "tests/support/mconnect_lab.h"
#include "tests/support/mux_socket.h"

// A namespace of its own: the chrono literals, and the short names below, stay with these tests.
namespace mconnect::testing::robustness {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
namespace ossh = mux::openssh;
using Clock = std::chrono::steady_clock;
using Bytes = std::vector<std::uint8_t>;

inline constexpr std::size_t kTransferBytes = 64 * 1024 * 1024;

inline Bytes Encode(const ossh::ClientMessage& message) {
  Bytes frame = EncodeMux(message);
  EXPECT_FALSE(frame.empty()) << "cannot encode a mux message";
  return frame;
}

inline ossh::NewSession SessionRequest(std::uint32_t request_id, std::string command) {
  return MuxSessionRequest(request_id, std::move(command));
}

inline long long Millis(Clock::duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); }

inline off_t FileSize(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0 ? st.st_size : -1;
}

inline int StatusFlags(int fd) { return ::fcntl(fd, F_GETFL); }

class OpenSshRobustnessTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ::signal(SIGPIPE, SIG_IGN); }

  void SetUp() override {
    auto lab = MconnectLab::Start();
    ASSERT_TRUE(lab) << lab.error().message;
    lab_ = std::move(*lab);
    auto started = lab_->Run({"ip", lab_->SshOption(), "lab"});
    ASSERT_TRUE(started && started->exit_code == 0) << (started ? started->err : started.error().message);
    socket_ = lab_->SocketPath();
    master_ = lab_->MasterPid();
    ASSERT_GT(master_, 0);
    // The control connections of `mconnect ip` and MasterPid() may still be closing: the least
    // seen over a moment is the master's own.
    master_fds_ = MasterFdCount();
    for (int i = 0; i < 10; ++i) {
      std::this_thread::sleep_for(30ms);
      master_fds_ = std::min(master_fds_, MasterFdCount());
    }
  }

  // How many fds the master holds (sockets, lent fds, its log...), from /proc.
  int MasterFdCount() const {
    int count = 0;
    std::error_code error;
    for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(master_) + "/fd", error);
         !error && it != std::filesystem::directory_iterator(); it.increment(error)) {
      ++count;
    }
    return count;
  }

  // Every hostile client, and every fd any of them lent, is let go; every channel is closed.
  void ExpectNothingLeaked() {
    int fds = MasterFdCount();
    std::uint32_t channels = 0;
    bool status_ok = false;
    for (auto deadline = Clock::now() + 10s; Clock::now() < deadline; std::this_thread::sleep_for(100ms)) {
      {
        auto client = lab_->Connect();
        if (!client) continue;
        auto status = client->Call<control::StatusReply>(proto::MessageType::kStatus, control::StatusRequest{},
                                                         proto::MessageType::kStatusReply, 5s);
        status_ok = status.has_value();
        if (status) channels = status->channels();
      }
      std::this_thread::sleep_for(50ms);  // our own control connection closes
      fds = MasterFdCount();
      if (status_ok && channels == 0 && fds <= master_fds_) break;
    }
    EXPECT_TRUE(status_ok) << "no status from the master";
    EXPECT_EQ(channels, 0u) << "channels still open in the master after every client left";
    EXPECT_LE(fds, master_fds_) << "the master holds " << fds - master_fds_
                                << " more fds than before the clients came: " << MasterFds();
  }

  std::string MasterFds() const {
    std::string listing;
    std::error_code error;
    for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(master_) + "/fd", error);
         !error && it != std::filesystem::directory_iterator(); it.increment(error)) {
      std::error_code link_error;
      listing += "\n  " + it->path().filename().string() + " -> " +
                 std::filesystem::read_symlink(it->path(), link_error).string();
    }
    return listing;
  }

  void TearDown() override {
    if (lab_) {
      EXPECT_EQ(lab_->sshd().CountInLog("Accepted publickey"), 1)
          << "an OpenSSH client made its own connection instead of using the master";
      if (HasFailure()) std::cerr << "---- master log ----\n" << MasterLog() << "---- end of master log ----\n";
    }
  }

  std::string MasterLog() const {
    return ReadFile(socket_.substr(0, socket_.size() - 5) + ".log").value_or("(no master log)\n");
  }

  std::vector<std::string> Ssh(const std::vector<std::string>& args) const {
    std::vector<std::string> argv{"ssh", "-F", lab_->sshd().ssh_config(), "-S", socket_, "-o", "ControlMaster=no"};
    argv.insert(argv.end(), args.begin(), args.end());
    return lab_->env().Command(argv);
  }

  std::string SshLine(const std::vector<std::string>& args) const {
    std::string line;
    for (const auto& word : Ssh(args)) line += (line.empty() ? "" : " ") + ShellQuote(word);
    return line;
  }

  CommandOutput Run(const std::vector<std::string>& args, std::chrono::milliseconds timeout = 60s) const {
    CommandOptions options;
    options.timeout = timeout;
    auto result = RunCommand(Ssh(args), options);
    EXPECT_TRUE(result) << result.error().message;
    return result ? *result : CommandOutput{};
  }

  CommandOutput Shell(const std::string& script, std::chrono::milliseconds timeout) const {
    CommandOptions options;
    options.timeout = timeout;
    auto result = RunCommand(ShellCommand("SSH=\"" + SshLine({}) + "\"; " + script), options);
    EXPECT_TRUE(result) << result.error().message;
    return result ? *result : CommandOutput{};
  }

  // Connects and exchanges HELLOs: ours first, as OpenSSH's client does, then the master's.
  void Handshake(MuxSocket& client) {
    ASSERT_TRUE(client.valid()) << client.error();
    ASSERT_EQ(Encode(ossh::Hello{}), kOpenSshHello);
    ASSERT_TRUE(client.Send(kOpenSshHello)) << client.error();
    auto hello = client.ReadFrame(5s);
    ASSERT_TRUE(hello) << "no HELLO from the master: " << client.error();
    auto decoded = ossh::DecodeServerMessage(*hello);
    ASSERT_TRUE(decoded && std::holds_alternative<ossh::Hello>(*decoded)) << "first frame type " << hello->type;
    EXPECT_EQ(std::get<ossh::Hello>(*decoded).version, ossh::kProtocolVersion);
  }

  // The master still runs, with the same pid, and still serves OpenSSH clients.
  void ExpectMasterServes(const std::string& when) {
    SCOPED_TRACE(when);
    EXPECT_EQ(lab_->MasterPid(), master_) << "the master's pid changed (or it no longer answers)";
  }

  // ---- the hostile clients ----------------------------------------------------------------------

  // 1. Random bytes after a valid HELLO. A random length field is above kMaxFrame except with
  // probability 2^-14; its top bit is set so that the expected outcome does not hang on a seed.
  void GarbageAfterHello() {
    for (int round = 0; round < 4; ++round) {
      SCOPED_TRACE("garbage round " + std::to_string(round));
      MuxSocket client(socket_);
      ASSERT_NO_FATAL_FAILURE(Handshake(client));
      Bytes garbage(4096);
      for (auto& byte : garbage) byte = static_cast<std::uint8_t>(random_());
      garbage[0] |= 0x80;
      client.Send(garbage, 2s);  // may fail part way: the master may already have hung up
      EXPECT_TRUE(client.ClosedWithin(5s)) << "the master kept a client that sent garbage";
    }
  }

  // 2. A length of 0xffffffff after HELLO: closed before anything that size is allocated.
  void OversizedLength() {
    MuxSocket client(socket_);
    ASSERT_NO_FATAL_FAILURE(Handshake(client));
    // The control: a client that has only said HELLO is kept (so "closed" below means something).
    ASSERT_FALSE(client.ClosedWithin(200ms)) << "the master closed a client that only sent HELLO";
    ASSERT_TRUE(client.Send(Bytes{0xff, 0xff, 0xff, 0xff, 0x10, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01}))
        << client.error();
    EXPECT_TRUE(client.ClosedWithin(5s)) << "the master kept a client that announced a 4 GiB frame";
  }

  // 3. Half of a NEW_SESSION frame, then the client goes away (first half-closed, so that we can
  // see the master close its end, then a second one that simply disappears).
  void FrameCutInTheMiddle() {
    Bytes frame = Encode(SessionRequest(1, "echo never-run"));
    ASSERT_GT(frame.size(), 16u);
    Bytes half(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(frame.size() / 2));
    {
      MuxSocket client(socket_);
      ASSERT_NO_FATAL_FAILURE(Handshake(client));
      ASSERT_TRUE(client.Send(half)) << client.error();
      std::this_thread::sleep_for(100ms);
      client.ShutdownWrite();
      EXPECT_TRUE(client.ClosedWithin(5s)) << "the master kept a client that hung up inside a frame";
    }
    {
      MuxSocket client(socket_);
      ASSERT_NO_FATAL_FAILURE(Handshake(client));
      ASSERT_TRUE(client.Send(half)) << client.error();
    }  // closed here, mid-frame
    {
      // Only the length field's first two bytes.
      MuxSocket client(socket_);
      ASSERT_NO_FATAL_FAILURE(Handshake(client));
      ASSERT_TRUE(client.Send(Bytes{0x00, 0x00})) << client.error();
      client.ShutdownWrite();
      EXPECT_TRUE(client.ClosedWithin(5s)) << "the master kept a client that hung up inside a length field";
    }
  }

  // 4. A complete NEW_SESSION, then EOF where the three fds should come.
  void NewSessionWithoutFds() {
    MuxSocket client(socket_);
    ASSERT_NO_FATAL_FAILURE(Handshake(client));
    ASSERT_TRUE(client.Send(Encode(SessionRequest(1, "echo never-run")))) << client.error();
    std::this_thread::sleep_for(100ms);
    client.ShutdownWrite();
    EXPECT_TRUE(client.ClosedWithin(5s)) << "the master kept a client that never passed its fds";
  }

  // 5. NEW_SESSION followed by one fd (then two), then EOF. The master must let go of what it
  // received: once it has, nobody reads the pipe we lent and a write to it fails with EPIPE.
  void NewSessionWithSomeFds() {
    for (int fds = 1; fds <= 2; ++fds) {
      SCOPED_TRACE(std::to_string(fds) + " of 3 fds passed");
      MuxSocket client(socket_);
      ASSERT_NO_FATAL_FAILURE(Handshake(client));
      ASSERT_TRUE(client.Send(Encode(SessionRequest(1, "echo never-run")))) << client.error();
      Pipe lent = MakePipe();
      for (int i = 0; i < fds; ++i) ASSERT_TRUE(client.SendFd(lent.read.get())) << client.error();
      lent.read.Reset();  // the master holds the only read end now
      std::this_thread::sleep_for(100ms);
      client.ShutdownWrite();
      EXPECT_TRUE(client.ClosedWithin(5s)) << "the master kept a client that stopped after " << fds << " fd(s)";
      EXPECT_TRUE(ReaderGoneWithin(lent.write.get(), 5s)) << "the master still holds the fd it was passed";
    }
  }

  // 6. HELLO, then ALIVE_CHECKs without ever reading the replies. The first 1000 must not stop
  // the master from serving others; as they keep coming, the replies it cannot deliver must not
  // grow without bound: the master drops the client. Returns how many checks it took.
  std::size_t NeverReads() {
    MuxSocket client(socket_);
    EXPECT_TRUE(client.valid()) << client.error();
    if (!client.valid()) return 0;
    // Not Handshake(): this client reads nothing at all, not even the master's HELLO.
    EXPECT_TRUE(client.Send(kOpenSshHello)) << client.error();
    std::uint32_t next_id = 1;
    auto batch = [&next_id] {
      Bytes bytes;
      for (int i = 0; i < 100; ++i) {
        Bytes frame = Encode(ossh::AliveCheck{next_id++});
        bytes.insert(bytes.end(), frame.begin(), frame.end());
      }
      return bytes;
    };
    for (int i = 0; i < 10; ++i) {
      if (!client.Send(batch(), 5s)) {
        // Dropped this early is allowed (the master may cap its queue lower than 1000 replies).
        EXPECT_TRUE(client.peer_closed()) << "ALIVE_CHECK " << next_id << ": " << client.error();
        return next_id - 1;
      }
    }
    // 1000 unread replies pending: another client is served as usual meanwhile.
    auto others = Run({"lab", "echo served-meanwhile"}, 30s);
    EXPECT_EQ(others.exit_code, 0) << others.err;
    EXPECT_EQ(others.out, "served-meanwhile\n") << "a client that does not read blocked the others";

    // Keep asking: up to 200000 checks (3.2 MB of replies) or 60 s.
    constexpr std::uint32_t kMaxChecks = 200000;
    auto deadline = Clock::now() + 60s;
    bool stalled = false;
    while (!client.peer_closed() && next_id <= kMaxChecks && Clock::now() < deadline) {
      if (!client.Send(batch(), 5s) && !client.peer_closed()) {
        stalled = true;  // the master stopped reading us: back-pressure, but not a cut-off yet
        break;
      }
    }
    if (!client.peer_closed()) client.HungUpWithin(10s);
    bool closed = client.peer_closed() || client.HungUpWithin(0ms);
    EXPECT_TRUE(closed) << "after " << next_id - 1 << " unread ALIVE_CHECKs the master still keeps the client"
                        << (stalled ? " (it stopped reading its requests, but never closed it)"
                                    : " (and keeps reading its requests, so its replies pile up)");
    if (closed) {
      EXPECT_TRUE(client.ClosedWithin(5s)) << "a read does not see the master's close";
    }
    return next_id - 1;
  }

  // 7. A real session (stdin, stdout and stderr are our pipes, the command `cat`), then a second
  // NEW_SESSION on the same connection: refused with FAILURE / PERMISSION_DENIED, or the client
  // dropped. Dropped means its first session is ended and its fds let go.
  void SecondNewSession() {
    MuxSocket client(socket_);
    ASSERT_NO_FATAL_FAILURE(Handshake(client));
    Pipe in = MakePipe(), out = MakePipe(), err = MakePipe();
    ASSERT_TRUE(client.Send(Encode(SessionRequest(1, "cat")))) << client.error();
    ASSERT_TRUE(client.SendFd(in.read.get())) << client.error();
    ASSERT_TRUE(client.SendFd(out.write.get())) << client.error();
    ASSERT_TRUE(client.SendFd(err.write.get())) << client.error();
    in.read.Reset();
    out.write.Reset();
    err.write.Reset();
    auto opened = client.ReadFrame(20s);
    ASSERT_TRUE(opened) << "no answer to the first NEW_SESSION: " << client.error();
    auto reply = ossh::DecodeServerMessage(*opened);
    ASSERT_TRUE(reply && std::holds_alternative<ossh::SessionOpened>(*reply))
        << "the first session did not open: " << ossh::MessageTypeName(opened->type);
    EXPECT_EQ(std::get<ossh::SessionOpened>(*reply).request_id, 1u);
    ASSERT_EQ(::write(in.write.get(), "ping\n", 5), 5);
    EXPECT_THAT(ReadUntil(out.read.get(), "ping\n", 20s), HasSubstr("ping\n")) << "the first session does not run";

    ASSERT_TRUE(client.Send(Encode(SessionRequest(2, "echo second-session"))) || client.peer_closed())
        << client.error();
    auto answer = client.ReadFrame(5s);
    if (answer) {
      auto decoded = ossh::DecodeServerMessage(*answer);
      ASSERT_TRUE(decoded) << "undecodable answer of type " << answer->type;
      bool refused = (std::holds_alternative<ossh::Failure>(*decoded) &&
                      std::get<ossh::Failure>(*decoded).request_id == 2) ||
                     (std::holds_alternative<ossh::PermissionDenied>(*decoded) &&
                      std::get<ossh::PermissionDenied>(*decoded).request_id == 2);
      ASSERT_TRUE(refused) << "the second NEW_SESSION was answered with " << ossh::MessageTypeName(answer->type);
      if (round_ == 0) std::cout << "[ attack   ] second NEW_SESSION refused with " << ossh::MessageTypeName(answer->type) << "\n";
      // Refused and kept: the first session still works, and ends normally at stdin's EOF.
      ASSERT_EQ(::write(in.write.get(), "pong\n", 5), 5);
      EXPECT_THAT(ReadUntil(out.read.get(), "pong\n", 20s), HasSubstr("pong\n"));
      in.write.Reset();
      auto exit = client.ReadFrame(20s);
      ASSERT_TRUE(exit) << client.error();
      EXPECT_EQ(exit->type, ossh::kMuxSExitMessage);
    } else {
      ASSERT_TRUE(client.peer_closed()) << "the second NEW_SESSION got no answer within 5 s: " << client.error();
      if (round_ == 0) std::cout << "[ attack   ] second NEW_SESSION: the master closed the connection\n";
    }
    EXPECT_TRUE(client.ClosedWithin(10s)) << "the master kept the connection of a second NEW_SESSION";
    // Either way the master lets go of every fd it was lent (the channel's `cat` ends too).
    EXPECT_TRUE(WritersGoneWithin(out.read.get(), 10s)) << "the master still holds the lent stdout";
    EXPECT_TRUE(WritersGoneWithin(err.read.get(), 10s)) << "the master still holds the lent stderr";
    if (in.write) {
      EXPECT_TRUE(ReaderGoneWithin(in.write.get(), 10s)) << "the master still holds the lent stdin";
    }
  }

  // ---- the transfer they run against -----------------------------------------------------------

  // Runs `attacks` while `ssh -S SOCKET lab cat < up > down` moves 64 MiB, then checks the
  // transfer, a new session, `ssh -O check`, the master's pid (and, in TearDown, that only the
  // master ever authenticated).
  void DuringTransfer(const std::function<void()>& attacks) {
    std::string dir = lab_->dir().path();
    std::string up = dir + "/up", down = dir + "/down";
    auto made = Shell("head -c " + std::to_string(kTransferBytes) + " /dev/urandom > " + ShellQuote(up), 60s);
    ASSERT_EQ(made.exit_code, 0) << made.err;
    auto started = Clock::now();
    auto transfer = std::async(std::launch::async, [&] {
      return Shell("cd " + ShellQuote(dir) + "; eval \"$SSH lab cat\" < up > down; echo \"ssh=$?\"; cmp up down && echo SAME",
                   240s);
    });
    // The transfer is under way once bytes come back.
    auto deadline = Clock::now() + 60s;
    while (FileSize(down) <= 0 && Clock::now() < deadline &&
           transfer.wait_for(0s) != std::future_status::ready) {
      std::this_thread::sleep_for(10ms);
    }
    off_t at_start = FileSize(down);
    bool running_at_start = transfer.wait_for(0s) != std::future_status::ready;
    // The attacks are quick and the transfer takes a second or two: they go round again until it
    // ends (at least once), so that every one of them meets it in flight.
    auto attack_start = Clock::now();
    int rounds = 0, rounds_in_flight = 0;
    for (round_ = 0; round_ < kMaxRounds && !HasFailure(); ++round_) {
      attacks();
      ++rounds;
      if (transfer.wait_for(0s) == std::future_status::ready) break;
      ++rounds_in_flight;
    }
    auto attack_end = Clock::now();
    off_t at_end = FileSize(down);
    CommandOutput result = transfer.get();
    auto finished = Clock::now();
    std::cout << "[ transfer ] " << rounds << " round(s) of attacks in "
              << Millis(attack_end - attack_start) << " ms, " << rounds_in_flight
              << " of them finished with the transfer still running; they began at byte " << at_start
              << " and the last ended at byte " << at_end << "; the transfer took " << Millis(finished - started)
              << " ms\n";
    if (finished - started > 10s) {
      std::cout << "[ transfer ] slow transfer; master log:\n" << MasterLog();
    }
    EXPECT_TRUE(at_start > 0 && running_at_start) << "the attacks did not start while the transfer ran";
    EXPECT_EQ(result.exit_code, 0) << result.out << result.err;
    EXPECT_THAT(result.out, HasSubstr("ssh=0")) << result.err;
    EXPECT_THAT(result.out, HasSubstr("SAME")) << "the transfer was damaged: " << result.out << result.err;

    auto alive = Run({"lab", "echo alive"});
    EXPECT_EQ(alive.exit_code, 0) << alive.err;
    EXPECT_EQ(alive.out, "alive\n");
    auto check = Run({"-O", "check", "lab"});
    EXPECT_EQ(check.exit_code, 0) << check.err;
    EXPECT_THAT(check.err, HasSubstr("Master running (pid=" + std::to_string(master_) + ")"));
    EXPECT_EQ(lab_->MasterPid(), master_) << "the master was replaced";
    ExpectNothingLeaked();
  }

  // Times one attack and checks the master is still the same process after it.
  void Timed(const std::string& name, const std::function<void()>& attack) {
    SCOPED_TRACE(name);
    auto start = Clock::now();
    attack();
    if (round_ == 0) std::cout << "[ attack   ] " << name << ": " << Millis(Clock::now() - start) << " ms\n";
    ExpectMasterServes("after " + name);
  }

  static constexpr int kMaxRounds = 100;

  std::unique_ptr<MconnectLab> lab_;
  std::string socket_;
  pid_t master_ = 0;
  int master_fds_ = 0;
  int round_ = 0;
  std::mt19937 random_{20240601};
};

}  // namespace mconnect::testing::robustness
