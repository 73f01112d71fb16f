// The first bytes an X client on the server sends through a forwarded X11 channel: spoofed as
// the master does (mux/forward/x11_auth.h), against one grant. Beyond "no crash":
//   * NeedMore only for an input shorter than the setup it announces (at most 12 + 2 × 65538);
//   * a spoofed setup is as long as what it consumed, within the input, and differs from the
//     input only in the cookie's data, which is the real one;
//   * a prefix of a spoofed input is NeedMore; the same input gives the same answer.
// The input's first byte also feeds ParseXauthList and ParseDisplay, which must not crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "mux/forward/x11_auth.h"

using namespace mconnect::mux::x11;

namespace {

void Require(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  (void)ParseXauthList(bytes);
  (void)ParseDisplay(bytes);
  const std::string proto = "MIT-MAGIC-COOKIE-1";
  const std::vector<Grant> grants{{{proto, "0123456789abcdef"}, {proto, "FEDCBA9876543210"}, ":0"}};
  auto step = Spoof(bytes, grants);
  auto again = Spoof(bytes, grants);
  Require(step.has_value() == again.has_value());
  if (!step) return 0;
  if (std::holds_alternative<NeedMore>(*step)) {
    Require(size < kSetupHeader + 2 * (65535 + 3) + 1);
    return 0;
  }
  const auto& spoofed = std::get<Spoofed>(*step);
  Require(spoofed.grant == 0);
  Require(spoofed.consumed <= size && spoofed.consumed >= kSetupHeader);
  Require(spoofed.setup.size() == spoofed.consumed);
  std::size_t differing = 0;
  for (std::size_t i = 0; i < spoofed.consumed; ++i) differing += spoofed.setup[i] != bytes[i];
  Require(differing <= grants[0].fake.data.size());
  Require(spoofed.setup.find(grants[0].real.data) != std::string::npos);
  auto prefix = Spoof(bytes.substr(0, spoofed.consumed - 1), grants);
  Require(prefix && std::holds_alternative<NeedMore>(*prefix));
  return 0;
}
