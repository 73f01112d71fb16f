#include "mux/listener.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/log.h"

namespace mconnect::mux {
namespace {

Result<sockaddr_un> UnixAddress(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof address.sun_path) return Fail("socket path too long ({} bytes): {}", path.size(), path);
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  return address;
}

}  // namespace

Result<std::pair<LockState, UniqueFd>> TryLock(const std::string& lock_path) {
  UniqueFd fd(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return Fail("cannot open lock file {}: {}", lock_path, std::strerror(errno));
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) return std::pair{LockState::kBusy, UniqueFd()};
    return Fail("cannot lock {}: {}", lock_path, std::strerror(errno));
  }
  return std::pair{LockState::kAcquired, std::move(fd)};
}

Result<UniqueFd> Listen(const std::string& socket_path) {
  struct stat st{};
  if (::lstat(socket_path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Fail("{} exists and is not a socket; refusing to replace it", socket_path);
    }
    log::Info("replacing stale socket {}", socket_path);
    if (::unlink(socket_path.c_str()) != 0 && errno != ENOENT) {
      return Fail("cannot remove stale socket {}: {}", socket_path, std::strerror(errno));
    }
  }
  std::string temporary = socket_path + "." + std::to_string(::getpid()) + ".tmp";
  auto address = UnixAddress(temporary);
  if (!address) return Fail(address.error());
  ::unlink(temporary.c_str());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return Fail("socket: {}", std::strerror(errno));
  mode_t old_mask = ::umask(0177);
  int rc = ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*address), sizeof *address);
  int bind_errno = errno;
  ::umask(old_mask);
  if (rc != 0) return Fail("cannot bind {}: {}", temporary, std::strerror(bind_errno));
  if (::listen(fd.get(), 128) != 0 || ::rename(temporary.c_str(), socket_path.c_str()) != 0) {
    int error = errno;
    ::unlink(temporary.c_str());
    return Fail("cannot publish socket {}: {}", socket_path, std::strerror(error));
  }
  return fd;
}

Result<UniqueFd> AcceptOwnUid(int listen_fd) {
  UniqueFd client(::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
  if (!client) {
    if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) return UniqueFd();
    return Fail("accept: {}", std::strerror(errno));
  }
  ucred credentials{};
  socklen_t length = sizeof credentials;
  if (::getsockopt(client.get(), SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) {
    return Fail("cannot read the client's credentials: {}", std::strerror(errno));
  }
  if (credentials.uid != ::getuid()) {
    log::Warn("refused a client running as uid {} (pid {}): only uid {} may use this master", credentials.uid,
              credentials.pid, ::getuid());
    return UniqueFd();
  }
  log::Debug("client pid {} connected", credentials.pid);
  return client;
}

}  // namespace mconnect::mux
