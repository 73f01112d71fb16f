#include "mux/ssh/prompt.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <strings.h>
#include <termios.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "base/log.h"
#include "base/terminal.h"
#include "base/secret.h"
#include "base/subprocess.h"
#include "base/unique_fd.h"

namespace mconnect::mux {
namespace {

using Clock = std::chrono::steady_clock;

// OpenSSH's _PATH_SSH_ASKPASS_DEFAULT on Debian.
constexpr const char* kDefaultAskpass = "/usr/bin/ssh-askpass";
// As readpass.c: a longer answer is cut here.
constexpr std::size_t kMaxAnswer = 1024;

// The signals readpassphrase(3) catches while it has the terminal altered.
constexpr std::array kSignals = {SIGALRM, SIGHUP, SIGINT, SIGPIPE, SIGQUIT, SIGTERM, SIGTSTP, SIGTTIN, SIGTTOU};

volatile sig_atomic_t g_caught[NSIG];

extern "C" void CatchSignal(int signal) { g_caught[signal] = 1; }

bool IsStop(int signal) { return signal == SIGTSTP || signal == SIGTTIN || signal == SIGTTOU; }

// While alive, kSignals are caught (only recorded) and blocked except inside WaitMask() (a
// ppoll mask), so none can slip in between a check and the wait. Release() puts the old
// handlers and mask back and delivers what was caught, so that Ctrl-C still ends the process
// and Ctrl-Z still stops it, but only after the terminal is whole again.
class SignalTrap {
 public:
  SignalTrap() {
    sigset_t set;
    sigemptyset(&set);
    for (int signal : kSignals) {
      sigaddset(&set, signal);
      g_caught[signal] = 0;
    }
    ::pthread_sigmask(SIG_BLOCK, &set, &saved_mask_);
    struct sigaction action {};
    action.sa_handler = CatchSignal;
    sigemptyset(&action.sa_mask);
    for (std::size_t i = 0; i < kSignals.size(); ++i) ::sigaction(kSignals[i], &action, &saved_actions_[i]);
    wait_mask_ = saved_mask_;
    for (int signal : kSignals) sigdelset(&wait_mask_, signal);
  }
  ~SignalTrap() { Release(); }
  SignalTrap(const SignalTrap&) = delete;
  SignalTrap& operator=(const SignalTrap&) = delete;

  const sigset_t* WaitMask() const { return &wait_mask_; }
  bool Caught() const {
    for (int signal : kSignals) {
      if (g_caught[signal]) return true;
    }
    return false;
  }
  // True when only job-control stops were caught: the process was stopped and continued, and
  // the question should be asked again.
  bool Release() {
    if (released_) return false;
    released_ = true;
    for (std::size_t i = 0; i < kSignals.size(); ++i) ::sigaction(kSignals[i], &saved_actions_[i], nullptr);
    bool caught = false, fatal = false;
    for (int signal : kSignals) {
      if (!g_caught[signal]) continue;
      caught = true;
      fatal = fatal || !IsStop(signal);
      ::raise(signal);  // pending until the mask below lets it through
    }
    ::pthread_sigmask(SIG_SETMASK, &saved_mask_, nullptr);
    return caught && !fatal;
  }

 private:
  sigset_t saved_mask_{};
  sigset_t wait_mask_{};
  std::array<struct sigaction, kSignals.size()> saved_actions_{};
  bool released_ = false;
};

// Echo off (unless `echo`) for as long as it lives, flushing typed-ahead input as
// readpassphrase(3) does, so that nothing typed before the question becomes its answer.
class TerminalMode {
 public:
  TerminalMode(int fd, bool echo) : fd_(fd) {
    if (echo || ::tcgetattr(fd, &saved_) != 0) return;
    termios quiet = saved_;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO | ECHONL);
    changed_ = ::tcsetattr(fd, TCSAFLUSH, &quiet) == 0;
  }
  ~TerminalMode() { Restore(); }
  TerminalMode(const TerminalMode&) = delete;
  TerminalMode& operator=(const TerminalMode&) = delete;

  void Restore() {
    if (!changed_) return;
    changed_ = false;
    while (::tcsetattr(fd_, TCSAFLUSH, &saved_) != 0 && errno == EINTR) {
    }
  }

 private:
  int fd_;
  termios saved_{};
  bool changed_ = false;
};

void WriteAll(int fd, std::string_view text) {
  while (!text.empty()) {
    ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    text.remove_prefix(static_cast<std::size_t>(n));
  }
}

enum class ReadEnd { kLine, kEndOfInput, kTimeout, kSignal, kError };

// Reads one line from the terminal byte by byte (so nothing after the line end is consumed);
// bytes beyond the buffer are dropped.
ReadEnd ReadLine(int fd, const SignalTrap& trap, Clock::time_point deadline, std::array<char, kMaxAnswer>& buffer,
                 std::size_t& length) {
  while (true) {
    if (trap.Caught()) return ReadEnd::kSignal;
    auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - Clock::now());
    if (left.count() <= 0) return ReadEnd::kTimeout;
    timespec wait{static_cast<time_t>(left.count() / 1'000'000'000), static_cast<long>(left.count() % 1'000'000'000)};
    pollfd readable{fd, POLLIN, 0};
    int ready = ::ppoll(&readable, 1, &wait, trap.WaitMask());
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return ReadEnd::kError;
    if (ready == 0) continue;  // the deadline check above ends it
    char c = 0;
    ssize_t n = ::read(fd, &c, 1);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return ReadEnd::kError;
    if (n == 0) return ReadEnd::kEndOfInput;
    if (c == '\n' || c == '\r') return ReadEnd::kLine;
    if (length + 1 < buffer.size()) buffer[length++] = c;
  }
}

Result<SecretString> AskOnTerminal(std::string_view question, bool echo, std::chrono::milliseconds timeout) {
  UniqueFd tty(::open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY));
  if (!tty) return Fail("cannot open the terminal to ask \"{}\": {}", question, std::strerror(errno));
  auto deadline = Clock::now() + timeout;
  while (true) {
    std::array<char, kMaxAnswer> buffer{};
    std::size_t length = 0;
    ReadEnd end;
    bool ask_again = false;
    {
      SignalTrap trap;
      TerminalMode mode(tty.get(), echo);
      // At the start of a clean line: over whatever typed characters were echoed before echo
      // went off, and over the master's progress line.
      WriteAll(tty.get(), "\r\033[K");
      WriteAll(tty.get(), question);
      end = ReadLine(tty.get(), trap, deadline, buffer, length);
      if (!echo || end != ReadEnd::kLine) WriteAll(tty.get(), "\n");
      mode.Restore();
      ask_again = trap.Release();
    }
    SecretString answer(std::string_view(buffer.data(), length));
    Wipe(buffer.data(), buffer.size());
    switch (end) {
      case ReadEnd::kLine:
        return answer;
      case ReadEnd::kEndOfInput:
        return Fail("no answer to \"{}\" (end of input)", question);
      case ReadEnd::kTimeout:
        return Fail("no answer to \"{}\" within {} s", question,
                    std::chrono::duration_cast<std::chrono::seconds>(timeout).count());
      case ReadEnd::kSignal:
        if (ask_again) continue;  // stopped (Ctrl-Z) and continued: ask again, as ssh does
        return Fail("interrupted while asking \"{}\"", question);
      case ReadEnd::kError:
        return Fail("cannot read the answer to \"{}\" from the terminal: {}", question, std::strerror(errno));
    }
  }
}

// OpenSSH's ssh_askpass(): the program gets the question as argv[1]; a non-zero exit means no
// answer; the answer is its output up to the first line end.
Result<SecretString> AskWithProgram(const std::string& program, std::string_view question,
                                    std::chrono::milliseconds timeout) {
  CommandOptions options;
  options.timeout = timeout;
  options.max_output = kMaxAnswer;
  auto ran = RunCommand({program, std::string(question)}, options);
  if (!ran) return Fail("cannot run the askpass program {}: {}", program, ran.error().message);
  std::string_view out = ran->out;
  SecretString answer(out.substr(0, out.find_first_of("\r\n")));
  Wipe(ran->out);
  if (ran->timed_out) {
    return Fail("the askpass program {} gave no answer within {} s", program,
                std::chrono::duration_cast<std::chrono::seconds>(timeout).count());
  }
  if (!ran->ok()) {
    if (ran->exit_code < 0) return Fail("the askpass program {} died of signal {}", program, ran->signal);
    return Fail("the askpass program {} gave no answer (exit status {})", program, ran->exit_code);
  }
  return answer;
}

Result<SecretString> AskBy(PromptRoute route, const PromptSetting& setting, std::string_view question, bool echo,
                           std::chrono::milliseconds timeout) {
  switch (route) {
    case PromptRoute::kTerminal:
      return AskOnTerminal(question, echo, timeout);
    case PromptRoute::kAskpass:
      log::Info("asking through {}: {}", setting.askpass, question);
      return AskWithProgram(setting.askpass, question, timeout);
    case PromptRoute::kNobody:
      break;
  }
  return Fail("nobody to ask \"{}\"", question);
}

// Length of the UTF-8 sequence starting at text[at] and its code point; 0 when invalid.
std::size_t Utf8Sequence(std::string_view text, std::size_t at, char32_t& code_point) {
  auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  unsigned char lead = byte(at);
  std::size_t length = lead < 0x80 ? 1 : (lead & 0xe0) == 0xc0 ? 2 : (lead & 0xf0) == 0xe0 ? 3 : (lead & 0xf8) == 0xf0 ? 4 : 0;
  if (length == 0 || at + length > text.size()) return 0;
  code_point = length == 1 ? lead : lead & (0x7f >> length);
  for (std::size_t i = 1; i < length; ++i) {
    if ((byte(at + i) & 0xc0) != 0x80) return 0;
    code_point = (code_point << 6) | (byte(at + i) & 0x3f);
  }
  constexpr char32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
  if (code_point < kSmallest[length] || code_point > 0x10ffff || (code_point >= 0xd800 && code_point <= 0xdfff)) {
    return 0;
  }
  return length;
}

bool IsControl(char32_t c) { return (c < 0x20 && c != '\n' && c != '\t') || (c >= 0x7f && c <= 0x9f); }

}  // namespace

SecretString::SecretString(std::string_view text) : data_(new char[text.size() + 1]), size_(text.size()) {
  std::memcpy(data_.get(), text.data(), text.size());
  data_[size_] = '\0';
}

SecretString::SecretString(SecretString&& other) noexcept
    : data_(std::move(other.data_)), size_(std::exchange(other.size_, 0)) {}

SecretString& SecretString::operator=(SecretString&& other) noexcept {
  if (this != &other) {
    Clear();
    data_ = std::move(other.data_);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

SecretString::~SecretString() { Clear(); }

void SecretString::Clear() {
  if (data_) Wipe(data_.get(), size_ + 1);
  data_.reset();
  size_ = 0;
}

void ClearString(std::string& text) { Wipe(text); }

PromptSetting PromptSetting::FromThisProcess() {
  PromptSetting setting;
  if (const char* require = std::getenv("SSH_ASKPASS_REQUIRE")) setting.askpass_require = require;
  const char* askpass = std::getenv("SSH_ASKPASS");
  setting.askpass = askpass != nullptr ? askpass : kDefaultAskpass;
  auto set = [](const char* name) {
    const char* value = std::getenv(name);
    return value != nullptr && *value != '\0';
  };
  setting.display = set("DISPLAY") || set("WAYLAND_DISPLAY");
  UniqueFd tty(::open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY));
  setting.terminal = tty.valid();
  return setting;
}

PromptRoute ChoosePromptRoute(const PromptSetting& setting) {
  bool allow_askpass = setting.display;
  bool use_askpass = false;
  const char* require = setting.askpass_require.c_str();
  if (::strcasecmp(require, "force") == 0) {
    use_askpass = allow_askpass = true;
  } else if (::strcasecmp(require, "prefer") == 0) {
    use_askpass = allow_askpass;
  } else if (::strcasecmp(require, "never") == 0) {
    allow_askpass = false;
  }
  if (!use_askpass && !setting.terminal) use_askpass = true;
  if (use_askpass && allow_askpass) return PromptRoute::kAskpass;
  return setting.terminal ? PromptRoute::kTerminal : PromptRoute::kNobody;
}

std::string SanitizeForTerminal(std::string_view text) {
  std::string clean;
  clean.reserve(text.size());
  for (std::size_t at = 0; at < text.size();) {
    char32_t code_point = 0;
    std::size_t length = Utf8Sequence(text, at, code_point);
    if (length == 0 || IsControl(code_point)) {
      clean += '?';
      at += length == 0 ? 1 : length;
    } else {
      clean.append(text.substr(at, length));
      at += length;
    }
  }
  return clean;
}

Prompter::Prompter(PromptSetting setting) : setting_(std::move(setting)), route_(ChoosePromptRoute(setting_)) {}

Prompter Prompter::ForThisProcess() { return Prompter(PromptSetting::FromThisProcess()); }

namespace {

std::function<void(bool)>& AskingHook() {
  static std::function<void(bool)> hook;
  return hook;
}
int g_asking = 0;

}  // namespace

Asking::Asking() {
  term::HideProgress();
  if (g_asking++ == 0 && AskingHook()) AskingHook()(true);
}

Asking::~Asking() {
  if (--g_asking == 0 && AskingHook()) AskingHook()(false);
}

void SetAskingHook(std::function<void(bool asking)> hook) { AskingHook() = std::move(hook); }

Result<SecretString> Prompter::Ask(std::string_view question, bool echo, std::chrono::milliseconds timeout) const {
  if (route_ == PromptRoute::kNobody) return AskBy(route_, setting_, question, echo, timeout);
  Asking asking;
  // The answer is copied on its way here: into read buffers on the stack (ours, RunCommand's)
  // and into a string that may grow. Blocks freed meanwhile are cleared, and so is the stack
  // the question used once it has been answered.
  WipeFrees wipe_frees;
  auto answer = AskBy(route_, setting_, question, echo, timeout);
  WipeStack();
  return answer;
}

void Prompter::Tell(std::string_view text) const {
  if (route_ == PromptRoute::kNobody || text.empty()) return;
  term::HideProgress();
  std::string line = ::isatty(STDERR_FILENO) ? "\r\033[K" : "";
  line += SanitizeForTerminal(text);
  if (line.back() != '\n') line += '\n';
  WriteAll(STDERR_FILENO, line);
}

}  // namespace mconnect::mux
