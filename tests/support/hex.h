// Test vectors written as lowercase hex ("0000000810000004"): bytes captured from real peers.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace mconnect::testing {

inline std::vector<std::uint8_t> Hex(std::string_view hex) {
  auto nibble = [](char c) -> std::uint8_t {
    if (c >= '0' && c <= '9') return static_cast<std::uint8_t>(c - '0');
    return static_cast<std::uint8_t>(c - 'a' + 10);
  };
  std::vector<std::uint8_t> out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<std::uint8_t>(nibble(hex[i]) << 4 | nibble(hex[i + 1])));
  }
  return out;
}

}  // namespace mconnect::testing
