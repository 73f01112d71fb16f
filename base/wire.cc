#include "base/wire.h"

#include <algorithm>
#include <cstring>

#include "base/text.h"

namespace mconnect {

std::string_view WireErrorName(WireError error) {
  return NameIn(error, {{WireError::kTruncated, "truncated"},
                        {WireError::kTooLong, "length over limit"},
                        {WireError::kBadValue, "bad value"}});
}

WireResult<std::span<const std::uint8_t>> WireReader::Bytes(std::size_t count) {
  if (count > remaining()) return std::unexpected(WireError::kTruncated);
  auto bytes = input_.subspan(offset_, count);
  offset_ += count;
  return bytes;
}

WireResult<std::uint8_t> WireReader::U8() {
  auto bytes = Bytes(1);
  if (!bytes) return std::unexpected(bytes.error());
  return (*bytes)[0];
}

template <typename Unsigned>
WireResult<Unsigned> WireReader::BigEndian() {
  auto bytes = Bytes(sizeof(Unsigned));
  if (!bytes) return std::unexpected(bytes.error());
  Unsigned value = 0;
  for (std::uint8_t b : *bytes) value = static_cast<Unsigned>((value << 8) | b);
  return value;
}

WireResult<std::uint32_t> WireReader::U32() { return BigEndian<std::uint32_t>(); }

WireResult<std::uint64_t> WireReader::U64() { return BigEndian<std::uint64_t>(); }

WireResult<bool> WireReader::Bool() {
  auto value = U8();
  if (!value) return std::unexpected(value.error());
  return *value != 0;
}

WireResult<std::string> WireReader::String(std::size_t max_length) {
  std::size_t start = offset_;
  auto length = U32();
  if (!length) return std::unexpected(length.error());
  if (*length > max_length) {
    offset_ = start;
    return std::unexpected(WireError::kTooLong);
  }
  auto bytes = Bytes(*length);
  if (!bytes) {
    offset_ = start;
    return std::unexpected(bytes.error());
  }
  return std::string(bytes->begin(), bytes->end());
}

WireResult<std::string> WireReader::CString(std::size_t max_length) {
  std::size_t start = offset_;
  auto value = String(max_length);
  if (value && value->find('\0') != std::string::npos) {
    offset_ = start;
    return std::unexpected(WireError::kBadValue);
  }
  return value;
}

bool WireWriter::Reserve(std::size_t count) {
  if (overflowed_ || count > capacity_ - buffer_.size()) {
    overflowed_ = true;
    return false;
  }
  return true;
}

bool WireWriter::U8(std::uint8_t value) {
  if (!Reserve(1)) return false;
  buffer_.push_back(value);
  return true;
}

bool WireWriter::U32(std::uint32_t value) {
  if (!Reserve(4)) return false;
  for (int shift = 24; shift >= 0; shift -= 8) buffer_.push_back(static_cast<std::uint8_t>(value >> shift));
  return true;
}

bool WireWriter::U64(std::uint64_t value) {
  if (!Reserve(8)) return false;
  for (int shift = 56; shift >= 0; shift -= 8) buffer_.push_back(static_cast<std::uint8_t>(value >> shift));
  return true;
}

bool WireWriter::Bytes(std::span<const std::uint8_t> bytes) {
  if (!Reserve(bytes.size())) return false;
  buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
  return true;
}

bool WireWriter::Bytes(std::string_view bytes) {
  return Bytes(std::span(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
}

bool WireWriter::String(std::string_view bytes) {
  if (bytes.size() > UINT32_MAX || !Reserve(4 + bytes.size())) {
    overflowed_ = true;
    return false;
  }
  U32(static_cast<std::uint32_t>(bytes.size()));
  return Bytes(bytes);
}

bool WireWriter::PatchU32(std::size_t offset, std::uint32_t value) {
  if (offset > buffer_.size() || buffer_.size() - offset < 4) return false;
  for (int i = 0; i < 4; ++i) buffer_[offset + i] = static_cast<std::uint8_t>(value >> (24 - 8 * i));
  return true;
}

}  // namespace mconnect
