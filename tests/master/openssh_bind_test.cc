// Where the master listens for -L and -D, as ssh does (channels.c): with no bind address (or
// "localhost") on both loopback addresses, 127.0.0.1 and ::1; a port another program holds on one
// of them is no error while the other binds, and only when none binds does the client hear why,
// in one line. -R with no bind address asks the server for "localhost", which sshd (GatewayPorts
// no) serves on both of its loopbacks too. Real OpenSSH clients, curl over each family.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/unique_fd.h"
#include "tests/support/mconnect_lab.h"
#include "tests/support/require.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

// A listening TCP socket of this test's on the loopback address of `family` (IPv6 only for
// AF_INET6), holding `port` so that the master cannot bind it there. Empty when it cannot.
UniqueFd HoldPort(int family, int port) {
  UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return fd;
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  int rc = -1;
  if (family == AF_INET6) {
    ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    sockaddr_in6 address{};
    address.sin6_family = AF_INET6;
    address.sin6_addr = in6addr_loopback;
    address.sin6_port = htons(static_cast<std::uint16_t>(port));
    rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address);
  } else {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address);
  }
  if (rc != 0 || ::listen(fd.get(), 4) != 0) return UniqueFd();
  return fd;
}

bool HaveIpv6Loopback() { return static_cast<bool>(HoldPort(AF_INET6, 0)); }

class OpenSshBindTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // ssh binds ::1 whenever the machine has it; a machine without it cannot show the second family.
    MCONNECT_REQUIRE(HaveIpv6Loopback(), "needs IPv6 on the loopback interface (::1)");
    auto lab = MconnectLab::StartWithMaster();
    ASSERT_TRUE(lab) << lab.error().message;
    lab_ = std::move(*lab);
    std::string root = lab_->dir().Sub("www");
    ::mkdir(root.c_str(), 0700);
    http_ = std::make_unique<HttpServer>(root);
    ASSERT_TRUE(http_->ready());
  }

  void TearDown() override {
    if (lab_) {
      EXPECT_EQ(lab_->sshd().CountInLog("Accepted publickey"), 1)
          << "an OpenSSH client made its own connection instead of using the master";
    }
  }

  CommandOutput Ssh(const std::vector<std::string>& args) const {
    std::vector<std::string> argv{"ssh", "-F", lab_->sshd().ssh_config(), "-S", lab_->SocketPath(),
                                  "-o", "ControlMaster=no"};
    argv.insert(argv.end(), args.begin(), args.end());
    CommandOptions options;
    options.timeout = 30s;
    auto result = RunCommand(lab_->env().Command(argv), options);
    EXPECT_TRUE(result) << result.error().message;
    return result ? *result : CommandOutput{};
  }

  // curl of the lab's page at HOST:PORT, directly or (`socks`) through a SOCKS5 proxy there.
  CommandOutput Fetch(const std::string& host, int port, bool socks = false) const {
    std::string at = host + ":" + std::to_string(port);
    std::vector<std::string> argv{"curl", "-sS", "-g", "--max-time", "10"};
    if (socks) {
      argv.insert(argv.end(), {"--socks5-hostname", at, "http://127.0.0.1:" + std::to_string(http_->port()) +
                                                            "/index.html"});
    } else {
      argv.push_back("http://" + at + "/index.html");
    }
    CommandOptions options;
    options.timeout = 20s;
    auto result = RunCommand(argv, options);
    return result ? *result : CommandOutput{};
  }

  void ExpectServedOn(const std::string& host, int port, bool socks = false) const {
    auto got = Fetch(host, port, socks);
    EXPECT_EQ(got.exit_code, 0) << host << ":" << port << ": " << got.err << "\nmaster log:\n" << lab_->MasterLog();
    EXPECT_EQ(got.out, "mconnect-forward-ok\n") << host << ":" << port;
  }

  std::string LocalSpec(int port) const {
    return std::to_string(port) + ":127.0.0.1:" + std::to_string(http_->port());
  }

  std::unique_ptr<MconnectLab> lab_;
  std::unique_ptr<HttpServer> http_;
};

TEST_F(OpenSshBindTest, LocalForwardWithoutAddressListensOnBothLoopbacks) {
  int port = FreeTcpPort();
  auto forward = Ssh({"-O", "forward", "-L", LocalSpec(port), "lab"});
  ASSERT_EQ(forward.exit_code, 0) << forward.err;
  ExpectServedOn("127.0.0.1", port);
  ExpectServedOn("[::1]", port);
  // "localhost" names both as well; cancel stops both.
  int named = FreeTcpPort();
  std::string spec = "localhost:" + LocalSpec(named);
  ASSERT_EQ(Ssh({"-O", "forward", "-L", spec, "lab"}).exit_code, 0);
  ExpectServedOn("[::1]", named);
  ExpectServedOn("127.0.0.1", named);
  auto cancel = Ssh({"-O", "cancel", "-L", spec, "lab"});
  EXPECT_EQ(cancel.exit_code, 0) << cancel.err;
  EXPECT_NE(Fetch("127.0.0.1", named).exit_code, 0) << "127.0.0.1 still listens after -O cancel";
  EXPECT_NE(Fetch("[::1]", named).exit_code, 0) << "::1 still listens after -O cancel";
}

TEST_F(OpenSshBindTest, LocalForwardOfASessionListensOnBothLoopbacks) {
  // `ssh -L` with a command: the client asks for the forward, then the session; the forward stays
  // in the master after the session, as with OpenSSH's master.
  int port = FreeTcpPort();
  auto session = Ssh({"-L", LocalSpec(port), "lab", "echo session-ran"});
  ASSERT_EQ(session.exit_code, 0) << session.err;
  EXPECT_EQ(session.out, "session-ran\n");
  ExpectServedOn("[::1]", port);
  ExpectServedOn("127.0.0.1", port);
}

TEST_F(OpenSshBindTest, DynamicForwardWithoutAddressListensOnBothLoopbacks) {
  int port = FreeTcpPort();
  auto forward = Ssh({"-O", "forward", "-D", std::to_string(port), "lab"});
  ASSERT_EQ(forward.exit_code, 0) << forward.err;
  ExpectServedOn("127.0.0.1", port, true);
  ExpectServedOn("[::1]", port, true);
}

TEST_F(OpenSshBindTest, APortTakenOnOneFamilyIsServedOnTheOther) {
  int v6_taken = FreeTcpPort();
  UniqueFd hold6 = HoldPort(AF_INET6, v6_taken);
  ASSERT_TRUE(hold6) << "cannot hold [::1]:" << v6_taken;
  auto forward = Ssh({"-O", "forward", "-L", LocalSpec(v6_taken), "lab"});
  ASSERT_EQ(forward.exit_code, 0) << forward.err;
  ExpectServedOn("127.0.0.1", v6_taken);

  int v4_taken = FreeTcpPort();
  UniqueFd hold4 = HoldPort(AF_INET, v4_taken);
  ASSERT_TRUE(hold4) << "cannot hold 127.0.0.1:" << v4_taken;
  forward = Ssh({"-O", "forward", "-D", std::to_string(v4_taken), "lab"});
  ASSERT_EQ(forward.exit_code, 0) << forward.err;
  ExpectServedOn("[::1]", v4_taken, true);
}

TEST_F(OpenSshBindTest, APortTakenOnBothFamiliesIsOneClearError) {
  int port = FreeTcpPort();
  UniqueFd hold4 = HoldPort(AF_INET, port);
  UniqueFd hold6 = HoldPort(AF_INET6, port);
  ASSERT_TRUE(hold4 && hold6) << "cannot hold port " << port;
  auto forward = Ssh({"-O", "forward", "-L", LocalSpec(port), "lab"});
  EXPECT_NE(forward.exit_code, 0);
  // ssh prints the master's reason after "forwarding request failed: ": all of it on that line.
  const std::string lead = "forwarding request failed: ";
  auto at = forward.err.find(lead);
  ASSERT_NE(at, std::string::npos) << forward.err;
  std::string reason = forward.err.substr(at + lead.size(), forward.err.find_first_of("\r\n", at) - at - lead.size());
  EXPECT_THAT(reason, HasSubstr("cannot listen on localhost port " + std::to_string(port))) << forward.err;
  EXPECT_THAT(reason, HasSubstr("127.0.0.1: Address already in use")) << forward.err;
  EXPECT_THAT(reason, HasSubstr("::1: Address already in use")) << forward.err;
  // The master goes on serving.
  auto after = Ssh({"lab", "echo still-served"});
  EXPECT_EQ(after.out, "still-served\n") << after.err;
}

TEST_F(OpenSshBindTest, RemoteForwardWithoutAddressIsServedOnBothServerLoopbacks) {
  // ssh asks the server for "localhost" when -R names no address; sshd listens on both families.
  auto allocated = Ssh({"-O", "forward", "-R", "0:127.0.0.1:" + std::to_string(http_->port()), "lab"});
  ASSERT_EQ(allocated.exit_code, 0) << allocated.err;
  int port = std::atoi(allocated.out.c_str());
  ASSERT_GT(port, 0) << "stdout: " << allocated.out << " stderr: " << allocated.err;
  ExpectServedOn("127.0.0.1", port);  // the lab's server is this machine
  ExpectServedOn("[::1]", port);
}

}  // namespace
}  // namespace mconnect::testing
