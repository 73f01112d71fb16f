// Clients of the master's socket that send what the protocols allow but nobody sensible would:
// numbers at their type limits, fds several to a message, fds that cannot be polled, frames
// begun and never finished, relays for pid 0, commands longer than an SSH packet. Each must
// cost that client its request or its connection, with a clear answer where there is someone to
// read it; the master keeps its pid, gives back every fd, never spins, and never sends an
// OpenSSH client to a direct login (sshd's log counts one authentication, the master's).
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <iostream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "proto/client.h"
#include "tests/hardening/hardening.h"
#include "tests/support/mux_socket.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::AnyOf;
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;
namespace ossh = mux::openssh;

class HostileClientsTest : public HardeningTest {
 protected:
  void SetUp() override {
    HardeningTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_TRUE(StartMaster(*lab_));
    master_ = lab_->MasterPid();
    ASSERT_GT(master_, 0);
    baseline_fds_ = SettledFds();
  }

  void TearDown() override {
    if (lab_ && master_ > 0) {
      EXPECT_EQ(lab_->MasterPid(), master_) << "the master died or was replaced";
      EXPECT_EQ(lab_->sshd().CountInLog("Accepted publickey"), 1) << "a client logged in directly";
    }
    HardeningTest::TearDown();
  }

  // The fewest fds the master holds over a moment (connections of earlier calls may be closing).
  int SettledFds() {
    int fewest = FdCount(master_);
    for (int i = 0; i < 10; ++i) {
      std::this_thread::sleep_for(30ms);
      fewest = std::min(fewest, FdCount(master_));
    }
    return fewest;
  }

  // The master is back to the fds it held before the test's clients came.
  bool FdsBackToBaseline() {
    return Eventually([&] { return FdCount(master_) <= baseline_fds_; }, Scaled(15s));
  }

  template <typename Reply>
  Result<Reply> Call(proto::MessageType type, const google::protobuf::MessageLite& request, proto::MessageType reply_type,
                     std::chrono::milliseconds timeout) {
    auto client = proto::ControlClient::Connect(lab_->SocketPath(), Scaled(5s));
    if (!client) return Fail(client.error());
    return client->template Call<Reply>(type, request, reply_type, timeout);
  }

  // A mux client that said HELLO and got the master's.
  std::unique_ptr<MuxSocket> Hello() {
    auto client = std::make_unique<MuxSocket>(lab_->SocketPath());
    if (!client->valid() || !client->Send(kOpenSshHello) || !client->ReadFrame(Scaled(5s))) return nullptr;
    return client;
  }

  pid_t master_ = 0;
  int baseline_fds_ = 0;
};

// ---- numbers at their limits (control protocol) ------------------------------------------------

TEST_F(HostileClientsTest, StartMoshServerWithEveryNumberAtItsLimitIsAnsweredAtOnce) {
  control::StartMoshServerRequest request;
  request.set_verbose(0x7FFFFFFF);
  request.set_colors(0xFFFFFFFF);
  request.set_timeout_ms(0xFFFFFFFF);
  request.add_locale("LANG=C.UTF-8");
  // Growth, not a size: under AddressSanitizer an idle master is already ~60 MiB (shadow memory).
  const long before = RssKib(master_);
  const auto asked = Clock::now();
  auto reply = Call<control::StartMoshServerReply>(proto::MessageType::kStartMoshServer, request,
                                                   proto::MessageType::kStartMoshServerReply, Scaled(10s));
  const auto took = Clock::now() - asked;
  ASSERT_FALSE(reply) << "a request with verbose 2147483647 started a mosh-server";
  EXPECT_THAT(reply.error().message, HasSubstr("verbose"));
  EXPECT_LT(took, Scaled(5s)) << "the master took its time over a hostile count";
  EXPECT_LT(RssKib(master_) - before, 16 * 1024) << "the master grew on a hostile count";

  // Words within their caps whose quoting makes a line too long for one SSH packet.
  control::StartMoshServerRequest quoted;
  quoted.add_locale("LANG=C.UTF-8");
  quoted.add_command(std::string(32000, '\''));
  auto refused = Call<control::StartMoshServerReply>(proto::MessageType::kStartMoshServer, quoted,
                                                     proto::MessageType::kStartMoshServerReply, Scaled(10s));
  ASSERT_FALSE(refused);
  EXPECT_THAT(refused.error().message, HasSubstr("fit one SSH packet"));
}

TEST_F(HostileClientsTest, ExecAndDiscoverIpBoundWhatTheyAreAskedFor) {
  control::ExecRequest exec;
  exec.set_command("echo bounded");
  exec.set_timeout_ms(0xFFFFFFFF);
  exec.set_max_output(0xFFFFFFFF);
  auto ran = Call<control::ExecReply>(proto::MessageType::kExec, exec, proto::MessageType::kExecReply, Scaled(20s));
  ASSERT_TRUE(ran) << ran.error().message;
  EXPECT_EQ(ran->stdout(), "bounded\n");

  // Ten thousand strategies, each allowed 49 days: refused at once, not run one after another.
  control::DiscoverIpRequest discover;
  for (int i = 0; i < 10000; ++i) discover.add_strategies("static:192.0.2.1");
  discover.set_timeout_ms(0xFFFFFFFF);
  const auto asked = Clock::now();
  auto found = Call<control::DiscoverIpReply>(proto::MessageType::kDiscoverIp, discover,
                                              proto::MessageType::kDiscoverIpReply, Scaled(10s));
  ASSERT_FALSE(found) << "10000 strategies were accepted";
  EXPECT_THAT(found.error().message, HasSubstr("strategies"));
  EXPECT_LT(Clock::now() - asked, Scaled(5s));
}

// ---- relays ------------------------------------------------------------------------------------

// A relay watches mosh-server's pid to know when to end: pid 0 (kill(0, 0) asks about the whole
// process group) and pids past the kernel's range never end, and 0xFFFFFFFF is kill(-1, ...).
TEST_F(HostileClientsTest, RelaysForPidsThatCannotBeMoshServersAreRefused) {
  for (std::uint32_t pid : {0u, 1u, 0x7FFFFFFFu, 0xFFFFFFFFu}) {
    control::StartRelayRequest request;
    request.set_port(60001);
    request.set_server_pid(pid);
    auto reply = Call<control::StartRelayReply>(proto::MessageType::kStartRelay, request,
                                                proto::MessageType::kStartRelayReply, Scaled(20s));
    ASSERT_FALSE(reply) << "a relay for pid " << pid << " was started";
    EXPECT_THAT(reply.error().message, HasSubstr("pid")) << pid;
  }
  for (std::uint32_t port : {0u, 65536u, 0xFFFFFFFFu}) {
    control::StartRelayRequest request;
    request.set_port(port);
    request.set_server_pid(4242);
    auto reply = Call<control::StartRelayReply>(proto::MessageType::kStartRelay, request,
                                                proto::MessageType::kStartRelayReply, Scaled(20s));
    ASSERT_FALSE(reply) << "a relay for port " << port << " was started";
    EXPECT_THAT(reply.error().message, HasSubstr("port")) << port;
  }
  auto status = StatusOf(*lab_, Scaled(5s));
  ASSERT_TRUE(status) << status.error().message;
  EXPECT_EQ(status->relays(), 0u);
}

// ---- OpenSSH clients ---------------------------------------------------------------------------

// libssh2 sends packets of at most 35000 bytes: a longer command cannot go. The client hears so,
// on its own stderr, and does not fall back to logging in by itself.
TEST_F(HostileClientsTest, CommandLongerThanAnSshPacketIsRefusedWithAMessage) {
  const std::string command = "echo " + std::string(120 * 1024, 'x');
  const std::string script = SshLine({"lab"}) + " \"$(cat)\"";  // the command, 120 KiB (one argument may hold 128), from stdin
  CommandOptions options;
  options.timeout = Scaled(30s);
  options.input = command;
  auto result = RunCommand(ShellCommand(script), options);
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result->exit_code, 255) << result->err;
  EXPECT_THAT(result->err, HasSubstr("too long"));
  EXPECT_THAT(result->out, ::testing::Not(HasSubstr("xxxxxxxx")));
}

// OpenSSH passes one fd per message; the kernel lets a client pass up to 253. Each fd the kernel
// installed is the master's to close, whatever the message.
TEST_F(HostileClientsTest, FdsPassedSeveralToAMessageAreNeverLeaked) {
  std::vector<Pipe> lent;
  for (int round = 0; round < 100; ++round) {
    auto client = Hello();
    ASSERT_TRUE(client) << "no HELLO from the master";
    ASSERT_TRUE(client->Send(EncodeMux(MuxSessionRequest(1, "cat"))));
    Pipe pipe = MakePipe();
    ASSERT_TRUE(pipe.read && pipe.write);
    // 3 at once (stdin, stdout, stderr), or 8, or 200 in one message.
    const int count = round % 3 == 0 ? 3 : round % 3 == 1 ? 8 : 200;
    std::vector<int> fds(static_cast<std::size_t>(count), pipe.write.get());
    fds[0] = pipe.read.get();
    ASSERT_TRUE(client->SendFds(fds)) << client->error();
    // Either it runs (3: as one message or three, the same session) or the client is dropped.
    if (count == 3) {
      auto opened = client->ReadFrame(Scaled(10s));
      ASSERT_TRUE(opened) << client->error();
    } else {
      EXPECT_TRUE(client->ClosedWithin(Scaled(10s))) << count << " fds in one message were accepted";
    }
    lent.push_back(std::move(pipe));
  }
  EXPECT_TRUE(FdsBackToBaseline()) << "the master holds " << FdCount(master_) << " fds, " << baseline_fds_
                                   << " before:\n"
                                   << FdListing(master_);
}

// An fd that poll() calls invalid (O_PATH) must end that client, not make the loop spin.
TEST_F(HostileClientsTest, AnUnpollableLentFdEndsThatClientWithoutSpinning) {
  auto client = Hello();
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->Send(EncodeMux(MuxSessionRequest(1, "sleep 30"))));
  UniqueFd path(::open("/", O_PATH | O_CLOEXEC));
  ASSERT_TRUE(path);
  const double cpu_before = CpuSeconds(master_);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(client->SendFd(path.get())) << client->error();
  EXPECT_TRUE(client->ClosedWithin(Scaled(10s))) << "the client with an O_PATH stdin is still served";
  std::this_thread::sleep_for(2s);
  const double cpu = CpuSeconds(master_) - cpu_before;
  std::cout << "[ measured ] master CPU while it held an O_PATH fd: " << cpu << " s\n";
  EXPECT_LT(cpu, 0.5) << "the master's loop spun on an invalid fd";
  EXPECT_TRUE(FdsBackToBaseline());
}

// Every accepted client has a deadline for its handshake and for each frame it begins, as the
// control protocol's Hello has; a client idle between whole frames keeps its place.
TEST_F(HostileClientsTest, HalfOpenClientsAreReclaimed) {
  auto session = EncodeMux(MuxSessionRequest(1, "echo never-run"));
  std::vector<std::unique_ptr<MuxSocket>> half_open;
  std::vector<Pipe> unlent;
  for (int i = 0; i < 200; ++i) {
    auto client = std::make_unique<MuxSocket>(lab_->SocketPath());
    ASSERT_TRUE(client->valid()) << client->error();
    switch (i % 4) {
      case 0:  // OpenSSH's HELLO header, and no more
        ASSERT_TRUE(client->Send(std::span(kOpenSshHello).first(8)));
        break;
      case 1:  // HELLO, then half a NEW_SESSION
        ASSERT_TRUE(client->Send(kOpenSshHello));
        ASSERT_TRUE(client->Send(std::span(session).first(session.size() / 2)));
        break;
      case 2: {  // HELLO, NEW_SESSION, one of its three fds
        ASSERT_TRUE(client->Send(kOpenSshHello));
        ASSERT_TRUE(client->Send(session));
        Pipe pipe = MakePipe();
        ASSERT_TRUE(client->SendFd(pipe.read.get()));
        unlent.push_back(std::move(pipe));
        break;
      }
      case 3: {  // the control protocol's Hello, then half a frame
        std::vector<std::uint8_t> hello;
        control::Hello message;
        message.set_version(proto::kProtocolVersion);
        ASSERT_TRUE(proto::AppendFrame(hello, proto::MessageType::kHello, message));
        hello.insert(hello.end(), {0x00, 0x00, 0x01, 0x00, 0x6d});
        ASSERT_TRUE(client->Send(hello));
        break;
      }
    }
    half_open.push_back(std::move(client));
  }
  // And one that finished its HELLO and then sits quietly: it stays.
  auto idle = Hello();
  ASSERT_TRUE(idle);

  int reclaimed = 0;
  const auto start = Clock::now();
  const auto deadline = start + Scaled(40s);
  for (auto& client : half_open) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    reclaimed += client->ClosedWithin(std::max(left, 1ms));
  }
  std::cout << "[ measured ] " << reclaimed << " of 200 half-open clients reclaimed after "
            << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count() << " ms\n";
  EXPECT_EQ(reclaimed, 200);
  ASSERT_TRUE(idle->Send(EncodeMux(ossh::AliveCheck{7})));
  auto alive = idle->ReadFrame(Scaled(5s));
  EXPECT_TRUE(alive) << "a client idle after its HELLO was dropped: " << idle->error();
  half_open.clear();
  idle.reset();
  EXPECT_TRUE(FdsBackToBaseline()) << FdListing(master_);
}

}  // namespace
}  // namespace mconnect::testing
