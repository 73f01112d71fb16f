#include "launcher/local.h"

#include <chrono>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "base/subprocess.h"
#include "base/terminal.h"
#include "launcher/mosh_client.h"
#include "mosh/server.h"
#include "remote-ip/strategy.h"

namespace mconnect::launcher {
namespace {

using std::chrono::milliseconds;

constexpr milliseconds kServerTimeout{20000};

// The remote-ip `dns` strategy, run here on the destination's host name: the address (an IP
// literal as given, or the name's address that --family chooses), validated as any answer is.
class ThisMachine final : public remoteip::Host {
 public:
  explicit ThisMachine(std::string name) : name_(std::move(name)) {}
  void RunCommand(std::string, milliseconds, std::function<void(remoteip::CommandOutcome)> done) override {
    done(remoteip::CommandOutcome{127, "", "no commands run for --local", false, ""});
  }
  std::optional<std::string> PeerAddress() const override { return std::nullopt; }
  std::string HostName() const override { return name_; }

 private:
  std::string name_;
};

Result<std::string> LocalAddress(const std::string& host, remoteip::Family family) {
  auto chain = remoteip::Chain::Parse({"dns"}, nullptr, {}, family);
  if (!chain) return Fail(std::move(chain.error()));
  ThisMachine here(host);
  std::optional<remoteip::ChainResult> result;
  chain->Run(here, milliseconds(10000), [&](remoteip::ChainResult r) { result = std::move(r); });
  if (!result || !result->address) {
    std::string why = result && !result->candidates.empty() ? result->candidates.front().error : "no answer";
    if (why.starts_with("dns: ")) why.erase(0, 5);
    return Fail(Error{fmt::format("--local: {}", why),
                      "give --local the address mosh-server should listen on, e.g. `mconnect --local 127.0.0.1`"});
  }
  return *result->address;
}

// What ParseMoshServerOutput says of a server reached over SSH, said of this machine.
Error LocalServerError(const mosh::MoshServerError& error) {
  std::string message = error.message;
  if (auto at = message.find(" on the server"); at != std::string::npos) message.replace(at, 14, " on this machine");
  std::string hint;
  switch (error.kind) {
    case mosh::MoshServerFailure::kNotFound:
      hint = "install mosh here (apt install mosh), or pass --server=/full/path/to/mosh-server";
      break;
    case mosh::MoshServerFailure::kLocale:
      hint = "generate that locale here (locale-gen, or the locales package), or run with LANG=C.UTF-8";
      break;
    case mosh::MoshServerFailure::kNoConnectLine:
      hint = "run `mosh-server new` by hand to see its full output";
      break;
    case mosh::MoshServerFailure::kBadPort:
      break;
  }
  return Error{message, hint};
}

void Print(const Error& error) { term::PrintFailure("mconnect", error); }

}  // namespace

int RunLocal(const Options& options) {
  if (options.explicitly_set.transport && options.transport == "ssh") {
    Print(Error{"--local runs no SSH: --transport=ssh has nothing to go over"});
    return 2;
  }
  auto family = remoteip::ParseFamily(options.family);
  if (!family) {
    Print(Error{"--" + family.error().message});
    return 2;
  }
  auto address = LocalAddress(SplitDestination(options.destination).host, *family);
  if (!address) {
    Print(address.error());
    return 1;
  }
  // As for a server: this machine's part is checked before mosh-server is started for it.
  auto client = FindClient(options.client);
  const bool mosh_client = client && IsMoshClient(*client);
  if (Result<void> locale = mosh_client ? CheckClientLocale() : Result<void>(); !client || !locale) {
    Print(client ? locale.error() : client.error());
    return 1;
  }
  if (auto terminal = mosh_client ? CheckClientTerminal(options.destination) : Result<void>(); !terminal) {
    Print(terminal.error());
    return 1;
  }

  mosh::MoshServerParams params;
  params.server = options.server;
  params.locale = LocaleSettings();
  params.colors = ClientColors(*client);
  params.port_range = options.port_range;
  // mosh.pl: with --local, "ssh" binds to the destination as given (-i), since there is no
  // SSH connection whose address -s could take.
  params.bind = options.bind_server == "ssh" ? *address : options.bind_server;
  params.command = options.remote_command;
  auto line = mosh::BuildMoshServerCommand(params);
  if (!line) {
    Print(line.error());
    return 2;
  }
  // In the home directory and without SSH_CONNECTION, as mosh.pl starts it.
  CommandOptions run;
  run.timeout = kServerTimeout;
  auto ran = RunCommand(ShellCommand("cd 2>/dev/null; unset SSH_CONNECTION; " + *line), run);
  if (!ran) {
    Print(Error{fmt::format("cannot start mosh-server: {}", ran.error().message)});
    return 1;
  }
  if (ran->timed_out) {
    Print(Error{fmt::format("mosh-server did not answer within {} s", kServerTimeout.count() / 1000),
                "run `mosh-server new` by hand to see why"});
    return 1;
  }
  auto connect = mosh::ParseMoshServerOutput(ran->exit_code, ran->out, ran->err);
  if (!connect) {
    Print(LocalServerError(connect.error()));
    return 1;
  }
  if (options.timings || options.verbosity > 0) {
    std::fprintf(stderr, "mconnect: --local: mosh-server on %s port %u (pid %u), no SSH\n", address->c_str(),
                 connect->port, connect->server_pid);
  }
  Error failed = ExecMoshClient(options, *address, connect->port, connect->key);
  Print(failed);
  return 1;
}

}  // namespace mconnect::launcher
