// mconnect-delay-link: a userspace stand-in for `tc qdisc ... netem delay`, for kernels built
// without sch_netem. It forwards IP packets between two persistent TUN devices that live in two
// network namespaces, releasing each packet a fixed one-way delay after it was read (RTT = 2 x
// --delay-ms). Each direction is a FIFO bounded in bytes; a packet that does not fit is dropped
// and counted, as a router's tail drop would.
//
//   mconnect-delay-link --ns-a NS --dev-a DEV --ns-b NS --dev-b DEV --delay-ms D
//                       [--queue-bytes N] [--ready-file PATH]
//
// One thread, one ppoll loop: the timeout is the earliest release time, so the link adds no
// jitter beyond timer wake-up latency (tens of microseconds, see PR_SET_TIMERSLACK below).
// SIGTERM/SIGINT end it with exit 0 and one stats line on stderr; set-up errors are one line and
// exit 1.
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "base/unique_fd.h"

namespace {

using Clock = std::chrono::steady_clock;
using mconnect::UniqueFd;

// A set-up failure or a device that went away: main prints it as one line and exits 1.
struct Fatal : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string Errno(std::string_view what) { return std::string(what) + ": " + std::strerror(errno); }

struct Options {
  std::string ns_a, dev_a, ns_b, dev_b, ready_file;
  long long delay_ms = -1;
  std::size_t queue_bytes = 32u << 20;  // 32 MiB: several BDPs of a 50 ms, 100 MiB/s path.
};

long long ParseCount(std::string_view flag, const std::string& text) {
  std::size_t used = 0;
  long long value = -1;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
  }
  if (used != text.size() || value < 0) throw Fatal(std::string(flag) + ": not a count: '" + text + "'");
  return value;
}

Options ParseOptions(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; i += 2) {
    std::string_view flag = argv[i];
    if (i + 1 >= argc) throw Fatal(std::string(flag) + " needs a value");
    std::string value = argv[i + 1];
    if (flag == "--ns-a") o.ns_a = value;
    else if (flag == "--dev-a") o.dev_a = value;
    else if (flag == "--ns-b") o.ns_b = value;
    else if (flag == "--dev-b") o.dev_b = value;
    else if (flag == "--delay-ms") o.delay_ms = ParseCount(flag, value);
    else if (flag == "--queue-bytes") o.queue_bytes = static_cast<std::size_t>(ParseCount(flag, value));
    else if (flag == "--ready-file") o.ready_file = value;
    else throw Fatal("unknown option '" + std::string(flag) + "'");
  }
  if (o.ns_a.empty() || o.dev_a.empty() || o.ns_b.empty() || o.dev_b.empty() || o.delay_ms < 0)
    throw Fatal("usage: --ns-a NS --dev-a DEV --ns-b NS --dev-b DEV --delay-ms D "
                     "[--queue-bytes N] [--ready-file PATH]");
  return o;
}

UniqueFd OpenOrThrow(const std::string& path, int flags, mode_t mode = 0) {
  UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC, mode));
  if (!fd) throw Fatal(Errno(path));
  return fd;
}

// Attaches to the existing persistent TUN device `dev` inside namespace `ns`. A tun fd keeps
// talking to its device in the namespace it was attached in, so we enter `ns` only for the
// ioctl and return to `home` (our original namespace) before anything else happens.
UniqueFd AttachTun(const UniqueFd& home, const std::string& ns, const std::string& dev) {
  UniqueFd ns_fd = OpenOrThrow("/run/netns/" + ns, O_RDONLY);
  if (::setns(ns_fd.get(), CLONE_NEWNET) != 0) throw Fatal(Errno("setns " + ns));
  // Non-blocking: one loop serves both devices, so no read or write may park it.
  UniqueFd tun(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
  int saved_errno = errno;
  ifreq ifr{};
  // IFF_NO_PI: bare IP packets, the mode `ip tuntap add mode tun` creates. Without
  // IFF_TUN_EXCL, TUNSETIFF attaches to the existing device instead of creating one.
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  std::string error;
  if (!tun) {
    errno = saved_errno;
    error = Errno("/dev/net/tun");
  } else if (dev.size() >= IFNAMSIZ) {
    error = "device name too long: '" + dev + "'";
  } else if (::if_nametoindex(dev.c_str()) == 0) {
    // TUNSETIFF on a missing name would quietly create a fresh, unaddressed device and we would
    // forward into nothing; the script creates the persistent device, so its absence is an error.
    error = "no device " + dev + " in namespace " + ns;
  } else {
    std::memcpy(ifr.ifr_name, dev.c_str(), dev.size() + 1);
    if (::ioctl(tun.get(), TUNSETIFF, &ifr) != 0) error = Errno("TUNSETIFF " + dev + " in " + ns);
  }
  // Go home even on failure, so no later step runs in the wrong namespace.
  if (::setns(home.get(), CLONE_NEWNET) != 0) throw Fatal(Errno("setns back to the original namespace"));
  if (!error.empty()) throw Fatal(error);
  return tun;
}

// Written via a temporary and rename, so a script polling for the file never reads half of it.
void WriteReadyFile(const std::string& path) {
  std::string tmp = path + ".tmp";
  UniqueFd fd = OpenOrThrow(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (::write(fd.get(), "ready\n", 6) != 6) throw Fatal(Errno(tmp));
  fd.Reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) throw Fatal(Errno(path));
}

struct Packet {
  Clock::time_point due;
  std::vector<std::byte> bytes;
};

// One direction of the link: packets read from `in` wait in `queue` until due, then go to `out`.
struct Direction {
  const char* name;
  int in;
  int out;
  std::size_t capacity;  // bytes; beyond it, tail drop
  std::deque<Packet> queue{};
  std::size_t queued_bytes = 0;
  bool out_blocked = false;  // last write hit EAGAIN: wait for POLLOUT, not for the timer
  std::uint64_t packets = 0, bytes = 0, dropped = 0, write_errors = 0;
};

// Bounded so that a flood on one side cannot starve the other side or the release timer.
constexpr int kReadBatch = 256;
// IFF_NO_PI without IFF_VNET_HDR means no GSO: a packet is at most the MTU, but the device's
// MTU can be raised after we start, so read into the largest possible IP packet.
constexpr std::size_t kMaxPacket = 65536;

// Reads up to kReadBatch packets and queues them with their release time. Returns false on a
// read error other than "nothing more now" (the device went away).
bool ReadBatch(Direction& d, Clock::duration delay, std::vector<std::byte>& scratch) {
  for (int i = 0; i < kReadBatch; ++i) {
    ssize_t n = ::read(d.in, scratch.data(), scratch.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN;
    }
    // Time-stamped per packet, at the moment it left the kernel, so the delay is exact per packet.
    Clock::time_point due = Clock::now() + delay;
    auto size = static_cast<std::size_t>(n);
    if (d.queued_bytes + size > d.capacity) {
      ++d.dropped;
      continue;
    }
    d.queue.push_back({due, std::vector<std::byte>(scratch.begin(), scratch.begin() + n)});
    d.queued_bytes += size;
  }
  return true;
}


// Writes every packet that is due, in order. A write that would block leaves the packet at the
// head (order is kept) and switches the direction to waiting for POLLOUT. Returns the release
// time of the next packet still waiting, or time_point::max() if none needs the timer.
Clock::time_point Flush(Direction& d, Clock::time_point now) {
  d.out_blocked = false;
  while (!d.queue.empty()) {
    Packet& p = d.queue.front();
    if (p.due > now) return p.due;
    ssize_t n = ::write(d.out, p.bytes.data(), p.bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      d.out_blocked = true;
      return Clock::time_point::max();
    }
    // A tun write takes the whole packet or fails; a failure (e.g. the peer device is down)
    // loses this one packet, as a link would, and is counted apart from the tail drops.
    if (n < 0) ++d.write_errors;
    else ++d.packets, d.bytes += p.bytes.size();
    d.queued_bytes -= p.bytes.size();
    d.queue.pop_front();
  }
  return Clock::time_point::max();
}

// SIGTERM and SIGINT arrive through a signalfd in the poll set: no handler races the loop.
// Dispositions go back to default first: a shell starts background jobs with SIGINT ignored,
// and an ignored signal is discarded before it could reach the signalfd.
UniqueFd BlockAndWatchSignals() {
  ::signal(SIGTERM, SIG_DFL);
  ::signal(SIGINT, SIG_DFL);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  if (::sigprocmask(SIG_BLOCK, &mask, nullptr) != 0) throw Fatal(Errno("sigprocmask"));
  UniqueFd fd(::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!fd) throw Fatal(Errno("signalfd"));
  return fd;
}

int Run(const Options& o) {
  UniqueFd signals = BlockAndWatchSignals();
  UniqueFd home = OpenOrThrow("/proc/self/ns/net", O_RDONLY);
  UniqueFd tun_a = AttachTun(home, o.ns_a, o.dev_a);
  UniqueFd tun_b = AttachTun(home, o.ns_b, o.dev_b);
  // The default 50 us timer slack would be a visible share of a sub-millisecond precision
  // budget; 1 ns asks the kernel to wake us as close to the release time as it can.
  ::prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  if (!o.ready_file.empty()) WriteReadyFile(o.ready_file);

  const Clock::duration delay = std::chrono::milliseconds(o.delay_ms);
  Direction a_to_b{.name = "a->b", .in = tun_a.get(), .out = tun_b.get(), .capacity = o.queue_bytes};
  Direction b_to_a{.name = "b->a", .in = tun_b.get(), .out = tun_a.get(), .capacity = o.queue_bytes};
  std::vector<std::byte> scratch(kMaxPacket);
  Clock::time_point next = Clock::time_point::max();

  for (;;) {
    // A device is read when it may have packets, and written-watched only when its outgoing
    // queue is stuck on EAGAIN (otherwise POLLOUT would be always true and the loop would spin).
    pollfd fds[3] = {
        {tun_a.get(), static_cast<short>(POLLIN | (b_to_a.out_blocked ? POLLOUT : 0)), 0},
        {tun_b.get(), static_cast<short>(POLLIN | (a_to_b.out_blocked ? POLLOUT : 0)), 0},
        {signals.get(), POLLIN, 0},
    };
    timespec timeout{};
    timespec* timeout_ptr = nullptr;  // nothing queued: sleep until a packet or a signal
    if (next != Clock::time_point::max()) {
      auto wait = std::chrono::ceil<std::chrono::nanoseconds>(next - Clock::now());
      if (wait.count() > 0) {
        timeout.tv_sec = static_cast<time_t>(wait.count() / 1'000'000'000);
        timeout.tv_nsec = static_cast<long>(wait.count() % 1'000'000'000);
      }
      timeout_ptr = &timeout;
    }
    if (::ppoll(fds, 3, timeout_ptr, nullptr) < 0 && errno != EINTR) throw Fatal(Errno("ppoll"));
    if (fds[2].revents & POLLIN) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].revents & (POLLERR | POLLNVAL)) throw Fatal(std::string("tun device ") +
                                                                  (i == 0 ? o.dev_a : o.dev_b) + " failed");
    }
    if ((fds[0].revents & POLLIN) && !ReadBatch(a_to_b, delay, scratch)) throw Fatal(Errno("read " + o.dev_a));
    if ((fds[1].revents & POLLIN) && !ReadBatch(b_to_a, delay, scratch)) throw Fatal(Errno("read " + o.dev_b));
    // Flushing after reading lets a zero delay forward in the same wake-up.
    Clock::time_point now = Clock::now();
    next = std::min(Flush(a_to_b, now), Flush(b_to_a, now));
  }

  std::fprintf(stderr,
               "mconnect-delay-link: %s %llu packets %llu bytes %llu dropped %llu write errors; "
               "%s %llu packets %llu bytes %llu dropped %llu write errors\n",
               a_to_b.name, static_cast<unsigned long long>(a_to_b.packets),
               static_cast<unsigned long long>(a_to_b.bytes), static_cast<unsigned long long>(a_to_b.dropped),
               static_cast<unsigned long long>(a_to_b.write_errors), b_to_a.name,
               static_cast<unsigned long long>(b_to_a.packets), static_cast<unsigned long long>(b_to_a.bytes),
               static_cast<unsigned long long>(b_to_a.dropped),
               static_cast<unsigned long long>(b_to_a.write_errors));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(ParseOptions(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mconnect-delay-link: %s\n", e.what());
    return 1;
  }
}
