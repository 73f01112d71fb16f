#include "base/subprocess.h"

#include <gtest/gtest.h>

namespace mconnect {
namespace {

using namespace std::chrono_literals;

TEST(RunCommand, CapturesBothStreamsAndExitCode) {
  auto result = RunCommand(ShellCommand("echo out; echo err >&2; exit 3"));
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result->out, "out\n");
  EXPECT_EQ(result->err, "err\n");
  EXPECT_EQ(result->exit_code, 3);
  EXPECT_FALSE(result->ok());
}

TEST(RunCommand, FeedsInput) {
  CommandOptions options;
  options.input = "line one\nline two\n";
  auto result = RunCommand({"cat"}, options);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->out, options.input);
}

TEST(RunCommand, KillsOnTimeout) {
  CommandOptions options;
  options.timeout = 200ms;
  auto start = std::chrono::steady_clock::now();
  auto result = RunCommand(ShellCommand("sleep 30"), options);
  ASSERT_TRUE(result);
  EXPECT_TRUE(result->timed_out);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST(RunCommand, BoundsOutput) {
  CommandOptions options;
  options.max_output = 10;
  auto result = RunCommand(ShellCommand("head -c 100000 /dev/zero"), options);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->out.size(), 10u);
  EXPECT_EQ(result->exit_code, 0);
}

TEST(RunCommand, MissingProgramIsAnError) {
  EXPECT_FALSE(RunCommand({"/nonexistent/program"}));
}

TEST(ShellQuote, QuotesOnlyWhatNeedsIt) {
  EXPECT_EQ(ShellQuote("mosh-server"), "mosh-server");
  EXPECT_EQ(ShellQuote("LANG=C.UTF-8"), "LANG=C.UTF-8");
  EXPECT_EQ(ShellQuote(""), "''");
  EXPECT_EQ(ShellQuote("it's"), "'it'\\''s'");
  EXPECT_EQ(ShellQuote("a b;c"), "'a b;c'");
}

}  // namespace
}  // namespace mconnect
