#include "launcher/transport.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>
#include <sstream>

#include <fmt/format.h>

#include "base/text.h"
#include "base/unique_fd.h"
#include "proto/socket_path.h"

namespace mconnect::launcher {
Result<Transport> ParseTransport(std::string_view text) {
  if (text == "udp") return Transport::kUdp;
  if (text == "ssh") return Transport::kSsh;
  if (text == "auto") return Transport::kAuto;
  return Fail("transport \"{}\" is not udp, ssh or auto", SanitizeForMessage(text));
}

std::string_view TransportName(Transport transport) {
  return NameIn(transport, {{Transport::kUdp, "udp"}, {Transport::kSsh, "ssh"}, {Transport::kAuto, "auto"}}, "?");
}

std::string LocalAddressTowards(const std::string& address) {
  addrinfo hints{};
  hints.ai_flags = AI_NUMERICHOST;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(address.c_str(), "9", &hints, &found) != 0 || found == nullptr) return "";
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owned(found, &::freeaddrinfo);
  UniqueFd socket(::socket(found->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  // connect() on a datagram socket only picks the route and the source address.
  if (!socket || ::connect(socket.get(), found->ai_addr, found->ai_addrlen) != 0) return "";
  sockaddr_storage local{};
  socklen_t length = sizeof local;
  if (::getsockname(socket.get(), reinterpret_cast<sockaddr*>(&local), &length) != 0) return "";
  char text[INET6_ADDRSTRLEN] = {};
  const void* bytes = local.ss_family == AF_INET6 ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(&local)->sin6_addr)
                                                  : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(&local)->sin_addr);
  return ::inet_ntop(local.ss_family, bytes, text, sizeof text) ? text : "";
}

std::string VerdictPathFor(const std::string& socket_path) { return proto::PathsForSocket(socket_path).verdict; }

std::optional<StoredVerdict> ReadVerdict(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  // "ADDRESS udp|ssh UNIX-TIME WHY..."
  std::istringstream fields(line);
  std::string name;
  long long when = 0;
  StoredVerdict stored;
  if (!(fields >> stored.key >> name >> when)) return std::nullopt;
  auto transport = ParseTransport(name);
  if (!transport || *transport == Transport::kAuto) return std::nullopt;
  stored.verdict.transport = *transport;
  std::getline(fields >> std::ws, stored.verdict.why);
  stored.age = std::chrono::seconds(static_cast<long long>(std::time(nullptr)) - when);
  return stored;
}

bool VerdictCurrent(const StoredVerdict& stored, std::chrono::seconds ttl) {
  return stored.age.count() >= 0 && stored.age <= ttl;
}

std::optional<TransportVerdict> RecallVerdict(const std::string& path, const std::string& address,
                                              std::chrono::seconds ttl) {
  auto stored = ReadVerdict(path);
  if (!stored || stored->key != address || !VerdictCurrent(*stored, ttl)) return std::nullopt;
  stored->verdict.why += fmt::format(" ({} s ago)", stored->age.count());
  return stored->verdict;
}

void RememberVerdict(const std::string& path, const std::string& address, const TransportVerdict& verdict) {
  // Written whole to a temporary file and renamed: a concurrent reader sees old or new.
  std::string temporary = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(temporary, std::ios::trunc);
    if (!out) return;  // no verdict remembered: the next start probes again
    std::string why = verdict.why;
    for (char& c : why) {
      if (c == '\n' || c == '\r') c = ' ';
    }
    out << address << ' ' << TransportName(verdict.transport) << ' ' << static_cast<long long>(std::time(nullptr)) << ' '
        << why << '\n';
    if (!out.flush()) {
      std::remove(temporary.c_str());
      return;
    }
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) std::remove(temporary.c_str());
}

}  // namespace mconnect::launcher
