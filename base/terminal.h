// What both executables show a person on a terminal: a one-line progress indicator for slow
// steps, colours, and failures as one line plus a hint. Progress and colours appear only when
// the stream is a terminal; colours never when NO_COLOR is set to anything (no-color.org) or
// TERM is "dumb". Everything here writes to stderr unless told otherwise.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace mconnect::term {

// True when `fd` is a terminal and colours are allowed on it (see above).
bool ColorOn(int fd);

enum class Color { kRed, kGreen, kYellow, kBold };
// `text` wrapped in the colour's escape sequences when `enabled`, else `text` unchanged.
std::string Paint(std::string_view text, Color color, bool enabled);

// "PROGRAM: MESSAGE" on stderr, then "PROGRAM: hint: HINT" when the error has a hint.
void PrintFailure(std::string_view program, const Error& error);

// One line on stderr that each slow step overwrites ("mconnect: bebou: authenticating…"),
// erased by Clear() or the destructor, so that nothing is left on the screen when all went
// well. Silent when stderr is not a terminal. It also times the steps, for --timings: a step
// lasts until the next Step(), Clear() or Done().
class ProgressLine {
 public:
  explicit ProgressLine(std::string prefix);  // e.g. "mconnect: bebou"
  ~ProgressLine();
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  void Step(std::string_view what);
  // Ends the current step and erases the line (before anything else is printed).
  void Clear();
  // Erases the line, the step going on (a question is asked within it).
  void Hide();

  struct Timed {
    std::string step;
    std::chrono::milliseconds elapsed;
  };
  // Every finished step with how long it took, in order.
  const std::vector<Timed>& timings() const { return timings_; }

 private:
  void EndStep();

  std::string prefix_;
  bool enabled_;
  bool shown_ = false;
  std::string step_;
  std::chrono::steady_clock::time_point step_start_;
  std::vector<Timed> timings_;
};

// Erases the progress line shown now, if any: call before anything else goes to the terminal
// (a question, a warning), so that it does not start after "mconnect: bebou: handshake…".
void HideProgress();

}  // namespace mconnect::term
