// Starting mosh-server, on the server over the master or here for --local: its command line,
// and the reading of what it printed. Pure: strings in, a command line or a typed result out.
#pragma once

#include <cstdint>
#include <expected>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace mconnect::mosh {

struct MoshServerParams {
  // A command prefix, as mosh's --server=COMMAND: inserted unquoted, so "env X=1 mosh-server"
  // or "/opt/mosh/bin/mosh-server" both work. It comes from the user, never from the network.
  std::string server = "mosh-server";
  std::vector<std::string> locale;  // NAME=VALUE, passed as -l NAME=VALUE
  unsigned colors = 0;              // mosh-client -c
  std::string port_range;           // "" (server default), "N" or "N:M"
  std::string bind = "ssh";         // "ssh" (-s), "any" (nothing) or an IP literal (-i IP)
  std::vector<std::string> command;  // run instead of the login shell
  int verbose = 0;                  // number of -v
};

// The remote shell command line that starts mosh-server, in mosh.pl's order:
//   SERVER new -c COLORS [-s | -i ADDR] [-p RANGE] [-v...] [-l NAME=VALUE...] [-- command...]
// Every word after SERVER is ShellQuote'd. Fails on an empty or multi-line server, a bad bind
// value, a port range outside 1..65535 or with N > M, a locale entry that is not NAME=VALUE
// with NAME a shell-style identifier, or a NUL byte anywhere.
Result<std::string> BuildMoshServerCommand(const MoshServerParams& params);

struct MoshConnect {
  std::uint16_t port = 0;
  std::string key;  // 22 base64 characters; secret: never log it, never put it in argv
  std::uint32_t server_pid = 0;  // from "[mosh-server detached, pid = N]"; 0 if absent
};

enum class MoshServerFailure {
  kNotFound,       // no mosh-server on the server's non-interactive PATH
  kLocale,         // the requested locale is missing there: retry with LANG=C.UTF-8
  kNoConnectLine,  // no (or a malformed) MOSH CONNECT line
  kBadPort,        // a MOSH CONNECT line whose port is not in 1..65535
};

struct MoshServerError {
  MoshServerFailure kind;
  std::string message;  // one line for the user; never contains the key
  std::string hint;     // what to do about it; may be empty
};

// Reads the result of running BuildMoshServerCommand's line. The first stdout line that starts
// with "MOSH CONNECT " decides, as in mosh.pl: it must match exactly
// ^MOSH CONNECT (\d+?) ([A-Za-z0-9/+]{22})\s*$ (so a CRLF ending is fine, a 21- or 23-character
// key is not). Without such a line, stderr says why: a missing locale, a missing mosh-server
// (exit status 127, "command not found", "No such file or directory"), or anything else, quoted
// by its first line. A successful connect line wins over a non-zero exit status.
std::expected<MoshConnect, MoshServerError> ParseMoshServerOutput(int exit_status, std::string_view out,
                                                                  std::string_view err);

}  // namespace mconnect::mosh
