#include "mosh/datagram.h"

#include <memory>
#include <utility>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "base/wire.h"
#include "mosh/transportinstruction.pb.h"

namespace mconnect::mosh {
namespace {

constexpr std::uint64_t kDirectionBit = std::uint64_t{1} << 63;
constexpr std::uint16_t kFinalBit = 0x8000;
constexpr std::size_t kNonceBytes = 8;
constexpr std::size_t kOcbNonceBytes = 12;
constexpr std::size_t kTagBytes = 16;
constexpr std::size_t kTimestampBytes = 4;
constexpr std::size_t kFragmentHeaderBytes = 8 + 2;

struct CipherContextFree {
  void operator()(EVP_CIPHER_CTX* context) const { EVP_CIPHER_CTX_free(context); }
};
using CipherContext = std::unique_ptr<EVP_CIPHER_CTX, CipherContextFree>;

// OCB's 12-byte nonce: four zero bytes, then the datagram's 8 nonce bytes (mosh's Nonce).
std::array<std::uint8_t, kOcbNonceBytes> OcbNonce(std::uint64_t nonce) {
  std::array<std::uint8_t, kOcbNonceBytes> bytes{};
  for (std::size_t i = 0; i < 8; ++i) bytes[4 + i] = static_cast<std::uint8_t>(nonce >> (56 - 8 * i));
  return bytes;
}

// Sets up AES-128-OCB with a 12-byte nonce and a 16-byte tag; `tag` is the expected tag when
// decrypting, null when encrypting.
CipherContext OcbContext(const MoshKey& key, std::uint64_t nonce, bool encrypt, const std::uint8_t* tag) {
  CipherContext context(EVP_CIPHER_CTX_new());
  MCONNECT_CHECK(context != nullptr);
  auto ocb_nonce = OcbNonce(nonce);
  const int direction = encrypt ? 1 : 0;
  MCONNECT_CHECK(EVP_CipherInit_ex(context.get(), EVP_aes_128_ocb(), nullptr, nullptr, nullptr, direction) == 1);
  MCONNECT_CHECK(EVP_CIPHER_CTX_ctrl(context.get(), EVP_CTRL_AEAD_SET_IVLEN, kOcbNonceBytes, nullptr) == 1);
  // Encrypting: sets the tag length. Decrypting: sets the tag to check.
  MCONNECT_CHECK(EVP_CIPHER_CTX_ctrl(context.get(), EVP_CTRL_AEAD_SET_TAG, kTagBytes,
                                     const_cast<std::uint8_t*>(tag)) == 1);
  MCONNECT_CHECK(EVP_CipherInit_ex(context.get(), nullptr, nullptr, key.data(), ocb_nonce.data(), direction) == 1);
  return context;
}

std::vector<std::uint8_t> Seal(const MoshKey& key, std::uint64_t nonce, std::span<const std::uint8_t> plaintext) {
  WireWriter header(kNonceBytes);
  header.U64(nonce);
  std::vector<std::uint8_t> out = header.Take();
  out.resize(kNonceBytes + plaintext.size() + kTagBytes);

  CipherContext context = OcbContext(key, nonce, true, nullptr);
  int written = 0;
  int total = 0;
  if (!plaintext.empty()) {
    MCONNECT_CHECK(EVP_EncryptUpdate(context.get(), out.data() + kNonceBytes, &written, plaintext.data(),
                                     static_cast<int>(plaintext.size())) == 1);
    total = written;
  }
  MCONNECT_CHECK(EVP_EncryptFinal_ex(context.get(), out.data() + kNonceBytes + total, &written) == 1);
  total += written;
  MCONNECT_CHECK(static_cast<std::size_t>(total) == plaintext.size());
  MCONNECT_CHECK(EVP_CIPHER_CTX_ctrl(context.get(), EVP_CTRL_AEAD_GET_TAG, kTagBytes,
                                     out.data() + kNonceBytes + plaintext.size()) == 1);
  return out;
}

struct Opened {
  std::uint64_t nonce = 0;
  std::vector<std::uint8_t> plaintext;
};

Result<Opened> Open(const MoshKey& key, std::span<const std::uint8_t> datagram) {
  if (datagram.size() < kNonceBytes + kTagBytes) {
    return Fail("datagram of {} bytes is too short for nonce and tag", datagram.size());
  }
  if (datagram.size() > kMoshMaxDatagram) {
    return Fail("datagram of {} bytes is longer than mosh ever sends ({})", datagram.size(), kMoshMaxDatagram);
  }
  WireReader reader(datagram);
  Opened opened;
  opened.nonce = *reader.U64();
  auto ciphertext = *reader.Bytes(datagram.size() - kNonceBytes - kTagBytes);
  auto tag = *reader.Bytes(kTagBytes);

  CipherContext context = OcbContext(key, opened.nonce, false, tag.data());
  // One spare block: OpenSSL may hold back a partial block until Final.
  opened.plaintext.resize(ciphertext.size() + 16);
  int written = 0;
  int total = 0;
  if (!ciphertext.empty()) {
    if (EVP_DecryptUpdate(context.get(), opened.plaintext.data(), &written, ciphertext.data(),
                          static_cast<int>(ciphertext.size())) != 1) {
      OPENSSL_cleanse(opened.plaintext.data(), opened.plaintext.size());
      return Fail("datagram failed authentication (wrong key, or not mosh)");
    }
    total = written;
  }
  if (EVP_DecryptFinal_ex(context.get(), opened.plaintext.data() + total, &written) != 1) {
    OPENSSL_cleanse(opened.plaintext.data(), opened.plaintext.size());
    return Fail("datagram failed authentication (wrong key, or not mosh)");
  }
  total += written;
  MCONNECT_CHECK(static_cast<std::size_t>(total) == ciphertext.size());
  opened.plaintext.resize(ciphertext.size());
  return opened;
}

std::uint16_t U16(std::span<const std::uint8_t> two) {
  return static_cast<std::uint16_t>((two[0] << 8) | two[1]);
}

}  // namespace

Result<MoshKey> DecodeMoshKey(std::string_view base64_22) {
  if (base64_22.size() != 22) {
    return Fail("mosh key must be 22 base64 characters, not {}", base64_22.size());
  }
  // 22 characters carry 132 bits: 128 of key, then 4 that must be zero.
  MoshKey key{};
  std::uint32_t accumulator = 0;
  int bits = 0;
  std::size_t out = 0;
  for (char c : base64_22) {
    int value;
    if (c >= 'A' && c <= 'Z') {
      value = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      value = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      value = c - '0' + 52;
    } else if (c == '+') {
      value = 62;
    } else if (c == '/') {
      value = 63;
    } else {
      return Fail("mosh key holds a character outside base64");
    }
    accumulator = (accumulator << 6) | static_cast<std::uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      MCONNECT_CHECK(out < key.size());
      key[out++] = static_cast<std::uint8_t>(accumulator >> bits);
      accumulator &= (1u << bits) - 1;
    }
  }
  MCONNECT_CHECK(out == key.size() && bits == 4);
  if (accumulator != 0) return Fail("mosh key is not the base64 of exactly 16 bytes");
  return key;
}

std::vector<std::uint8_t> CompressInstruction(const MoshInstruction& instruction) {
  TransportBuffers::Instruction message;
  message.set_protocol_version(instruction.protocol_version);
  message.set_old_num(instruction.old_num);
  message.set_new_num(instruction.new_num);
  message.set_ack_num(instruction.ack_num);
  message.set_throwaway_num(instruction.throwaway_num);
  message.set_diff(instruction.diff);
  message.set_chaff(instruction.chaff);
  std::string serialized = message.SerializeAsString();

  uLongf size = compressBound(static_cast<uLong>(serialized.size()));
  std::vector<std::uint8_t> out(size);
  MCONNECT_CHECK(compress(out.data(), &size, reinterpret_cast<const Bytef*>(serialized.data()),
                          static_cast<uLong>(serialized.size())) == Z_OK);
  out.resize(size);
  return out;
}

Result<MoshInstruction> DecompressInstruction(std::span<const std::uint8_t> compressed) {
  z_stream stream{};
  if (inflateInit(&stream) != Z_OK) return Fail("zlib: cannot initialize");
  std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&stream, inflateEnd);
  stream.next_in = const_cast<Bytef*>(compressed.data());
  stream.avail_in = static_cast<uInt>(compressed.size());

  std::string serialized;
  std::array<std::uint8_t, 16384> chunk;
  int status = Z_OK;
  while (status != Z_STREAM_END) {
    stream.next_out = chunk.data();
    stream.avail_out = chunk.size();
    status = inflate(&stream, Z_NO_FLUSH);
    if (status != Z_OK && status != Z_STREAM_END) {
      // Z_BUF_ERROR here means the input ended before the stream did.
      return Fail("instruction is not valid zlib data ({})", status == Z_BUF_ERROR ? "truncated" : "corrupt");
    }
    std::size_t produced = chunk.size() - stream.avail_out;
    if (serialized.size() + produced > kMoshMaxInstruction) {
      return Fail("instruction decompresses to more than {} bytes", kMoshMaxInstruction);
    }
    serialized.append(reinterpret_cast<const char*>(chunk.data()), produced);
  }
  if (stream.avail_in != 0) return Fail("{} bytes follow the instruction's zlib stream", stream.avail_in);

  TransportBuffers::Instruction message;
  if (!message.ParseFromString(serialized)) return Fail("instruction is not a valid TransportBuffers.Instruction");
  return MoshInstruction{.protocol_version = message.protocol_version(), .old_num = message.old_num(),
                         .new_num = message.new_num(), .ack_num = message.ack_num(),
                         .throwaway_num = message.throwaway_num(), .diff = message.diff(), .chaff = message.chaff()};
}

Result<std::vector<std::uint8_t>> EncodePacket(const MoshKey& key, const PacketFields& fields,
                                               std::span<const std::uint8_t> contents) {
  if (fields.seq & kDirectionBit) return Fail("sequence number {} does not fit 63 bits", fields.seq);
  if (fields.fragment_num & kFinalBit) return Fail("fragment number {} does not fit 15 bits", fields.fragment_num);
  const std::size_t plaintext_size = kTimestampBytes + kFragmentHeaderBytes + contents.size();
  if (kNonceBytes + plaintext_size + kTagBytes > kMoshMaxDatagram) {
    return Fail("fragment of {} bytes does not fit one mosh datagram", contents.size());
  }
  WireWriter plaintext(plaintext_size);
  plaintext.U8(static_cast<std::uint8_t>(fields.timestamp >> 8));
  plaintext.U8(static_cast<std::uint8_t>(fields.timestamp));
  plaintext.U8(static_cast<std::uint8_t>(fields.timestamp_reply >> 8));
  plaintext.U8(static_cast<std::uint8_t>(fields.timestamp_reply));
  plaintext.U64(fields.fragment_id);
  const auto number =
      static_cast<std::uint16_t>(fields.fragment_num | (fields.final_fragment ? kFinalBit : 0));
  plaintext.U8(static_cast<std::uint8_t>(number >> 8));
  plaintext.U8(static_cast<std::uint8_t>(number));
  plaintext.Bytes(contents);
  MCONNECT_CHECK(!plaintext.overflowed() && plaintext.size() == plaintext_size);

  const std::uint64_t nonce = fields.seq | (fields.direction == MoshDirection::kToClient ? kDirectionBit : 0);
  return Seal(key, nonce, plaintext.data());
}

Result<std::vector<std::uint8_t>> EncodeClientPacket(const MoshKey& key, std::uint64_t seq, std::uint16_t timestamp,
                                                     const MoshInstruction& instruction, std::uint64_t fragment_id) {
  PacketFields fields;
  fields.direction = MoshDirection::kToServer;
  fields.seq = seq;
  fields.timestamp = timestamp;
  fields.timestamp_reply = kMoshNoTimestamp;
  fields.fragment_id = fragment_id;
  fields.fragment_num = 0;
  fields.final_fragment = true;
  return EncodePacket(key, fields, CompressInstruction(instruction));
}

Result<DecodedPacket> DecodePacket(const MoshKey& key, std::span<const std::uint8_t> datagram) {
  auto opened = Open(key, datagram);
  if (!opened) return Fail(std::move(opened.error()));

  WireReader reader(opened->plaintext);
  auto timestamps = reader.Bytes(kTimestampBytes);
  auto fragment_id = reader.U64();
  auto fragment_num = reader.Bytes(2);
  if (!timestamps || !fragment_id || !fragment_num) {
    return Fail("authenticated datagram of {} bytes is too short for timestamps and fragment header",
                datagram.size());
  }
  DecodedPacket packet;
  packet.direction = (opened->nonce & kDirectionBit) ? MoshDirection::kToClient : MoshDirection::kToServer;
  packet.seq = opened->nonce & ~kDirectionBit;
  packet.timestamp = U16(timestamps->first(2));
  packet.timestamp_reply = U16(timestamps->subspan(2));
  packet.fragment_id = *fragment_id;
  const std::uint16_t number = U16(*fragment_num);
  packet.fragment_num = number & ~kFinalBit;
  packet.final_fragment = (number & kFinalBit) != 0;
  auto contents = *reader.Bytes(reader.remaining());
  packet.contents.assign(contents.begin(), contents.end());

  if (packet.fragment_num == 0 && packet.final_fragment) {
    auto instruction = DecompressInstruction(packet.contents);
    if (!instruction) return Fail("authenticated datagram: {}", instruction.error().message);
    packet.instruction = std::move(*instruction);
  }
  return packet;
}

Result<DecodedPacket> DecodeServerPacket(const MoshKey& key, std::span<const std::uint8_t> datagram) {
  auto packet = DecodePacket(key, datagram);
  if (packet && packet->direction != MoshDirection::kToClient) {
    return Fail("authenticated datagram travels toward the server, not the client (reflected or replayed)");
  }
  return packet;
}

}  // namespace mconnect::mosh
