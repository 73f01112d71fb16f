#include "proto/socket_path.h"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string_view>

#include <fmt/format.h>
#include <openssl/evp.h>

namespace mconnect::proto {
namespace {

std::string HashName(const std::string& text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned length = 0;
  EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha256(), nullptr);
  std::string hex;
  for (unsigned i = 0; i < 10 && i < length; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

std::string StripSuffix(const std::string& path, std::string_view suffix) {
  if (path.size() >= suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0) {
    return path.substr(0, path.size() - suffix.size());
  }
  return path;
}

// Who can swap the socket directory (rename ours away, put theirs in its place, and so be
// handed every `ssh -S` client's terminal) is whoever can change an entry of a directory on the
// way to it: its owner, root, and anyone with write permission there, unless the directory is
// sticky, which leaves renaming an entry to the entry's owner, the directory's owner and root.
// So, as OpenSSH's safe_path and tmux require: every directory from `/` down to the socket
// directory's parent belongs to root or to us, and nobody else may write to it unless it is
// sticky. A symbolic link on the way is followed: the link can be replaced by whoever may change
// the directory holding it (checked before it) or, in a sticky one, by its owner (so it must
// belong to root or us too), and every directory on its target's real path is checked as well
// (/var/run -> /run passes because /, /var, the link's owner root and /run all do).
class AncestorCheck {
 public:
  AncestorCheck(std::string directory, std::string hint) : directory_(std::move(directory)), hint_(std::move(hint)) {}

  // The first unsafe directory, in one line: path, owner, mode, why and what to do.
  Result<void> Run() {
    std::string current;  // the real path reached so far: it and everything above it checked
    if (directory_.starts_with('/')) {
      current = "/";
    } else {
      char cwd[PATH_MAX];
      if (::getcwd(cwd, sizeof cwd) == nullptr) return CannotCheck(".");
      current = cwd;
    }
    if (auto safe = CheckRealPath(current); !safe) return safe;
    std::vector<std::string> names;
    for (std::size_t at = 0; at <= directory_.size();) {
      const std::size_t end = std::min(directory_.find('/', at), directory_.size());
      std::string name = directory_.substr(at, end - at);
      if (!name.empty() && name != ".") names.push_back(std::move(name));
      at = end + 1;
    }
    if (!names.empty()) names.pop_back();  // the directory itself: its caller's own, stricter check
    for (const auto& name : names) {
      if (name == "..") {
        current = Parent(current);  // above `current`: checked already
        continue;
      }
      const std::string next = current == "/" ? "/" + name : current + "/" + name;
      struct stat st{};
      if (::lstat(next.c_str(), &st) != 0) return CannotCheck(next);
      if (!S_ISLNK(st.st_mode)) {
        if (auto safe = CheckDirectory(next, st); !safe) return safe;
        current = next;
        continue;
      }
      if (st.st_uid != 0 && st.st_uid != ::getuid()) {
        return Refuse(next, st, "is a symbolic link of another user, who could point it elsewhere; " + hint_);
      }
      char target[PATH_MAX];
      if (::realpath(next.c_str(), target) == nullptr) return CannotCheck(next);
      current = target;
      if (auto safe = CheckRealPath(current); !safe) return safe;
    }
    return {};
  }

 private:
  static std::string Parent(const std::string& path) {
    const auto slash = path.rfind('/');
    return slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
  }

  // `path` is absolute and free of symbolic links (getcwd's or realpath's answer): /, then each
  // directory down to it.
  Result<void> CheckRealPath(const std::string& path) {
    for (std::size_t end = 0;;) {
      const std::string prefix = end == 0 ? "/" : path.substr(0, end);
      if (checked_.insert(prefix).second) {
        struct stat st{};
        if (::lstat(prefix.c_str(), &st) != 0) return CannotCheck(prefix);
        if (auto safe = CheckDirectory(prefix, st); !safe) return safe;
      }
      if (end >= path.size()) return {};
      end = std::min(path.find('/', end + 1), path.size());
    }
  }

  Result<void> CheckDirectory(const std::string& path, const struct stat& st) {
    if (!S_ISDIR(st.st_mode)) return Refuse(path, st, "is not a directory");
    if (st.st_uid != 0 && st.st_uid != ::getuid()) {
      return Refuse(path, st, "belongs to another user, who could replace what is in it; " + hint_);
    }
    if ((st.st_mode & 022) != 0 && (st.st_mode & S_ISVTX) == 0) {
      return Refuse(path, st,
                    fmt::format("can be written to by other users, who could replace what is in it (it is not "
                                "sticky); fix it with: chmod go-w {}, or {}",
                                path, hint_));
    }
    return {};
  }

  std::unexpected<Error> Refuse(const std::string& path, const struct stat& st, std::string_view why) const {
    return Fail("socket directory {} is not safe: {} (owner uid {}, mode {:04o}) {}", directory_, path, st.st_uid,
                st.st_mode & 07777, why);
  }
  std::unexpected<Error> CannotCheck(const std::string& path) const {
    return Fail("socket directory {}: cannot check {}: {}", directory_, path, std::strerror(errno));
  }

  std::string directory_;
  std::string hint_;
  std::set<std::string> checked_;
};

}  // namespace

std::string DefaultRuntimeDir() {
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  struct stat st{};
  // After `su` (or `sudo -E`) XDG_RUNTIME_DIR is still the user's: a directory made in it would
  // belong to this uid and lock the user out of their own.
  if (runtime != nullptr && runtime[0] == '/' && ::stat(runtime, &st) == 0 && S_ISDIR(st.st_mode) &&
      st.st_uid == ::getuid()) {
    return std::string(runtime) + "/mconnect";
  }
  return fmt::format("/tmp/mconnect-{}", ::getuid());
}

MasterPaths PathsFor(const std::string& directory, const std::string& user, const std::string& host, int port) {
  std::string dir = directory.empty() ? DefaultRuntimeDir() : directory;
  std::string name = fmt::format("{}@{}:{}", user, host, port);
  bool safe = std::none_of(name.begin(), name.end(), [](char c) { return c == '/' || c < ' '; });
  // Leave room for the ".sock" suffix and the temporary name used while publishing.
  if (!safe || dir.size() + name.size() + 16 >= sizeof(sockaddr_un{}.sun_path)) name = "h-" + HashName(name);
  return PathsForSocket(dir + "/" + name + ".sock");
}

MasterPaths PathsForSocket(const std::string& socket_path) {
  const std::string runtime = DefaultRuntimeDir();
  const auto slash = socket_path.rfind('/');
  const std::string directory = slash == std::string::npos ? "." : socket_path.substr(0, slash);
  const std::string name = StripSuffix(socket_path.substr(slash == std::string::npos ? 0 : slash + 1), ".sock");
  // In the runtime directory a socket's own name says which master it is; elsewhere (a user's
  // ControlPath, in ~/.ssh or /tmp) the rest must not go beside it, and the name alone could be
  // another directory's: the path's hash.
  const std::string base = runtime + "/" + (directory == runtime ? name : "h-" + HashName(socket_path));
  return {socket_path, base + ".lock", base + ".master", base + ".log", base + ".transport"};
}

Result<void> EnsurePrivateDirectory(const std::string& directory) {
  // Before anything is made there.
  AncestorCheck ancestors(directory, "set XDG_RUNTIME_DIR (or the profile's socket_dir) to a private directory");
  if (auto safe = ancestors.Run(); !safe) return safe;
  if (::mkdir(directory.c_str(), 0700) != 0 && errno != EEXIST) {
    return Fail("cannot create socket directory {}: {}", directory, std::strerror(errno));
  }
  struct stat st{};
  if (::lstat(directory.c_str(), &st) != 0) return Fail("cannot inspect {}: {}", directory, std::strerror(errno));
  if (S_ISLNK(st.st_mode)) return Fail("socket directory {} is a symbolic link; refusing to use it", directory);
  if (!S_ISDIR(st.st_mode)) return Fail("socket directory {} is not a directory", directory);
  if (st.st_uid != ::getuid()) {
    return Fail("socket directory {} belongs to uid {}, not to you (uid {}): a run of mconnect as uid {} with "
                "your XDG_RUNTIME_DIR made it (after `su`?); remove it with: sudo rm -r {}",
                directory, st.st_uid, ::getuid(), st.st_uid, directory);
  }
  if ((st.st_mode & 077) != 0) {
    return Fail("socket directory {} is open to other users (mode {:04o}); fix it with: chmod 700 {}", directory,
                st.st_mode & 07777, directory);
  }
  return {};
}

Result<void> CheckChosenDirectory(const std::string& directory) {
  struct stat st{};
  if (::lstat(directory.c_str(), &st) != 0) return Fail("socket directory {}: {}", directory, std::strerror(errno));
  if (S_ISLNK(st.st_mode)) return Fail("socket directory {} is a symbolic link; refusing to use it", directory);
  if (!S_ISDIR(st.st_mode)) return Fail("socket directory {} is not a directory", directory);
  bool ours = st.st_uid == ::getuid() && (st.st_mode & 022) == 0;
  bool sticky_root = st.st_uid == 0 && (st.st_mode & S_ISVTX) != 0;
  if (!ours && !sticky_root) {
    return Fail("socket directory {} can be changed by other users (owner uid {}, mode {:04o}); refusing to use it",
                directory, st.st_uid, st.st_mode & 07777);
  }
  return AncestorCheck(directory, "choose a socket path (ControlPath) in a private directory").Run();
}

namespace {

// The paths of the entries of `directory` named "SOMETHING`suffix`", sorted; none if it cannot
// be read.
std::vector<std::string> ListEndingWith(const std::string& directory, std::string_view suffix) {
  std::vector<std::string> paths;
  DIR* dir = ::opendir(directory.c_str());
  if (dir == nullptr) return paths;
  while (dirent* entry = ::readdir(dir)) {
    std::string name = entry->d_name;
    if (name.size() > suffix.size() && name.ends_with(suffix)) paths.push_back(directory + "/" + name);
  }
  ::closedir(dir);
  std::sort(paths.begin(), paths.end());
  return paths;
}

}  // namespace

std::vector<std::string> ListRecords(const std::string& runtime_dir) { return ListEndingWith(runtime_dir, ".master"); }

std::vector<std::string> ListSockets(const std::string& directory) { return ListEndingWith(directory, ".sock"); }

}  // namespace mconnect::proto
