// libssh2's errors as a user reads them: what went wrong in words, libssh2's own message and
// number only beside them (base/ssh2.h).
#include <libssh2.h>

#include <memory>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/ssh2.h"

namespace mconnect {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;

std::string LastErrorOf(int code, const char* message) {
  Ssh2GlobalInit();
  Ssh2Session session(libssh2_session_init());
  EXPECT_NE(session, nullptr);
  libssh2_session_set_last_error(session.get(), code, message);
  return Ssh2LastError(session.get());
}

// The two the issue saw bare, "(-7)" and "(-43)", as a keepalive or a read fails.
TEST(Ssh2Errors, TheLastErrorSaysWhatItMeans) {
  EXPECT_EQ(LastErrorOf(LIBSSH2_ERROR_SOCKET_SEND, "Unable to send keepalive message"),
            "sending to the server failed: the connection is broken (libssh2: Unable to send keepalive message, "
            "error -7)");
  EXPECT_EQ(LastErrorOf(LIBSSH2_ERROR_SOCKET_RECV, "Error waiting on socket"),
            "reading from the server failed: the connection is broken (libssh2: Error waiting on socket, error -43)");
  EXPECT_EQ(LastErrorOf(LIBSSH2_ERROR_SOCKET_RECV, nullptr),
            "reading from the server failed: the connection is broken (libssh2 error -43)");
}

// No number without words: every code libssh2 1.11 defines, and one it may add, reads as words
// first; the number only follows them.
TEST(Ssh2Errors, EveryCodeReadsAsWords) {
  for (int code = LIBSSH2_ERROR_HASH_CALC - 1; code < 0; ++code) {
    const std::string said = LastErrorOf(code, "detail");
    const std::string words = said.substr(0, said.find(" (libssh2"));
    EXPECT_GE(words.size(), 10u) << code << ": " << said;
    EXPECT_TRUE(words.front() >= 'a' && words.front() <= 'z') << said;
    EXPECT_THAT(words, Not(HasSubstr(std::to_string(code)))) << said;
    EXPECT_THAT(said, EndsWith("(libssh2: detail, error " + std::to_string(code) + ")")) << said;
  }
}

}  // namespace
}  // namespace mconnect
