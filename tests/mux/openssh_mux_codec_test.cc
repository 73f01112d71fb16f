// The OpenSSH mux protocol codec against what OpenSSH's client sends (captures from OpenSSH
// 9.2p1), cut anywhere, and the limits of its framing.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "mux/openssh/codec.h"
#include "tests/mux/openssh_mux_frames.h"

namespace mconnect::mux::openssh::codec_test {
namespace {

// Our encoder must produce exactly the bytes OpenSSH's client produced.
void ExpectReencodesTo(const ClientMessage& message, const char* capture) {
  auto bytes = EncodeClientMessage(message);
  ASSERT_TRUE(bytes.has_value()) << EncodeErrorName(bytes.error());
  EXPECT_EQ(*bytes, Hex(capture));
}

TEST(OpenSshMuxCapture, Hello) {
  auto message = MustDecodeClient(Hex(kHello));
  ASSERT_TRUE(std::holds_alternative<Hello>(message));
  EXPECT_EQ(std::get<Hello>(message).version, kProtocolVersion);
  EXPECT_TRUE(std::get<Hello>(message).extensions.empty());
  ExpectReencodesTo(message, kHello);
  // The master's HELLO has the same bytes (OpenSSH 9.2's master sends no extension either).
  EXPECT_EQ(EncodeHello(), Hex(kHello));
}

TEST(OpenSshMuxCapture, AliveCheckTerminateStopProxy) {
  EXPECT_EQ(MustDecodeClient(Hex(kAliveCheck)), ClientMessage(AliveCheck{0}));
  EXPECT_EQ(MustDecodeClient(Hex(kTerminate)), ClientMessage(Terminate{0}));
  EXPECT_EQ(MustDecodeClient(Hex(kStopListening)), ClientMessage(StopListening{0}));
  EXPECT_EQ(MustDecodeClient(Hex(kProxy)), ClientMessage(Proxy{0}));
  ExpectReencodesTo(AliveCheck{0}, kAliveCheck);
  ExpectReencodesTo(Terminate{0}, kTerminate);
  ExpectReencodesTo(StopListening{0}, kStopListening);
  ExpectReencodesTo(Proxy{0}, kProxy);
}

TEST(OpenSshMuxCapture, OpenForwards) {
  OpenForward local{0, {kMuxFwdLocal, "", 1234, "localhost", 22}};
  EXPECT_EQ(MustDecodeClient(Hex(kOpenLocal)), ClientMessage(local));
  ExpectReencodesTo(local, kOpenLocal);

  OpenForward remote{0, {kMuxFwdRemote, "", 0, "localhost", 22}};
  EXPECT_EQ(MustDecodeClient(Hex(kOpenRemoteAnyPort)), ClientMessage(remote));
  ExpectReencodesTo(remote, kOpenRemoteAnyPort);

  OpenForward star{0, {kMuxFwdRemote, "*", 2222, "localhost", 22}};
  EXPECT_EQ(MustDecodeClient(Hex(kOpenRemoteStar)), ClientMessage(star));
  ExpectReencodesTo(star, kOpenRemoteStar);

  // -D: OpenSSH names the connect side "socks", port 0.
  OpenForward dynamic{0, {kMuxFwdDynamic, "", 1080, "socks", 0}};
  EXPECT_EQ(MustDecodeClient(Hex(kOpenDynamic)), ClientMessage(dynamic));
  ExpectReencodesTo(dynamic, kOpenDynamic);

  OpenForward unix_socket{0, {kMuxFwdLocal, "/tmp/l.sock", kPortStreamLocal, "/run/r.sock", kPortStreamLocal}};
  EXPECT_EQ(MustDecodeClient(Hex(kOpenLocalUnix)), ClientMessage(unix_socket));
  ExpectReencodesTo(unix_socket, kOpenLocalUnix);

  for (const auto* forward : {&local.forward, &remote.forward, &star.forward, &dynamic.forward,
                              &unix_socket.forward}) {
    EXPECT_EQ(InvalidForwardReason(*forward), std::nullopt);
  }
}

TEST(OpenSshMuxCapture, CloseForwards) {
  CloseForward local{0, {kMuxFwdLocal, "", 1234, "localhost", 22}};
  EXPECT_EQ(MustDecodeClient(Hex(kCloseLocal)), ClientMessage(local));
  ExpectReencodesTo(local, kCloseLocal);
  CloseForward dynamic{0, {kMuxFwdDynamic, "", 1080, "socks", 0}};
  EXPECT_EQ(MustDecodeClient(Hex(kCloseDynamic)), ClientMessage(dynamic));
  ExpectReencodesTo(dynamic, kCloseDynamic);
}

TEST(OpenSshMuxCapture, NewSessionWithoutTty) {
  NewSession expected;
  expected.request_id = 1;  // request 0 was the ALIVE_CHECK the client sends first
  expected.escape_char = '~';
  expected.term = "xterm";
  expected.command = "exit 42";
  EXPECT_EQ(MustDecodeClient(Hex(kSession)), ClientMessage(expected));
  ExpectReencodesTo(expected, kSession);
}

TEST(OpenSshMuxCapture, NewSessionWithTty) {
  NewSession expected;
  expected.request_id = 1;
  expected.want_tty = true;
  expected.escape_char = '~';
  expected.term = "xterm";
  expected.command = "exit 42";
  EXPECT_EQ(MustDecodeClient(Hex(kSessionTty)), ClientMessage(expected));
  ExpectReencodesTo(expected, kSessionTty);
}

TEST(OpenSshMuxCapture, NewSessionSubsystemEnvNoEscape) {
  NewSession expected;
  expected.request_id = 1;
  expected.subsystem = true;
  expected.escape_char = kNoEscapeChar;
  expected.term = "xterm";
  expected.command = "sftp";
  expected.env = {"LANG=C.UTF-8", "FOO=bar"};
  EXPECT_EQ(MustDecodeClient(Hex(kSessionSubsystemEnv)), ClientMessage(expected));
  ExpectReencodesTo(expected, kSessionSubsystemEnv);
}

TEST(OpenSshMuxCapture, StdioForward) {
  NewStdioForward expected{1, "", "host", 22};
  EXPECT_EQ(MustDecodeClient(Hex(kStdioForward)), ClientMessage(expected));
  ExpectReencodesTo(expected, kStdioForward);
}

// Every prefix of every capture: the framer wants more and never fails or reads too far.
TEST(OpenSshMuxCapture, EveryTruncatedPrefixNeedsMoreBytes) {
  for (const char* capture : kAllCaptures) {
    auto bytes = Hex(capture);
    for (std::size_t n = 0; n < bytes.size(); ++n) {
      auto parsed = ParseFrame(std::span(bytes).first(n));
      ASSERT_TRUE(parsed.has_value()) << capture << " at " << n;
      EXPECT_FALSE(parsed->has_value()) << capture << " at " << n;
      auto wanted = FrameSizeWanted(std::span(bytes).first(n));
      ASSERT_TRUE(wanted.has_value());
      EXPECT_EQ(*wanted, n < 4 ? 4u : bytes.size());
    }
  }
}

// Every capture with its body cut short (and the length field saying so): a clean error, or, where
// the cut falls between two env strings, a shorter message that re-encodes to exactly those bytes.
TEST(OpenSshMuxCapture, EveryTruncatedBodyIsACleanErrorOrAnExactShorterMessage) {
  for (const char* capture : kAllCaptures) {
    Frame whole = MustParse(Hex(capture));
    for (std::size_t n = 0; n < whole.body.size(); ++n) {
      Frame cut{whole.type, std::vector<std::uint8_t>(whole.body.begin(), whole.body.begin() + n)};
      auto message = DecodeClientMessage(cut);
      if (!message) {
        EXPECT_EQ(message.error().kind, DecodeErrorKind::kTruncated) << capture << " at " << n;
        EXPECT_EQ(message.error().type, whole.type);
        EXPECT_FALSE(DescribeDecodeError(message.error()).empty());
        continue;
      }
      EXPECT_EQ(whole.type, kMuxCNewSession) << capture << " decoded when cut at " << n;
      auto again = EncodeClientMessage(*message);
      ASSERT_TRUE(again.has_value());
      EXPECT_EQ(*again, FrameOf(cut.type, cut.body)) << capture << " at " << n;
    }
  }
}

TEST(OpenSshMuxCapture, TruncationErrorsNameTheFieldAndRequest) {
  Frame whole = MustParse(Hex(kSession));
  // Cut inside "term": the request id was read, the term was not.
  Frame cut{whole.type, std::vector<std::uint8_t>(whole.body.begin(), whole.body.begin() + 30)};
  auto message = DecodeClientMessage(cut);
  ASSERT_FALSE(message.has_value());
  EXPECT_EQ(message.error().request_id, 1u);
  EXPECT_EQ(message.error().field, "term");
  EXPECT_EQ(DescribeDecodeError(message.error()), "MUX_C_NEW_SESSION (request 1): term: truncated");
}

TEST(OpenSshMuxCapture, FramesBackToBackAreCutOneAtATime) {
  std::vector<std::uint8_t> stream = Hex(kHello);
  Append(stream, Hex(kAliveCheck));
  Append(stream, Hex(kSession));
  std::span<const std::uint8_t> rest = stream;
  std::vector<std::uint32_t> types;
  while (!rest.empty()) {
    auto parsed = ParseFrame(rest);
    ASSERT_TRUE(parsed.has_value());
    ASSERT_TRUE(parsed->has_value());
    types.push_back((*parsed)->frame.type);
    rest = rest.subspan((*parsed)->consumed);
  }
  EXPECT_EQ(types, (std::vector<std::uint32_t>{kMuxMsgHello, kMuxCAliveCheck, kMuxCNewSession}));
}

// ---- Framing limits ----

TEST(OpenSshMuxFrame, LengthAboveTheCapIsRejectedFromTheHeaderAlone) {
  auto parsed = ParseFrame(U32(kMaxFrame + 1));
  ASSERT_FALSE(parsed.has_value());
  EXPECT_EQ(parsed.error(), FrameError::kTooLarge);
  EXPECT_EQ(FrameSizeWanted(U32(0xffffffff)).error(), FrameError::kTooLarge);
  // Exactly the cap is allowed, as in OpenSSH; it just needs its bytes.
  auto at_cap = ParseFrame(U32(kMaxFrame));
  ASSERT_TRUE(at_cap.has_value());
  EXPECT_FALSE(at_cap->has_value());
  EXPECT_EQ(*FrameSizeWanted(U32(kMaxFrame)), 4 + kMaxFrame);
}

TEST(OpenSshMuxFrame, LengthBelowTheTypeIsRejected) {
  for (std::uint32_t length : {0u, 1u, 3u}) {
    auto parsed = ParseFrame(U32(length));
    ASSERT_FALSE(parsed.has_value()) << length;
    EXPECT_EQ(parsed.error(), FrameError::kTooSmall);
  }
}

TEST(OpenSshMuxFrame, ATypeWithoutBodyIsAFrame) {
  auto bytes = FrameOf(kMuxCAliveCheck, {});
  Frame frame = MustParse(bytes);
  EXPECT_EQ(frame.type, kMuxCAliveCheck);
  EXPECT_TRUE(frame.body.empty());
  // ...but an ALIVE_CHECK without its request id is a truncated message.
  auto error = MustFailClient(bytes);
  EXPECT_EQ(error.kind, DecodeErrorKind::kTruncated);
  EXPECT_EQ(error.request_id, std::nullopt);
}

TEST(OpenSshMuxFrame, AFullSizeFrameParses) {
  NewSession session;
  session.request_id = 3;
  // Fill the frame to exactly kMaxFrame: 4 type + 4 id + 4 reserved + 5*4 + 4 term + 4 command.
  session.command.assign(kMaxFrame - 40, 'x');
  auto bytes = EncodeClientMessage(session);
  ASSERT_TRUE(bytes.has_value());
  EXPECT_EQ(bytes->size(), 4 + kMaxFrame);
  EXPECT_EQ(MustDecodeClient(*bytes), ClientMessage(session));
  session.command.push_back('x');
  EXPECT_EQ(EncodeClientMessage(session).error(), EncodeError::kTooLong);
}

}  // namespace
}  // namespace mconnect::mux::openssh::codec_test
