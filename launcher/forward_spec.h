// Port forwards written as ssh writes them, read into the MasterConfig's ConfiguredForward
// (proto/master_config.proto): the profile's `forward` entries ("L 8080:localhost:80") and the
// localforward/remoteforward/dynamicforward lines of `ssh -G`. One reading for both, OpenSSH's
// own (readconf.c's parse_forward): fields split at ':', a field in [brackets] taken literally
// (an IPv6 address), a field with a '/' a Unix socket path, `\` escaping the next character.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "proto/master_config.pb.h"

namespace mconnect::launcher {

using control::ConfiguredForward;

// `spec` for one kind, as ssh's -L, -R and -D take it:
//   L  [bind:]port:host:hostport | [bind:]port:path | path:host:hostport | path:path
//   R  the same, plus [bind:]port alone (SOCKS on the server's side, OpenSSH >= 7.6)
//   D  [bind:]port
// The error says what is wrong, without repeating the spec.
Result<ConfiguredForward> ParseForwardSpec(ConfiguredForward::Kind kind, std::string_view spec);

// A profile entry: "L", "R" or "D", blanks, then the spec: "R 9000:localhost:9000".
Result<ConfiguredForward> ParseProfileForward(std::string_view entry);

// `ssh -G`'s localforward, remoteforward and dynamicforward lines, in its order. ssh prints
// their values as "8080 [localhost]:80", "[127.0.0.1]:1080", "9000 [socks]:0" (SOCKS on the
// server's side). OpenSSH 9.2 also prints every local forward to or from a Unix socket as a
// dynamicforward line of its listen side: those echoes are dropped (a real DynamicForward on the
// same listen address could not have opened beside it anyway). The error names the line's key.
struct SshGForwardLine {
  std::string key;  // lowercase
  std::string value;
};
Result<std::vector<ConfiguredForward>> ParseSshGForwards(const std::vector<SshGForwardLine>& lines);

}  // namespace mconnect::launcher
