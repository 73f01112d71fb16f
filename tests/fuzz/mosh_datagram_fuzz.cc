// Datagrams arriving at the UDP probe are untrusted. Without the key nothing authenticates, so
// raw input alone only exercises the length checks and OCB; the input is therefore also sealed
// as an authentic server datagram (first bytes: header fields, rest: fragment contents), which
// drives the zlib and protobuf parsing that follows authentication.
// Beyond "no crash": authentic datagrams decode to exactly the fields they were sealed with.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "mosh/datagram.h"

using namespace mconnect::mosh;

namespace {

constexpr MoshKey kKey = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::span<const std::uint8_t> input(data, size);
  (void)DecodeServerPacket(kKey, input);
  (void)DecodePacket(kKey, input);
  (void)DecompressInstruction(input);

  if (size < 4) return 0;
  PacketFields fields;
  fields.direction = MoshDirection::kToClient;
  fields.seq = (std::uint64_t{data[0]} << 56 | data[1]) & ~(std::uint64_t{1} << 63);
  fields.timestamp = static_cast<std::uint16_t>(data[1] << 8 | data[2]);
  fields.fragment_id = data[3];
  fields.fragment_num = (data[3] & 0x80) ? 1 : 0;
  fields.final_fragment = (data[3] & 0x40) != 0;
  auto contents = input.subspan(4);
  auto sealed = EncodePacket(kKey, fields, contents);
  if (!sealed) {
    if (contents.size() + kMoshMinDatagram <= kMoshMaxDatagram) std::abort();  // it fitted
    return 0;
  }
  auto decoded = DecodeServerPacket(kKey, *sealed);
  const bool whole = fields.fragment_num == 0 && fields.final_fragment;
  if (!decoded) {
    // Only the instruction inside a whole fragment can make an authentic datagram fail.
    if (!whole || DecompressInstruction(contents)) std::abort();
    return 0;
  }
  if (decoded->seq != fields.seq || decoded->timestamp != fields.timestamp ||
      decoded->fragment_id != fields.fragment_id || decoded->fragment_num != fields.fragment_num ||
      decoded->final_fragment != fields.final_fragment ||
      decoded->contents.size() != contents.size() || decoded->instruction.has_value() != whole) {
    std::abort();
  }
  // A decoded instruction survives re-encoding.
  if (decoded->instruction) {
    auto again = DecompressInstruction(CompressInstruction(*decoded->instruction));
    if (!again || !(*again == *decoded->instruction)) std::abort();
  }
  return 0;
}
