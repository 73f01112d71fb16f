// Does a mosh-server really answer on this address:port? The probe speaks mosh's own datagram
// protocol (mosh/datagram.h) with the session key of `MOSH CONNECT <port> <key>`:
// only a server that holds the key can produce a reply that authenticates, so an answer proves
// the whole UDP path (address, NAT forwarding, firewalls both ways) and the server behind it.
//
// USE IT ON A THROWAWAY mosh-server ONLY — one started for the probe and killed afterwards,
// never the server whose key is about to go to the user's mosh-client. An authentic datagram
// makes mosh-server "roam": it sends its screen to the probe's address from then on, and it
// ignores the real client's sequence numbers up to the probe's for roaming purposes. The probe
// keeps that harm small (sequence numbers 0, 1, 2; an instruction that announces no new state,
// so the server's view of the client's state is untouched), but the session would still start
// talking to the wrong socket until the real client is heard again.
//
// Blocking, single socket, bounded by `budget`; meant for the launcher (or a helper it runs),
// not for the master's event loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace mconnect::mosh {

struct ProbeResult {
  bool answered = false;
  // From the last datagram sent before the reply to the reply, rounded up to whole ms (so an
  // answer on loopback reads 1 ms, never 0); 0 when not answered.
  std::chrono::milliseconds rtt{0};
  // One line for the user, never the key: "mosh-server answered in 3 ms", "port closed (ICMP
  // port unreachable)", "no answer (UDP blocked or filtered?)", ...
  std::string detail;
};

// Sends up to three authentic client datagrams (protocol version 2, old_num = new_num = 0,
// ack_num 0, throwaway_num 0, empty diff: "I have your state 0 and nothing new") at 0, 1/6 and
// 1/3 of `budget` (spacing 20 ms to 1 s), and waits at most `budget` in total for a datagram that
// authenticates with `key` and travels toward the client. Datagrams that fail authentication
// are counted and named in the detail (something else answers on that port, or the key is not
// this server's). An ICMP port unreachable ends the probe at once as "port closed".
//
// Errors (not probe outcomes): `address` is not an IPv4/IPv6 literal, port 0, a malformed key,
// or no UDP socket could be made.
Result<ProbeResult> ProbeMoshServer(const std::string& address, std::uint16_t port, std::string_view key,
                                    std::chrono::milliseconds budget);

}  // namespace mconnect::mosh
