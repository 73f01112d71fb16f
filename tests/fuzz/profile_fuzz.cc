// The config loader (launcher/profile) on arbitrary bytes as the text of config.toml: TOML
// syntax, then the strict checks of every table and key. Beyond "no crash": a failure always
// names the file and a line (`config.toml:LINE: ...`), and what a loaded profile gives any host
// holds what the checks promise (a non-empty strategy chain, no negative seconds).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "launcher/profile.h"

using namespace mconnect::launcher;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > (1u << 20)) return -1;  // LoadProfile refuses a file this large before parsing it
  auto profile = ParseProfile(std::string_view(reinterpret_cast<const char*>(data), size), "config.toml");
  if (!profile) {
    if (!profile.error().message.starts_with("config.toml:")) std::abort();
    return 0;
  }
  for (std::string_view host : {"", "lab", "bebou", "x.example.org", "*"}) {
    const HostProfile settings = profile->ForHost(host);
    if (settings.remote_ip.empty() || settings.persist_s < kPersistNo || settings.keepalive_s < 0 ||
        settings.remote_ip_timeout_s < 0 || settings.remote_ip_cache_ttl_s < 0) {
      std::abort();
    }
  }
  return 0;
}
