// `mconnect doctor` reads what the server printed (its PATH search, `locale charmap`) and what
// ssh said on stderr: text from the remote side. Input layout: the first byte picks the parser
// (and, for ssh's stderr, also gives its exit code), the rest is the text. Beyond "no crash": a
// mosh-server path found is one line.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "launcher/doctor.h"

using namespace mconnect::launcher;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: {
      const ServerPath found = ParseServerPath(text);
      if (found.path.find('\n') != std::string::npos) std::abort();
      break;
    }
    case 1:
      (void)ParseServerLocale(text);
      break;
    case 2:
      (void)ParseSshProbe(data[0] / 3, text);
      break;
  }
  return 0;
}
