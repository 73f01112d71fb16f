#include "launcher/ssh_g_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <openssl/evp.h>

#include "base/unique_fd.h"

namespace mconnect::launcher {
namespace {

constexpr std::string_view kMagic = "mconnect-ssh-G 1";
constexpr std::size_t kMaxEntry = 1 << 20;   // ssh -G prints about 4 KiB
constexpr std::size_t kMaxConfig = 1 << 20;  // a config file larger than this is not scanned: no entry
constexpr std::string_view kReading = "debug1: Reading configuration data ";
// A file whose ctime is later than this before ssh started may have changed while or after ssh
// read it (the kernel's file times come from a clock that lags by up to a tick).
constexpr auto kClockSlack = std::chrono::milliseconds(20);

std::string Hex(std::string_view bytes) {
  std::string hex;
  hex.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) hex += fmt::format("{:02x}", c);
  return hex;
}

// A field of an entry: hex, or "-" for nothing (so that every line has its three words).
std::string Field(std::string_view bytes) { return bytes.empty() ? "-" : Hex(bytes); }

std::optional<std::string> Unhex(std::string_view hex) {
  if (hex == "-") return std::string();
  if (hex.size() % 2 != 0) return std::nullopt;
  std::string bytes;
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    unsigned value = 0;
    for (char c : hex.substr(i, 2)) {
      const int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (digit < 0) return std::nullopt;
      value = value * 16 + static_cast<unsigned>(digit);
    }
    bytes += static_cast<char>(value);
  }
  return bytes;
}

std::string EntryName(std::string_view ssh_command, std::string_view host) {
  std::string text = fmt::format("{}{}{}", ssh_command, '\0', host);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned length = 0;
  EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha256(), nullptr);
  return Hex(std::string_view(reinterpret_cast<const char*>(digest), std::min(length, 16u)));
}

// One thing an answer depends on, as it was when ssh read it: "stat" (a file or directory, by
// device, inode, size, mtime and ctime), "absent" (nothing at that path), "env" (a variable's
// value, or unset), "host" (the local host name), "program" (the ssh that PATH finds).
struct Stamp {
  std::string kind;
  std::string name;
  std::string value;  // the fields compared, as text
  bool operator==(const Stamp&) const = default;
};

std::int64_t Nanoseconds(const timespec& t) { return static_cast<std::int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec; }

Stamp StatStamp(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return {"absent", path, ""};
  return {"stat", path,
          fmt::format("{} {} {} {} {} {:o}", st.st_dev, st.st_ino, st.st_size, Nanoseconds(st.st_mtim),
                      Nanoseconds(st.st_ctim), st.st_mode)};
}

Stamp EnvStamp(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  return {"env", name, value ? "=" + std::string(value) : ""};
}

Stamp HostStamp() {
  char name[256] = {};
  ::gethostname(name, sizeof name - 1);
  return {"host", "", name};
}

std::vector<std::string_view> Words(std::string_view text) {
  std::vector<std::string_view> words;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
    const std::size_t start = i;
    while (i < text.size() && text[i] != ' ' && text[i] != '\t') ++i;
    if (i > start) words.push_back(text.substr(start, i - start));
  }
  return words;
}

// The ssh the shell would run for the command's first word.
std::optional<std::string> FindProgram(std::string_view word) {
  if (word.find('/') != std::string_view::npos) return std::string(word);
  const char* path = std::getenv("PATH");
  std::string_view dirs = path ? path : "/usr/bin:/bin";
  while (true) {
    const std::size_t colon = dirs.find(':');
    std::string dir(dirs.substr(0, colon));
    std::string candidate = (dir.empty() ? "." : dir) + "/" + std::string(word);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    if (colon == std::string_view::npos) return std::nullopt;
    dirs.remove_prefix(colon + 1);
  }
}

std::string Lower(std::string_view text) {
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  return lower;
}

std::string Home() {
  const char* home = std::getenv("HOME");
  return home ? home : "";
}

// What one config file adds to the stamps: the directories of its Include patterns and the
// variables it expands. False when the file makes the answer depend on more than files.
bool ScanConfig(std::string_view text, std::vector<Stamp>& stamps, std::set<std::string>& variables) {
  std::istringstream lines{std::string(text)};
  for (std::string line; std::getline(lines, line);) {
    for (std::size_t at = line.find("${"); at != std::string::npos; at = line.find("${", at + 2)) {
      const std::size_t end = line.find('}', at);
      if (end != std::string::npos) variables.insert(line.substr(at + 2, end - at - 2));
    }
    std::string flat = line;
    std::replace(flat.begin(), flat.end(), '=', ' ');
    auto words = Words(flat);
    if (words.empty()) continue;
    const std::string keyword = Lower(words.front());
    if (keyword == "match") {
      for (auto word : words) {
        const std::string criterion = Lower(word);
        if (criterion == "exec" || criterion == "localnetwork" || criterion == "!exec") return false;
      }
    } else if (keyword == "canonicalizehostname") {
      if (words.size() < 2 || (Lower(words[1]) != "no" && Lower(words[1]) != "false")) return false;
    } else if (keyword == "include") {
      for (std::size_t i = 1; i < words.size(); ++i) {
        std::string pattern(words[i]);
        if (pattern.find('"') != std::string::npos) return false;
        if (pattern.starts_with("~/")) pattern = Home() + pattern.substr(1);
        const std::size_t slash = pattern.rfind('/');
        const std::string dir = slash == std::string::npos ? "" : pattern.substr(0, slash);
        if (dir.find_first_of("*?[") != std::string::npos) return false;
        // Relative: under ~/.ssh for a user's file, /etc/ssh for the system's; both are watched.
        for (const std::string& base : pattern.starts_with("/") ? std::vector<std::string>{""}
                                                                : std::vector<std::string>{Home() + "/.ssh/",
                                                                                           "/etc/ssh/"}) {
          stamps.push_back(StatStamp(base + dir + (dir.empty() ? "" : "/")));
          stamps.push_back(StatStamp(base + pattern));
        }
      }
    }
  }
  return true;
}

bool Current(const Stamp& kept) {
  if (kept.kind == "stat" || kept.kind == "absent") return StatStamp(kept.name) == kept;
  if (kept.kind == "env") return EnvStamp(kept.name) == kept;
  if (kept.kind == "host") return HostStamp() == kept;
  if (kept.kind == "program") {
    auto found = FindProgram(kept.name);
    return found && *found == kept.value;
  }
  return false;
}

std::string Serialize(std::string_view ssh_command, std::string_view host, const std::vector<Stamp>& stamps,
                      std::string_view output) {
  std::string text = fmt::format("{}\nquery {} {}\n", kMagic, Hex(ssh_command), Hex(host));
  for (const Stamp& stamp : stamps) text += fmt::format("{} {} {}\n", stamp.kind, Field(stamp.name), Field(stamp.value));
  text += fmt::format("output {}\n", output.size());
  text += output;
  return text;
}

bool ReadFile(const std::string& path, std::size_t limit, std::string& contents) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  contents.assign(std::istreambuf_iterator<char>(in), {});
  return contents.size() <= limit;
}

}  // namespace

bool SshCommandCacheable(std::string_view ssh_command) {
  for (char c : ssh_command) {
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       std::string_view("_./=,:@+-% ").find(c) != std::string_view::npos;
    if (!plain) return false;
  }
  auto words = Words(ssh_command);
  if (words.empty()) return true;  // the default, "ssh"
  return words.front() == "ssh" || (words.front().starts_with("/") && words.front().ends_with("/ssh"));
}

std::vector<std::string> ConfigFilesRead(std::string_view verbose_stderr) {
  std::vector<std::string> files;
  std::istringstream lines{std::string(verbose_stderr)};
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.starts_with(kReading)) continue;
    std::string file = line.substr(kReading.size());
    if (std::find(files.begin(), files.end(), file) == files.end()) files.push_back(std::move(file));
  }
  return files;
}

std::optional<std::string> SshGCache::Find(std::string_view ssh_command, std::string_view host) const {
  std::string entry;
  if (!ReadFile(directory_ + "/" + EntryName(ssh_command, host), kMaxEntry + 4096, entry)) return std::nullopt;
  std::istringstream in(entry);
  std::string line;
  if (!std::getline(in, line) || line != kMagic) return std::nullopt;
  if (!std::getline(in, line) || line != fmt::format("query {} {}", Hex(ssh_command), Hex(host))) return std::nullopt;
  while (std::getline(in, line)) {
    auto words = Words(line);
    if (words.size() == 2 && words[0] == "output") {
      std::size_t size = 0;
      if (std::sscanf(std::string(words[1]).c_str(), "%zu", &size) != 1 || size > kMaxEntry) return std::nullopt;
      const auto offset = static_cast<std::size_t>(in.tellg());
      if (entry.size() - offset != size) return std::nullopt;
      return entry.substr(offset);
    }
    if (words.size() != 3) return std::nullopt;
    auto name = Unhex(words[1]);
    auto value = Unhex(words[2]);
    if (!name || !value || !Current(Stamp{std::string(words[0]), *name, *value})) return std::nullopt;
  }
  return std::nullopt;
}

bool SshGCache::Keep(std::string_view ssh_command, std::string_view host, std::string_view output,
                     std::string_view verbose_stderr, std::chrono::system_clock::time_point started) const {
  if (!SshCommandCacheable(ssh_command) || output.size() > kMaxEntry) return false;
  auto words = Words(ssh_command);
  auto program = FindProgram(words.empty() ? "ssh" : words.front());
  if (!program) return false;
  std::vector<Stamp> stamps{{"program", std::string(words.empty() ? "ssh" : words.front()), *program},
                            StatStamp(*program), HostStamp()};
  std::set<std::string> variables{"HOME", "USER", "LOGNAME", "SSH_AUTH_SOCK"};
  // The files ssh reads when they are there: if one appears, the answer changes.
  for (const std::string& file : {Home() + "/.ssh/config", std::string("/etc/ssh/ssh_config")}) {
    stamps.push_back(StatStamp(file));
  }
  const auto settled = started - kClockSlack;
  for (const std::string& file : ConfigFilesRead(verbose_stderr)) {
    std::string text;
    if (!ReadFile(file, kMaxConfig, text)) return false;
    stamps.push_back(StatStamp(file));
    struct stat st{};
    if (::stat(file.c_str(), &st) != 0) return false;
    const std::chrono::system_clock::time_point changed{
        std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::nanoseconds(Nanoseconds(st.st_ctim)))};
    if (changed > settled) return false;
    if (!ScanConfig(text, stamps, variables)) return false;
  }
  for (const std::string& name : variables) stamps.push_back(EnvStamp(name));

  const std::string path = directory_ + "/" + EntryName(ssh_command, host);
  std::string temporary = path + ".XXXXXX";
  UniqueFd fd(::mkostemp(temporary.data(), O_CLOEXEC));
  if (!fd) return false;
  const std::string text = Serialize(ssh_command, host, stamps, output);
  bool written = ::fchmod(fd.get(), 0600) == 0;
  for (std::size_t done = 0; written && done < text.size();) {
    const ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
    written = n > 0;
    if (written) done += static_cast<std::size_t>(n);
  }
  if (!written || ::rename(temporary.c_str(), path.c_str()) != 0) {
    ::unlink(temporary.c_str());
    return false;
  }
  return true;
}

}  // namespace mconnect::launcher
