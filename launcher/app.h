// The launcher's commands. Each returns the process exit status and prints its own one-line
// failure; ssh's convention: 255 when the connection or authentication failed.
#pragma once

#include "launcher/cli.h"

namespace mconnect::launcher {

inline constexpr int kExitConnectionFailed = 255;

int RunConnect(Options options);
int RunStatus(const Options& options);
int RunStop(const Options& options);
int RunIp(Options options);
int RunSshConfig(const Options& options);
int RunDoctor(Options options);
int RunMaster(Options options);

}  // namespace mconnect::launcher
