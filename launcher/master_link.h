// Reaching the master for a destination: connect to its socket, or start one (authenticating
// on this terminal) and then connect. Never two masters for one destination: the master's own
// lock decides, and a second starter waits for the first.
#pragma once

#include <chrono>
#include <string>

#include "base/result.h"
#include "launcher/cli.h"
#include "launcher/profile.h"
#include "launcher/ssh_config.h"
#include "proto/client.h"
#include "proto/master_config.pb.h"

namespace mconnect::launcher {

struct MasterLink {
  proto::ControlClient client;
  std::string socket_path;
  bool started = false;  // this call started the master (a cold start)
  std::chrono::milliseconds elapsed{0};
};

// The socket for these settings: --socket, else the user's ControlPath from their ssh config
// (so that a plain `ssh HOST` finds the master there), else the profile's socket-dir (or the
// default runtime directory) and the destination's name.
Result<std::string> SocketPathFor(const SshSettings& settings, const Options& options, const HostProfile& profile);

// The mconnect-mux executable: --mux, else next to this program, else on PATH.
std::string MuxExecutable(const Options& options);

// What a master started for these settings is told (proto/master_config.proto), from `ssh -G`,
// the command line and the profile: `proxy_command` as ProxyCommandFor made it, `chosen_socket`
// when the socket is the user's choice (--socket, ControlPath). Fails only on a setting the
// message has no value for (a StrictHostKeyChecking or AddressFamily ssh does not print).
Result<control::MasterConfig> MasterConfigFor(const SshSettings& settings, const Options& options,
                                              const HostProfile& profile, const std::string& socket_path,
                                              const std::string& proxy_command, bool chosen_socket);

// With options.foreground_master (`mconnect master`), a master that has to be started replaces
// this process (exec) and stays in the foreground; only a running master is ever returned.
Result<MasterLink> ConnectOrStartMaster(const SshSettings& settings, const Options& options,
                                        const HostProfile& profile);

}  // namespace mconnect::launcher
