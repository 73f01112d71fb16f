#include "mux/forward/x11_auth.h"

#include <fmt/format.h>

#include <charconv>

namespace mconnect::mux::x11 {
namespace {

std::size_t Padded(std::size_t n) { return (n + 3) & ~std::size_t{3}; }

std::size_t Card16(std::string_view bytes, std::size_t at, bool big_endian) {
  auto hi = static_cast<unsigned char>(bytes[big_endian ? at : at + 1]);
  auto lo = static_cast<unsigned char>(bytes[big_endian ? at + 1 : at]);
  return static_cast<std::size_t>(hi) << 8 | lo;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> Unhex(std::string_view hex) {
  if (hex.empty() || hex.size() % 2 != 0 || hex.size() > 512) return std::nullopt;
  std::string out;
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    int hi = HexDigit(hex[i]);
    int lo = HexDigit(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi << 4 | lo));
  }
  return out;
}

}  // namespace

std::expected<SpoofStep, std::string> Spoof(std::string_view bytes, const std::vector<Grant>& grants) {
  if (bytes.size() < kSetupHeader) return NeedMore{};
  if (bytes[0] != 'B' && bytes[0] != 'l') {
    return std::unexpected(fmt::format("not an X11 connection setup (byte order 0x{:02x})",
                                       static_cast<unsigned char>(bytes[0])));
  }
  const bool big_endian = bytes[0] == 'B';
  const std::size_t name_length = Card16(bytes, 6, big_endian);
  const std::size_t data_length = Card16(bytes, 8, big_endian);
  const std::size_t total = kSetupHeader + Padded(name_length) + Padded(data_length);
  if (bytes.size() < total) return NeedMore{};
  std::string_view name = bytes.substr(kSetupHeader, name_length);
  const std::size_t data_at = kSetupHeader + Padded(name_length);
  std::string_view data = bytes.substr(data_at, data_length);
  for (std::size_t i = 0; i < grants.size(); ++i) {
    const Grant& grant = grants[i];
    // The real cookie is as long as the fake one (made so): it goes in place, the lengths stay.
    if (name != grant.fake.proto || data != grant.fake.data || grant.real.data.size() != data.size() ||
        grant.real.proto != grant.fake.proto) {
      continue;
    }
    Spoofed spoofed;
    spoofed.grant = i;
    spoofed.setup.assign(bytes.substr(0, total));
    spoofed.setup.replace(data_at, data_length, grant.real.data);
    spoofed.consumed = total;
    return spoofed;
  }
  return std::unexpected(name.empty() ? std::string("an X11 connection without a cookie")
                                      : fmt::format("an X11 connection with a {} cookie that no session was given",
                                                    name.size() <= 64 ? name : name.substr(0, 64)));
}

std::optional<Cookie> ParseXauthList(std::string_view output) {
  std::string_view line = output.substr(0, output.find('\n'));
  std::vector<std::string_view> words;
  while (!line.empty() && words.size() < 4) {
    std::size_t start = line.find_first_not_of(" \t");
    if (start == std::string_view::npos) break;
    line.remove_prefix(start);
    std::size_t end = line.find_first_of(" \t");
    words.push_back(line.substr(0, end));
    line.remove_prefix(end == std::string_view::npos ? line.size() : end);
  }
  if (words.size() != 3 || words[1].empty() || words[1].size() > 64) return std::nullopt;
  auto data = Unhex(words[2]);
  if (!data) return std::nullopt;
  return Cookie{std::string(words[1]), std::move(*data)};
}

std::string Hex(std::string_view data) {
  std::string out;
  for (char c : data) out += fmt::format("{:02x}", static_cast<unsigned char>(c));
  return out;
}

std::optional<LocalDisplay> ParseDisplay(std::string_view display) {
  if (display.starts_with("unix:")) display.remove_prefix(4);  // "unix:N" is ":N" on the socket
  if (!display.starts_with(':')) return std::nullopt;
  display.remove_prefix(1);
  int number = -1;
  auto [end, error] = std::from_chars(display.data(), display.data() + display.size(), number);
  if (error != std::errc() || number < 0 || number > 65535) return std::nullopt;
  LocalDisplay local{fmt::format("/tmp/.X11-unix/X{}", number), 0};
  std::string_view rest(end, static_cast<std::size_t>(display.data() + display.size() - end));
  if (rest.empty()) return local;
  if (rest[0] != '.') return std::nullopt;
  rest.remove_prefix(1);
  auto [screen_end, screen_error] = std::from_chars(rest.data(), rest.data() + rest.size(), local.screen);
  if (screen_error != std::errc() || screen_end != rest.data() + rest.size() || local.screen < 0 ||
      local.screen > 255) {
    return std::nullopt;
  }
  return local;
}

}  // namespace mconnect::mux::x11
