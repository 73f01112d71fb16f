#include "mosh/datagram_frame.h"

namespace mconnect::mosh {

bool AppendDatagramFrame(std::string& out, std::string_view datagram) {
  if (datagram.size() > kMaxRelayedDatagram) return false;
  out.push_back(static_cast<char>(datagram.size() >> 8));
  out.push_back(static_cast<char>(datagram.size() & 0xFF));
  out.append(datagram);
  return true;
}

std::size_t TakeDatagramFrames(std::string_view buffer, const std::function<void(std::string_view)>& each) {
  std::size_t at = 0;
  while (buffer.size() - at >= 2) {
    std::size_t length = (static_cast<std::size_t>(static_cast<unsigned char>(buffer[at])) << 8) |
                         static_cast<unsigned char>(buffer[at + 1]);
    if (buffer.size() - at - 2 < length) break;
    each(buffer.substr(at + 2, length));
    at += 2 + length;
  }
  return at;
}

}  // namespace mconnect::mosh
