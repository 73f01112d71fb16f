// `mconnect relay PORT PID`: the server side of the `ssh` transport, run by the master over an
// SSH channel when the server has mconnect (else mosh/relay.pl, a perl program with the same
// behaviour; see mux/mosh_over_ssh/mosh_over_ssh.h for the command that picks one). Framed datagrams
// (mosh/datagram_frame.h) on stdin go to mosh-server's UDP PORT on 127.0.0.1; what mosh-server
// sends back goes to stdout, framed. It says hello on stderr ("mconnect-relay: mconnect"), and
// when mosh-server (PID) has gone it says "mconnect-relay: done" and exits 0. EOF on stdin (the
// channel closed) ends it quietly. launcher/main.cc dispatches `mconnect relay` here before the
// command line is parsed.
#pragma once

#include <cstdint>

namespace mconnect::mosh {

// Returns the process exit status.
int RunRelay(int port, std::uint32_t server_pid);

}  // namespace mconnect::mosh
