#include "mux/ssh/key_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <span>
#include <utility>

#include <openssl/evp.h>

#include "base/secret.h"
#include "base/unique_fd.h"
#include "base/wire.h"
#include "mux/ssh/prompt.h"

namespace mconnect::mux {
namespace {

// Private key files are a few KiB; an RSA-16384 key is ~13 KiB.
constexpr std::size_t kMaxKeyFile = 256 << 10;
constexpr std::string_view kOpenSshMagic{"openssh-key-v1\0", 15};

std::optional<std::vector<std::uint8_t>> Base64Decode(std::string_view text) {
  std::string compact;
  for (char c : text) {
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') compact += c;
  }
  if (compact.size() % 4 != 0) return std::nullopt;
  std::vector<std::uint8_t> bytes(compact.size() / 4 * 3);
  int n = EVP_DecodeBlock(bytes.data(), reinterpret_cast<const unsigned char*>(compact.data()),
                          static_cast<int>(compact.size()));
  if (n < 0) return std::nullopt;
  std::size_t padding = compact.ends_with("==") ? 2 : compact.ends_with('=') ? 1 : 0;
  bytes.resize(static_cast<std::size_t>(n) - padding);
  return bytes;
}

}  // namespace

Result<std::string> ReadKeyFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Fail("cannot open {}: {}", path, std::strerror(errno));
  std::string data;
  data.reserve(kMaxKeyFile);  // never reallocates: no uncleared copy is left behind
  char buffer[4096];
  while (data.size() < kMaxKeyFile) {
    ssize_t n = ::read(fd.get(), buffer, std::min(sizeof buffer, kMaxKeyFile - data.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Wipe(buffer, sizeof buffer);
      return Fail("cannot read {}: {}", path, std::strerror(errno));
    }
    if (n == 0) break;
    data.append(buffer, static_cast<std::size_t>(n));
  }
  Wipe(buffer, sizeof buffer);
  return data;
}

Result<PrivateKeyInfo> InspectPrivateKey(std::string_view contents) {
  constexpr std::string_view kBegin = "-----BEGIN ";
  std::size_t begin = contents.find(kBegin);
  if (begin == std::string_view::npos) return Fail("not a private key file (no -----BEGIN line)");
  std::size_t label_start = begin + kBegin.size();
  std::size_t label_end = contents.find("-----", label_start);
  if (label_end == std::string_view::npos) return Fail("not a private key file (a broken -----BEGIN line)");
  std::string_view label = contents.substr(label_start, label_end - label_start);
  std::string_view body = contents.substr(label_end + 5);

  PrivateKeyInfo info;
  if (label == "ENCRYPTED PRIVATE KEY" || label == "PRIVATE KEY") {
    info.format = PrivateKeyInfo::Format::kPkcs8;
    info.encrypted = label == "ENCRYPTED PRIVATE KEY";
    return info;
  }
  if (label != "OPENSSH PRIVATE KEY") {
    if (!label.ends_with(" PRIVATE KEY")) return Fail("not a private key file (-----BEGIN {})", label);
    info.format = PrivateKeyInfo::Format::kPem;
    std::size_t end = body.find("-----END ");
    info.encrypted = body.substr(0, end).find("Proc-Type: 4,ENCRYPTED") != std::string_view::npos;
    return info;
  }
  std::size_t end = body.find("-----END OPENSSH PRIVATE KEY-----");
  if (end == std::string_view::npos) return Fail("OpenSSH private key without its END line");
  auto decoded = Base64Decode(body.substr(0, end));
  if (!decoded) return Fail("OpenSSH private key that is not base64");
  // The body holds the private key too (encrypted or not): clear it on every path.
  struct Clear {
    std::vector<std::uint8_t>& bytes;
    ~Clear() { Wipe(bytes.data(), bytes.size()); }
  } clear{*decoded};
  std::string_view bytes(reinterpret_cast<const char*>(decoded->data()), decoded->size());
  if (!bytes.starts_with(kOpenSshMagic)) return Fail("OpenSSH private key without the openssh-key-v1 magic");
  WireReader reader(std::span<const std::uint8_t>(*decoded).subspan(kOpenSshMagic.size()));
  auto cipher = reader.CString(64);
  auto kdf = cipher ? reader.CString(64) : std::unexpected(cipher.error());
  auto kdf_options = kdf ? reader.String(1024) : std::unexpected(kdf.error());
  auto count = kdf_options ? reader.U32() : std::unexpected(kdf_options.error());
  if (!count) return Fail("OpenSSH private key with a malformed header ({})", WireErrorName(count.error()));
  if (*count < 1) return Fail("OpenSSH private key file that holds no key");
  auto public_key = reader.String(16 << 10);
  if (!public_key) return Fail("OpenSSH private key with a malformed public key ({})", WireErrorName(public_key.error()));
  info.format = PrivateKeyInfo::Format::kOpenSsh;
  info.encrypted = *cipher != "none";
  info.public_blob.assign(public_key->begin(), public_key->end());
  return info;
}

Result<std::vector<std::uint8_t>> ParsePublicKeyLine(std::string_view line) {
  auto word = [&line]() {
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    std::size_t end = line.find_first_of(" \t\r\n");
    std::string_view found = line.substr(0, end);
    line.remove_prefix(found.size());
    return found;
  };
  std::string_view type = word();
  std::string_view encoded = word();
  if (type.empty() || encoded.empty()) return Fail("not a public key line");
  auto blob = Base64Decode(encoded);
  if (!blob) return Fail("public key that is not base64");
  WireReader reader(*blob);
  auto inner = reader.CString(64);
  if (!inner || *inner != type) return Fail("public key whose type does not match its {} label", SanitizeForTerminal(type));
  return std::move(*blob);
}

}  // namespace mconnect::mux
