// X11 forwarding's authentication spoofing, as OpenSSH's client does it (channels.c,
// x11_open_helper): the server only ever sees a fake cookie, made up by the master for each
// session that asked for X11 (`ssh -X`/`-Y`); when the server opens an "x11" channel, the first
// thing an X client sends, its connection setup, must carry one of those fake cookies, which the
// master replaces with the real one of the local display before a byte reaches it. Anything
// else closes the channel. Pure: bytes in, bytes or a reason out (fuzzed: x11_auth_fuzz).
#pragma once

#include <cstddef>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace mconnect::mux::x11 {

// The X protocol's connection setup, as the client sends it:
//   CARD8 byte order ('B' or 'l') | pad | CARD16 major | CARD16 minor | CARD16 name length n |
//   CARD16 data length d | CARD16 pad | name, padded to 4 | data, padded to 4
// CARD16s in the client's byte order. The setup is at most 12 + 2 × (65535 + 3) bytes.
inline constexpr std::size_t kSetupHeader = 12;

// A cookie, as xauth lists it: the protocol name ("MIT-MAGIC-COOKIE-1") and the data (binary).
struct Cookie {
  std::string proto;
  std::string data;
  bool operator==(const Cookie&) const = default;
};

// One session's grant: the fake cookie the server was given and what replaces it.
struct Grant {
  Cookie fake;
  Cookie real;
  std::string display;  // the local display the channel is connected to (DISPLAY's value)
};

struct NeedMore {};
struct Spoofed {
  std::size_t grant = 0;  // index of the matching grant
  std::string setup;      // the setup with the real cookie in place of the fake one
  std::size_t consumed = 0;  // bytes of the input the setup took (the rest follows it unchanged)
};
using SpoofStep = std::variant<NeedMore, Spoofed>;

// Reads the setup at the start of `bytes` and, once it is complete, replaces a fake cookie of
// one of `grants` (same protocol name, same data) with that grant's real one. An error (a byte
// order other than 'B'/'l', a cookie that is no grant's) is one line saying why.
std::expected<SpoofStep, std::string> Spoof(std::string_view bytes, const std::vector<Grant>& grants);

// `xauth list DISPLAY` output ("host/unix:N  MIT-MAGIC-COOKIE-1  hex"): the first line's cookie,
// or nullopt when there is none or it does not parse (hex of 1..256 bytes).
std::optional<Cookie> ParseXauthList(std::string_view output);

// Hex of `data`, lower case (the x11-req's cookie is hex, as xauth prints it).
std::string Hex(std::string_view data);

// Where DISPLAY ":N[.S]" or "unix:N[.S]" is served: /tmp/.X11-unix/XN, and the screen S (0 when
// absent). A display on TCP (host:N) or anything else: nullopt.
struct LocalDisplay {
  std::string socket_path;
  int screen = 0;
};
std::optional<LocalDisplay> ParseDisplay(std::string_view display);

}  // namespace mconnect::mux::x11
