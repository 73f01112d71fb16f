// OpenSSH's escape sequences on a terminal session's input. With a mux client, OpenSSH's master
// applies them, not the client; so does ours. Recognised right after a newline (or at the
// start): ~. ends the session, ~? lists the escapes, ~~ sends one ~; anything else after ~ is
// sent as typed. Pure: bytes in, what to send and what to show out.
#pragma once

#include <string>
#include <string_view>

namespace mconnect::mux {

class EscapeFilter {
 public:
  explicit EscapeFilter(char escape) : escape_(escape) {}

  struct Output {
    std::string to_remote;  // what the session receives
    std::string to_local;   // what the user sees (help, the closing message)
    bool terminate = false; // ~. was typed: end the session; input after it is dropped
  };
  Output Filter(std::string_view input);

 private:
  char escape_;
  bool at_line_start_ = true;
  bool escape_pending_ = false;
  bool terminated_ = false;
};

}  // namespace mconnect::mux
