#include "base/text.h"

namespace mconnect {

std::string SanitizeForMessage(std::string_view text, std::size_t max_chars) {
  std::string clean;
  for (char c : text.substr(0, max_chars)) clean += (c >= 0x20 && c <= 0x7e) ? c : '?';
  if (text.size() > max_chars) clean += "...";
  return clean;
}

}  // namespace mconnect
