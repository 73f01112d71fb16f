#include "proto/master_record.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/unique_fd.h"

namespace mconnect::proto {

Result<void> WriteRecord(const std::string& path, const control::MasterRecord& record) {
  const std::string bytes = record.SerializeAsString();
  const std::string temporary = path + "." + std::to_string(::getpid()) + ".tmp";
  {
    UniqueFd fd(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) return Fail("cannot write {}: {}", temporary, std::strerror(errno));
    if (::write(fd.get(), bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) {
      const int error = errno;
      ::unlink(temporary.c_str());
      return Fail("cannot write {}: {}", temporary, std::strerror(error));
    }
  }
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(temporary.c_str());
    return Fail("cannot publish {}: {}", path, std::strerror(error));
  }
  return {};
}

std::optional<control::MasterRecord> ReadRecord(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!fd) return std::nullopt;
  char buffer[8192];  // a record is a few hundred bytes; more is not one
  ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
  if (n <= 0 || n == static_cast<ssize_t>(sizeof buffer)) return std::nullopt;
  control::MasterRecord record;
  if (!record.ParseFromArray(buffer, static_cast<int>(n)) || record.socket_path().empty()) return std::nullopt;
  return record;
}

bool LockHeld(const std::string& lock_path) {
  UniqueFd fd(::open(lock_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return false;
  if (::flock(fd.get(), LOCK_SH | LOCK_NB) == 0) return false;  // released when fd closes
  return errno == EWOULDBLOCK;
}

}  // namespace mconnect::proto
