// A master's record in mconnect's runtime directory (NAME.master, see proto/socket_path.h): what
// `mconnect status` and `stop` need to find a master wherever its socket is, and to tell about
// one that does not answer (stopped, hung) by the pid it wrote there. Written by the master
// alone, whole (a temporary file renamed into place), and removed when it exits.
#pragma once

#include <optional>
#include <string>

#include "base/result.h"
#include "proto/control.pb.h"

namespace mconnect::proto {

Result<void> WriteRecord(const std::string& path, const control::MasterRecord& record);
// nullopt: no record there, or not one (a truncated or foreign file).
std::optional<control::MasterRecord> ReadRecord(const std::string& path);

// Whether some process holds the flock on `lock_path` (a master, running or stuck); false when
// the file is gone or free.
bool LockHeld(const std::string& lock_path);

}  // namespace mconnect::proto
