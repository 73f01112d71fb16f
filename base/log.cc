#include "base/log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace mconnect::log {

spdlog::level::level_enum LevelFromVerbosity(int verbosity) {
  switch (verbosity) {
    case 0: return spdlog::level::warn;
    case 1: return spdlog::level::info;
    case 2: return spdlog::level::debug;
    default: return spdlog::level::trace;
  }
}

void ToStderr(std::string_view name, int verbosity) {
  auto logger = std::make_shared<spdlog::logger>(std::string(name), std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_pattern("%n: %v");
  logger->set_level(LevelFromVerbosity(verbosity));
  spdlog::set_default_logger(std::move(logger));
}

Result<void> ToFile(std::string_view name, const std::string& path, int verbosity) {
  // The log sits beside the socket, maybe in a directory others may add to (/tmp, sticky, for a
  // ControlPath there): create it 0600 ourselves, never through a link planted at its path, and
  // never append to a file that is not ours. Once it is ours, nobody else can replace it there.
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
  if (fd < 0) return Fail("cannot open log file {}: {}", path, std::strerror(errno));
  struct stat st {};
  const bool ours = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == ::getuid();
  ::close(fd);
  if (!ours) return Fail("log file {} is not a regular file of yours; not writing to it", path);
  try {
    auto sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path);
    auto logger = std::make_shared<spdlog::logger>(std::string(name), std::move(sink));
    logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %n[%P] %l: %v");
    // The file is for after-the-fact diagnosis: keep info even without -v.
    logger->set_level(verbosity > 0 ? LevelFromVerbosity(verbosity) : spdlog::level::info);
    logger->flush_on(spdlog::level::trace);
    spdlog::set_default_logger(std::move(logger));
  } catch (const spdlog::spdlog_ex& e) {
    return Fail("cannot open log file {}: {}", path, e.what());
  }
  return {};
}

}  // namespace mconnect::log
