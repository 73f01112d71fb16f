// The master's Unix socket: the per-destination lock, atomic publication of the socket, and
// accepting only clients that run as our own uid (SO_PEERCRED, as OpenSSH's mux does).
#pragma once

#include <string>

#include "base/result.h"
#include "base/unique_fd.h"

namespace mconnect::mux {

enum class LockState { kAcquired, kBusy };

// Takes the destination's lock without waiting. kBusy: another master holds it (running, or
// still authenticating). The lock lives as long as the returned fd, across fork.
Result<std::pair<LockState, UniqueFd>> TryLock(const std::string& lock_path);

// Binds and listens at `socket_path` (mode 0600). The socket is created under a temporary name
// and renamed into place, so a client never connects to a half-made socket. Call with the lock
// held: an existing socket at the path is then stale and is replaced; anything else at the path
// (a regular file, a symlink) is refused and left alone.
Result<UniqueFd> Listen(const std::string& socket_path);

// Accepts one client; refuses (closes) one whose uid is not ours. Empty fd: nothing to accept.
Result<UniqueFd> AcceptOwnUid(int listen_fd);

}  // namespace mconnect::mux
