// Whatever a remote-ip command prints goes through ParseAddressOutput before anyone uses it.
// Beyond "no crash": an accepted address is a bare literal that parses to itself.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "base/ip_literal.h"
#include "remote-ip/address.h"

using mconnect::IsIpLiteral;
using namespace mconnect::remoteip;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto address = ParseAddressOutput(input);
  if (address) {
    if (!IsIpLiteral(*address)) std::abort();
    auto again = ParseAddressOutput(*address);
    if (!again || *again != *address) std::abort();
  } else {
    for (char c : address.error().message) {
      if (c < 0x20 || c > 0x7e) std::abort();  // messages go to a terminal
    }
  }
  if (auto server = SshConnectionServerAddress(input); server && !IsIpLiteral(*server)) std::abort();
  (void)IsIpLiteral(input);
  return 0;
}
