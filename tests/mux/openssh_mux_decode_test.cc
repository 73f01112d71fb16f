// The OpenSSH mux protocol decoder's errors on frames OpenSSH's client never sends, and the
// master's side: what it sends back, and every message through encode and decode.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "mux/openssh/codec.h"
#include "mux/openssh/requests.h"
#include "tests/mux/openssh_mux_frames.h"

namespace mconnect::mux::openssh::codec_test {
namespace {

// ---- Decoder errors ----

TEST(OpenSshMuxDecode, UnknownTypeKeepsItsRequestIdForTheFailureReply) {
  for (std::uint32_t type : {kMuxCExtInfo, 0x10000003u, kMuxSOk, 0x12345678u}) {
    auto error = MustFailClient(FrameOf(type, U32(77)));
    EXPECT_EQ(error.kind, DecodeErrorKind::kUnknownType) << type;
    EXPECT_EQ(error.type, type);
    EXPECT_EQ(error.request_id, 77u);
  }
  auto described = DescribeDecodeError(MustFailClient(FrameOf(0x12345678, U32(5))));
  EXPECT_EQ(described, "type 0x12345678 (request 5): unsupported message type");
  // An unknown type too short to hold a request id cannot be answered: truncated.
  EXPECT_EQ(MustFailClient(FrameOf(0x12345678, {0, 0})).kind, DecodeErrorKind::kTruncated);
}

TEST(OpenSshMuxDecode, HelloVersionIsReportedNotJudged) {
  auto message = MustDecodeClient(FrameOf(kMuxMsgHello, U32(3)));
  EXPECT_EQ(std::get<Hello>(message).version, 3u);
}

TEST(OpenSshMuxDecode, HelloExtensions) {
  Hello hello{4, {{"info", "0"}, {"x@example.com", std::string("\0\1", 2)}}};
  auto bytes = EncodeClientMessage(hello);
  ASSERT_TRUE(bytes.has_value());
  EXPECT_EQ(MustDecodeClient(*bytes), ClientMessage(hello));
  // OpenSSH >= 9.9's master HELLO: version 4, extension "info" = "0".
  std::vector<std::uint8_t> body = U32(4);
  AppendString(body, "info");
  AppendString(body, "0");
  auto server = DecodeServerMessage(MustParse(FrameOf(kMuxMsgHello, body)));
  ASSERT_TRUE(server.has_value());
  EXPECT_EQ(*server, ServerMessage(Hello{4, {{"info", "0"}}}));
}

TEST(OpenSshMuxDecode, HelloExtensionCountIsCapped) {
  std::vector<std::uint8_t> body = U32(4);
  for (std::size_t i = 0; i <= kMaxHelloExtensions; ++i) {
    AppendString(body, "n");
    AppendString(body, "");
  }
  auto error = MustFailClient(FrameOf(kMuxMsgHello, body));
  EXPECT_EQ(error.kind, DecodeErrorKind::kTooMany);
  Hello hello;
  hello.extensions.assign(kMaxHelloExtensions + 1, {"n", ""});
  EXPECT_EQ(EncodeClientMessage(hello).error(), EncodeError::kTooLong);
}

TEST(OpenSshMuxDecode, TrailingBytesAfterFixedMessagesAreIgnoredAsMuxCDoes) {
  std::vector<std::uint8_t> body = U32(9);
  Append(body, {1, 2, 3});
  EXPECT_EQ(MustDecodeClient(FrameOf(kMuxCAliveCheck, body)), ClientMessage(AliveCheck{9}));
  EXPECT_EQ(MustDecodeClient(FrameOf(kMuxCTerminate, body)), ClientMessage(Terminate{9}));
  Frame forward = MustParse(Hex(kOpenLocal));
  forward.body.push_back(0);
  auto message = DecodeClientMessage(forward);
  ASSERT_TRUE(message.has_value());
  EXPECT_EQ(std::get<OpenForward>(*message).forward.connect_port, 22u);
}

TEST(OpenSshMuxDecode, TrailingBytesInHelloAndNewSessionAreRejected) {
  Frame hello = MustParse(Hex(kHello));
  Append(hello.body, {0, 0, 1});
  auto error = DecodeClientMessage(hello);
  ASSERT_FALSE(error.has_value());
  EXPECT_EQ(error.error().kind, DecodeErrorKind::kTruncated);
  EXPECT_EQ(error.error().field, "extension name");

  Frame session = MustParse(Hex(kSession));
  Append(session.body, {0, 0});
  auto session_error = DecodeClientMessage(session);
  ASSERT_FALSE(session_error.has_value());
  EXPECT_EQ(session_error.error().kind, DecodeErrorKind::kTruncated);
  EXPECT_EQ(session_error.error().field, "env");
}

// NEW_SESSION's body up to (not including) term, with the given request id.
std::vector<std::uint8_t> SessionHead(std::uint32_t request_id) {
  std::vector<std::uint8_t> body = U32(request_id);
  AppendString(body, "");
  for (int i = 0; i < 4; ++i) Append(body, U32(0));
  Append(body, U32(kNoEscapeChar));
  return body;
}

TEST(OpenSshMuxDecode, StringsOverTheirCapAreTooLong) {
  std::vector<std::uint8_t> body = SessionHead(2);
  AppendString(body, std::string(kMaxStringBytes + 1, 't'));
  AppendString(body, "");
  auto error = MustFailClient(FrameOf(kMuxCNewSession, body));
  EXPECT_EQ(error.kind, DecodeErrorKind::kTooLong);
  EXPECT_EQ(error.field, "term");
  EXPECT_EQ(error.request_id, 2u);

  // A length field far beyond the body: too long, before anything is copied.
  std::vector<std::uint8_t> huge = U32(1);
  Append(huge, U32(0xfffffff0));
  EXPECT_EQ(MustFailClient(FrameOf(kMuxCNewStdioFwd, huge)).kind, DecodeErrorKind::kTooLong);

  // A string exactly at the cap is fine.
  std::vector<std::uint8_t> at_cap = SessionHead(2);
  AppendString(at_cap, std::string(kMaxStringBytes, 't'));
  AppendString(at_cap, "");
  EXPECT_TRUE(DecodeClientMessage(MustParse(FrameOf(kMuxCNewSession, at_cap))).has_value());

  NewSession session;
  session.term.assign(kMaxStringBytes + 1, 't');
  EXPECT_EQ(EncodeClientMessage(session).error(), EncodeError::kTooLong);
}

TEST(OpenSshMuxDecode, LongCommandsAreBoundOnlyByTheFrame) {
  NewSession session;
  session.term = "xterm";
  session.command.assign(100 * 1024, 'c');
  auto bytes = EncodeClientMessage(session);
  ASSERT_TRUE(bytes.has_value());
  EXPECT_EQ(MustDecodeClient(*bytes), ClientMessage(session));
}

TEST(OpenSshMuxDecode, NulInACStringIsABadValue) {
  std::vector<std::uint8_t> body = SessionHead(4);
  AppendString(body, "xterm");
  AppendString(body, std::string("ls\0rm", 5));
  auto error = MustFailClient(FrameOf(kMuxCNewSession, body));
  EXPECT_EQ(error.kind, DecodeErrorKind::kBadValue);
  EXPECT_EQ(error.field, "command");

  NewSession session;
  session.env = {std::string("A=\0", 3)};
  EXPECT_EQ(EncodeClientMessage(session).error(), EncodeError::kBadValue);
}

TEST(OpenSshMuxDecode, ReservedMayHoldAnyBytes) {
  std::vector<std::uint8_t> body = U32(1);
  AppendString(body, std::string("\0\xff", 2));
  AppendString(body, "host");
  Append(body, U32(22));
  auto message = MustDecodeClient(FrameOf(kMuxCNewStdioFwd, body));
  EXPECT_EQ(std::get<NewStdioForward>(message).reserved, std::string("\0\xff", 2));
}

TEST(OpenSshMuxDecode, EnvCountIsCapped) {
  std::vector<std::uint8_t> body = SessionHead(1);
  AppendString(body, "xterm");
  AppendString(body, "");
  for (std::size_t i = 0; i < kMaxEnvStrings; ++i) AppendString(body, "A=1");
  auto ok = MustDecodeClient(FrameOf(kMuxCNewSession, body));
  EXPECT_EQ(std::get<NewSession>(ok).env.size(), kMaxEnvStrings);
  AppendString(body, "B=2");
  auto error = MustFailClient(FrameOf(kMuxCNewSession, body));
  EXPECT_EQ(error.kind, DecodeErrorKind::kTooMany);
  EXPECT_EQ(error.field, "env");
  NewSession session;
  session.env.assign(kMaxEnvStrings + 1, "A=1");
  EXPECT_EQ(EncodeClientMessage(session).error(), EncodeError::kTooLong);
}

TEST(OpenSshMuxDecode, NonzeroFlagsAreTrue) {
  std::vector<std::uint8_t> body = U32(1);
  AppendString(body, "");
  Append(body, U32(2));           // want tty
  Append(body, U32(0x80000000));  // want x11
  Append(body, U32(1));           // want agent
  Append(body, U32(0));           // subsystem
  Append(body, U32('~'));
  AppendString(body, "vt100");
  AppendString(body, "");
  auto session = std::get<NewSession>(MustDecodeClient(FrameOf(kMuxCNewSession, body)));
  EXPECT_TRUE(session.want_tty);
  EXPECT_TRUE(session.want_x11);
  EXPECT_TRUE(session.want_agent);
  EXPECT_FALSE(session.subsystem);
  EXPECT_EQ(session.escape_char, static_cast<std::uint32_t>('~'));
  EXPECT_TRUE(session.command.empty());
  EXPECT_TRUE(session.env.empty());
}

std::vector<std::uint8_t> ForwardBody(std::uint32_t type, std::uint32_t listen_port, std::uint32_t connect_port) {
  std::vector<std::uint8_t> body = U32(6);
  Append(body, U32(type));
  AppendString(body, "");
  Append(body, U32(listen_port));
  AppendString(body, "localhost");
  Append(body, U32(connect_port));
  return body;
}

TEST(OpenSshMuxDecode, PortsOutsideTheRangeAreBadValues) {
  auto listen = MustFailClient(FrameOf(kMuxCOpenFwd, ForwardBody(kMuxFwdLocal, 65536, 22)));
  EXPECT_EQ(listen.kind, DecodeErrorKind::kBadValue);
  EXPECT_EQ(listen.field, "listen port");
  EXPECT_EQ(listen.request_id, 6u);
  auto connect = MustFailClient(FrameOf(kMuxCCloseFwd, ForwardBody(kMuxFwdLocal, 22, 0xffffffff)));
  EXPECT_EQ(connect.kind, DecodeErrorKind::kBadValue);
  EXPECT_EQ(connect.field, "connect port");
  EXPECT_TRUE(DecodeClientMessage(MustParse(FrameOf(kMuxCOpenFwd, ForwardBody(kMuxFwdLocal, 65535, 1)))));

  std::vector<std::uint8_t> stdio = U32(1);
  AppendString(stdio, "");
  AppendString(stdio, "host");
  Append(stdio, U32(70000));
  EXPECT_EQ(MustFailClient(FrameOf(kMuxCNewStdioFwd, stdio)).kind, DecodeErrorKind::kBadValue);

  EXPECT_EQ(EncodeClientMessage(NewStdioForward{1, "", "h", 65536}).error(), EncodeError::kBadValue);
  OpenForward bad{1, {kMuxFwdLocal, "", 70000, "h", 1}};
  EXPECT_EQ(EncodeClientMessage(bad).error(), EncodeError::kBadValue);
}

TEST(OpenSshMuxDecode, StdioForwardToAUnixSocket) {
  NewStdioForward forward{1, "", "/run/app.sock", kPortStreamLocal};
  auto bytes = EncodeClientMessage(forward);
  ASSERT_TRUE(bytes.has_value());
  EXPECT_EQ(MustDecodeClient(*bytes), ClientMessage(forward));
}

TEST(OpenSshMuxDecode, BadForwardTypesDecodeAndAreReportedByInvalidForwardReason) {
  auto message = MustDecodeClient(FrameOf(kMuxCOpenFwd, ForwardBody(9, 1234, 22)));
  const ForwardSpec& forward = std::get<OpenForward>(message).forward;
  EXPECT_EQ(forward.type, 9u);
  EXPECT_TRUE(InvalidForwardReason(forward).has_value());
  EXPECT_TRUE(InvalidForwardReason({kMuxFwdDynamic, "/tmp/s", kPortStreamLocal, "", 0}).has_value());
  EXPECT_TRUE(InvalidForwardReason({kMuxFwdLocal, "", 1234, "localhost", 0}).has_value());
  EXPECT_TRUE(InvalidForwardReason({kMuxFwdLocal, "", 1234, "", 22}).has_value());
  EXPECT_TRUE(InvalidForwardReason({kMuxFwdRemote, "", 0, "", 22}).has_value());
  // -R 1080 (remote dynamic, OpenSSH >= 7.6): connect "socks" port 0 on a remote forward is fine.
  EXPECT_FALSE(InvalidForwardReason({kMuxFwdRemote, "", 1080, "socks", 0}).has_value());
  EXPECT_FALSE(InvalidForwardReason({kMuxFwdDynamic, "", 1080, "", 0}).has_value());
}

TEST(OpenSshMuxDecode, UnixSocketPathsTheMasterBindsOrConnectsFitASocketAddress) {
  const std::string fits(kMaxUnixPathBytes, 'p');
  const std::string too_long(kMaxUnixPathBytes + 1, 'p');
  // -L PATH:host:port listens here, -R port:PATH connects here: both need a sockaddr_un.
  EXPECT_EQ(InvalidForward({kMuxFwdLocal, fits, kPortStreamLocal, "localhost", 80}), std::nullopt);
  EXPECT_NE(InvalidForward({kMuxFwdLocal, too_long, kPortStreamLocal, "localhost", 80}), std::nullopt);
  EXPECT_NE(InvalidForward({kMuxFwdLocal, "", kPortStreamLocal, "localhost", 80}), std::nullopt);
  EXPECT_EQ(InvalidForward({kMuxFwdRemote, "", 8000, fits, kPortStreamLocal}), std::nullopt);
  EXPECT_NE(InvalidForward({kMuxFwdRemote, "", 8000, too_long, kPortStreamLocal}), std::nullopt);
  // A path on the server is the server's to judge (up to the forward's general host cap).
  EXPECT_EQ(InvalidForward({kMuxFwdLocal, "", 8000, too_long, kPortStreamLocal}), std::nullopt);
}

// ---- Master -> client ----

TEST(OpenSshMuxServer, EncodersProduceTheDocumentedLayouts) {
  EXPECT_EQ(EncodeOk(3), Hex("000000088000000100000003"));
  EXPECT_EQ(EncodeAlive(0, 0x1234), Hex("0000000c800000050000000000001234"));
  EXPECT_EQ(EncodeSessionOpened(1, 7), Hex("0000000c800000060000000100000007"));
  EXPECT_EQ(EncodeExitMessage(7, 42), Hex("0000000c80000004000000070000002a"));
  EXPECT_EQ(EncodeRemotePort(0, 40000), Hex("0000000c800000070000000000009c40"));
  EXPECT_EQ(EncodeTtyAllocFail(7), Hex("000000088000000800000007"));
  EXPECT_EQ(EncodeFailure(1, "no"), Hex("0000000e800000030000000100000002" "6e6f"));
  EXPECT_EQ(EncodePermissionDenied(2, "Permission denied"),
            Hex("0000001d800000020000000200000011" "5065726d697373696f6e2064656e696564"));
}

TEST(OpenSshMuxServer, EveryServerMessageRoundTrips) {
  const ServerMessage messages[] = {
      Hello{},
      Ok{1},
      PermissionDenied{2, "Permission denied"},
      Failure{3, "unsupported request"},
      ExitMessage{4, 255},
      Alive{0, 4242},
      SessionOpened{1, 9},
      RemotePort{0, 40000},
      TtyAllocFail{9},
  };
  for (const ServerMessage& message : messages) {
    auto bytes = EncodeServerMessage(message);
    ASSERT_TRUE(bytes.has_value());
    auto decoded = DecodeServerMessage(MustParse(*bytes));
    ASSERT_TRUE(decoded.has_value()) << DescribeDecodeError(decoded.error());
    EXPECT_EQ(*decoded, message);
  }
  EXPECT_EQ(EncodeServerMessage(Ok{1}), EncodeOk(1));
  EXPECT_EQ(EncodeServerMessage(Failure{1, "x"}), EncodeFailure(1, "x"));
}

TEST(OpenSshMuxServer, EveryClientMessageRoundTrips) {
  NewSession session;
  session.request_id = 5;
  session.reserved = "r";
  session.want_tty = session.want_x11 = session.want_agent = session.subsystem = true;
  session.escape_char = '%';
  session.term = "screen-256color";
  session.command = "echo 'hi there'";
  session.env = {"LANG=C.UTF-8", "LC_ALL=", "X=a=b"};
  const ClientMessage messages[] = {
      Hello{},
      Hello{4, {{"a", "b"}}},
      session,
      AliveCheck{0xffffffff},
      Terminate{1},
      OpenForward{2, {kMuxFwdRemote, "0.0.0.0", 8080, "/run/x.sock", kPortStreamLocal}},
      CloseForward{3, {kMuxFwdDynamic, "::1", 1080, "socks", 0}},
      NewStdioForward{4, "", "example.org", 443},
      StopListening{5},
      Proxy{6},
  };
  for (const ClientMessage& message : messages) {
    auto bytes = EncodeClientMessage(message);
    ASSERT_TRUE(bytes.has_value());
    EXPECT_EQ(MustDecodeClient(*bytes), message);
  }
}

TEST(OpenSshMuxServer, ReasonsAreMadeDeliverable) {
  auto bytes = EncodeFailure(1, std::string_view("bad\0thing", 9));
  auto decoded = DecodeServerMessage(MustParse(bytes));
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(std::get<Failure>(*decoded).reason, "bad?thing");

  auto long_reason = EncodePermissionDenied(1, std::string(kMaxReasonBytes * 3, 'r'));
  auto long_decoded = DecodeServerMessage(MustParse(long_reason));
  ASSERT_TRUE(long_decoded.has_value());
  EXPECT_EQ(std::get<PermissionDenied>(*long_decoded).reason.size(), kMaxReasonBytes);
}

TEST(OpenSshMuxServer, ServerDecoderErrors) {
  auto unknown = DecodeServerMessage(MustParse(FrameOf(kMuxSProxy, U32(1))));
  ASSERT_FALSE(unknown.has_value());
  EXPECT_EQ(unknown.error().kind, DecodeErrorKind::kUnknownType);
  EXPECT_EQ(unknown.error().request_id, 1u);
  auto short_exit = DecodeServerMessage(MustParse(FrameOf(kMuxSExitMessage, U32(1))));
  ASSERT_FALSE(short_exit.has_value());
  EXPECT_EQ(short_exit.error().field, "exit value");
  auto short_alive = DecodeServerMessage(MustParse(FrameOf(kMuxSAlive, {})));
  ASSERT_FALSE(short_alive.has_value());
  EXPECT_EQ(short_alive.error().kind, DecodeErrorKind::kTruncated);
}

TEST(OpenSshMuxServer, NamesForLogs) {
  EXPECT_EQ(MessageTypeName(kMuxCNewSession), "MUX_C_NEW_SESSION");
  EXPECT_EQ(MessageTypeName(kMuxSTtyAllocFail), "MUX_S_TTY_ALLOC_FAIL");
  EXPECT_EQ(MessageTypeName(0x42), "unknown");
  EXPECT_FALSE(FrameErrorName(FrameError::kTooLarge).empty());
  EXPECT_FALSE(EncodeErrorName(EncodeError::kBadValue).empty());
}

}  // namespace
}  // namespace mconnect::mux::openssh::codec_test
