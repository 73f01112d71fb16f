// The per-user profile, $XDG_CONFIG_HOME/mconnect/config.toml: a [defaults] table and
// [host.PATTERN] tables holding what mconnect itself decides (remote-ip chain, mosh ports and
// modes, master lifetime, socket directory, host-key policy). SSH's own settings (HostName, User,
// Port, keys, ProxyJump, ControlPath) stay in the user's ssh config and reach us via `ssh -G`.
// contrib/config.toml.example documents every key.
//
// The file is checked strictly: a TOML syntax error, an unknown key (a typo must not silently do
// nothing), a wrong type or a bad value is an error naming the file as given, the line and the
// key: `config.toml:12: mosh-ports "70000" is not a port range: 70000 is above 65535`.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "launcher/cli.h"

namespace mconnect::launcher {

// Everything the profile decides for one host, with the built-in defaults.
struct HostProfile {
  // Strategy chain. peer ~ stock mosh's proxy mode; through a ProxyCommand/ProxyJump there is
  // no peer, and dns (HostName resolved here) is what stock mosh's proxy mode would have used.
  std::vector<std::string> remote_ip = {"peer", "dns"};
  int remote_ip_cache_ttl_s = 300;
  int remote_ip_timeout_s = 10;  // per strategy: a command that hangs fails after this
  std::string mosh_ports;  // "N" or "N:M"; empty = mosh-server's own default (60001:60999)
  std::string predict = "adaptive";
  std::string server = "mosh-server";
  std::string client = "mosh-client";
  int persist_s = 600;   // the master's life with nothing open: seconds, kPersistForever, kPersistNo
  int keepalive_s = 30;  // between SSH keepalives; 0 = none
  std::string socket_dir;  // empty = $XDG_RUNTIME_DIR/mconnect, else /tmp/mconnect-UID
  std::string host_key_policy = "ask";  // ask | accept-new | strict
  // How mosh's datagrams travel: udp, ssh (over the master) or auto (udp when a UDP probe hears
  // mosh-server at the chosen address, else ssh).
  std::string transport = "auto";
  // Port forwards the master opens and keeps across reconnects, as written ("L 8080:localhost:80",
  // "R 9000:localhost:9000", "D 1080"); each checked by ParseProfileForward (forward_spec.h).
  std::vector<std::string> forward;
};

class Profile {
 public:
  // One table's settings as written; an unset key inherits.
  struct Layer {
    std::optional<std::vector<std::string>> remote_ip;
    std::optional<int> remote_ip_cache_ttl_s;
    std::optional<int> remote_ip_timeout_s;
    std::optional<std::string> mosh_ports;
    std::optional<std::string> predict;
    std::optional<std::string> server;
    std::optional<std::string> client;
    std::optional<int> persist_s;
    std::optional<int> keepalive_s;
    std::optional<std::string> socket_dir;
    std::optional<std::string> host_key_policy;
    std::optional<std::string> transport;
    std::optional<std::vector<std::string>> forward;
  };
  struct HostTable {
    std::string pattern;  // fnmatch(3) glob, matched case-blind as ssh matches Host patterns
    Layer settings;
  };

  // No file: the built-in defaults for every host.
  Profile() = default;
  Profile(std::string path, Layer defaults, std::vector<HostTable> hosts)
      : path_(std::move(path)), defaults_(std::move(defaults)), hosts_(std::move(hosts)) {}

  // The built-in defaults, then [defaults], then every [host.PATTERN] matching `host_alias` (the
  // host as typed, without user@) in file order: a later matching table overrides an earlier one,
  // so put [host."*"] before [host.bebou].
  HostProfile ForHost(std::string_view host_alias) const;

  // The file that was read; empty when there was none.
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  Layer defaults_;
  std::vector<HostTable> hosts_;  // in file order
};

enum class MissingProfile {
  kUseDefaults,  // the default path: having no profile is normal
  kFail,         // --config FILE: a file the user named must exist
};

// Reads and checks the whole file (every host table, not only the one in use, so a mistake
// shows up at once). A missing file gives the built-in defaults unless `if_missing` says kFail.
Result<Profile> LoadProfile(const std::string& path, MissingProfile if_missing = MissingProfile::kUseDefaults);
// The same checks on a profile's text; `path` only names it in error messages.
Result<Profile> ParseProfile(std::string_view contents, const std::string& path);

// $XDG_CONFIG_HOME/mconnect/config.toml when XDG_CONFIG_HOME is an absolute path (the XDG spec
// ignores a relative one), else $HOME/.config/mconnect/config.toml, with the passwd entry's home
// when HOME is unset.
std::string DefaultProfilePath();

// Fills the fields the command line (or MOSH_PREDICTION_DISPLAY) did not set: client, server,
// predict, port_range (from mosh-ports), remote_ip, persist_s. The profile's other fields
// (cache TTL, keepalive, socket dir, host-key policy) have no command-line option: read them
// from the HostProfile.
void ApplyProfile(Options& options, const HostProfile& host);

}  // namespace mconnect::launcher
