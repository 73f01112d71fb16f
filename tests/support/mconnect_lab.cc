#include "tests/support/mconnect_lab.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "proto/socket_path.h"
#include "tests/support/paths.h"

namespace mconnect::testing {

Result<std::unique_ptr<MconnectLab>> MconnectLab::Start(const std::string& sshd_config_extra) {
  TempDir dir;
  LabEnv env(dir.path());
  std::unique_ptr<MconnectLab> lab(new MconnectLab(std::move(dir), std::move(env)));
  if (!sshd_config_extra.empty()) {
    const std::string sshd_dir = lab->dir_.Sub("sshd");
    if (::mkdir(sshd_dir.c_str(), 0700) != 0) return Fail("mkdir {}: {}", sshd_dir, std::strerror(errno));
    std::ofstream extra(sshd_dir + "/sshd_config.extra");
    extra << sshd_config_extra << "\n";
    if (!extra.flush()) return Fail("cannot write {}/sshd_config.extra", sshd_dir);
  }
  auto sshd = SshdLab::Start(lab->dir_.Sub("sshd"));
  if (!sshd) return Fail(sshd.error());
  lab->sshd_ = std::move(*sshd);
  return lab;
}

Result<std::unique_ptr<MconnectLab>> MconnectLab::StartWithMaster() {
  auto lab = Start();
  if (!lab) return lab;
  auto started = (*lab)->Run({"ip", (*lab)->SshOption(), "lab"});
  if (!started) return Fail(started.error());
  if (started->exit_code != 0) return Fail("mconnect ip lab exited {}: {}", started->exit_code, started->err);
  return lab;
}

MconnectLab::~MconnectLab() { Cleanup(); }

std::string MconnectLab::SshOption() const { return "--ssh=ssh -F " + sshd_->ssh_config(); }

std::vector<std::string> MconnectLab::Command(const std::vector<std::string>& args) const {
  std::vector<std::string> argv{std::string(MCONNECT_BIN_DIR) + "/mconnect"};
  argv.insert(argv.end(), args.begin(), args.end());
  return env_.Command(argv);
}

std::string MconnectLab::ShellCommand(const std::vector<std::string>& args) const {
  std::string line;
  for (const auto& word : Command(args)) line += (line.empty() ? "" : " ") + ShellQuote(word);
  return line;
}

Result<CommandOutput> MconnectLab::Run(const std::vector<std::string>& args, std::chrono::milliseconds timeout) const {
  return RunIn(env_, args, timeout);
}

std::vector<std::string> MconnectLab::SshThroughMaster(const LabEnv& env, const std::vector<std::string>& args) const {
  std::vector<std::string> argv{"ssh", "-F", sshd_->ssh_config(), "-S", SocketPath(), "-o", "ControlMaster=no"};
  argv.insert(argv.end(), args.begin(), args.end());
  return env.Command(argv);
}

Result<CommandOutput> MconnectLab::RunIn(const LabEnv& env, const std::vector<std::string>& args,
                                         std::chrono::milliseconds timeout) const {
  std::vector<std::string> argv{std::string(MCONNECT_BIN_DIR) + "/mconnect"};
  argv.insert(argv.end(), args.begin(), args.end());
  CommandOptions options;
  options.timeout = timeout;
  return RunCommand(env.Command(argv), options);
}

std::string MconnectLab::SocketPath() const {
  auto settings = RunCommand({"ssh", "-F", sshd_->ssh_config(), "-G", "lab"});
  std::string name = "root";
  if (settings) {
    for (std::size_t at = 0; at < settings->out.size();) {
      std::size_t end = settings->out.find('\n', at);
      if (end == std::string::npos) end = settings->out.size();
      std::string line = settings->out.substr(at, end - at);
      if (line.rfind("user ", 0) == 0) name = line.substr(5);
      at = end + 1;
    }
  }
  return proto::PathsFor(env_.runtime_dir + "/mconnect", name, "127.0.0.1", sshd_->port()).socket;
}

Result<proto::ControlClient> MconnectLab::Connect() const {
  return proto::ControlClient::Connect(SocketPath(), std::chrono::seconds(5));
}

pid_t MconnectLab::MasterPid() const {
  auto client = Connect();
  return client ? static_cast<pid_t>(client->master_pid()) : 0;
}

Result<control::StatusReply> MconnectLab::Status() const {
  auto client = Connect();
  if (!client) return Fail(client.error());
  return client->Call<control::StatusReply>(proto::MessageType::kStatus, control::StatusRequest{},
                                            proto::MessageType::kStatusReply, std::chrono::seconds(5));
}

std::string MconnectLab::MasterLog() const {
  std::string socket = SocketPath();
  auto log = ReadFile(socket.substr(0, socket.size() - 5) + ".log");
  return log ? *log : log.error().message;
}

int MconnectLab::CountInMasterLog(std::string_view needle) const {
  const std::string log = MasterLog();
  int count = 0;
  for (std::size_t at = log.find(needle); at != std::string::npos; at = log.find(needle, at + needle.size())) ++count;
  return count;
}

void MconnectLab::Cleanup() {
  // A lab whose sshd never came up (Start failed) has no master to ask for.
  if (pid_t master = sshd_ ? MasterPid() : 0; master > 0) KillPid(master);
  // Masters and mosh-servers detach; as the subreaper (AdoptOrphans) this process inherited
  // them, so its orphaned children are exactly what this test left running.
  pid_t self = ::getpid();
  for (const auto& process : FindProcesses([self](const ProcessInfo& p) {
         return p.ppid == self && (p.exe == "mosh-server" || p.exe == "mconnect-mux");
       })) {
    KillPid(process.pid);
  }
}

}  // namespace mconnect::testing
