// Host-key verification against OpenSSH known_hosts files, with OpenSSH's answers: a known key
// passes, an unknown key is asked about (or refused in batch/strict mode, or added with
// accept-new), a changed key is a hard failure before anything is sent to the server.
#pragma once

#include <expected>
#include <string>
#include <string_view>
#include <vector>

#include <libssh2.h>

#include "base/result.h"

namespace mconnect::mux {

enum class HostKeyPolicy {
  kStrict,     // StrictHostKeyChecking yes: unknown keys are refused
  kAcceptNew,  // accept-new (and "no"): unknown keys are added, changed keys still refused
  kAsk,        // ask on the terminal; refused when there is none
};

Result<HostKeyPolicy> ParseHostKeyPolicy(std::string_view value);

struct HostKeyCheck {
  std::string host;        // HostName, or HostKeyAlias when set
  int port = 22;           // -1 with a HostKeyAlias: the alias is looked up as written
  std::vector<std::string> known_hosts_files;  // user files first; new keys go to the first
  HostKeyPolicy policy = HostKeyPolicy::kAsk;
};

// "[host]:port" as known_hosts writes it, or just the host for port 22 or an alias.
std::string KnownHostsName(const HostKeyCheck& check);

// The libssh2 host-key method list ordered so that key types known_hosts already holds for
// this host come first (as OpenSSH does), found with `ssh-keygen -F` so hashed entries count.
std::string PreferredHostKeyMethods(const HostKeyCheck& check);

enum class HostKeyFailure {
  kRefused,     // changed, or unknown and not accepted: a person must look at it
  kUnreadable,  // not found, but a known_hosts file exists that could not be read (out of fds,
                // EACCES, EIO, a directory...): the key may well be in it, so this is not an
                // unknown key; it can pass once the file can be read
};
struct HostKeyError {
  std::string message;  // what the user sees
  HostKeyFailure kind = HostKeyFailure::kRefused;
};

// Verifies the key of a session whose handshake is done. On success the key is known (or was
// just accepted and written). A known_hosts file that does not exist counts as empty, as in ssh.
std::expected<void, HostKeyError> VerifyHostKey(LIBSSH2_SESSION* session, const HostKeyCheck& check);

}  // namespace mconnect::mux
