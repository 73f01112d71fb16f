#include "mosh/datagram_frame.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace mconnect::mosh {
namespace {

std::vector<std::string> Take(std::string_view buffer, std::size_t* consumed = nullptr) {
  std::vector<std::string> out;
  std::size_t used = TakeDatagramFrames(buffer, [&out](std::string_view d) { out.emplace_back(d); });
  if (consumed != nullptr) *consumed = used;
  return out;
}

TEST(DatagramFrame, LengthIsBigEndianAndDatagramsStaySeparate) {
  std::string wire;
  ASSERT_TRUE(AppendDatagramFrame(wire, "abc"));
  ASSERT_TRUE(AppendDatagramFrame(wire, ""));
  ASSERT_TRUE(AppendDatagramFrame(wire, std::string(300, 'x')));
  EXPECT_EQ(wire.substr(0, 5), std::string("\x00\x03" "abc", 5));
  EXPECT_EQ(wire.substr(5, 2), std::string("\x00\x00", 2));
  EXPECT_EQ(wire.substr(7, 2), std::string("\x01\x2c", 2));
  std::size_t consumed = 0;
  auto datagrams = Take(wire, &consumed);
  EXPECT_EQ(consumed, wire.size());
  ASSERT_EQ(datagrams.size(), 3u);
  EXPECT_EQ(datagrams[0], "abc");
  EXPECT_EQ(datagrams[1], "");
  EXPECT_EQ(datagrams[2], std::string(300, 'x'));
}

TEST(DatagramFrame, PartialFrameWaitsForTheRest) {
  std::string wire;
  AppendDatagramFrame(wire, "first");
  AppendDatagramFrame(wire, "second");
  for (std::size_t cut = 0; cut <= wire.size(); ++cut) {
    std::size_t consumed = 0;
    auto datagrams = Take(std::string_view(wire).substr(0, cut), &consumed);
    std::size_t expected = cut >= 7 + 8 ? 2 : cut >= 7 ? 1 : 0;
    EXPECT_EQ(datagrams.size(), expected) << "cut at " << cut;
    EXPECT_EQ(consumed, expected == 2 ? 15u : expected == 1 ? 7u : 0u);
  }
}

TEST(DatagramFrame, LargestFitsAndLargerIsRefused) {
  std::string wire;
  EXPECT_TRUE(AppendDatagramFrame(wire, std::string(kMaxRelayedDatagram, 'm')));
  EXPECT_EQ(wire.size(), kMaxRelayedDatagram + 2);
  EXPECT_FALSE(AppendDatagramFrame(wire, std::string(kMaxRelayedDatagram + 1, 'm')));
  EXPECT_EQ(wire.size(), kMaxRelayedDatagram + 2) << "nothing appended";
  auto datagrams = Take(wire);
  ASSERT_EQ(datagrams.size(), 1u);
  EXPECT_EQ(datagrams[0].size(), kMaxRelayedDatagram);
}

}  // namespace
}  // namespace mconnect::mosh
