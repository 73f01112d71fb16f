#include "mux/forward/local_sockets.h"

#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "mux/openssh/codec.h"

namespace mconnect::mux {
namespace {

Result<sockaddr_un> UnixAddress(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof address.sun_path || path.find('\0') != std::string::npos) {
    return Fail("a Unix socket path must be 1 to {} bytes: {}", sizeof address.sun_path - 1, path);
  }
  std::memcpy(address.sun_path, path.data(), path.size());
  return address;
}

Result<LocalListener> ListenUnix(const std::string& path) {
  auto address = UnixAddress(path);
  if (!address) return Fail(address.error());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return Fail("cannot listen on {}: {}", path, std::strerror(errno));
  // As the master's own socket is made (mux/listener.cc): the mask only around bind.
  mode_t old_mask = ::umask(0177);
  int rc = ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*address), sizeof *address);
  int bind_errno = errno;
  ::umask(old_mask);
  if (rc != 0) return Fail("cannot listen on {}: {}", path, std::strerror(bind_errno));
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0 || ::listen(fd.get(), 64) != 0) {
    int error = errno;
    ::unlink(path.c_str());
    return Fail("cannot listen on {}: {}", path, std::strerror(error));
  }
  return LocalListener{std::move(fd), std::make_unique<UnixSocketFile>(path, st.st_dev, st.st_ino)};
}

Result<LocalListener> ListenTcp(const std::string& host, std::uint32_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  std::string service = std::to_string(port);
  if (int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0) {
    return Fail("cannot resolve listen address {}: {}", host, ::gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses(found, ::freeaddrinfo);
  std::string error = "no address";
  for (addrinfo* ai = addresses.get(); ai != nullptr; ai = ai->ai_next) {
    UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol));
    if (!fd) continue;
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd.get(), 64) == 0) {
      return LocalListener{std::move(fd), nullptr};
    }
    error = std::strerror(errno);
  }
  return Fail("cannot listen on {}:{}: {}", host, port, error);
}

}  // namespace

std::string Endpoint(const std::string& host, std::uint32_t port) {
  return port == openssh::kPortStreamLocal ? host : fmt::format("{}:{}", host, port);
}

UnixSocketFile::~UnixSocketFile() {
  struct stat st{};
  if (::lstat(path_.c_str(), &st) == 0 && st.st_dev == device_ && st.st_ino == inode_) ::unlink(path_.c_str());
}

Result<LocalListener> ListenLocal(const std::string& host, std::uint32_t port) {
  return port == openssh::kPortStreamLocal ? ListenUnix(host) : ListenTcp(host, port);
}

Result<UniqueFd> ConnectLocal(const std::string& host, std::uint32_t port) {
  if (port == openssh::kPortStreamLocal) {
    auto address = UnixAddress(host);
    if (!address) return Fail(address.error());
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd || ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&*address), sizeof *address) != 0) {
      return Fail("cannot connect to {}: {}", host, std::strerror(errno));
    }
    return fd;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  std::string service = std::to_string(port);
  if (int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0 || found == nullptr) {
    return Fail("cannot resolve {}: {}", host, rc != 0 ? ::gai_strerror(rc) : "no address");
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses(found, ::freeaddrinfo);
  UniqueFd fd(::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd || (::connect(fd.get(), found->ai_addr, found->ai_addrlen) != 0 && errno != EINPROGRESS)) {
    return Fail("cannot connect to {}:{}: {}", host, port, std::strerror(errno));
  }
  return fd;
}

}  // namespace mconnect::mux
