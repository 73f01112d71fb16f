#include "mosh/udp_probe.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <openssl/crypto.h>

#include "base/unique_fd.h"
#include "mosh/datagram.h"

namespace mconnect::mosh {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr int kProbeDatagrams = 3;

// Wipes the decoded session key however the probe ends.
struct KeyWiper {
  MoshKey& key;
  ~KeyWiper() { OPENSSL_cleanse(key.data(), key.size()); }
};

// mosh's timestamp16: milliseconds of a monotonic clock modulo 65536, never 0xFFFF ("none").
std::uint16_t Timestamp16(Clock::time_point now) {
  auto ms = std::chrono::duration_cast<milliseconds>(now.time_since_epoch()).count();
  auto ts = static_cast<std::uint16_t>(static_cast<std::uint64_t>(ms) & 0xFFFF);
  return ts == kMoshNoTimestamp ? 0 : ts;
}

milliseconds CeilMs(Clock::duration duration) {
  return std::max(milliseconds{1}, std::chrono::ceil<milliseconds>(duration));
}

ProbeResult Unanswered(std::string detail) { return ProbeResult{false, milliseconds{0}, std::move(detail)}; }

// The outcome of an error the kernel reports on the connected socket (an ICMP error from the
// path), or nullopt for errors that mean "try again".
std::optional<ProbeResult> SocketErrorOutcome(int error, const std::string& where) {
  switch (error) {
    case EAGAIN:
    case EINTR:
      return std::nullopt;
    case ECONNREFUSED:
      return Unanswered(fmt::format("port closed (ICMP port unreachable from {})", where));
    case EHOSTUNREACH:
    case ENETUNREACH:
      return Unanswered(fmt::format("{} is unreachable ({})", where, std::strerror(error)));
    default:
      return Unanswered(fmt::format("UDP to {} failed: {}", where, std::strerror(error)));
  }
}

struct Peer {
  sockaddr_storage address{};
  socklen_t length = 0;
  std::string where;  // "192.0.2.1:60001", "[2001:db8::1]:60001"
};

Result<Peer> PeerOf(const std::string& address, std::uint16_t port) {
  Peer peer;
  if (auto* v4 = reinterpret_cast<sockaddr_in*>(&peer.address);
      ::inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    peer.length = sizeof(sockaddr_in);
    peer.where = fmt::format("{}:{}", address, port);
  } else if (auto* v6 = reinterpret_cast<sockaddr_in6*>(&peer.address);
             ::inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    peer.length = sizeof(sockaddr_in6);
    peer.where = fmt::format("[{}]:{}", address, port);
  } else {
    return Fail("mosh probe: \"{}\" is not an IP address", address);
  }
  return peer;
}

// Datagrams that did not authenticate, so far.
struct Heard {
  int unauthenticated = 0;
  std::string last_rejection;
};

// Reads what waits on the socket. The first authentic datagram ends the probe, as does an error
// that decides it; nullopt: nothing yet (the rest is counted in `heard`).
std::optional<ProbeResult> ReadAnswers(int socket, const MoshKey& key, const std::string& where,
                                       Clock::time_point start, Clock::time_point last_send, Heard& heard) {
  std::array<std::uint8_t, kMoshMaxDatagram + 1> buffer;
  for (;;) {
    ssize_t received = ::recv(socket, buffer.data(), buffer.size(), 0);
    if (received < 0) {
      if (errno == EAGAIN) return std::nullopt;
      if (auto outcome = SocketErrorOutcome(errno, where)) return outcome;
      continue;  // EINTR
    }
    const Clock::time_point arrival = Clock::now();
    auto packet = DecodeServerPacket(key, std::span(buffer.data(), static_cast<std::size_t>(received)));
    if (!packet) {
      ++heard.unauthenticated;
      heard.last_rejection = packet.error().message;
      continue;
    }
    // mosh's own RTT sample: our timestamp echoed back, advanced by the time the server held
    // it. It is right even when the reply answers an earlier datagram than the last one.
    milliseconds rtt = CeilMs(arrival - last_send);
    if (packet->timestamp_reply != kMoshNoTimestamp) {
      milliseconds echoed{static_cast<std::uint16_t>(Timestamp16(arrival) - packet->timestamp_reply)};
      if (echoed > rtt && echoed <= CeilMs(arrival - start)) rtt = echoed;
    }
    std::string detail = fmt::format("mosh-server answered in {} ms", rtt.count());
    if (heard.unauthenticated > 0) {
      detail += fmt::format(" (and {} datagrams failed authentication)", heard.unauthenticated);
    }
    return ProbeResult{true, rtt, std::move(detail)};
  }
}

}  // namespace

Result<ProbeResult> ProbeMoshServer(const std::string& address, std::uint16_t port, std::string_view key_text,
                                    milliseconds budget) {
  if (port == 0) return Fail("mosh probe: port 0 is not a UDP port");
  auto peer_or = PeerOf(address, port);
  if (!peer_or) return Fail(peer_or.error());
  const Peer& peer = *peer_or;
  const std::string& where = peer.where;

  auto key = DecodeMoshKey(key_text);
  if (!key) return Fail("mosh probe: {}", key.error().message);
  KeyWiper wiper{*key};

  UniqueFd socket(::socket(peer.address.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!socket) return Fail("mosh probe: cannot create a UDP socket: {}", std::strerror(errno));
  // Connected, so that the kernel delivers only the server's datagrams and reports ICMP errors
  // (port unreachable) as ECONNREFUSED on the next recv or send.
  if (::connect(socket.get(), reinterpret_cast<const sockaddr*>(&peer.address), peer.length) != 0) {
    if (auto outcome = SocketErrorOutcome(errno, where)) return *outcome;
    return Fail("mosh probe: cannot connect a UDP socket to {}: {}", where, std::strerror(errno));
  }

  // "I hold your state 0 and have nothing new": the server learns no state from it (mosh-server
  // already has client state 0), yet any authentic datagram gives it an address to reply to,
  // and it replies at once (its first ack is due from the start).
  const MoshInstruction hello{};

  const Clock::time_point start = Clock::now();
  const Clock::time_point deadline = start + budget;
  const milliseconds spacing = std::clamp(budget / 6, milliseconds{20}, milliseconds{1000});
  int sent = 0;
  Clock::time_point last_send = start;
  Heard heard;

  for (;;) {
    Clock::time_point now = Clock::now();
    if (sent < kProbeDatagrams && now >= start + sent * spacing) {
      auto datagram = EncodeClientPacket(*key, static_cast<std::uint64_t>(sent), Timestamp16(now), hello);
      MCONNECT_CHECK(datagram.has_value());  // a fixed, tiny instruction always fits
      ssize_t written = ::send(socket.get(), datagram->data(), datagram->size(), 0);
      if (written < 0) {
        if (auto outcome = SocketErrorOutcome(errno, where)) return *outcome;
      }
      last_send = now;
      ++sent;
    }
    if (now >= deadline) break;
    Clock::time_point wake = sent < kProbeDatagrams ? std::min(deadline, start + sent * spacing) : deadline;
    pollfd poll_fd{socket.get(), POLLIN, 0};
    // At most a second per wait, so that no budget can overflow poll's int; and never negative
    // (poll's "for ever"): a probe held up past its next send (a loaded machine, a stopped
    // process) finds that send already due and makes it on the next turn.
    const auto wait = std::clamp(std::chrono::ceil<milliseconds>(wake - now), milliseconds{0}, milliseconds{1000});
    int ready = ::poll(&poll_fd, 1, static_cast<int>(wait.count()));
    if (ready < 0 && errno != EINTR) return Fail("mosh probe: poll: {}", std::strerror(errno));
    if (ready <= 0) continue;

    if (auto outcome = ReadAnswers(socket.get(), *key, where, start, last_send, heard)) return *outcome;
  }

  if (heard.unauthenticated > 0) {
    return Unanswered(fmt::format(
        "no authentic answer: {} datagrams from {} failed authentication (another service on that port, "
        "or a different mosh-server's key): {}",
        heard.unauthenticated, where, heard.last_rejection));
  }
  return Unanswered(fmt::format("no answer from {} within {} ms (UDP blocked or filtered?)", where, budget.count()));
}

}  // namespace mconnect::mosh
