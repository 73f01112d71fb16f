// What a person sees on a terminal, through a real pty (util-linux `script`): the one-line
// progress of a cold start and colours, neither when the output is not a terminal nor (colours)
// with NO_COLOR set; and a failure is one line plus a hint.
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/lab_fixture.h"
#include "tests/support/mconnect_lab.h"
#include "tests/support/paths.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

class TerminalTest : public LabTest {
 protected:

  // mconnect ARGS on a pty; what the terminal received (stdout and stderr together).
  std::string OnATerminal(const std::vector<std::string>& args, const LabEnv& env) {
    std::string line;
    for (const auto& word : args) line += " " + ShellQuote(word);
    CommandOptions options;
    options.timeout = 60s;
    auto result = RunCommand(
        env.Command({"script", "-qec", std::string(MCONNECT_BIN_DIR) + "/mconnect" + line, "/dev/null"}), options);
    EXPECT_TRUE(result) << "script (util-linux) cannot run: " << result.error().message;
    return result ? result->out : "";
  }

};

TEST_F(TerminalTest, ProgressShowsOnATerminalAndIsErased) {
  std::string screen = OnATerminal({"ip", lab_->SshOption(), "lab"}, lab_->env());
  EXPECT_THAT(screen, HasSubstr("\r\033[Kmconnect: root@127.0.0.1:"));
  EXPECT_THAT(screen, HasSubstr("connecting…"));
  EXPECT_THAT(screen, HasSubstr("authenticating…"));
  EXPECT_THAT(screen, HasSubstr("authenticating…\r\033[K")) << "the line is erased once done";
}

TEST_F(TerminalTest, NoProgressAndNoColourWithoutATerminal) {
  auto ip = lab_->Run({"ip", lab_->SshOption(), "lab"});
  ASSERT_TRUE(ip);
  EXPECT_EQ(ip->exit_code, 0) << ip->err;
  EXPECT_THAT(ip->err, Not(HasSubstr("\033"))) << "cold start, stderr not a terminal";
  auto doctor = lab_->Run({"doctor", lab_->SshOption(), "lab"}, 60s);
  ASSERT_TRUE(doctor);
  EXPECT_THAT(doctor->out, HasSubstr("OK    udp"));
  EXPECT_THAT(doctor->out + doctor->err, Not(HasSubstr("\033")));
}

TEST_F(TerminalTest, ColoursOnATerminalButNotWithNoColor) {
  std::string coloured = OnATerminal({"doctor", lab_->SshOption(), "lab"}, lab_->env());
  EXPECT_THAT(coloured, HasSubstr("\033[32mOK  \033[0m  udp"));
  LabEnv plain = lab_->env();
  plain.Set("NO_COLOR", "1");
  std::string uncoloured = OnATerminal({"doctor", lab_->SshOption(), "lab"}, plain);
  EXPECT_THAT(uncoloured, HasSubstr("OK    udp"));
  EXPECT_THAT(uncoloured, Not(HasSubstr("\033[")));
}

TEST_F(TerminalTest, AFailureIsOneLinePlusAHint) {
  lab_->sshd().Stop();
  // A client that needs no terminal, so that the session gets as far as the master.
  auto session = lab_->Run({lab_->SshOption(), "--client=/bin/true", "lab", "--", "true"});
  ASSERT_TRUE(session);
  EXPECT_EQ(session->exit_code, 255);
  std::vector<std::string> lines;
  for (std::size_t at = 0; at < session->err.size();) {
    std::size_t end = session->err.find('\n', at);
    lines.push_back(session->err.substr(at, end - at));
    at = end == std::string::npos ? session->err.size() : end + 1;
  }
  ASSERT_EQ(lines.size(), 2u) << session->err;
  EXPECT_THAT(lines[0], StartsWith("mconnect: "));
  EXPECT_THAT(lines[0], HasSubstr("127.0.0.1"));
  // The doctor line keeps the --ssh that says where the lab is.
  EXPECT_EQ(lines[1], "mconnect: hint: `mconnect doctor --ssh='ssh -F " + lab_->sshd().ssh_config() +
                          "' lab` checks each step and says what to fix");
}

}  // namespace
}  // namespace mconnect::testing
