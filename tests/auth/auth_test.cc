// Authentication the way a demanding OpenSSH user expects it, against a real sshd: an encrypted
// key's passphrase typed once (in tmux, like a person) and the master reused without asking
// again, a wrong passphrase asked again, SSH_ASKPASS without a terminal, keyboard-interactive
// and password through a real PAM stack, publickey + keyboard-interactive (multi-factor), an
// RSA key against an RSA-only server, the unknown-host-key question, refusals in BatchMode, and
// a master reconnecting on its own (interactive=false) that never asks anything. Then the pure
// parts: key files, method order, prompt routes.
//
// The PAM tests run sshd under a program name of their own (tests/lab/sshd-lab's sshd_name):
// OpenSSH uses its program name as the PAM service, so /etc/pam.d/<that name> (written here,
// removed on destruction) configures pam_exec to compare the typed password with a lab file.
// No system password is touched. They need root; without it they fail and say so.
#include <glob.h>
#include <pwd.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <regex>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/subprocess.h"
#include "mux/ssh/auth.h"
#include "mux/ssh/connection.h"
#include "mux/ssh/prompt.h"
#include "tests/support/lab_fixture.h"
#include "tests/support/mconnect_lab.h"

namespace mconnect::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr std::string_view kPassphrase = "correct horse battery";
constexpr std::string_view kPassword = "open sesame 42";

int Count(std::string_view text, std::string_view needle) {
  int count = 0;
  for (std::size_t at = text.find(needle); at != std::string_view::npos; at = text.find(needle, at + needle.size())) {
    ++count;
  }
  return count;
}

int Lines(std::string_view text) { return Count(text, "\n"); }

bool Exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

::testing::AssertionResult WriteFile(const std::string& path, std::string_view text, mode_t mode = 0600) {
  {
    std::ofstream out(path, std::ios::trunc);
    out << text;
    if (!out.flush()) return ::testing::AssertionFailure() << "cannot write " << path;
  }
  if (::chmod(path.c_str(), mode) != 0) return ::testing::AssertionFailure() << "cannot chmod " << path;
  return ::testing::AssertionSuccess();
}

// Runs a helper program that must succeed (ssh-keygen): its failure is the test's.
::testing::AssertionResult Succeeds(const std::vector<std::string>& argv) {
  auto result = RunCommand(argv);
  if (!result) return ::testing::AssertionFailure() << result.error().message;
  if (!result->ok()) return ::testing::AssertionFailure() << argv[0] << " failed: " << result->err;
  return ::testing::AssertionSuccess();
}

std::string LocalUser() {
  const passwd* user = ::getpwuid(::geteuid());
  return user != nullptr ? user->pw_name : "root";
}

// A shell script at `path`.
::testing::AssertionResult WriteScript(const std::string& path, const std::string& body) {
  return WriteFile(path, "#!/bin/bash\n" + body, 0700);
}

// An askpass program that records each question in `record` (one per line) and answers
// `answer`.
::testing::AssertionResult WriteAskpass(const std::string& path, const std::string& record, std::string_view answer) {
  return WriteScript(path, "printf '%s\\n' \"$1\" >> " + ShellQuote(record) + "\nprintf '%s\\n' " +
                               ShellQuote(answer) + "\n");
}

// /etc/pam.d/NAME for the lab's sshd (started as NAME): pam_exec compares what was typed with
// the lab's password file; setcred, account and session always pass. Removed on destruction.
class PamService {
 public:
  static Result<std::unique_ptr<PamService>> Create(const std::string& dir, std::string_view password) {
    if (::geteuid() != 0) return Fail("the PAM tests write /etc/pam.d/<service> and so need root (euid {})", ::geteuid());
    glob_t found{};
    bool has_pam_exec = ::glob("/{lib,usr/lib}/*/security/pam_exec.so", GLOB_BRACE, nullptr, &found) == 0;
    ::globfree(&found);
    if (!has_pam_exec) return Fail("pam_exec.so is not installed (libpam-modules)");
    std::random_device random;
    std::string name = fmt::format("mconnect-lab-{}-{:08x}-sshd", ::getpid(), random());
    std::string password_file = dir + "/pam-password";
    std::string script = dir + "/pam-check";
    std::string attempts = dir + "/pam-attempts";
    if (!WriteFile(password_file, std::string(password) + "\n")) return Fail("cannot write {}", password_file);
    // pam_exec's expose_authtok writes the typed password to stdin, NUL-terminated.
    if (!WriteScript(script, "IFS= read -r -d '' typed || true\n"
                             "if [[ $typed == \"$(cat " + ShellQuote(password_file) + ")\" ]]; then\n"
                             "  echo good >> " + ShellQuote(attempts) + "; exit 0\n"
                             "fi\n"
                             "echo bad >> " + ShellQuote(attempts) + "; exit 1\n")) {
      return Fail("cannot write {}", script);
    }
    std::unique_ptr<PamService> service(new PamService("/etc/pam.d/" + name, name, attempts));
    if (!WriteFile(service->path_,
                   "# Written by mconnect's auth_test for one lab sshd; removed when the test ends.\n"
                   "auth required pam_exec.so type=auth expose_authtok quiet " + script + "\n"
                   "auth required pam_permit.so\n"
                   "account required pam_permit.so\n"
                   "session required pam_permit.so\n",
                   0644)) {
      return Fail("cannot write {}", service->path_);
    }
    return service;
  }
  ~PamService() { ::unlink(path_.c_str()); }
  PamService(const PamService&) = delete;
  PamService& operator=(const PamService&) = delete;

  const std::string& name() const { return name_; }
  // "good"/"bad" lines, one per password PAM checked.
  std::string Attempts() const { return ReadFile(attempts_).value_or(""); }

 private:
  PamService(std::string path, std::string name, std::string attempts)
      : path_(std::move(path)), name_(std::move(name)), attempts_(std::move(attempts)) {}

  std::string path_;
  std::string name_;
  std::string attempts_;
};

class AuthTest : public LabTest {
 protected:
  void TearDown() override {
    panes_.clear();  // tmux first: its panes may still run a launcher
    LabTest::TearDown();
    if (lab_) lab_->sshd().Stop();  // before its PAM service goes
    pam_.reset();
  }

  SshdLab& sshd() { return lab_->sshd(); }
  std::string key() { return sshd().user_key(); }

  // --ssh with the lab's config and `-o` options before it (ssh keeps the first value).
  std::string SshOption(const std::vector<std::string>& options = {}) {
    std::string ssh = "--ssh=ssh -F " + ShellQuote(sshd().ssh_config());
    for (const auto& option : options) ssh += " -o " + ShellQuote(option);
    return ssh;
  }
  // The lab's config asks nothing (BatchMode yes); a person at a terminal is asked.
  std::string AskingSshOption(std::vector<std::string> options = {}) {
    options.push_back("BatchMode=no");
    return SshOption(options);
  }

  // An askpass program that answers the passphrase and records each question it gets.
  struct Askpass {
    std::string program;
    std::string record;
  };
  Askpass MakeAskpass() {
    Askpass askpass{lab_->dir().Sub("askpass"), lab_->dir().Sub("askpass-questions")};
    EXPECT_TRUE(WriteAskpass(askpass.program, askpass.record, kPassphrase));
    return askpass;
  }

  ::testing::AssertionResult EncryptKey() {
    return Succeeds({"ssh-keygen", "-q", "-p", "-P", "", "-N", std::string(kPassphrase), "-f", key()});
  }

  // `mconnect ARGS` with no controlling terminal at all (setsid), so nothing can be typed.
  CommandOutput RunDetached(const std::vector<std::string>& args, std::chrono::milliseconds timeout = 60s) {
    std::vector<std::string> argv{"setsid", "-w"};
    for (auto& word : lab_->Command(args)) argv.push_back(std::move(word));
    CommandOptions options;
    options.timeout = timeout;
    auto result = RunCommand(argv, options);
    EXPECT_TRUE(result) << result.error().message;
    EXPECT_FALSE(result && result->timed_out) << "mconnect " << args.front() << " did not finish";
    return result ? *result : CommandOutput{};
  }

  // `ssh -S SOCKET lab COMMAND` through the master, with no terminal: the lab's config says
  // BatchMode yes, so without the master this could not authenticate at all.
  CommandOutput ThroughMaster(const std::string& command) {
    std::vector<std::string> argv{"setsid", "-w"};
    for (auto& word : lab_->env().Command({"ssh", "-F", sshd().ssh_config(), "-S", lab_->SocketPath(), "-o",
                                           "ControlMaster=no", "lab", command})) {
      argv.push_back(std::move(word));
    }
    CommandOptions options;
    options.timeout = 30s;
    auto result = RunCommand(argv, options);
    EXPECT_TRUE(result) << result.error().message;
    return result ? *result : CommandOutput{};
  }

  // A terminal running `mconnect ARGS` (after `prefix`, shell text); the pane stays after it ends.
  Tmux& Pane(const std::vector<std::string>& args, const std::string& prefix = "exec ") {
    std::string dir = lab_->dir().Sub("t" + std::to_string(panes_.size()));
    ::mkdir(dir.c_str(), 0700);
    panes_.push_back(std::make_unique<Tmux>(dir));
    auto started = panes_.back()->Start(prefix + lab_->ShellCommand(args), lab_->env());
    EXPECT_TRUE(started) << started.error().message;
    return *panes_.back();
  }

  static std::string Screen(const Tmux& tmux) {
    auto text = tmux.CaptureHistory();
    return text ? *text : text.error().message;
  }

  static std::optional<int> WaitForExit(const Tmux& tmux, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (auto status = tmux.PaneExitStatus()) return status;
      std::this_thread::sleep_for(50ms);
    }
    return tmux.PaneExitStatus();
  }

  // Types `answer` once `question` is on the screen for the `nth` time.
  ::testing::AssertionResult Answer(Tmux& tmux, const std::string& question, std::string_view answer, int nth = 1) {
    auto deadline = std::chrono::steady_clock::now() + 30s;
    while (Count(Screen(tmux), question) < nth) {
      if (std::chrono::steady_clock::now() > deadline) {
        return ::testing::AssertionFailure() << "no \"" << question << "\" (#" << nth << ") on the screen:\n"
                                             << Screen(tmux) << "\nmaster log:\n" << MasterLog();
      }
      std::this_thread::sleep_for(50ms);
    }
    if (auto typed = tmux.Type(answer); !typed) return ::testing::AssertionFailure() << typed.error().message;
    if (auto sent = tmux.SendKeys("Enter"); !sent) return ::testing::AssertionFailure() << sent.error().message;
    return ::testing::AssertionSuccess();
  }

  std::string MasterLog() {
    std::string socket = lab_->SocketPath();
    return ReadFile(socket.substr(0, socket.size() - 5) + ".log").value_or("(no master log)");
  }

  // The lab's sshd again, run as its own PAM service, with `extra` lines first in its config.
  ::testing::AssertionResult RestartWithPam(const std::string& extra) {
    auto pam = PamService::Create(lab_->dir().path(), kPassword);
    if (!pam) return ::testing::AssertionFailure() << pam.error().message;
    pam_ = std::move(*pam);
    sshd().Stop();
    if (auto written = WriteFile(sshd().dir() + "/sshd_name", pam_->name() + "\n"); !written) return written;
    if (auto written = WriteFile(sshd().dir() + "/sshd_config.extra", "UsePAM yes\nPermitRootLogin yes\n" + extra);
        !written) {
      return written;
    }
    if (auto restarted = sshd().Restart(); !restarted) return ::testing::AssertionFailure() << restarted.error().message;
    return ::testing::AssertionSuccess();
  }

  std::vector<std::unique_ptr<Tmux>> panes_;
  std::unique_ptr<PamService> pam_;
};

// ---- encrypted keys --------------------------------------------------------------------------

TEST_F(AuthTest, EncryptedKeyPassphraseIsAskedOnceAndTheMasterIsReused) {
  ASSERT_TRUE(EncryptKey());
  Tmux& tmux = Pane({"ip", AskingSshOption(), "lab"});
  std::string question = "Enter passphrase for key '" + key() + "': ";
  ASSERT_TRUE(Answer(tmux, question, kPassphrase));
  auto status = WaitForExit(tmux, 30s);
  ASSERT_EQ(status, 0) << Screen(tmux) << "\nmaster log:\n" << MasterLog();
  std::string screen = Screen(tmux);
  EXPECT_EQ(Count(screen, question), 1) << screen;
  EXPECT_THAT(screen, Not(HasSubstr(kPassphrase))) << "the passphrase was echoed";
  EXPECT_THAT(screen, HasSubstr("127.0.0.1"));
  pid_t master = lab_->MasterPid();
  ASSERT_GT(master, 0);

  // Later commands go through the master: nothing is asked (there is no terminal to ask on).
  auto ssh = ThroughMaster("echo via-$((40+2))");
  EXPECT_EQ(ssh.exit_code, 0) << ssh.err;
  EXPECT_EQ(ssh.out, "via-42\n");
  auto again = RunDetached({"ip", AskingSshOption(), "lab"});
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(lab_->MasterPid(), master);
  EXPECT_EQ(sshd().CountInLog("Accepted publickey"), 1) << sshd().Log();
  EXPECT_THAT(MasterLog(), Not(HasSubstr(kPassphrase)));
}

// A second terminal while the first is at the passphrase question: it says what it waits for,
// and connects (through the first one's master, asking nothing) as soon as that is answered.
TEST_F(AuthTest, SecondTerminalSaysItWaitsForTheFirstOneAskingAndThenConnects) {
  ASSERT_TRUE(EncryptKey());
  Tmux& first = Pane({"ip", AskingSshOption(), "lab"});
  const std::string question = "Enter passphrase for key '" + key() + "': ";
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (Count(Screen(first), question) < 1 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(50ms);
  ASSERT_EQ(Count(Screen(first), question), 1) << Screen(first);
  Tmux& second = Pane({"ip", AskingSshOption(), "lab"});
  const std::string waiting = "mconnect: waiting for the other mconnect for root@127.0.0.1:" +
                              std::to_string(sshd().port()) + " (pid ";
  deadline = std::chrono::steady_clock::now() + 20s;
  while (Screen(second).find(waiting) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_THAT(Screen(second), HasSubstr(waiting));
  EXPECT_THAT(Screen(second), HasSubstr("; it is asking for a passphrase, a password or a host key on its terminal)"));
  EXPECT_THAT(Screen(second), Not(HasSubstr("Enter passphrase")));
  ASSERT_TRUE(Answer(first, question, kPassphrase));
  EXPECT_EQ(WaitForExit(first, 30s), 0) << Screen(first);
  EXPECT_EQ(WaitForExit(second, 10s), 0) << Screen(second);
  EXPECT_THAT(Screen(second), HasSubstr("127.0.0.1"));
  EXPECT_EQ(sshd().CountInLog("Accepted publickey"), 1) << "the second terminal made its own connection";
}

TEST_F(AuthTest, WrongPassphraseIsAskedAgainWithoutTryingTheServer) {
  ASSERT_TRUE(EncryptKey());
  Tmux& tmux = Pane({"ip", AskingSshOption(), "lab"});
  std::string question = "Enter passphrase for key '" + key() + "': ";
  ASSERT_TRUE(Answer(tmux, question, "not the passphrase"));
  ASSERT_TRUE(Answer(tmux, question, kPassphrase, 2));
  auto status = WaitForExit(tmux, 30s);
  ASSERT_EQ(status, 0) << Screen(tmux) << "\nmaster log:\n" << MasterLog();
  EXPECT_EQ(Count(Screen(tmux), question), 2) << Screen(tmux);
  EXPECT_EQ(sshd().CountInLog("Accepted publickey"), 1) << sshd().Log();
  // The passphrase is checked locally: the server saw no failed attempt.
  EXPECT_EQ(sshd().CountInLog("Failed publickey"), 0) << sshd().Log();
}

TEST_F(AuthTest, WrongPassphrasesUpToNumberOfPasswordPromptsFailWithOneLine) {
  ASSERT_TRUE(EncryptKey());
  Tmux& tmux = Pane({"ip", AskingSshOption({"NumberOfPasswordPrompts=2"}), "lab"});
  std::string question = "Enter passphrase for key '" + key() + "': ";
  ASSERT_TRUE(Answer(tmux, question, "wrong one"));
  ASSERT_TRUE(Answer(tmux, question, "wrong two", 2));
  auto status = WaitForExit(tmux, 30s);
  EXPECT_EQ(status, 255) << Screen(tmux);
  std::string screen = Screen(tmux);
  EXPECT_EQ(Count(screen, question), 2) << "NumberOfPasswordPrompts=2: " << screen;
  EXPECT_THAT(screen, HasSubstr(LocalUser() + "@127.0.0.1: Permission denied (publickey); " + key() +
                                " (wrong passphrase)"));
  EXPECT_EQ(lab_->MasterPid(), 0);
}

TEST_F(AuthTest, InterruptedPassphraseQuestionRestoresTheTerminal) {
  ASSERT_TRUE(EncryptKey());
  std::string stty = lab_->dir().Sub("stty-after");
  // The shell reports the terminal's modes once Ctrl-C has ended mconnect and its master.
  Tmux& tmux = Pane({"ip", AskingSshOption(), "lab"}, "trap 'stty -a > " + stty + "; exit 7' INT; ");
  std::string question = "Enter passphrase for key '" + key() + "': ";
  ASSERT_TRUE(tmux.WaitFor(question, 30s)) << Screen(tmux);
  ASSERT_TRUE(tmux.SendKeys("C-c"));
  ASSERT_EQ(WaitForExit(tmux, 30s), 7) << Screen(tmux);
  auto modes = ReadFile(stty);
  ASSERT_TRUE(modes) << modes.error().message;
  EXPECT_TRUE(std::regex_search(*modes, std::regex(R"((^|\s)echo(\s|$))"))) << "echo is still off:\n" << *modes;
  EXPECT_EQ(lab_->MasterPid(), 0);
  EXPECT_EQ(sshd().CountInLog("Accepted publickey"), 0);
}

// ---- SSH_ASKPASS -----------------------------------------------------------------------------

TEST_F(AuthTest, AskpassAnswersWhenThereIsNoTerminal) {
  ASSERT_TRUE(EncryptKey());
  auto [askpass, record] = MakeAskpass();
  lab_->env().Set("SSH_ASKPASS", askpass).Set("SSH_ASKPASS_REQUIRE", "force");
  auto result = RunDetached({"ip", AskingSshOption(), "lab"});
  ASSERT_EQ(result.exit_code, 0) << result.err << "\nmaster log:\n" << MasterLog();
  EXPECT_EQ(ReadFile(record).value_or(""), "Enter passphrase for key '" + key() + "': \n");
  EXPECT_GT(lab_->MasterPid(), 0);
  EXPECT_EQ(sshd().CountInLog("Accepted publickey"), 1) << sshd().Log();
}

TEST_F(AuthTest, AskpassFollowsOpenSshRules) {
  ASSERT_TRUE(EncryptKey());
  auto [askpass, record] = MakeAskpass();
  lab_->env().Set("SSH_ASKPASS", askpass);

  // No terminal and no DISPLAY: ssh would not run the askpass program, nor do we.
  auto nobody = RunDetached({"ip", AskingSshOption(), "lab"});
  EXPECT_EQ(nobody.exit_code, 255);
  EXPECT_THAT(nobody.err, HasSubstr(key() + " (encrypted; no terminal to ask on"));
  EXPECT_EQ(Lines(nobody.err), 1) << nobody.err;
  EXPECT_FALSE(Exists(record));

  // SSH_ASKPASS_REQUIRE=never, even with a DISPLAY.
  lab_->env().Set("DISPLAY", ":99").Set("SSH_ASKPASS_REQUIRE", "never");
  auto never = RunDetached({"ip", AskingSshOption(), "lab"});
  EXPECT_EQ(never.exit_code, 255) << never.err;
  EXPECT_FALSE(Exists(record));

  // No terminal, DISPLAY set, no SSH_ASKPASS_REQUIRE: the askpass program.
  lab_->env().Unset("SSH_ASKPASS_REQUIRE");
  auto display = RunDetached({"ip", AskingSshOption(), "lab"});
  EXPECT_EQ(display.exit_code, 0) << display.err;
  EXPECT_EQ(Lines(ReadFile(record).value_or("")), 1);
  EXPECT_EQ(sshd().CountInLog("Accepted publickey"), 1) << sshd().Log();
}

TEST_F(AuthTest, BatchModeNeverAsks) {
  ASSERT_TRUE(EncryptKey());
  auto [askpass, record] = MakeAskpass();
  lab_->env().Set("SSH_ASKPASS", askpass).Set("SSH_ASKPASS_REQUIRE", "force");
  auto result = RunDetached({"ip", SshOption({"BatchMode=yes"}), "lab"});
  EXPECT_EQ(result.exit_code, 255);
  EXPECT_THAT(result.err, HasSubstr(key() + " (encrypted; BatchMode is on)"));
  EXPECT_EQ(Lines(result.err), 1) << result.err;
  EXPECT_FALSE(Exists(record)) << "BatchMode ran the askpass program";
  EXPECT_EQ(lab_->MasterPid(), 0);
}

// ---- keyboard-interactive and password through PAM -------------------------------------------

TEST_F(AuthTest, KeyboardInteractiveThroughPamIsTypedAndRetried) {
  ASSERT_TRUE(RestartWithPam("KbdInteractiveAuthentication yes\nPasswordAuthentication no\n"
                             "PubkeyAuthentication no\n"));
  Tmux& tmux = Pane({"ip", AskingSshOption(), "lab"});
  std::string question = "(" + LocalUser() + "@127.0.0.1) Password: ";
  ASSERT_TRUE(Answer(tmux, question, "wrong password"));
  ASSERT_TRUE(Answer(tmux, question, kPassword, 2));
  auto status = WaitForExit(tmux, 30s);
  ASSERT_EQ(status, 0) << Screen(tmux) << "\nmaster log:\n" << MasterLog() << "\nsshd log:\n" << sshd().Log();
  EXPECT_THAT(Screen(tmux), Not(HasSubstr(kPassword)));
  EXPECT_EQ(pam_->Attempts(), "bad\ngood\n");
  EXPECT_EQ(sshd().CountInLog("Accepted keyboard-interactive/pam for " + LocalUser()), 1) << sshd().Log();
  EXPECT_THAT(MasterLog(), HasSubstr("as keyboard-interactive"));

  auto ssh = ThroughMaster("echo pam-$((6*7))");
  EXPECT_EQ(ssh.exit_code, 0) << ssh.err;
  EXPECT_EQ(ssh.out, "pam-42\n");
  EXPECT_EQ(sshd().CountInLog("Accepted keyboard-interactive"), 1) << sshd().Log();
}

TEST_F(AuthTest, PasswordThroughPamIsTypedAndRetried) {
  ASSERT_TRUE(RestartWithPam("KbdInteractiveAuthentication no\nPasswordAuthentication yes\n"
                             "PubkeyAuthentication no\n"));
  Tmux& tmux = Pane({"ip", AskingSshOption(), "lab"});
  std::string question = LocalUser() + "@127.0.0.1's password: ";
  ASSERT_TRUE(Answer(tmux, question, "wrong password"));
  ASSERT_TRUE(Answer(tmux, question, kPassword, 2));
  auto status = WaitForExit(tmux, 30s);
  ASSERT_EQ(status, 0) << Screen(tmux) << "\nmaster log:\n" << MasterLog() << "\nsshd log:\n" << sshd().Log();
  std::string screen = Screen(tmux);
  EXPECT_THAT(screen, HasSubstr("Permission denied, please try again."));
  EXPECT_THAT(screen, Not(HasSubstr(kPassword)));
  EXPECT_EQ(pam_->Attempts(), "bad\ngood\n");
  EXPECT_EQ(sshd().CountInLog("Accepted password for " + LocalUser()), 1) << sshd().Log();
  EXPECT_EQ(sshd().CountInLog("Failed password for " + LocalUser()), 1) << sshd().Log();
}

TEST_F(AuthTest, PublicKeyThenKeyboardInteractive) {
  // Multi-factor: the key alone is a partial success; the server then wants the password.
  ASSERT_TRUE(RestartWithPam("KbdInteractiveAuthentication yes\nPasswordAuthentication no\n"
                             "AuthenticationMethods publickey,keyboard-interactive\n"));
  Tmux& tmux = Pane({"ip", AskingSshOption(), "lab"});
  ASSERT_TRUE(Answer(tmux, "(" + LocalUser() + "@127.0.0.1) Password: ", kPassword));
  auto status = WaitForExit(tmux, 30s);
  ASSERT_EQ(status, 0) << Screen(tmux) << "\nmaster log:\n" << MasterLog() << "\nsshd log:\n" << sshd().Log();
  EXPECT_EQ(sshd().CountInLog("Partial publickey for " + LocalUser()), 1) << sshd().Log();
  EXPECT_EQ(sshd().CountInLog("Accepted keyboard-interactive/pam for " + LocalUser()), 1) << sshd().Log();
  EXPECT_THAT(MasterLog(), HasSubstr("as publickey (" + key() + ") + keyboard-interactive"));
}

TEST_F(AuthTest, PreferredAuthenticationsOrderIsHonoured) {
  // The server takes both; PreferredAuthentications says password first, so it is asked for
  // although the key alone would do.
  ASSERT_TRUE(RestartWithPam("KbdInteractiveAuthentication no\nPasswordAuthentication yes\n"));
  Tmux& tmux = Pane({"ip", AskingSshOption({"PreferredAuthentications=password,publickey"}), "lab"});
  ASSERT_TRUE(Answer(tmux, LocalUser() + "@127.0.0.1's password: ", kPassword));
  ASSERT_EQ(WaitForExit(tmux, 30s), 0) << Screen(tmux) << "\nmaster log:\n" << MasterLog();
  EXPECT_EQ(sshd().CountInLog("Accepted password"), 1) << sshd().Log();
  EXPECT_EQ(sshd().CountInLog("Accepted publickey"), 0) << sshd().Log();
}

TEST_F(AuthTest, DisabledMethodsAreNotTried) {
  // The server offers only password; PasswordAuthentication=no leaves nothing to try.
  ASSERT_TRUE(RestartWithPam("KbdInteractiveAuthentication no\nPasswordAuthentication yes\n"
                             "PubkeyAuthentication no\n"));
  auto result = RunDetached({"ip", AskingSshOption({"PasswordAuthentication=no"}), "lab"});
  EXPECT_EQ(result.exit_code, 255);
  EXPECT_THAT(result.err, HasSubstr(LocalUser() + "@127.0.0.1: Permission denied (nothing to try; the server allows "
                                                  "password"));
  EXPECT_EQ(Lines(result.err), 1) << result.err;
  EXPECT_EQ(pam_->Attempts(), "");
}

// ---- RSA -------------------------------------------------------------------------------------

TEST_F(AuthTest, RsaKeyAgainstAnRsaOnlyServer) {
  sshd().Stop();
  ASSERT_TRUE(WriteFile(sshd().dir() + "/host_key_type", "rsa\n"));
  // Only the SHA-2 signature algorithms, for the host key and for the user key: what OpenSSH
  // 9.2 allows by default anyway, here written out so that nothing else can pass.
  ASSERT_TRUE(WriteFile(sshd().dir() + "/sshd_config.extra",
                        "HostKeyAlgorithms rsa-sha2-512,rsa-sha2-256\n"
                        "PubkeyAcceptedAlgorithms rsa-sha2-512,rsa-sha2-256\n"));
  std::string rsa_key = lab_->dir().Sub("id_rsa");
  ASSERT_TRUE(Succeeds({"ssh-keygen", "-q", "-t", "rsa", "-b", "3072", "-N", "", "-f", rsa_key}));
  auto rsa_public = ReadFile(rsa_key + ".pub");
  ASSERT_TRUE(rsa_public);
  ASSERT_TRUE(WriteFile(sshd().dir() + "/authorized_keys", *rsa_public));
  ASSERT_TRUE(sshd().Restart());
  ASSERT_TRUE(WriteFile(sshd().known_hosts(), ""));  // the new key is written by the master

  auto result = RunDetached({"ip", SshOption({"IdentityFile=" + rsa_key, "StrictHostKeyChecking=accept-new"}), "lab"});
  ASSERT_EQ(result.exit_code, 0) << result.err << "\nmaster log:\n" << MasterLog() << "\nsshd log:\n" << sshd().Log();
  EXPECT_EQ(sshd().CountInLog("Accepted publickey for " + LocalUser()), 1) << sshd().Log();
  EXPECT_THAT(sshd().Log(), HasSubstr(": RSA SHA256:"));
  auto found = RunCommand(
      {"ssh-keygen", "-F", "[127.0.0.1]:" + std::to_string(sshd().port()), "-f", sshd().known_hosts()});
  ASSERT_TRUE(found);
  EXPECT_EQ(found->exit_code, 0) << found->err;
  EXPECT_THAT(found->out, HasSubstr(" ssh-rsa AAAA"));
}

// ---- host keys -------------------------------------------------------------------------------

// Whether every line of `screen` that holds `text` starts with it: the progress line
// ("mconnect: lab: handshake…") was erased before, not left in front of it.
bool StartsItsLine(const std::string& screen, const std::string& text) {
  bool seen = false;
  for (std::size_t at = screen.find(text); at != std::string::npos; at = screen.find(text, at + 1)) {
    seen = true;
    if (at != 0 && screen[at - 1] != '\n') return false;
  }
  return seen;
}

TEST_F(AuthTest, UnknownHostKeyIsAskedAndYesRecordsIt) {
  ASSERT_TRUE(WriteFile(sshd().known_hosts(), ""));
  auto fingerprint = RunCommand({"ssh-keygen", "-l", "-f", sshd().dir() + "/host_ed25519_key.pub"});
  ASSERT_TRUE(fingerprint && fingerprint->ok());
  std::string sha256 = fingerprint->out.substr(fingerprint->out.find("SHA256:"));
  sha256 = sha256.substr(0, sha256.find(' '));

  Tmux& tmux = Pane({"ip", AskingSshOption({"StrictHostKeyChecking=ask"}), "lab"});
  std::string name = "[127.0.0.1]:" + std::to_string(sshd().port());
  ASSERT_TRUE(Answer(tmux, "Are you sure you want to continue connecting (yes/no/[fingerprint])? ", "yes"));
  ASSERT_EQ(WaitForExit(tmux, 30s), 0) << Screen(tmux) << "\nmaster log:\n" << MasterLog();
  std::string screen = Screen(tmux);
  EXPECT_THAT(screen, HasSubstr("The authenticity of host '" + name + "' can't be established."));
  EXPECT_TRUE(StartsItsLine(screen, "The authenticity of host")) << "after the progress line:\n" << screen;
  EXPECT_THAT(screen, HasSubstr("ED25519 key fingerprint is " + sha256 + "."));
  auto found = RunCommand({"ssh-keygen", "-F", name, "-f", sshd().known_hosts()});
  ASSERT_TRUE(found);
  EXPECT_EQ(found->exit_code, 0) << found->err;
  EXPECT_THAT(found->out, HasSubstr(" ssh-ed25519 AAAA"));
}

// The accept-new notice and the changed-key warning start their own lines too.
TEST_F(AuthTest, HostKeyNoticesStartTheirOwnLines) {
  ASSERT_TRUE(WriteFile(sshd().known_hosts(), ""));
  Tmux& added = Pane({"ip", AskingSshOption({"StrictHostKeyChecking=accept-new"}), "lab"});
  ASSERT_EQ(WaitForExit(added, 30s), 0) << Screen(added);
  EXPECT_TRUE(StartsItsLine(Screen(added), "Warning: Permanently added")) << Screen(added);
  lab_->Cleanup();
  ASSERT_TRUE(sshd().Rekey());
  Tmux& changed = Pane({"ip", AskingSshOption(), "lab"});
  ASSERT_EQ(WaitForExit(changed, 30s), 255) << Screen(changed);
  EXPECT_TRUE(StartsItsLine(Screen(changed), "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!")) << Screen(changed);
}

TEST_F(AuthTest, UnknownHostKeyIsRefusedInBatchAndStrictMode) {
  ASSERT_TRUE(WriteFile(sshd().known_hosts(), ""));
  // The lab's config: BatchMode yes, StrictHostKeyChecking yes; then each alone.
  for (const auto& options : std::vector<std::vector<std::string>>{
           {}, {"BatchMode=no", "StrictHostKeyChecking=yes"}, {"BatchMode=yes", "StrictHostKeyChecking=ask"}}) {
    SCOPED_TRACE(::testing::PrintToString(options));
    auto result = RunDetached({"ip", SshOption(options), "lab"});
    EXPECT_EQ(result.exit_code, 255);
    EXPECT_THAT(result.err, HasSubstr("(host key verification failed)"));
    EXPECT_EQ(Lines(result.err), 1) << result.err;
    EXPECT_EQ(ReadFile(sshd().known_hosts()).value_or("?"), "") << "nothing may be written";
    EXPECT_EQ(lab_->MasterPid(), 0);
  }
  EXPECT_EQ(sshd().CountInLog("Accepted publickey"), 0);
}

// ---- a master on its own (interactive = false) -----------------------------------------------

// Sets environment variables of this process for one test.
class ScopedEnv {
 public:
  ScopedEnv& Set(const char* name, const std::string& value) {
    const char* old = std::getenv(name);
    saved_.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
    ::setenv(name, value.c_str(), 1);
    return *this;
  }
  ~ScopedEnv() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
      if (it->second) {
        ::setenv(it->first.c_str(), it->second->c_str(), 1);
      } else {
        ::unsetenv(it->first.c_str());
      }
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

// ---- the agent ---------------------------------------------------------------------------------

// The key is encrypted on disk but held by a real ssh-agent: the master authenticates through the
// agent without asking anything, and when sshd goes away and comes back it re-authenticates
// through the agent on its own, with nobody there; `ssh -S` then works without a prompt.
TEST_F(AuthTest, AgentAuthenticatesAndLetsTheMasterReconnectAlone) {
  ASSERT_TRUE(EncryptKey());
  std::string agent_socket = lab_->dir().Sub("agent.sock");
  // ssh-agent daemonizes and says its pid ("SSH_AGENT_PID=N; export ..."); stopped by that pid.
  auto agent = RunCommand({"ssh-agent", "-s", "-a", agent_socket});
  ASSERT_TRUE(agent && agent->ok()) << (agent ? agent->err : agent.error().message);
  std::smatch pid;
  ASSERT_TRUE(std::regex_search(agent->out, pid, std::regex("SSH_AGENT_PID=([0-9]+)"))) << agent->out;
  struct StopAgent {
    pid_t pid;
    ~StopAgent() { KillPid(pid); }
  } stop_agent{static_cast<pid_t>(std::stoi(pid[1]))};
  ASSERT_TRUE(Exists(agent_socket)) << "ssh-agent did not create " << agent_socket;
  // ssh-add decrypts the key once, through an askpass program, as a person's session would.
  auto [askpass, record] = MakeAskpass();
  auto added = RunCommand({"env", "SSH_AUTH_SOCK=" + agent_socket, "SSH_ASKPASS=" + askpass,
                           "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0", "setsid", "-w", "ssh-add", key()});
  ASSERT_TRUE(added && added->ok()) << (added ? added->err : added.error().message);
  lab_->env().Set("SSH_AUTH_SOCK", agent_socket);

  // IdentitiesOnly with the (encrypted) IdentityFile: the agent's copy of that key is used.
  auto first = RunDetached({"ip", SshOption({"ServerAliveInterval=1", "ServerAliveCountMax=2"}), "lab"});
  ASSERT_EQ(first.exit_code, 0) << first.err << "\nmaster log:\n" << MasterLog();
  pid_t master = lab_->MasterPid();
  ASSERT_GT(master, 0);
  EXPECT_THAT(MasterLog(), HasSubstr("agent"));

  sshd().Stop();
  ASSERT_TRUE(sshd().Restart());
  bool up_again = false;
  for (auto deadline = std::chrono::steady_clock::now() + 30s; !up_again && std::chrono::steady_clock::now() < deadline;
       std::this_thread::sleep_for(100ms)) {
    auto status = lab_->Status();
    up_again = status && status->reconnects() >= 1 && status->link() == "up";
  }
  ASSERT_TRUE(up_again) << "the master did not re-authenticate through the agent; log:\n" << MasterLog();
  auto ssh = ThroughMaster("echo agent-$((40+2))");
  EXPECT_EQ(ssh.exit_code, 0) << ssh.err;
  EXPECT_EQ(ssh.out, "agent-42\n");
  EXPECT_EQ(lab_->MasterPid(), master);
  EXPECT_EQ(sshd().CountInLog("Accepted publickey"), 2) << "once before, once on the reconnect:\n" << sshd().Log();
  EXPECT_EQ(Count(ReadFile(record).value_or(""), "\n"), 1) << "only ssh-add asked for the passphrase";
}

TEST_F(AuthTest, NobodyThereMeansNothingIsAsked) {
  // What a reconnecting master does (mux/ssh/reconnector.cc sets interactive = false): even with
  // an askpass program forced on, an encrypted key is skipped, and the failure says why.
  ASSERT_TRUE(EncryptKey());
  auto [askpass, record] = MakeAskpass();
  ScopedEnv env;
  env.Set("SSH_ASKPASS", askpass).Set("SSH_ASKPASS_REQUIRE", "force");

  mux::ConnectParams params;
  params.user = LocalUser();
  params.host = "127.0.0.1";
  params.port = sshd().port();
  params.known_hosts_files = {sshd().known_hosts()};
  params.host_key_policy = mux::HostKeyPolicy::kStrict;
  params.identity_files = {key()};
  params.identities_only = true;
  params.identity_agent = "none";
  params.timeout = 10s;
  params.interactive = false;
  auto start = std::chrono::steady_clock::now();
  auto detached = mux::SshConnection::Open(params, [](std::string_view) {});
  ASSERT_FALSE(detached);
  EXPECT_EQ(detached.error().kind, mux::OpenFailure::kAuthentication);
  EXPECT_THAT(detached.error().message, HasSubstr(key() + " (encrypted; nobody is there to answer)"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_FALSE(Exists(record)) << "a master on its own ran the askpass program";

  // BatchMode, with a person there: nothing is asked either.
  params.interactive = true;
  params.auth.batch_mode = true;
  auto batch = mux::SshConnection::Open(params, [](std::string_view) {});
  ASSERT_FALSE(batch);
  EXPECT_THAT(batch.error().message, HasSubstr("(encrypted; BatchMode is on)"));
  EXPECT_FALSE(Exists(record));

  // The same connection with a person there: the askpass program answers, so the two refusals
  // above were decisions, not accidents of the setup.
  params.auth.batch_mode = false;
  auto attended = mux::SshConnection::Open(params, [](std::string_view) {});
  ASSERT_TRUE(attended) << attended.error().message;
  EXPECT_EQ((*attended)->auth_method(), "publickey (" + key() + ")");
  EXPECT_EQ(Lines(ReadFile(record).value_or("")), 1);
}

// ---- the pure parts --------------------------------------------------------------------------

class KeyFiles : public ::testing::Test {
 protected:
  // A key made by ssh-keygen with ARGS, read back.
  std::string Make(const std::string& name, const std::vector<std::string>& args) {
    std::string path = dir_.Sub(name);
    std::vector<std::string> argv{"ssh-keygen", "-q", "-C", "test", "-f", path};
    argv.insert(argv.end(), args.begin(), args.end());
    EXPECT_TRUE(Succeeds(argv));
    return ReadFile(path).value_or("");
  }
  std::vector<std::uint8_t> PublicBlob(const std::string& name) {
    auto line = ReadFile(dir_.Sub(name + ".pub"));
    auto blob = line ? mux::ParsePublicKeyLine(*line) : Fail(line.error());
    EXPECT_TRUE(blob) << blob.error().message;
    return blob ? *blob : std::vector<std::uint8_t>{};
  }

  TempDir dir_;
};

TEST_F(KeyFiles, OpenSshFormatTellsEncryptionAndCarriesThePublicKey) {
  auto plain = mux::InspectPrivateKey(Make("plain", {"-t", "ed25519", "-N", ""}));
  ASSERT_TRUE(plain) << plain.error().message;
  EXPECT_EQ(plain->format, mux::PrivateKeyInfo::Format::kOpenSsh);
  EXPECT_FALSE(plain->encrypted);
  EXPECT_EQ(plain->public_blob, PublicBlob("plain"));

  auto locked = mux::InspectPrivateKey(Make("locked", {"-t", "ed25519", "-N", "secret"}));
  ASSERT_TRUE(locked) << locked.error().message;
  EXPECT_TRUE(locked->encrypted);
  EXPECT_EQ(locked->public_blob, PublicBlob("locked"));
}

TEST_F(KeyFiles, PemAndPkcs8TellEncryption) {
  auto pem = mux::InspectPrivateKey(Make("pem", {"-t", "rsa", "-b", "1024", "-m", "PEM", "-N", ""}));
  ASSERT_TRUE(pem) << pem.error().message;
  EXPECT_EQ(pem->format, mux::PrivateKeyInfo::Format::kPem);
  EXPECT_FALSE(pem->encrypted);
  auto pem_locked = mux::InspectPrivateKey(Make("pem-locked", {"-t", "rsa", "-b", "1024", "-m", "PEM", "-N", "secret"}));
  ASSERT_TRUE(pem_locked) << pem_locked.error().message;
  EXPECT_TRUE(pem_locked->encrypted);
  auto pkcs8 = mux::InspectPrivateKey(Make("pkcs8", {"-t", "ecdsa", "-m", "PKCS8", "-N", "secret"}));
  ASSERT_TRUE(pkcs8) << pkcs8.error().message;
  EXPECT_EQ(pkcs8->format, mux::PrivateKeyInfo::Format::kPkcs8);
  EXPECT_TRUE(pkcs8->encrypted);
}

TEST_F(KeyFiles, DamagedFilesAreErrorsNotCrashes) {
  std::string key = Make("damaged", {"-t", "ed25519", "-N", ""});
  EXPECT_FALSE(mux::InspectPrivateKey("hello"));
  EXPECT_FALSE(mux::InspectPrivateKey("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"));
  for (std::size_t cut : {40u, 60u, 100u, 200u}) {
    std::string truncated = key.substr(0, cut) + "\n-----END OPENSSH PRIVATE KEY-----\n";
    EXPECT_FALSE(mux::InspectPrivateKey(truncated)) << "cut at " << cut;
  }
  EXPECT_FALSE(mux::InspectPrivateKey("-----BEGIN OPENSSH PRIVATE KEY-----\n!!!!\n-----END OPENSSH PRIVATE KEY-----\n"));
  auto line = ReadFile(dir_.Sub("damaged.pub"));
  ASSERT_TRUE(line);
  ASSERT_TRUE(mux::ParsePublicKeyLine(*line));
  EXPECT_FALSE(mux::ParsePublicKeyLine("ssh-rsa" + line->substr(line->find(' '))))
      << "the label must match the key's own type";
  EXPECT_FALSE(mux::ParsePublicKeyLine("ssh-ed25519"));
}

TEST(AuthMethods, OrderFollowsPreferredAuthenticationsAndTheSwitches) {
  mux::AuthOptions options;
  EXPECT_EQ(mux::MethodOrder(options),
            (std::vector<std::string>{"publickey", "keyboard-interactive", "password"}));
  options.preferred = mux::SplitMethods("gssapi-with-mic,password,,publickey,password");
  EXPECT_EQ(mux::MethodOrder(options), (std::vector<std::string>{"password", "publickey"}));
  options.preferred.clear();
  options.kbd_interactive = false;
  options.pubkey = false;
  EXPECT_EQ(mux::MethodOrder(options), (std::vector<std::string>{"password"}));
  EXPECT_EQ(mux::SplitMethods("publickey,keyboard-interactive"),
            (std::vector<std::string>{"publickey", "keyboard-interactive"}));
}

TEST(PromptRoute, FollowsOpenSshReadPassphrase) {
  using mux::PromptRoute;
  auto route = [](std::string require, bool display, bool terminal) {
    mux::PromptSetting setting;
    setting.askpass_require = std::move(require);
    setting.askpass = "/bin/true";
    setting.display = display;
    setting.terminal = terminal;
    return mux::ChoosePromptRoute(setting);
  };
  EXPECT_EQ(route("", false, true), PromptRoute::kTerminal);
  EXPECT_EQ(route("", true, true), PromptRoute::kTerminal);
  EXPECT_EQ(route("", true, false), PromptRoute::kAskpass);
  EXPECT_EQ(route("", false, false), PromptRoute::kNobody);
  EXPECT_EQ(route("force", false, true), PromptRoute::kAskpass);
  EXPECT_EQ(route("FORCE", false, false), PromptRoute::kAskpass);
  EXPECT_EQ(route("prefer", true, true), PromptRoute::kAskpass);
  EXPECT_EQ(route("prefer", false, true), PromptRoute::kTerminal);
  EXPECT_EQ(route("prefer", false, false), PromptRoute::kNobody);
  EXPECT_EQ(route("never", true, true), PromptRoute::kTerminal);
  EXPECT_EQ(route("never", true, false), PromptRoute::kNobody);
}

TEST(Prompter, AskpassProgramGivesTheFirstLine) {
  TempDir dir;
  std::string program = dir.Sub("askpass");
  ASSERT_TRUE(WriteScript(program, "printf 'first line\\r\\nsecond line\\n'\n"));
  mux::PromptSetting setting;
  setting.askpass_require = "force";
  setting.askpass = program;
  mux::Prompter prompter(setting);
  ASSERT_EQ(prompter.route(), mux::PromptRoute::kAskpass);
  auto answer = prompter.Ask("Question? ", false);
  ASSERT_TRUE(answer) << answer.error().message;
  EXPECT_EQ(answer->view(), "first line");

  ASSERT_TRUE(WriteScript(program, "echo never-used; exit 1\n"));
  auto refused = prompter.Ask("Question? ", false);
  ASSERT_FALSE(refused);
  EXPECT_THAT(refused.error().message, HasSubstr("exit status 1"));

  mux::Prompter nobody;
  EXPECT_FALSE(nobody.CanAsk());
  EXPECT_FALSE(nobody.Ask("Question? ", false));
}

TEST(Prompter, ServerTextIsMadeHarmless) {
  EXPECT_EQ(mux::SanitizeForTerminal("Password: "), "Password: ");
  EXPECT_EQ(mux::SanitizeForTerminal("one\ntwo\tthree"), "one\ntwo\tthree");
  EXPECT_EQ(mux::SanitizeForTerminal("\x1b[2Jclear"), "?[2Jclear");
  EXPECT_EQ(mux::SanitizeForTerminal("csi \xc2\x9b" "2J"), "csi ?2J");
  EXPECT_EQ(mux::SanitizeForTerminal("caf\xc3\xa9 \xe2\x9c\x93"), "caf\xc3\xa9 \xe2\x9c\x93");
  EXPECT_EQ(mux::SanitizeForTerminal("bad \xff\xc3"), "bad ??");
}

TEST(SecretString, KeepsItsBytesUntilItGoes) {
  mux::SecretString secret("hunter2");
  EXPECT_EQ(secret.view(), "hunter2");
  EXPECT_STREQ(secret.c_str(), "hunter2");
  mux::SecretString moved = std::move(secret);
  EXPECT_EQ(moved.view(), "hunter2");
  EXPECT_TRUE(secret.empty());  // NOLINT(bugprone-use-after-move): a moved-from secret is empty
  EXPECT_STREQ(secret.c_str(), "");
  std::string copy = "a passphrase held in a std::string";
  mux::ClearString(copy);
  EXPECT_TRUE(copy.empty());
}

}  // namespace
}  // namespace mconnect::testing
