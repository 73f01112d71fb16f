#include "remote-ip/address.h"

#include <gtest/gtest.h>

#include <string>

#include "base/ip_literal.h"

namespace mconnect::remoteip {
namespace {

std::string ErrorOf(std::string_view output) {
  auto parsed = ParseAddressOutput(output);
  EXPECT_FALSE(parsed.has_value()) << "accepted: " << (parsed ? *parsed : "");
  return parsed ? std::string() : parsed.error().message;
}

TEST(ParseAddressOutput, AcceptsIpv4WithTrailingNewline) {
  auto parsed = ParseAddressOutput("203.0.113.7\n");
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(*parsed, "203.0.113.7");
}

TEST(ParseAddressOutput, AcceptsSurroundingWhitespaceAndCrlf) {
  EXPECT_EQ(ParseAddressOutput("  198.51.100.1\r\n").value_or(""), "198.51.100.1");
  EXPECT_EQ(ParseAddressOutput("\n\t192.0.2.1  \n\n").value_or(""), "192.0.2.1");
}

TEST(ParseAddressOutput, CanonicalisesIpv6) {
  EXPECT_EQ(ParseAddressOutput("2001:0DB8:0000:0000:0000:0000:0000:0001\n").value_or(""), "2001:db8::1");
  EXPECT_EQ(ParseAddressOutput("::1").value_or(""), "::1");
}

TEST(ParseAddressOutput, UnmapsIpv4MappedIpv6) {
  EXPECT_EQ(ParseAddressOutput("::ffff:203.0.113.9").value_or(""), "203.0.113.9");
  EXPECT_NE(ErrorOf("::ffff:0.0.0.0").find("unspecified"), std::string::npos);
}

TEST(ParseAddressOutput, AcceptsLoopbackForSameHostSetups) {
  EXPECT_EQ(ParseAddressOutput("127.0.0.1").value_or(""), "127.0.0.1");
}

TEST(ParseAddressOutput, RejectsEmptyOutput) {
  EXPECT_EQ(ErrorOf(""), "printed nothing");
  EXPECT_EQ(ErrorOf(" \n\r\n"), "printed nothing");
}

TEST(ParseAddressOutput, RejectsHtml) {
  EXPECT_EQ(ErrorOf("<!DOCTYPE html>\n<html><body>429 Too Many Requests</body></html>\n"),
            "printed HTML, not an address");
  EXPECT_EQ(ErrorOf("<html>"), "printed HTML, not an address");
}

TEST(ParseAddressOutput, RejectsSeveralLines) {
  auto message = ErrorOf("203.0.113.7\n198.51.100.1\n192.0.2.1\n");
  EXPECT_TRUE(message.starts_with("printed 3 lines")) << message;
  EXPECT_TRUE(ErrorOf("1.2.3.4\r\n\r\n5.6.7.8").starts_with("printed 2 lines"));
}

TEST(ParseAddressOutput, RejectsSeveralWords) {
  EXPECT_TRUE(ErrorOf("203.0.113.7 198.51.100.1").starts_with("printed 2 words"));
  EXPECT_TRUE(ErrorOf("ip: 203.0.113.7").starts_with("printed 2 words"));
}

TEST(ParseAddressOutput, RejectsHostname) {
  EXPECT_EQ(ErrorOf("example.org\n"), "printed a hostname, not an IP literal: \"example.org\"");
  EXPECT_EQ(ErrorOf("localhost"), "printed a hostname, not an IP literal: \"localhost\"");
}

TEST(ParseAddressOutput, RejectsAlmostAddresses) {
  EXPECT_EQ(ErrorOf("1.2.3"), "printed \"1.2.3\", not an IP address");
  EXPECT_EQ(ErrorOf("256.1.1.1"), "printed \"256.1.1.1\", not an IP address");
  EXPECT_EQ(ErrorOf("1.2.3.4:80"), "printed \"1.2.3.4:80\", not an IP address");
  EXPECT_EQ(ErrorOf("[::1]"), "printed \"[::1]\", not an IP address");
}

TEST(ParseAddressOutput, RejectsUnspecified) {
  EXPECT_NE(ErrorOf("0.0.0.0").find("unspecified"), std::string::npos);
  EXPECT_NE(ErrorOf("::").find("unspecified"), std::string::npos);
  EXPECT_NE(ErrorOf("0.1.2.3").find("unspecified"), std::string::npos);
}

TEST(ParseAddressOutput, RejectsMulticastAndBroadcast) {
  EXPECT_EQ(ErrorOf("224.0.0.1"), "224.0.0.1 is a multicast address, not a host");
  EXPECT_EQ(ErrorOf("239.255.255.250"), "239.255.255.250 is a multicast address, not a host");
  EXPECT_EQ(ErrorOf("ff02::1"), "ff02::1 is a multicast address, not a host");
  EXPECT_EQ(ErrorOf("255.255.255.255"), "255.255.255.255 is the broadcast address, not a host");
}

TEST(ParseAddressOutput, RejectsZoneIds) {
  EXPECT_EQ(ErrorOf("fe80::1%eth0"), "\"fe80::1%eth0\" has an IPv6 zone id, meaningful only on the server");
}

TEST(ParseAddressOutput, QuotesAtMostFortySanitizedCharacters) {
  std::string noisy = "\x1b[31m" + std::string(200, 'x');
  auto message = ErrorOf(noisy);
  EXPECT_EQ(message.find('\x1b'), std::string::npos);
  EXPECT_LT(message.size(), 100u) << message;
  EXPECT_NE(message.find("..."), std::string::npos);
}

TEST(ParseAddressOutput, RejectsControlCharactersAndNul) {
  EXPECT_TRUE(ErrorOf(std::string("1.2.3.4\0", 8) + "5").starts_with("printed control characters"));
  EXPECT_TRUE(ErrorOf("1.2.3.4\x1b").starts_with("printed control characters"));
}

TEST(ParseAddressOutput, RejectsAMegabyteOfDigits) {
  std::string huge(1 << 20, '1');
  EXPECT_FALSE(ParseAddressOutput(huge));
}

TEST(IsIpLiteral, AcceptsOnlyBareLiterals) {
  EXPECT_TRUE(IsIpLiteral("10.0.0.1"));
  EXPECT_TRUE(IsIpLiteral("2001:db8::1"));
  EXPECT_FALSE(IsIpLiteral(" 10.0.0.1"));
  EXPECT_FALSE(IsIpLiteral("fe80::1%eth0"));
  EXPECT_FALSE(IsIpLiteral("example.org"));
  EXPECT_FALSE(IsIpLiteral(""));
  EXPECT_FALSE(IsIpLiteral(std::string("10.0.0.1\0", 9)));
}

TEST(SshConnectionServerAddress, TakesTheThirdField) {
  EXPECT_EQ(SshConnectionServerAddress("198.51.100.20 53022 10.0.0.5 22\n").value_or(""), "10.0.0.5");
  EXPECT_EQ(SshConnectionServerAddress("2001:db8::20 53022 2001:DB8::5 22").value_or(""), "2001:db8::5");
  EXPECT_EQ(SshConnectionServerAddress("::ffff:198.51.100.20 1 ::ffff:10.0.0.5 22").value_or(""), "10.0.0.5");
}

TEST(SshConnectionServerAddress, RejectsOtherShapes) {
  EXPECT_FALSE(SshConnectionServerAddress(""));
  EXPECT_FALSE(SshConnectionServerAddress("198.51.100.20 53022 10.0.0.5"));
  EXPECT_FALSE(SshConnectionServerAddress("198.51.100.20 53022 10.0.0.5 22 extra"));
  EXPECT_FALSE(SshConnectionServerAddress("198.51.100.20 port 10.0.0.5 22"));
  EXPECT_FALSE(SshConnectionServerAddress("198.51.100.20 53022 server 22"));
  EXPECT_FALSE(SshConnectionServerAddress("198.51.100.20 53022 fe80::1%eth0 22"));
}

TEST(SanitizeForMessage, KeepsPrintableAsciiAndCuts) {
  EXPECT_EQ(SanitizeForMessage("ab\ncd", 40), "ab?cd");
  EXPECT_EQ(SanitizeForMessage("abcdef", 3), "abc...");
  EXPECT_EQ(SanitizeForMessage("\xc3\xa9", 40), "??");
}

}  // namespace
}  // namespace mconnect::remoteip
