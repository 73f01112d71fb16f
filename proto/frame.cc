#include "proto/frame.h"

#include "base/text.h"
#include "base/wire.h"

namespace mconnect::proto {

bool IsControlType(std::uint32_t type) { return (type & 0xFFFF0000u) == kTypeBase; }

std::string_view MessageTypeName(std::uint32_t type) {
  switch (static_cast<MessageType>(type)) {
    case MessageType::kHello: return "Hello";
    case MessageType::kHelloReply: return "HelloReply";
    case MessageType::kStatus: return "Status";
    case MessageType::kStatusReply: return "StatusReply";
    case MessageType::kExec: return "Exec";
    case MessageType::kExecReply: return "ExecReply";
    case MessageType::kDiscoverIp: return "DiscoverIp";
    case MessageType::kDiscoverIpReply: return "DiscoverIpReply";
    case MessageType::kStartMoshServer: return "StartMoshServer";
    case MessageType::kStartMoshServerReply: return "StartMoshServerReply";
    case MessageType::kStop: return "Stop";
    case MessageType::kStopReply: return "StopReply";
    case MessageType::kStartRelay: return "StartRelay";
    case MessageType::kStartRelayReply: return "StartRelayReply";
    case MessageType::kError: return "Error";
  }
  return "unknown";
}

Protocol IdentifyProtocol(std::span<const std::uint8_t> first_bytes) {
  WireReader reader(first_bytes);
  if (!reader.U32()) return Protocol::kNeedMore;
  auto type = reader.U32();
  if (!type) return Protocol::kNeedMore;
  constexpr std::uint32_t kMuxMsgHello = 0x00000001;  // OpenSSH PROTOCOL.mux
  if (*type == kMuxMsgHello) return Protocol::kOpenSshMux;
  if (IsControlType(*type)) return Protocol::kControl;
  return Protocol::kUnknown;
}

std::string_view FrameErrorName(FrameError error) {
  return NameIn(error, {{FrameError::kTooLarge, "frame larger than the limit"},
                        {FrameError::kTooSmall, "frame too small to hold a type"}});
}

std::expected<std::optional<Parsed>, FrameError> ParseFrame(std::span<const std::uint8_t> buffer,
                                                            std::size_t max_bytes) {
  WireReader reader(buffer);
  auto length = reader.U32();
  if (!length) return std::nullopt;
  if (*length > max_bytes) return std::unexpected(FrameError::kTooLarge);
  if (*length < 4) return std::unexpected(FrameError::kTooSmall);
  if (reader.remaining() < *length) return std::nullopt;
  auto type = reader.U32();
  auto payload = reader.Bytes(*length - 4);
  if (!type || !payload) return std::nullopt;  // unreachable: length checked above
  Parsed parsed;
  parsed.frame.type = *type;
  parsed.frame.payload.assign(payload->begin(), payload->end());
  parsed.consumed = 4 + *length;
  return parsed;
}

bool AppendFrame(std::vector<std::uint8_t>& out, MessageType type, const google::protobuf::MessageLite& message,
                 std::size_t max_bytes) {
  std::string payload;
  if (!message.SerializeToString(&payload)) return false;
  WireWriter writer(max_bytes + 4);
  if (!writer.U32(static_cast<std::uint32_t>(payload.size() + 4)) || !writer.U32(static_cast<std::uint32_t>(type)) ||
      !writer.Bytes(payload) || payload.size() + 4 > max_bytes) {
    return false;
  }
  out.insert(out.end(), writer.data().begin(), writer.data().end());
  return true;
}

std::vector<std::uint8_t> EncodeFrame(MessageType type, const google::protobuf::MessageLite& message) {
  std::vector<std::uint8_t> out;
  AppendFrame(out, type, message);
  return out;
}

bool DecodePayload(const Frame& frame, google::protobuf::MessageLite& message) {
  return message.ParseFromString(frame.payload);
}

}  // namespace mconnect::proto
