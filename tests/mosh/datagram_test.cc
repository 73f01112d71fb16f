// mosh's datagram codec: key decoding, the wire layout, round trips, and rejection of every
// tampered, truncated or oversized datagram. That it matches the real mosh-server is shown by
// tests/mosh/udp_probe_test.cc.
#include "mosh/datagram.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

namespace mconnect::mosh {
namespace {

using ::testing::HasSubstr;

// base64 of the bytes 00 01 02 ... 0f, as mosh-server prints a key (no "==").
constexpr char kKeyText[] = "AAECAwQFBgcICQoLDA0ODw";

MoshKey TestKey() {
  MoshKey key;
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(i);
  return key;
}

MoshInstruction SampleInstruction() {
  MoshInstruction instruction;
  instruction.old_num = 3;
  instruction.new_num = 4;
  instruction.ack_num = 7;
  instruction.throwaway_num = 2;
  instruction.diff = std::string("\x00\x01 screen diff \xff", 17);
  instruction.chaff = "0123456789";
  return instruction;
}

std::vector<std::uint8_t> ServerPacket(std::uint64_t seq, const MoshInstruction& instruction) {
  PacketFields fields;
  fields.direction = MoshDirection::kToClient;
  fields.seq = seq;
  fields.timestamp = 1234;
  fields.timestamp_reply = 4321;
  fields.fragment_id = 9;
  auto packet = EncodePacket(TestKey(), fields, CompressInstruction(instruction));
  EXPECT_TRUE(packet.has_value());
  return packet.value_or(std::vector<std::uint8_t>{});
}

TEST(MoshKeyTest, DecodesMoshServersPrintedKey) {
  auto key = DecodeMoshKey(kKeyText);
  ASSERT_TRUE(key.has_value()) << key.error().message;
  EXPECT_EQ(*key, TestKey());
  auto all_ones = DecodeMoshKey("/////////////////////w");
  ASSERT_TRUE(all_ones.has_value());
  for (auto byte : *all_ones) EXPECT_EQ(byte, 0xff);
}

TEST(MoshKeyTest, RejectsWrongLengthsAlphabetAndExtraBits) {
  EXPECT_FALSE(DecodeMoshKey("").has_value());
  EXPECT_FALSE(DecodeMoshKey("AAECAwQFBgcICQoLDA0OD").has_value());    // 21
  EXPECT_FALSE(DecodeMoshKey("AAECAwQFBgcICQoLDA0ODwA").has_value());  // 23
  EXPECT_FALSE(DecodeMoshKey("AAECAwQFBgcICQoLDA0ODw==").has_value());
  EXPECT_FALSE(DecodeMoshKey("AAECAwQFBgcICQoLDA0OD=").has_value());
  EXPECT_FALSE(DecodeMoshKey("AAECAwQFBgcICQoLDA0OD-").has_value());  // base64url is not mosh's
  EXPECT_FALSE(DecodeMoshKey(std::string("AAECAwQFBgcICQoLDA0OD\0", 22)).has_value());
  // 'x' sets bits past the 128th: mosh's Base64Key refuses such a key, and so do we.
  auto extra = DecodeMoshKey("AAECAwQFBgcICQoLDA0ODx");
  ASSERT_FALSE(extra.has_value());
  EXPECT_THAT(extra.error().message, HasSubstr("16 bytes"));
  EXPECT_THAT(extra.error().message, ::testing::Not(HasSubstr("AAEC")));  // never quotes the key
}

TEST(MoshDatagramTest, ClientPacketHasMoshsLayout) {
  MoshInstruction hello;  // protocol 2, all numbers 0, empty diff
  auto packet = EncodeClientPacket(TestKey(), 5, 0x1234, hello);
  ASSERT_TRUE(packet.has_value()) << packet.error().message;
  // nonce: direction bit clear (to server), seq 5, big-endian.
  ASSERT_GE(packet->size(), kMoshMinDatagram);
  EXPECT_EQ(std::vector<std::uint8_t>(packet->begin(), packet->begin() + 8),
            (std::vector<std::uint8_t>{0, 0, 0, 0, 0, 0, 0, 5}));
  // nonce + timestamps + fragment header + zlib(instruction) + tag.
  EXPECT_EQ(packet->size(), 8 + 4 + 10 + CompressInstruction(hello).size() + 16);

  auto decoded = DecodePacket(TestKey(), *packet);
  ASSERT_TRUE(decoded.has_value()) << decoded.error().message;
  EXPECT_EQ(decoded->direction, MoshDirection::kToServer);
  EXPECT_EQ(decoded->seq, 5u);
  EXPECT_EQ(decoded->timestamp, 0x1234);
  EXPECT_EQ(decoded->timestamp_reply, kMoshNoTimestamp);
  EXPECT_EQ(decoded->fragment_id, 1u);
  EXPECT_EQ(decoded->fragment_num, 0);
  EXPECT_TRUE(decoded->final_fragment);
  ASSERT_TRUE(decoded->instruction.has_value());
  EXPECT_EQ(*decoded->instruction, hello);
  EXPECT_EQ(decoded->instruction->protocol_version, 2u);
}

TEST(MoshDatagramTest, ServerPacketRoundTrips) {
  const MoshInstruction instruction = SampleInstruction();
  auto packet = ServerPacket(77, instruction);
  EXPECT_EQ(packet[0], 0x80);  // the direction bit: to the client
  auto decoded = DecodeServerPacket(TestKey(), packet);
  ASSERT_TRUE(decoded.has_value()) << decoded.error().message;
  EXPECT_EQ(decoded->direction, MoshDirection::kToClient);
  EXPECT_EQ(decoded->seq, 77u);
  EXPECT_EQ(decoded->timestamp, 1234);
  EXPECT_EQ(decoded->timestamp_reply, 4321);
  EXPECT_EQ(decoded->fragment_id, 9u);
  ASSERT_TRUE(decoded->instruction.has_value());
  EXPECT_EQ(*decoded->instruction, instruction);
}

TEST(MoshDatagramTest, ServerSideRejectsPacketsTravellingToTheServer) {
  auto packet = EncodeClientPacket(TestKey(), 0, 1, MoshInstruction{});
  ASSERT_TRUE(packet.has_value());
  auto decoded = DecodeServerPacket(TestKey(), *packet);
  ASSERT_FALSE(decoded.has_value());
  EXPECT_THAT(decoded.error().message, HasSubstr("toward the server"));
}

TEST(MoshDatagramTest, EveryFlippedBitIsRejected) {
  const auto packet = ServerPacket(1, SampleInstruction());
  for (std::size_t i = 0; i < packet.size(); ++i) {
    for (int bit = 0; bit < 8; bit += 3) {
      auto tampered = packet;
      tampered[i] ^= static_cast<std::uint8_t>(1 << bit);
      auto decoded = DecodeServerPacket(TestKey(), tampered);
      ASSERT_FALSE(decoded.has_value()) << "byte " << i << " bit " << bit;
      EXPECT_THAT(decoded.error().message, HasSubstr("authentication"));
    }
  }
}

TEST(MoshDatagramTest, WrongKeyIsRejected) {
  const auto packet = ServerPacket(1, SampleInstruction());
  MoshKey other = TestKey();
  other[15] ^= 1;
  EXPECT_FALSE(DecodeServerPacket(other, packet).has_value());
}

TEST(MoshDatagramTest, EveryTruncationIsRejected) {
  const auto packet = ServerPacket(1, SampleInstruction());
  for (std::size_t length = 0; length < packet.size(); ++length) {
    std::vector<std::uint8_t> prefix(packet.begin(), packet.begin() + static_cast<std::ptrdiff_t>(length));
    EXPECT_FALSE(DecodeServerPacket(TestKey(), prefix).has_value()) << "length " << length;
  }
  // A tag-length datagram of zeros, and a lone byte.
  EXPECT_FALSE(DecodeServerPacket(TestKey(), std::vector<std::uint8_t>(24, 0)).has_value());
  EXPECT_FALSE(DecodeServerPacket(TestKey(), std::vector<std::uint8_t>(1, 0x80)).has_value());
}

TEST(MoshDatagramTest, OversizedDatagramsAndFragmentsAreRejected) {
  EXPECT_FALSE(DecodeServerPacket(TestKey(), std::vector<std::uint8_t>(kMoshMaxDatagram + 1, 0)).has_value());
  PacketFields fields;
  std::vector<std::uint8_t> big(kMoshMaxDatagram, 'x');
  EXPECT_FALSE(EncodePacket(TestKey(), fields, big).has_value());
  fields.seq = std::uint64_t{1} << 63;
  EXPECT_FALSE(EncodePacket(TestKey(), fields, {}).has_value());
  fields.seq = 0;
  fields.fragment_num = 0x8000;
  EXPECT_FALSE(EncodePacket(TestKey(), fields, {}).has_value());
}

TEST(MoshDatagramTest, NonFinalFragmentCarriesContentsButNoInstruction) {
  const auto compressed = CompressInstruction(SampleInstruction());
  const std::size_t half = compressed.size() / 2;
  PacketFields fields;
  fields.direction = MoshDirection::kToClient;
  fields.fragment_id = 4;
  fields.fragment_num = 0;
  fields.final_fragment = false;
  auto first = EncodePacket(TestKey(), fields, std::span(compressed).first(half));
  fields.fragment_num = 1;
  fields.final_fragment = true;
  auto second = EncodePacket(TestKey(), fields, std::span(compressed).subspan(half));
  ASSERT_TRUE(first && second);

  auto one = DecodeServerPacket(TestKey(), *first);
  auto two = DecodeServerPacket(TestKey(), *second);
  ASSERT_TRUE(one && two);
  EXPECT_FALSE(one->final_fragment);
  EXPECT_FALSE(one->instruction.has_value());
  EXPECT_EQ(two->fragment_num, 1);
  EXPECT_TRUE(two->final_fragment);
  EXPECT_FALSE(two->instruction.has_value());  // only fragment 0 holds a whole instruction
  std::vector<std::uint8_t> joined = one->contents;
  joined.insert(joined.end(), two->contents.begin(), two->contents.end());
  auto instruction = DecompressInstruction(joined);
  ASSERT_TRUE(instruction.has_value()) << instruction.error().message;
  EXPECT_EQ(*instruction, SampleInstruction());
}

TEST(MoshDatagramTest, AuthenticPacketWithBadContentsIsAnError) {
  PacketFields fields;
  fields.direction = MoshDirection::kToClient;
  const std::vector<std::uint8_t> not_zlib{'h', 'e', 'l', 'l', 'o'};
  auto packet = EncodePacket(TestKey(), fields, not_zlib);
  ASSERT_TRUE(packet.has_value());
  auto decoded = DecodeServerPacket(TestKey(), *packet);
  ASSERT_FALSE(decoded.has_value());
  EXPECT_THAT(decoded.error().message, HasSubstr("zlib"));
}

TEST(MoshDatagramTest, DecompressionIsStrictAndCapped) {
  auto compressed = CompressInstruction(SampleInstruction());
  auto trailing = compressed;
  trailing.push_back(0);
  EXPECT_FALSE(DecompressInstruction(trailing).has_value());
  for (std::size_t length = 0; length < compressed.size(); ++length) {
    EXPECT_FALSE(DecompressInstruction(std::span(compressed).first(length)).has_value()) << length;
  }
  // A small packet that inflates past mosh's 4 MiB buffer (a "zip bomb").
  MoshInstruction huge;
  huge.diff.assign(kMoshMaxInstruction + 1, 'a');
  auto bomb = CompressInstruction(huge);
  EXPECT_LT(bomb.size(), 8192u);
  auto result = DecompressInstruction(bomb);
  ASSERT_FALSE(result.has_value());
  EXPECT_THAT(result.error().message, HasSubstr("more than"));
  // Valid zlib of bytes that are not a protobuf message (a field with wire type 7).
  const Bytef junk[] = {0xff, 0xff, 0xff};
  std::vector<std::uint8_t> zlib_junk(compressBound(sizeof junk));
  uLongf size = zlib_junk.size();
  ASSERT_EQ(compress(zlib_junk.data(), &size, junk, sizeof junk), Z_OK);
  zlib_junk.resize(size);
  auto parsed = DecompressInstruction(zlib_junk);
  ASSERT_FALSE(parsed.has_value());
  EXPECT_THAT(parsed.error().message, HasSubstr("TransportBuffers.Instruction"));
}

}  // namespace
}  // namespace mconnect::mosh
