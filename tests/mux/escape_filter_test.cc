#include "mux/openssh/escape_filter.h"

#include <gtest/gtest.h>

namespace mconnect::mux {
namespace {

TEST(EscapeFilter, TildeDotAfterNewlineEndsTheSession) {
  EscapeFilter filter('~');
  auto out = filter.Filter("ls\r~.rest");
  EXPECT_EQ(out.to_remote, "ls\r");
  EXPECT_TRUE(out.terminate);
  EXPECT_NE(out.to_local.find("Connection closed"), std::string::npos);
  EXPECT_EQ(filter.Filter("more").to_remote, "") << "nothing goes through after ~.";
}

TEST(EscapeFilter, AtTheVeryStartToo) {
  EscapeFilter filter('~');
  EXPECT_TRUE(filter.Filter("~.").terminate);
}

TEST(EscapeFilter, TildeInsideALineIsPlain) {
  EscapeFilter filter('~');
  auto out = filter.Filter("x~.y");
  EXPECT_EQ(out.to_remote, "x~.y");
  EXPECT_FALSE(out.terminate);
}

TEST(EscapeFilter, DoubledEscapeSendsOneAndOtherCharactersPassWithIt) {
  EscapeFilter filter('~');
  EXPECT_EQ(filter.Filter("~~/home").to_remote, "~/home");
  EscapeFilter other('~');
  EXPECT_EQ(other.Filter("~x").to_remote, "~x");
}

TEST(EscapeFilter, SplitAcrossReads) {
  EscapeFilter filter('~');
  EXPECT_EQ(filter.Filter("echo\n~").to_remote, "echo\n");
  auto out = filter.Filter(".");
  EXPECT_TRUE(out.terminate);
}

TEST(EscapeFilter, HelpIsShownNotSent) {
  EscapeFilter filter('~');
  auto out = filter.Filter("~?");
  EXPECT_EQ(out.to_remote, "");
  EXPECT_NE(out.to_local.find("terminate session"), std::string::npos);
  EXPECT_FALSE(out.terminate);
}

TEST(EscapeFilter, OtherEscapeCharacter) {
  EscapeFilter filter('%');
  EXPECT_EQ(filter.Filter("~.").to_remote, "~.");
  EXPECT_TRUE(filter.Filter("\n%.").terminate);
}

}  // namespace
}  // namespace mconnect::mux
