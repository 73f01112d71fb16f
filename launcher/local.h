// --local, as mosh's: no SSH at all. mosh-server runs on this machine, bound to the
// destination's address (resolved here, under --family), and mosh-client is pointed at it.
// For a session on this very machine (tests, a terminal that should survive a flaky X or
// serial link) and for trying mosh itself without a server.
#pragma once

#include "launcher/cli.h"

namespace mconnect::launcher {

// Returns the exit status on failure (having said why, with a hint); on success this process
// has become mosh-client.
int RunLocal(const Options& options);

}  // namespace mconnect::launcher
