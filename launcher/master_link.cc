#include "launcher/master_link.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <thread>

#include "base/log.h"
#include "base/subprocess.h"
#include "launcher/forward_spec.h"
#include "proto/master_config.h"
#include "proto/master_record.h"
#include "proto/socket_path.h"
#include "proto/socket_probe.h"

namespace mconnect::launcher {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kConnectTimeout = std::chrono::milliseconds(3000);

std::string HostKeyPolicy(const SshSettings& settings, const HostProfile& profile) {
  std::string policy = settings.strict_host_key_checking;
  // ssh's own default is "ask"; then the profile may be stricter or looser.
  if (policy.empty() || policy == "ask") policy = profile.host_key_policy == "strict" ? "yes" : profile.host_key_policy;
  if (settings.batch_mode && policy == "ask") policy = "yes";  // nobody to ask
  return policy;
}

Result<control::MasterConfig::HostKeyChecking> HostKeyCheckingOf(std::string_view policy) {
  using Config = control::MasterConfig;
  if (policy == "yes") return Config::HOST_KEY_CHECKING_YES;
  if (policy == "accept-new") return Config::HOST_KEY_CHECKING_ACCEPT_NEW;
  if (policy == "ask") return Config::HOST_KEY_CHECKING_ASK;
  if (policy == "no") return Config::HOST_KEY_CHECKING_NO;
  return Fail("unknown host-key policy \"{}\" (yes, accept-new, ask or no)", policy);
}

Result<control::MasterConfig::AddressFamily> AddressFamilyOf(std::string_view family) {
  using Config = control::MasterConfig;
  if (family == "any") return Config::ADDRESS_FAMILY_ANY;
  if (family == "inet") return Config::ADDRESS_FAMILY_INET;
  if (family == "inet6") return Config::ADDRESS_FAMILY_INET6;
  return Fail("unknown AddressFamily \"{}\" (any, inet or inet6)", family);
}

// "publickey,password" -> its names (empty ones dropped, as the master always did).
void AddMethods(std::string_view list, control::MasterConfig& config) {
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    if (const std::string_view name = list.substr(0, comma); !name.empty()) {
      config.add_preferred_authentications(std::string(name));
    }
    list.remove_prefix(comma == std::string_view::npos ? list.size() : comma + 1);
  }
}

// The ssh config's forwards (ssh -G prints none under ClearAllForwardings, which leaves the
// profile's alone: they are mconnect's own), then the profile's, and ExitOnForwardFailure.
Result<void> AddForwards(const SshSettings& settings, const HostProfile& profile, control::MasterConfig& config) {
  for (const auto& forward : settings.forwards) *config.add_forwards() = forward;
  for (const auto& entry : profile.forward) {
    auto forward = ParseProfileForward(entry);
    if (!forward) return Fail("profile forward \"{}\": {}", entry, forward.error().message);
    *config.add_forwards() = std::move(*forward);
  }
  if (config.forwards_size() > proto::kMaxConfiguredForwards) {
    return Fail("{} forwards for {} (ssh config and profile); at most {}", config.forwards_size(),
                settings.host_alias, proto::kMaxConfiguredForwards);
  }
  config.set_exit_on_forward_failure(settings.exit_on_forward_failure);
  return {};
}

// Runs the master in the foreground on our terminal (it may ask about the host key) until it
// has published its socket and detached, or failed; returns its exit status. The master gets
// its whole config as one MasterConfig on an inherited fd (`--config-fd=N`, a sealed memfd; why
// that channel: proto/master_config.h), and its stdin, stdout and stderr stay ours: the
// terminal it authenticates on, where it says what failed.
Result<int> RunMux(const std::string& program, const control::MasterConfig& config) {
  auto file = proto::MasterConfigFile(config);
  if (!file) return Fail(file.error());
  const int config_fd = file->get();
  const std::string config_flag = fmt::format("--config-fd={}", config_fd);
  // In text format: saved to a file, `mconnect-mux --config=FILE` runs the same master by hand.
  log::Debug("starting {} {}: {}", program, config_flag, config.ShortDebugString());
  auto exec = [&program, &config_flag, config_fd] {
    ::fcntl(config_fd, F_SETFD, 0);  // the one fd the master inherits besides stdio
    char* argv[] = {const_cast<char*>(program.c_str()), const_cast<char*>(config_flag.c_str()), nullptr};
    ::execvp(argv[0], argv);
  };
  // `mconnect master`: this process becomes the master, so that whoever started it (systemd)
  // watches the master itself and gets its exit status.
  if (config.foreground()) {
    exec();
    return Fail("cannot run {}: {}", program, std::strerror(errno));
  }
  // As system(3) does: while the master owns the terminal a Ctrl-C is its to handle (it puts
  // the terminal modes back before it goes), so we wait for it instead of dying first and
  // letting the shell read a terminal with echo still off; then we die of the same signal, so
  // that the shell sees the interrupt.
  struct sigaction ignore{}, saved_int{}, saved_quit{};
  ignore.sa_handler = SIG_IGN;
  ::sigemptyset(&ignore.sa_mask);
  ::sigaction(SIGINT, &ignore, &saved_int);
  ::sigaction(SIGQUIT, &ignore, &saved_quit);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::sigaction(SIGINT, &saved_int, nullptr);
    ::sigaction(SIGQUIT, &saved_quit, nullptr);
    exec();
    std::fprintf(stderr, "mconnect: cannot run %s: %s\n", program.c_str(), std::strerror(errno));
    ::_exit(127);
  }
  int status = 0;
  int wait_errno = 0;
  while (pid > 0 && ::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      wait_errno = errno;
      break;
    }
  }
  const int fork_errno = pid < 0 ? errno : 0;
  ::sigaction(SIGINT, &saved_int, nullptr);
  ::sigaction(SIGQUIT, &saved_quit, nullptr);
  if (pid < 0) return Fail("fork: {}", std::strerror(fork_errno));
  if (wait_errno != 0) return Fail("waitpid: {}", std::strerror(wait_errno));
  if (WIFSIGNALED(status)) {
    const int signal = WTERMSIG(status);
    if (signal == SIGINT || signal == SIGQUIT) {
      ::signal(signal, SIG_DFL);
      ::raise(signal);
    }
    return 128 + signal;
  }
  return WEXITSTATUS(status);
}

bool NeedsPerson(proto::ControlClient& client) {
  auto status = client.Call<control::StatusReply>(proto::MessageType::kStatus, control::StatusRequest{},
                                                  proto::MessageType::kStatusReply, kConnectTimeout);
  if (!status || status->link() != "needs-person") return false;
  std::fprintf(stderr, "mconnect: the master for %s lost its connection and needs you to authenticate again (%s)\n",
               status->destination().c_str(), status->link_detail().c_str());
  return true;
}

// Asks a master to stop and waits (bounded) until it has gone, lock and all.
Result<void> StopMaster(proto::ControlClient& client, const std::string& socket_path) {
  auto pid = static_cast<pid_t>(client.master_pid());
  (void)client.Call<control::StopReply>(proto::MessageType::kStop, control::StopRequest{},
                                        proto::MessageType::kStopReply, kConnectTimeout);
  auto deadline = Clock::now() + std::chrono::seconds(5);
  while (Clock::now() < deadline) {
    // Gone, or a zombie: its lock and socket are released either way.
    if (auto state = ProcessState(pid); !state || *state == 'Z') return {};
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return Fail("the old master for this destination (pid {}, socket {}) does not stop", pid, socket_path);
}

}  // namespace

Result<std::string> SocketPathFor(const SshSettings& settings, const Options& options, const HostProfile& profile) {
  if (!options.socket_path.empty()) return options.socket_path;
  if (!settings.control_path.empty()) return ExpandControlPath(settings.control_path, settings);
  return proto::PathsFor(profile.socket_dir, settings.user, settings.hostname, settings.port).socket;
}

std::string MuxExecutable(const Options& options) {
  if (!options.mux_path.empty()) return options.mux_path;
  char self[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    std::string path(self, static_cast<std::size_t>(n));
    std::string sibling = path.substr(0, path.rfind('/') + 1) + "mconnect-mux";
    if (::access(sibling.c_str(), X_OK) == 0) return sibling;
  }
  return "mconnect-mux";
}

Result<control::MasterConfig> MasterConfigFor(const SshSettings& settings, const Options& options,
                                              const HostProfile& profile, const std::string& socket_path,
                                              const std::string& proxy_command, bool chosen_socket) {
  auto strict = HostKeyCheckingOf(HostKeyPolicy(settings, profile));
  if (!strict) return Fail(strict.error());
  auto family = AddressFamilyOf(settings.address_family);
  if (!family) return Fail(family.error());
  control::MasterConfig config;
  config.set_user(settings.user);
  config.set_host(settings.hostname);
  config.set_port(settings.port);
  config.set_address_family(*family);
  config.set_alias(settings.host_alias);
  config.set_proxy_command(proxy_command);
  config.set_host_key_alias(settings.host_key_alias);
  for (const auto& file : settings.user_known_hosts_files) config.add_known_hosts_files(file);
  for (const auto& file : settings.global_known_hosts_files) config.add_known_hosts_files(file);
  config.set_strict_host_key_checking(*strict);
  for (const auto& file : settings.identity_files) config.add_identity_files(file);
  config.set_identities_only(settings.identities_only);
  config.set_identity_agent(settings.identity_agent);
  config.set_forward_agent(settings.forward_agent);
  config.set_forward_x11_untrusted(settings.forward_x11_untrusted);
  config.set_ciphers(settings.ciphers);
  AddMethods(settings.preferred_authentications, config);
  config.set_pubkey_authentication(settings.pubkey_authentication);
  config.set_kbd_interactive_authentication(settings.kbd_interactive_authentication);
  config.set_password_authentication(settings.password_authentication);
  config.set_number_of_password_prompts(static_cast<std::uint32_t>(std::max(0, settings.number_of_password_prompts)));
  config.set_batch_mode(settings.batch_mode);
  if (settings.connect_timeout_s > 0) {  // else (ConnectTimeout none) the master's own limit
    config.set_connect_timeout_s(static_cast<std::uint32_t>(settings.connect_timeout_s));
  }
  // ServerAliveInterval, else the profile's keepalive; with neither, one an hour.
  const int keepalive = settings.server_alive_interval_s > 0 ? settings.server_alive_interval_s : profile.keepalive_s;
  config.set_keepalive_s(static_cast<std::uint32_t>(keepalive > 0 ? keepalive : 3600));
  config.set_keepalive_count(static_cast<std::uint32_t>(std::max(0, settings.server_alive_count_max)));
  config.set_persist_s(options.persist_s.value_or(profile.persist_s));
  config.set_remote_ip_ttl_s(static_cast<std::uint32_t>(std::max(0, profile.remote_ip_cache_ttl_s)));
  config.set_socket_path(socket_path);
  config.set_chosen_socket(chosen_socket);
  config.set_foreground(options.foreground_master);
  config.set_progress(true);
  config.set_verbosity(static_cast<std::uint32_t>(std::max(0, options.verbosity)));
  if (auto added = AddForwards(settings, profile, config); !added) return Fail(added.error());
  return config;
}

namespace {

// Two aliases of one user@host:port share a master (OpenSSH's %r@%h:%p rule), whatever else
// their settings say: when this session's identity, known_hosts or proxy differ from those the
// running master was started with, one line says so, and how to get a master of its own.
void SayWhatIsShared(const SshSettings& settings, const Options& options, const std::string& socket_path) {
  auto record = proto::ReadRecord(proto::PathsForSocket(socket_path).record);
  if (!record) return;  // an older master, or one started elsewhere: nothing to compare with
  auto session = IdentityOf(settings, options.ssh_argv);
  if (!session) return;
  MasterIdentity master;
  master.identity_files.assign(record->identity_files().begin(), record->identity_files().end());
  master.known_hosts_files.assign(record->known_hosts_files().begin(), record->known_hosts_files().end());
  master.proxy_command = record->proxy_command();
  const auto differences = IdentityDifferences(master, *session, settings.host_alias);
  if (differences.empty()) return;
  const std::string started_as = record->alias().empty() ? record->destination() : record->alias();
  std::string listed;
  for (const auto& difference : differences) listed += (listed.empty() ? "" : "; ") + difference;
  std::fprintf(stderr,
               "mconnect: %s shares the master for %s (started as `mconnect %s`), which uses %s\n"
               "mconnect: hint: for a master of its own, give %s its own socket: --socket=PATH, or a ControlPath "
               "of its own in the ssh config\n",
               settings.host_alias.c_str(), record->destination().c_str(), started_as.c_str(), listed.c_str(),
               settings.host_alias.c_str());
}

}  // namespace

Result<MasterLink> ConnectOrStartMaster(const SshSettings& settings, const Options& options,
                                        const HostProfile& profile) {
  auto start = Clock::now();
  auto socket = SocketPathFor(settings, options, profile);
  if (!socket) return Fail(socket.error());
  std::string socket_path = *socket;
  bool chosen_socket = !options.socket_path.empty() || !settings.control_path.empty();
  auto elapsed = [&start] { return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start); };
  // mconnect's runtime directory holds every master's lock, record and log, wherever its socket
  // is: a fresh login (after a reboot) has none yet.
  if (auto made = proto::EnsurePrivateDirectory(proto::DefaultRuntimeDir()); !made) return Fail(made.error());

  auto existing = proto::ControlClient::Connect(socket_path, kConnectTimeout);
  if (!existing) {
    // Something other than a master of ours may answer there: OpenSSH's own master at the same
    // ControlPath (ControlMaster auto in the ssh config), or one of ours that is stuck.
    const proto::SocketAnswer there = proto::ProbeSocket(socket_path, std::chrono::milliseconds(1000));
    using Kind = proto::SocketAnswer::Kind;
    if (there.kind == Kind::kSilent) {
      auto record = proto::ReadRecord(proto::PathsForSocket(socket_path).record);
      return Fail(Error{fmt::format("the master at {} does not answer{}", socket_path,
                                    record ? fmt::format(" (pid {})", record->pid()) : ""),
                        fmt::format("`mconnect stop {}` ends it", settings.host_alias)});
    }
    if (there.kind == Kind::kOpenSsh || there.kind == Kind::kOther || there.kind == Kind::kNotSocket) {
      if (!options.socket_path.empty()) {
        return Fail(Error{fmt::format("{} is in use by {}", socket_path, proto::DescribeAnswer(there)),
                          "choose another --socket"});
      }
      // The user's ControlPath belongs to someone else: plain ssh goes on using it, and
      // mconnect's master takes its own socket.
      const std::string own = proto::PathsFor(profile.socket_dir, settings.user, settings.hostname, settings.port).socket;
      std::fprintf(stderr, "mconnect: your ControlPath %s is in use by %s; mconnect's master uses %s\n",
                   socket_path.c_str(), proto::DescribeAnswer(there).c_str(), own.c_str());
      socket_path = own;
      chosen_socket = false;
      existing = proto::ControlClient::Connect(socket_path, kConnectTimeout);
    }
  }
  if (existing) {
    if (!NeedsPerson(*existing)) {
      SayWhatIsShared(settings, options, socket_path);
      return MasterLink{std::move(*existing), socket_path, false, elapsed()};
    }
    // Its connection died and coming back needs us (a passphrase, a password, a host key):
    // replace it with a master in the foreground, where it can ask.
    if (auto replaced = StopMaster(*existing, socket_path); !replaced) return Fail(replaced.error());
  } else {
    log::Debug("no master yet: {}", existing.error().message);
  }

  auto proxy = ProxyCommandFor(settings, options.ssh_argv);
  if (!proxy) return Fail(proxy.error());
  std::string directory = socket_path.substr(0, socket_path.rfind('/'));
  if (!chosen_socket) {
    if (auto made = proto::EnsurePrivateDirectory(directory); !made) return Fail(made.error());
  }
  auto config = MasterConfigFor(settings, options, profile, socket_path, *proxy, chosen_socket);
  if (!config) return Fail(config.error());
  auto status = RunMux(MuxExecutable(options), *config);
  if (!status) return Fail(status.error());
  if (*status != 0) return Fail(Error{""});  // the master said why on our terminal
  auto started = proto::ControlClient::Connect(socket_path, kConnectTimeout);
  if (!started) return Fail("the master started but does not answer: {}", started.error().message);
  return MasterLink{std::move(*started), socket_path, true, elapsed()};
}

}  // namespace mconnect::launcher
