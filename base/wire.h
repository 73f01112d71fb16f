// Bounds-checked reading and capped writing of SSH-style wire data (big-endian integers,
// uint32-length-prefixed strings). Nothing else in the project indexes raw protocol bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mconnect {

enum class WireError {
  kTruncated,  // the input ends before the value does
  kTooLong,    // a length field exceeds the caller's limit
  kBadValue,   // the bytes are present but not acceptable (e.g. NUL inside a string)
};

std::string_view WireErrorName(WireError error);

template <typename T>
using WireResult = std::expected<T, WireError>;

class WireReader {
 public:
  explicit WireReader(std::span<const std::uint8_t> input) : input_(input) {}

  WireResult<std::uint8_t> U8();
  WireResult<std::uint32_t> U32();
  WireResult<std::uint64_t> U64();
  WireResult<bool> Bool();
  // Exactly `count` bytes, as a view into the input.
  WireResult<std::span<const std::uint8_t>> Bytes(std::size_t count);
  // A uint32 length followed by that many bytes; the length may not exceed `max_length`.
  WireResult<std::string> String(std::size_t max_length);
  // As String, but rejects embedded NUL bytes (for paths, commands, names).
  WireResult<std::string> CString(std::size_t max_length);

  std::size_t remaining() const { return input_.size() - offset_; }
  bool empty() const { return remaining() == 0; }
  std::size_t offset() const { return offset_; }

 private:
  // The next sizeof(Unsigned) bytes, most significant first (SSH's and our framing's order).
  template <typename Unsigned>
  WireResult<Unsigned> BigEndian();

  std::span<const std::uint8_t> input_;
  std::size_t offset_ = 0;
};

// Appends to a buffer that never grows past `capacity` bytes. A write that would exceed it is
// refused and marks the writer overflowed, so a whole message is either complete or rejected.
class WireWriter {
 public:
  explicit WireWriter(std::size_t capacity) : capacity_(capacity) {}

  bool U8(std::uint8_t value);
  bool U32(std::uint32_t value);
  bool U64(std::uint64_t value);
  bool Bool(bool value) { return U8(value ? 1 : 0); }
  bool Bytes(std::span<const std::uint8_t> bytes);
  bool Bytes(std::string_view bytes);
  bool String(std::string_view bytes);  // uint32 length + bytes
  // Overwrites 4 bytes already written at `offset` (to fill in a frame length afterwards).
  bool PatchU32(std::size_t offset, std::uint32_t value);

  bool overflowed() const { return overflowed_; }
  std::size_t size() const { return buffer_.size(); }
  const std::vector<std::uint8_t>& data() const { return buffer_; }
  std::vector<std::uint8_t> Take() { return std::move(buffer_); }

 private:
  bool Reserve(std::size_t count);

  std::size_t capacity_;
  std::vector<std::uint8_t> buffer_;
  bool overflowed_ = false;
};

}  // namespace mconnect
