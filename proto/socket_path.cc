#include "proto/socket_path.h"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

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

}  // namespace

std::string DefaultRuntimeDir() {
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  if (runtime != nullptr && runtime[0] == '/') return std::string(runtime) + "/mconnect";
  return fmt::format("/tmp/mconnect-{}", ::getuid());
}

MasterPaths PathsFor(const std::string& directory, const std::string& user, const std::string& host, int port) {
  std::string dir = directory.empty() ? DefaultRuntimeDir() : directory;
  std::string name = fmt::format("{}@{}:{}", user, host, port);
  bool safe = std::none_of(name.begin(), name.end(), [](char c) { return c == '/' || c < ' '; });
  // Leave room for the ".sock" suffix and the temporary name used while publishing.
  if (!safe || dir.size() + name.size() + 16 >= sizeof(sockaddr_un{}.sun_path)) name = "h-" + HashName(name);
  std::string base = dir + "/" + name;
  return {base + ".sock", base + ".lock", base + ".log"};
}

MasterPaths PathsForSocket(const std::string& socket_path) {
  std::string base = StripSuffix(socket_path, ".sock");
  return {socket_path, base + ".lock", base + ".log"};
}

Result<void> EnsurePrivateDirectory(const std::string& directory) {
  if (::mkdir(directory.c_str(), 0700) != 0 && errno != EEXIST) {
    return Fail("cannot create socket directory {}: {}", directory, std::strerror(errno));
  }
  struct stat st{};
  if (::lstat(directory.c_str(), &st) != 0) return Fail("cannot inspect {}: {}", directory, std::strerror(errno));
  if (S_ISLNK(st.st_mode)) return Fail("socket directory {} is a symbolic link; refusing to use it", directory);
  if (!S_ISDIR(st.st_mode)) return Fail("socket directory {} is not a directory", directory);
  if (st.st_uid != ::getuid()) {
    return Fail("socket directory {} belongs to uid {}, not to you (uid {}); refusing to use it", directory,
                st.st_uid, ::getuid());
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
  return {};
}

std::vector<std::string> ListSockets(const std::string& directory) {
  std::vector<std::string> sockets;
  DIR* dir = ::opendir(directory.c_str());
  if (dir == nullptr) return sockets;
  while (dirent* entry = ::readdir(dir)) {
    std::string name = entry->d_name;
    if (name.size() > 5 && name.ends_with(".sock")) sockets.push_back(directory + "/" + name);
  }
  ::closedir(dir);
  std::sort(sockets.begin(), sockets.end());
  return sockets;
}

}  // namespace mconnect::proto
