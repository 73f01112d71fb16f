#include "proto/frame.h"

#include <gtest/gtest.h>

#include "proto/control.pb.h"

namespace mconnect::proto {
namespace {

TEST(Frame, RoundTripsAMessage) {
  control::Hello hello;
  hello.set_version(kProtocolVersion);
  hello.set_program("mconnect test");
  auto bytes = EncodeFrame(MessageType::kHello, hello);
  auto parsed = ParseFrame(bytes);
  ASSERT_TRUE(parsed.has_value());
  ASSERT_TRUE(parsed->has_value());
  EXPECT_EQ((*parsed)->consumed, bytes.size());
  EXPECT_EQ((*parsed)->frame.type, static_cast<std::uint32_t>(MessageType::kHello));
  control::Hello decoded;
  ASSERT_TRUE(DecodePayload((*parsed)->frame, decoded));
  EXPECT_EQ(decoded.program(), "mconnect test");
}

TEST(Frame, EveryTruncationNeedsMore) {
  control::Hello hello;
  hello.set_program("x");
  auto bytes = EncodeFrame(MessageType::kHello, hello);
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    auto parsed = ParseFrame(std::span(bytes).first(n));
    ASSERT_TRUE(parsed.has_value()) << n;
    EXPECT_FALSE(parsed->has_value()) << n;
  }
}

TEST(Frame, OversizedLengthIsRejectedBeforeTheBodyArrives) {
  std::vector<std::uint8_t> bytes{0x00, 0x20, 0x00, 0x00};  // 2 MiB
  auto parsed = ParseFrame(bytes);
  ASSERT_FALSE(parsed.has_value());
  EXPECT_EQ(parsed.error(), FrameError::kTooLarge);
}

TEST(Frame, LengthTooSmallForTypeIsRejected) {
  std::vector<std::uint8_t> bytes{0, 0, 0, 2, 0, 0};
  EXPECT_EQ(ParseFrame(bytes).error(), FrameError::kTooSmall);
}

TEST(Frame, TwoFramesInOneBuffer) {
  control::StatusRequest request;
  auto bytes = EncodeFrame(MessageType::kStatus, request);
  auto second = EncodeFrame(MessageType::kStop, control::StopRequest{});
  bytes.insert(bytes.end(), second.begin(), second.end());
  auto first = ParseFrame(bytes);
  ASSERT_TRUE(first && *first);
  auto next = ParseFrame(std::span(bytes).subspan((*first)->consumed));
  ASSERT_TRUE(next && *next);
  EXPECT_EQ((*next)->frame.type, static_cast<std::uint32_t>(MessageType::kStop));
}

TEST(IdentifyProtocol, TellsOpenSshMuxFromControl) {
  std::vector<std::uint8_t> openssh{0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 4};
  EXPECT_EQ(IdentifyProtocol(openssh), Protocol::kOpenSshMux);
  auto ours = EncodeFrame(MessageType::kHello, control::Hello{});
  EXPECT_EQ(IdentifyProtocol(ours), Protocol::kControl);
  std::vector<std::uint8_t> garbage{'G', 'E', 'T', ' ', '/', ' ', 'H', 'T'};
  EXPECT_EQ(IdentifyProtocol(garbage), Protocol::kUnknown);
  EXPECT_EQ(IdentifyProtocol(std::span(ours).first(7)), Protocol::kNeedMore);
}

}  // namespace
}  // namespace mconnect::proto
