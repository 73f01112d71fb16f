#include "mux/ssh/cipher_order.h"

#include <sys/auxv.h>

#include <algorithm>
#include <array>

#include "mux/ssh/auth.h"

namespace mconnect::mux {
namespace {

// The ciphers libssh2 1.11.1 with the OpenSSL backend negotiates (crypt.c), strongest first.
constexpr std::array<std::string_view, 9> kLibssh2Ciphers = {
    "chacha20-poly1305@openssh.com", "aes256-gcm@openssh.com", "aes128-gcm@openssh.com",
    "aes256-ctr", "aes192-ctr", "aes128-ctr", "aes256-cbc", "aes192-cbc", "aes128-cbc",
};

constexpr std::string_view kAesFirst =
    "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr";

}  // namespace

std::string CipherPreference(std::string_view ssh_ciphers, bool aes_instructions) {
  if (ssh_ciphers.empty() || ssh_ciphers == kOpenSshDefaultCiphers) {
    return std::string(aes_instructions ? kAesFirst : kOpenSshDefaultCiphers);
  }
  std::string out;
  for (const std::string& name : SplitMethods(ssh_ciphers)) {  // any comma list
    if (std::ranges::find(kLibssh2Ciphers, name) == kLibssh2Ciphers.end()) continue;
    if (!out.empty()) out += ',';
    out += name;
  }
  return out;
}

bool CpuHasAesInstructions() {
#if defined(__x86_64__) || defined(__i386__)
  return __builtin_cpu_supports("aes");
#elif defined(__aarch64__)
  return (::getauxval(AT_HWCAP) & (1UL << 3)) != 0;  // HWCAP_AES
#else
  return false;
#endif
}

}  // namespace mconnect::mux
