// Errors as values. A Result carries either a value or one human-readable Error whose message
// is a complete sentence fragment fit for the user's one-line failure ("cannot connect to ..."),
// and, when there is one, a hint: what to do about it, shown on a line of its own
// (term::PrintFailure prints both).
#pragma once

#include <expected>
#include <string>
#include <utility>

#include <fmt/format.h>

namespace mconnect {

struct Error {
  std::string message;
  // "check the host name and what `ssh -G bebou` prints": empty when the message says it all.
  // Whoever words the failure again in a wider context keeps the hint:
  // `Fail(Error{fmt::format("cannot start it: {}", e.message), e.hint})`.
  std::string hint = {};
};

template <typename T>
using Result = std::expected<T, Error>;

// Builds the error branch of any Result: `return Fail("bad port {}", port);`, or with a hint,
// `return Fail(Error{fmt::format("bad port {}", port), "ports go up to 65535"});`
template <typename... Args>
std::unexpected<Error> Fail(fmt::format_string<Args...> format, Args&&... args) {
  return std::unexpected(Error{fmt::format(format, std::forward<Args>(args)...)});
}

inline std::unexpected<Error> Fail(Error error) { return std::unexpected(std::move(error)); }

// Aborts with file, line and expression: for broken internal invariants only, never for input.
[[noreturn]] void AssertFailed(const char* expression, const char* file, int line);

}  // namespace mconnect

#define MCONNECT_CHECK(expression) \
  ((expression) ? (void)0 : ::mconnect::AssertFailed(#expression, __FILE__, __LINE__))
