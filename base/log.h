// Leveled logging for both executables. The launcher logs to stderr (warnings and up unless
// -v); the master logs to its per-destination file once detached. Nothing secret is logged:
// values that must never appear (the mosh key, passphrases) are wrapped in Secret, whose
// formatter prints only their length.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "base/result.h"

namespace mconnect {

struct Secret {
  std::string_view value;
};

namespace log {

// 0 = warnings and errors, 1 = info (-v), 2 = debug (-vv), 3+ = trace.
spdlog::level::level_enum LevelFromVerbosity(int verbosity);

// Logs to stderr as "NAME: message".
void ToStderr(std::string_view name, int verbosity);
// Logs to `path` (appending, with timestamps); stderr is left alone.
Result<void> ToFile(std::string_view name, const std::string& path, int verbosity);

// log::Error, Warn, Info and Debug: spdlog at that level, as `log::Info("{} ms", elapsed)`.
template <spdlog::level::level_enum Level>
struct At {
  template <typename... Args>
  void operator()(fmt::format_string<Args...> format, Args&&... args) const {
    spdlog::log(Level, format, std::forward<Args>(args)...);
  }
};
inline constexpr At<spdlog::level::err> Error;
inline constexpr At<spdlog::level::warn> Warn;
inline constexpr At<spdlog::level::info> Info;
inline constexpr At<spdlog::level::debug> Debug;

}  // namespace log
}  // namespace mconnect

template <>
struct fmt::formatter<mconnect::Secret> : fmt::formatter<std::string_view> {
  auto format(const mconnect::Secret& secret, fmt::format_context& context) const {
    return fmt::format_to(context.out(), "<secret, {} bytes>", secret.value.size());
  }
};
