#include "base/ip_literal.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstddef>
#include <string>

namespace mconnect {
namespace {

// Longest text inet_pton could accept: a full IPv6 address with an embedded dotted quad.
constexpr std::size_t kMaxLiteralLength = INET6_ADDRSTRLEN;

}  // namespace

std::optional<IpLiteral> ParseIpLiteral(std::string_view text) {
  if (text.empty() || text.size() > kMaxLiteralLength) return std::nullopt;
  // inet_pton reads a C string: an embedded NUL would silently cut the text short.
  if (text.find('\0') != std::string_view::npos) return std::nullopt;
  std::string terminated(text);
  IpLiteral literal;
  if (::inet_pton(AF_INET, terminated.c_str(), literal.bytes.data()) == 1) {
    literal.family = AF_INET;
    return literal;
  }
  if (::inet_pton(AF_INET6, terminated.c_str(), literal.bytes.data()) == 1) {
    literal.family = AF_INET6;
    return literal;
  }
  return std::nullopt;
}

bool IsIpLiteral(std::string_view text) { return ParseIpLiteral(text).has_value(); }

}  // namespace mconnect
