// The master out of file descriptors: its RLIMIT_NOFILE lowered (prlimit on its pid) to just
// above what it holds with a control client and a live `ssh -S` session. New clients are then
// refused with a message (a control client reads it; the master logs each refusal), the master
// does not spin on the listening socket it cannot accept from (its CPU time over seconds of
// refusals), the clients it already has keep working, and once fds are free it serves again.
//
// And its connection lost while it is out of fds: the reconnect attempts that cannot even open a
// socket fail like a network that is away (the master neither aborts nor gives up for a person),
// and once fds are free it reconnects by itself.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/unique_fd.h"
#include "mux/fd_budget/fd_budget.h"
#include "proto/client.h"
#include "tests/hardening/hardening.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;
using Clock = std::chrono::steady_clock;

// Writes `line` to the session's stdin and reads until it comes back (the remote `cat`).
bool Echoes(int to_session, int from_session, const std::string& line, std::chrono::milliseconds timeout) {
  if (::write(to_session, line.data(), line.size()) != static_cast<ssize_t>(line.size())) return false;
  std::string got;
  for (auto deadline = Clock::now() + timeout; Clock::now() < deadline && got.find(line) == std::string::npos;) {
    pollfd pfd{from_session, POLLIN, 0};
    if (::poll(&pfd, 1, 50) <= 0) continue;
    char buffer[4096];
    ssize_t n = ::read(from_session, buffer, sizeof buffer);
    if (n <= 0) return false;
    got.append(buffer, static_cast<std::size_t>(n));
  }
  return got.find(line) != std::string::npos;
}

class FdExhaustionTest : public HardeningTest {};

TEST_F(FdExhaustionTest, NewClientsAreRefusedWithAMessageAndServedAgainOnceFdsFree) {
  ASSERT_TRUE(StartMaster(*lab_));
  const pid_t master = lab_->MasterPid();
  ASSERT_GT(master, 0);

  // Clients the master already serves: a control connection and an interactive session.
  auto kept = proto::ControlClient::Connect(lab_->SocketPath(), 5s);
  ASSERT_TRUE(kept) << kept.error().message;
  int to[2], from[2];
  ASSERT_EQ(::pipe2(to, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(from, O_CLOEXEC), 0);
  UniqueFd to_read(to[0]), to_write(to[1]), from_read(from[0]), from_write(from[1]);
  UniqueFd null(::open("/dev/null", O_WRONLY | O_CLOEXEC));
  Spawned session(Ssh({"lab", "cat"}), to_read.get(), from_write.get(), null.get());
  to_read.Reset();
  from_write.Reset();
  ASSERT_TRUE(Echoes(to_write.get(), from_read.get(), "before\n", Scaled(20s))) << "the session never echoed";

  // One Status before the limit: in the sanitizer build, UBSan checks the vptr of a type's first
  // objects by reading memory through a pipe it opens, which fails when no fd is left, and the
  // master aborts on a sound StatusReply (seen). Asked once here, the check is cached.
  auto warm = kept->Call<control::StatusReply>(proto::MessageType::kStatus, control::StatusRequest{},
                                               proto::MessageType::kStatusReply, Scaled(5s));
  ASSERT_TRUE(warm) << warm.error().message;

  // Room for two more clients past the fds the master keeps for itself, no more (the
  // connections of StartMaster and MasterPid have gone).
  std::this_thread::sleep_for(200ms);
  const int held = FdCount(master);
  const rlim_t limit =
      static_cast<rlim_t>(HighestFd(master) + 1 + mux::FdBudget::kReserve + 2 * mux::FdBudget::kClientCost);
  const rlimit lowered{limit, limit};
  ASSERT_EQ(::prlimit(master, RLIMIT_NOFILE, &lowered, nullptr), 0) << std::strerror(errno);

  // New control clients are accepted while there is room, then refused with a message.
  std::vector<proto::ControlClient> filling;
  std::string refusal;
  std::string refusal_hint;
  for (int i = 0; i < 20 && refusal.empty(); ++i) {
    auto client = proto::ControlClient::Connect(lab_->SocketPath(), Scaled(5s));
    if (client) {
      filling.push_back(std::move(*client));
    } else {
      refusal = client.error().message;
      refusal_hint = client.error().hint;
    }
  }
  std::cout << "[ measured ] master held " << held << " fds, limit set to " << limit << "; " << filling.size()
            << " more clients accepted, then: " << refusal << "\n";
  ASSERT_FALSE(refusal.empty()) << "no client was refused at the lowered limit";
  // (A control client costs the master one fd, but is admitted only with room for a session's four.)
  EXPECT_LE(filling.size(), 2 * mux::FdBudget::kClientCost);
  EXPECT_THAT(refusal, HasSubstr("out of file descriptors"));
  EXPECT_FALSE(refusal_hint.empty());
  // (valgrind answers the master's getrlimit with its own figure: there, the limit is not checked.)
  const std::string logged = "refused a new client: out of file descriptors (limit " +
                             (std::getenv("MCONNECT_HARDENING_MUX") ? "" : std::to_string(limit) + ",");
  EXPECT_TRUE(Eventually([&] { return MasterLog(*lab_).find(logged) != std::string::npos; }, 5s))
      << "not in the master's log: " << logged;

  // An OpenSSH client hears it too, and does not hang: `-O check` is answered (it costs the
  // master nothing), a session ends at once with 255 and the reason on its stderr. Never a
  // FAILURE or a closed socket: OpenSSH's client would take either as "no master" and log in by
  // itself: sshd's authentications are counted at the end).
  CommandOptions quick;
  quick.timeout = Scaled(15s);
  auto check = RunCommand(Ssh({"-O", "check", "lab"}), quick);
  ASSERT_TRUE(check);
  EXPECT_FALSE(check->timed_out);
  EXPECT_THAT(check->err, HasSubstr("Master running"));
  auto refused_session = RunCommand(Ssh({"lab", "echo never-run"}), quick);
  ASSERT_TRUE(refused_session);
  EXPECT_EQ(refused_session->exit_code, 255) << refused_session->err;
  EXPECT_THAT(refused_session->err, HasSubstr("mconnect: the master for "));
  EXPECT_THAT(refused_session->err, HasSubstr("out of file descriptors"));
  EXPECT_EQ(refused_session->out, "");

  // Refusing does not spin: over 3 s in which a client knocks every 100 ms and one stays queued
  // between knocks, the master uses a small fraction of one CPU.
  const double cpu_before = CpuSeconds(master);
  const auto window_start = Clock::now();
  int refused = 0;
  while (Clock::now() - window_start < 3s) {
    auto knock = proto::ConnectUnix(lab_->SocketPath());
    if (knock) {
      // A control Hello, as the launcher sends first; it is answered with the refusal.
      std::vector<std::uint8_t> hello;
      control::Hello message;
      message.set_version(proto::kProtocolVersion);
      (void)proto::AppendFrame(hello, proto::MessageType::kHello, message);
      (void)!::write(knock->get(), hello.data(), hello.size());
      pollfd pfd{knock->get(), POLLIN, 0};
      refused += ::poll(&pfd, 1, 100) > 0;  // the refusal frame, or the close
    }
  }
  const double cpu = CpuSeconds(master) - cpu_before;
  std::cout << "[ measured ] master CPU " << cpu << " s in 3 s of refusing (" << refused << " knocks answered)\n";
  EXPECT_LT(cpu, 0.5) << "the master spins at its fd limit";
  EXPECT_GT(refused, 10);

  // What it already serves keeps working.
  auto status = kept->Call<control::StatusReply>(proto::MessageType::kStatus, control::StatusRequest{},
                                                 proto::MessageType::kStatusReply, Scaled(2s));
  EXPECT_TRUE(status) << status.error().message;
  EXPECT_TRUE(Echoes(to_write.get(), from_read.get(), "during\n", Scaled(10s))) << "the session stopped echoing";
  EXPECT_TRUE(Eventually([&] { return !ProcessGone(master); }, 0ms));

  // Fds free up: it serves new clients again, OpenSSH sessions included (4 fds each).
  filling.clear();
  EXPECT_TRUE(Eventually([&] { return StatusOf(*lab_, 2s).has_value(); }, Scaled(5s)));
  EXPECT_EQ(lab_->MasterPid(), master);
  auto served = RunCommand(Ssh({"lab", "echo served"}), quick);
  ASSERT_TRUE(served);
  EXPECT_EQ(served->out, "served\n") << served->err;
  to_write.Reset();  // EOF for the remote cat: the session ends
  EXPECT_EQ(session.WaitExit(Scaled(10s)), 0);
  EXPECT_EQ(lab_->sshd().CountInLog("Accepted publickey"), 1) << "a client logged in by itself";
}


TEST_F(FdExhaustionTest, ConnectionLostWhileOutOfFdsIsRetriedAndComesBackOnceFdsFree) {
  ASSERT_TRUE(StartMaster(*lab_));
  const pid_t master = lab_->MasterPid();
  ASSERT_GT(master, 0);
  auto link = [this]() -> std::string {
    auto status = StatusOf(*lab_, Scaled(2s));
    return status ? status->link() + " (" + status->link_detail() + ")" : "(no answer: " + status.error().message + ")";
  };
  auto kept = proto::ControlClient::Connect(lab_->SocketPath(), 5s);
  ASSERT_TRUE(kept) << kept.error().message;
  auto warm = kept->Call<control::StatusReply>(proto::MessageType::kStatus, control::StatusRequest{},
                                               proto::MessageType::kStatusReply, Scaled(5s));
  ASSERT_TRUE(warm) << warm.error().message;

  // The server goes away: the master reconnects at once, then every 1, 2, 4... s.
  lab_->sshd().Stop();
  ASSERT_TRUE(Eventually([&] { return link().starts_with("reconnecting"); }, Scaled(10s))) << link();

  // Between two attempts, every fd it may have is taken: the limit at its highest fd, and the
  // holes below filled with control clients until one is refused.
  std::this_thread::sleep_for(200ms);
  // Only the soft limit: lowering the hard one could not be undone without CAP_SYS_RESOURCE.
  rlimit original{};
  ASSERT_EQ(::prlimit(master, RLIMIT_NOFILE, nullptr, &original), 0) << std::strerror(errno);
  const rlim_t limit = static_cast<rlim_t>(HighestFd(master) + 1);
  const rlimit lowered{limit, original.rlim_max};
  ASSERT_EQ(::prlimit(master, RLIMIT_NOFILE, &lowered, nullptr), 0) << std::strerror(errno);
  std::vector<proto::ControlClient> filling;
  std::string refusal;
  for (int i = 0; i < 40 && refusal.empty(); ++i) {
    auto client = proto::ControlClient::Connect(lab_->SocketPath(), Scaled(5s));
    if (client) {
      filling.push_back(std::move(*client));
    } else {
      refusal = client.error().message;
    }
  }
  ASSERT_THAT(refusal, HasSubstr("out of file descriptors")) << filling.size() << " clients accepted";
  const int failed_before = lab_->CountInMasterLog("; next in ");

  // The server is back, the fds are not: two more attempts (4 to 8, then 8 to 15 s apart) fail,
  // and the master neither dies nor waits for a person.
  ASSERT_TRUE(lab_->sshd().Restart());
  EXPECT_TRUE(Eventually(
      [&] { return ProcessGone(master) || lab_->CountInMasterLog("; next in ") >= failed_before + 2; }, Scaled(40s)))
      << "no new attempts while out of fds";
  ASSERT_FALSE(ProcessGone(master)) << "the master died while out of fds";
  auto during = kept->Call<control::StatusReply>(proto::MessageType::kStatus, control::StatusRequest{},
                                                 proto::MessageType::kStatusReply, Scaled(5s));
  ASSERT_TRUE(during) << during.error().message;
  std::cout << "[ measured ] out of fds after " << filling.size() << " more clients; link " << during->link() << " ("
            << during->link_detail() << ")\n";
  EXPECT_EQ(during->link(), "reconnecting") << during->link_detail();
  EXPECT_THAT(during->link_detail(), HasSubstr("Too many open files"));

  // Fds free up: it reconnects on its own (the next attempt is at most 15 s away) and serves.
  filling.clear();
  ASSERT_EQ(::prlimit(master, RLIMIT_NOFILE, &original, nullptr), 0) << std::strerror(errno);
  EXPECT_TRUE(Eventually([&] { return link().starts_with("up"); }, Scaled(40s))) << link();
  EXPECT_EQ(lab_->MasterPid(), master);
  CommandOptions quick;
  quick.timeout = Scaled(15s);
  auto served = RunCommand(Ssh({"lab", "echo served"}), quick);
  ASSERT_TRUE(served);
  EXPECT_EQ(served->out, "served\n") << served->err;
}

}  // namespace
}  // namespace mconnect::testing
