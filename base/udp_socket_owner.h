// Whose UDP socket sent a datagram, as Linux lists its sockets in /proc/net/udp and
// /proc/net/udp6. A port on 127.0.0.1 can be reached by every local user; the uid of the socket
// a datagram came from is what tells our own processes from another user's.
//
// The tables, as the kernel prints them (one header line, then one line per socket, fields
// separated by blanks):
//
//     sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout ...
//   12666: 0100007F:814D 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 ...
//
// local_address is the address as the kernel holds it (network order) printed as 32-bit words
// in this machine's byte order (one word in udp, four in udp6: 127.0.0.1 reads 0100007F on a
// little-endian machine), then ':' and the port in hex. uid is decimal, as seen from the user
// namespace of whoever opened the file.
#pragma once

#include <netinet/in.h>
#include <sys/types.h>

#include <string_view>
#include <vector>

#include "base/result.h"

namespace mconnect {

// The uids of the sockets listed in `table` (the whole text of /proc/net/udp or /proc/net/udp6)
// that may have sent a datagram from `source` (an IPv4 address and port): those bound to its
// port and to its address or to a wildcard that covers it (0.0.0.0; in udp6 also ::,
// ::ffff:0.0.0.0 and ::ffff:<address>, a dual-stack socket). Empty when no socket is listed.
//
// An error when any line cannot be read whole (a missing header, a line cut short, a field out
// of range or of the wrong width, text that does not end with a newline): an unread line may be
// the sender's, so a table with one is no evidence for anybody.
Result<std::vector<uid_t>> UdpSenderUids(std::string_view table, const sockaddr_in& source);

// UdpSenderUids over this network namespace's /proc/net/udp and /proc/net/udp6 (a kernel
// without IPv6 has no udp6: then it adds nothing). Reads at most 16 MiB of each; a larger
// table is an error.
Result<std::vector<uid_t>> UdpSenderUidsFromProc(const sockaddr_in& source);

}  // namespace mconnect
