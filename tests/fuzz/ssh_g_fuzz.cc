// `ssh -G` output is trusted more than network input, but a --ssh wrapper can print anything.
// Beyond "no crash": a success always names a host, a user and a non-zero port, and the forwards
// read from its forward lines are ones the master's own check of its MasterConfig takes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "launcher/ssh_config.h"
#include "proto/master_config.h"

using namespace mconnect::launcher;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto settings = ParseSshG(std::string_view(reinterpret_cast<const char*>(data), size), "alias");
  if (settings) {
    if (settings->hostname.empty() || settings->user.empty() || settings->port == 0) std::abort();
    (void)DestinationName(*settings);
    mconnect::control::MasterConfig config;
    config.set_user("u");
    config.set_host("h");
    config.set_socket_path("/s");
    for (const auto& forward : settings->forwards) *config.add_forwards() = forward;
    if (!mconnect::proto::CheckMasterConfig(config)) std::abort();
  }
  return 0;
}
