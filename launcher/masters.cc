#include "launcher/masters.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <thread>

#include "base/subprocess.h"
#include "proto/client.h"
#include "proto/master_record.h"
#include "proto/socket_probe.h"

namespace mconnect::launcher {
namespace {

using Clock = std::chrono::steady_clock;

bool Running(pid_t pid) {
  auto state = ProcessState(pid);
  return state && *state != 'Z';
}

// A record whose master has gone (killed without a word): nothing holds its lock.
void Forget(const proto::MasterPaths& paths) {
  if (proto::LockHeld(paths.lock)) return;
  ::unlink(paths.record.c_str());
  ::unlink(paths.lock.c_str());
}

}  // namespace

bool IsOurMaster(pid_t pid) {
  if (pid <= 1) return false;
  const std::string proc = "/proc/" + std::to_string(pid);
  struct stat st{};
  if (::stat(proc.c_str(), &st) != 0 || st.st_uid != ::getuid()) return false;
  char exe[PATH_MAX];
  ssize_t n = ::readlink((proc + "/exe").c_str(), exe, sizeof exe - 1);
  if (n <= 0) return false;
  std::string path(exe, static_cast<std::size_t>(n));
  if (path.ends_with(" (deleted)")) path.resize(path.size() - 10);  // rebuilt or upgraded since
  const std::string name = path.substr(path.rfind('/') + 1);
  return name == "mconnect-mux" || name.starts_with("memcheck");  // (tests may run it under valgrind)
}

std::vector<KnownMaster> FindMasters(const std::string& runtime_dir, std::chrono::milliseconds timeout) {
  std::vector<KnownMaster> masters;
  for (const auto& path : proto::ListRecords(runtime_dir)) {
    auto record = proto::ReadRecord(path);
    if (!record) continue;
    KnownMaster master;
    master.paths = proto::PathsForSocket(record->socket_path());
    master.record = std::move(*record);
    if (master.paths.record != path) continue;  // not where its socket says it would be
    if (master.record.state() != "serving") {
      // Still starting (authenticating, asking): it has no socket yet, but it is there.
      if (Running(static_cast<pid_t>(master.record.pid())) && proto::LockHeld(master.paths.lock)) {
        master.silent = true;
        masters.push_back(std::move(master));
      } else {
        Forget(master.paths);
      }
      continue;
    }
    if (auto client = proto::ControlClient::Connect(master.record.socket_path(), timeout)) {
      auto status = client->Call<control::StatusReply>(proto::MessageType::kStatus, control::StatusRequest{},
                                                       proto::MessageType::kStatusReply, timeout);
      if (status) {
        master.status = std::move(*status);
        masters.push_back(std::move(master));
        continue;
      }
    }
    const pid_t pid = static_cast<pid_t>(master.record.pid());
    if (Running(pid) && IsOurMaster(pid) && proto::LockHeld(master.paths.lock)) {
      master.silent = true;
      masters.push_back(std::move(master));
    } else {
      Forget(master.paths);
    }
  }
  return masters;
}

bool Names(const KnownMaster& master, const std::string& name) {
  if (name.empty()) return false;
  if (name == master.record.alias() || name == master.record.destination()) return true;
  return std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
         name == std::to_string(master.record.pid());
}

Result<int> EndSilentMaster(const KnownMaster& master, std::chrono::milliseconds grace) {
  const pid_t pid = static_cast<pid_t>(master.record.pid());
  if (!IsOurMaster(pid)) return Fail("pid {} is not an mconnect master of yours; not signalling it", pid);
  int signal = SIGTERM;
  ::kill(pid, SIGTERM);
  for (auto deadline = Clock::now() + grace; Running(pid) && Clock::now() < deadline;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (Running(pid)) {
    signal = SIGKILL;
    ::kill(pid, SIGKILL);
    for (auto deadline = Clock::now() + std::chrono::seconds(5); Running(pid) && Clock::now() < deadline;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  if (Running(pid)) return Fail("pid {} does not end even with SIGKILL", pid);
  // Killed, it could not remove what it left.
  if (auto there = proto::ProbeSocket(master.record.socket_path(), std::chrono::milliseconds(500));
      there.kind == proto::SocketAnswer::Kind::kStale) {
    ::unlink(master.record.socket_path().c_str());
  }
  Forget(master.paths);
  return signal;
}

}  // namespace mconnect::launcher
