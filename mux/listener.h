// The master's Unix socket: the per-destination lock, atomic publication of the socket, and
// accepting only clients that run as our own uid or as root (SO_PEERCRED, as OpenSSH's mux does).
#pragma once

#include <string>

#include "base/result.h"
#include "base/unique_fd.h"

namespace mconnect::mux {

enum class LockState { kAcquired, kBusy };

// Takes the destination's lock without waiting, and writes this process's pid into it (for
// `mconnect status` and `stop` when the master does not answer). kBusy: another master holds it
// (running, or still authenticating). The lock lives as long as the returned fd, across fork.
// A lock file removed by the master that held it (ReleaseLock) is never taken: whoever opened
// it before the removal finds it gone and opens the new one.
Result<std::pair<LockState, UniqueFd>> TryLock(const std::string& lock_path);
// Removes the lock file while still holding it: a master that leaves leaves nothing behind.
void ReleaseLock(const std::string& lock_path, UniqueFd lock);

// Binds and listens at `socket_path` (mode 0600). The socket is created under a temporary name
// and renamed into place, so a client never connects to a half-made socket. A socket already
// at the path is replaced only when nobody listens on it (connect refused), as OpenSSH's
// muxserver_listen does: one that answers is someone's (OpenSSH's own master at the same
// ControlPath, say) and is left alone, with an error that says whose. Anything else at the
// path (a regular file, a symlink) is refused and left alone.
Result<UniqueFd> Listen(const std::string& socket_path);

// Accepts one client; refuses (closes) one whose uid is neither ours nor root's, and logs its
// uid and pid. Empty fd: nothing to accept.
//
// Out of file descriptors (EMFILE, ENFILE), accept() fails and leaves the client queued, so the
// listening socket stays readable and a poll loop would spin on it. Listen() therefore keeps one
// spare fd: here it is given up to accept that client, which is told why in an ErrorReply frame
// (a control client shows it; an OpenSSH client sees the connection close), closed, and the spare
// taken back; the refusal is logged with the limit. An error means a client may still be queued (no spare fd,
// or another accept failure): the caller should not poll the socket again at once.
Result<UniqueFd> AcceptOwnUid(int listen_fd);

}  // namespace mconnect::mux
