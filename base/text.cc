#include "base/text.h"

namespace mconnect {

std::string SanitizeForMessage(std::string_view text, std::size_t max_chars) {
  std::string clean;
  for (char c : text.substr(0, max_chars)) clean += (c >= 0x20 && c <= 0x7e) ? c : '?';
  if (text.size() > max_chars) clean += "...";
  return clean;
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

std::string_view Trim(std::string_view text) {
  while (!text.empty() && IsSpace(text.front())) text.remove_prefix(1);
  while (!text.empty() && IsSpace(text.back())) text.remove_suffix(1);
  return text;
}

}  // namespace mconnect
