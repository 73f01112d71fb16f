#include "mux/ssh/host_key.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>

#include <fmt/format.h>
#include <openssl/evp.h>

#include "base/log.h"
#include "base/ssh2.h"
#include "base/subprocess.h"
#include "base/terminal.h"
#include "base/unique_fd.h"
#include "mux/ssh/prompt.h"

namespace mconnect::mux {
namespace {

struct KeyType {
  int session_type;        // LIBSSH2_HOSTKEY_TYPE_*
  int known_host_type;     // LIBSSH2_KNOWNHOST_KEY_*
  const char* name;        // as in known_hosts
  const char* label;       // as OpenSSH prints it
  const char* methods;     // libssh2 host-key method names for this type
};

constexpr KeyType kKeyTypes[] = {
    {LIBSSH2_HOSTKEY_TYPE_ED25519, LIBSSH2_KNOWNHOST_KEY_ED25519, "ssh-ed25519", "ED25519", "ssh-ed25519"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_256, LIBSSH2_KNOWNHOST_KEY_ECDSA_256, "ecdsa-sha2-nistp256", "ECDSA",
     "ecdsa-sha2-nistp256"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_384, LIBSSH2_KNOWNHOST_KEY_ECDSA_384, "ecdsa-sha2-nistp384", "ECDSA",
     "ecdsa-sha2-nistp384"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_521, LIBSSH2_KNOWNHOST_KEY_ECDSA_521, "ecdsa-sha2-nistp521", "ECDSA",
     "ecdsa-sha2-nistp521"},
    {LIBSSH2_HOSTKEY_TYPE_RSA, LIBSSH2_KNOWNHOST_KEY_SSHRSA, "ssh-rsa", "RSA", "rsa-sha2-512,rsa-sha2-256"},
};

const KeyType* FindKeyType(int session_type) {
  for (const auto& type : kKeyTypes) {
    if (type.session_type == session_type) return &type;
  }
  return nullptr;
}

std::string Base64(const unsigned char* data, std::size_t length, bool pad) {
  std::string out(4 * ((length + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(length));
  out.resize(static_cast<std::size_t>(n));
  while (!pad && !out.empty() && out.back() == '=') out.pop_back();
  return out;
}

std::string Fingerprint(LIBSSH2_SESSION* session) {
  const char* hash = libssh2_hostkey_hash(session, LIBSSH2_HOSTKEY_HASH_SHA256);
  if (hash == nullptr) return "(unavailable)";
  return "SHA256:" + Base64(reinterpret_cast<const unsigned char*>(hash), 32, false);
}

// Asks on the controlling terminal, as OpenSSH does; no terminal means no.
bool AskOnTerminal(const std::string& question, const std::string& fingerprint) {
  int fd = ::open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return false;
  Asking asking;
  FILE* tty = ::fdopen(fd, "r+");
  if (tty == nullptr) {
    ::close(fd);
    return false;
  }
  bool accepted = false;
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::fputs(question.c_str(), tty);
    std::fflush(tty);
    char line[256];
    if (std::fgets(line, sizeof line, tty) == nullptr) break;
    std::string answer(line);
    while (!answer.empty() && (answer.back() == '\n' || answer.back() == '\r')) answer.pop_back();
    if (answer == "yes" || answer == fingerprint) {
      accepted = true;
      break;
    }
    if (answer == "no") break;
    std::fputs("Please type 'yes', 'no' or the fingerprint: ", tty);
    std::fflush(tty);
  }
  std::fclose(tty);
  return accepted;
}

// A known_hosts file can be large (one line per host of a site), not endless (/dev/zero).
constexpr std::size_t kMaxKnownHostsBytes = 64 << 20;

// The whole text of a known_hosts file; nothing when it does not exist (ssh reads that as empty);
// an error naming the file and why when it exists but cannot be read. O_NONBLOCK: a FIFO put
// there reads as empty instead of blocking the attempt until its deadline.
Result<std::optional<std::string>> ReadKnownHostsFile(const std::string& file) {
  UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!fd) {
    if (errno == ENOENT) return std::nullopt;
    return Fail("cannot read known_hosts file {}: {}", file, std::strerror(errno));
  }
  auto text = ReadToEnd(fd.get(), kMaxKnownHostsBytes);
  if (!text) return Fail("cannot read known_hosts file {}: {}", file, text.error().message);
  return std::move(*text);
}

// Adds every line of `text` that libssh2 understands. A line it does not (a @cert-authority
// marker, a key type it lacks) is skipped, as OpenSSH skips what it cannot parse; libssh2's own
// readfile would stop there and lose every host below it. Returns how many were skipped.
int AddKnownHosts(LIBSSH2_KNOWNHOSTS* hosts, const std::string& text) {
  int skipped = 0;
  std::size_t at = 0;
  while (at < text.size()) {
    std::size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    // readline reads one byte past the length it is given: a std::string's terminator.
    const std::string line = text.substr(at, end - at);
    if (libssh2_knownhost_readline(hosts, line.c_str(), line.size(), LIBSSH2_KNOWNHOST_FILE_OPENSSH) != 0) ++skipped;
    at = end + 1;
  }
  return skipped;
}

Result<void> AppendKnownHost(const std::string& file, const std::string& line) {
  std::ofstream out(file, std::ios::app);
  if (!out) return Fail("cannot write host key to {}", file);
  out << line << '\n';
  if (!out.flush()) return Fail("cannot write host key to {}", file);
  return {};
}

// Adds every readable file of `files` to `hosts`; what could not be read, one message a file. A
// file that cannot be read matters only if the key is not found in the others: then it might
// have been in it.
std::vector<std::string> LoadKnownHosts(LIBSSH2_KNOWNHOSTS* hosts, const std::vector<std::string>& files) {
  std::vector<std::string> unreadable;
  for (const auto& file : files) {
    auto text = ReadKnownHostsFile(file);
    if (!text) {
      unreadable.push_back(std::move(text.error().message));
      continue;
    }
    if (!*text) continue;
    if (int skipped = AddKnownHosts(hosts, **text); skipped > 0) {
      log::Warn("{}: {} line(s) not understood, skipped", file, skipped);
    }
  }
  return unreadable;
}

// OpenSSH's warning for a changed host key, word for word: users know it and search for it.
void WarnKeyChanged(const HostKeyCheck& check, const KeyType& type, const std::string& name,
                    const std::string& fingerprint) {
  term::HideProgress();
  std::string file = check.known_hosts_files.empty() ? "known_hosts" : check.known_hosts_files.front();
  std::fprintf(stderr,
               "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
               "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n"
               "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
               "IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\n"
               "Someone could be eavesdropping on you right now (man-in-the-middle attack)!\n"
               "It is also possible that a host key has just been changed.\n"
               "The fingerprint for the %s key sent by the remote host is\n%s.\n"
               "Remove the old key with: ssh-keygen -f '%s' -R '%s'\n",
               type.label, fingerprint.c_str(), file.c_str(), name.c_str());
}

// Whether `policy` takes a host key no known_hosts file knows: strict never does, ask does when
// the user says so on the terminal, accept-new always does.
Result<void> AcceptUnknownKey(HostKeyPolicy policy, const KeyType& type, const std::string& name,
                              const std::string& fingerprint) {
  switch (policy) {
    case HostKeyPolicy::kStrict:
      return Fail("no {} host key is known for {} and strict checking is on (host key verification failed)",
                  type.label, name);
    case HostKeyPolicy::kAsk: {
      std::string question = fmt::format(
          "The authenticity of host '{}' can't be established.\n{} key fingerprint is {}.\n"
          "This key is not known by any other names.\n"
          "Are you sure you want to continue connecting (yes/no/[fingerprint])? ",
          name, type.label, fingerprint);
      if (!AskOnTerminal(question, fingerprint)) {
        return Fail("host key for {} is not known and was not accepted (host key verification failed)", name);
      }
      return {};
    }
    case HostKeyPolicy::kAcceptNew:
      return {};
  }
  return {};
}

}  // namespace

Result<HostKeyPolicy> ParseHostKeyPolicy(std::string_view value) {
  if (value == "yes" || value == "true" || value == "strict") return HostKeyPolicy::kStrict;
  if (value == "accept-new" || value == "no" || value == "false" || value == "off") return HostKeyPolicy::kAcceptNew;
  if (value == "ask" || value.empty()) return HostKeyPolicy::kAsk;
  return Fail("unknown host-key policy \"{}\" (yes, accept-new, ask or no)", value);
}

std::string KnownHostsName(const HostKeyCheck& check) {
  if (check.port < 0 || check.port == 22) return check.host;
  return fmt::format("[{}]:{}", check.host, check.port);
}

std::string PreferredHostKeyMethods(const HostKeyCheck& check) {
  std::vector<std::string> known;
  for (const auto& file : check.known_hosts_files) {
    if (::access(file.c_str(), R_OK) != 0) continue;
    CommandOptions options;
    options.timeout = std::chrono::seconds(5);
    auto found = RunCommand({"ssh-keygen", "-F", KnownHostsName(check), "-f", file}, options);
    if (!found || !found->ok()) continue;
    std::istringstream lines(found->out);
    for (std::string line; std::getline(lines, line);) {
      if (line.empty() || line[0] == '#') continue;
      std::istringstream words(line);
      std::string host, type;
      words >> host >> type;
      for (const auto& key_type : kKeyTypes) {
        if (type == key_type.name) known.push_back(key_type.methods);
      }
    }
  }
  std::string methods;
  auto add = [&methods](const std::string& names) {
    if (methods.find(names) != std::string::npos) return;
    if (!methods.empty()) methods += ",";
    methods += names;
  };
  for (const auto& names : known) add(names);
  for (const auto& type : kKeyTypes) add(type.methods);
  return methods;
}

std::expected<void, HostKeyError> VerifyHostKey(LIBSSH2_SESSION* session, const HostKeyCheck& check) {
  auto refused = [](std::string message) { return std::unexpected(HostKeyError{std::move(message)}); };
  std::size_t key_length = 0;
  int session_type = 0;
  const char* key = libssh2_session_hostkey(session, &key_length, &session_type);
  const KeyType* type = FindKeyType(session_type);
  if (key == nullptr || type == nullptr) return refused("the server offered no usable host key");

  Ssh2KnownHosts hosts(libssh2_knownhost_init(session));
  if (!hosts) return refused("cannot initialise known-hosts checking");
  const std::vector<std::string> unreadable = LoadKnownHosts(hosts.get(), check.known_hosts_files);
  const std::string name = KnownHostsName(check);
  const std::string fingerprint = Fingerprint(session);
  int result = libssh2_knownhost_checkp(
      hosts.get(), check.host.c_str(), check.port, key, key_length,
      LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | type->known_host_type, nullptr);
  switch (result) {
    case LIBSSH2_KNOWNHOST_CHECK_MATCH:
      log::Info("host key for {} matches known_hosts ({} {})", name, type->label, fingerprint);
      for (const auto& why : unreadable) log::Info("{} (the others sufficed)", why);
      return {};
    case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
      WarnKeyChanged(check, *type, name, fingerprint);
      return refused(
          fmt::format("host key for {} has changed; refusing to connect (host key verification failed)", name));
    case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
      break;
    default:
      return refused(fmt::format("cannot check the host key of {}: {}", name, Ssh2LastError(session)));
  }
  if (!unreadable.empty()) {
    return std::unexpected(HostKeyError{
        fmt::format("{} (so the {} host key of {} cannot be checked)", unreadable.front(), type->label, name),
        HostKeyFailure::kUnreadable});
  }

  if (auto accepted = AcceptUnknownKey(check.policy, *type, name, fingerprint); !accepted) {
    return refused(std::move(accepted.error().message));
  }
  if (check.known_hosts_files.empty()) {
    return refused(fmt::format("no known_hosts file to record the key of {} in", name));
  }
  const std::string& file = check.known_hosts_files.front();
  auto written = AppendKnownHost(
      file, fmt::format("{} {} {}", name, type->name, Base64(reinterpret_cast<const unsigned char*>(key), key_length, true)));
  if (!written) return refused(std::move(written.error().message));
  term::HideProgress();
  std::fprintf(stderr, "Warning: Permanently added '%s' (%s) to the list of known hosts.\n", name.c_str(),
               type->label);
  return {};
}

}  // namespace mconnect::mux
