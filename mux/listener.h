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
//
// Out of file descriptors (EMFILE, ENFILE), accept() fails and leaves the client queued, so the
// listening socket stays readable and a poll loop would spin on it. Listen() therefore keeps one
// spare fd: here it is given up to accept that client, which is told why in an ErrorReply frame
// (a control client shows it; an OpenSSH client sees the connection close), closed, and the spare
// taken back; the refusal is logged with the limit. An error means a client may still be queued (no spare fd,
// or another accept failure): the caller should not poll the socket again at once.
Result<UniqueFd> AcceptOwnUid(int listen_fd);

}  // namespace mconnect::mux
