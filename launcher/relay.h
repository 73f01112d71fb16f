// `mconnect relay PORT PID`: the server side of the `ssh` transport, run by the master over an
// SSH channel when the server has mconnect (else a perl program with the same behaviour; see
// mux/udp_relay.h). Framed datagrams on stdin go to mosh-server's UDP PORT on 127.0.0.1; what
// mosh-server sends back goes to stdout, framed. It says hello on stderr
// ("mconnect-relay: mconnect"), and when mosh-server (PID) has gone it says
// "mconnect-relay: done" and exits 0. EOF on stdin (the channel closed) ends it quietly.
#pragma once

#include <cstdint>

namespace mconnect::launcher {

// Returns the process exit status.
int RunRelay(int port, std::uint32_t server_pid);

}  // namespace mconnect::launcher
