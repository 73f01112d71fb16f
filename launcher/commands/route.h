// A session's route: how mosh's datagrams travel (the command line's or profile's transport,
// and for `auto` a UDP probe's verdict) and, over UDP, the address mosh-client sends to.
#pragma once

#include <string>

#include "base/result.h"
#include "base/terminal.h"
#include "launcher/cli.h"
#include "launcher/master_link.h"
#include "launcher/profile.h"
#include "launcher/transport.h"

namespace mconnect::launcher {

struct Route {
  Transport transport = Transport::kUdp;
  std::string address;  // for udp: where mosh-server is reachable; for ssh: unused
  std::string reason;   // why this transport (for ssh: shown to the user and in status)
};

// For `auto`, the verdict is remembered beside the master's socket for the remote-ip cache time,
// for this server address seen from this machine's address. Steps show on `progress`.
Result<Route> ChooseRoute(MasterLink& link, const Options& options, const HostProfile& profile,
                          term::ProgressLine& progress);

}  // namespace mconnect::launcher
