// Key files as the master reads them for publickey authentication: a private key file read
// whole and cleared by its reader, what it says about itself without its passphrase (format,
// encrypted, the public half it may hold), and a one-line public key file.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace mconnect::mux {

// The whole (small) file; its contents may be an unencrypted private key: the caller clears it.
Result<std::string> ReadKeyFile(const std::string& path);

// What a private key file says about itself without its passphrase.
struct PrivateKeyInfo {
  enum class Format { kOpenSsh, kPem, kPkcs8 };
  Format format = Format::kOpenSsh;
  bool encrypted = false;
  std::vector<std::uint8_t> public_blob;  // the public key (OpenSSH format only), else empty
};

// Reads the OpenSSH format ("openssh-key-v1": cipher name other than "none" means encrypted;
// the public key is stored in clear) and PEM ("Proc-Type: 4,ENCRYPTED", "BEGIN ENCRYPTED
// PRIVATE KEY"). Anything else is an error.
Result<PrivateKeyInfo> InspectPrivateKey(std::string_view contents);

// The key blob of a one-line public key file ("ssh-ed25519 AAAA... comment").
Result<std::vector<std::uint8_t>> ParsePublicKeyLine(std::string_view line);

}  // namespace mconnect::mux
