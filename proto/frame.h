// Framing of the control protocol: uint32 length | uint32 type | protobuf payload, length
// counting type + payload, capped before anything is allocated. Pure: bytes in, frames or a
// typed error out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <google/protobuf/message_lite.h>

namespace mconnect::proto {

inline constexpr std::uint32_t kProtocolVersion = 1;
inline constexpr std::size_t kMaxFrameBytes = 1 << 20;

// "mc" in the high half: no OpenSSH mux id (1, 0x1000000x, 0x8000000x) lies in this range.
inline constexpr std::uint32_t kTypeBase = 0x6D630000;
enum class MessageType : std::uint32_t {
  kHello = kTypeBase | 0x01,
  kHelloReply = kTypeBase | 0x02,
  kStatus = kTypeBase | 0x03,
  kStatusReply = kTypeBase | 0x04,
  kExec = kTypeBase | 0x05,
  kExecReply = kTypeBase | 0x06,
  kDiscoverIp = kTypeBase | 0x07,
  kDiscoverIpReply = kTypeBase | 0x08,
  kStartMoshServer = kTypeBase | 0x09,
  kStartMoshServerReply = kTypeBase | 0x0A,
  kStop = kTypeBase | 0x0B,
  kStopReply = kTypeBase | 0x0C,
  kStartRelay = kTypeBase | 0x0D,
  kStartRelayReply = kTypeBase | 0x0E,
  kError = kTypeBase | 0xFF,
};

bool IsControlType(std::uint32_t type);
std::string_view MessageTypeName(std::uint32_t type);

// What the first frame on a socket says about who is talking.
enum class Protocol { kNeedMore, kControl, kOpenSshMux, kUnknown };
Protocol IdentifyProtocol(std::span<const std::uint8_t> first_bytes);

struct Frame {
  std::uint32_t type = 0;
  std::string payload;
};

enum class FrameError {
  kTooLarge,  // length field above the cap: the peer is broken or hostile
  kTooSmall,  // length field below 4: no room for the type
};
std::string_view FrameErrorName(FrameError error);

struct Parsed {
  Frame frame;
  std::size_t consumed = 0;
};

// The first complete frame in `buffer`, nullopt if more bytes are needed.
std::expected<std::optional<Parsed>, FrameError> ParseFrame(std::span<const std::uint8_t> buffer,
                                                            std::size_t max_bytes = kMaxFrameBytes);

// Appends one framed message. Returns false (and appends nothing) if it would exceed the cap.
bool AppendFrame(std::vector<std::uint8_t>& out, MessageType type, const google::protobuf::MessageLite& message,
                 std::size_t max_bytes = kMaxFrameBytes);
std::vector<std::uint8_t> EncodeFrame(MessageType type, const google::protobuf::MessageLite& message);

// Decodes a frame's payload into `message`; false if the bytes are not a valid message.
bool DecodePayload(const Frame& frame, google::protobuf::MessageLite& message);

}  // namespace mconnect::proto
