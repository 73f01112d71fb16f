#include "remote-ip/address.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "base/ip_literal.h"
#include "base/text.h"

namespace mconnect::remoteip {
namespace {

// How much of a remote command's output an error message may quote.
constexpr std::size_t kMaxQuoted = 40;

std::string Sanitize(std::string_view text) { return SanitizeForMessage(text, kMaxQuoted); }

std::vector<std::string_view> Split(std::string_view text, bool (*separator)(char)) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || separator(text[i])) {
      if (i > start) parts.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  return parts;
}

// ::ffff:a.b.c.d is an IPv4 address seen through a dual-stack socket; mosh-client wants the
// IPv4 form, and the IPv4 rules below must apply to it.
IpLiteral Unmap(const IpLiteral& literal) {
  static constexpr std::array<std::uint8_t, 12> kMappedPrefix{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (literal.family != AF_INET6 || std::memcmp(literal.bytes.data(), kMappedPrefix.data(), 12) != 0) {
    return literal;
  }
  IpLiteral v4;
  v4.family = AF_INET;
  std::memcpy(v4.bytes.data(), literal.bytes.data() + 12, 4);
  return v4;
}

std::string Canonical(const IpLiteral& literal) {
  char buffer[INET6_ADDRSTRLEN] = {};
  if (::inet_ntop(literal.family, literal.bytes.data(), buffer, sizeof buffer) == nullptr) return {};
  return buffer;
}

// Why this parsed literal cannot be the destination of mosh's UDP, or empty if it can.
std::string Unusable(const IpLiteral& literal) {
  const auto& b = literal.bytes;
  if (literal.family == AF_INET) {
    if (b[0] == 0) {
      return fmt::format("{} is an unspecified address (0.0.0.0/8), not a destination", Canonical(literal));
    }
    if (b[0] >= 224 && b[0] <= 239) return fmt::format("{} is a multicast address, not a host", Canonical(literal));
    if (b[0] == 255 && b[1] == 255 && b[2] == 255 && b[3] == 255) {
      return "255.255.255.255 is the broadcast address, not a host";
    }
    return {};
  }
  bool all_zero = true;
  for (auto byte : b) all_zero = all_zero && byte == 0;
  if (all_zero) return ":: is the unspecified address, not a destination";
  if (b[0] == 0xff) return fmt::format("{} is a multicast address, not a host", Canonical(literal));
  return {};
}

bool IsHostnameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

// A DNS name as people write them: letters, digits, '-' and '.', with at least one letter
// (so "1.2.3" or "010.0.0.1", which inet_pton rejects, are reported as bad literals instead).
bool LooksLikeHostname(std::string_view text) {
  if (text.empty() || text.size() > 253) return false;
  bool letter = false;
  for (char c : text) {
    if (!IsHostnameChar(c)) return false;
    letter = letter || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  }
  if (!letter) return false;
  std::string_view name = text.ends_with('.') ? text.substr(0, text.size() - 1) : text;
  for (auto label : Split(name, [](char c) { return c == '.'; })) {
    if (label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
  }
  return name.find("..") == std::string_view::npos && !name.empty() && name.front() != '.';
}

bool IsNewline(char c) { return c == '\n'; }
bool IsBlank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }
bool IsDigits(std::string_view text) {
  if (text.empty() || text.size() > 5) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

}  // namespace

Result<std::string> ParseAddressOutput(std::string_view output) {
  std::string_view text = Trim(output);
  if (text.empty()) return Fail("printed nothing");
  if (text.find('<') != std::string_view::npos) return Fail("printed HTML, not an address");

  std::size_t lines = 0;
  for (auto line : Split(text, IsNewline)) {
    if (!Trim(line).empty()) ++lines;
  }
  if (lines > 1) return Fail("printed {} lines: \"{}\"", lines, Sanitize(text));
  std::size_t words = Split(text, IsBlank).size();
  if (words > 1) return Fail("printed {} words: \"{}\"", words, Sanitize(text));
  for (char c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) == 0x7f) {
      return Fail("printed control characters: \"{}\"", Sanitize(text));
    }
  }

  if (auto percent = text.find('%'); percent != std::string_view::npos) {
    auto before = ParseIpLiteral(text.substr(0, percent));
    if (before && before->family == AF_INET6) {
      return Fail("\"{}\" has an IPv6 zone id, meaningful only on the server", Sanitize(text));
    }
    return Fail("printed \"{}\", not an IP address", Sanitize(text));
  }

  auto literal = ParseIpLiteral(text);
  if (!literal) {
    if (LooksLikeHostname(text)) return Fail("printed a hostname, not an IP literal: \"{}\"", Sanitize(text));
    return Fail("printed \"{}\", not an IP address", Sanitize(text));
  }
  IpLiteral usable = Unmap(*literal);
  if (auto why = Unusable(usable); !why.empty()) return Fail("{}", why);
  std::string canonical = Canonical(usable);
  if (canonical.empty()) return Fail("printed \"{}\", which cannot be formatted as an address", Sanitize(text));
  return canonical;
}

std::optional<std::string> SshConnectionServerAddress(std::string_view ssh_connection_value) {
  auto fields = Split(Trim(ssh_connection_value), [](char c) { return IsSpace(c); });
  if (fields.size() != 4) return std::nullopt;
  if (!ParseIpLiteral(fields[0]) || !IsDigits(fields[1]) || !IsDigits(fields[3])) return std::nullopt;
  auto server = ParseIpLiteral(fields[2]);
  if (!server) return std::nullopt;
  std::string canonical = Canonical(Unmap(*server));
  if (canonical.empty()) return std::nullopt;
  return canonical;
}

namespace {

constexpr std::array<std::pair<std::string_view, Family>, 6> kFamilies{{
    {"prefer-inet", Family::kPreferInet},
    {"prefer-inet6", Family::kPreferInet6},
    {"inet", Family::kInet},
    {"inet6", Family::kInet6},
    {"all", Family::kAll},
    {"auto", Family::kAuto},
}};

}  // namespace

Result<Family> ParseFamily(std::string_view name) {
  for (const auto& [known, family] : kFamilies) {
    if (name == known) return family;
  }
  return Fail("family \"{}\" is not inet, inet6, auto, all, prefer-inet or prefer-inet6", SanitizeForMessage(name, 40));
}

std::string_view FamilyName(Family family) {
  for (const auto& [name, known] : kFamilies) {
    if (family == known) return name;
  }
  return "?";
}

std::string FamilyMismatch(Family family, std::string_view address) {
  if (family != Family::kInet && family != Family::kInet6) return {};
  auto literal = ParseIpLiteral(address);
  if (!literal) return fmt::format("\"{}\" is not an IP address", SanitizeForMessage(address, 40));
  const bool v6 = Unmap(*literal).family == AF_INET6;
  if (v6 == (family == Family::kInet6)) return {};
  return fmt::format("{} is an {} address; --family={} takes {} only", Canonical(Unmap(*literal)), v6 ? "IPv6" : "IPv4",
                     FamilyName(family), v6 ? "IPv4" : "IPv6");
}

}  // namespace mconnect::remoteip
