// Where a master for a destination listens. Launcher and master agree on this; nothing else
// about the file system is shared between them.
//
// Default directory: $XDG_RUNTIME_DIR/mconnect, else /tmp/mconnect-UID (like OpenSSH's
// ControlPath advice, private to the user). Inside it, per destination:
//   USER@HOST:PORT.sock   the socket (0600, published by rename so it is never half-made)
//   USER@HOST:PORT.lock   held (flock) by the one master for that destination
//   USER@HOST:PORT.log    the master's log once it has detached
// Names too long for sun_path are replaced by a hash of the destination.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"

namespace mconnect::proto {

std::string DefaultRuntimeDir();

struct MasterPaths {
  std::string socket;
  std::string lock;
  std::string log;
};

// `directory` empty means DefaultRuntimeDir().
MasterPaths PathsFor(const std::string& directory, const std::string& user, const std::string& host, int port);
// The lock and log paths that belong with an explicitly chosen socket path.
MasterPaths PathsForSocket(const std::string& socket_path);

// Creates the directory 0700 if missing; refuses one that is a symlink, not ours, or open to
// group/others (a socket there could be replaced by someone else). Before that, every directory
// above it must be root's or ours and closed to group and others' writes unless sticky (else
// whoever may write there could swap the whole directory: see AncestorCheck in the .cc).
Result<void> EnsurePrivateDirectory(const std::string& directory);

// For a socket path the user chose (their ssh ControlPath, --socket): the directory must exist
// and not be a symlink, and nobody else may replace what is in it: ours and not writable by
// others, or root's with the sticky bit (/tmp); the directories above it as for
// EnsurePrivateDirectory.
Result<void> CheckChosenDirectory(const std::string& directory);

// Every *.sock in the directory (for `mconnect status`).
std::vector<std::string> ListSockets(const std::string& directory);

}  // namespace mconnect::proto
