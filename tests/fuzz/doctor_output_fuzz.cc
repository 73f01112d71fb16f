// `mconnect doctor` reads what the server printed (its PATH search, `locale charmap`) and what
// ssh said on stderr: text from the remote side, which its report then carries into --json.
// Input layout: the first byte picks the parser (and, for ssh's stderr, also gives its exit
// code), or with 0xFF the report's JSON; the rest is the text. Beyond "no crash": a mosh-server
// path found is one line, and the JSON reads back as the text (made valid UTF-8).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <google/protobuf/util/json_util.h>

#include "launcher/doctor.h"
#include "launcher/doctor.pb.h"
#include "launcher/json.h"

using namespace mconnect::launcher;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] == 0xFF) {
    DoctorReport report(false);
    report.Fail(std::string(text), std::string(text), std::string(text));
    mconnect::doctor::Report parsed;
    if (!google::protobuf::util::JsonStringToMessage(report.Json(text), &parsed).ok()) std::abort();
    if (parsed.destination() != ValidUtf8(text) || parsed.checks(0).fix() != ValidUtf8(text)) std::abort();
    return 0;
  }
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
