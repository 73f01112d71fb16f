#include "launcher/commands/destination.h"

#include <sys/stat.h>

#include <optional>

#include <fmt/format.h>

#include "base/terminal.h"
#include "proto/socket_path.h"

namespace mconnect::launcher {
namespace {

std::string ProfilePathOf(const Options& options) {
  return options.config_path.empty() ? DefaultProfilePath() : options.config_path;
}

Result<Profile> LoadProfileFor(const Options& options) {
  return LoadProfile(ProfilePathOf(options),
                     options.config_path.empty() ? MissingProfile::kUseDefaults : MissingProfile::kFail);
}

Error FixTheProfile(const Error& error, const std::string& path) {
  return Error{error.message, fmt::format("fix that line of {} (`man mconnect-config` lists every key)", path)};
}

// Where `ssh -G`'s answers are kept: the runtime directory's ssh-G/, or nowhere when that
// directory cannot be made private (the master's start then says why).
std::optional<SshGCache> SshGCacheHere() {
  const std::string runtime = proto::DefaultRuntimeDir();
  const std::string directory = runtime + "/ssh-G";
  if (!proto::EnsurePrivateDirectory(runtime) || !proto::EnsurePrivateDirectory(directory)) return std::nullopt;
  return SshGCache(directory);
}

enum class Cached { kNo, kYes };

// The profile's section for the destination, then `ssh -G` (its kept answer for a session,
// which is the start a user waits for; subcommands that report or change things ask ssh).
Result<Resolved> ResolveWith(const Profile& profile, Options& options, Cached cached) {
  HostProfile host = profile.ForHost(SplitDestination(options.destination).host);
  ApplyProfile(options, host);
  const auto cache = cached == Cached::kYes ? SshGCacheHere() : std::nullopt;
  auto ssh = ResolveSshSettings(SshWithFamily(options), options.destination, cache ? &*cache : nullptr);
  if (!ssh) {
    return Fail(Error{ssh.error().message,
                      fmt::format("check the host name and what `{} -G {}` prints", options.ssh, options.destination)});
  }
  return Resolved{std::move(*ssh), std::move(host)};
}

}  // namespace

std::string_view SshFamilyFlag(const Options& options) {
  if (options.family == "inet") return "-4";
  if (options.family == "inet6") return "-6";
  return {};
}

std::string SshWithFamily(const Options& options) {
  const std::string_view flag = SshFamilyFlag(options);
  return flag.empty() ? options.ssh : fmt::format("{} {}", options.ssh, flag);
}

Result<Resolved> Resolve(Options& options) {
  auto profile = LoadProfileFor(options);
  if (!profile) return Fail(FixTheProfile(profile.error(), ProfilePathOf(options)));
  return ResolveWith(*profile, options, Cached::kNo);
}

std::expected<Resolved, int> ResolveOrExit(Options& options) {
  auto profile = LoadProfileFor(options);
  if (!profile) {
    const std::string path = ProfilePathOf(options);
    struct stat st {};
    if (!options.config_path.empty() && ::stat(path.c_str(), &st) != 0) {
      term::PrintFailure("mconnect", Error{profile.error().message,
                                           "check the path given to --config (without it, "
                                           "the default profile is read)"});
      return std::unexpected(2);
    }
    term::PrintFailure("mconnect", FixTheProfile(profile.error(), path));
    return std::unexpected(1);
  }
  auto resolved = ResolveWith(*profile, options, Cached::kYes);
  if (!resolved) {
    term::PrintFailure("mconnect", resolved.error());
    return std::unexpected(kExitConnectionFailed);
  }
  return std::move(*resolved);
}

std::string DoctorHint(const Options& options) {
  return fmt::format("`{}` checks each step and says what to fix", CommandLineFor(Options::Command::kDoctor, options));
}

}  // namespace mconnect::launcher
