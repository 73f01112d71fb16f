// Bytes from an OpenSSH mux client (or master): cut frames off the buffer as the server does and
// decode each one both as a client and as a server message. Beyond "no crash": every frame
// consumes at least its header and never more than the buffer holds, FrameSizeWanted agrees with
// ParseFrame, and whatever decodes re-encodes to a frame that decodes to the same message (the
// decoders never accept a value the encoders refuse).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "mux/openssh/codec.h"

using namespace mconnect::mux::openssh;

namespace {

template <typename Message, typename Decode, typename Encode>
void CheckRoundTrip(const Frame& frame, Decode decode, Encode encode) {
  auto message = decode(frame);
  if (!message) {
    (void)DescribeDecodeError(message.error());
    if (message.error().type != frame.type) std::abort();
    return;
  }
  auto bytes = encode(*message);
  if (!bytes) std::abort();
  auto again = ParseFrame(*bytes);
  if (!again || !again->has_value() || (*again)->consumed != bytes->size()) std::abort();
  auto decoded = decode((*again)->frame);
  if (!decoded || !(*decoded == *message)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::span<const std::uint8_t> rest(data, size);
  while (true) {
    auto wanted = FrameSizeWanted(rest);
    auto parsed = ParseFrame(rest);
    if (wanted.has_value() != parsed.has_value()) std::abort();
    if (!parsed) {
      if (wanted.error() != parsed.error()) std::abort();
      (void)FrameErrorName(parsed.error());
      break;
    }
    if (!parsed->has_value()) {
      if (*wanted <= rest.size() && *wanted != 4) std::abort();
      break;
    }
    const Parsed& frame = **parsed;
    if (frame.consumed < 8 || frame.consumed > rest.size() || frame.consumed != *wanted ||
        frame.frame.body.size() + 8 != frame.consumed) {
      std::abort();
    }
    (void)MessageTypeName(frame.frame.type);
    CheckRoundTrip<ClientMessage>(frame.frame, DecodeClientMessage, EncodeClientMessage);
    CheckRoundTrip<ServerMessage>(frame.frame, DecodeServerMessage, EncodeServerMessage);
    if (auto message = DecodeClientMessage(frame.frame)) {
      if (const auto* open = std::get_if<OpenForward>(&*message)) (void)InvalidForwardReason(open->forward);
    }
    rest = rest.subspan(frame.consumed);
  }
  return 0;
}
