#include "launcher/forward_spec.h"

#include <algorithm>
#include <optional>
#include <string>

#include <fmt/format.h>

#include "base/text.h"
#include "proto/master_config.h"

namespace mconnect::launcher {
namespace {

using Forward = ConfiguredForward;

struct Field {
  std::string text;
  bool path = false;  // holds a '/': a Unix socket path
};

// One field of a spec, from the front of `rest` (advanced past it and its ':'), as OpenSSH's
// parse_fwd_field reads it.
Result<Field> NextField(std::string_view& rest) {
  Field field;
  if (rest.front() == '[') {
    const std::size_t close = rest.find(']');
    if (close == std::string_view::npos) return Fail("a '[' without its ']'");
    if (close + 1 < rest.size() && rest[close + 1] != ':') return Fail("something other than ':' after a ']'");
    field.text = rest.substr(1, close - 1);
    field.path = field.text.find('/') != std::string::npos;
    rest.remove_prefix(std::min(rest.size(), close + 2));
    return field;
  }
  while (!rest.empty()) {
    const char c = rest.front();
    rest.remove_prefix(1);
    if (c == ':') return field;
    if (c == '\\') {
      if (rest.empty()) return Fail("a '\\' at the end");
      field.text += rest.front();
      rest.remove_prefix(1);
      continue;
    }
    if (c == '/') field.path = true;
    field.text += c;
  }
  return field;
}

Result<std::vector<Field>> SplitFields(std::string_view spec) {
  std::vector<Field> fields;
  spec = Trim(spec);
  while (!spec.empty()) {
    if (fields.size() == 4) return Fail("more than four ':'-separated fields");
    auto field = NextField(spec);
    if (!field) return Fail(field.error());
    fields.push_back(std::move(*field));
  }
  if (fields.empty()) return Fail("it is empty");
  return fields;
}

std::optional<std::uint32_t> Port(std::string_view text) {
  if (text.empty() || text.size() > 5 || !std::ranges::all_of(text, [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  const std::uint32_t port = static_cast<std::uint32_t>(std::stoul(std::string(text)));
  if (port > 65535) return std::nullopt;
  return port;
}

// What parse_forward makes of 1 to 4 fields: `socks` when no destination was given.
struct Parsed {
  Forward forward;
  bool socks = false;
};

Result<void> SetListen(Forward& forward, const Field* host, const Field& port) {
  if (host != nullptr) forward.set_listen_host(host->text.empty() ? "*" : host->text);  // ssh: empty is every address
  auto number = Port(port.text);
  if (!number) return Fail("listen port \"{}\" is not a number from 0 to 65535", SanitizeForMessage(port.text, 40));
  forward.set_listen_port(*number);
  return {};
}

Result<void> SetConnect(Forward& forward, const Field& host, const Field& port) {
  if (host.text.empty()) return Fail("the destination host is empty");
  forward.set_connect_host(host.text);
  auto number = Port(port.text);
  if (!number || *number == 0) {
    return Fail("destination port \"{}\" is not a number from 1 to 65535", SanitizeForMessage(port.text, 40));
  }
  forward.set_connect_port(*number);
  return {};
}

void SetPath(Forward& forward, bool listen, const std::string& path) {
  if (listen) {
    forward.set_listen_host(path);
    forward.set_listen_port(proto::kPortStreamLocal);
  } else {
    forward.set_connect_host(path);
    forward.set_connect_port(proto::kPortStreamLocal);
  }
}

Result<Parsed> FromFields(const std::vector<Field>& f) {
  Parsed parsed;
  Forward& forward = parsed.forward;
  Result<void> ok;
  switch (f.size()) {
    case 1:
      parsed.socks = true;
      if (f[0].path) {
        SetPath(forward, true, f[0].text);
      } else {
        ok = SetListen(forward, nullptr, f[0]);
      }
      break;
    case 2:
      if (f[0].path && f[1].path) {
        SetPath(forward, true, f[0].text);
        SetPath(forward, false, f[1].text);
      } else if (f[1].path) {
        ok = SetListen(forward, nullptr, f[0]);
        SetPath(forward, false, f[1].text);
      } else {
        parsed.socks = true;
        ok = SetListen(forward, &f[0], f[1]);
      }
      break;
    case 3:
      if (f[0].path) {
        SetPath(forward, true, f[0].text);
        ok = SetConnect(forward, f[1], f[2]);
      } else if (f[2].path) {
        ok = SetListen(forward, &f[0], f[1]);
        SetPath(forward, false, f[2].text);
      } else {
        ok = SetListen(forward, nullptr, f[0]);
        if (ok) ok = SetConnect(forward, f[1], f[2]);
      }
      break;
    default:
      ok = SetListen(forward, &f[0], f[1]);
      if (ok) ok = SetConnect(forward, f[2], f[3]);
      break;
  }
  if (!ok) return Fail(ok.error());
  return parsed;
}

constexpr std::string_view kLocalForms = "[bind:]port:host:hostport, [bind:]port:path, path:host:hostport or path:path";

Result<void> CheckKind(Forward::Kind kind, const Parsed& parsed) {
  const Forward& forward = parsed.forward;
  const bool listen_path = forward.listen_port() == proto::kPortStreamLocal;
  switch (kind) {
    case Forward::KIND_DYNAMIC:
      if (!parsed.socks || listen_path) return Fail("expected [bind:]port");
      break;
    case Forward::KIND_LOCAL:
      if (parsed.socks) return Fail("expected {}", kLocalForms);
      break;
    case Forward::KIND_REMOTE:
      if (parsed.socks && listen_path) return Fail("expected {} or [bind:]port", kLocalForms);
      break;
    default: return Fail("unknown kind");
  }
  if (forward.listen_port() == 0 && kind != Forward::KIND_REMOTE) {
    return Fail("listen port 0 (only a remote forward may let the server pick its port)");
  }
  for (const std::string* field : {&forward.listen_host(), &forward.connect_host()}) {
    if (field->size() > proto::kMaxForwardField) return Fail("a host or path over {} bytes", proto::kMaxForwardField);
  }
  return {};
}

// A spec, a profile entry or an ssh -G value: short enough that the text kept with it fits the
// master's bound (proto::kMaxForwardField) with its kind letter.
constexpr std::size_t kMaxSpec = proto::kMaxForwardField - 8;

std::string_view KindLetter(Forward::Kind kind) {
  return kind == Forward::KIND_LOCAL ? "L" : kind == Forward::KIND_REMOTE ? "R" : "D";
}

}  // namespace

Result<ConfiguredForward> ParseForwardSpec(ConfiguredForward::Kind kind, std::string_view spec) {
  if (spec.find('\0') != std::string_view::npos) return Fail("it holds a NUL byte");
  if (spec.size() > kMaxSpec) return Fail("longer than {} bytes", kMaxSpec);
  auto fields = SplitFields(spec);
  if (!fields) return Fail(fields.error());
  auto parsed = FromFields(*fields);
  if (!parsed) return Fail(parsed.error());
  if (auto ok = CheckKind(kind, *parsed); !ok) return Fail(ok.error());
  Forward forward = std::move(parsed->forward);
  forward.set_kind(kind);
  if (parsed->socks && kind == Forward::KIND_REMOTE) {
    forward.set_connect_host("socks");  // as ssh's mux client sends a remote SOCKS forward
    forward.set_connect_port(0);
  }
  return forward;
}

Result<ConfiguredForward> ParseProfileForward(std::string_view entry) {
  entry = Trim(entry);
  if (entry.size() > kMaxSpec) return Fail("longer than {} bytes", kMaxSpec);
  const std::size_t blank = entry.find_first_of(" \t");
  const std::string_view letter = entry.substr(0, blank);
  const auto kind = letter == "L"   ? std::optional(Forward::KIND_LOCAL)
                    : letter == "R" ? std::optional(Forward::KIND_REMOTE)
                    : letter == "D" ? std::optional(Forward::KIND_DYNAMIC)
                                    : std::nullopt;
  if (!kind || blank == std::string_view::npos) {
    return Fail("expected L, R or D, a blank, then the forward as ssh's -L, -R or -D take it (\"L 8080:localhost:80\")");
  }
  auto forward = ParseForwardSpec(*kind, entry.substr(blank + 1));
  if (!forward) return Fail("{}: {}", letter, forward.error().message);
  forward->set_origin(Forward::ORIGIN_PROFILE);
  forward->set_text(std::string(entry));
  return forward;
}

namespace {

std::vector<std::string_view> Words(std::string_view value) {
  std::vector<std::string_view> words;
  for (std::string_view rest = Trim(value); !rest.empty(); rest = Trim(rest)) {
    const std::size_t end = std::min(rest.find_first_of(" \t"), rest.size());
    words.push_back(rest.substr(0, end));
    rest.remove_prefix(end);
  }
  return words;
}

Result<ConfiguredForward> ParseSshGForward(std::string_view key, std::string_view value) {
  const auto kind = key == "localforward"    ? Forward::KIND_LOCAL
                    : key == "remoteforward" ? Forward::KIND_REMOTE
                                             : Forward::KIND_DYNAMIC;
  if (Trim(value).size() > kMaxSpec) return Fail("ssh -G printed {} longer than {} bytes", key, kMaxSpec);
  std::vector<std::string_view> words = Words(value);
  // A remote SOCKS forward's destination is printed as "[socks]:0".
  if (kind == Forward::KIND_REMOTE && words.size() == 2 && words[1] == "[socks]:0") words.pop_back();
  const std::size_t expected = kind == Forward::KIND_DYNAMIC ? 1 : 2;
  Result<ConfiguredForward> forward = Fail("expected {} word{}", expected, expected == 1 ? "" : "s");
  if (words.size() == expected || (kind == Forward::KIND_REMOTE && words.size() == 1)) {
    std::string spec(words[0]);
    if (words.size() == 2) spec += fmt::format(":{}", words[1]);
    forward = ParseForwardSpec(kind, spec);
  }
  if (!forward) {
    return Fail("ssh -G printed {} \"{}\" ({})", key, SanitizeForMessage(value, 80), forward.error().message);
  }
  forward->set_origin(Forward::ORIGIN_SSH_CONFIG);
  forward->set_text(fmt::format("{} {}", KindLetter(kind), Trim(value)));
  return forward;
}

// Whether a dynamicforward line is OpenSSH 9.2's echo of a local forward to or from a Unix socket
// (its dump prints those among the dynamic ones too, by their listen side).
bool EchoOfLocal(std::string_view value, const std::vector<SshGForwardLine>& lines) {
  return std::ranges::any_of(lines, [value = Trim(value)](const SshGForwardLine& line) {
    if (line.key != "localforward") return false;
    const auto words = Words(line.value);
    const bool with_path = std::ranges::any_of(words, [](std::string_view w) { return w.find('/') != w.npos; });
    return with_path && !words.empty() && words[0] == value;
  });
}

}  // namespace

Result<std::vector<ConfiguredForward>> ParseSshGForwards(const std::vector<SshGForwardLine>& lines) {
  std::vector<ConfiguredForward> forwards;
  for (const SshGForwardLine& line : lines) {
    if (line.key == "dynamicforward" && EchoOfLocal(line.value, lines)) continue;
    auto forward = ParseSshGForward(line.key, line.value);
    if (!forward) return Fail(forward.error());
    forwards.push_back(std::move(*forward));
  }
  return forwards;
}

}  // namespace mconnect::launcher
