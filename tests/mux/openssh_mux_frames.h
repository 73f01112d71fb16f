// What the OpenSSH mux codec tests (tests/mux/openssh_mux_*_test.cc) share: frames captured
// from OpenSSH's own client, and helpers that build the frames it would never send.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "mux/openssh/codec.h"
#include "tests/support/hex.h"

// A namespace of its own: these short names stay out of the codec's.
namespace mconnect::mux::openssh::codec_test {

using ::mconnect::testing::Hex;

inline std::vector<std::uint8_t> U32(std::uint32_t v) {
  return {static_cast<std::uint8_t>(v >> 24), static_cast<std::uint8_t>(v >> 16), static_cast<std::uint8_t>(v >> 8),
          static_cast<std::uint8_t>(v)};
}

inline void Append(std::vector<std::uint8_t>& out, const std::vector<std::uint8_t>& more) {
  out.insert(out.end(), more.begin(), more.end());
}

inline void AppendString(std::vector<std::uint8_t>& out, std::string_view s) {
  Append(out, U32(static_cast<std::uint32_t>(s.size())));
  out.insert(out.end(), s.begin(), s.end());
}

// A frame around a hand-built body.
inline std::vector<std::uint8_t> FrameOf(std::uint32_t type, const std::vector<std::uint8_t>& body) {
  std::vector<std::uint8_t> out = U32(static_cast<std::uint32_t>(body.size() + 4));
  Append(out, U32(type));
  Append(out, body);
  return out;
}

inline Frame MustParse(const std::vector<std::uint8_t>& bytes) {
  auto parsed = ParseFrame(bytes);
  EXPECT_TRUE(parsed.has_value());
  if (!parsed || !parsed->has_value()) {
    ADD_FAILURE() << "no complete frame";
    return {};
  }
  EXPECT_EQ((*parsed)->consumed, bytes.size());
  return (*parsed)->frame;
}

inline ClientMessage MustDecodeClient(const std::vector<std::uint8_t>& bytes) {
  auto message = DecodeClientMessage(MustParse(bytes));
  if (!message) {
    ADD_FAILURE() << DescribeDecodeError(message.error());
    return AliveCheck{0xdeadbeef};
  }
  return *message;
}

inline DecodeError MustFailClient(const std::vector<std::uint8_t>& bytes) {
  auto message = DecodeClientMessage(MustParse(bytes));
  EXPECT_FALSE(message.has_value());
  if (message) return {};
  return message.error();
}

// ---- Frames captured from OpenSSH 9.2p1's client (Debian 12) talking to a recording master. ----
// HELLO, sent by every client before anything else.
inline constexpr const char* kHello = "000000080000000100000004";
// ssh -S sock -O check host (and the first request of every session / -W client).
inline constexpr const char* kAliveCheck = "000000081000000400000000";
// ssh -S sock -O exit host
inline constexpr const char* kTerminate = "000000081000000500000000";
// ssh -S sock -O stop host
inline constexpr const char* kStopListening = "000000081000000900000000";
// ssh -S sock -O forward -L 1234:localhost:22 host
inline constexpr const char* kOpenLocal =
    "0000002510000006000000000000000100000000000004d2000000096c6f63616c686f737400000016";
// ssh -S sock -O forward -R 0:localhost:22 host
inline constexpr const char* kOpenRemoteAnyPort =
    "000000251000000600000000000000020000000000000000000000096c6f63616c686f737400000016";
// ssh -S sock -O forward -R '*:2222:localhost:22' host
inline constexpr const char* kOpenRemoteStar =
    "00000026100000060000000000000002000000012a000008ae000000096c6f63616c686f737400000016";
// ssh -S sock -O forward -D 1080 host
inline constexpr const char* kOpenDynamic = "00000021100000060000000000000003000000000000043800000005736f636b7300000000";
// ssh -S sock -O forward -L /tmp/l.sock:/run/r.sock host
inline constexpr const char* kOpenLocalUnix =
    "000000321000000600000000000000010000000b2f746d702f6c2e736f636bfffffffe0000000b2f72756e2f722e736f636bff"
    "fffffe";
// ssh -S sock -O cancel -L 1234:localhost:22 host
inline constexpr const char* kCloseLocal =
    "0000002510000007000000000000000100000000000004d2000000096c6f63616c686f737400000016";
// ssh -S sock -O cancel -D 1080 host
inline constexpr const char* kCloseDynamic = "00000021100000070000000000000003000000000000043800000005736f636b7300000000";
// TERM=xterm ssh -S sock host 'exit 42'   (after ALIVE_CHECK with request 0)
inline constexpr const char* kSession =
    "00000034100000020000000100000000000000000000000000000000000000000000007e00000005787465726d0000000765"
    "786974203432";
// TERM=xterm ssh -tt -S sock host 'exit 42'
inline constexpr const char* kSessionTty =
    "00000034100000020000000100000000000000010000000000000000000000000000007e00000005787465726d0000000765"
    "786974203432";
// TERM=xterm LANG=C.UTF-8 ssh -o SendEnv=LANG -o SetEnv=FOO=bar -e none -s -S sock host sftp
inline constexpr const char* kSessionSubsystemEnv =
    "0000004c10000002000000010000000000000000000000000000000000000001ffffffff00000005787465726d000000047366"
    "74700000000c4c414e473d432e5554462d3800000007464f4f3d626172";
// ssh -S sock -W host:22 x   (after ALIVE_CHECK with request 0)
inline constexpr const char* kStdioForward = "0000001810000008000000010000000000000004686f737400000016";
// ssh -S sock -O proxy host
inline constexpr const char* kProxy = "000000081000000f00000000";

inline constexpr const char* kAllCaptures[] = {
    kHello,       kAliveCheck,   kTerminate,   kStopListening,        kOpenLocal,    kOpenRemoteAnyPort,
    kOpenRemoteStar, kOpenDynamic, kOpenLocalUnix, kCloseLocal,       kCloseDynamic, kSession,
    kSessionTty,  kSessionSubsystemEnv, kStdioForward, kProxy,
};

}  // namespace mconnect::mux::openssh::codec_test
