#include "launcher/ssh_config.h"

#include <netdb.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <openssl/sha.h>

#include "base/subprocess.h"
#include "base/text.h"
#include "base/unique_fd.h"
#include "launcher/ssh_g_cache.h"
#include "proto/master_config.h"

namespace mconnect::launcher {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t kMaxQuoted = 80;
// Large enough for any real timeout, small enough that seconds * 1000 fits an int.
constexpr long kMaxSeconds = 1'000'000;

// Printable ASCII only, at most kMaxQuoted characters: error lines go to a terminal.
std::string Sanitize(std::string_view text) { return SanitizeForMessage(text, kMaxQuoted); }

std::string Lower(std::string_view text) {
  std::string lower(text);
  for (char& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return lower;
}

std::vector<std::string_view> Words(std::string_view text) {
  std::vector<std::string_view> words;
  while (true) {
    while (!text.empty() && IsSpace(text.front())) text.remove_prefix(1);
    if (text.empty()) break;
    std::size_t end = 0;
    while (end < text.size() && !IsSpace(text[end])) ++end;
    words.push_back(text.substr(0, end));
    text.remove_prefix(end);
  }
  return words;
}

}  // namespace

std::string ExpandTilde(std::string_view path) {
  if (path != "~" && !path.starts_with("~/")) return std::string(path);
  const char* home = std::getenv("HOME");
  if (home == nullptr || *home == '\0') return std::string(path);
  return std::string(home) + std::string(path.substr(1));
}

namespace {

std::optional<long> ParseNumber(std::string_view text, long min, long max) {
  if (text.empty() || text.size() > 10) return std::nullopt;
  long value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  if (value < min || value > max) return std::nullopt;
  return value;
}

std::optional<bool> ParseBool(std::string_view text) {
  std::string lower = Lower(text);
  if (lower == "yes" || lower == "true") return true;
  if (lower == "no" || lower == "false") return false;
  return std::nullopt;
}

std::string NoneIsEmpty(std::string_view value) { return Lower(value) == "none" ? std::string() : std::string(value); }

void AppendPaths(std::vector<std::string>& list, std::string_view value) {
  for (auto word : Words(value)) {
    if (Lower(word) != "none") list.push_back(ExpandTilde(word));
  }
}

std::string FirstLine(std::string_view text) {
  while (!text.empty()) {
    auto end = text.find('\n');
    auto line = Trim(text.substr(0, end));
    // ssh -v's version banner and debug lines come before the line that says what failed.
    bool verbose = line.starts_with("OpenSSH_") || line.starts_with("debug");
    if (!line.empty() && !verbose) return Sanitize(line);
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return {};
}

Result<void> SetNumber(int& field, std::string_view key, std::string_view value, long min, long max,
                       std::string_view expected) {
  auto parsed = ParseNumber(value, min, max);
  if (!parsed) return Fail("ssh -G printed {} \"{}\" (expected {})", key, Sanitize(value), expected);
  field = static_cast<int>(*parsed);
  return {};
}

Result<void> SetFlag(bool& field, std::string_view key, std::string_view value) {
  auto parsed = ParseBool(value);
  if (!parsed) return Fail("ssh -G printed {} \"{}\" (expected yes or no)", key, Sanitize(value));
  field = *parsed;
  return {};
}

Result<void> SetPort(SshSettings& s, std::string_view, std::string_view value) {
  auto port = ParseNumber(value, 1, 65535);
  if (!port) return Fail("ssh -G printed port \"{}\" (expected 1..65535)", Sanitize(value));
  s.port = static_cast<std::uint16_t>(*port);
  return {};
}

Result<void> SetAddressFamily(SshSettings& s, std::string_view, std::string_view value) {
  std::string lower = Lower(value);
  if (lower != "any" && lower != "inet" && lower != "inet6") {
    return Fail("ssh -G printed addressfamily \"{}\" (expected any, inet or inet6)", Sanitize(value));
  }
  s.address_family = lower;
  return {};
}

Result<void> SetStrictHostKeyChecking(SshSettings& s, std::string_view, std::string_view value) {
  std::string lower = Lower(value);
  if (lower == "true" || lower == "yes") {
    s.strict_host_key_checking = "yes";
  } else if (lower == "false" || lower == "no" || lower == "off") {
    s.strict_host_key_checking = "no";
  } else if (lower == "ask" || lower == "accept-new") {
    s.strict_host_key_checking = lower;
  } else {
    return Fail("ssh -G printed stricthostkeychecking \"{}\" (expected yes, no, ask or accept-new)", Sanitize(value));
  }
  return {};
}

Result<void> SetConnectTimeout(SshSettings& s, std::string_view key, std::string_view value) {
  if (Lower(value) == "none") {
    s.connect_timeout_s = 0;
    return {};
  }
  return SetNumber(s.connect_timeout_s, key, value, 0, kMaxSeconds, "a number of seconds or none");
}

// OpenSSH 9 also has "unbound" and "host-bound" (both mean yes for a client like us).
Result<void> SetPubkeyAuthentication(SshSettings& s, std::string_view key, std::string_view value) {
  const std::string lower = Lower(value);
  if (lower != "unbound" && lower != "host-bound") return SetFlag(s.pubkey_authentication, key, value);
  s.pubkey_authentication = true;
  return {};
}

// Forward lines are read once all are in (an OpenSSH 9.2 dynamicforward line may be an echo of
// a localforward line printed after it: forward_spec.h).
Result<void> AddForwardLine(SshSettings& s, std::string_view key, std::string_view value) {
  if (s.forward_lines.size() >= static_cast<std::size_t>(proto::kMaxConfiguredForwards)) {
    return Fail("ssh -G printed more than {} forwards", proto::kMaxConfiguredForwards);
  }
  s.forward_lines.push_back({std::string(key), std::string(value)});
  return {};
}

// What one `KEY VALUE` line of `ssh -G` does to the settings, for the keys mconnect reads (the
// others are ignored).
using LineRule = Result<void> (*)(SshSettings& s, std::string_view key, std::string_view value);
using Rules = std::map<std::string_view, LineRule, std::less<>>;

const Rules& LineRules() {
  static const Rules kRules{
      {"hostname",
       [](SshSettings& s, std::string_view, std::string_view v) -> Result<void> {
         s.hostname = v;
         return {};
       }},
      {"user",
       [](SshSettings& s, std::string_view, std::string_view v) -> Result<void> {
         s.user = v;
         return {};
       }},
      {"port", SetPort},
      {"addressfamily", SetAddressFamily},
      // One file per line, the path may contain spaces.
      {"identityfile",
       [](SshSettings& s, std::string_view, std::string_view v) -> Result<void> {
         if (!v.empty() && Lower(v) != "none") s.identity_files.push_back(ExpandTilde(v));
         return {};
       }},
      {"identitiesonly",
       [](SshSettings& s, std::string_view k, std::string_view v) { return SetFlag(s.identities_only, k, v); }},
      {"identityagent",
       [](SshSettings& s, std::string_view, std::string_view v) -> Result<void> {
         s.identity_agent = v == "none" || v == "SSH_AUTH_SOCK" ? std::string(v) : ExpandTilde(v);
         return {};
       }},
      {"forwardagent",
       [](SshSettings& s, std::string_view, std::string_view v) -> Result<void> {
         const char* named = v.starts_with('$') ? std::getenv(std::string(v.substr(1)).c_str()) : nullptr;
         s.forward_agent = v == "yes" || v == "no" ? ""
                           : v.starts_with('$')    ? std::string(named != nullptr ? named : "")
                                                   : ExpandTilde(v);
         return {};
       }},
      {"forwardx11trusted",
       [](SshSettings& s, std::string_view, std::string_view v) -> Result<void> {
         s.forward_x11_untrusted = v == "no";
         return {};
       }},
      {"userknownhostsfile",
       [](SshSettings& s, std::string_view, std::string_view v) -> Result<void> {
         AppendPaths(s.user_known_hosts_files, v);
         return {};
       }},
      {"globalknownhostsfile",
       [](SshSettings& s, std::string_view, std::string_view v) -> Result<void> {
         AppendPaths(s.global_known_hosts_files, v);
         return {};
       }},
      {"stricthostkeychecking", SetStrictHostKeyChecking},
      {"hostkeyalias",
       [](SshSettings& s, std::string_view, std::string_view v) -> Result<void> {
         s.host_key_alias = NoneIsEmpty(v);
         return {};
       }},
      {"connecttimeout", SetConnectTimeout},
      {"serveraliveinterval",
       [](SshSettings& s, std::string_view k, std::string_view v) {
         return SetNumber(s.server_alive_interval_s, k, v, 0, kMaxSeconds, "a number of seconds");
       }},
      {"serveralivecountmax",
       [](SshSettings& s, std::string_view k, std::string_view v) {
         return SetNumber(s.server_alive_count_max, k, v, 0, kMaxSeconds, "a count");
       }},
      {"controlpath",
       [](SshSettings& s, std::string_view, std::string_view v) -> Result<void> {
         std::string path = NoneIsEmpty(v);
         s.control_path = path.empty() ? path : ExpandTilde(path);
         return {};
       }},
      {"proxycommand",
       [](SshSettings& s, std::string_view, std::string_view v) -> Result<void> {
         s.proxy_command = NoneIsEmpty(v);
         return {};
       }},
      {"proxyjump",
       [](SshSettings& s, std::string_view, std::string_view v) -> Result<void> {
         s.proxy_jump = NoneIsEmpty(v);
         return {};
       }},
      {"ciphers",
       [](SshSettings& s, std::string_view, std::string_view v) -> Result<void> {
         s.ciphers = v;
         return {};
       }},
      {"batchmode", [](SshSettings& s, std::string_view k, std::string_view v) { return SetFlag(s.batch_mode, k, v); }},
      {"preferredauthentications",
       [](SshSettings& s, std::string_view, std::string_view v) -> Result<void> {
         s.preferred_authentications = v;
         return {};
       }},
      {"pubkeyauthentication", SetPubkeyAuthentication},
      {"kbdinteractiveauthentication",
       [](SshSettings& s, std::string_view k, std::string_view v) {
         return SetFlag(s.kbd_interactive_authentication, k, v);
       }},
      {"passwordauthentication",
       [](SshSettings& s, std::string_view k, std::string_view v) { return SetFlag(s.password_authentication, k, v); }},
      {"localforward", AddForwardLine},
      {"remoteforward", AddForwardLine},
      {"dynamicforward", AddForwardLine},
      {"exitonforwardfailure",
       [](SshSettings& s, std::string_view k, std::string_view v) { return SetFlag(s.exit_on_forward_failure, k, v); }},
      {"clearallforwardings",
       [](SshSettings& s, std::string_view k, std::string_view v) { return SetFlag(s.clear_all_forwardings, k, v); }},
      {"numberofpasswordprompts",
       [](SshSettings& s, std::string_view k, std::string_view v) {
         return SetNumber(s.number_of_password_prompts, k, v, 0, kMaxSeconds, "a count");
       }},
  };
  return kRules;
}

Result<void> Apply(SshSettings& s, const std::string& key, std::string_view value) {
  const auto rule = LineRules().find(key);
  return rule == LineRules().end() ? Result<void>{} : rule->second(s, key, value);
}

}  // namespace

Result<SshSettings> ParseSshG(std::string_view output, std::string_view alias) {
  SshSettings settings;
  settings.host_alias = alias;
  while (!output.empty()) {
    auto end = output.find('\n');
    std::string_view line = Trim(output.substr(0, end));
    output.remove_prefix(end == std::string_view::npos ? output.size() : end + 1);
    if (line.empty()) continue;
    std::size_t key_end = 0;
    while (key_end < line.size() && !IsSpace(line[key_end])) ++key_end;
    std::string key = Lower(line.substr(0, key_end));
    std::string_view value = Trim(line.substr(key_end));
    if (value.find('\0') != std::string_view::npos) {
      return Fail("ssh -G printed a NUL byte in {}", Sanitize(key));
    }
    if (auto applied = Apply(settings, key, value); !applied) return Fail(std::move(applied.error()));
  }
  if (settings.hostname.empty()) return Fail("ssh -G printed no hostname for {}", Sanitize(alias));
  if (settings.user.empty()) return Fail("ssh -G printed no user for {}", Sanitize(alias));
  if (!settings.clear_all_forwardings) {
    auto forwards = ParseSshGForwards(settings.forward_lines);
    if (!forwards) return Fail(forwards.error());
    settings.forwards = std::move(*forwards);
  }
  return settings;
}

Result<SshSettings> ResolveSshSettings(std::string_view ssh_command, std::string_view host, const SshGCache* cache) {
  std::string ssh(Trim(ssh_command));
  if (ssh.empty()) ssh = "ssh";
  if (host.empty()) return Fail("no host given");
  if (host.front() == '-') return Fail("host \"{}\" looks like an option", Sanitize(host));
  if (host.find('\0') != std::string_view::npos || ssh.find('\0') != std::string::npos) {
    return Fail("host or ssh command contains a NUL byte");
  }
  const bool cacheable = cache != nullptr && SshCommandCacheable(ssh);
  if (cacheable) {
    if (auto kept = cache->Find(ssh, host)) {
      auto settings = ParseSshG(*kept, host);
      if (settings) settings->kept_answer = true;
      return settings;
    }
  }

  CommandOptions options;
  options.timeout = kSshGTimeout;
  const auto started = std::chrono::system_clock::now();
  // -v names the files ssh read, which is what a kept answer is checked against.
  const std::string flags = cacheable ? " -v -G" : " -G";
  auto result = RunCommand(ShellCommand("exec " + ssh + flags + " \"$1\"", {std::string(host)}), options);
  std::string shown = fmt::format("{} -G {}", Sanitize(ssh), Sanitize(host));
  if (!result) return Fail("cannot run {}: {}", shown, result.error().message);
  if (result->timed_out) {
    return Fail("{} did not finish within {} s", shown, std::chrono::seconds(kSshGTimeout).count());
  }
  if (!result->ok()) {
    std::string why = FirstLine(result->err);
    std::string status = result->exit_code >= 0 ? fmt::format("exit status {}", result->exit_code)
                                                 : fmt::format("signal {}", result->signal);
    if (why.empty()) return Fail("{} failed ({})", shown, status);
    return Fail("{} failed ({}): {}", shown, status, why);
  }
  auto settings = ParseSshG(result->out, host);
  if (settings && cacheable) cache->Keep(ssh, host, result->out, result->err, started);
  return settings;
}

std::string DestinationName(const SshSettings& settings) {
  bool ipv6 = settings.hostname.find(':') != std::string::npos;
  std::string host = ipv6 ? fmt::format("[{}]", settings.hostname) : settings.hostname;
  if (settings.user.empty()) return fmt::format("{}:{}", host, settings.port);
  return fmt::format("{}@{}:{}", settings.user, host, settings.port);
}

Result<std::string> ExpandSshTokens(std::string_view path, std::string_view what, const SshSettings& settings) {
  char host_name[256] = "";
  ::gethostname(host_name, sizeof host_name - 1);
  std::string local_host = host_name;
  std::string short_host = local_host.substr(0, local_host.find('.'));
  const char* home_env = std::getenv("HOME");
  std::string home = home_env != nullptr ? home_env : "";
  const passwd* user = ::getpwuid(::getuid());
  std::string local_user = user != nullptr ? user->pw_name : std::to_string(::getuid());
  std::string port = std::to_string(settings.port);

  std::string out;
  if (path.starts_with("~/")) {
    out = home;
    path.remove_prefix(1);
  }
  for (std::size_t i = 0; i < path.size(); ++i) {
    if (path[i] != '%') {
      out += path[i];
      continue;
    }
    if (++i == path.size()) return Fail("{} \"{}\" ends with a lone %", what, SanitizeForMessage(path));
    switch (path[i]) {
      case '%': out += '%'; break;
      case 'h': out += settings.hostname; break;
      case 'p': out += port; break;
      case 'r': out += settings.user; break;
      case 'n': out += settings.host_alias; break;
      case 'u': out += local_user; break;
      case 'l': out += local_host; break;
      case 'L': out += short_host; break;
      case 'i': out += std::to_string(::getuid()); break;
      case 'd': out += home; break;
      case 'C': {
        std::string input = local_host + settings.hostname + port + settings.user;
        unsigned char digest[SHA_DIGEST_LENGTH];
        ::SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
        for (unsigned char byte : digest) out += fmt::format("{:02x}", byte);
        break;
      }
      default:
        return Fail("{} \"{}\": unknown token %{}", what, SanitizeForMessage(path), path[i]);
    }
  }
  return out;
}

Result<std::string> ExpandControlPath(std::string_view path, const SshSettings& settings) {
  return ExpandSshTokens(path, "ControlPath", settings);
}

namespace {

// One ProxyJump hop as a destination ssh parses with its port: [user@]host[:port] and
// ssh://[user@]host[:port] both become an ssh:// URI; a bare IPv6 address gets its brackets.
std::string JumpDestination(std::string_view hop) {
  if (hop.starts_with("ssh://")) return std::string(hop);
  std::size_t at = hop.rfind('@');
  std::string_view host_port = at == std::string_view::npos ? hop : hop.substr(at + 1);
  bool bare_ipv6 = !host_port.starts_with('[') && std::count(host_port.begin(), host_port.end(), ':') > 1;
  if (!bare_ipv6) return "ssh://" + std::string(hop);
  std::string user = at == std::string_view::npos ? "" : std::string(hop.substr(0, at + 1));
  return "ssh://" + user + "[" + std::string(host_port) + "]";
}

// A hop as ssh compares it for its loop check: the host, without user@ and :port.
std::string_view HopHost(std::string_view hop) {
  if (hop.starts_with("ssh://")) hop.remove_prefix(6);
  if (auto at = hop.rfind('@'); at != std::string_view::npos) hop.remove_prefix(at + 1);
  if (hop.starts_with('[')) return hop.substr(1, hop.find(']') - 1);
  if (std::count(hop.begin(), hop.end(), ':') == 1) hop = hop.substr(0, hop.find(':'));
  return hop;
}

// ssh refuses a ProxyJump hop whose own settings send it through itself ("jumphost loop via
// HOP"), which is what a mistyped hop under a `Host *` ProxyJump comes to: the hop's name
// matches no Host block but `Host *`. When that is so, the name is usually no host at all, and
// the resolver's answer is what the user needs to hear.
Result<void> CheckJumpHop(std::string_view hop, const std::vector<std::string>& ssh_argv,
                          const SshSettings& settings) {
  std::string ssh_command;
  for (const auto& word : ssh_argv) ssh_command += (ssh_command.empty() ? "" : " ") + ShellQuote(word);
  if (ssh_command.empty()) ssh_command = "ssh";
  const std::string destination = JumpDestination(hop);
  // `ssh -G` refuses such a hop itself, with the loop message (when its port and user match too).
  auto hop_settings = ResolveSshSettings(ssh_command, destination);
  bool loop = !hop_settings && hop_settings.error().message.find("jumphost loop") != std::string::npos;
  if (hop_settings && !hop_settings->proxy_jump.empty()) {
    std::string_view own = hop_settings->proxy_jump;
    own = own.substr(own.rfind(',') == std::string_view::npos ? 0 : own.rfind(',') + 1);
    loop = HopHost(own) == HopHost(hop);
  }
  if (!loop) return {};  // anything else wrong with the hop, ssh says well enough
  // The hop's HostName, with the loop set aside.
  auto plain = ResolveSshSettings(ssh_command + " -o ProxyJump=none", destination);
  const std::string hostname = plain ? plain->hostname : std::string(HopHost(hop));
  std::string shown_ssh;
  for (const auto& word : ssh_argv.empty() ? std::vector<std::string>{"ssh"} : ssh_argv) {
    shown_ssh += (shown_ssh.empty() ? "" : " ") + word;
  }
  const std::string name = Sanitize(hop);
  const std::string where = fmt::format("check the ProxyJump that applies to {} (`{} -G {}`)",
                                        Sanitize(settings.host_alias), Sanitize(shown_ssh),
                                        Sanitize(settings.host_alias));
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = ::getaddrinfo(hostname.c_str(), nullptr, &hints, &found);
  if (found != nullptr) ::freeaddrinfo(found);
  if (rc != 0) {
    return Fail(Error{fmt::format("ProxyJump {}: cannot resolve {}: {}", name, Sanitize(hostname), ::gai_strerror(rc)),
                      fmt::format("{}; {}'s own settings send it through itself, so ssh would only say \"jumphost "
                                  "loop via {}\"",
                                  where, name, name)});
  }
  return Fail(
      Error{fmt::format("ProxyJump {}: {}'s own settings send it through {} too (ssh: \"jumphost loop via {}\")", name,
                        name, name, name),
            fmt::format("add `ProxyJump none` to a `Host {}` block above the one that sets this ProxyJump",
                        Sanitize(HopHost(hop)))});
}

}  // namespace

namespace {

// ProxyCommandFor's command line, without asking ssh about the hop.
Result<std::string> ProxyCommandLine(const SshSettings& settings, const std::vector<std::string>& ssh_argv) {
  if (!settings.proxy_command.empty()) {
    // OpenSSH runs a ProxyCommand with `exec` through the user's shell; %-tokens as for ssh.
    return ExpandSshTokens(settings.proxy_command, "ProxyCommand", settings);
  }
  if (settings.proxy_jump.empty()) return std::string();
  // As ssh does for ProxyJump: the last hop carries the stream (-W), the earlier ones are its
  // own -J; the same ssh command (and so the same -F) reads their settings.
  std::string_view jumps = settings.proxy_jump;
  std::size_t last_comma = jumps.rfind(',');
  std::string_view last = last_comma == std::string_view::npos ? jumps : jumps.substr(last_comma + 1);
  if (last.empty()) return Fail("ProxyJump \"{}\" ends with an empty hop", SanitizeForMessage(jumps));
  std::vector<std::string> argv = ssh_argv.empty() ? std::vector<std::string>{"ssh"} : ssh_argv;
  if (last_comma != std::string_view::npos) argv.insert(argv.end(), {"-J", std::string(jumps.substr(0, last_comma))});
  argv.insert(argv.end(), {"-W", fmt::format("[{}]:{}", settings.hostname, settings.port), JumpDestination(last)});
  std::string command;
  for (const auto& word : argv) command += (command.empty() ? "" : " ") + ShellQuote(word);
  return command;
}

// "a, b" ("none" for an empty list).
std::string Listed(const std::vector<std::string>& items) {
  std::string text;
  for (const auto& item : items) text += (text.empty() ? "" : ", ") + item;
  return text.empty() ? "none" : text;
}

}  // namespace

Result<std::string> ProxyCommandFor(const SshSettings& settings, const std::vector<std::string>& ssh_argv) {
  auto command = ProxyCommandLine(settings, ssh_argv);
  if (!command || !settings.proxy_command.empty() || settings.proxy_jump.empty()) return command;
  std::string_view jumps = settings.proxy_jump;
  std::string_view last = jumps.substr(jumps.rfind(',') == std::string_view::npos ? 0 : jumps.rfind(',') + 1);
  if (auto checked = CheckJumpHop(last, ssh_argv, settings); !checked) return Fail(checked.error());
  return command;
}

Result<MasterIdentity> IdentityOf(const SshSettings& settings, const std::vector<std::string>& ssh_argv) {
  MasterIdentity identity;
  identity.identity_files = settings.identity_files;
  identity.known_hosts_files = settings.user_known_hosts_files;
  identity.known_hosts_files.insert(identity.known_hosts_files.end(), settings.global_known_hosts_files.begin(),
                                    settings.global_known_hosts_files.end());
  auto proxy = ProxyCommandLine(settings, ssh_argv);
  if (!proxy) return Fail(proxy.error());
  identity.proxy_command = std::move(*proxy);
  return identity;
}

std::vector<std::string> IdentityDifferences(const MasterIdentity& master, const MasterIdentity& session,
                                             std::string_view host) {
  std::vector<std::string> differences;
  auto differ = [&](std::string_view what, const std::string& theirs, const std::string& ours) {
    differences.push_back(fmt::format("{} {} ({}'s: {})", what, theirs, Sanitize(host), ours));
  };
  if (master.identity_files != session.identity_files) {
    differ("IdentityFile", Listed(master.identity_files), Listed(session.identity_files));
  }
  if (master.known_hosts_files != session.known_hosts_files) {
    differ("UserKnownHostsFile", Listed(master.known_hosts_files), Listed(session.known_hosts_files));
  }
  if (master.proxy_command != session.proxy_command) {
    auto shown = [](const std::string& command) { return command.empty() ? std::string("none") : "`" + command + "`"; };
    differ("proxy", shown(master.proxy_command), shown(session.proxy_command));
  }
  return differences;
}

}  // namespace mconnect::launcher
