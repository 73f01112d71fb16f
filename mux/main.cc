// mconnect-mux: the master for one destination. Started by the launcher (`mconnect`) with its
// settings in one MasterConfig (proto/master_config.proto) on an inherited fd, `--config-fd=N`;
// by hand, `--config=FILE` reads the same message in text format. Authenticates in the
// foreground on the user's terminal, then publishes its socket and detaches, like OpenSSH's
// ControlPersist. Exit status 0 means a master (this one, or one that was already starting) is
// serving the socket; 255 means the config was refused, the connection or authentication failed,
// or (ExitOnForwardFailure) a forward could not be opened, with one line on stderr saying why.
#include <fcntl.h>
#include <malloc.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstdio>
#include <ctime>
#include <expected>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "base/log.h"
#include "base/terminal.h"
#include "base/unique_fd.h"
#include "mux/fd_budget/fd_budget.h"
#include "mux/listener.h"
#include "mux/master.h"
#include "mux/ssh/connection.h"
#include "mux/ssh/prompt.h"
#include "proto/master_config.h"
#include "proto/master_record.h"
#include "proto/socket_path.h"

namespace {

using namespace mconnect;

// The master's settings: the checked MasterConfig in the master's own structs.
struct Args {
  mux::ConnectParams connect;
  int keepalive_s = 30;
  int keepalive_count = 3;
  bool reconnect = true;
  int reconnect_wait_s = 30;
  int persist_s = 600;
  int remote_ip_ttl_s = 300;
  std::string socket_path;
  std::string log_path;
  bool foreground = false;
  bool progress = false;
  bool chosen_socket = false;
  std::string alias;
  int verbosity = 0;
  std::string forward_agent;
  bool forward_x11_untrusted = false;
  std::vector<mux::ConfiguredForward> forwards;
  bool exit_on_forward_failure = false;
};

// A configured forward as the master's forwards take it: OpenSSH's mux ForwardSpec.
mux::ConfiguredForward ForwardFrom(const control::ConfiguredForward& forward) {
  using Forward = control::ConfiguredForward;
  mux::ConfiguredForward out;
  out.spec.type = forward.kind() == Forward::KIND_REMOTE    ? mux::openssh::kMuxFwdRemote
                  : forward.kind() == Forward::KIND_DYNAMIC ? mux::openssh::kMuxFwdDynamic
                                                            : mux::openssh::kMuxFwdLocal;
  out.spec.listen_host = forward.listen_host();
  out.spec.listen_port = forward.listen_port();
  out.spec.connect_host = forward.connect_host();
  out.spec.connect_port = forward.connect_port();
  out.text = forward.text();
  out.origin = forward.origin() == Forward::ORIGIN_PROFILE ? "profile" : "ssh config";
  return out;
}

// `config` has passed proto::CheckMasterConfig: every value is within its bounds and every
// optional field is set.
Args ArgsFrom(const control::MasterConfig& config) {
  using Config = control::MasterConfig;
  Args args;
  mux::ConnectParams& connect = args.connect;
  connect.user = config.user();
  connect.host = config.host();
  connect.port = static_cast<int>(config.port());
  connect.address_family = config.address_family() == Config::ADDRESS_FAMILY_INET    ? AF_INET
                           : config.address_family() == Config::ADDRESS_FAMILY_INET6 ? AF_INET6
                                                                                     : AF_UNSPEC;
  connect.host_key_alias = config.host_key_alias();
  connect.known_hosts_files.assign(config.known_hosts_files().begin(), config.known_hosts_files().end());
  switch (config.strict_host_key_checking()) {
    case Config::HOST_KEY_CHECKING_YES: connect.host_key_policy = mux::HostKeyPolicy::kStrict; break;
    case Config::HOST_KEY_CHECKING_ACCEPT_NEW:
    case Config::HOST_KEY_CHECKING_NO: connect.host_key_policy = mux::HostKeyPolicy::kAcceptNew; break;
    default: connect.host_key_policy = mux::HostKeyPolicy::kAsk; break;
  }
  connect.identity_files.assign(config.identity_files().begin(), config.identity_files().end());
  connect.identities_only = config.identities_only();
  connect.identity_agent = config.identity_agent();
  connect.ciphers = config.ciphers();
  connect.auth.preferred.assign(config.preferred_authentications().begin(), config.preferred_authentications().end());
  connect.auth.pubkey = config.pubkey_authentication();
  connect.auth.kbd_interactive = config.kbd_interactive_authentication();
  connect.auth.password = config.password_authentication();
  connect.auth.password_prompts = static_cast<int>(config.number_of_password_prompts());
  connect.auth.batch_mode = config.batch_mode();
  connect.timeout = std::chrono::seconds(config.connect_timeout_s());
  connect.proxy_command = config.proxy_command();
  args.keepalive_s = static_cast<int>(config.keepalive_s());
  args.keepalive_count = static_cast<int>(config.keepalive_count());
  args.reconnect = config.reconnect();
  args.reconnect_wait_s = static_cast<int>(config.reconnect_wait_s());
  args.persist_s = config.persist_s();
  args.remote_ip_ttl_s = static_cast<int>(config.remote_ip_ttl_s());
  args.socket_path = config.socket_path();
  args.log_path = config.log_path();
  args.foreground = config.foreground();
  args.progress = config.progress();
  args.chosen_socket = config.chosen_socket();
  args.alias = config.alias();
  args.verbosity = static_cast<int>(config.verbosity());
  args.forward_agent = config.forward_agent();
  args.forward_x11_untrusted = config.forward_x11_untrusted();
  for (const auto& forward : config.forwards()) args.forwards.push_back(ForwardFrom(forward));
  args.exit_on_forward_failure = config.exit_on_forward_failure();
  return args;
}

// The command line, then the MasterConfig it names, read and checked; the error is the exit
// status (after --help, or with the reason said on stderr). The config fd is closed here, before
// main closes every other inherited fd: a master keeps nothing of the launcher's.
std::expected<Args, int> ReadArgs(int argc, char** argv) {
  int config_fd = -1;
  std::string config_file;
  bool foreground = false;
  int verbosity = 0;
  CLI::App app{
      "mconnect-mux: the persistent SSH master behind mconnect, which starts it with its settings in one "
      "MasterConfig (proto/master_config.proto; see mconnect-mux(1))"};
  auto* from_fd = app.add_option("--config-fd", config_fd, "read the serialized MasterConfig from this fd (mconnect)")
                      ->check(CLI::NonNegativeNumber);
  auto* from_file = app.add_option("--config", config_file, "read the MasterConfig from FILE, in protobuf text format");
  from_fd->excludes(from_file);
  // For a person running a master by hand (the launcher sets both in the MasterConfig).
  app.add_flag("--foreground", foreground, "do not detach, whatever the config says; the log stays on stderr");
  app.add_flag("-v", verbosity, "more log detail than the config asks for (repeatable)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return std::unexpected(app.exit(e));
  }
  const bool from_fd_given = from_fd->count() > 0;
  if (!from_fd_given && config_file.empty()) {
    std::fprintf(stderr, "mconnect-mux: no settings: --config-fd=N (as mconnect starts it) or --config=FILE\n");
    return std::unexpected(255);
  }
  auto config = from_fd_given ? proto::ReadMasterConfig(config_fd) : proto::ReadMasterConfigText(config_file);
  if (from_fd_given && config_fd > STDERR_FILENO) ::close(config_fd);
  if (!config) {
    std::fprintf(stderr, "mconnect-mux: %s\n", config.error().message.c_str());
    return std::unexpected(255);
  }
  Args args = ArgsFrom(*config);
  args.foreground = args.foreground || foreground;
  args.verbosity = verbosity > INT_MAX - args.verbosity ? INT_MAX : args.verbosity + verbosity;
  return args;
}

std::string Directory(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

// This master's record in the runtime directory (proto/master_record.h), kept true while it
// lives and removed when it goes, with its lock file.
class Presence {
 public:
  Presence(proto::MasterPaths paths, UniqueFd lock, control::MasterRecord record)
      : paths_(std::move(paths)), lock_(std::move(lock)), record_(std::move(record)) {}
  ~Presence() {
    // Only the process that is the master (a detached parent leaves with _exit).
    if (record_.pid() == static_cast<std::uint32_t>(::getpid())) ::unlink(paths_.record.c_str());
    mux::ReleaseLock(paths_.lock, std::move(lock_));
  }
  Presence(const Presence&) = delete;
  Presence& operator=(const Presence&) = delete;

  void Set(std::string_view state) {
    record_.set_pid(static_cast<std::uint32_t>(::getpid()));  // after Detach, the child's
    record_.set_state(std::string(state));
    if (auto written = proto::WriteRecord(paths_.record, record_); !written) {
      log::Warn("{}: `mconnect status` will not list this master", written.error().message);
    }
  }

 private:
  proto::MasterPaths paths_;
  UniqueFd lock_;
  control::MasterRecord record_;
};

enum class Waited { kServing, kLockFree, kGaveUp };

// Another master holds the lock: it is running or still authenticating. Wait until it answers on
// the socket rather than start a second connection, saying what it is doing (asking for a
// passphrase on its own terminal, say); if it gives up, the lock is free and this one goes on.
Waited WaitForOtherMaster(const proto::MasterPaths& paths, const std::string& destination,
                          std::chrono::seconds budget) {
  auto deadline = std::chrono::steady_clock::now() + budget;
  std::string said;
  while (true) {
    struct stat st{};
    if (::stat(paths.socket.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) return Waited::kServing;
    auto record = proto::ReadRecord(paths.record);
    const std::string state = record ? record->state() : "";
    if (state != said && !state.empty() && state != "serving") {
      const char* what = state == "asking" ? "it is asking for a passphrase, a password or a host key on its terminal"
                                           : "it is connecting";
      std::fprintf(stderr, "mconnect: waiting for the other mconnect for %s (pid %u; %s)\n", destination.c_str(),
                   record->pid(), what);
      said = state;
    }
    // A person answering takes the time it takes; a connection attempt has its limit.
    if (state == "asking") deadline = std::chrono::steady_clock::now() + budget;
    if (auto lock = mux::TryLock(paths.lock); lock && lock->first == mux::LockState::kAcquired) {
      mux::ReleaseLock(paths.lock, std::move(lock->second));
      return Waited::kLockFree;
    }
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::fprintf(stderr, "mconnect: another master for %s holds the lock but does not serve %s\n", destination.c_str(),
               paths.socket.c_str());
  return Waited::kGaveUp;
}

// Leaves the terminal: the parent exits 0 (the socket is already listening, so the launcher
// can connect at once), the child carries on in a new session with its log file as stderr.
bool Detach(const std::string& log_path, int verbosity) {
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) return false;
  if (pid > 0) ::_exit(0);
  ::setsid();
  if (::chdir("/") != 0) {
    // Not fatal: nothing here uses relative paths.
  }
  int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0) {
    ::dup2(null, STDIN_FILENO);
    ::dup2(null, STDOUT_FILENO);
    ::dup2(null, STDERR_FILENO);
    if (null > STDERR_FILENO) ::close(null);
  }
  // Without its log file the master still serves; it just has nowhere to tell what it does.
  (void)log::ToFile("mconnect-mux", log_path, verbosity);
  return true;
}

// What `mconnect status` and `stop` find in the runtime directory (proto/master_record.h).
control::MasterRecord RecordOf(const Args& args, const std::string& socket, const std::string& destination) {
  control::MasterRecord record;
  record.set_socket_path(socket);
  record.set_destination(destination);
  record.set_alias(args.alias);
  for (const auto& file : args.connect.identity_files) record.add_identity_files(file);
  for (const auto& file : args.connect.known_hosts_files) record.add_known_hosts_files(file);
  record.set_proxy_command(args.connect.proxy_command);
  record.set_started_unix(static_cast<std::uint64_t>(std::time(nullptr)));
  return record;
}

mux::MasterConfig MasterConfigOf(const Args& args, const std::string& socket, const std::string& destination) {
  mux::MasterConfig config;
  config.destination = destination;
  config.user = args.connect.user;
  config.host = args.connect.host;
  config.port = args.connect.port;
  config.socket_path = socket;
  config.alias = args.alias;
  config.persist = std::chrono::seconds(args.persist_s);
  config.keepalive = std::chrono::seconds(args.keepalive_s);
  config.keepalive_count_max = args.keepalive_count;
  config.reconnect = args.reconnect;
  config.reconnect_wait = std::chrono::seconds(args.reconnect_wait_s);
  config.remote_ip_ttl = std::chrono::seconds(args.remote_ip_ttl_s);
  config.connect = args.connect;
  const char* agent = std::getenv("SSH_AUTH_SOCK");
  config.agent_socket = !args.forward_agent.empty() ? args.forward_agent : agent != nullptr ? agent : "";
  const char* display = std::getenv("DISPLAY");
  config.display = display != nullptr ? display : "";
  config.x11_trusted = !args.forward_x11_untrusted;
  config.forwards = args.forwards;
  config.exit_on_forward_failure = args.exit_on_forward_failure;
  return config;
}

int Main(int argc, char** argv) {
  auto read = ReadArgs(argc, argv);
  // The master outlives whoever started it: keep none of its descriptors (a pipe it holds
  // open would make a caller wait for EOF for as long as the master lives).
  ::closefrom(STDERR_FILENO + 1);
  if (!read) return read.error();
  Args& args = *read;
  log::ToStderr("mconnect-mux", args.verbosity);
  ::umask(077);  // the log, the lock and the socket are the user's alone

  proto::MasterPaths paths = proto::PathsForSocket(args.socket_path);
  if (!args.log_path.empty()) paths.log = args.log_path;

  auto dir = args.chosen_socket ? proto::CheckChosenDirectory(Directory(paths.socket))
                                : proto::EnsurePrivateDirectory(Directory(paths.socket));
  if (!dir) {
    std::fprintf(stderr, "mconnect: %s\n", dir.error().message.c_str());
    return 255;
  }
  // mconnect's own runtime directory holds the lock, the record and the log, wherever the
  // socket is (a fresh login has none yet).
  if (auto made = proto::EnsurePrivateDirectory(proto::DefaultRuntimeDir()); !made) {
    std::fprintf(stderr, "mconnect: %s\n", made.error().message.c_str());
    return 255;
  }
  const std::string destination =
      fmt::format("{}@{}:{}", args.connect.user, args.connect.host, args.connect.port);
  auto lock = mux::TryLock(paths.lock);
  for (int waits = 0; lock && lock->first == mux::LockState::kBusy && waits < 3; ++waits) {
    switch (WaitForOtherMaster(paths, destination, args.connect.timeout + std::chrono::seconds(60))) {
      case Waited::kServing: return 0;
      case Waited::kGaveUp: return 255;
      case Waited::kLockFree: lock = mux::TryLock(paths.lock); break;
    }
  }
  if (!lock) {
    std::fprintf(stderr, "mconnect: %s\n", lock.error().message.c_str());
    return 255;
  }
  if (lock->first == mux::LockState::kBusy) return 255;
  Presence presence(paths, std::move(lock->second), RecordOf(args, paths.socket, destination));
  presence.Set("connecting");
  mux::SetAskingHook([&presence](bool asking) { presence.Set(asking ? "asking" : "connecting"); });
  // The launcher's progress line, continued (shown only on a terminal, erased when done).
  std::optional<term::ProgressLine> progress_line;
  if (args.progress) progress_line.emplace("mconnect: " + destination);
  auto progress = [&](std::string_view step) {
    if (progress_line) progress_line->Step(step);
    log::Info("{}", step);
  };
  auto connection = mux::SshConnection::Open(args.connect, progress);
  if (progress_line) progress_line->Clear();
  if (connection) {
    // What the proxy said while we were in the foreground (ssh -W's warnings) is the user's.
    for (const auto& line : (*connection)->stream().TakeErrors()) std::fprintf(stderr, "%s\n", line.c_str());
  }
  if (!connection) {
    std::fprintf(stderr, "mconnect: %s\n", connection.error().message.c_str());
    return 255;
  }
  auto listener = mux::Listen(paths.socket);
  if (!listener) {
    std::fprintf(stderr, "mconnect: %s\n", listener.error().message.c_str());
    return 255;
  }
  const std::string authenticated = fmt::format("authenticated to {} ({}) as {}", destination,
                                                (*connection)->peer_address(), (*connection)->auth_method());
  // Made before detaching (it starts no thread) so that its forwards' failures reach the terminal,
  // as ssh's do, and ExitOnForwardFailure stops it here.
  mux::Master master(MasterConfigOf(args, paths.socket, destination), std::move(*connection), std::move(*listener));
  if (auto opened = master.OpenConfiguredForwards(); !opened) {
    std::fprintf(stderr, "mconnect: %s\n", opened.error().message.c_str());
    ::unlink(paths.socket.c_str());  // published a moment ago, and served by no one
    return 255;
  }
  if (!args.foreground && !Detach(paths.log, args.verbosity)) {
    std::fprintf(stderr, "mconnect: cannot detach the master: fork failed\n");
    return 255;
  }
  mux::SetAskingHook(nullptr);  // nobody to ask from here on (reconnects ask nothing)
  log::Info("{}", authenticated);  // in the log file, which the detached master writes
  presence.Set("serving");
  return master.Run();  // then `presence` removes the record and the lock file
}

}  // namespace

int main(int argc, char** argv) {
  // One malloc arena for every thread. The master's threads only open connections (reconnects,
  // overflow connections past MaxSessions); each used to get an arena of its own that kept
  // ~530 KiB resident after its connection closed, which the idle master's malloc_trim did not
  // give back: after a burst of 100 clients, 9.9 MiB idle instead of ~6 (bench/run, rss).
  ::mallopt(M_ARENA_MAX, 1);
  // Every client costs fds; a login's soft limit of 1024 would turn away the 250th session.
  mconnect::mux::RaiseFdLimit();
  int status = Main(argc, argv);
  // A reconnect attempt may still be running on its thread (mux/ssh/reconnector.h): static
  // destructors must not pull libssh2 and OpenSSL from under it. The log flushes every line.
  std::fflush(nullptr);
  ::_exit(status);
}
