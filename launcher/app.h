// The launcher's commands, one file each under launcher/commands/ (main.cc picks one from the
// parsed command line). Each returns the process exit status and prints its own one-line
// failure; ssh's convention: 255 when the connection or authentication failed.
#pragma once

#include "launcher/cli.h"

namespace mconnect::launcher {

inline constexpr int kExitConnectionFailed = 255;

int RunConnect(Options options);           // commands/connect.cc
int RunStatus(const Options& options);     // commands/status.cc
int RunStop(const Options& options);       // commands/stop.cc
int RunIp(Options options);                // commands/ip.cc
int RunSshConfig(const Options& options);  // commands/ssh_config.cc
int RunDoctor(Options options);            // commands/doctor.cc
int RunMaster(Options options);            // commands/master.cc

}  // namespace mconnect::launcher
