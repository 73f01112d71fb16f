#include "mux/ssh/byte_stream.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <utility>

namespace mconnect::mux {
namespace {

std::string AddressText(const sockaddr* address) {
  char text[INET6_ADDRSTRLEN] = "";
  if (address->sa_family == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(address)->sin_addr, text, sizeof text);
  } else if (address->sa_family == AF_INET6) {
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr, text, sizeof text);
  }
  return text;
}

}  // namespace

ssize_t RecvAckingSmall(int socket, void* buffer, std::size_t length, int flags) {
  constexpr ssize_t kSmall = 4096;
  ssize_t n = ::recv(socket, buffer, length, flags);
  if (n < 0) return -errno;
  if (n > 0 && n < kSmall) {
    int one = 1;
    (void)::setsockopt(socket, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
  }
  return n;
}

Result<ByteStream> ByteStream::ConnectTcp(const std::string& host, int port, int family, Clock::time_point deadline) {
  addrinfo hints{};
  hints.ai_family = family;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  std::string service = std::to_string(port);
  int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found);
  if (rc != 0) return Fail("could not resolve hostname {}: {}", host, ::gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses(found, ::freeaddrinfo);

  std::string last_error = "no address";
  for (addrinfo* ai = addresses.get(); ai != nullptr; ai = ai->ai_next) {
    UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol));
    if (!fd) {
      last_error = std::strerror(errno);
      continue;
    }
    if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
      last_error = std::strerror(errno);
      continue;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    pollfd pfd{fd.get(), POLLOUT, 0};
    if (left.count() <= 0 || ::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) {
      last_error = "Connection timed out";
      continue;
    }
    int error = 0;
    socklen_t length = sizeof error;
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &length);
    if (error != 0) {
      last_error = std::strerror(error);
      continue;
    }
    int one = 1;
    // Without TCP_NODELAY the handshake stalls on Nagle + delayed ACK (measured: +40 ms at RTT 0).
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    SetNonBlocking(fd.get(), false);
    ByteStream stream;
    stream.socket_ = std::move(fd);
    stream.peer_address_ = AddressText(ai->ai_addr);
    return stream;
  }
  return Fail("connect to host {} port {}: {}", host, port, last_error);
}

Result<ByteStream> ByteStream::StartProxy(const std::string& command) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
    return Fail("proxy command: socketpair: {}", std::strerror(errno));
  }
  UniqueFd ours(pair[0]), theirs(pair[1]);
  int errors[2];
  if (::pipe2(errors, O_CLOEXEC) != 0) return Fail("proxy command: pipe: {}", std::strerror(errno));
  UniqueFd error_read(errors[0]), error_write(errors[1]);

  const std::string script = "exec " + command;
  pid_t pid = ::fork();
  if (pid < 0) return Fail("proxy command: fork: {}", std::strerror(errno));
  if (pid == 0) {
    ::signal(SIGHUP, SIG_IGN);
    ::signal(SIGINT, SIG_IGN);
    ::signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (::dup2(theirs.get(), STDIN_FILENO) < 0 || ::dup2(theirs.get(), STDOUT_FILENO) < 0 ||
        ::dup2(error_write.get(), STDERR_FILENO) < 0) {
      ::_exit(127);
    }
    ::closefrom(STDERR_FILENO + 1);
    ::execl("/bin/sh", "sh", "-c", script.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  theirs.Reset();
  error_write.Reset();
  SetNonBlocking(error_read.get(), true);
  ByteStream stream;
  stream.socket_ = std::move(ours);
  stream.proxy_pid_ = pid;
  stream.errors_ = std::move(error_read);
  return stream;
}

ByteStream::ByteStream(ByteStream&& other) noexcept
    : socket_(std::move(other.socket_)),
      peer_address_(std::move(other.peer_address_)),
      proxy_pid_(std::exchange(other.proxy_pid_, 0)),
      errors_(std::move(other.errors_)),
      partial_error_(std::move(other.partial_error_)) {}

ByteStream& ByteStream::operator=(ByteStream&& other) noexcept {
  if (this != &other) {
    StopProxy();
    socket_ = std::move(other.socket_);
    peer_address_ = std::move(other.peer_address_);
    proxy_pid_ = std::exchange(other.proxy_pid_, 0);
    errors_ = std::move(other.errors_);
    partial_error_ = std::move(other.partial_error_);
  }
  return *this;
}

ByteStream::~ByteStream() { StopProxy(); }

void ByteStream::StopProxy() {
  socket_.Reset();  // a proxy that reads its stdin sees EOF and goes by itself
  if (proxy_pid_ > 0) {
    ::kill(proxy_pid_, SIGTERM);
    // Reaped when it is still our child; after the master detached it belongs to init.
    ::waitpid(proxy_pid_, nullptr, WNOHANG);
    proxy_pid_ = 0;
  }
}

std::vector<std::string> ByteStream::TakeErrors(bool all) {
  std::vector<std::string> lines;
  if (errors_) {
    char buffer[4096];
    while (true) {
      ssize_t n = ::read(errors_.get(), buffer, sizeof buffer);
      if (n > 0) {
        // Bounded: a chatty proxy cannot grow this past one buffer's worth of partial line.
        partial_error_.append(buffer, static_cast<std::size_t>(n));
        if (partial_error_.size() > 8192) partial_error_.erase(0, partial_error_.size() - 8192);
        continue;
      }
      if (n == 0) errors_.Reset();  // the proxy closed its stderr (it exited)
      break;
    }
  }
  std::size_t start = 0;
  for (std::size_t end; (end = partial_error_.find('\n', start)) != std::string::npos; start = end + 1) {
    std::string line = partial_error_.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) lines.push_back(std::move(line));
  }
  partial_error_.erase(0, start);
  if ((all || !errors_) && !partial_error_.empty()) lines.push_back(std::exchange(partial_error_, {}));
  return lines;
}

}  // namespace mconnect::mux
