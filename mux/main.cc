// mconnect-mux: the master for one destination. Started by the launcher (`mconnect`) with the
// settings `ssh -G` resolved; authenticates in the foreground on the user's terminal, then
// publishes its socket and detaches, like OpenSSH's ControlPersist. Exit status 0 means a
// master (this one, or one that was already starting) is serving the socket; 255 means the
// connection or authentication failed, with one line on stderr saying why.
#include <fcntl.h>
#include <malloc.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <limits>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "base/log.h"
#include "base/terminal.h"
#include "base/unique_fd.h"
#include "mux/fd_budget/fd_budget.h"
#include "mux/listener.h"
#include "mux/master.h"
#include "mux/ssh/connection.h"
#include "mux/ssh/prompt.h"
#include "proto/master_record.h"
#include "proto/socket_path.h"

namespace {

using namespace mconnect;

struct Args {
  mux::ConnectParams connect;
  std::string strict = "ask";
  int connect_timeout_s = 15;
  int keepalive_s = 30;
  int keepalive_count = 3;
  bool no_reconnect = false;
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
};

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

int Main(int argc, char** argv) {
  // The master outlives whoever started it: keep none of its descriptors (a pipe it holds
  // open would make a caller wait for EOF for as long as the master lives).
  ::closefrom(STDERR_FILENO + 1);
  Args args;
  CLI::App app{"mconnect-mux: the persistent SSH master behind mconnect (started by mconnect)"};
  app.add_option("--user", args.connect.user, "remote user")->required();
  app.add_option("--host", args.connect.host, "HostName to connect to")->required();
  app.add_option("--port", args.connect.port, "SSH port")->check(CLI::Range(1, 65535));
  app.add_option_function<std::string>(
         "--address-family",
         [&args](const std::string& family) {
           args.connect.address_family = family == "inet" ? AF_INET : family == "inet6" ? AF_INET6 : AF_UNSPEC;
         },
         "AddressFamily: any (default), inet or inet6")
      ->check(CLI::IsMember({"any", "inet", "inet6"}));
  app.add_option("--host-key-alias", args.connect.host_key_alias, "HostKeyAlias");
  app.add_option("--known-hosts", args.connect.known_hosts_files, "known_hosts file (repeatable; first gets new keys)");
  app.add_option("--strict-host-key-checking", args.strict, "yes | accept-new | ask | no");
  app.add_option("--identity", args.connect.identity_files, "IdentityFile (repeatable)");
  app.add_flag("--identities-only", args.connect.identities_only, "IdentitiesOnly");
  app.add_option("--identity-agent", args.connect.identity_agent, "agent socket, or none");
  app.add_option("--ciphers", args.connect.ciphers, "Ciphers, as ssh -G prints them (comma-separated)");
  app.add_option_function<std::string>(
      "--preferred-authentications",
      [&args](const std::string& list) { args.connect.auth.preferred = mux::SplitMethods(list); },
      "PreferredAuthentications (default publickey,keyboard-interactive,password)");
  app.add_flag("--pubkey-authentication,!--no-pubkey-authentication", args.connect.auth.pubkey,
               "PubkeyAuthentication (default on)");
  app.add_flag("--kbd-interactive-authentication,!--no-kbd-interactive-authentication",
               args.connect.auth.kbd_interactive, "KbdInteractiveAuthentication (default on)");
  app.add_flag("--password-authentication,!--no-password-authentication", args.connect.auth.password,
               "PasswordAuthentication (default on)");
  app.add_option("--number-of-password-prompts", args.connect.auth.password_prompts,
                 "NumberOfPasswordPrompts: questions per key passphrase or password method (default 3)")
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--batch-mode", args.connect.auth.batch_mode, "BatchMode: never ask for a passphrase or password");
  app.add_option("--connect-timeout", args.connect_timeout_s, "seconds for TCP + handshake + auth");
  app.add_option("--keepalive", args.keepalive_s, "seconds between keepalives")->check(CLI::Range(1, 86400));
  app.add_option("--keepalive-count", args.keepalive_count,
                 "unanswered keepalives before the connection counts as lost (ServerAliveCountMax; 0: never)")
      ->check(CLI::Range(0, 1000));
  app.add_option("--proxy-command", args.connect.proxy_command,
                 "run this through /bin/sh and speak SSH over its stdin/stdout instead of TCP");
  app.add_flag("--no-reconnect", args.no_reconnect, "exit when the connection is lost, as OpenSSH's master does");
  app.add_option("--reconnect-wait", args.reconnect_wait_s,
                 "seconds a request waits for a lost connection to come back")
      ->check(CLI::Range(0, 3600));
  app.add_option("--persist", args.persist_s,
                 "idle seconds before exiting; 0: never (ControlPersist yes), -1: as soon as the last client has "
                 "gone (ControlPersist no)")
      ->check(CLI::Range(-1, std::numeric_limits<int>::max()));
  app.add_option("--remote-ip-ttl", args.remote_ip_ttl_s, "seconds a remote-ip answer is cached");
  app.add_option("--socket", args.socket_path, "socket to serve")->required();
  app.add_option("--log", args.log_path, "log file once detached (default: NAME.log in mconnect's runtime directory)");
  app.add_flag("--foreground", args.foreground, "do not detach (for debugging)");
  app.add_flag("--progress", args.progress, "show progress on stderr");
  app.add_flag("--chosen-socket", args.chosen_socket,
               "the socket path is the user's (ControlPath, --socket), not in mconnect's own directory");
  app.add_option("--alias", args.alias, "the host name as the user typed it (for status and stop)");
  app.add_flag("-v", args.verbosity, "more detail (repeatable)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  log::ToStderr("mconnect-mux", args.verbosity);
  ::umask(077);  // the log, the lock and the socket are the user's alone

  auto policy = mux::ParseHostKeyPolicy(args.strict);
  if (!policy) {
    std::fprintf(stderr, "mconnect: %s\n", policy.error().message.c_str());
    return 255;
  }
  args.connect.host_key_policy = *policy;
  args.connect.timeout = std::chrono::seconds(std::max(1, args.connect_timeout_s));
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
  control::MasterRecord record;
  record.set_socket_path(paths.socket);
  record.set_destination(destination);
  record.set_alias(args.alias);
  for (const auto& file : args.connect.identity_files) record.add_identity_files(file);
  for (const auto& file : args.connect.known_hosts_files) record.add_known_hosts_files(file);
  record.set_proxy_command(args.connect.proxy_command);
  record.set_started_unix(static_cast<std::uint64_t>(std::time(nullptr)));
  Presence presence(paths, std::move(lock->second), std::move(record));
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
  if (!args.foreground && !Detach(paths.log, args.verbosity)) {
    std::fprintf(stderr, "mconnect: cannot detach the master: fork failed\n");
    return 255;
  }
  mux::SetAskingHook(nullptr);  // nobody to ask from here on (reconnects ask nothing)
  presence.Set("serving");
  mux::MasterConfig config;
  config.destination = destination;
  config.user = args.connect.user;
  config.host = args.connect.host;
  config.port = args.connect.port;
  config.socket_path = paths.socket;
  config.alias = args.alias;
  config.persist = std::chrono::seconds(args.persist_s);
  config.keepalive = std::chrono::seconds(args.keepalive_s);
  config.keepalive_count_max = args.keepalive_count;
  config.reconnect = !args.no_reconnect;
  config.reconnect_wait = std::chrono::seconds(args.reconnect_wait_s);
  config.remote_ip_ttl = std::chrono::seconds(args.remote_ip_ttl_s);
  config.connect = args.connect;
  log::Info("authenticated to {} ({}) as {}", destination, (*connection)->peer_address(), (*connection)->auth_method());
  mux::Master master(std::move(config), std::move(*connection), std::move(*listener));
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
  // A reconnect attempt may still be running on its thread (mux/reconnector.h): static
  // destructors must not pull libssh2 and OpenSSL from under it. The log flushes every line.
  std::fflush(nullptr);
  ::_exit(status);
}
