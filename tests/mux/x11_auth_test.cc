// X11 authentication spoofing (mux/forward/x11_auth.h): connection setups as X clients send them
// (byte layout of the X Window System Protocol, "Connection Setup"), in both byte orders.
#include "mux/forward/x11_auth.h"

#include <gtest/gtest.h>

namespace mconnect::mux::x11 {
namespace {

std::string SetupBytes(char order, std::string_view name, std::string_view data) {
  auto card16 = [order](std::size_t v) {
    std::string two(2, '\0');
    two[order == 'B' ? 0 : 1] = static_cast<char>(v >> 8);
    two[order == 'B' ? 1 : 0] = static_cast<char>(v & 0xff);
    return two;
  };
  std::string out{order, '\0'};
  out += card16(11) + card16(0) + card16(name.size()) + card16(data.size()) + std::string(2, '\0');
  out += name;
  out.append((4 - name.size() % 4) % 4, '\0');
  out += data;
  out.append((4 - data.size() % 4) % 4, '\0');
  return out;
}

const std::string kProto = "MIT-MAGIC-COOKIE-1";
const Grant kGrant{{kProto, std::string(16, 'f')}, {kProto, std::string(16, 'r')}, ":5"};

TEST(X11Auth, TheFakeCookieIsReplacedByTheRealOneInEitherByteOrder) {
  for (char order : {'B', 'l'}) {
    std::string setup = SetupBytes(order, kProto, kGrant.fake.data);
    auto step = Spoof(setup + "REQUESTS", {kGrant});
    ASSERT_TRUE(step) << step.error();
    auto* spoofed = std::get_if<Spoofed>(&*step);
    ASSERT_NE(spoofed, nullptr);
    EXPECT_EQ(spoofed->setup, SetupBytes(order, kProto, kGrant.real.data));
    EXPECT_EQ(spoofed->consumed, setup.size()) << "what follows the setup is left as it is";
    EXPECT_EQ(spoofed->grant, 0u);
  }
}

TEST(X11Auth, APartialSetupNeedsMore) {
  std::string setup = SetupBytes('l', kProto, kGrant.fake.data);
  for (std::size_t n = 0; n < setup.size(); ++n) {
    auto step = Spoof(setup.substr(0, n), {kGrant});
    ASSERT_TRUE(step) << n << ": " << step.error();
    EXPECT_TRUE(std::holds_alternative<NeedMore>(*step)) << n;
  }
}

TEST(X11Auth, AnyOtherCookieIsRefused) {
  auto wrong = Spoof(SetupBytes('l', kProto, std::string(16, 'x')), {kGrant});
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error(), "an X11 connection with a MIT-MAGIC-COOKIE-1 cookie that no session was given");
  auto real = Spoof(SetupBytes('l', kProto, kGrant.real.data), {kGrant});
  EXPECT_FALSE(real) << "the real cookie is never the server's to send";
  auto none = Spoof(SetupBytes('B', "", ""), {kGrant});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error(), "an X11 connection without a cookie");
  auto no_grants = Spoof(SetupBytes('B', kProto, kGrant.fake.data), {});
  EXPECT_FALSE(no_grants);
  auto garbage = Spoof("GET / HTTP/1.1\r\n", {kGrant});
  ASSERT_FALSE(garbage);
  EXPECT_EQ(garbage.error(), "not an X11 connection setup (byte order 0x47)");
}

TEST(X11Auth, XauthListAndDisplays) {
  auto cookie = ParseXauthList("host/unix:7  MIT-MAGIC-COOKIE-1  00ff10a0\nother line\n");
  ASSERT_TRUE(cookie);
  EXPECT_EQ(cookie->proto, kProto);
  EXPECT_EQ(cookie->data, std::string("\x00\xff\x10\xa0", 4));
  EXPECT_EQ(Hex(cookie->data), "00ff10a0");
  EXPECT_FALSE(ParseXauthList(""));
  EXPECT_FALSE(ParseXauthList("host/unix:7  MIT-MAGIC-COOKIE-1  0g\n"));
  EXPECT_FALSE(ParseXauthList("xauth: file /nowhere does not exist\n"));

  auto local = ParseDisplay(":7");
  ASSERT_TRUE(local);
  EXPECT_EQ(local->socket_path, "/tmp/.X11-unix/X7");
  EXPECT_EQ(local->screen, 0);
  auto screen = ParseDisplay("unix:12.1");
  ASSERT_TRUE(screen);
  EXPECT_EQ(screen->socket_path, "/tmp/.X11-unix/X12");
  EXPECT_EQ(screen->screen, 1);
  EXPECT_FALSE(ParseDisplay("localhost:10.0")) << "a display on TCP is not served";
  EXPECT_FALSE(ParseDisplay(":"));
  EXPECT_FALSE(ParseDisplay(":1x"));
  EXPECT_FALSE(ParseDisplay(""));
}

}  // namespace
}  // namespace mconnect::mux::x11
