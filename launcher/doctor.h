// The pieces of `mconnect doctor`: the report (one line per check result: OK, FAIL with exactly
// what to fix, or an indented warning), and the checks' parts that need no master, each a
// function whose parsing part is pure so that unit tests can feed it what OpenSSH and a server
// print. The checks themselves, in order, are in launcher/commands/doctor.cc.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"

namespace mconnect::launcher {

// A warning is said but does not fail the run (a remote-ip strategy that failed where a later
// one answered).
enum class Verdict { kOk, kWarning, kFailure };

// What one check found.
struct CheckResult {
  Verdict verdict = Verdict::kOk;
  std::string message;  // what was found
  std::string hint;     // what to do about it; empty when there is nothing to do
};
CheckResult Passed(std::string message);
CheckResult Warning(std::string message);
CheckResult Failed(std::string message, std::string hint);
// A failure said by `error`, with `fallback` as the hint when the error has none of its own.
CheckResult Failed(const Error& error, std::string fallback = "");

struct Check {
  std::string name;  // "tcp", "host key", ...
  CheckResult result;
};

// The results in the order they came. With `live`, each is printed on stdout as it is added
// (the table: "OK    NAME           DETAIL", "FAIL  NAME           DETAIL", "      fix: ...", a
// warning as "                     DETAIL"), in colour when stdout is a terminal and NO_COLOR is
// unset.
class DoctorReport {
 public:
  explicit DoctorReport(bool live);

  void Add(std::string name, CheckResult result);
  void Ok(std::string name, std::string detail) { Add(std::move(name), Passed(std::move(detail))); }
  void Fail(std::string name, std::string detail, std::string fix) {
    Add(std::move(name), Failed(std::move(detail), std::move(fix)));
  }

  bool failed() const;
  const std::vector<Check>& checks() const { return checks_; }
  // The report as doctor.proto's Report in protobuf's JSON: {"destination", "ok", "checks":
  // [{"check", "ok", "detail", "fix", "result"}...]}, one line.
  std::string Json(std::string_view destination) const;

 private:
  void Print(const Check& check) const;

  bool live_;
  bool color_;
  std::vector<Check> checks_;
};

// A TCP connection to host:port (every address of `family` getaddrinfo gives, in order;
// AF_UNSPEC: either family) within `timeout`: "ADDRESS port PORT" of the first that accepts, or
// why none did.
Result<std::string> ReachTcp(const std::string& host, std::uint16_t port, int family,
                             std::chrono::milliseconds timeout);

// What `ssh -o PreferredAuthentications=none -o StrictHostKeyChecking=yes ... HOST true` told
// about the host key and the authentication methods the server offers. That run never
// authenticates and never writes known_hosts.
struct SshProbe {
  enum class HostKey { kKnown, kUnknown, kChanged, kUnreached };
  HostKey host_key = HostKey::kUnreached;
  std::vector<std::string> methods;  // from "Permission denied (publickey,password)."
  std::string said;                  // ssh's most telling line, for a failure
};
SshProbe ParseSshProbe(int exit_code, std::string_view err);
// The ssh arguments to append to the user's --ssh command for that run.
std::vector<std::string> SshProbeArguments(std::string_view host);

// The server side of the "mosh-server on PATH" and "locale" checks: a /bin/sh script run by the
// remote user's shell (so it sees exactly the non-interactive PATH mosh would), and its answer.
std::string ServerPathCommand(std::string_view program);
struct ServerPath {
  std::string path;                 // where the non-interactive PATH finds it; empty if nowhere
  std::string search_path;          // $PATH there
  std::vector<std::string> elsewhere;  // found by a login shell or in the usual directories
};
ServerPath ParseServerPath(std::string_view out);

// `locale charmap` on the server with the client's locale settings, then with LANG=C.UTF-8
// alone (the master's fallback for mosh-server).
std::string ServerLocaleCommand(const std::vector<std::string>& settings);
struct ServerLocale {
  bool has_locale_program = false;
  std::string requested;  // charmap with the client's settings, e.g. "UTF-8", "ANSI_X3.4-1968"
  std::string fallback;   // charmap with LANG=C.UTF-8
};
ServerLocale ParseServerLocale(std::string_view out);

}  // namespace mconnect::launcher
