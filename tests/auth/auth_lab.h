// The lab fixture of the authentication tests (tests/auth/): an sshd whose key may be encrypted,
// terminals in tmux where a person would type, askpass programs that record their questions,
// and a PAM service of the lab's own.
//
// The PAM tests run sshd under a program name of their own (tests/lab/sshd-lab's sshd_name):
// OpenSSH uses its program name as the PAM service, so /etc/pam.d/<that name> (written here,
// removed on destruction) configures pam_exec to compare the typed password with a lab file.
// No system password is touched. They need root; without it they fail and say so.
#pragma once

#include <glob.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "base/subprocess.h"
#include "tests/support/lab_fixture.h"
#include "tests/support/mconnect_lab.h"

namespace mconnect::testing {

inline constexpr std::string_view kPassphrase = "correct horse battery";
inline constexpr std::string_view kPassword = "open sesame 42";

inline int Count(std::string_view text, std::string_view needle) {
  int count = 0;
  for (std::size_t at = text.find(needle); at != std::string_view::npos; at = text.find(needle, at + needle.size())) {
    ++count;
  }
  return count;
}

inline int Lines(std::string_view text) { return Count(text, "\n"); }

inline bool Exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

inline ::testing::AssertionResult WriteFile(const std::string& path, std::string_view text, mode_t mode = 0600) {
  {
    std::ofstream out(path, std::ios::trunc);
    out << text;
    if (!out.flush()) return ::testing::AssertionFailure() << "cannot write " << path;
  }
  if (::chmod(path.c_str(), mode) != 0) return ::testing::AssertionFailure() << "cannot chmod " << path;
  return ::testing::AssertionSuccess();
}

// Runs a helper program that must succeed (ssh-keygen): its failure is the test's.
inline ::testing::AssertionResult Succeeds(const std::vector<std::string>& argv) {
  auto result = RunCommand(argv);
  if (!result) return ::testing::AssertionFailure() << result.error().message;
  if (!result->ok()) return ::testing::AssertionFailure() << argv[0] << " failed: " << result->err;
  return ::testing::AssertionSuccess();
}

inline std::string LocalUser() {
  const passwd* user = ::getpwuid(::geteuid());
  return user != nullptr ? user->pw_name : "root";
}

// A shell script at `path`.
inline ::testing::AssertionResult WriteScript(const std::string& path, const std::string& body) {
  return WriteFile(path, "#!/bin/bash\n" + body, 0700);
}

// An askpass program that records each question in `record` (one per line) and answers
// `answer`.
inline ::testing::AssertionResult WriteAskpass(const std::string& path, const std::string& record, std::string_view answer) {
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
  CommandOutput RunDetached(const std::vector<std::string>& args, std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
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
    options.timeout = std::chrono::seconds(30);
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
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return tmux.PaneExitStatus();
  }

  // Types `answer` once `question` is on the screen for the `nth` time.
  ::testing::AssertionResult Answer(Tmux& tmux, const std::string& question, std::string_view answer, int nth = 1) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (Count(Screen(tmux), question) < nth) {
      if (std::chrono::steady_clock::now() > deadline) {
        return ::testing::AssertionFailure() << "no \"" << question << "\" (#" << nth << ") on the screen:\n"
                                             << Screen(tmux) << "\nmaster log:\n" << MasterLog();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
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

}  // namespace mconnect::testing
