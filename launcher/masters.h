// The masters this user has, as `mconnect status` and `stop` see them: every record in the
// runtime directory (proto/master_record.h), whatever path its socket is at (a ControlPath of
// the user's), each with what answers there. A master that does not answer (stopped, hung) is
// still known by the pid it recorded; a record whose master has gone is removed on the way.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "proto/control.pb.h"
#include "proto/socket_path.h"

namespace mconnect::launcher {

struct KnownMaster {
  control::MasterRecord record;
  proto::MasterPaths paths;
  std::optional<control::StatusReply> status;  // it answered
  // It did not answer, but its process runs (an mconnect-mux of this user's, holding its lock).
  bool silent = false;
};

// Every master with a record in `runtime_dir`, in record order. `timeout` bounds each question.
std::vector<KnownMaster> FindMasters(const std::string& runtime_dir, std::chrono::milliseconds timeout);

// Whether `name` is how the user calls this master: its alias, its destination as status prints
// it (user@host:port), or its pid.
bool Names(const KnownMaster& master, const std::string& name);

// Whether `pid` is an mconnect-mux of this user's (so that it may be signalled).
bool IsOurMaster(pid_t pid);

// Ends a master that does not answer, by its pid: SIGTERM, then SIGKILL after `grace` (a stopped
// process only ever sees the second), and removes what it left in the runtime directory. Returns
// the signal that ended it.
Result<int> EndSilentMaster(const KnownMaster& master, std::chrono::milliseconds grace);

}  // namespace mconnect::launcher
