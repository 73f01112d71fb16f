#include "proto/client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace mconnect::proto {

Result<UniqueFd> ConnectUnix(const std::string& socket_path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof address.sun_path) return Fail("socket path too long: {}", socket_path);
  std::memcpy(address.sun_path, socket_path.c_str(), socket_path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return Fail("socket: {}", std::strerror(errno));
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    return Fail("{}: {}", socket_path, std::strerror(errno));
  }
  ucred credentials{};
  socklen_t length = sizeof credentials;
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0 ||
      credentials.uid != ::getuid()) {
    return Fail("{} is served by another user (uid {}); refusing to use it", socket_path, credentials.uid);
  }
  return fd;
}

Result<ControlClient> ControlClient::Connect(const std::string& socket_path, std::chrono::milliseconds timeout) {
  auto fd = ConnectUnix(socket_path);
  if (!fd) return Fail(fd.error());
  ControlClient client(std::move(*fd));
  control::Hello hello;
  hello.set_version(kProtocolVersion);
  hello.set_program("mconnect");
  auto reply = client.Call<control::HelloReply>(MessageType::kHello, hello, MessageType::kHelloReply, timeout);
  if (!reply) {
    return Fail(
        Error{fmt::format("{}: no answer from a master ({})", socket_path, reply.error().message), reply.error().hint});
  }
  client.master_pid_ = reply->pid();
  return client;
}

namespace {

int MillisecondsLeft(std::chrono::steady_clock::time_point deadline) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return static_cast<int>(std::max<long>(0, ms.count()));
}

}  // namespace

Result<std::string> ControlClient::SendRequest(MessageType type, const google::protobuf::MessageLite& request,
                                               std::chrono::steady_clock::time_point deadline) {
  std::vector<std::uint8_t> out;
  if (!AppendFrame(out, type, request)) return Fail("request too large");
  std::size_t written = 0;
  std::string send_error;
  while (written < out.size() && send_error.empty()) {
    pollfd pfd{fd_.get(), POLLOUT, 0};
    if (::poll(&pfd, 1, MillisecondsLeft(deadline)) <= 0) {
      return Fail("timed out sending {}", MessageTypeName(static_cast<uint32_t>(type)));
    }
    ssize_t n = ::send(fd_.get(), out.data() + written, out.size() - written, MSG_NOSIGNAL);
    if (n < 0 && errno != EINTR && errno != EAGAIN) send_error = std::strerror(errno);
    if (n > 0) written += static_cast<std::size_t>(n);
  }
  return send_error;
}

Result<void> ControlClient::Post(MessageType type, const google::protobuf::MessageLite& request,
                                 std::chrono::milliseconds timeout) {
  auto sent = SendRequest(type, request, std::chrono::steady_clock::now() + timeout);
  if (!sent) return Fail(sent.error());
  if (!sent->empty()) return Fail("the master went away ({})", *sent);
  return {};
}

Result<void> ControlClient::Send(MessageType type, const google::protobuf::MessageLite& request,
                                 std::chrono::milliseconds timeout) {
  // A master that refuses us (out of file descriptors) answers and closes before our request is
  // sent: then its answer is still there to read, and says more than the failed send.
  auto sent = SendRequest(type, request, std::chrono::steady_clock::now() + timeout);
  if (!sent) return Fail(sent.error());
  send_error_ = *sent;
  return {};
}

Result<Frame> ControlClient::RoundTrip(MessageType type, const google::protobuf::MessageLite& request,
                                       MessageType reply_type, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  if (auto sent = Send(type, request, timeout); !sent) return Fail(sent.error());
  return ReceiveFrame(type, reply_type, deadline);
}

Result<Frame> ControlClient::ReceiveFrame(MessageType type, MessageType reply_type,
                                          std::chrono::steady_clock::time_point deadline) {
  const std::string send_error = std::exchange(send_error_, {});
  while (true) {
    auto parsed = ParseFrame(in_);
    if (!parsed) return Fail("the master sent a bad frame: {}", FrameErrorName(parsed.error()));
    if (parsed->has_value()) {
      Frame frame = std::move((*parsed)->frame);
      in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>((*parsed)->consumed));
      if (frame.type == static_cast<std::uint32_t>(MessageType::kError)) {
        control::ErrorReply error;
        DecodePayload(frame, error);
        return Fail(Error{error.message(), error.hint()});
      }
      if (!send_error.empty()) return Fail("the master went away ({})", send_error);
      if (frame.type != static_cast<std::uint32_t>(reply_type)) {
        return Fail("the master answered {} with {}", MessageTypeName(static_cast<uint32_t>(type)),
                    MessageTypeName(frame.type));
      }
      return frame;
    }
    pollfd pfd{fd_.get(), POLLIN, 0};
    int ready = ::poll(&pfd, 1, send_error.empty() ? MillisecondsLeft(deadline) : 0);
    if (ready == 0 && !send_error.empty()) return Fail("the master went away ({})", send_error);
    if (ready == 0) return Fail("timed out waiting for the master's {}", MessageTypeName(static_cast<uint32_t>(reply_type)));
    if (ready < 0) {
      if (errno == EINTR) continue;
      return Fail("poll: {}", std::strerror(errno));
    }
    std::uint8_t buffer[16384];
    ssize_t n = ::read(fd_.get(), buffer, sizeof buffer);
    if (n == 0 && !send_error.empty()) return Fail("the master went away ({})", send_error);
    if (n == 0) return Fail("the master closed the connection");
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return Fail("reading from the master: {}", std::strerror(errno));
    }
    in_.insert(in_.end(), buffer, buffer + n);
  }
}

}  // namespace mconnect::proto
