#include "mux/listener.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <span>
#include <vector>

#include "base/log.h"
#include "proto/control.pb.h"
#include "proto/frame.h"
#include "proto/socket_probe.h"

namespace mconnect::mux {
namespace {

Result<sockaddr_un> UnixAddress(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof address.sun_path) return Fail("socket path too long ({} bytes): {}", path.size(), path);
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  return address;
}

// The fd AcceptOwnUid gives up to refuse a client when the process has no other (one listener
// per process, one thread: a single spare serves).
UniqueFd& SpareFd() {
  static UniqueFd spare;
  return spare;
}

void ReserveSpareFd() {
  if (!SpareFd()) SpareFd().Reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
}

// What a refused control client reads: framed once by Listen(), so that refusing builds nothing
// at the moment the process has no fd to spare (UBSan's vptr check, on a protobuf message built
// there, needs a pipe of its own: in the sanitizer build it failed and aborted the master).
std::vector<std::uint8_t>& RefusalFrame() {
  static std::vector<std::uint8_t> frame;
  return frame;
}

void PrepareRefusal() {
  if (!RefusalFrame().empty()) return;
  control::ErrorReply refusal;
  refusal.set_message("the master is out of file descriptors and refuses new clients until some close");
  refusal.set_hint("end some sessions or forwards, or start the master with a higher `ulimit -n`");
  (void)proto::AppendFrame(RefusalFrame(), proto::MessageType::kError, refusal);
}

std::string FdLimit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return "unknown";
  return std::to_string(limit.rlim_cur);
}

// accept() failed with `error` (EMFILE or ENFILE): refuse the queued client through the spare fd.
Result<UniqueFd> RefuseForLackOfFds(int listen_fd, int error) {
  const std::string why = fmt::format("out of file descriptors ({}; limit {})", std::strerror(error), FdLimit());
  if (!SpareFd()) {
    ReserveSpareFd();  // some may have been freed since
    return Fail("accept: {}; no spare fd to refuse the client with", why);
  }
  SpareFd().Reset();
  UniqueFd client(::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
  if (!client) {
    const int again = errno;
    ReserveSpareFd();
    // accept() says EMFILE before it looks at the queue: maybe nobody was waiting after all.
    if (again == EAGAIN || again == EINTR || again == ECONNABORTED) return UniqueFd();
    // ENFILE, and another process took the fd the spare gave back.
    return Fail("accept: {}; with the spare fd given up: {}", why, std::strerror(again));
  }
  // Take what the client already sent (its hello), so that closing with unread data does not
  // reset the connection before it reads our answer; then answer only a control client.
  std::uint8_t first[512];
  ssize_t n = ::read(client.get(), first, sizeof first);
  auto said = std::span<const std::uint8_t>(first, n > 0 ? static_cast<std::size_t>(n) : 0);
  if (proto::IdentifyProtocol(said) != proto::Protocol::kOpenSshMux) {
    const auto& frame = RefusalFrame();
    (void)::send(client.get(), frame.data(), frame.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  }
  client.Reset();
  ReserveSpareFd();
  log::Warn("refused a new client: {}", why);
  return UniqueFd();
}

}  // namespace

Result<std::pair<LockState, UniqueFd>> TryLock(const std::string& lock_path) {
  for (int attempt = 0; attempt < 10; ++attempt) {
    UniqueFd fd(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) return Fail("cannot open lock file {}: {}", lock_path, std::strerror(errno));
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK) return std::pair{LockState::kBusy, UniqueFd()};
      return Fail("cannot lock {}: {}", lock_path, std::strerror(errno));
    }
    // The master that held it may have removed the file meanwhile (ReleaseLock): this one is no
    // longer the path's, and a newcomer could lock the new one too.
    struct stat held{}, there{};
    if (::fstat(fd.get(), &held) != 0 || ::stat(lock_path.c_str(), &there) != 0 || held.st_ino != there.st_ino ||
        held.st_dev != there.st_dev) {
      continue;
    }
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd.get(), 0) != 0 || ::pwrite(fd.get(), pid.data(), pid.size(), 0) < 0) {
      // Not fatal: the lock holds; only `status` misses the pid of a master that does not answer.
    }
    return std::pair{LockState::kAcquired, std::move(fd)};
  }
  return Fail("cannot lock {}: it keeps being replaced", lock_path);
}

void ReleaseLock(const std::string& lock_path, UniqueFd lock) {
  struct stat held{}, there{};
  if (lock && ::fstat(lock.get(), &held) == 0 && ::stat(lock_path.c_str(), &there) == 0 &&
      held.st_ino == there.st_ino && held.st_dev == there.st_dev) {
    ::unlink(lock_path.c_str());
  }
  lock.Reset();  // the flock goes with the last fd
}

Result<UniqueFd> Listen(const std::string& socket_path) {
  const proto::SocketAnswer there = proto::ProbeSocket(socket_path, std::chrono::seconds(2));
  switch (there.kind) {
    case proto::SocketAnswer::Kind::kNothing: break;
    case proto::SocketAnswer::Kind::kNotSocket:
      return Fail("{} exists and is not a socket; refusing to replace it", socket_path);
    case proto::SocketAnswer::Kind::kStale:
      log::Info("replacing stale socket {}", socket_path);
      if (::unlink(socket_path.c_str()) != 0 && errno != ENOENT) {
        return Fail("cannot remove stale socket {}: {}", socket_path, std::strerror(errno));
      }
      break;
    default:
      return Fail("{} is in use by {}; mconnect never takes over a socket that answers", socket_path,
                  proto::DescribeAnswer(there));
  }
  std::string temporary = socket_path + "." + std::to_string(::getpid()) + ".tmp";
  auto address = UnixAddress(temporary);
  if (!address) return Fail(address.error());
  ::unlink(temporary.c_str());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return Fail("socket: {}", std::strerror(errno));
  ReserveSpareFd();
  PrepareRefusal();
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
    if (errno == EMFILE || errno == ENFILE) return RefuseForLackOfFds(listen_fd, errno);
    return Fail("accept: {}", std::strerror(errno));
  }
  ucred credentials{};
  socklen_t length = sizeof credentials;
  if (::getsockopt(client.get(), SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) {
    return Fail("cannot read the client's credentials: {}", std::strerror(errno));
  }
  // As OpenSSH's mux (mux.c): the master's own user, or root, who may use any user's master.
  if (credentials.uid != ::getuid() && credentials.uid != 0) {
    log::Warn("refused a client running as uid {} (pid {}): only uid {} and root may use this master",
              credentials.uid, credentials.pid, ::getuid());
    return UniqueFd();
  }
  log::Debug("client pid {} connected", credentials.pid);
  return client;
}

}  // namespace mconnect::mux
