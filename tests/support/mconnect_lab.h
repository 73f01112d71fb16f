// A test world for mconnect: a throwaway sshd (SshdLab), an isolated environment, and helpers
// to run the real `mconnect` against it and to reach its master. The destructor stops every
// master and every detached mosh-server this test started, by pid.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "base/subprocess.h"
#include "proto/client.h"
#include "proto/control.pb.h"
#include "tests/support/lab.h"

namespace mconnect::testing {

class MconnectLab {
 public:
  // `sshd_config_extra`: lines appended to the lab's sshd_config (sshd-lab's sshd_config.extra),
  // e.g. "SetEnv PATH=/somewhere" to change what the server's sessions see.
  static Result<std::unique_ptr<MconnectLab>> Start(const std::string& sshd_config_extra = "");
  // Start(), then `mconnect ip lab`, so that a master serves the lab.
  static Result<std::unique_ptr<MconnectLab>> StartWithMaster();
  ~MconnectLab();

  SshdLab& sshd() { return *sshd_; }
  LabEnv& env() { return env_; }
  const TempDir& dir() const { return dir_; }

  // "--ssh=ssh -F <lab ssh_config>"
  std::string SshOption() const;
  // The argv that runs the built mconnect in the lab's environment.
  std::vector<std::string> Command(const std::vector<std::string>& args) const;
  // The same as one shell command line, for tmux.
  std::string ShellCommand(const std::vector<std::string>& args) const;
  // Runs mconnect to completion (no terminal).
  Result<CommandOutput> Run(const std::vector<std::string>& args,
                            std::chrono::milliseconds timeout = std::chrono::seconds(30)) const;
  // The same in `env` (the lab's env() with changes: another LANG, no TERM) instead.
  Result<CommandOutput> RunIn(const LabEnv& env, const std::vector<std::string>& args,
                              std::chrono::milliseconds timeout = std::chrono::seconds(30)) const;

  // OpenSSH's ssh through the master's socket (never a connection of its own), in `env`.
  std::vector<std::string> SshThroughMaster(const LabEnv& env, const std::vector<std::string>& args) const;

  // Where the master for the lab's sshd listens.
  std::string SocketPath() const;
  // A control connection to that master.
  Result<proto::ControlClient> Connect() const;
  // The master's pid from its Hello, 0 when none answers.
  pid_t MasterPid() const;
  // The master's Status.
  Result<control::StatusReply> Status() const;
  // The master's log file (beside its socket), or why it cannot be read; and how many times
  // `needle` occurs in it.
  std::string MasterLog() const;
  int CountInMasterLog(std::string_view needle) const;

  // Stops every master and detached mosh-server this process adopted. Idempotent.
  void Cleanup();

 private:
  MconnectLab(TempDir dir, LabEnv env) : dir_(std::move(dir)), env_(std::move(env)) {}

  TempDir dir_;
  LabEnv env_;
  std::unique_ptr<SshdLab> sshd_;
};

}  // namespace mconnect::testing
