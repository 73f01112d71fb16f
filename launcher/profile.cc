#include "launcher/profile.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "base/unique_fd.h"
#include "launcher/forward_spec.h"

namespace mconnect::launcher {
namespace {

// A profile is a few hundred bytes; anything this large is the wrong file.
constexpr std::size_t kMaxProfileBytes = 1 << 20;

// Where a value came from, for the error's "file:line: " prefix.
struct Where {
  const std::string& path;
  int line;
};

template <typename... Args>
std::unexpected<Error> FailAt(const Where& where, fmt::format_string<Args...> format, Args&&... args) {
  return Fail("{}:{}: {}", where.path, where.line, fmt::format(format, std::forward<Args>(args)...));
}

Where At(const std::string& path, const toml::source_region& source) {
  return {path, static_cast<int>(source.begin.line)};
}

std::string_view TypeName(toml::node_type type) {
  switch (type) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    case toml::node_type::none: break;
  }
  return "nothing";
}

Result<std::string> GetString(const std::string& path, std::string_view key, const toml::node& node) {
  const auto* value = node.as_string();
  if (value == nullptr) {
    return FailAt(At(path, node.source()), "{} must be a string, not {}", key, TypeName(node.type()));
  }
  return value->get();
}

// A number of seconds: an integer from 0 to INT_MAX.
Result<int> GetSeconds(const std::string& path, std::string_view key, const toml::node& node) {
  const auto* value = node.as_integer();
  if (value == nullptr) {
    return FailAt(At(path, node.source()), "{} must be an integer (seconds), not {}", key, TypeName(node.type()));
  }
  const std::int64_t seconds = value->get();
  if (seconds < 0) return FailAt(At(path, node.source()), "{} is {}; it must be 0 or more seconds", key, seconds);
  if (seconds > std::numeric_limits<int>::max()) {
    return FailAt(At(path, node.source()), "{} is {}; at most {} seconds", key, seconds,
                  std::numeric_limits<int>::max());
  }
  return static_cast<int>(seconds);
}

Result<std::string> GetNonEmptyString(const std::string& path, std::string_view key, const toml::node& node) {
  auto value = GetString(path, key, node);
  if (value && value->empty()) return FailAt(At(path, node.source()), "{} is empty", key);
  return value;
}

// One key of a [defaults] or [host.X] table: reads and checks `node` into the layer.
using Reader = Result<void> (*)(const std::string& path, std::string_view key, const toml::node& node,
                                Profile::Layer& layer);

struct KeySpec {
  std::string_view name;
  Reader read;
};

Result<void> ReadRemoteIp(const std::string& path, std::string_view key, const toml::node& node,
                          Profile::Layer& layer) {
  const auto* array = node.as_array();
  if (array == nullptr) {
    return FailAt(At(path, node.source()), "{} must be an array of strategies like [\"peer\"], not {}", key,
                  TypeName(node.type()));
  }
  if (array->empty()) return FailAt(At(path, node.source()), "{} is empty: name at least one strategy", key);
  std::vector<std::string> chain;
  for (const toml::node& element : *array) {
    auto spec = GetString(path, key, element);
    if (!spec) return Fail(spec.error());
    if (auto ok = CheckRemoteIpSpec(*spec); !ok) {
      return FailAt(At(path, element.source()), "{}: {}", key, ok.error().message);
    }
    chain.push_back(std::move(*spec));
  }
  layer.remote_ip = std::move(chain);
  return {};
}

// The string at `key` once `check` takes it; else `KEY "VALUE" is not a WHAT: WHY` at its line.
template <typename Check>
Result<std::string> GetChecked(const std::string& path, std::string_view key, const toml::node& node,
                               std::string_view what, Check check) {
  auto value = GetString(path, key, node);
  if (!value) return Fail(value.error());
  if (Result<void> ok = check(*value); !ok) {
    return FailAt(At(path, node.source()), "{} \"{}\" is not a {}: {}", key, *value, what, ok.error().message);
  }
  return value;
}

// Stores the string at `key` in `field` once `check` takes it (see GetChecked).
template <typename Check>
Result<void> ReadChecked(const std::string& path, std::string_view key, const toml::node& node, std::string_view what,
                         Check check, std::optional<std::string>& field) {
  auto value = GetChecked(path, key, node, what, check);
  if (!value) return Fail(value.error());
  field = std::move(*value);
  return {};
}

// Stores what `Get` reads at `key` in the layer's `Field`.
template <auto Get, auto Field>
Result<void> Store(const std::string& path, std::string_view key, const toml::node& node, Profile::Layer& layer) {
  auto value = Get(path, key, node);
  if (!value) return Fail(value.error());
  layer.*Field = std::move(*value);
  return {};
}

// GetSeconds, but at least 1.
Result<int> GetPositiveSeconds(const std::string& path, std::string_view key, const toml::node& node) {
  auto value = GetSeconds(path, key, node);
  if (value && *value == 0) return FailAt(At(path, node.source()), "{} must be at least 1 second", key);
  return value;
}

// A check that takes one of `words`, listed in its error as `listed`.
auto OneOf(std::vector<std::string_view> words, std::string_view listed) {
  return [words = std::move(words), listed](std::string_view value) -> Result<void> {
    if (std::ranges::find(words, value) != words.end()) return {};
    return Fail("expected {}", listed);
  };
}

Result<void> ReadMoshPorts(const std::string& path, std::string_view key, const toml::node& node,
                           Profile::Layer& layer) {
  // empty = mosh-server's default
  auto check = [](std::string_view range) { return range.empty() ? Result<void>{} : CheckPortRange(range); };
  return ReadChecked(path, key, node, "port range", check, layer.mosh_ports);
}

Result<void> ReadPredict(const std::string& path, std::string_view key, const toml::node& node,
                         Profile::Layer& layer) {
  return ReadChecked(path, key, node, "prediction mode", CheckPredict, layer.predict);
}

Result<void> ReadHostKeyPolicy(const std::string& path, std::string_view key, const toml::node& node,
                               Profile::Layer& layer) {
  auto check = OneOf({"ask", "accept-new", "strict"}, "ask, accept-new or strict");
  return ReadChecked(path, key, node, "host-key policy", check, layer.host_key_policy);
}

Result<void> ReadTransport(const std::string& path, std::string_view key, const toml::node& node,
                           Profile::Layer& layer) {
  return ReadChecked(path, key, node, "transport", OneOf({"udp", "ssh", "auto"}, "udp, ssh or auto"), layer.transport);
}

// Port forwards: an array of "KIND SPEC" strings, each as ssh's -L, -R or -D takes it.
Result<void> ReadForward(const std::string& path, std::string_view key, const toml::node& node,
                         Profile::Layer& layer) {
  const auto* array = node.as_array();
  if (array == nullptr) {
    return FailAt(At(path, node.source()), "{} must be an array of forwards like [\"L 8080:localhost:80\"], not {}", key,
                  TypeName(node.type()));
  }
  std::vector<std::string> forwards;
  for (const toml::node& element : *array) {
    auto checked = GetChecked(path, key, element, "forward",
                              [](std::string_view entry) -> Result<void> {
                                auto forward = ParseProfileForward(entry);
                                if (!forward) return Fail(forward.error());
                                return {};
                              });
    if (!checked) return Fail(checked.error());
    forwards.push_back(std::move(*checked));
  }
  layer.forward = std::move(forwards);
  return {};
}

// OpenSSH's ControlPersist: a number of seconds (0: stay until stopped), "yes" (the same as 0)
// or "no" (exit as soon as the last client has gone).
Result<void> ReadPersist(const std::string& path, std::string_view key, const toml::node& node,
                         Profile::Layer& layer) {
  if (node.is_integer()) {
    auto seconds = GetSeconds(path, key, node);
    if (!seconds) return Fail(seconds.error());
    layer.persist_s = *seconds;
    return {};
  }
  const auto* word = node.as_string();
  if (word == nullptr) {
    return FailAt(At(path, node.source()), "{} must be a number of seconds, \"yes\" or \"no\", not {}", key,
                  TypeName(node.type()));
  }
  if (word->get() != "yes" && word->get() != "no") {
    return FailAt(At(path, node.source()), "{} \"{}\" is neither \"yes\" nor \"no\" (seconds are a number: {} = 600)",
                  key, word->get(), key);
  }
  layer.persist_s = word->get() == "yes" ? kPersistForever : kPersistNo;
  return {};
}

Result<void> ReadSocketDir(const std::string& path, std::string_view key, const toml::node& node,
                           Profile::Layer& layer) {
  auto dir = GetString(path, key, node);
  if (!dir) return Fail(dir.error());
  if (!dir->empty() && dir->front() != '/') {  // empty = the built-in choice
    return FailAt(At(path, node.source()), "{} \"{}\" is not an absolute path", key, *dir);
  }
  layer.socket_dir = std::move(*dir);
  return {};
}

// The keys a [defaults] or [host.X] table may hold. Keep in step with HostProfile, Profile::Layer,
// Merge() and contrib/config.toml.example.
constexpr KeySpec kKeys[] = {
    {"remote-ip", ReadRemoteIp},
    {"remote-ip-cache-ttl", Store<GetSeconds, &Profile::Layer::remote_ip_cache_ttl_s>},
    {"remote-ip-timeout", Store<GetPositiveSeconds, &Profile::Layer::remote_ip_timeout_s>},
    {"mosh-ports", ReadMoshPorts},
    {"predict", ReadPredict},
    {"server", Store<GetNonEmptyString, &Profile::Layer::server>},
    {"client", Store<GetNonEmptyString, &Profile::Layer::client>},
    {"persist", ReadPersist},
    {"keepalive", Store<GetSeconds, &Profile::Layer::keepalive_s>},
    {"socket-dir", ReadSocketDir},
    {"host-key-policy", ReadHostKeyPolicy},
    {"transport", ReadTransport},
    {"forward", ReadForward},
};

std::size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t substitution = diagonal + (a[i - 1] == b[j - 1] ? 0 : 1);
      diagonal = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, substitution});
    }
  }
  return row[b.size()];
}

// " (did you mean "remote-ip"?)" for a near miss among `known`, else "".
template <typename Names>
std::string Suggestion(std::string_view unknown, const Names& known) {
  std::string lowered(unknown);
  std::ranges::replace(lowered, '_', '-');
  std::ranges::transform(lowered, lowered.begin(), [](unsigned char c) { return std::tolower(c); });
  std::string_view best;
  std::size_t best_distance = 3;  // more than two edits away is not a typo
  for (std::string_view name : known) {
    const std::size_t distance = EditDistance(lowered, name);
    if (distance < best_distance) {
      best = name;
      best_distance = distance;
    }
  }
  return best.empty() ? std::string() : fmt::format(" (did you mean \"{}\"?)", best);
}

// Reads one [defaults] or [host.X] table; `table_name` is how the user wrote its header.
Result<Profile::Layer> ReadLayer(const std::string& path, std::string_view table_name, const toml::table& table) {
  Profile::Layer layer;
  for (const auto& [key, node] : table) {
    const auto* spec = std::ranges::find(kKeys, key.str(), &KeySpec::name);
    if (spec == std::end(kKeys)) {
      std::vector<std::string_view> names;
      for (const KeySpec& known : kKeys) names.push_back(known.name);
      return FailAt(At(path, key.source()), "unknown key \"{}\" in [{}]{}", key.str(), table_name,
                    Suggestion(key.str(), names));
    }
    if (auto ok = spec->read(path, key.str(), node, layer); !ok) return Fail(ok.error());
  }
  return layer;
}

// `host.PATTERN` as TOML would need it written: bare when it can be, quoted otherwise.
std::string HostTableName(std::string_view pattern) {
  const bool bare = !pattern.empty() && std::ranges::all_of(pattern, [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '_';
  });
  return bare ? fmt::format("host.{}", pattern) : fmt::format("host.\"{}\"", pattern);
}

Result<Profile> ReadProfile(const std::string& path, const toml::table& root) {
  Profile::Layer defaults;
  // Host tables with their position, to put them back in file order (toml::table is sorted by key).
  std::vector<std::tuple<toml::source_position, Profile::HostTable>> hosts;
  for (const auto& [key, node] : root) {
    if (key.str() == "defaults") {
      const auto* table = node.as_table();
      if (table == nullptr) {
        return FailAt(At(path, key.source()), "defaults must be a table ([defaults]), not {}", TypeName(node.type()));
      }
      auto layer = ReadLayer(path, "defaults", *table);
      if (!layer) return Fail(layer.error());
      defaults = std::move(*layer);
    } else if (key.str() == "host") {
      const auto* table = node.as_table();
      if (table == nullptr) {
        return FailAt(At(path, key.source()), "host must hold [host.NAME] tables, not {}", TypeName(node.type()));
      }
      for (const auto& [pattern, host_node] : *table) {
        const std::string name = HostTableName(pattern.str());
        const auto* host_table = host_node.as_table();
        if (host_table == nullptr) {
          return FailAt(At(path, pattern.source()), "{} must be a table ([{}]), not {}", name, name,
                        TypeName(host_node.type()));
        }
        if (pattern.str().empty()) return FailAt(At(path, pattern.source()), "{} has an empty host pattern", name);
        auto layer = ReadLayer(path, name, *host_table);
        if (!layer) return Fail(layer.error());
        hosts.emplace_back(host_table->source().begin, Profile::HostTable{std::string(pattern.str()), std::move(*layer)});
      }
    } else {
      return FailAt(At(path, key.source()), "unknown key \"{}\"; the profile holds [defaults] and [host.NAME] tables{}",
                    key.str(), Suggestion(key.str(), std::vector<std::string_view>{"defaults", "host"}));
    }
  }
  std::ranges::stable_sort(hosts, [](const auto& a, const auto& b) {
    const toml::source_position& pa = std::get<0>(a);
    const toml::source_position& pb = std::get<0>(b);
    return std::tie(pa.line, pa.column) < std::tie(pb.line, pb.column);
  });
  std::vector<Profile::HostTable> ordered;
  for (auto& [position, table] : hosts) ordered.push_back(std::move(table));
  return Profile(path, std::move(defaults), std::move(ordered));
}

enum class ReadStatus { kRead, kMissing };

Result<ReadStatus> ReadSmallFile(const std::string& path, std::string& contents) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd) {
    if (errno == ENOENT) return ReadStatus::kMissing;
    return Fail("{}: cannot open: {}", path, std::strerror(errno));
  }
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) return Fail("{}: cannot stat: {}", path, std::strerror(errno));
  if (!S_ISREG(info.st_mode)) return Fail("{}: not a regular file", path);
  if (static_cast<std::size_t>(info.st_size) > kMaxProfileBytes) {
    return Fail("{}: larger than {} bytes; not a profile", path, kMaxProfileBytes);
  }
  contents.clear();
  char buffer[8192];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Fail("{}: cannot read: {}", path, std::strerror(errno));
    if (n == 0) break;
    contents.append(buffer, static_cast<std::size_t>(n));
    if (contents.size() > kMaxProfileBytes) return Fail("{}: larger than {} bytes; not a profile", path, kMaxProfileBytes);
  }
  return ReadStatus::kRead;
}

template <typename T>
void Merge(const std::optional<T>& from, T& into) {
  if (from) into = *from;
}

void Merge(const Profile::Layer& layer, HostProfile& host) {
  Merge(layer.remote_ip, host.remote_ip);
  Merge(layer.remote_ip_cache_ttl_s, host.remote_ip_cache_ttl_s);
  Merge(layer.remote_ip_timeout_s, host.remote_ip_timeout_s);
  Merge(layer.mosh_ports, host.mosh_ports);
  Merge(layer.predict, host.predict);
  Merge(layer.server, host.server);
  Merge(layer.client, host.client);
  Merge(layer.persist_s, host.persist_s);
  Merge(layer.keepalive_s, host.keepalive_s);
  Merge(layer.socket_dir, host.socket_dir);
  Merge(layer.host_key_policy, host.host_key_policy);
  Merge(layer.transport, host.transport);
  Merge(layer.forward, host.forward);
}

}  // namespace

HostProfile Profile::ForHost(std::string_view host_alias) const {
  HostProfile host;
  Merge(defaults_, host);
  const std::string alias(host_alias);
  for (const HostTable& table : hosts_) {
    if (::fnmatch(table.pattern.c_str(), alias.c_str(), FNM_CASEFOLD) == 0) Merge(table.settings, host);
  }
  return host;
}

Result<Profile> LoadProfile(const std::string& path, MissingProfile if_missing) {
  std::string contents;
  auto status = ReadSmallFile(path, contents);
  if (!status) return Fail(status.error());
  if (*status == ReadStatus::kMissing) {
    if (if_missing == MissingProfile::kFail) return Fail("{}: no such file", path);
    return Profile();
  }
  return ParseProfile(contents, path);
}

Result<Profile> ParseProfile(std::string_view contents, const std::string& path) {
  try {
    const toml::table root = toml::parse(contents, path);
    return ReadProfile(path, root);
  } catch (const toml::parse_error& error) {
    return FailAt(Where{path, static_cast<int>(error.source().begin.line)}, "{}", error.description());
  }
}

std::string DefaultProfilePath() {
  const char* config_home = std::getenv("XDG_CONFIG_HOME");
  if (config_home != nullptr && config_home[0] == '/') return fmt::format("{}/mconnect/config.toml", config_home);
  std::string home;
  if (const char* env_home = std::getenv("HOME"); env_home != nullptr && env_home[0] != '\0') {
    home = env_home;
  } else {
    std::vector<char> buffer(16384);
    struct passwd entry {};
    struct passwd* found = nullptr;
    if (::getpwuid_r(::getuid(), &entry, buffer.data(), buffer.size(), &found) == 0 && found != nullptr) {
      home = found->pw_dir;
    }
  }
  return fmt::format("{}/.config/mconnect/config.toml", home);
}

void ApplyProfile(Options& options, const HostProfile& host) {
  if (!options.explicitly_set.client) options.client = host.client;
  if (!options.explicitly_set.server) options.server = host.server;
  if (!options.explicitly_set.predict) options.predict = host.predict;
  if (!options.explicitly_set.port_range) options.port_range = host.mosh_ports;
  if (!options.explicitly_set.remote_ip) options.remote_ip = host.remote_ip;
  if (!options.persist_s) options.persist_s = host.persist_s;
  if (!options.explicitly_set.transport) options.transport = host.transport;
}

}  // namespace mconnect::launcher
