#include "base/terminal.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

namespace mconnect::term {

bool ColorOn(int fd) {
  const char* no_color = std::getenv("NO_COLOR");
  if (no_color != nullptr && *no_color != '\0') return false;
  const char* term = std::getenv("TERM");
  if (term != nullptr && std::string_view(term) == "dumb") return false;
  return ::isatty(fd) == 1;
}

std::string Paint(std::string_view text, Color color, bool enabled) {
  if (!enabled) return std::string(text);
  std::string_view code;
  switch (color) {
    case Color::kRed: code = "1;31"; break;
    case Color::kGreen: code = "32"; break;
    case Color::kYellow: code = "33"; break;
    case Color::kBold: code = "1"; break;
  }
  return fmt::format("\033[{}m{}\033[0m", code, text);
}

void PrintFailure(std::string_view program, const Error& error) {
  const bool color = ColorOn(STDERR_FILENO);
  if (!error.message.empty()) {
    std::fprintf(stderr, "%.*s: %s\n", int(program.size()), program.data(),
                 Paint(error.message, Color::kRed, color).c_str());
  }
  if (!error.hint.empty()) {
    std::fprintf(stderr, "%.*s: %s %s\n", int(program.size()), program.data(),
                 Paint("hint:", Color::kYellow, color).c_str(), error.hint.c_str());
  }
}

namespace {

ProgressLine* g_shown = nullptr;  // the line on the screen now (one process, one terminal)

}  // namespace

void HideProgress() {
  if (g_shown != nullptr) g_shown->Hide();
}

ProgressLine::ProgressLine(std::string prefix) : prefix_(std::move(prefix)), enabled_(::isatty(STDERR_FILENO) == 1) {}

ProgressLine::~ProgressLine() {
  Clear();
  if (g_shown == this) g_shown = nullptr;
}

void ProgressLine::EndStep() {
  if (step_.empty()) return;
  timings_.push_back({std::move(step_), std::chrono::duration_cast<std::chrono::milliseconds>(
                                            std::chrono::steady_clock::now() - step_start_)});
  step_.clear();
}

void ProgressLine::Step(std::string_view what) {
  EndStep();
  step_ = what;
  step_start_ = std::chrono::steady_clock::now();
  if (!enabled_) return;
  // \r and "erase to end of line": the previous step's longer text leaves nothing behind.
  std::fprintf(stderr, "\r\033[K%s: %.*s…", prefix_.c_str(), int(what.size()), what.data());
  std::fflush(stderr);
  shown_ = true;
  g_shown = this;
}

void ProgressLine::Clear() {
  EndStep();
  Hide();
}

void ProgressLine::Hide() {
  if (!shown_) return;
  std::fputs("\r\033[K", stderr);
  std::fflush(stderr);
  shown_ = false;
}

}  // namespace mconnect::term
