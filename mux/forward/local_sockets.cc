#include "mux/forward/local_sockets.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "base/log.h"

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
  LocalListener listener{{}, std::make_unique<UnixSocketFile>(path, st.st_dev, st.st_ino)};
  listener.fds.push_back(std::move(fd));
  return listener;
}

// Addresses one forward listens on: "localhost" is two; a name with more addresses stops there.
constexpr std::size_t kMaxListenAddresses = 8;

std::string NumericAddress(const addrinfo& ai) {
  char host[NI_MAXHOST] = "?";
  ::getnameinfo(ai.ai_addr, ai.ai_addrlen, host, sizeof host, nullptr, 0, NI_NUMERICHOST);
  return host;
}

// One listening socket per address the bind address stands for. As ssh does, an address that
// cannot be bound (its port taken, its family missing) is no error while another binds; each
// address binds `port` on its own (port 0: each family gets a port of its own, as with ssh -L 0).
Result<LocalListener> ListenTcp(const BindAddress& bind, std::uint32_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (bind.wildcard ? AI_PASSIVE : 0);
  addrinfo* found = nullptr;
  std::string service = std::to_string(port);
  if (int rc = ::getaddrinfo(bind.node ? bind.node->c_str() : nullptr, service.c_str(), &hints, &found); rc != 0) {
    return Fail("cannot resolve listen address {}: {}", bind.described, ::gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses(found, ::freeaddrinfo);
  std::vector<UniqueFd> fds;
  std::vector<std::string> errors;
  for (addrinfo* ai = addresses.get(); ai != nullptr && fds.size() < kMaxListenAddresses; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol));
    int one = 1;
    if (fd) ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    // The IPv6 socket leaves the IPv4 addresses to the IPv4 one (the wildcard :: would take both).
    if (fd && ai->ai_family == AF_INET6) ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (fd && ::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd.get(), 64) == 0) {
      fds.push_back(std::move(fd));
    } else {
      int error = errno;  // before getnameinfo may change it
      errors.push_back(fmt::format("{}: {}", NumericAddress(*ai), std::strerror(error)));
    }
  }
  if (fds.empty()) {
    return Fail("cannot listen on {} port {}: {}", bind.described, port,
                errors.empty() ? std::string("no address") : fmt::format("{}", fmt::join(errors, "; ")));
  }
  for (const auto& error : errors) log::Info("forward on {} port {}: not on {}", bind.described, port, error);
  return LocalListener{std::move(fds), nullptr};
}

}  // namespace

BindAddress BindAddressOf(const std::string& listen_host) {
  if (listen_host.empty() || listen_host == "localhost") return {std::nullopt, false, "localhost"};
  if (listen_host == "*") return {std::nullopt, true, "*"};
  return {listen_host, false, listen_host};
}

std::string Endpoint(const std::string& host, std::uint32_t port) {
  return port == openssh::kPortStreamLocal ? host : fmt::format("{}:{}", host, port);
}

UnixSocketFile::~UnixSocketFile() {
  struct stat st{};
  if (::lstat(path_.c_str(), &st) == 0 && st.st_dev == device_ && st.st_ino == inode_) ::unlink(path_.c_str());
}

Result<LocalListener> ListenLocal(const std::string& host, std::uint32_t port) {
  return port == openssh::kPortStreamLocal ? ListenUnix(host) : ListenTcp(BindAddressOf(host), port);
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
