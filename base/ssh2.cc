#include "base/ssh2.h"

#include <fmt/format.h>

namespace mconnect {

void Ssh2GlobalInit() {
  static const int result = libssh2_init(0);
  (void)result;
}

std::string Ssh2LastError(LIBSSH2_SESSION* session) {
  char* message = nullptr;
  int length = 0;
  int code = libssh2_session_last_error(session, &message, &length, 0);
  return fmt::format("{} ({})", message != nullptr && length > 0 ? std::string(message, length) : "no detail", code);
}

}  // namespace mconnect
