#include "launcher/ssh_config.h"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <openssl/sha.h>

#include "base/subprocess.h"
#include "base/text.h"

namespace mconnect::launcher {
namespace {

using namespace std::chrono_literals;

constexpr auto kSshGTimeout = 10s;
constexpr std::size_t kMaxQuoted = 80;
// Large enough for any real timeout, small enough that seconds * 1000 fits an int.
constexpr long kMaxSeconds = 1'000'000;

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }

std::string_view Trim(std::string_view text) {
  while (!text.empty() && IsSpace(text.front())) text.remove_prefix(1);
  while (!text.empty() && IsSpace(text.back())) text.remove_suffix(1);
  return text;
}

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

// ssh expands "~" itself when it uses a path, but ssh -G prints some of them (identityfile)
// as written; we open these files ourselves, so we expand the one form that matters.
std::string ExpandTilde(std::string_view path) {
  if (path != "~" && !path.starts_with("~/")) return std::string(path);
  const char* home = std::getenv("HOME");
  if (home == nullptr || *home == '\0') return std::string(path);
  return std::string(home) + std::string(path.substr(1));
}

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
    if (!line.empty()) return Sanitize(line);
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return {};
}

Result<void> Apply(SshSettings& s, const std::string& key, std::string_view value) {
  auto number = [&](int& field, long min, long max, std::string_view expected) -> Result<void> {
    auto parsed = ParseNumber(value, min, max);
    if (!parsed) return Fail("ssh -G printed {} \"{}\" (expected {})", key, Sanitize(value), expected);
    field = static_cast<int>(*parsed);
    return {};
  };
  auto flag = [&](bool& field) -> Result<void> {
    auto parsed = ParseBool(value);
    if (!parsed) return Fail("ssh -G printed {} \"{}\" (expected yes or no)", key, Sanitize(value));
    field = *parsed;
    return {};
  };

  if (key == "hostname") {
    s.hostname = value;
  } else if (key == "user") {
    s.user = value;
  } else if (key == "port") {
    auto port = ParseNumber(value, 1, 65535);
    if (!port) return Fail("ssh -G printed port \"{}\" (expected 1..65535)", Sanitize(value));
    s.port = static_cast<std::uint16_t>(*port);
  } else if (key == "identityfile") {
    // One file per line, the path may contain spaces.
    if (!value.empty() && Lower(value) != "none") s.identity_files.push_back(ExpandTilde(value));
  } else if (key == "identitiesonly") {
    return flag(s.identities_only);
  } else if (key == "identityagent") {
    s.identity_agent = value == "none" || value == "SSH_AUTH_SOCK" ? std::string(value) : ExpandTilde(value);
  } else if (key == "userknownhostsfile") {
    AppendPaths(s.user_known_hosts_files, value);
  } else if (key == "globalknownhostsfile") {
    AppendPaths(s.global_known_hosts_files, value);
  } else if (key == "stricthostkeychecking") {
    std::string lower = Lower(value);
    if (lower == "true" || lower == "yes") {
      s.strict_host_key_checking = "yes";
    } else if (lower == "false" || lower == "no" || lower == "off") {
      s.strict_host_key_checking = "no";
    } else if (lower == "ask" || lower == "accept-new") {
      s.strict_host_key_checking = lower;
    } else {
      return Fail("ssh -G printed stricthostkeychecking \"{}\" (expected yes, no, ask or accept-new)",
                  Sanitize(value));
    }
  } else if (key == "hostkeyalias") {
    s.host_key_alias = NoneIsEmpty(value);
  } else if (key == "connecttimeout") {
    if (Lower(value) == "none") {
      s.connect_timeout_s = 0;
      return {};
    }
    return number(s.connect_timeout_s, 0, kMaxSeconds, "a number of seconds or none");
  } else if (key == "serveraliveinterval") {
    return number(s.server_alive_interval_s, 0, kMaxSeconds, "a number of seconds");
  } else if (key == "serveralivecountmax") {
    return number(s.server_alive_count_max, 0, kMaxSeconds, "a count");
  } else if (key == "controlpath") {
    std::string path = NoneIsEmpty(value);
    s.control_path = path.empty() ? path : ExpandTilde(path);
  } else if (key == "proxycommand") {
    s.proxy_command = NoneIsEmpty(value);
  } else if (key == "proxyjump") {
    s.proxy_jump = NoneIsEmpty(value);
  } else if (key == "ciphers") {
    s.ciphers = value;
  } else if (key == "batchmode") {
    return flag(s.batch_mode);
  } else if (key == "preferredauthentications") {
    s.preferred_authentications = value;
  } else if (key == "pubkeyauthentication") {
    // OpenSSH 9 also has "unbound" and "host-bound" (both mean yes for a client like us).
    std::string lower = Lower(value);
    if (lower == "unbound" || lower == "host-bound") {
      s.pubkey_authentication = true;
      return {};
    }
    return flag(s.pubkey_authentication);
  } else if (key == "kbdinteractiveauthentication") {
    return flag(s.kbd_interactive_authentication);
  } else if (key == "passwordauthentication") {
    return flag(s.password_authentication);
  } else if (key == "numberofpasswordprompts") {
    return number(s.number_of_password_prompts, 0, kMaxSeconds, "a count");
  }
  return {};
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
  return settings;
}

Result<SshSettings> ResolveSshSettings(std::string_view ssh_command, std::string_view host) {
  std::string ssh(Trim(ssh_command));
  if (ssh.empty()) ssh = "ssh";
  if (host.empty()) return Fail("no host given");
  if (host.front() == '-') return Fail("host \"{}\" looks like an option", Sanitize(host));
  if (host.find('\0') != std::string_view::npos || ssh.find('\0') != std::string::npos) {
    return Fail("host or ssh command contains a NUL byte");
  }

  CommandOptions options;
  options.timeout = kSshGTimeout;
  auto result = RunCommand(ShellCommand("exec " + ssh + " -G \"$1\"", {std::string(host)}), options);
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
  return ParseSshG(result->out, host);
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

}  // namespace

Result<std::string> ProxyCommandFor(const SshSettings& settings, const std::vector<std::string>& ssh_argv) {
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

}  // namespace mconnect::launcher
