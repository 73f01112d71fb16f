// The everyday tools that run `ssh` underneath (scp, sftp, rsync, git) and plain redirections
// from and to regular files, all through the mconnect master's socket with unchanged OpenSSH 9.2
// clients. Every test checks content (cmp, diff -r, git log, sha256sum) and, in TearDown, that
// sshd saw exactly one authentication: a tool whose ssh silently fell back to a connection of
// its own would authenticate a second time.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/mconnect_lab.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

class OpenSshToolsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto lab = MconnectLab::StartWithMaster();
    ASSERT_TRUE(lab) << lab.error().message;
    lab_ = std::move(*lab);
    master_pid_ = lab_->MasterPid();
    ASSERT_GT(master_pid_, 0) << "no master answers on " << lab_->SocketPath();
  }

  void TearDown() override {
    if (lab_) {
      EXPECT_EQ(lab_->sshd().CountInLog("Accepted publickey"), 1)
          << "a tool's ssh made its own connection instead of using the master\n"
          << MasterLog();
    }
  }

  std::string MasterLog() const {
    std::string socket = lab_->SocketPath();
    std::string log = socket.substr(0, socket.size() - 5) + ".log";
    return "master log (" + log + "):\n" + ReadFile(log).value_or("(unreadable)");
  }

  // Runs `script` with sh in the lab's environment (HOME, XDG_* inside the test's directory),
  // after a prelude that defines
  //   D     the test's private directory (the "remote" side writes there too: same machine)
  //   CFG   the lab's ssh_config          SOCK  the master's socket
  //   SSH   ssh -F $CFG -S $SOCK -o ControlMaster=no   (one string, for -e and GIT_SSH_COMMAND)
  CommandOutput Script(const std::string& script, std::chrono::milliseconds timeout = 120s) const {
    std::string prelude = "D=" + ShellQuote(lab_->dir().path()) +
                          "; CFG=" + ShellQuote(lab_->sshd().ssh_config()) +
                          "; SOCK=" + ShellQuote(lab_->SocketPath()) +
                          "; SSH=\"ssh -F $CFG -S $SOCK -o ControlMaster=no\"; cd \"$D\"\n";
    CommandOptions options;
    options.timeout = timeout;
    options.max_output = 4 << 20;
    auto result = RunCommand(lab_->env().Command(ShellCommand(prelude + script)), options);
    EXPECT_TRUE(result) << result.error().message;
    return result ? *result : CommandOutput{};
  }

  // The failure message for a script: everything it printed, then the master's log.
  std::string Explain(const CommandOutput& result) const {
    return "exit " + std::to_string(result.exit_code) + (result.timed_out ? " (timed out)" : "") +
           "\nstdout:\n" + result.out + "\nstderr:\n" + result.err + "\n" + MasterLog();
  }

  std::unique_ptr<MconnectLab> lab_;
  pid_t master_pid_ = 0;
};

// scp (SFTP protocol, OpenSSH 9's default): a 5 MiB random file to the server and back.
TEST_F(OpenSshToolsTest, ScpCopiesAFileBothWays) {
  auto result = Script(
      "set -e; mkdir local remote"
      "; head -c 5242880 /dev/urandom > local/up.bin"
      "; scp -q -F \"$CFG\" -o ControlPath=\"$SOCK\" -o ControlMaster=no local/up.bin \"lab:$D/remote/up.bin\""
      "; cmp local/up.bin remote/up.bin"
      "; scp -q -F \"$CFG\" -o ControlPath=\"$SOCK\" -o ControlMaster=no \"lab:$D/remote/up.bin\" local/back.bin"
      "; cmp local/up.bin local/back.bin; echo SAME");
  EXPECT_EQ(result.exit_code, 0) << Explain(result);
  EXPECT_THAT(result.out, HasSubstr("SAME")) << Explain(result);
}

// scp -O: the legacy SCP protocol, an exec of `scp -t` / `scp -f` on the server.
TEST_F(OpenSshToolsTest, LegacyScpProtocolCopiesAFileBothWays) {
  auto result = Script(
      "set -e; mkdir local remote"
      "; head -c 5242880 /dev/urandom > local/up.bin"
      "; scp -O -q -F \"$CFG\" -o ControlPath=\"$SOCK\" -o ControlMaster=no local/up.bin \"lab:$D/remote/up.bin\""
      "; cmp local/up.bin remote/up.bin"
      "; scp -O -q -F \"$CFG\" -o ControlPath=\"$SOCK\" -o ControlMaster=no \"lab:$D/remote/up.bin\" local/back.bin"
      "; cmp local/up.bin local/back.bin; echo SAME");
  EXPECT_EQ(result.exit_code, 0) << Explain(result);
  EXPECT_THAT(result.out, HasSubstr("SAME")) << Explain(result);
}

// rsync over `ssh -S`: a tree with a subdirectory and a 3 MiB file, there and back.
TEST_F(OpenSshToolsTest, RsyncCopiesATreeBothWays) {
  auto result = Script(
      "set -e; mkdir -p src/sub/deeper"
      "; echo first > src/a.txt; printf 'second\\nline\\n' > src/sub/b.txt; : > src/empty"
      "; echo deep > src/sub/deeper/c.txt; chmod 0750 src/sub/deeper/c.txt"
      "; head -c 3145728 /dev/urandom > src/sub/big.bin"
      "; rsync -a -e \"$SSH\" src/ \"lab:$D/dest/\""
      "; diff -r src dest"
      "; rsync -a -e \"$SSH\" \"lab:$D/dest/\" back/"
      "; diff -r src back; echo SAME",
      180s);
  EXPECT_EQ(result.exit_code, 0) << Explain(result);
  EXPECT_THAT(result.out, HasSubstr("SAME")) << Explain(result);
}

// git: clone an empty bare repository over ssh, commit, push, check the bare repository's log,
// clone again and read the file.
TEST_F(OpenSshToolsTest, GitClonePushAndCloneAgain) {
  auto result = Script(
      "set -e; export GIT_CONFIG_NOSYSTEM=1 GIT_TERMINAL_PROMPT=0 GIT_SSH_COMMAND=\"$SSH\""
      "; G='git -c init.defaultBranch=main -c user.name=Lab -c user.email=lab@example.invalid'"
      "; $G init -q --bare repo.git"
      "; $G clone -q \"lab:$D/repo.git\" work 2>clone.err || { cat clone.err >&2; exit 1; }"
      "; echo 'pushed through the master' > work/hello.txt"
      "; $G -C work add hello.txt"
      "; $G -C work commit -q -m 'first through mconnect'"
      "; $G -C work push -q origin main"
      "; echo LOG=$($G --git-dir=repo.git log --format=%s main)"
      "; $G clone -q \"lab:$D/repo.git\" again"
      "; echo FILE=$(cat again/hello.txt)",
      120s);
  EXPECT_EQ(result.exit_code, 0) << Explain(result);
  EXPECT_THAT(result.out, HasSubstr("LOG=first through mconnect\n")) << Explain(result);
  EXPECT_THAT(result.out, HasSubstr("FILE=pushed through the master\n")) << Explain(result);
}

// sftp in batch mode (the sftp subsystem): put, ls, get.
TEST_F(OpenSshToolsTest, SftpBatchPutListGet) {
  auto result = Script(
      "set -e; mkdir local remote"
      "; head -c 2097152 /dev/urandom > local/file.bin"
      "; printf '%s\\n' \"put $D/local/file.bin $D/remote/sent.bin\" \"ls -l $D/remote\""
      "    \"get $D/remote/sent.bin $D/local/got.bin\" > batch"
      "; sftp -q -F \"$CFG\" -o ControlPath=\"$SOCK\" -o ControlMaster=no -b batch lab"
      "; cmp local/file.bin remote/sent.bin; cmp local/file.bin local/got.bin; echo SAME");
  EXPECT_EQ(result.exit_code, 0) << Explain(result);
  EXPECT_THAT(result.out, HasSubstr("sent.bin")) << "ls shows the file\n" << Explain(result);
  EXPECT_THAT(result.out, HasSubstr("2097152")) << "ls shows its size\n" << Explain(result);
  EXPECT_THAT(result.out, HasSubstr("SAME")) << Explain(result);
}

// The client passes regular files as its stdin and stdout: the master must read the one to its
// end (a regular file is always "readable") and write the other.
TEST_F(OpenSshToolsTest, RegularFilesAsStdinAndStdout) {
  auto result = Script(
      "set -e; head -c 16777216 /dev/urandom > payload"
      "; echo LOCAL=$(sha256sum < payload | cut -d' ' -f1)"
      "; $SSH lab sha256sum < payload > remote.sum"
      "; echo REMOTE=$(cut -d' ' -f1 remote.sum)"
      "; $SSH lab cat < payload > copy"
      "; cmp payload copy"
      "; $SSH lab \"cat $D/payload\" > fetched"
      "; cmp payload fetched; echo SAME",
      120s);
  EXPECT_EQ(result.exit_code, 0) << Explain(result);
  auto value = [&](const std::string& key) {
    auto at = result.out.find(key + "=");
    if (at == std::string::npos) return std::string();
    at += key.size() + 1;
    return result.out.substr(at, result.out.find('\n', at) - at);
  };
  EXPECT_EQ(value("LOCAL").size(), 64u) << Explain(result);
  EXPECT_EQ(value("REMOTE"), value("LOCAL")) << Explain(result);
  EXPECT_THAT(result.out, HasSubstr("SAME")) << Explain(result);
}

// A reader that goes away mid-stream (head closes the pipe the master writes into) ends that
// session only: a 32 MiB transfer running alongside stays byte-identical, the master keeps its
// pid and still serves new clients.
TEST_F(OpenSshToolsTest, AClientThatDisconnectsMidTransferDisturbsNoOther) {
  auto result = Script(
      "set -e; head -c 33554432 /dev/urandom > big"
      // The big transfer pauses half-way (the sleep), so the disconnects surely overlap it.
      "; { head -c 16777216; sleep 3; cat; } < big | $SSH lab cat > back &"
      "  transfer=$!"
      "; sleep 1"
      "; for i in 1 2 3; do"
      "    timeout 30 sh -c \"$SSH lab 'cat /dev/zero' | head -c 1000000 > /dev/null\""
      "      || { echo \"disconnecting client $i did not end: $?\" >&2; exit 1; }"
      "  ; done"
      "; echo DISCONNECTS-DONE"
      "; wait $transfer"
      "; cmp big back; echo SAME"
      "; $SSH lab 'echo still-served'",
      180s);
  EXPECT_EQ(result.exit_code, 0) << Explain(result);
  EXPECT_THAT(result.out, HasSubstr("DISCONNECTS-DONE")) << Explain(result);
  EXPECT_THAT(result.out, HasSubstr("SAME")) << Explain(result);
  EXPECT_THAT(result.out, HasSubstr("still-served")) << Explain(result);
  EXPECT_EQ(lab_->MasterPid(), master_pid_) << MasterLog();
}

}  // namespace
}  // namespace mconnect::testing
