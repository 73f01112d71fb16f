#include "base/wire.h"

#include <gtest/gtest.h>

namespace mconnect {
namespace {

std::vector<std::uint8_t> Bytes(std::initializer_list<int> values) {
  std::vector<std::uint8_t> out;
  for (int v : values) out.push_back(static_cast<std::uint8_t>(v));
  return out;
}

TEST(WireReader, ReadsBigEndianIntegers) {
  auto input = Bytes({0x01, 0x02, 0x03, 0x04, 0, 0, 0, 0, 0, 0, 0x01, 0x00, 0xff});
  WireReader reader(input);
  EXPECT_EQ(reader.U32().value(), 0x01020304u);
  EXPECT_EQ(reader.U64().value(), 0x100u);
  EXPECT_EQ(reader.U8().value(), 0xffu);
  EXPECT_TRUE(reader.empty());
  EXPECT_EQ(reader.U8().error(), WireError::kTruncated);
}

TEST(WireReader, TruncatedIntegerConsumesNothing) {
  auto input = Bytes({0x01, 0x02, 0x03});
  WireReader reader(input);
  EXPECT_EQ(reader.U32().error(), WireError::kTruncated);
  EXPECT_EQ(reader.remaining(), 3u);
}

TEST(WireReader, StringRespectsLimitAndLength) {
  auto input = Bytes({0, 0, 0, 3, 'a', 'b', 'c', 0, 0, 0, 9, 'x'});
  WireReader reader(input);
  EXPECT_EQ(reader.String(3).value(), "abc");
  EXPECT_EQ(reader.String(100).error(), WireError::kTruncated);
  EXPECT_EQ(reader.remaining(), 5u) << "a failed read leaves the offset unchanged";
  WireReader limited(input);
  EXPECT_EQ(limited.String(2).error(), WireError::kTooLong);
}

TEST(WireReader, HugeLengthIsRejectedBeforeAllocation) {
  auto input = Bytes({0xff, 0xff, 0xff, 0xff, 'a'});
  WireReader reader(input);
  EXPECT_EQ(reader.String(1 << 20).error(), WireError::kTooLong);
}

TEST(WireReader, CStringRejectsEmbeddedNul) {
  auto input = Bytes({0, 0, 0, 3, 'a', 0, 'c'});
  WireReader reader(input);
  EXPECT_EQ(reader.CString(10).error(), WireError::kBadValue);
}

TEST(WireWriter, RefusesPastCapacityAndStaysRefused) {
  WireWriter writer(9);
  EXPECT_TRUE(writer.U32(7));
  EXPECT_FALSE(writer.String("ab")) << "4 + 6 bytes exceed 9";
  EXPECT_TRUE(writer.overflowed());
  EXPECT_EQ(writer.size(), 4u);
  EXPECT_FALSE(writer.U8(1)) << "an overflowed writer accepts nothing more";
}

TEST(WireWriter, RoundTripsThroughReader) {
  WireWriter writer(64);
  writer.U32(0xdeadbeef);
  writer.String("hello");
  writer.U64(1ull << 40);
  writer.PatchU32(0, 42);
  WireReader reader(writer.data());
  EXPECT_EQ(reader.U32().value(), 42u);
  EXPECT_EQ(reader.String(16).value(), "hello");
  EXPECT_EQ(reader.U64().value(), 1ull << 40);
  EXPECT_TRUE(reader.empty());
}

}  // namespace
}  // namespace mconnect
