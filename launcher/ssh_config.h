// SSH settings for a destination, taken from the user's own ssh configuration through
// `ssh -G HOST` (OpenSSH evaluates Host/Match blocks, Include, defaults and canonicalisation
// itself; we never parse ssh_config by hand).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "launcher/ssh_g_cache.h"
#include "launcher/forward_spec.h"

namespace mconnect::launcher {

struct SshSettings {
  std::string host_alias;  // what the user typed (the argument of ssh -G)
  bool kept_answer = false;  // ssh -G's answer came from the cache, not from running ssh
  std::string hostname;
  std::string user;
  std::uint16_t port = 22;
  std::string address_family = "any";  // AddressFamily: any, inet or inet6 (ssh's -4, -6)
  std::vector<std::string> identity_files;  // in ssh's order; "~/" expanded
  bool identities_only = false;
  std::string identity_agent;  // empty: $SSH_AUTH_SOCK; "none": no agent; else a socket path
  // ForwardAgent when it names a socket (a path, or $VAR's value); empty for yes, no or unset.
  std::string forward_agent;
  bool forward_x11_untrusted = false;  // ForwardX11Trusted no
  // Empty when configured as "none" (ssh -G always prints the defaults otherwise).
  std::vector<std::string> user_known_hosts_files;
  std::vector<std::string> global_known_hosts_files;
  std::string strict_host_key_checking;  // yes|no|ask|accept-new
  std::string host_key_alias;
  int connect_timeout_s = 0;  // 0: none
  int server_alive_interval_s = 0;
  int server_alive_count_max = 3;
  std::string control_path;   // empty when none; %-tokens as ssh -G leaves them
  std::string proxy_command;  // empty when none; %h/%p/%r unexpanded, as ssh -G prints them
  std::string proxy_jump;     // empty when none
  bool batch_mode = false;
  std::string ciphers;  // as ssh -G prints it: OpenSSH's default list unless the user chose
  // Authentication. Empty preferred_authentications: ssh's default order.
  std::string preferred_authentications;  // "publickey,keyboard-interactive", as written
  bool pubkey_authentication = true;      // also for "unbound" and "host-bound"
  bool kbd_interactive_authentication = true;
  bool password_authentication = true;
  int number_of_password_prompts = 3;
  // LocalForward, RemoteForward, DynamicForward in ssh's order (none with ClearAllForwardings:
  // ssh -G already prints none then), and ExitOnForwardFailure.
  std::vector<ConfiguredForward> forwards;
  bool exit_on_forward_failure = false;
  bool clear_all_forwardings = false;
  // Those lines as ssh -G printed them; read into `forwards` once every line is in.
  std::vector<SshGForwardLine> forward_lines;
};

// Parses the output of `ssh -G`: one "key value" per line, keys lowercase (compared without
// case anyway). identityfile lines accumulate; userknownhostsfile and globalknownhostsfile are
// space-separated lists; "none" means empty for proxycommand, proxyjump and controlpath; a
// leading "~/" is expanded with $HOME (ssh -G leaves identityfile unexpanded);
// stricthostkeychecking true/false become yes/no. Unknown keys are ignored. Errors name the
// key: `ssh -G printed port "70000" (expected 1..65535)`.
Result<SshSettings> ParseSshG(std::string_view output, std::string_view alias);

// Runs `exec SSH_COMMAND -G "$1"` through /bin/sh with `host` as $1, so a mosh-style
// --ssh='ssh -F FILE' works, with a 10 s limit, and parses its output. On failure: one line
// with ssh's first line of stderr. With a cache, an answer kept there whose sources have not
// changed is used without running ssh, and a new answer (then from `ssh -v -G`, which names the
// files it read) is kept.
Result<SshSettings> ResolveSshSettings(std::string_view ssh_command, std::string_view host,
                                       const SshGCache* cache = nullptr);

// "user@host:port", with an IPv6 host in brackets: "bob@[2001:db8::1]:22".
std::string DestinationName(const SshSettings& settings);

// How long `ssh -G` may take: it reads files and may canonicalise a host name (DNS).
inline constexpr std::chrono::seconds kSshGTimeout{10};

// ssh expands "~" itself when it uses a path, but ssh -G prints some of them (identityfile)
// as written; we open these files ourselves, so we expand the one form that matters: a
// leading "~/" (or "~" alone) becomes $HOME.
std::string ExpandTilde(std::string_view path);

// ControlPath's %-tokens as ssh expands them (OpenSSH 9.2): %h HostName, %p port, %r remote
// user, %n the host as typed, %u local user, %l and %L local host name (full, short), %i uid,
// %d home, %C the SHA-1 of "%l%h%p%r", %% a percent sign; a leading ~/ is the home directory.
// An unknown token is an error, as it is for ssh.
Result<std::string> ExpandControlPath(std::string_view path, const SshSettings& settings);
// The same expansion for another setting (`what` names it in errors: "ProxyCommand").
Result<std::string> ExpandSshTokens(std::string_view text, std::string_view what, const SshSettings& settings);

// The command the master runs instead of a TCP connection, as one /bin/sh command line, or ""
// for none: ProxyCommand with its %-tokens expanded, or for ProxyJump `SSH -W [HOST]:PORT
// LASTHOP` (plus `-J EARLIER,HOPS`), where SSH is the user's ssh command (`--ssh`, so its -F
// applies to the hops too) — what ssh itself runs for ProxyJump.
Result<std::string> ProxyCommandFor(const SshSettings& settings, const std::vector<std::string>& ssh_argv);

// What, besides user@host:port (OpenSSH's %r@%h:%p, which names a master's socket), decides how
// a master reaches and convinces the server. Host aliases that differ only in these share one
// master, as they share an OpenSSH ControlMaster.
struct MasterIdentity {
  std::vector<std::string> identity_files;     // IdentityFile, in ssh's order
  std::vector<std::string> known_hosts_files;  // UserKnownHostsFile, then GlobalKnownHostsFile
  std::string proxy_command;                   // as the master runs it (ProxyCommandFor); "" for none
};
// A session's, from its settings: what a master started for it would have.
Result<MasterIdentity> IdentityOf(const SshSettings& settings, const std::vector<std::string>& ssh_argv);
// How a session for `host` differs from the running master it would share, one entry per
// setting: "IdentityFile /a/id (bebou-work's: /b/id)". Empty when nothing differs.
std::vector<std::string> IdentityDifferences(const MasterIdentity& master, const MasterIdentity& session,
                                             std::string_view host);

}  // namespace mconnect::launcher
