// mosh's datagrams carried over an SSH channel (the `ssh` transport): each one as a uint16
// big-endian length and exactly that many bytes. Datagrams are never merged or split, so the
// far end sends each one as it came. Pure: bytes in, datagrams out.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace mconnect::mosh {

// The largest datagram a frame can carry (the uint16 length). mosh sends about 1300 bytes.
inline constexpr std::size_t kMaxRelayedDatagram = 0xFFFF;

// Appends one frame to `out`. False (nothing appended) when the datagram is too large.
bool AppendDatagramFrame(std::string& out, std::string_view datagram);

// Calls `each` for every complete frame at the front of `buffer`, in order, and returns how many
// bytes they took; a partial frame at the end is left for when the rest arrives. An empty
// datagram is a valid frame (and passed on as such).
std::size_t TakeDatagramFrames(std::string_view buffer, const std::function<void(std::string_view)>& each);

}  // namespace mconnect::mosh
