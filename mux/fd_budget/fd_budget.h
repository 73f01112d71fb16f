// One budget for the master's file descriptors. Everything a client brings costs fds (its
// connection, the three an `ssh -S` session lends, a forwarded socket), and so does what the
// master needs for itself: a reconnect (a socket, an eventfd, a proxy command's pipes, the
// known_hosts file), the connections it opens past MaxSessions, its log. Clients are admitted
// only while what they cost leaves the master's own reserve untouched, so that running out
// happens to a new client, with a message, and never in the middle of a reconnect.
#pragma once

#include <cstddef>
#include <optional>

namespace mconnect::mux {

// Raises the soft RLIMIT_NOFILE to the hard limit (a login's soft 1024 is a select() relic;
// the master polls). Returns the soft limit in force afterwards.
std::size_t RaiseFdLimit();

// Open fds of this process, from /proc/self/fd; nullopt without /proc.
std::optional<std::size_t> CountOpenFds();

class FdBudget {
 public:
  // What the master keeps for itself (see above), and what admitting one client costs at most:
  // its connection and the three fds an OpenSSH session lends.
  static constexpr std::size_t kReserve = 64;
  static constexpr std::size_t kClientCost = 4;

  // The fds that may still be taken without touching the reserve: RLIMIT_NOFILE's soft limit
  // as it is now (it may be changed from outside: prlimit), less the open fds and the reserve.
  // Unknown (no /proc): as good as unlimited, and accept() failing with EMFILE is the only word.
  // `promised`: fds not open yet that admitted clients will still bring (the three an `ssh -S`
  // session lends after its HELLO); counting them keeps a slow master from admitting, while
  // earlier clients are still in their handshake, more than it can take in.
  static std::size_t Room(std::size_t promised = 0);
  // The soft limit, for messages.
  static std::size_t Limit();
};

}  // namespace mconnect::mux
