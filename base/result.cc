#include "base/result.h"

#include <cstdio>
#include <cstdlib>

namespace mconnect {

void AssertFailed(const char* expression, const char* file, int line) {
  std::fprintf(stderr, "mconnect: internal error: %s:%d: check failed: %s\n", file, line, expression);
  std::abort();
}

}  // namespace mconnect
