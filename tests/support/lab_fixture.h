// The fixture most lab tests share: a fresh MconnectLab (its own sshd, no master yet) for each
// test, cleaned up after it even when the test failed. A subclass with a TearDown of its own
// stops what it started first, then calls LabTest::TearDown().
#pragma once

#include <memory>
#include <string>
#include <utility>

#include <gtest/gtest.h>

#include "tests/support/mconnect_lab.h"

namespace mconnect::testing {

class LabTest : public ::testing::Test {
 protected:
  // `sshd_config_extra`: lines that go first in the lab's sshd_config (MconnectLab::Start).
  explicit LabTest(std::string sshd_config_extra = {}) : sshd_config_extra_(std::move(sshd_config_extra)) {}

  void SetUp() override {
    auto lab = MconnectLab::Start(sshd_config_extra_);
    ASSERT_TRUE(lab) << lab.error().message;
    lab_ = std::move(*lab);
  }
  void TearDown() override {
    if (lab_) lab_->Cleanup();
  }

  std::unique_ptr<MconnectLab> lab_;

 private:
  std::string sshd_config_extra_;
};

}  // namespace mconnect::testing
