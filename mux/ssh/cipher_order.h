// Which ciphers the master offers, and in what order.
//
// libssh2 1.11.1's chacha20-poly1305 is portable C (its own chacha.c and poly1305.c), while its
// AES-GCM goes through OpenSSL's EVP, which uses the CPU's AES instructions. Measured on one
// channel at RTT 0 (bench/run throughput): with chacha20-poly1305 the master moved 213 MiB/s at
// 3.8 CPU s/GiB where OpenSSH's own master (OpenSSL's assembler ChaCha20) moved 342 MiB/s at
// 2.2 s/GiB. So on a CPU with AES instructions the master prefers AES-GCM, as OpenSSH would
// if its ChaCha20 were as slow. `ssh -G` cannot tell a user's Ciphers line from OpenSSH's
// default list: a list equal to that default counts as no choice; any other list is the user's
// choice and its order is kept.
#pragma once

#include <string>
#include <string_view>

namespace mconnect::mux {

// `ssh -G`'s default for Ciphers (OpenSSH 6.9 to 9.x).
inline constexpr std::string_view kOpenSshDefaultCiphers =
    "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,aes128-gcm@openssh.com,aes256-gcm@openssh.com";

// The list for libssh2_session_method_pref(LIBSSH2_METHOD_CRYPT_*): from `ssh -G`'s ciphers
// (empty: none given), keeping only names libssh2 knows. Empty when nothing is left: the
// caller then leaves libssh2's own order (and the handshake says what the server lacked).
std::string CipherPreference(std::string_view ssh_ciphers, bool aes_instructions);

// Whether this CPU has AES instructions (x86 AES-NI, ARMv8 AES); false when unknown.
bool CpuHasAesInstructions();

}  // namespace mconnect::mux
