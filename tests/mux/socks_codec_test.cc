#include "mux/forward/socks_codec.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "tests/support/hex.h"

namespace mconnect::mux::socks {
namespace {

using ::mconnect::testing::Hex;

std::vector<std::uint8_t> Concat(std::vector<std::uint8_t> a, const std::vector<std::uint8_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::vector<std::uint8_t> Text(std::string_view text) { return {text.begin(), text.end()}; }

// Client bytes captured from curl 7.88.1 against a listener that dumped each read in hex and
// answered just enough for curl to go on (05 00, then a success reply, then HTTP).
//   curl --socks4 P http://93.184.215.14:8080/
const auto kCurlSocks4 = Hex("04011f905db8d70e00");
//   curl --socks4 alice@P http://10.1.2.3/
const auto kCurlSocks4User = Hex("040100500a010203616c69636500");
//   curl --socks4a P http://example.com/
const auto kCurlSocks4a = Hex("0401005000000001006578616d706c652e636f6d00");
//   curl --socks5 / --socks5-hostname: the greeting offers 00 (none) and 01 (GSSAPI) ...
const auto kCurlGreeting = Hex("05020001");
//   ... and 02 (user/password) too when given --proxy-user.
const auto kCurlGreetingWithUser = Hex("0503000102");
//   curl --socks5 P http://93.184.215.14:8080/
const auto kCurlSocks5Ipv4 = Hex("050100015db8d70e1f90");
//   curl --socks5-hostname P http://example.com/
const auto kCurlSocks5Name = Hex("050100030b6578616d706c652e636f6d0050");
//   curl --socks5 P 'http://[2001:db8::1]:443/'
const auto kCurlSocks5Ipv6 = Hex("0501000420010db800000000000000000000000101bb");
// What curl sent right after the reply for the example.com requests.
const auto kCurlHttpGet =
    Text("GET / HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n");

Step MustStep(std::span<const std::uint8_t> bytes, Stage stage) {
  auto step = ParseSocks(bytes, stage);
  EXPECT_TRUE(step.has_value()) << (step ? "" : SocksErrorName(step.error().kind));
  return step ? *step : Step{NeedMore{}};
}

Request MustRequest(std::span<const std::uint8_t> bytes, Stage stage) {
  Step step = MustStep(bytes, stage);
  const auto* request = std::get_if<Request>(&step);
  EXPECT_NE(request, nullptr);
  return request ? *request : Request{};
}

SocksError MustFail(std::span<const std::uint8_t> bytes, Stage stage) {
  auto step = ParseSocks(bytes, stage);
  EXPECT_FALSE(step.has_value());
  return step ? SocksError{} : step.error();
}

// Every proper prefix of a valid message is "need more", never an error or a shorter message.
void ExpectEveryTruncationNeedsMore(const std::vector<std::uint8_t>& message, Stage stage) {
  for (std::size_t size = 0; size < message.size(); ++size) {
    auto step = ParseSocks(std::span(message).first(size), stage);
    ASSERT_TRUE(step.has_value()) << "prefix of " << size << " bytes";
    EXPECT_TRUE(std::holds_alternative<NeedMore>(*step)) << "prefix of " << size << " bytes";
  }
}

struct Vector {
  const char* name;
  std::vector<std::uint8_t> bytes;
  Stage stage;
  Request expected;
};

std::vector<Vector> CurlRequests() {
  return {
      {"socks4", kCurlSocks4, Stage::kFirst, {Version::kSocks4, "93.184.215.14", 8080, 9}},
      {"socks4 user", kCurlSocks4User, Stage::kFirst, {Version::kSocks4, "10.1.2.3", 80, 14}},
      {"socks4a", kCurlSocks4a, Stage::kFirst, {Version::kSocks4a, "example.com", 80, 21}},
      {"socks5 ipv4", kCurlSocks5Ipv4, Stage::kSocks5Request,
       {Version::kSocks5, "93.184.215.14", 8080, 10}},
      {"socks5 name", kCurlSocks5Name, Stage::kSocks5Request,
       {Version::kSocks5, "example.com", 80, 18}},
      {"socks5 ipv6", kCurlSocks5Ipv6, Stage::kSocks5Request,
       {Version::kSocks5, "2001:db8::1", 443, 22}},
  };
}

TEST(SocksCodec, CurlRequestsDecode) {
  for (const Vector& v : CurlRequests()) {
    SCOPED_TRACE(v.name);
    EXPECT_EQ(MustRequest(v.bytes, v.stage), v.expected);
    ExpectEveryTruncationNeedsMore(v.bytes, v.stage);
  }
}

TEST(SocksCodec, BytesAfterTheRequestAreNotConsumed) {
  for (const Vector& v : CurlRequests()) {
    SCOPED_TRACE(v.name);
    Request request = MustRequest(Concat(v.bytes, kCurlHttpGet), v.stage);
    EXPECT_EQ(request, v.expected);
    EXPECT_EQ(request.consumed, v.bytes.size());
  }
}

TEST(SocksCodec, CurlGreetingsSelectNoAuthentication) {
  for (const auto& greeting : {kCurlGreeting, kCurlGreetingWithUser}) {
    EXPECT_EQ(MustStep(greeting, Stage::kFirst),
              Step(ReplyAndContinue{Hex("0500"), greeting.size(), Stage::kSocks5Request}));
    ExpectEveryTruncationNeedsMore(greeting, Stage::kFirst);
  }
}

// A client may send the request without waiting for the method selection (channels.c goes on
// parsing "in case client speculated ahead"): the greeting consumes only itself.
TEST(SocksCodec, Socks5RequestSentAheadOfTheMethodSelection) {
  const auto received = Concat(Concat(kCurlGreeting, kCurlSocks5Name), kCurlHttpGet);
  Step first = MustStep(received, Stage::kFirst);
  const auto* reply = std::get_if<ReplyAndContinue>(&first);
  ASSERT_NE(reply, nullptr);
  EXPECT_EQ(reply->reply, Hex("0500"));
  ASSERT_EQ(reply->consumed, kCurlGreeting.size());
  auto rest = std::span(received).subspan(reply->consumed);
  Request request = MustRequest(rest, reply->next);
  EXPECT_EQ(request, (Request{Version::kSocks5, "example.com", 80, kCurlSocks5Name.size()}));
  EXPECT_EQ(Text(std::string_view(reinterpret_cast<const char*>(rest.data()) + request.consumed,
                                  rest.size() - request.consumed)),
            kCurlHttpGet);
}

TEST(SocksCodec, AddressForms) {
  // 0.0.0.0 is plain SOCKS4 (only 0.0.0.x with x != 0 announces a name), as in channels.c.
  EXPECT_EQ(MustRequest(Hex("0401005000000000" "00"), Stage::kFirst),
            (Request{Version::kSocks4, "0.0.0.0", 80, 9}));
  EXPECT_EQ(MustRequest(Hex("04010050000000ff" "00" "6800"), Stage::kFirst),
            (Request{Version::kSocks4a, "h", 80, 11}));
  EXPECT_EQ(MustRequest(Hex("0401ffff00000100" "00"), Stage::kFirst),
            (Request{Version::kSocks4, "0.0.1.0", 65535, 9}));
  EXPECT_EQ(MustRequest(Hex("05010004" "00000000000000000000000000000001" "0016"),
                        Stage::kSocks5Request),
            (Request{Version::kSocks5, "::1", 22, 22}));
  EXPECT_EQ(MustRequest(Hex("05010004" "00000000000000000000ffff01020304" "0016"),
                        Stage::kSocks5Request),
            (Request{Version::kSocks5, "::ffff:1.2.3.4", 22, 22}));
  EXPECT_EQ(MustRequest(Hex("05010001" "ffffffff" "0001"), Stage::kSocks5Request),
            (Request{Version::kSocks5, "255.255.255.255", 1, 10}));
}

TEST(SocksCodec, FieldsUpToTheCap) {
  const std::string longest(kMaxSocks4Field, 'a');
  // SOCKS4 user id of 255 bytes.
  auto user = Concat(Concat(Hex("04010050" "0a000001"), Text(longest)), Hex("00"));
  EXPECT_EQ(MustRequest(user, Stage::kFirst),
            (Request{Version::kSocks4, "10.0.0.1", 80, user.size()}));
  ExpectEveryTruncationNeedsMore(user, Stage::kFirst);

  // The longest message of all: SOCKS4a with both fields at the cap.
  auto both = Concat(Concat(Concat(Hex("04010050" "00000001"), Text(longest)), Hex("00")),
                     Concat(Text(longest), Hex("00")));
  ASSERT_EQ(both.size(), kMaxMessageBytes);
  EXPECT_EQ(MustRequest(both, Stage::kFirst),
            (Request{Version::kSocks4a, longest, 80, kMaxMessageBytes}));
  ExpectEveryTruncationNeedsMore(both, Stage::kFirst);

  // SOCKS5 name of 255 bytes, the most its length byte can say.
  auto name = Concat(Concat(Hex("05010003ff"), Text(longest)), Hex("01bb"));
  EXPECT_EQ(MustRequest(name, Stage::kSocks5Request),
            (Request{Version::kSocks5, longest, 443, name.size()}));
  ExpectEveryTruncationNeedsMore(name, Stage::kSocks5Request);

  // A greeting with the most methods it can announce, "no authentication" last.
  std::vector<std::uint8_t> greeting(2 + 0xff);
  greeting[0] = 0x05;
  greeting[1] = 0xff;
  for (std::size_t i = 0; i < 0xff; ++i) greeting[2 + i] = static_cast<std::uint8_t>(0xfe - i);
  ASSERT_EQ(greeting.size(), 2u + 0xff);
  EXPECT_EQ(MustStep(greeting, Stage::kFirst),
            Step(ReplyAndContinue{Hex("0500"), greeting.size(), Stage::kSocks5Request}));
}

TEST(SocksCodec, UnknownVersionGetsNoReply) {
  // Someone pointing a browser at the SOCKS port without the proxy setting.
  EXPECT_EQ(MustFail(kCurlHttpGet, Stage::kFirst), (SocksError{SocksErrorKind::kUnknownVersion, {}}));
  EXPECT_EQ(MustFail(Hex("00"), Stage::kFirst).kind, SocksErrorKind::kUnknownVersion);
  EXPECT_EQ(MustFail(Hex("06"), Stage::kFirst).kind, SocksErrorKind::kUnknownVersion);
}

TEST(SocksCodec, GreetingWithoutNoAuthenticationIsRefused) {
  const SocksError expected{SocksErrorKind::kNoAcceptableMethod, Hex("05ff")};
  EXPECT_EQ(MustFail(Hex("050102"), Stage::kFirst), expected);     // user/password only
  EXPECT_EQ(MustFail(Hex("05020102"), Stage::kFirst), expected);   // GSSAPI, user/password
  EXPECT_EQ(MustFail(Hex("0500"), Stage::kFirst), expected);       // no method at all
  // Only decided once every announced method is there.
  EXPECT_TRUE(std::holds_alternative<NeedMore>(MustStep(Hex("050301"), Stage::kFirst)));
}

TEST(SocksCodec, CommandsOtherThanConnectAreRefused) {
  const SocksError socks4{SocksErrorKind::kCommandNotSupported, Hex("005b000000000000")};
  EXPECT_EQ(MustFail(Hex("04020050" "0a000001" "00"), Stage::kFirst), socks4);  // BIND
  EXPECT_EQ(MustFail(Hex("0402"), Stage::kFirst), socks4);                      // known early

  const SocksError socks5{SocksErrorKind::kCommandNotSupported, Hex("05070001000000000000")};
  EXPECT_EQ(MustFail(Hex("05020001" "0a000001" "0050"), Stage::kSocks5Request), socks5);  // BIND
  EXPECT_EQ(MustFail(Hex("05030001" "00000000" "0000"), Stage::kSocks5Request), socks5);  // UDP
  EXPECT_EQ(MustFail(Hex("0500"), Stage::kSocks5Request), socks5);
}

TEST(SocksCodec, Socks5AddressTypesOtherThan134AreRefused) {
  const SocksError expected{SocksErrorKind::kAddressTypeNotSupported, Hex("05080001000000000000")};
  for (std::uint8_t type : {0x00, 0x02, 0x05, 0xff}) {
    SCOPED_TRACE(type);
    EXPECT_EQ(MustFail(std::vector<std::uint8_t>{0x05, 0x01, 0x00, type}, Stage::kSocks5Request),
              expected);
  }
}

TEST(SocksCodec, MalformedSocks5RequestsAreRefused) {
  const SocksError expected{SocksErrorKind::kMalformed, Hex("05010001000000000000")};
  // A SOCKS4 request where the SOCKS5 request belongs.
  EXPECT_EQ(MustFail(kCurlSocks4, Stage::kSocks5Request), expected);
  // A second greeting.
  EXPECT_EQ(MustFail(Hex("06"), Stage::kSocks5Request), expected);
  // Reserved byte not 0 (channels.c refuses it too).
  EXPECT_EQ(MustFail(Hex("05010101" "0a000001" "0050"), Stage::kSocks5Request), expected);
}

TEST(SocksCodec, BadHostNamesAreRefused) {
  const SocksError socks5{SocksErrorKind::kBadHost, Hex("05010001000000000000")};
  EXPECT_EQ(MustFail(Hex("0501000300" "0050"), Stage::kSocks5Request), socks5);  // empty
  EXPECT_EQ(MustFail(Hex("0501000300"), Stage::kSocks5Request), socks5);         // known early
  EXPECT_EQ(MustFail(Hex("0501000303" "610062" "0050"), Stage::kSocks5Request), socks5);  // NUL

  const SocksError socks4{SocksErrorKind::kBadHost, Hex("005b000000000000")};
  EXPECT_EQ(MustFail(Hex("04010050" "00000001" "00" "00"), Stage::kFirst), socks4);  // empty
}

TEST(SocksCodec, Socks4FieldsWithoutNulWithinTheCapAreRefused) {
  const SocksError expected{SocksErrorKind::kFieldTooLong, Hex("005b000000000000")};
  const std::string longest(kMaxSocks4Field, 'a');
  // User id: 255 bytes without NUL may still end, 256 may not.
  auto user = Concat(Hex("04010050" "0a000001"), Text(longest));
  EXPECT_TRUE(std::holds_alternative<NeedMore>(MustStep(user, Stage::kFirst)));
  user.push_back('a');
  EXPECT_EQ(MustFail(user, Stage::kFirst), expected);
  // SOCKS4a host name, likewise.
  auto host = Concat(Hex("04010050" "00000001" "00"), Text(longest));
  EXPECT_TRUE(std::holds_alternative<NeedMore>(MustStep(host, Stage::kFirst)));
  host.push_back('a');
  EXPECT_EQ(MustFail(host, Stage::kFirst), expected);
}

TEST(SocksCodec, PortZeroIsRefused) {
  const SocksError socks4{SocksErrorKind::kBadPort, Hex("005b000000000000")};
  EXPECT_EQ(MustFail(Hex("04010000" "0a000001" "00"), Stage::kFirst), socks4);
  EXPECT_EQ(MustFail(Hex("04010000" "00000001" "00" "6800"), Stage::kFirst), socks4);
  const SocksError socks5{SocksErrorKind::kBadPort, Hex("05010001000000000000")};
  EXPECT_EQ(MustFail(Hex("05010001" "0a000001" "0000"), Stage::kSocks5Request), socks5);
  EXPECT_EQ(MustFail(Hex("0501000301" "68" "0000"), Stage::kSocks5Request), socks5);
  EXPECT_EQ(MustFail(Hex("05010004" "00000000000000000000000000000001" "0000"),
                     Stage::kSocks5Request),
            socks5);
}

TEST(SocksCodec, Replies) {
  EXPECT_EQ(Socks4Reply(true), Hex("005a000000000000"));
  EXPECT_EQ(Socks4Reply(false), Hex("005b000000000000"));
  EXPECT_EQ(Socks5Reply(kSocks5Succeeded), Hex("05000001000000000000"));
  EXPECT_EQ(Socks5Reply(kSocks5GeneralFailure), Hex("05010001000000000000"));
  EXPECT_EQ(Socks5Reply(kSocks5HostUnreachable), Hex("05040001000000000000"));
  EXPECT_EQ(Socks5Reply(kSocks5ConnectionRefused), Hex("05050001000000000000"));
  EXPECT_EQ(Socks5Reply(kSocks5CommandNotSupported), Hex("05070001000000000000"));
  EXPECT_EQ(Socks5Reply(kSocks5AddressTypeNotSupported), Hex("05080001000000000000"));
}

TEST(SocksCodec, Names) {
  EXPECT_EQ(VersionName(Version::kSocks4), "SOCKS4");
  EXPECT_EQ(VersionName(Version::kSocks4a), "SOCKS4a");
  EXPECT_EQ(VersionName(Version::kSocks5), "SOCKS5");
  for (auto kind : {SocksErrorKind::kUnknownVersion, SocksErrorKind::kNoAcceptableMethod,
                    SocksErrorKind::kMalformed, SocksErrorKind::kCommandNotSupported,
                    SocksErrorKind::kAddressTypeNotSupported, SocksErrorKind::kFieldTooLong,
                    SocksErrorKind::kBadHost, SocksErrorKind::kBadPort}) {
    EXPECT_NE(SocksErrorName(kind), "unknown");
  }
}

}  // namespace
}  // namespace mconnect::mux::socks
