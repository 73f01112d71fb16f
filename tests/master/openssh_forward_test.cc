// The forwards OpenSSH 9.2 clients ask the master for beyond plain TCP ports: Unix sockets on
// either side (-L path:host:port, -L port:path, -L path:path, -R port:path, -R path:...) and
// remote dynamic forwarding (-R [bind:]port: SOCKS served here for connections made on the
// server), each with -O forward and -O cancel, and as given when a session starts. The
// lab's server is this machine, so a path or port "on the server" is reachable from the test.
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/master/openssh_mux_fixture.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

class OpenSshForwardTest : public OpenSshMuxTest {
 protected:
  void SetUp() override {
    OpenSshMuxTest::SetUp();
    if (!lab_) return;
    www_ = lab_->dir().Sub("www");
    ::mkdir(www_.c_str(), 0700);
  }

  std::string www_;
};

// GET /index.html from an HTTP server on a Unix socket, by curl.
CommandOutput FetchUnix(const std::string& path) {
  CommandOptions options;
  options.timeout = 20s;
  auto result = RunCommand(
      {"curl", "-sS", "--max-time", "10", "--unix-socket", path, "http://localhost/index.html"}, options);
  return result ? *result : CommandOutput{};
}

bool Exists(const std::string& path) {
  struct stat st{};
  return ::lstat(path.c_str(), &st) == 0;
}

// Waits up to 5 s for `gone` to hold: a cancelled remote listener goes once the server has heard.
template <typename Predicate>
bool Eventually(Predicate gone) {
  for (int i = 0; i < 50; ++i) {
    if (gone()) return true;
    std::this_thread::sleep_for(100ms);
  }
  return gone();
}

TEST_F(OpenSshForwardTest, LocalForwardsFromAndToUnixSockets) {
  HttpServer tcp(www_);
  ASSERT_TRUE(tcp.ready());
  std::string remote_path = lab_->dir().Sub("remote-http.sock");  // "on the server"
  HttpServer unix_http(www_, remote_path);
  ASSERT_TRUE(unix_http.ready());

  // -L path:host:port: a Unix socket here, a TCP destination there.
  std::string from_path = lab_->dir().Sub("l-path-port.sock");
  std::string spec1 = from_path + ":127.0.0.1:" + std::to_string(tcp.port());
  auto opened = Run({"-O", "forward", "-L", spec1, "lab"});
  ASSERT_EQ(opened.exit_code, 0) << opened.err;
  struct stat st{};
  ASSERT_EQ(::lstat(from_path.c_str(), &st), 0) << "the master listens at " << from_path;
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "StreamLocalBindMask's default 0177, as ssh";
  auto got = FetchUnix(from_path);
  EXPECT_EQ(got.out, "mconnect-forward-ok\n") << got.err;

  // -L port:path: a TCP port here, a Unix socket there (direct-streamlocal).
  int port = FreeTcpPort();
  std::string spec2 = "127.0.0.1:" + std::to_string(port) + ":" + remote_path;
  opened = Run({"-O", "forward", "-L", spec2, "lab"});
  ASSERT_EQ(opened.exit_code, 0) << opened.err;
  got = Fetch("", port, 0);
  EXPECT_EQ(got.out, "mconnect-forward-ok\n") << got.err;

  // -L path:path.
  std::string both_path = lab_->dir().Sub("l-path-path.sock");
  std::string spec3 = both_path + ":" + remote_path;
  opened = Run({"-O", "forward", "-L", spec3, "lab"});
  ASSERT_EQ(opened.exit_code, 0) << opened.err;
  for (int i = 0; i < 3; ++i) {
    got = FetchUnix(both_path);
    EXPECT_EQ(got.out, "mconnect-forward-ok\n") << got.err;
  }

  // -O cancel: the listener goes, and with it the socket file the master made.
  for (const auto& spec : {spec1, spec2, spec3}) {
    auto cancel = Run({"-O", "cancel", "-L", spec, "lab"});
    EXPECT_EQ(cancel.exit_code, 0) << spec << ": " << cancel.err;
  }
  EXPECT_FALSE(Exists(from_path)) << "cancelled: " << from_path << " is removed";
  EXPECT_FALSE(Exists(both_path)) << "cancelled: " << both_path << " is removed";
  EXPECT_NE(Fetch("", port, 0).exit_code, 0) << "the port is closed after -O cancel";
  EXPECT_EQ(FetchUnix(remote_path).out, "mconnect-forward-ok\n") << "the destination socket is not touched";

  // A master that exits takes its socket files with it.
  opened = Run({"-O", "forward", "-L", spec1, "lab"});
  ASSERT_EQ(opened.exit_code, 0) << opened.err;
  ASSERT_TRUE(Exists(from_path));
  auto exited = Run({"-O", "exit", "lab"});
  EXPECT_EQ(exited.exit_code, 0) << exited.err;
  EXPECT_TRUE(Eventually([&] { return !Exists(from_path); })) << from_path << " is removed when the master exits";
}

TEST_F(OpenSshForwardTest, UnixListenPathThatExistsIsRefusedAndKept) {
  // StreamLocalBindUnlink's default (no): ssh fails the forward rather than remove a file.
  HttpServer tcp(www_);
  ASSERT_TRUE(tcp.ready());
  std::string path = lab_->dir().Sub("taken.sock");
  std::ofstream(path) << "someone's file\n";
  auto opened = Run({"-O", "forward", "-L", path + ":127.0.0.1:" + std::to_string(tcp.port()), "lab"});
  EXPECT_NE(opened.exit_code, 0) << "a forward on an existing path fails";
  EXPECT_THAT(opened.err, HasSubstr("Address already in use"));
  EXPECT_EQ(ReadFile(path).value_or(""), "someone's file\n") << "the file is kept as it was";

  auto alive = Run({"-O", "check", "lab"});
  EXPECT_EQ(alive.exit_code, 0) << "the master goes on: " << alive.err;
}

TEST_F(OpenSshForwardTest, RemoteForwardToALocalUnixSocket) {
  std::string local_path = lab_->dir().Sub("local-http.sock");
  HttpServer unix_http(www_, local_path);
  ASSERT_TRUE(unix_http.ready());
  int port = FreeTcpPort();
  std::string spec = "127.0.0.1:" + std::to_string(port) + ":" + local_path;
  auto opened = Run({"-O", "forward", "-R", spec, "lab"});
  ASSERT_EQ(opened.exit_code, 0) << opened.err;
  for (int i = 0; i < 3; ++i) {
    auto got = Fetch("", port, 0);
    EXPECT_EQ(got.out, "mconnect-forward-ok\n") << got.err;
  }
  auto cancel = Run({"-O", "cancel", "-R", spec, "lab"});
  EXPECT_EQ(cancel.exit_code, 0) << cancel.err;
  EXPECT_TRUE(Eventually([&] { return Fetch("", port, 0).exit_code != 0; })) << "the server stops listening";
}

TEST_F(OpenSshForwardTest, ServerSideUnixListenerIsRefusedWithItsReason) {
  // -R PATH:... asks the server to listen on a Unix socket (streamlocal-forward@openssh.com), a
  // global request libssh2 cannot send: one line that says so, and the master goes on.
  std::string path = lab_->dir().Sub("server-side.sock");
  for (const std::string& spec : {path + ":127.0.0.1:80", path + ":" + lab_->dir().Sub("local.sock")}) {
    auto opened = Run({"-O", "forward", "-R", spec, "lab"});
    EXPECT_NE(opened.exit_code, 0) << spec;
    EXPECT_THAT(opened.err, HasSubstr("streamlocal-forward@openssh.com")) << spec;
    EXPECT_FALSE(Exists(path));
  }
  auto alive = Run({"-O", "check", "lab"});
  EXPECT_EQ(alive.exit_code, 0) << "the master goes on: " << alive.err;
}

TEST_F(OpenSshForwardTest, RemoteDynamicForwardServesSocksHere) {
  HttpServer tcp(www_);
  ASSERT_TRUE(tcp.ready());
  int port = FreeTcpPort();
  std::string spec = "127.0.0.1:" + std::to_string(port);
  auto opened = Run({"-O", "forward", "-R", spec, "lab"});
  ASSERT_EQ(opened.exit_code, 0) << opened.err;
  for (std::string proxy : {"--socks5", "--socks5-hostname", "--socks4", "--socks4a"}) {
    auto got = Fetch(proxy, port, tcp.port());
    EXPECT_EQ(got.exit_code, 0) << proxy << ": " << got.err;
    EXPECT_EQ(got.out, "mconnect-forward-ok\n") << proxy;
  }
  // A destination nobody listens on: the SOCKS client hears the refusal, the master goes on.
  auto refused = Fetch("--socks5-hostname", port, FreeTcpPort());
  EXPECT_NE(refused.exit_code, 0);
  // Not SOCKS at all: that connection is closed without an answer, and the next one works.
  CommandOptions options;
  options.timeout = 20s;
  auto garbage = RunCommand({"bash", "-c",
                             "exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(port) +
                                 " && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3 && echo closed"},
                            options);
  ASSERT_TRUE(garbage) << garbage.error().message;
  EXPECT_EQ(garbage->out, "closed\n") << garbage->err;
  EXPECT_EQ(Fetch("--socks5-hostname", port, tcp.port()).out, "mconnect-forward-ok\n");
  auto cancel = Run({"-O", "cancel", "-R", spec, "lab"});
  EXPECT_EQ(cancel.exit_code, 0) << cancel.err;
  EXPECT_TRUE(Eventually([&] { return Fetch("--socks5", port, tcp.port()).exit_code != 0; }))
      << "the server stops listening";
}

TEST_F(OpenSshForwardTest, ForwardsGivenWhenASessionStarts) {
  // ssh sends its -L/-R before the session: the command on the server uses them at once.
  HttpServer tcp(www_);
  ASSERT_TRUE(tcp.ready());
  std::string path = lab_->dir().Sub("session.sock");
  int socks = FreeTcpPort();
  std::string url = "http://127.0.0.1:" + std::to_string(tcp.port()) + "/index.html";
  auto result = Run({"-L", path + ":127.0.0.1:" + std::to_string(tcp.port()), "-R", std::to_string(socks), "lab",
                     "curl -sS --max-time 10 --unix-socket " + path + " http://localhost/index.html && "
                     "curl -sS --max-time 10 --socks5-hostname 127.0.0.1:" + std::to_string(socks) + " " + url});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "mconnect-forward-ok\nmconnect-forward-ok\n") << result.err;
}

}  // namespace
}  // namespace mconnect::testing
