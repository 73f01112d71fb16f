// Where a master for a destination listens, and where mconnect keeps what goes with it.
// Launcher and master agree on this; nothing else about the file system is shared between them.
//
// mconnect's runtime directory: $XDG_RUNTIME_DIR/mconnect when XDG_RUNTIME_DIR is an absolute
// directory of this user's (after `su`, it is another user's: nothing is created in it), else
// /tmp/mconnect-UID. The socket is there by default (USER@HOST:PORT.sock), or wherever the
// user's ControlPath or --socket says. Whatever goes with a master stays in the runtime
// directory, never beside a socket of the user's (~/.ssh for most), under the socket's name or,
// for a socket elsewhere, a hash of its path:
//   NAME.lock       held (flock) by the one master for that socket; holds its pid
//   NAME.master     the master's record (proto/master_record.h): socket, destination, pid, state
//   NAME.log        the master's log once it has detached
//   NAME.transport  the transport verdict for new sessions (launcher/transport.h)
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
  std::string record;
  std::string log;
  std::string verdict;
};

// `directory` (where sockets go) empty means DefaultRuntimeDir().
MasterPaths PathsFor(const std::string& directory, const std::string& user, const std::string& host, int port);
// What goes with a socket at any path: the rest in the runtime directory.
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
// Every master record (*.master) in the runtime directory.
std::vector<std::string> ListRecords(const std::string& runtime_dir);

}  // namespace mconnect::proto
