#include "launcher/doctor.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "base/subprocess.h"
#include "base/terminal.h"
#include "base/unique_fd.h"
#include "launcher/doctor.pb.h"
#include "launcher/json.h"

namespace mconnect::launcher {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::string_view> Lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    std::size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return lines;
}

// The value after "KEY " on the first line that starts so; empty when none does.
std::string Field(std::string_view out, std::string_view key) {
  for (std::string_view line : Lines(out)) {
    if (line.size() > key.size() && line.starts_with(key) && line[key.size()] == ' ') {
      return std::string(line.substr(key.size() + 1));
    }
  }
  return "";
}

}  // namespace

CheckResult Passed(std::string message) { return {Verdict::kOk, std::move(message), ""}; }
CheckResult Warning(std::string message) { return {Verdict::kWarning, std::move(message), ""}; }
CheckResult Failed(std::string message, std::string hint) {
  return {Verdict::kFailure, std::move(message), std::move(hint)};
}
CheckResult Failed(const Error& error, std::string fallback) {
  return Failed(error.message, error.hint.empty() ? std::move(fallback) : error.hint);
}

DoctorReport::DoctorReport(bool live) : live_(live), color_(term::ColorOn(STDOUT_FILENO)) {}

void DoctorReport::Add(std::string name, CheckResult result) {
  checks_.push_back({std::move(name), std::move(result)});
  if (live_) Print(checks_.back());
}

bool DoctorReport::failed() const {
  return std::ranges::any_of(checks_, [](const Check& check) { return check.result.verdict == Verdict::kFailure; });
}

void DoctorReport::Print(const Check& check) const {
  const CheckResult& result = check.result;
  if (result.verdict == Verdict::kWarning) {
    std::printf("      %-14s %s\n", "", result.message.c_str());
  } else {
    std::string verdict = result.verdict == Verdict::kOk ? term::Paint("OK  ", term::Color::kGreen, color_)
                                                         : term::Paint("FAIL", term::Color::kRed, color_);
    std::printf("%s  %-14s %s\n", verdict.c_str(), check.name.c_str(), result.message.c_str());
  }
  if (!result.hint.empty()) std::printf("      %-14s fix: %s\n", "", result.hint.c_str());
  std::fflush(stdout);
}

std::string DoctorReport::Json(std::string_view destination) const {
  doctor::Report report;
  report.set_destination(ValidUtf8(destination));
  report.set_ok(!failed());
  for (const Check& check : checks_) {
    doctor::Check& out = *report.add_checks();
    out.set_check(ValidUtf8(check.name));
    out.set_ok(check.result.verdict != Verdict::kFailure);
    out.set_detail(ValidUtf8(check.result.message));
    out.set_fix(ValidUtf8(check.result.hint));
    out.set_result(check.result.verdict == Verdict::kOk        ? "ok"
                   : check.result.verdict == Verdict::kWarning ? "warning"
                                                               : "failure");
  }
  return ToJson(report);
}

Result<std::string> ReachTcp(const std::string& host, std::uint16_t port, int family,
                             std::chrono::milliseconds timeout) {
  addrinfo hints{};
  hints.ai_family = family;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0) {
    return Fail("cannot resolve {}: {}", host, ::gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses(found, ::freeaddrinfo);
  const auto deadline = Clock::now() + timeout;
  std::vector<std::string> failures;
  for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    char numeric[NI_MAXHOST] = "?";
    ::getnameinfo(ai->ai_addr, ai->ai_addrlen, numeric, sizeof numeric, nullptr, 0, NI_NUMERICHOST);
    UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd) return Fail("socket: {}", std::strerror(errno));
    int error = 0;
    if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
      error = errno;
      if (error == EINPROGRESS) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        pollfd pfd{fd.get(), POLLOUT, 0};
        int ready = ::poll(&pfd, 1, static_cast<int>(std::max<long>(0, left.count())));
        socklen_t length = sizeof error;
        if (ready <= 0) {
          error = ETIMEDOUT;
        } else if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &length) != 0) {
          error = errno;
        }
      }
    }
    if (error == 0) return fmt::format("{} port {}", numeric, port);
    failures.push_back(fmt::format("{}: {}", numeric,
                                   error == ETIMEDOUT ? fmt::format("no answer within {} s", timeout.count() / 1000)
                                                      : std::string(std::strerror(error))));
    if (Clock::now() >= deadline) break;
  }
  return Fail("cannot reach {} port {} ({})", host, port, fmt::join(failures, "; "));
}

SshProbe ParseSshProbe(int exit_code, std::string_view err) {
  SshProbe probe;
  for (std::string_view line : Lines(err)) {
    if (line.empty() || line.starts_with("@@@@") || line.starts_with("debug")) continue;
    if (probe.said.empty() || line.find("denied") != std::string_view::npos ||
        line.find("failed") != std::string_view::npos) {
      probe.said = std::string(line);
    }
  }
  if (err.find("REMOTE HOST IDENTIFICATION HAS CHANGED") != std::string_view::npos ||
      err.find("HOST KEY HAS CHANGED") != std::string_view::npos) {
    probe.host_key = SshProbe::HostKey::kChanged;
    return probe;
  }
  if (err.find("host key is known for") != std::string_view::npos ||
      err.find("Host key verification failed") != std::string_view::npos) {
    probe.host_key = SshProbe::HostKey::kUnknown;
    return probe;
  }
  constexpr std::string_view kDenied = "Permission denied (";
  if (auto at = err.find(kDenied); at != std::string_view::npos) {
    probe.host_key = SshProbe::HostKey::kKnown;
    std::string_view rest = err.substr(at + kDenied.size());
    rest = rest.substr(0, rest.find(')'));
    while (!rest.empty()) {
      std::size_t comma = rest.find(',');
      probe.methods.emplace_back(rest.substr(0, comma));
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
    return probe;
  }
  if (exit_code == 0) {  // the server let us in without any authentication
    probe.host_key = SshProbe::HostKey::kKnown;
    probe.methods.push_back("none");
  }
  return probe;
}

std::vector<std::string> SshProbeArguments(std::string_view host) {
  // Command-line -o beats the user's config. No pty, no agent or X11 forwarding, no master.
  return {"-T", "-a", "-x", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "UpdateHostKeys=no",
          "-o", "PreferredAuthentications=none", "-o", "ControlMaster=no", "-o", "ControlPath=none",
          "-o", "ConnectTimeout=10", "--", std::string(host), "true"};
}

std::string ServerPathCommand(std::string_view program) {
  // $1 is the program. A login shell's PATH (profile files) and the usual directories are
  // searched too, to say where it is when the non-interactive PATH misses it (mosh #102).
  static constexpr std::string_view kScript = R"sh(p=$(command -v -- "$1" 2>/dev/null) && { echo "path $p"; exit 0; }
echo "search-path $PATH"
l=$("${SHELL:-/bin/sh}" -lc 'command -v -- "$0"' "$1" </dev/null 2>/dev/null | tail -n 1)
case $l in /*) echo "elsewhere $l" ;; esac
for d in /usr/bin /usr/local/bin /opt/homebrew/bin /opt/local/bin /snap/bin /run/current-system/sw/bin \
         "$HOME/.nix-profile/bin" "$HOME/.local/bin" "$HOME/bin"; do
  [ -x "$d/$1" ] && [ "$d/$1" != "$l" ] && echo "elsewhere $d/$1"
done
exit 1)sh";
  return "/bin/sh -c " + ShellQuote(kScript) + " sh " + ShellQuote(program);
}

ServerPath ParseServerPath(std::string_view out) {
  ServerPath result;
  result.path = Field(out, "path");
  result.search_path = Field(out, "search-path");
  for (std::string_view line : Lines(out)) {
    if (!line.starts_with("elsewhere ")) continue;
    std::string where(line.substr(10));
    if (std::ranges::find(result.elsewhere, where) == result.elsewhere.end()) result.elsewhere.push_back(where);
  }
  return result;
}

std::string ServerLocaleCommand(const std::vector<std::string>& settings) {
  // mosh-server gets the client's settings as -l NAME=VALUE (exported over what the shell has),
  // and the master's fallback is LANG=C.UTF-8 alone.
  static constexpr std::string_view kScript = R"sh(command -v locale >/dev/null 2>&1 || { echo "no-locale"; exit 0; }
echo "fallback $(LANG=C.UTF-8 locale charmap 2>/dev/null)"
for a do export "$a"; done
echo "requested $(locale charmap 2>/dev/null)")sh";
  std::string command = "/bin/sh -c " + ShellQuote(kScript) + " sh";
  for (const auto& setting : settings) command += " " + ShellQuote(setting);
  return command;
}

ServerLocale ParseServerLocale(std::string_view out) {
  ServerLocale locale;
  locale.has_locale_program = out.find("no-locale") == std::string_view::npos;
  locale.requested = Field(out, "requested");
  locale.fallback = Field(out, "fallback");
  return locale;
}

}  // namespace mconnect::launcher
