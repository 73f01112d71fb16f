#include "base/udp_socket_owner.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <string>

#include "base/text.h"
#include "base/unique_fd.h"

namespace mconnect {
namespace {

// A socket per ~130 bytes: 16 MiB is over 100 000 UDP sockets, far beyond a workstation's.
constexpr std::size_t kMaxTable = 16 * 1024 * 1024;
// sl, local_address, rem_address, st, tx_queue:rx_queue, tr:tm->when, retrnsmt, uid, timeout,
// inode: every line has them all (and more), so a line without them was cut short.
constexpr std::size_t kFields = 10;
constexpr std::size_t kUidField = 7;

// One socket of the table: its local address in network order (4 bytes from udp, 16 from
// udp6), its port and its owner.
struct Listed {
  std::array<std::uint8_t, 16> address{};
  bool ipv6 = false;
  std::uint16_t port = 0;
  uid_t uid = 0;
};

// Exactly `digits` hex digits, nothing else.
template <typename T>
std::optional<T> Hex(std::string_view text, std::size_t digits) {
  T value{};
  if (text.size() != digits) return std::nullopt;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value, 16);
  if (error != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// "0100007F:814D" or the same with 32 address digits.
bool ParseLocalAddress(std::string_view text, Listed& listed) {
  std::size_t colon = text.find(':');
  if (colon == std::string_view::npos) return false;
  std::string_view address = text.substr(0, colon);
  if (address.size() != 8 && address.size() != 32) return false;
  listed.ipv6 = address.size() == 32;
  for (std::size_t word = 0; word * 8 < address.size(); ++word) {
    auto value = Hex<std::uint32_t>(address.substr(word * 8, 8), 8);
    if (!value) return false;
    // The kernel printed the word as this machine reads those four bytes: copying it back
    // gives the bytes in the order they have in the socket, which is network order.
    std::memcpy(listed.address.data() + word * 4, &*value, 4);
  }
  auto port = Hex<std::uint16_t>(text.substr(colon + 1), 4);
  if (!port) return false;
  listed.port = *port;
  return true;
}

// A data line, or nullopt when any field it needs is missing or malformed.
std::optional<Listed> ParseLine(std::string_view line) {
  std::array<std::string_view, kFields> fields;
  std::size_t count = 0;
  for (std::size_t at = 0; count < fields.size();) {
    at = line.find_first_not_of(" \t", at);
    if (at == std::string_view::npos) break;
    std::size_t end = std::min(line.find_first_of(" \t", at), line.size());
    fields[count++] = line.substr(at, end - at);
    at = end;
  }
  if (count < fields.size()) return std::nullopt;
  // "12666:": the slot, decimal. Only its shape matters: it tells a data line from anything else.
  std::string_view slot = fields[0];
  if (slot.size() < 2 || slot.back() != ':' ||
      slot.find_first_not_of("0123456789") != slot.size() - 1) {
    return std::nullopt;
  }
  Listed listed;
  if (!ParseLocalAddress(fields[1], listed)) return std::nullopt;
  std::string_view uid = fields[kUidField];
  std::uint32_t value = 0;
  auto [end, error] = std::from_chars(uid.data(), uid.data() + uid.size(), value, 10);
  if (error != std::errc{} || end != uid.data() + uid.size()) return std::nullopt;
  // (uid_t)-1 is nobody's uid: the kernel shows an unmapped owner as the overflow uid instead.
  if (value == std::numeric_limits<std::uint32_t>::max()) return std::nullopt;
  listed.uid = static_cast<uid_t>(value);
  return listed;
}

bool IsHeader(std::string_view line) {
  std::size_t start = line.find_first_not_of(' ');
  return start != std::string_view::npos && line.substr(start).starts_with("sl ") &&
         line.find("local_address") != std::string_view::npos && line.find(" uid ") != std::string_view::npos;
}

// Could a socket bound where `listed` says have sent from `source`?
bool Covers(const Listed& listed, const sockaddr_in& source) {
  std::array<std::uint8_t, 4> address;
  std::memcpy(address.data(), &source.sin_addr.s_addr, 4);
  if (listed.port != ntohs(source.sin_port)) return false;
  const std::uint8_t* at = listed.address.data();
  auto zeros = [](const std::uint8_t* bytes, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      if (bytes[i] != 0) return false;
    }
    return true;
  };
  if (!listed.ipv6) return zeros(at, 4) || std::memcmp(at, address.data(), 4) == 0;
  if (zeros(at, 16)) return true;  // ::, dual-stack unless IPV6_V6ONLY, which the table does not say
  // ::ffff:a.b.c.d
  if (!zeros(at, 10) || at[10] != 0xff || at[11] != 0xff) return false;
  return zeros(at + 12, 4) || std::memcmp(at + 12, address.data(), 4) == 0;
}

// The text of `path`; nullopt when there is no such file (a kernel without IPv6 has no udp6).
Result<std::optional<std::string>> ReadTable(const char* path) {
  UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
  if (!fd && errno == ENOENT) return std::nullopt;
  if (!fd) return Fail("cannot open {}: {}", path, std::strerror(errno));
  auto text = ReadToEnd(fd.get(), kMaxTable);
  if (!text) return Fail("cannot read {}: {}", path, text.error().message);
  return std::move(*text);
}

}  // namespace

Result<std::vector<uid_t>> UdpSenderUids(std::string_view table, const sockaddr_in& source) {
  if (table.empty() || table.back() != '\n') return Fail("the socket table is empty or cut short");
  std::vector<uid_t> uids;
  std::size_t number = 0;
  for (std::size_t at = 0; at < table.size();) {
    std::size_t end = table.find('\n', at);  // found: the table ends with one
    std::string_view line = table.substr(at, end - at);
    at = end + 1;
    if (++number == 1) {
      if (!IsHeader(line)) return Fail("the socket table has no header: \"{}\"", SanitizeForMessage(line));
      continue;
    }
    auto listed = ParseLine(line);
    if (!listed) return Fail("line {} of the socket table cannot be read: \"{}\"", number, SanitizeForMessage(line));
    if (Covers(*listed, source)) uids.push_back(listed->uid);
  }
  return uids;
}

Result<std::vector<uid_t>> UdpSenderUidsFromProc(const sockaddr_in& source) {
  std::vector<uid_t> uids;
  for (const char* path : {"/proc/net/udp", "/proc/net/udp6"}) {
    auto table = ReadTable(path);
    if (!table) return Fail(table.error());
    if (!*table) {
      if (std::string_view(path).ends_with('6')) continue;
      return Fail("there is no {} (not Linux, or no /proc)", path);
    }
    auto found = UdpSenderUids(**table, source);
    if (!found) return Fail("{}: {}", path, found.error().message);
    uids.insert(uids.end(), found->begin(), found->end());
  }
  return uids;
}

}  // namespace mconnect
