// X11 forwarding through the master (`ssh -X`/`-Y -S SOCKET`): a real Xvfb on a free display
// number, with its own cookie in an Xauthority file beside the master, a real sshd with
// X11Forwarding and xauth, and X clients (xdpyinfo) run on the server by unchanged OpenSSH
// clients. The server only ever holds a fake cookie: the master puts the real one in place.
#include <sys/stat.h>

#include <filesystem>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/mconnect_lab.h"
#include "tests/support/require.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

bool Have(const std::string& program) {
  auto found = RunCommand({"sh", "-c", "command -v " + program});
  return found && found->ok();
}

class X11ForwardingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MCONNECT_REQUIRE(Have("Xvfb") && Have("xauth") && Have("xdpyinfo"),
                     "needs Xvfb, xauth and xdpyinfo (packages xvfb, xauth, x11-utils)");
    AdoptOrphans();
    auto lab = MconnectLab::Start("X11Forwarding yes\nX11UseLocalhost yes\nXAuthLocation /usr/bin/xauth");
    ASSERT_TRUE(lab) << lab.error().message;
    lab_ = std::move(*lab);
    ASSERT_NO_FATAL_FAILURE(StartXvfb());
    lab_->env().Set("DISPLAY", display_).Set("XAUTHORITY", xauthority_);
    auto started = lab_->Run({"ip", lab_->SshOption(), "lab"});
    ASSERT_TRUE(started && started->ok()) << (started ? started->err : started.error().message);
  }

  void TearDown() override {
    if (lab_) lab_->Cleanup();
    if (xvfb_pid_ > 0) KillPid(xvfb_pid_);
  }

  // A display number nobody uses, an Xauthority file with a cookie for it, and Xvfb serving it
  // with that cookie required (-auth), on its Unix socket only.
  void StartXvfb() {
    int number = -1;
    for (int n = 60 + ::getpid() % 100; n < 260 && number < 0; ++n) {
      if (!std::filesystem::exists("/tmp/.X11-unix/X" + std::to_string(n)) &&
          !std::filesystem::exists("/tmp/.X" + std::to_string(n) + "-lock")) {
        number = n;
      }
    }
    ASSERT_GE(number, 0) << "no free X display number";
    display_ = ":" + std::to_string(number);
    xauthority_ = lab_->dir().Sub("Xauthority");
    auto cookie = RunCommand({"sh", "-c", "od -An -N16 -tx1 /dev/urandom | tr -d ' \\n'"});
    ASSERT_TRUE(cookie && cookie->ok() && cookie->out.size() == 32);
    auto added = RunCommand({"xauth", "-f", xauthority_, "add", display_, "MIT-MAGIC-COOKIE-1", cookie->out});
    ASSERT_TRUE(added && added->ok()) << (added ? added->err : added.error().message);
    auto spawned = RunCommand({"sh", "-c",
                               "Xvfb \"$1\" -screen 0 1234x567x24 -auth \"$2\" -nolisten tcp >\"$3\" 2>&1 & echo $!",
                               "sh", display_, xauthority_, lab_->dir().Sub("xvfb.log")});
    ASSERT_TRUE(spawned && spawned->ok());
    xvfb_pid_ = static_cast<pid_t>(std::stoi(spawned->out));
    std::string socket = "/tmp/.X11-unix/X" + std::to_string(number);
    for (auto deadline = std::chrono::steady_clock::now() + 15s;
         !std::filesystem::exists(socket) && std::chrono::steady_clock::now() < deadline;) {
      std::this_thread::sleep_for(50ms);
    }
    ASSERT_TRUE(std::filesystem::exists(socket)) << "Xvfb did not come up: " << ReadFile(lab_->dir().Sub("xvfb.log")).value_or("");
    // The cookie is required: without it the display refuses.
    auto refused = RunCommand({"env", "DISPLAY=" + display_, "XAUTHORITY=/dev/null", "xdpyinfo"});
    ASSERT_TRUE(refused && !refused->ok()) << "Xvfb let a client in without its cookie";
  }

  CommandOutput Ssh(const std::vector<std::string>& args) const {
    LabEnv env = lab_->env();
    env.Unset("DISPLAY").Unset("XAUTHORITY");  // what is forwarded is the master's display
    CommandOptions options;
    options.timeout = 60s;
    auto result = RunCommand(lab_->SshThroughMaster(env, args), options);
    EXPECT_TRUE(result) << result.error().message;
    return result ? *result : CommandOutput{};
  }

  std::unique_ptr<MconnectLab> lab_;
  std::string display_;
  std::string xauthority_;
  pid_t xvfb_pid_ = 0;
};

TEST_F(X11ForwardingTest, DashXReachesTheLocalDisplay) {
  auto shown = Ssh({"-X", "lab", "echo \"display=[$DISPLAY]\"; xdpyinfo | grep dimensions"});
  EXPECT_EQ(shown.exit_code, 0) << shown.out << shown.err << "\nmaster log:\n" << lab_->MasterLog();
  EXPECT_THAT(shown.out, HasSubstr("display=[localhost:"));
  EXPECT_THAT(shown.out, HasSubstr("1234x567 pixels"));
  // -Y (trusted) takes the same way.
  auto trusted = Ssh({"-Y", "lab", "xdpyinfo | grep dimensions"});
  EXPECT_EQ(trusted.exit_code, 0) << trusted.err;
  EXPECT_THAT(trusted.out, HasSubstr("1234x567 pixels"));
  EXPECT_EQ(lab_->sshd().CountInLog("Accepted publickey"), 1) << "every session went through the master";
}

TEST_F(X11ForwardingTest, TheServerOnlyHoldsAFakeCookie) {
  auto real = RunCommand({"xauth", "-f", xauthority_, "list", display_});
  ASSERT_TRUE(real && real->ok());
  std::string real_hex = real->out.substr(real->out.find_last_of(' ') + 1, 32);
  auto listed = Ssh({"-X", "lab", "xauth list"});
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_THAT(listed.out, HasSubstr("MIT-MAGIC-COOKIE-1"));
  EXPECT_THAT(listed.out, Not(HasSubstr(real_hex)));
  // An X client on the server without the (fake) cookie is turned away by the master.
  auto anonymous = Ssh({"-X", "lab", "XAUTHORITY=/dev/null xdpyinfo"});
  EXPECT_NE(anonymous.exit_code, 0) << anonymous.out;
  EXPECT_THAT(lab_->MasterLog(), HasSubstr("X11 connection without a cookie"));
}

TEST_F(X11ForwardingTest, WithoutDashXTheServerHasNoDisplay) {
  auto shown = Ssh({"lab", "echo \"display=[$DISPLAY]\""});
  EXPECT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_THAT(shown.out, HasSubstr("display=[]"));
}

}  // namespace
}  // namespace mconnect::testing
