// Text from peers and remote commands, made fit for a one-line message on a terminal.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace mconnect {

// `text` made safe to quote in a one-line message: printable ASCII only (anything else becomes
// '?'), at most `max_chars` characters, then "..." if it was cut. Remote output may hold
// terminal escape sequences or a whole web page; neither belongs in an error line.
std::string SanitizeForMessage(std::string_view text, std::size_t max_chars = 40);

// White space as C's isspace has it in the "C" locale (' ', \t, \n, \v, \f, \r), whatever the
// process's locale: what separates words in ssh -G's output, a remote command's, a config line.
bool IsSpace(char c);
// `text` without the white space (IsSpace) at either end.
std::string_view Trim(std::string_view text);

// The name `names` gives `value`, or `unknown` for a value it does not list (a number cast to the
// enum by a peer's bytes).
template <typename Enum>
constexpr std::string_view NameIn(Enum value,
                                  std::initializer_list<std::pair<std::type_identity_t<Enum>, std::string_view>> names,
                                  std::string_view unknown = "unknown") {
  for (const auto& [listed, name] : names) {
    if (listed == value) return name;
  }
  return unknown;
}

}  // namespace mconnect
