// Questions to the person in front of the master while it authenticates in the foreground:
// passphrases, passwords and keyboard-interactive prompts. Where a question goes follows
// OpenSSH's read_passphrase() (readpass.c) and ssh(1)'s ENVIRONMENT section:
//   - the controlling terminal (/dev/tty), echo off unless the question says otherwise, the
//     terminal restored on every path, also when a signal arrives while we wait (the signal is
//     then delivered as if we had not been there, like readpassphrase(3));
//   - or the askpass program ($SSH_ASKPASS, else /usr/bin/ssh-askpass) with the question as its
//     argv[1] and the first line of its stdout as the answer:
//       SSH_ASKPASS_REQUIRE=force   always the askpass program, DISPLAY or not;
//       SSH_ASKPASS_REQUIRE=prefer  the askpass program when DISPLAY or WAYLAND_DISPLAY is set;
//       SSH_ASKPASS_REQUIRE=never   never the askpass program;
//       otherwise                   the terminal; without one, the askpass program when
//                                   DISPLAY or WAYLAND_DISPLAY is set.
// Nothing is asked at all when nobody is there (BatchMode, a master reconnecting on its own).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "base/result.h"

namespace mconnect::mux {

// An answer that must not outlive its use (passphrase, password): its bytes are cleared with
// OPENSSL_cleanse when it is destroyed or assigned over. Move-only; the storage is allocated
// once and never grows, so no stale copy is left in freed memory. Always NUL-terminated.
class SecretString {
 public:
  SecretString() = default;
  explicit SecretString(std::string_view text);
  SecretString(SecretString&& other) noexcept;
  SecretString& operator=(SecretString&& other) noexcept;
  SecretString(const SecretString&) = delete;
  SecretString& operator=(const SecretString&) = delete;
  ~SecretString();

  const char* c_str() const { return data_ ? data_.get() : ""; }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::string_view view() const { return {c_str(), size_}; }

 private:
  void Clear();

  std::unique_ptr<char[]> data_;
  std::size_t size_ = 0;
};

// Clears `text` in place, capacity included: Wipe(std::string&) of base/secret.h.
void ClearString(std::string& text);

enum class PromptRoute { kTerminal, kAskpass, kNobody };

// What decides the route: the environment and whether there is a terminal.
struct PromptSetting {
  std::string askpass_require;  // SSH_ASKPASS_REQUIRE as set ("" when unset)
  std::string askpass;          // SSH_ASKPASS, else /usr/bin/ssh-askpass
  bool display = false;         // DISPLAY or WAYLAND_DISPLAY set and not empty
  bool terminal = false;        // /dev/tty opens

  // This process's environment and controlling terminal.
  static PromptSetting FromThisProcess();
};

// The route OpenSSH's read_passphrase() would take for a passphrase question.
PromptRoute ChoosePromptRoute(const PromptSetting& setting);

// `text` from a server (a prompt, an instruction, a banner) made harmless for a terminal:
// control characters other than newline and tab (and C1 controls in UTF-8) become '?'.
std::string SanitizeForTerminal(std::string_view text);

// While one is alive, a question waits for the person (a passphrase, a password, a host key).
// It erases the progress line first (term::HideProgress), and tells the hook set with
// SetAskingHook: the master writes it in its record, so that a second mconnect for the same
// destination says what it waits for. Nests.
class Asking {
 public:
  Asking();
  ~Asking();
  Asking(const Asking&) = delete;
  Asking& operator=(const Asking&) = delete;
};
// Called with true when the first question starts, false when the last one is answered.
void SetAskingHook(std::function<void(bool asking)> hook);

class Prompter {
 public:
  // Nobody to ask: every Ask fails at once, Tell stays silent.
  Prompter() = default;
  explicit Prompter(PromptSetting setting);
  // Asks where this process's environment says (PromptSetting::FromThisProcess).
  static Prompter ForThisProcess();

  bool CanAsk() const { return route_ != PromptRoute::kNobody; }
  PromptRoute route() const { return route_; }

  // One question; the answer without its line end. Fails when nobody can answer, the person
  // ends the input (Ctrl-D) or lets `timeout` pass, the askpass program fails, or a signal
  // interrupts the question and does not end the process.
  Result<SecretString> Ask(std::string_view question, bool echo,
                           std::chrono::milliseconds timeout = std::chrono::minutes(5)) const;

  // A line for the person (a keyboard-interactive instruction, "Permission denied, please try
  // again."): on stderr, as ssh shows them, sanitized. Silent when nobody can be asked.
  void Tell(std::string_view text) const;

 private:
  PromptSetting setting_;
  PromptRoute route_ = PromptRoute::kNobody;
};

}  // namespace mconnect::mux
