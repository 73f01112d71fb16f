// The client side of the control protocol, for the launcher and `mconnect status|stop|ip`:
// blocking calls with an absolute deadline each. Refuses a socket served by another uid.
#pragma once

#include <chrono>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"
#include "proto/control.pb.h"
#include "proto/frame.h"

namespace mconnect::proto {

class ControlClient {
 public:
  // Connects and exchanges Hello. Fails when nothing (or something else) answers there.
  static Result<ControlClient> Connect(const std::string& socket_path, std::chrono::milliseconds timeout);

  // Sends one request and waits for its reply (or an ErrorReply, which becomes the Error, its
  // hint included).
  template <typename Reply>
  Result<Reply> Call(MessageType type, const google::protobuf::MessageLite& request, MessageType reply_type,
                     std::chrono::milliseconds timeout) {
    return DecodeReply<Reply>(RoundTrip(type, request, reply_type, timeout));
  }

  // One request, its reply read later: Send, do something else (the master works on it
  // meanwhile), then Receive. One request at a time per client: a second Send before Receive
  // would read the replies in the master's order, which is not promised.
  Result<void> Send(MessageType type, const google::protobuf::MessageLite& request, std::chrono::milliseconds timeout);
  template <typename Reply>
  Result<Reply> Receive(MessageType type, MessageType reply_type, std::chrono::milliseconds timeout) {
    return DecodeReply<Reply>(ReceiveFrame(type, reply_type, std::chrono::steady_clock::now() + timeout));
  }

  // Sends one request and does not wait for its reply: for a connection of its own that is
  // closed right after (the master still carries the request out; its reply goes nowhere).
  Result<void> Post(MessageType type, const google::protobuf::MessageLite& request, std::chrono::milliseconds timeout);

  std::uint32_t master_pid() const { return master_pid_; }
  int fd() const { return fd_.get(); }

 private:
  explicit ControlClient(UniqueFd fd) : fd_(std::move(fd)) {}
  template <typename Reply>
  static Result<Reply> DecodeReply(const Result<Frame>& frame) {
    if (!frame) return Fail(frame.error());
    Reply reply;
    if (!DecodePayload(*frame, reply)) return Fail("the master sent a malformed {}", MessageTypeName(frame->type));
    return reply;
  }
  Result<Frame> RoundTrip(MessageType type, const google::protobuf::MessageLite& request, MessageType reply_type,
                          std::chrono::milliseconds timeout);
  Result<Frame> ReceiveFrame(MessageType type, MessageType reply_type, std::chrono::steady_clock::time_point deadline);
  // Writes the request's frame by the deadline; returns send()'s error text, if any (the master
  // may have answered and closed before taking it all: its answer is still worth reading).
  Result<std::string> SendRequest(MessageType type, const google::protobuf::MessageLite& request,
                                  std::chrono::steady_clock::time_point deadline);

  UniqueFd fd_;
  std::vector<std::uint8_t> in_;
  std::string send_error_;  // why the last Send stopped short, for its Receive to say
  std::uint32_t master_pid_ = 0;
};

// Connects a Unix stream socket and checks the peer runs as our uid.
Result<UniqueFd> ConnectUnix(const std::string& socket_path);

}  // namespace mconnect::proto
