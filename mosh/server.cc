#include "mosh/server.h"

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "base/ip_literal.h"
#include "base/subprocess.h"
#include "base/text.h"

namespace mconnect::mosh {
namespace {

constexpr std::string_view kConnectPrefix = "MOSH CONNECT ";
constexpr std::string_view kDetachedPrefix = "[mosh-server detached, pid = ";
constexpr std::size_t kKeyLength = 22;
constexpr std::size_t kMaxQuoted = 120;
// Runs of key characters shorter than this after "MOSH CONNECT N " are not redacted: they reveal
// next to nothing of a 22-character key, and redacting them would mangle ordinary words.
constexpr std::size_t kMinKeyRun = 8;
constexpr std::string_view kRedacted = "<key>";

constexpr std::string_view kNotFoundHint =
    "install mosh on the server, or pass --server=/full/path/to/mosh-server (mosh-server must be on the PATH "
    "of non-interactive shells)";
constexpr std::string_view kLocaleHint =
    "the master retries with LANG=C.UTF-8; to keep your own locale there, generate it on the server "
    "(locale-gen, or the locales package)";
constexpr std::string_view kNoConnectHint = "run `mosh-server new` on the server by hand to see its full output";

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsKeyChar(char c) { return IsAlpha(c) || IsDigit(c) || c == '/' || c == '+'; }
// Perl's \s (since 5.18) without the newline, which the line split has already removed.
bool IsPerlSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

std::vector<std::string_view> Lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    auto end = text.find('\n');
    lines.push_back(text.substr(0, end));
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return lines;
}

std::optional<unsigned long> ParseDecimal(std::string_view digits, unsigned long max) {
  if (digits.empty()) return std::nullopt;
  unsigned long value = 0;
  for (char c : digits) {
    if (!IsDigit(c)) return std::nullopt;
    value = value * 10 + static_cast<unsigned long>(c - '0');
    if (value > max) return std::nullopt;
  }
  return value;
}

// ---- the command line ----

bool IsIdentifier(std::string_view name) {
  if (name.empty() || IsDigit(name.front())) return false;
  for (char c : name) {
    if (!IsAlpha(c) && !IsDigit(c) && c != '_') return false;
  }
  return true;
}

bool IsPortRange(std::string_view range) {
  auto colon = range.find(':');
  auto low = ParseDecimal(range.substr(0, colon), 65535);
  if (!low || *low == 0) return false;
  if (colon == std::string_view::npos) return true;
  auto high = ParseDecimal(range.substr(colon + 1), 65535);
  return high && *low <= *high;
}

bool HasNul(std::string_view text) { return text.find('\0') != std::string_view::npos; }

bool EqualsIgnoringCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// ---- the output ----

enum class ConnectMatch { kMatched, kBadPort, kMalformed };

struct ConnectLine {
  ConnectMatch match = ConnectMatch::kMalformed;
  std::uint16_t port = 0;
  std::string_view port_digits;
  std::string_view key;
  std::string why;  // for kMalformed; never quotes the key
};

// `rest` is what follows "MOSH CONNECT " on a line. Hand-written equivalent of mosh.pl's
// (\d+?) ([A-Za-z0-9/+]{22})\s*$ — the lazy \d+? changes nothing, as a space must follow.
ConnectLine MatchConnect(std::string_view rest) {
  ConnectLine line;
  std::size_t digits = 0;
  while (digits < rest.size() && IsDigit(rest[digits])) ++digits;
  if (digits == 0) {
    line.why = "no port number";
    return line;
  }
  line.port_digits = rest.substr(0, digits);
  rest.remove_prefix(digits);
  if (rest.empty() || rest.front() != ' ') {
    line.why = "no space after the port";
    return line;
  }
  rest.remove_prefix(1);
  std::size_t key_chars = 0;
  while (key_chars < rest.size() && IsKeyChar(rest[key_chars])) ++key_chars;
  std::string_view tail = rest.substr(key_chars);
  bool tail_is_space = true;
  for (char c : tail) tail_is_space = tail_is_space && IsPerlSpace(c);
  if (key_chars != kKeyLength || !tail_is_space) {
    line.why = key_chars != kKeyLength
                   ? fmt::format("a key of {} base64 characters, not {}", key_chars, kKeyLength)
                   : std::string("unexpected text after the key");
    return line;
  }
  line.key = rest.substr(0, kKeyLength);
  auto port = ParseDecimal(line.port_digits, 65535);
  if (!port || *port == 0) {
    line.match = ConnectMatch::kBadPort;
    return line;
  }
  line.port = static_cast<std::uint16_t>(*port);
  line.match = ConnectMatch::kMatched;
  return line;
}

std::uint32_t DetachedPid(std::string_view err) {
  auto at = err.find(kDetachedPrefix);
  if (at == std::string_view::npos) return 0;
  std::string_view rest = err.substr(at + kDetachedPrefix.size());
  auto close = rest.find(']');
  if (close == std::string_view::npos) return 0;
  auto pid = ParseDecimal(Trim(rest.substr(0, close)), 0xFFFFFFFFul);
  return pid ? static_cast<std::uint32_t>(*pid) : 0;
}

// Lines mosh-server always prints on stderr; they explain nothing when it fails.
bool IsBanner(std::string_view line) {
  static constexpr std::array<std::string_view, 6> kBanner{
      "mosh-server (mosh ", "Copyright ",          "License GPLv3",
      "This is free software", "There is NO WARRANTY", "[mosh-server detached"};
  for (auto prefix : kBanner) {
    if (line.starts_with(prefix)) return true;
  }
  return false;
}

// What stands where a key would after each "MOSH CONNECT <digits> " in stdout, well-formed or
// not: the run of base64 characters after the port, and its first 22 characters. Text quoted in
// an error passes through Quote, which replaces each of them, so no key can leak through a
// wrapper that copies stdout to stderr.
std::vector<std::string> KeyCandidates(std::string_view out) {
  std::vector<std::string> keys;
  for (auto at = out.find(kConnectPrefix); at != std::string_view::npos; at = out.find(kConnectPrefix, at + 1)) {
    std::string_view rest = out.substr(at + kConnectPrefix.size());
    while (!rest.empty() && IsDigit(rest.front())) rest.remove_prefix(1);
    if (rest.empty() || rest.front() != ' ') continue;
    rest.remove_prefix(1);
    std::size_t run = 0;
    while (run < rest.size() && IsKeyChar(rest[run])) ++run;
    if (run < kMinKeyRun) continue;
    keys.emplace_back(rest.substr(0, run));  // longest first, so it is replaced whole
    if (run > kKeyLength) keys.emplace_back(rest.substr(0, kKeyLength));
  }
  return keys;
}

std::string Quote(std::string_view line, const std::vector<std::string>& keys) {
  std::string text(Trim(line));
  for (const auto& key : keys) {
    for (auto at = text.find(key); at != std::string::npos; at = text.find(key, at + kRedacted.size())) {
      text.replace(at, key.size(), kRedacted);
    }
  }
  if (auto at = text.find(kConnectPrefix); at != std::string::npos) text.resize(at + kConnectPrefix.size() - 1);
  return SanitizeForMessage(text, kMaxQuoted);
}

// The first stderr line that says something (neither blank nor mosh-server's banner).
std::string FirstTellingLine(std::string_view err, const std::vector<std::string>& keys) {
  for (auto line : Lines(err)) {
    auto trimmed = Trim(line);
    if (!trimmed.empty() && !IsBanner(trimmed)) return Quote(trimmed, keys);
  }
  return {};
}

std::string LineContaining(std::string_view text, std::string_view needle, const std::vector<std::string>& keys) {
  for (auto line : Lines(text)) {
    if (line.find(needle) != std::string_view::npos) return Quote(line, keys);
  }
  return {};
}

std::unexpected<MoshServerError> Failure(MoshServerFailure kind, std::string message, std::string_view hint) {
  return std::unexpected(MoshServerError{kind, std::move(message), std::string(hint)});
}

}  // namespace

Result<std::string> BuildMoshServerCommand(const MoshServerParams& params) {
  std::string_view server = Trim(params.server);
  if (server.empty()) return Fail("empty mosh-server command");
  if (HasNul(server) || server.find('\n') != std::string_view::npos) {
    return Fail("the mosh-server command must be one line");
  }
  std::vector<std::string> words{"new", "-c", fmt::format("{}", params.colors)};

  if (EqualsIgnoringCase(params.bind, "ssh")) {
    words.push_back("-s");
  } else if (EqualsIgnoringCase(params.bind, "any")) {
    // mosh-server listens on every address.
  } else if (IsIpLiteral(params.bind)) {
    words.push_back("-i");
    words.push_back(params.bind);
  } else {
    return Fail("bad --bind-server \"{}\" (expected ssh, any or an IP address)",
                SanitizeForMessage(params.bind));
  }

  if (!params.port_range.empty()) {
    if (!IsPortRange(params.port_range)) {
      return Fail("bad mosh port range \"{}\" (expected PORT or PORT:PORT2 within 1..65535, PORT <= PORT2)",
                  SanitizeForMessage(params.port_range));
    }
    words.push_back("-p");
    words.push_back(params.port_range);
  }

  for (int i = 0; i < params.verbose; ++i) words.push_back("-v");

  for (const auto& assignment : params.locale) {
    auto equals = assignment.find('=');
    std::string_view name = std::string_view(assignment).substr(0, equals);
    if (equals == std::string::npos || !IsIdentifier(name)) {
      return Fail("bad locale setting \"{}\" (expected NAME=VALUE)", SanitizeForMessage(assignment));
    }
    if (HasNul(assignment) || assignment.find('\n') != std::string::npos) {
      return Fail("locale setting {} has a control character in its value", name);
    }
    words.push_back("-l");
    words.push_back(assignment);
  }

  if (!params.command.empty()) {
    words.push_back("--");
    for (const auto& word : params.command) {
      if (HasNul(word)) return Fail("the remote command contains a NUL byte");
      words.push_back(word);
    }
  }

  std::string line(server);
  for (const auto& word : words) {
    line += ' ';
    line += ShellQuote(word);
  }
  return line;
}

std::expected<MoshConnect, MoshServerError> ParseMoshServerOutput(int exit_status, std::string_view out,
                                                                  std::string_view err) {
  auto keys = KeyCandidates(out);
  for (auto line : Lines(out)) {
    if (!line.starts_with(kConnectPrefix)) continue;
    // The first MOSH CONNECT line decides, as in mosh.pl.
    auto connect = MatchConnect(line.substr(kConnectPrefix.size()));
    switch (connect.match) {
      case ConnectMatch::kMatched:
        return MoshConnect{connect.port, std::string(connect.key), DetachedPid(err)};
      case ConnectMatch::kBadPort:
        return Failure(MoshServerFailure::kBadPort,
                       fmt::format("mosh-server announced UDP port {}, outside 1..65535",
                                   SanitizeForMessage(connect.port_digits, 12)),
                       "");
      case ConnectMatch::kMalformed:
        return Failure(MoshServerFailure::kNoConnectLine,
                       fmt::format("mosh-server printed a malformed MOSH CONNECT line ({})", connect.why),
                       kNoConnectHint);
    }
  }

  // Checked before "not found": a missing locale also makes `locale` print "No such file or
  // directory", and mosh-server itself was found.
  if (err.find("isn't available here") != std::string_view::npos ||
      err.find("needs a UTF-8 native locale") != std::string_view::npos) {
    std::string requested = LineContaining(err, "The locale requested by", keys);
    return Failure(MoshServerFailure::kLocale,
                   requested.empty() ? std::string("mosh-server needs a UTF-8 native locale to run")
                                     : fmt::format("mosh-server: {}", requested),
                   kLocaleHint);
  }

  if (exit_status == 127 || err.find("command not found") != std::string_view::npos ||
      err.find(": not found") != std::string_view::npos ||
      err.find("No such file or directory") != std::string_view::npos) {
    std::string line = FirstTellingLine(err, keys);
    return Failure(MoshServerFailure::kNotFound,
                   line.empty() ? std::string("mosh-server not found on the server")
                                : fmt::format("mosh-server not found on the server: {}", line),
                   kNotFoundHint);
  }

  std::string line = FirstTellingLine(err, keys);
  std::string message = fmt::format("mosh-server printed no MOSH CONNECT line (exit status {})", exit_status);
  if (!line.empty()) message += fmt::format(": {}", line);
  return Failure(MoshServerFailure::kNoConnectLine, std::move(message), kNoConnectHint);
}

}  // namespace mconnect::mosh
