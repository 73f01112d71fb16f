// Bytes from a control-socket client: identify the protocol, then cut frames off the buffer as
// the master does, decoding each payload as the message its type names. Beyond "no crash": every
// frame consumes at least its header and never more than the buffer holds.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "proto/control.pb.h"
#include "proto/frame.h"

using namespace mconnect;

namespace {

void Decode(const proto::Frame& frame) {
  using T = proto::MessageType;
  switch (static_cast<T>(frame.type)) {
    case T::kHello: { control::Hello m; (void)proto::DecodePayload(frame, m); break; }
    case T::kHelloReply: { control::HelloReply m; (void)proto::DecodePayload(frame, m); break; }
    case T::kStatus: { control::StatusRequest m; (void)proto::DecodePayload(frame, m); break; }
    case T::kStatusReply: { control::StatusReply m; (void)proto::DecodePayload(frame, m); break; }
    case T::kExec: { control::ExecRequest m; (void)proto::DecodePayload(frame, m); break; }
    case T::kExecReply: { control::ExecReply m; (void)proto::DecodePayload(frame, m); break; }
    case T::kDiscoverIp: { control::DiscoverIpRequest m; (void)proto::DecodePayload(frame, m); break; }
    case T::kDiscoverIpReply: { control::DiscoverIpReply m; (void)proto::DecodePayload(frame, m); break; }
    case T::kStartMoshServer: { control::StartMoshServerRequest m; (void)proto::DecodePayload(frame, m); break; }
    case T::kStartMoshServerReply: { control::StartMoshServerReply m; (void)proto::DecodePayload(frame, m); break; }
    case T::kStop: { control::StopRequest m; (void)proto::DecodePayload(frame, m); break; }
    case T::kStopReply: { control::StopReply m; (void)proto::DecodePayload(frame, m); break; }
    case T::kStartRelay: { control::StartRelayRequest m; (void)proto::DecodePayload(frame, m); break; }
    case T::kStartRelayReply: { control::StartRelayReply m; (void)proto::DecodePayload(frame, m); break; }
    case T::kError: { control::ErrorReply m; (void)proto::DecodePayload(frame, m); break; }
  }
  (void)proto::MessageTypeName(frame.type);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::span<const std::uint8_t> buffer(data, size);
  (void)proto::IdentifyProtocol(buffer);
  // A small cap as well as the real one, so the too-large path is reached with small inputs.
  for (std::size_t cap : {proto::kMaxFrameBytes, std::size_t{64}}) {
    std::span<const std::uint8_t> rest = buffer;
    while (true) {
      auto parsed = proto::ParseFrame(rest, cap);
      if (!parsed) {
        (void)proto::FrameErrorName(parsed.error());
        break;
      }
      if (!parsed->has_value()) break;
      std::size_t consumed = (*parsed)->consumed;
      if (consumed < 8 || consumed > rest.size() || (*parsed)->frame.payload.size() + 8 != consumed) std::abort();
      Decode((*parsed)->frame);
      rest = rest.subspan(consumed);
    }
  }
  return 0;
}
