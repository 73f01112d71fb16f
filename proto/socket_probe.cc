#include "proto/socket_probe.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include "base/unique_fd.h"
#include "proto/control.pb.h"
#include "proto/frame.h"

namespace mconnect::proto {
namespace {

using Clock = std::chrono::steady_clock;

// OpenSSH's mux client, by hand (PROTOCOL.mux; proto/ does not reach into mux/'s codec):
// HELLO (length 8, MUX_MSG_HELLO, version 4), then ALIVE_CHECK (length 8, MUX_C_ALIVE_CHECK,
// request id 1), answered by its HELLO and ALIVE (MUX_S_ALIVE, request id, pid).
constexpr std::uint8_t kOpenSshHelloAndAlive[] = {0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 4,
                                                   0, 0, 0, 8, 0x10, 0, 0, 4, 0, 0, 0, 1};
constexpr std::uint32_t kMuxMsgHello = 1;
constexpr std::uint32_t kMuxSAlive = 0x80000005;

std::uint32_t ReadU32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}

struct Connected {
  UniqueFd fd;
  int error = 0;  // connect's errno when fd is invalid
  uid_t uid = 0;
};

Connected Connect(const std::string& path) {
  Connected result;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof address.sun_path) {
    result.error = ENAMETOOLONG;
    return result;
  }
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) {
    result.error = errno;
    return result;
  }
  // A Unix stream connect does not go on in the background: it succeeds, or fails (EAGAIN: the
  // listener's backlog is full, so someone listens).
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    result.error = errno;
    return result;
  }
  ucred credentials{};
  socklen_t length = sizeof credentials;
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0) result.uid = credentials.uid;
  result.fd = std::move(fd);
  return result;
}

bool SendAll(int fd, const std::uint8_t* data, std::size_t size, Clock::time_point deadline) {
  std::size_t sent = 0;
  while (sent < size) {
    ssize_t n = ::send(fd, data + sent, size - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR) return false;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    pollfd pfd{fd, POLLOUT, 0};
    if (left <= 0 || ::poll(&pfd, 1, static_cast<int>(left)) <= 0) return false;
  }
  return true;
}

// Reads until `done` says enough, the peer closes, or the deadline passes. nullopt: the peer
// said nothing at all before the deadline.
std::optional<std::vector<std::uint8_t>> ReadUntil(int fd, Clock::time_point deadline,
                                                   bool (*done)(const std::vector<std::uint8_t>&)) {
  std::vector<std::uint8_t> in;
  bool closed = false;
  while (!closed && !done(in) && in.size() < 4096) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    pollfd pfd{fd, POLLIN, 0};
    if (left <= 0 || ::poll(&pfd, 1, static_cast<int>(left)) <= 0) break;
    std::uint8_t buffer[1024];
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n > 0) {
      in.insert(in.end(), buffer, buffer + n);
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
      closed = true;
    }
  }
  if (in.empty() && !closed) return std::nullopt;
  return in;
}

bool ControlReplyDone(const std::vector<std::uint8_t>& in) {
  auto parsed = ParseFrame(in);
  return !parsed || parsed->has_value();
}

// The OpenSSH master's HELLO (4 + its length) followed by a whole ALIVE (length 12: type,
// request id, pid).
bool OpenSshReplyDone(const std::vector<std::uint8_t>& in) {
  if (in.size() < 8) return false;
  const std::uint32_t hello = ReadU32(in.data());
  if (hello > 1024) return true;  // not OpenSSH's: stop here
  return in.size() >= 4 + hello + 16;
}

SocketAnswer Answer(SocketAnswer::Kind kind, std::string detail, pid_t pid = 0) {
  SocketAnswer answer;
  answer.kind = kind;
  answer.pid = pid;
  answer.detail = std::move(detail);
  return answer;
}

}  // namespace

SocketAnswer ProbeSocket(const std::string& path, std::chrono::milliseconds timeout) {
  using Kind = SocketAnswer::Kind;
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Answer(Kind::kNothing, "");
    return Answer(Kind::kOther, std::strerror(errno));
  }
  if (!S_ISSOCK(st.st_mode)) return Answer(Kind::kNotSocket, "not a socket");

  // First as the launcher asks: an mconnect master answers its Hello.
  Connected first = Connect(path);
  if (!first.fd) {
    if (first.error == ECONNREFUSED) return Answer(Kind::kStale, "nobody listens there");
    if (first.error == ENOENT) return Answer(Kind::kNothing, "");
    if (first.error == EAGAIN) return Answer(Kind::kSilent, "its listener's queue is full");
    return Answer(Kind::kOther, std::strerror(first.error));
  }
  if (first.uid != ::getuid()) return Answer(Kind::kOther, fmt::format("it is served by uid {}", first.uid));
  {
    control::Hello hello;
    hello.set_version(kProtocolVersion);
    hello.set_program("mconnect probe");
    std::vector<std::uint8_t> frame;
    (void)AppendFrame(frame, MessageType::kHello, hello);
    const auto deadline = Clock::now() + timeout;
    if (SendAll(first.fd.get(), frame.data(), frame.size(), deadline)) {
      auto reply = ReadUntil(first.fd.get(), deadline, ControlReplyDone);
      if (!reply) return Answer(Kind::kSilent, fmt::format("it accepts connections but said nothing in {} ms", timeout.count()));
      auto parsed = ParseFrame(*reply);
      control::HelloReply hello_reply;
      if (parsed && parsed->has_value() && (*parsed)->frame.type == static_cast<std::uint32_t>(MessageType::kHelloReply) &&
          DecodePayload((*parsed)->frame, hello_reply)) {
        return Answer(Kind::kMconnect, hello_reply.program(), static_cast<pid_t>(hello_reply.pid()));
      }
    }
  }
  // Not ours: OpenSSH's master drops a client whose first message is not its HELLO. Ask again
  // in its own protocol.
  Connected second = Connect(path);
  if (!second.fd) return Answer(Kind::kOther, std::strerror(second.error));
  const auto deadline = Clock::now() + timeout;
  if (!SendAll(second.fd.get(), kOpenSshHelloAndAlive, sizeof kOpenSshHelloAndAlive, deadline)) {
    return Answer(Kind::kOther, "it does not take requests");
  }
  auto reply = ReadUntil(second.fd.get(), deadline, OpenSshReplyDone);
  if (!reply) return Answer(Kind::kSilent, fmt::format("it accepts connections but said nothing in {} ms", timeout.count()));
  const auto& in = *reply;
  if (in.size() >= 8 && ReadU32(in.data() + 4) == kMuxMsgHello) {
    const std::size_t alive = 4 + ReadU32(in.data());
    if (in.size() >= alive + 16 && ReadU32(in.data() + alive + 4) == kMuxSAlive) {
      return Answer(Kind::kOpenSsh, "OpenSSH's ControlMaster", static_cast<pid_t>(ReadU32(in.data() + alive + 12)));
    }
    return Answer(Kind::kOpenSsh, "OpenSSH's ControlMaster");
  }
  return Answer(Kind::kOther, "it answers in no protocol mconnect knows");
}

std::string DescribeAnswer(const SocketAnswer& answer) {
  using Kind = SocketAnswer::Kind;
  switch (answer.kind) {
    case Kind::kNothing: return "nothing";
    case Kind::kNotSocket: return "a file that is not a socket";
    case Kind::kStale: return "a stale socket";
    case Kind::kMconnect: return fmt::format("an mconnect master (pid {})", answer.pid);
    case Kind::kOpenSsh:
      return answer.pid > 0 ? fmt::format("an OpenSSH master (pid {})", answer.pid) : "an OpenSSH master";
    case Kind::kSilent: return "a socket that accepts connections but does not answer";
    case Kind::kOther: return "something mconnect does not know (" + answer.detail + ")";
  }
  return "?";
}

}  // namespace mconnect::proto
