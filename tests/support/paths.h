// Where the built programs and the source tree are, for tests. The values are fixed when the
// build is configured (tests/support/paths.cc.in) and compiled into one small object, so that
// no other test source carries the checkout's path on its command line: a compiler cache then
// serves every other test object to a checkout at another path.
#pragma once

namespace mconnect::testing {

extern const char* const kBinDir;     // the build's bin/: mconnect, mconnect-mux, the tests
extern const char* const kSourceDir;  // the source tree: tests/lab/sshd-lab, contrib/, man/

}  // namespace mconnect::testing

#define MCONNECT_BIN_DIR (::mconnect::testing::kBinDir)
#define MCONNECT_SOURCE_DIR (::mconnect::testing::kSourceDir)
