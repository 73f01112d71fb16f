#include "mux/forward/socks_codec.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <utility>

#include <fmt/format.h>

#include "base/text.h"
#include "base/result.h"
#include "base/wire.h"

namespace mconnect::mux::socks {

namespace {

constexpr std::uint8_t kVersion4 = 0x04;
constexpr std::uint8_t kVersion5 = 0x05;
constexpr std::uint8_t kCommandConnect = 0x01;
constexpr std::uint8_t kMethodNoAuth = 0x00;
constexpr std::uint8_t kMethodNoneAcceptable = 0xff;
constexpr std::uint8_t kAddressIpv4 = 0x01;
constexpr std::uint8_t kAddressName = 0x03;
constexpr std::uint8_t kAddressIpv6 = 0x04;
constexpr std::size_t kIpv6Bytes = 16;

using Parsed = std::expected<Step, SocksError>;

std::unexpected<SocksError> Refuse(SocksErrorKind kind, std::vector<std::uint8_t> reply) {
  return std::unexpected(SocksError{kind, std::move(reply)});
}

// Every read below fails only with WireError::kTruncated (none of them has a length limit), so a
// failed read always means NeedMore.
std::optional<std::uint16_t> ReadPort(WireReader& reader) {
  auto high = reader.U8();
  if (!high) return std::nullopt;
  auto low = reader.U8();
  if (!low) return std::nullopt;
  return static_cast<std::uint16_t>(*high << 8 | *low);
}

std::string Ipv4Text(std::uint32_t address) {
  return fmt::format("{}.{}.{}.{}", address >> 24, (address >> 16) & 0xff, (address >> 8) & 0xff,
                     address & 0xff);
}

std::string Ipv6Text(std::span<const std::uint8_t> bytes) {
  MCONNECT_CHECK(bytes.size() == kIpv6Bytes);
  in6_addr address{};
  std::memcpy(&address, bytes.data(), kIpv6Bytes);
  char text[INET6_ADDRSTRLEN] = {};
  MCONNECT_CHECK(inet_ntop(AF_INET6, &address, text, sizeof text) != nullptr);
  return text;
}

// A SOCKS4 NUL-terminated field of at most kMaxSocks4Field bytes. nullopt: no NUL yet, but there
// is still room for one. Fails once kMaxSocks4Field + 1 bytes have arrived without a NUL, so a
// client cannot keep us waiting (and buffering) for a terminator that never comes.
std::expected<std::optional<std::string>, SocksErrorKind> ReadSocks4Field(WireReader& reader) {
  std::string field;
  while (true) {
    auto byte = reader.U8();
    if (!byte) return std::nullopt;
    if (*byte == 0) return field;
    if (field.size() == kMaxSocks4Field) return std::unexpected(SocksErrorKind::kFieldTooLong);
    field.push_back(static_cast<char>(*byte));
  }
}

// After the version byte. Like channels.c, the user id is read and ignored: the remote end
// sees the SSH user, not whatever the SOCKS client claims to be.
Parsed ParseSocks4(WireReader& reader) {
  auto command = reader.U8();
  if (!command) return NeedMore{};
  if (*command != kCommandConnect) {
    return Refuse(SocksErrorKind::kCommandNotSupported, Socks4Reply(false));
  }
  auto port = ReadPort(reader);
  if (!port) return NeedMore{};
  if (*port == 0) return Refuse(SocksErrorKind::kBadPort, Socks4Reply(false));
  auto address = reader.U32();
  if (!address) return NeedMore{};
  auto user = ReadSocks4Field(reader);
  if (!user) return Refuse(user.error(), Socks4Reply(false));
  if (!user->has_value()) return NeedMore{};

  // SOCKS4a marks "the name follows" with the invalid address 0.0.0.x, x != 0. 0.0.0.0 itself is
  // plain SOCKS4, as in channels.c.
  if (*address == 0 || *address > 0xff) {
    return Request{Version::kSocks4, Ipv4Text(*address), *port, reader.offset()};
  }
  auto host = ReadSocks4Field(reader);
  if (!host) return Refuse(host.error(), Socks4Reply(false));
  if (!host->has_value()) return NeedMore{};
  if ((*host)->empty()) return Refuse(SocksErrorKind::kBadHost, Socks4Reply(false));
  return Request{Version::kSocks4a, std::move(**host), *port, reader.offset()};
}

// After the version byte: the method list. Only "no authentication" is served; RFC 1928 says to
// answer FF and close when none of the offered methods is acceptable.
Parsed ParseGreeting(WireReader& reader) {
  auto count = reader.U8();
  if (!count) return NeedMore{};
  auto methods = reader.Bytes(*count);
  if (!methods) return NeedMore{};
  if (std::ranges::find(*methods, kMethodNoAuth) == methods->end()) {
    return Refuse(SocksErrorKind::kNoAcceptableMethod, {kVersion5, kMethodNoneAcceptable});
  }
  return ReplyAndContinue{{kVersion5, kMethodNoAuth}, reader.offset(), Stage::kSocks5Request};
}

// The whole request, version included. Checked in channels.c's order (version, command,
// reserved byte, address type) so a client rejected there is rejected here for the same reason.
Parsed ParseSocks5Request(WireReader& reader) {
  auto version = reader.U8();
  if (!version) return NeedMore{};
  if (*version != kVersion5) {
    return Refuse(SocksErrorKind::kMalformed, Socks5Reply(kSocks5GeneralFailure));
  }
  auto command = reader.U8();
  if (!command) return NeedMore{};
  if (*command != kCommandConnect) {
    return Refuse(SocksErrorKind::kCommandNotSupported, Socks5Reply(kSocks5CommandNotSupported));
  }
  auto reserved = reader.U8();
  if (!reserved) return NeedMore{};
  if (*reserved != 0) return Refuse(SocksErrorKind::kMalformed, Socks5Reply(kSocks5GeneralFailure));
  auto type = reader.U8();
  if (!type) return NeedMore{};

  std::string host;
  switch (*type) {
    case kAddressIpv4: {
      auto address = reader.U32();
      if (!address) return NeedMore{};
      host = Ipv4Text(*address);
      break;
    }
    case kAddressName: {
      auto length = reader.U8();
      if (!length) return NeedMore{};
      if (*length == 0) return Refuse(SocksErrorKind::kBadHost, Socks5Reply(kSocks5GeneralFailure));
      auto name = reader.Bytes(*length);
      if (!name) return NeedMore{};
      // The name goes on as a C string (direct-tcpip, logs); an embedded NUL would silently cut it
      // to a different host, so it is refused instead.
      if (std::ranges::find(*name, std::uint8_t{0}) != name->end()) {
        return Refuse(SocksErrorKind::kBadHost, Socks5Reply(kSocks5GeneralFailure));
      }
      host.assign(name->begin(), name->end());
      break;
    }
    case kAddressIpv6: {
      auto address = reader.Bytes(kIpv6Bytes);
      if (!address) return NeedMore{};
      host = Ipv6Text(*address);
      break;
    }
    default:
      return Refuse(SocksErrorKind::kAddressTypeNotSupported,
                    Socks5Reply(kSocks5AddressTypeNotSupported));
  }
  auto port = ReadPort(reader);
  if (!port) return NeedMore{};
  if (*port == 0) return Refuse(SocksErrorKind::kBadPort, Socks5Reply(kSocks5GeneralFailure));
  return Request{Version::kSocks5, std::move(host), *port, reader.offset()};
}

}  // namespace

std::string_view VersionName(Version version) {
  return NameIn(version, {{Version::kSocks4, "SOCKS4"}, {Version::kSocks4a, "SOCKS4a"}, {Version::kSocks5, "SOCKS5"}});
}

std::string_view SocksErrorName(SocksErrorKind kind) {
  switch (kind) {
    case SocksErrorKind::kUnknownVersion: return "not a SOCKS4 or SOCKS5 client";
    case SocksErrorKind::kNoAcceptableMethod: return "no acceptable authentication method";
    case SocksErrorKind::kMalformed: return "malformed request";
    case SocksErrorKind::kCommandNotSupported: return "command not supported";
    case SocksErrorKind::kAddressTypeNotSupported: return "address type not supported";
    case SocksErrorKind::kFieldTooLong: return "user id or host name too long";
    case SocksErrorKind::kBadHost: return "bad host name";
    case SocksErrorKind::kBadPort: return "port 0";
  }
  return "unknown";
}

std::expected<Step, SocksError> ParseSocks(std::span<const std::uint8_t> received, Stage stage) {
  WireReader reader(received);
  if (stage == Stage::kSocks5Request) return ParseSocks5Request(reader);

  auto version = reader.U8();
  if (!version) return NeedMore{};
  switch (*version) {
    case kVersion4: return ParseSocks4(reader);
    case kVersion5: return ParseGreeting(reader);
    default: return Refuse(SocksErrorKind::kUnknownVersion, {});
  }
}

std::vector<std::uint8_t> Socks4Reply(bool granted) {
  return {0x00, granted ? kSocks4Granted : kSocks4Rejected, 0, 0, 0, 0, 0, 0};
}

std::vector<std::uint8_t> Socks5Reply(std::uint8_t status) {
  return {kVersion5, status, 0x00, kAddressIpv4, 0, 0, 0, 0, 0, 0};
}

}  // namespace mconnect::mux::socks
