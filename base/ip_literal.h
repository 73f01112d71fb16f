// IPv4 and IPv6 literals, as inet_pton reads them: used by remote-ip/ to validate what strategies
// print and by mosh/ for mosh-server's -i. Pure: no I/O.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace mconnect {

struct IpLiteral {
  int family = AF_UNSPEC;                // AF_INET or AF_INET6 once parsed
  std::array<std::uint8_t, 16> bytes{};  // network order; IPv4 uses the first 4
};

// `text` when it is exactly an IPv4 or IPv6 literal: no whitespace, no zone id, no port, no NUL
// byte (inet_pton would stop at one and read only the part before it).
std::optional<IpLiteral> ParseIpLiteral(std::string_view text);

// True when `text` is exactly an IPv4 or IPv6 literal (as ParseIpLiteral accepts).
bool IsIpLiteral(std::string_view text);

}  // namespace mconnect
