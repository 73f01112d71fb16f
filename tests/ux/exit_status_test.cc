// The exit status of a session, on a real terminal against a real sshd: mconnect becomes
// mosh-client, and mosh-client (stock mosh's too) exits 0 whatever the remote command returned.
// The manual page and --help say so.
#include <fstream>
#include <sstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/mconnect_lab.h"
#include "tests/support/paths.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

// The EXIT STATUS section of mconnect(1), one line, mdoc's "\-" as "-".
std::string ExitStatusSection() {
  std::ifstream in(std::string(MCONNECT_SOURCE_DIR) + "/man/mconnect.1");
  std::string text;
  bool inside = false;
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with(".Sh ")) {
      inside = line == ".Sh EXIT STATUS";
      continue;
    }
    if (inside) text += line + " ";
  }
  for (std::size_t at; (at = text.find("\\-")) != std::string::npos;) text.erase(at, 1);
  return text;
}

TEST(ExitStatus, ASessionEndsWithMoshClientsStatusNotTheRemoteCommands) {
  auto lab = MconnectLab::Start();
  ASSERT_TRUE(lab) << lab.error().message;
  MconnectLab& l = **lab;
  TempDir dir;
  Tmux tmux(dir.path());
  // The lab's server is this machine: the remote command leaves a file here before it fails.
  const std::string ran = dir.Sub("remote-ran");
  ASSERT_TRUE(tmux.Start(l.ShellCommand({l.SshOption(), "lab", "--", "sh", "-c", "touch " + ran + "; exit 3"}) +
                             "; echo MCONNECT-EXIT=$?",
                         l.env()));
  ASSERT_TRUE(tmux.WaitFor("MCONNECT-EXIT=", 60s)) << tmux.CaptureHistory().value_or("");
  EXPECT_TRUE(ReadFile(ran)) << "the remote command did not run";
  const std::string screen = tmux.CaptureHistory().value_or("");
  EXPECT_THAT(screen, HasSubstr("MCONNECT-EXIT=0")) << screen;

  EXPECT_THAT(ExitStatusSection(), HasSubstr("mosh-client exits 0 whatever the remote command returned"));
  auto help = RunCommand({std::string(MCONNECT_BIN_DIR) + "/mconnect", "--help"});
  ASSERT_TRUE(help);
  EXPECT_THAT(help->out, HasSubstr("Once a session\nruns, the status is mosh-client's: 0 whatever the remote command "
                                   "returned, as\nwith mosh."));
}

}  // namespace
}  // namespace mconnect::testing
