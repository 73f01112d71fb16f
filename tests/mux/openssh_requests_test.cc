// What the master passes on of a NEW_SESSION's environment: every entry the client sent that is
// NAME=VALUE with a name OpenSSH's master would take too, in the client's order, duplicates
// included, up to kMaxSessionEnv.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "mux/openssh/codec.h"
#include "mux/openssh/requests.h"

namespace mconnect::mux {
namespace {

std::vector<std::string> EnvPassedOn(std::vector<std::string> env) {
  openssh::NewSession request;
  request.command = "true";
  request.env = std::move(env);
  auto session = SessionFromRequest(request);
  EXPECT_TRUE(session.has_value());
  return session ? session->env : std::vector<std::string>{};
}

TEST(OpenSshSessionEnv, EveryNamePassesInOrderWithDuplicates) {
  // The client has applied SendEnv and appended SetEnv: the master adds no filter of its own.
  std::vector<std::string> env{"LANG=C.UTF-8", "GIT_PROTOCOL=version=2", "FOO=one", "EMPTY=", "FOO=two",
                               "PATH=/x:/y"};
  EXPECT_EQ(EnvPassedOn(env), env);
}

TEST(OpenSshSessionEnv, MalformedEntriesAreDropped) {
  std::string longest_name(1023, 'N');
  std::string too_long_name(1024, 'N');
  EXPECT_EQ(EnvPassedOn({"NOEQUALS", "=value", too_long_name + "=v", "GOOD=1", longest_name + "=v"}),
            (std::vector<std::string>{"GOOD=1", longest_name + "=v"}));
  std::string too_long_value = "BIG=" + std::string(kMaxRequestBytes, 'v');
  EXPECT_EQ(EnvPassedOn({too_long_value, "SMALL=1"}), (std::vector<std::string>{"SMALL=1"}));
}

TEST(OpenSshSessionEnv, AtMostTheCapArePassedOn) {
  std::vector<std::string> env;
  for (std::size_t i = 0; i < kMaxSessionEnv + 10; ++i) env.push_back("V" + std::to_string(i) + "=x");
  auto passed = EnvPassedOn(env);
  ASSERT_EQ(passed.size(), kMaxSessionEnv);
  EXPECT_EQ(passed.front(), "V0=x");
  EXPECT_EQ(passed.back(), "V" + std::to_string(kMaxSessionEnv - 1) + "=x");
}

}  // namespace
}  // namespace mconnect::mux
