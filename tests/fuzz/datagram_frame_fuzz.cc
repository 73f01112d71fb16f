// The relay's frame decoder on arbitrary bytes: never reads past the buffer, consumes only
// whole frames, and re-encoding what it took gives back exactly the bytes it consumed.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mosh/datagram_frame.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string again;
  std::size_t consumed = mconnect::mosh::TakeDatagramFrames(input, [&again](std::string_view datagram) {
    if (!mconnect::mosh::AppendDatagramFrame(again, datagram)) std::abort();
  });
  if (consumed > size || again != input.substr(0, consumed)) std::abort();
  if (size - consumed >= 2) {
    std::size_t length = (static_cast<std::size_t>(data[consumed]) << 8) | data[consumed + 1];
    if (size - consumed - 2 >= length) std::abort();  // a complete frame was left behind
  }
  return 0;
}
