// mosh's UDP datagram format, as mosh 1.2–1.4 put it on the wire, so the UDP probe can show that
// a mosh-server really answers on a candidate address:port. Pure: bytes in, values or a typed
// error out; no socket, no clock.
//
// One datagram, outermost first (all integers big-endian):
//
//   nonce       u64   bit 63: direction (1 = to the client), bits 0..62: sequence number
//   ciphertext        AES-128-OCB (RFC 7253) of the plaintext below under the session key,
//                     with the 12-byte OCB nonce 00 00 00 00 || nonce, no associated data
//   tag         16 bytes
//
//   plaintext:  timestamp u16 | timestamp_reply u16 | fragment
//     timestamps are milliseconds modulo 65536; 0xFFFF means "none". timestamp_reply echoes the
//     peer's last timestamp advanced by how long it was held, which is how mosh measures RTT.
//   fragment:   instruction id u64 | fragment number u16 (bit 15: final) | contents
//   contents of all fragments of one id, concatenated: zlib (RFC 1950) of a serialized
//     TransportBuffers.Instruction (mosh/transportinstruction.proto).
//
// Every datagram a peer sends is authenticated by the tag; anything that fails it is dropped
// silently by mosh, and is an error value here.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace mconnect::mosh {

using MoshKey = std::array<std::uint8_t, 16>;

// MOSH_PROTOCOL_VERSION: mosh-server throws away (and logs) instructions of any other version.
inline constexpr std::uint32_t kMoshProtocolVersion = 2;
// mosh's receive buffer (Session::RECEIVE_MTU): no mosh datagram is longer.
inline constexpr std::size_t kMoshMaxDatagram = 2048;
// 8 nonce bytes + 16 tag bytes + 4 timestamp bytes + 10 fragment header bytes.
inline constexpr std::size_t kMoshMinDatagram = 8 + 16 + 4 + 10;
inline constexpr std::uint16_t kMoshNoTimestamp = 0xFFFF;
// Cap on a decompressed instruction (mosh's Compressor::BUFFER_SIZE).
inline constexpr std::size_t kMoshMaxInstruction = 2048 * 2048;

enum class MoshDirection { kToServer, kToClient };

// TransportBuffers.Instruction as plain values. Absent optional fields read as 0 / empty, as
// in mosh.
struct MoshInstruction {
  std::uint32_t protocol_version = kMoshProtocolVersion;
  std::uint64_t old_num = 0;
  std::uint64_t new_num = 0;
  std::uint64_t ack_num = 0;
  std::uint64_t throwaway_num = 0;
  std::string diff;
  std::string chaff;

  bool operator==(const MoshInstruction&) const = default;
};

struct DecodedPacket {
  MoshDirection direction = MoshDirection::kToClient;
  std::uint64_t seq = 0;  // without the direction bit
  std::uint16_t timestamp = kMoshNoTimestamp;
  std::uint16_t timestamp_reply = kMoshNoTimestamp;
  std::uint64_t fragment_id = 0;
  std::uint16_t fragment_num = 0;  // without the final bit
  bool final_fragment = false;
  std::vector<std::uint8_t> contents;  // this fragment's share of the compressed instruction
  // Present when this datagram carries a whole instruction (fragment 0, final).
  std::optional<MoshInstruction> instruction;
};

// The 16-byte key of `MOSH CONNECT <port> <key>`: exactly 22 characters of standard base64
// (A-Z a-z 0-9 + /, no padding) whose last character carries no bits beyond the 128th, as
// mosh's Base64Key requires. The error message never quotes the key.
Result<MoshKey> DecodeMoshKey(std::string_view base64_22);

// zlib of the serialized instruction, and back. Decompression is capped at
// kMoshMaxInstruction bytes and must consume exactly `compressed`.
std::vector<std::uint8_t> CompressInstruction(const MoshInstruction& instruction);
Result<MoshInstruction> DecompressInstruction(std::span<const std::uint8_t> compressed);

struct PacketFields {
  MoshDirection direction = MoshDirection::kToServer;
  std::uint64_t seq = 0;  // must be < 2^63
  std::uint16_t timestamp = kMoshNoTimestamp;
  std::uint16_t timestamp_reply = kMoshNoTimestamp;
  std::uint64_t fragment_id = 0;
  std::uint16_t fragment_num = 0;  // must be < 0x8000
  bool final_fragment = true;
};

// One sealed datagram carrying `contents` as the fragment described by `fields`. Fails when
// seq or fragment_num is out of range or the datagram would exceed kMoshMaxDatagram.
Result<std::vector<std::uint8_t>> EncodePacket(const MoshKey& key, const PacketFields& fields,
                                               std::span<const std::uint8_t> contents);

// What mosh-client sends for `instruction` when it fits one fragment: direction "to server",
// sequence number `seq`, `timestamp`, no timestamp reply, fragment 0 (final) of instruction id
// `fragment_id` (mosh-client's first instruction has id 1; ids only need to differ between
// different instructions).
Result<std::vector<std::uint8_t>> EncodeClientPacket(const MoshKey& key, std::uint64_t seq,
                                                     std::uint16_t timestamp,
                                                     const MoshInstruction& instruction,
                                                     std::uint64_t fragment_id = 1);

// Authenticates and parses any datagram, whichever its direction.
Result<DecodedPacket> DecodePacket(const MoshKey& key, std::span<const std::uint8_t> datagram);

// DecodePacket, and the direction bit must say "to the client": a datagram of ours reflected
// back (or replayed) is rejected, as mosh-client does.
Result<DecodedPacket> DecodeServerPacket(const MoshKey& key, std::span<const std::uint8_t> datagram);

}  // namespace mconnect::mosh
