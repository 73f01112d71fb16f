// The client side of dynamic port forwarding (`ssh -D`): what a browser, curl or any SOCKS client
// sends to the master's listening port, and what the master answers. The subset is OpenSSH's
// (channels.c): SOCKS4, SOCKS4a and SOCKS5, CONNECT only, and for SOCKS5 only the "no
// authentication" method (who may connect at all is decided by where the master listens).
// Pure: bytes in, a typed step or a typed error out; no fd, no I/O, no clock. The master owns the
// socket, opens the direct-tcpip channel and relays.
//
// One connection goes through at most two client messages:
//   SOCKS4/4a: request                     -> (master opens the channel) -> Socks4Reply
//   SOCKS5:    greeting -> "05 00" (here)  -> request -> (open the channel) -> Socks5Reply
// The caller keeps the bytes it has received and not yet consumed, calls ParseSocks on them after
// every read, and acts on the step. Everything after a Request's `consumed` bytes is application
// data the client sent ahead (SOCKS4 clients may), to be relayed, not dropped.
//
// Layouts (integers big-endian), as captured from curl 7.88 and matching channels.c:
//   SOCKS4   04 | cmd | port(2) | ipv4(4) | userid | 00
//   SOCKS4a  04 | cmd | port(2) | 00 00 00 x (x != 0) | userid | 00 | hostname | 00
//   greeting 05 | nmethods | methods(nmethods)
//   SOCKS5   05 | cmd | 00 | atyp | addr | port(2), addr = ipv4(4) | len(1) name(len) | ipv6(16)
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace mconnect::mux::socks {

// The longest SOCKS4 user id or SOCKS4a host name, NUL excluded. A DNS name fits in 255 bytes and
// SOCKS5 cannot carry more, so a longer field is a broken or hostile client, rejected before it
// makes us buffer more. (OpenSSH allows 1024; no client we know of comes close to 255.)
inline constexpr std::size_t kMaxSocks4Field = 255;
// The longest message of either stage (a SOCKS4a request with both fields at the cap). With this
// many unconsumed bytes ParseSocks never answers NeedMore, so a receive buffer of this size always
// makes progress and a client cannot make the master buffer more before the request is complete.
inline constexpr std::size_t kMaxMessageBytes = 8 + (kMaxSocks4Field + 1) * 2;

// SOCKS4 reply codes (the second byte of Socks4Reply).
inline constexpr std::uint8_t kSocks4Granted = 0x5a;
// Rejected or failed: SOCKS4 has no finer code (5C and 5D are about identd).
inline constexpr std::uint8_t kSocks4Rejected = 0x5b;

// SOCKS5 reply statuses (RFC 1928 section 6) for Socks5Reply.
inline constexpr std::uint8_t kSocks5Succeeded = 0x00;
inline constexpr std::uint8_t kSocks5GeneralFailure = 0x01;
inline constexpr std::uint8_t kSocks5HostUnreachable = 0x04;
inline constexpr std::uint8_t kSocks5ConnectionRefused = 0x05;
inline constexpr std::uint8_t kSocks5CommandNotSupported = 0x07;
inline constexpr std::uint8_t kSocks5AddressTypeNotSupported = 0x08;

enum class Version {
  kSocks4,   // IPv4 address
  kSocks4a,  // host name resolved by the far end
  kSocks5,
};
std::string_view VersionName(Version version);  // "SOCKS4", "SOCKS4a", "SOCKS5"

// Which client message the bytes start with.
enum class Stage {
  kFirst,          // a new connection: a SOCKS4/4a request or a SOCKS5 greeting
  kSocks5Request,  // after the greeting was answered with "05 00"
};

// The bytes so far end inside the message: read more and call again with the same bytes plus
// the new ones. Never returned for kMaxMessageBytes or more.
struct NeedMore {
  bool operator==(const NeedMore&) const = default;
};

// The SOCKS5 greeting offered "no authentication": send `reply` ("05 00"), drop `consumed`
// bytes, and parse what follows (possibly already received) at `next`.
struct ReplyAndContinue {
  std::vector<std::uint8_t> reply;
  std::size_t consumed = 0;
  Stage next = Stage::kSocks5Request;
  bool operator==(const ReplyAndContinue&) const = default;
};

// A complete CONNECT request. `host` is what direct-tcpip takes: dotted IPv4, IPv6 text without
// brackets (inet_ntop form), or the name exactly as the client sent it (1..255 bytes, no NUL).
// Nothing has been answered yet: once the channel opens or fails the master sends Socks4Reply (for
// kSocks4/kSocks4a) or Socks5Reply. The first `consumed` bytes are the request; any after it are
// application data.
struct Request {
  Version version = Version::kSocks5;
  std::string host;
  std::uint16_t port = 0;  // never 0
  std::size_t consumed = 0;
  bool operator==(const Request&) const = default;
};

using Step = std::variant<NeedMore, ReplyAndContinue, Request>;

enum class SocksErrorKind {
  kUnknownVersion,           // first byte neither 4 nor 5: not SOCKS, so no reply either
  kNoAcceptableMethod,       // SOCKS5 greeting without "no authentication" (00) among the methods
  kMalformed,                // SOCKS5 request whose version is not 5 or reserved byte not 0
  kCommandNotSupported,      // BIND, UDP ASSOCIATE or anything else but CONNECT
  kAddressTypeNotSupported,  // SOCKS5 address type other than IPv4 (1), name (3), IPv6 (4)
  kFieldTooLong,             // SOCKS4 user id or SOCKS4a host name with no NUL in 256 bytes
  kBadHost,                  // empty host name, or a SOCKS5 name containing NUL
  kBadPort,                  // port 0
};
std::string_view SocksErrorName(SocksErrorKind kind);

// The connection is refused: send `reply` if it is not empty (the status a client shows its user:
// "05 07" command not supported, "05 FF" no acceptable method, "00 5B" for SOCKS4, ...), then
// close. The error may be found before the whole message has arrived (the address type decides
// the length), so nothing is said about consumption: the connection is finished.
struct SocksError {
  SocksErrorKind kind = SocksErrorKind::kUnknownVersion;
  std::vector<std::uint8_t> reply;
  bool operator==(const SocksError&) const = default;
};

// Parses the client message at the start of `received` (the bytes not yet consumed), expected to
// be the message of `stage`. Truncated input is NeedMore, never an error; the result depends only
// on the bytes up to the end of the message, never on what follows it.
std::expected<Step, SocksError> ParseSocks(std::span<const std::uint8_t> received, Stage stage);

// 00 | 5A or 5B | port 0 | 0.0.0.0: the bound address is meaningless through a channel, and
// clients ignore it (channels.c sends the same zeros).
std::vector<std::uint8_t> Socks4Reply(bool granted);
// 05 | status | 00 | 01 (IPv4) | 0.0.0.0 | port 0, for the same reason.
std::vector<std::uint8_t> Socks5Reply(std::uint8_t status);

}  // namespace mconnect::mux::socks
