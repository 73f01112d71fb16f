// mosh-server's output arrives over the network from the server. Input layout: one byte of exit
// status, then stdout and stderr separated by the first NUL byte. Beyond "no crash": a success
// has a port and a 22-character key, and no error message ever contains the key.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mosh/server.h"

using namespace mconnect::mosh;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  int exit_status = data[0];
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto split = rest.find('\0');
  std::string_view out = rest.substr(0, split);
  std::string_view err = split == std::string_view::npos ? std::string_view() : rest.substr(split + 1);

  auto connect = ParseMoshServerOutput(exit_status, out, err);
  if (connect) {
    if (connect->port == 0 || connect->key.size() != 22) std::abort();
    auto again = ParseMoshServerOutput(exit_status, out, err);
    if (!again || again->key != connect->key) std::abort();
  } else {
    for (char c : connect.error().message) {
      if (c < 0x20 || c > 0x7e) std::abort();
    }
    // The 22 characters after "MOSH CONNECT <digits> " on any stdout line are a key.
    for (auto at = out.find("MOSH CONNECT "); at != std::string_view::npos; at = out.find("MOSH CONNECT ", at + 1)) {
      std::string_view after = out.substr(at + 13);
      std::size_t digits = 0;
      while (digits < after.size() && after[digits] >= '0' && after[digits] <= '9') ++digits;
      if (digits >= after.size() || after[digits] != ' ') continue;
      std::string_view key = after.substr(digits + 1, 22);
      bool base64 = key.size() == 22;
      for (char c : key) base64 = base64 && (std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '+');
      if (base64 && connect.error().message.find(key) != std::string::npos) std::abort();
    }
  }

  // The same bytes as untrusted command-line parameters.
  MoshServerParams params;
  params.port_range = std::string(out.substr(0, 16));
  params.locale = {std::string(err.substr(0, 32))};
  params.bind = std::string(out.substr(0, 48));
  params.command = {std::string(err)};
  (void)BuildMoshServerCommand(params);
  return 0;
}
