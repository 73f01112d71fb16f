// Where in the user's ssh config lines that set ControlPath for a host take effect, decided by
// ssh itself (`ssh -G` on copies of the file): what `mconnect ssh-config` needs to know
// when it says where its lines must go.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "launcher/ssh_config.h"

namespace mconnect::launcher {

// Where lines setting ControlPath for `settings.host_alias` take effect in the ssh config the
// user's ssh reads (`-F FILE` in `ssh_argv`, else ~/.ssh/config). ssh keeps the first value it
// reads, so lines appended at the end lose to any ControlPath read before them for that host,
// `ControlPath none` included: one in an earlier Host or Match block (or `Host *`), or one
// outside any block. Decided by ssh itself: `ssh -G` on copies of the file with `lines` added
// (the copies beside nothing of the user's; an Include with a relative path reads ~/.ssh as
// the original does), and `ssh -v -G` for the blocks that apply.
struct ControlPathPlace {
  enum class Kind {
    kAppend,      // at the end of `file` (or a new file)
    kAbove,       // above `line` of `file`, the first block there that applies (`block`)
    kOverridden,  // nowhere: a ControlPath outside any block, above `line` (0: anywhere), comes first
  };
  Kind kind = Kind::kAppend;
  std::string file;
  int line = 0;
  std::string block;  // the text of that line: "Host lab"
};
Result<ControlPathPlace> PlaceControlPathLines(const SshSettings& settings, const std::vector<std::string>& ssh_argv,
                                               const std::string& lines);

}  // namespace mconnect::launcher
