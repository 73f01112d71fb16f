// Validation of the addresses that remote-ip strategies produce. Whatever a remote command
// prints is untrusted: before mosh-client is pointed at it, it must be exactly one IP literal
// that can carry unicast UDP. Pure: no I/O, no clock.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"
#include "base/text.h"

namespace mconnect::remoteip {

// The canonical form (inet_ntop) of the one IPv4 or IPv6 literal that `output` consists of.
// Surrounding whitespace (a trailing newline, CRLF) is allowed; anything else is an error whose
// message is a short fragment meant to follow "STRATEGY: ": the shape of the output ("printed
// nothing", "printed 3 lines: ...", "printed HTML, not an address", "printed a hostname, not an
// IP literal: \"example.org\"") or why the literal is unusable for mosh's UDP (0.0.0.0/8 and ::,
// multicast, 255.255.255.255, IPv6 zone ids such as "fe80::1%eth0", meaningful only on the
// server). At most ~40 sanitized printable characters of the output are ever quoted. An
// IPv4-mapped IPv6 address (::ffff:a.b.c.d) is returned as a.b.c.d. Loopback is accepted: it is
// right when client and server share a host (tests, --local).
Result<std::string> ParseAddressOutput(std::string_view output);

// mosh's --family: the address families the address handed to mosh-client may have. inet
// and inet6 admit one family only (and make the master connect over it); all, auto and the
// prefer- ones admit both, and differ only in which of a name's addresses the `dns` strategy
// takes (mosh.pl's resolvename: prefer- puts that family first, auto refuses a name that has
// both, all takes the resolver's order).
enum class Family { kPreferInet, kPreferInet6, kInet, kInet6, kAll, kAuto };

// From mosh's names: inet, inet6, auto, all, prefer-inet, prefer-inet6 (lower case); an error
// names them.
Result<Family> ParseFamily(std::string_view name);
std::string_view FamilyName(Family family);

// Empty when the IP literal `address` may be handed on under `family`; else why not, as a
// fragment to follow "STRATEGY: " ("127.0.0.1 is an IPv4 address; --family=inet6 takes IPv6
// only").
std::string FamilyMismatch(Family family, std::string_view address);

// The server address (third field) of `$SSH_CONNECTION`, "client_ip client_port server_ip
// server_port", in canonical form; nullopt unless the value has exactly those four fields with
// IP literals and numeric ports. Surrounding whitespace is ignored.
std::optional<std::string> SshConnectionServerAddress(std::string_view ssh_connection_value);

}  // namespace mconnect::remoteip
