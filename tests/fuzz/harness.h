// What the fuzz targets that drive a real protocol server share: invariant checks that stop the
// fuzzer where they fail, the count of this process's open fds (a leak is a finding), and logs
// that are formatted (so a bad format string is found) but written nowhere.
#pragma once

#include <cstddef>

namespace mconnect::fuzz {

// Prints the file, line and expression, then traps: libFuzzer records the input as a crash.
[[noreturn]] void Violated(const char* expression, const char* file, int line);

// Entries in /proc/self/fd (the directory's own fd included, so only differences mean anything).
std::size_t OpenFdCount();

// Every log level on, into a null sink.
void SilenceLogs();

}  // namespace mconnect::fuzz

#define FUZZ_CHECK(expression) \
  ((expression) ? (void)0 : ::mconnect::fuzz::Violated(#expression, __FILE__, __LINE__))
