// What the tests of unchanged OpenSSH clients on the master's socket share: a lab with a master,
// ssh through its socket, and fetching a page through a forward with curl.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/mconnect_lab.h"

namespace mconnect::testing {

class OpenSshMuxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto lab = MconnectLab::StartWithMaster();
    ASSERT_TRUE(lab) << lab.error().message;
    lab_ = std::move(*lab);
  }

  void TearDown() override {
    if (lab_) {
      EXPECT_EQ(lab_->sshd().CountInLog("Accepted publickey"), expected_authentications_)
          << "an OpenSSH client made its own connection instead of using the master";
    }
  }

  // ssh through the master's socket, in the lab's environment.
  std::vector<std::string> Ssh(const std::vector<std::string>& args) const {
    return lab_->SshThroughMaster(lab_->env(), args);
  }

  CommandOutput Run(const std::vector<std::string>& args, std::string input = {},
                    std::chrono::milliseconds timeout = std::chrono::seconds(60)) const {
    CommandOptions options;
    options.timeout = timeout;
    options.input = std::move(input);
    auto result = RunCommand(Ssh(args), options);
    EXPECT_TRUE(result) << result.error().message;
    return result ? *result : CommandOutput{};
  }

  // A shell pipeline around ssh, for redirections from and to files.
  CommandOutput Shell(const std::string& script, std::chrono::milliseconds timeout = std::chrono::seconds(120)) const {
    std::string ssh;
    for (const auto& word : Ssh({})) ssh += ShellQuote(word) + " ";
    CommandOptions options;
    options.timeout = timeout;
    auto result = RunCommand(ShellCommand("SSH=\"" + ssh + "\"; " + script), options);
    EXPECT_TRUE(result) << result.error().message;
    return result ? *result : CommandOutput{};
  }

  std::unique_ptr<MconnectLab> lab_;
  int expected_authentications_ = 1;  // the master's connections, and nobody else's
};

// GET through a local port, by a process that knows nothing of SSH.
inline CommandOutput Fetch(const std::string& curl_proxy_args, int port, int http_port) {
  std::string url = "http://127.0.0.1:" + std::to_string(http_port) + "/index.html";
  std::string command = curl_proxy_args.empty()
                            ? "curl -sS --max-time 10 http://127.0.0.1:" + std::to_string(port) + "/index.html"
                            : "curl -sS --max-time 10 " + curl_proxy_args + " 127.0.0.1:" + std::to_string(port) +
                                  " " + url;
  CommandOptions options;
  options.timeout = std::chrono::seconds(20);
  auto result = RunCommand(ShellCommand(command), options);
  return result ? *result : CommandOutput{};
}

}  // namespace mconnect::testing
