// The MasterConfig a master starts with (proto/master_config.proto): the launcher writes it to
// a file the master inherits; the master reads and checks it before it does anything else.
//
// Why an inherited fd, and a memfd: the master's stdin, stdout and stderr are the user's
// terminal while it authenticates (and stdin may carry a remote command's input), so none of
// them can carry the message; an environment variable would be inherited by the proxy command
// and by every process the master starts. A memfd holds the whole message before the master
// runs, so the launcher writes it before fork (no pipe to keep fed, no deadlock, no SIGPIPE)
// and `mconnect master` can exec the master in its own process with the file open. The master
// reads it to its end and closes it first thing, before it closes every other inherited fd and
// long before it detaches: nothing of the launcher's stays open in a master.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"
#include "base/unique_fd.h"
#include "proto/master_config.pb.h"

namespace mconnect::proto {

// The most bytes read as one MasterConfig (serialized or text); a real one is a few hundred.
inline constexpr std::size_t kMaxMasterConfigBytes = 256 * 1024;

// The most configured forwards a master takes (ssh config and profile together), and the most
// bytes of a forward's host, path or text.
inline constexpr int kMaxConfiguredForwards = 64;
inline constexpr std::size_t kMaxForwardField = 1024;
// OpenSSH's PORT_STREAMLOCAL: the host beside this port is a Unix socket path.
inline constexpr std::uint32_t kPortStreamLocal = 0xfffffffe;

// Every field within its bounds and the required ones present (user, host, socket_path); the
// unset optional fields get their defaults, so the master reads every value from the result.
// The error is one line naming the field: "MasterConfig.port is 70000; expected 1..65535".
Result<control::MasterConfig> CheckMasterConfig(control::MasterConfig config);

// The serialized message, checked.
Result<control::MasterConfig> ParseMasterConfig(std::string_view bytes);
// The message in protobuf text format (`mconnect-mux --config=FILE`), checked. A syntax error
// names its line and column.
Result<control::MasterConfig> ParseMasterConfigText(std::string_view text);

// The launcher's side of `mconnect-mux --config-fd=N`: a sealed memfd holding the serialized
// message, at offset 0, close-on-exec (the caller clears that in the child it starts).
Result<UniqueFd> MasterConfigFile(const control::MasterConfig& config);

// The master's side: reads `fd` to its end (a memfd, a pipe or a file; at most
// kMaxMasterConfigBytes) and parses it with ParseMasterConfig. Does not close `fd`.
Result<control::MasterConfig> ReadMasterConfig(int fd);
// `path` in text format, with ParseMasterConfigText.
Result<control::MasterConfig> ReadMasterConfigText(const std::string& path);

}  // namespace mconnect::proto
