#include "mux/openssh/escape_filter.h"

#include <fmt/format.h>

namespace mconnect::mux {

EscapeFilter::Output EscapeFilter::Filter(std::string_view input) {
  Output out;
  if (terminated_) return out;
  for (char c : input) {
    if (escape_pending_) {
      escape_pending_ = false;
      if (c == '.') {
        out.to_local += fmt::format("{}.\r\nConnection closed (mconnect master).\r\n", escape_);
        out.terminate = terminated_ = true;
        return out;
      }
      if (c == '?') {
        out.to_local += fmt::format(
            "{}?\r\nSupported escape sequences:\r\n {}.   - terminate session\r\n {}?   - this message\r\n"
            " {}{}   - send the escape character by typing it twice\r\n"
            "(Note that escapes are only recognized immediately after newline.)\r\n",
            escape_, escape_, escape_, escape_, escape_);
        at_line_start_ = false;
        continue;
      }
      if (c != escape_) out.to_remote += escape_;
      out.to_remote += c;
      at_line_start_ = c == '\r' || c == '\n';
      continue;
    }
    if (c == escape_ && at_line_start_) {
      escape_pending_ = true;
      continue;
    }
    out.to_remote += c;
    at_line_start_ = c == '\r' || c == '\n';
  }
  return out;
}

}  // namespace mconnect::mux
