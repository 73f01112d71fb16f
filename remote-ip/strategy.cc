#include "remote-ip/strategy.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstddef>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "base/ip_literal.h"
#include "base/text.h"
#include "remote-ip/address.h"

namespace mconnect::remoteip {
namespace {

using std::chrono::milliseconds;

constexpr std::string_view kCommandPrefix = "command:";
constexpr std::string_view kStaticPrefix = "static:";
constexpr std::size_t kMaxQuotedStderr = 100;

// The first non-blank line of a command's stderr, fit to quote; empty if there is none.
std::string FirstLine(std::string_view text) {
  while (!text.empty()) {
    auto end = text.find('\n');
    auto line = Trim(text.substr(0, end));
    if (!line.empty()) return SanitizeForMessage(line, kMaxQuotedStderr);
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return {};
}

// The failure of a remote command as a message fragment, or empty if it ran and exited 0.
std::string CommandFailure(const CommandOutcome& outcome, milliseconds timeout) {
  if (!outcome.error.empty()) return SanitizeForMessage(outcome.error, kMaxQuotedStderr);
  if (outcome.timed_out && outcome.unanswered) {
    return fmt::format("timed out after {} ms: the server did not even answer the request to run it", timeout.count());
  }
  if (outcome.timed_out) return fmt::format("timed out after {} ms", timeout.count());
  if (outcome.exit_status != 0) {
    std::string line = FirstLine(outcome.err);
    std::string status = outcome.exit_status < 0 ? std::string("ended without an exit status (killed by a signal)")
                                                  : fmt::format("exited with status {}", outcome.exit_status);
    return line.empty() ? status : fmt::format("{}: {}", status, line);
  }
  return {};
}

// Prefixes an error with the spec that produced it.
Result<std::string> Named(std::string_view spec, Result<std::string> address) {
  if (address) return address;
  return Fail("{}: {}", spec, address.error().message);
}

class CommandStrategy final : public Strategy {
 public:
  explicit CommandStrategy(std::string command) : command_(std::move(command)) {}
  std::string Spec() const override { return fmt::format("{}{}", kCommandPrefix, command_); }
  void Discover(Host& host, milliseconds timeout, Done done) override {
    host.RunCommand(command_, timeout, [spec = Spec(), timeout, done = std::move(done)](CommandOutcome outcome) {
      if (auto failure = CommandFailure(outcome, timeout); !failure.empty()) {
        return done(Fail("{}: {}", spec, failure));
      }
      done(Named(spec, ParseAddressOutput(outcome.out)));
    });
  }

 private:
  std::string command_;
};

class PeerStrategy final : public Strategy {
 public:
  std::string Spec() const override { return "peer"; }
  bool Cacheable() const override { return false; }
  void Discover(Host& host, milliseconds, Done done) override {
    auto peer = host.PeerAddress();
    if (!peer) return done(Fail("peer: {}", host.NoPeerAddress()));
    done(Named(Spec(), ParseAddressOutput(*peer)));
  }
};

class SshConnectionStrategy final : public Strategy {
 public:
  std::string Spec() const override { return "ssh-connection"; }
  void Discover(Host& host, milliseconds timeout, Done done) override {
    // The remote login shell may be csh or fish; sh -c with single quotes parses in all of them
    // (mosh.pl asks the same way, for the same reason).
    host.RunCommand("sh -c 'echo \"$SSH_CONNECTION\"'", timeout,
                    [spec = Spec(), timeout, done = std::move(done)](CommandOutcome outcome) {
                      if (auto failure = CommandFailure(outcome, timeout); !failure.empty()) {
                        return done(Fail("{}: {}", spec, failure));
                      }
                      auto value = Trim(outcome.out);
                      if (value.empty()) return done(Fail("{}: $SSH_CONNECTION is empty on the server", spec));
                      auto server = SshConnectionServerAddress(value);
                      if (!server) {
                        return done(Fail("{}: $SSH_CONNECTION is not \"client_ip client_port server_ip "
                                         "server_port\": \"{}\"",
                                         spec, SanitizeForMessage(value)));
                      }
                      done(Named(spec, ParseAddressOutput(*server)));
                    });
  }
};

class DnsStrategy final : public Strategy {
 public:
  DnsStrategy(Resolver resolver, Family family) : resolver_(std::move(resolver)), family_(family) {}
  std::string Spec() const override { return "dns"; }
  // The answer depends on the family asked for: only the default's is kept.
  bool Cacheable() const override { return family_ == Family::kPreferInet || family_ == Family::kAll; }
  void Discover(Host& host, milliseconds, Done done) override {
    std::string name = host.HostName();
    if (name.empty()) return done(Fail("dns: the master has no HostName to resolve"));
    if (IsIpLiteral(name)) return done(Named(Spec(), ParseAddressOutput(name)));
    auto addresses = resolver_(name);
    if (!addresses) {
      return done(Fail("dns: cannot resolve {}: {}", SanitizeForMessage(name, 80), addresses.error().message));
    }
    if (auto chosen = InFamilyOrder(name, *addresses); !chosen) return done(Fail(std::move(chosen.error())));
    std::string first_problem;
    for (const auto& address : *addresses) {
      auto usable = ParseAddressOutput(address);
      if (usable) return done(std::move(usable));
      if (first_problem.empty()) first_problem = usable.error().message;
    }
    if (first_problem.empty()) return done(Fail("dns: {} has no addresses", SanitizeForMessage(name, 80)));
    done(Fail("dns: {} has no usable address: {}", SanitizeForMessage(name, 80), first_problem));
  }

 private:
  // As mosh.pl's resolvename: inet/inet6 keep that family, prefer- puts it first, auto refuses a
  // name with both, all keeps the resolver's order.
  Result<void> InFamilyOrder(const std::string& name, std::vector<std::string>& addresses) const {
    auto v6 = [](const std::string& address) { return address.find(':') != std::string::npos; };
    const bool any_v4 = std::ranges::any_of(addresses, [&](const auto& a) { return !v6(a); });
    const bool any_v6 = std::ranges::any_of(addresses, v6);
    switch (family_) {
      case Family::kInet:
      case Family::kInet6: {
        const bool want_v6 = family_ == Family::kInet6;
        std::erase_if(addresses, [&](const auto& a) { return v6(a) != want_v6; });
        if (addresses.empty() && (any_v4 || any_v6)) {
          return Fail("dns: {} has no {} address (--family={})", SanitizeForMessage(name, 80), want_v6 ? "IPv6" : "IPv4",
                      FamilyName(family_));
        }
        return {};
      }
      case Family::kPreferInet:
      case Family::kPreferInet6: {
        const bool first_v6 = family_ == Family::kPreferInet6;
        std::ranges::stable_partition(addresses, [&](const auto& a) { return v6(a) == first_v6; });
        return {};
      }
      case Family::kAuto:
        if (any_v4 && any_v6) {
          return Fail("dns: {} has both IPv4 and IPv6 addresses; --family (or -4, -6) says which to use",
                      SanitizeForMessage(name, 80));
        }
        return {};
      case Family::kAll:
        return {};
    }
    return {};
  }

  Resolver resolver_;
  Family family_;
};

class StaticStrategy final : public Strategy {
 public:
  explicit StaticStrategy(std::string address) : address_(std::move(address)) {}
  std::string Spec() const override { return fmt::format("{}{}", kStaticPrefix, address_); }
  bool Cacheable() const override { return false; }
  void Discover(Host&, milliseconds, Done done) override { done(address_); }

 private:
  std::string address_;  // validated and canonical
};

}  // namespace

Result<std::vector<std::string>> ResolveHostName(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_ADDRCONFIG;
  addrinfo* list = nullptr;
  int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &list);
  if (rc != 0) return Fail("{}", ::gai_strerror(rc));
  std::vector<std::string> addresses;
  for (addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    char buffer[INET6_ADDRSTRLEN] = {};
    const void* raw = nullptr;
    if (ai->ai_family == AF_INET && ai->ai_addrlen >= sizeof(sockaddr_in)) {
      raw = &reinterpret_cast<const sockaddr_in*>(ai->ai_addr)->sin_addr;
    } else if (ai->ai_family == AF_INET6 && ai->ai_addrlen >= sizeof(sockaddr_in6)) {
      raw = &reinterpret_cast<const sockaddr_in6*>(ai->ai_addr)->sin6_addr;
    }
    if (raw != nullptr && ::inet_ntop(ai->ai_family, raw, buffer, sizeof buffer) != nullptr) {
      addresses.emplace_back(buffer);
    }
  }
  ::freeaddrinfo(list);
  return addresses;
}

std::unique_ptr<Strategy> MakeDnsStrategy(Resolver resolver, Family family) {
  return std::make_unique<DnsStrategy>(std::move(resolver), family);
}

Result<std::unique_ptr<Strategy>> ParseStrategy(std::string_view spec, Family family) {
  std::string_view text = Trim(spec);
  if (text.empty()) return Fail("empty remote-ip strategy");
  if (text.find('\0') != std::string_view::npos) return Fail("remote-ip strategy contains a NUL byte");
  if (text == "peer") return std::make_unique<PeerStrategy>();
  if (text == "ssh-connection") return std::make_unique<SshConnectionStrategy>();
  if (text == "dns") return MakeDnsStrategy(ResolveHostName, family);
  if (text == "command" || text.starts_with(kCommandPrefix)) {
    std::string_view command = text.size() > kCommandPrefix.size() ? Trim(text.substr(kCommandPrefix.size())) : "";
    if (command.empty()) {
      return Fail("command: needs a shell command to run on the server, e.g. command:curl -sS https://ipinfo.io/ip");
    }
    return std::make_unique<CommandStrategy>(std::string(command));
  }
  if (text == "static" || text.starts_with(kStaticPrefix)) {
    std::string_view address = text.size() > kStaticPrefix.size() ? Trim(text.substr(kStaticPrefix.size())) : "";
    if (address.empty()) return Fail("static: needs an IP address, e.g. static:203.0.113.7");
    if (!IsIpLiteral(address)) {
      return Fail("static:{}: not an IP literal", SanitizeForMessage(address));
    }
    auto usable = ParseAddressOutput(address);
    if (!usable) return Fail("static:{}: {}", SanitizeForMessage(address), usable.error().message);
    return std::make_unique<StaticStrategy>(std::move(*usable));
  }
  if (auto mosh = MoshRemoteIpMode(text)) {
    return Fail("unknown remote-ip strategy \"{}\" (mosh's --experimental-remote-ip={} is \"{}\")", text, text, *mosh);
  }
  return Fail("unknown remote-ip strategy \"{}\" (expected command:<shell command>, peer, ssh-connection, dns or "
              "static:<ip>)",
              SanitizeForMessage(text));
}

std::optional<std::string> MoshRemoteIpMode(std::string_view mode) {
  if (mode == "proxy") return "peer";
  if (mode == "local") return "dns";
  if (mode == "remote") return "ssh-connection";
  return std::nullopt;
}

// ---- Chain ----

namespace {

// One run of a chain. Owned jointly by the callbacks in flight, so it lives exactly as long
// as some strategy may still answer.
struct ChainRun {
  std::shared_ptr<const std::vector<std::unique_ptr<Strategy>>> strategies;
  Host* host = nullptr;
  Cache* cache = nullptr;
  Chain::Clock clock;
  Family family = Family::kAll;
  milliseconds timeout{0};
  Chain::Done done;
  ChainResult result;
  std::size_t next = 0;
  // True while a strategy's Discover is on the stack. An answer arriving then is only recorded;
  // the loop in Advance picks it up, so synchronous strategies never nest calls.
  bool discovering = false;
  bool answered = false;
};

milliseconds Millis(std::chrono::steady_clock::duration duration) {
  if (duration < std::chrono::steady_clock::duration::zero()) return milliseconds{0};
  return std::chrono::duration_cast<milliseconds>(duration);
}

void Record(ChainRun& run, const std::string& spec, bool cacheable, std::chrono::steady_clock::time_point start,
            Result<std::string> answer) {
  auto now = run.clock();
  Candidate candidate{spec, {}, {}, Millis(now - start), milliseconds{0}};
  if (answer) {
    // Plug-in strategies are held to the same rules as the built-ins.
    auto valid = ParseAddressOutput(*answer);
    if (valid && run.cache != nullptr && cacheable) run.cache->Put(spec, *valid, now);  // what it says
    if (std::string mismatch = valid ? FamilyMismatch(run.family, *valid) : ""; !mismatch.empty()) {
      candidate.error = fmt::format("{}: {}", spec, mismatch);
    } else if (valid) {
      candidate.address = *valid;
      run.result.address = *valid;
      if (run.cache != nullptr) run.cache->Note(spec, *valid, now);
    } else {
      candidate.error = fmt::format("{}: {}", spec, valid.error().message);
    }
  } else {
    const std::string& message = answer.error().message;
    bool named = message.size() > spec.size() && message.starts_with(spec) && message[spec.size()] == ':';
    candidate.error = named ? message : fmt::format("{}: {}", spec, message);
  }
  run.result.candidates.push_back(std::move(candidate));
  ++run.next;
}

void Finish(ChainRun& run) {
  auto done = std::move(run.done);
  run.done = nullptr;
  if (done) done(std::move(run.result));
}

void Advance(const std::shared_ptr<ChainRun>& run) {
  for (;;) {
    if (run->result.address || run->next >= run->strategies->size()) return Finish(*run);
    Strategy& strategy = *run->strategies->at(run->next);
    std::string spec = strategy.Spec();
    bool cacheable = strategy.Cacheable();
    auto start = run->clock();
    if (run->cache != nullptr && cacheable) {
      // An answer of a family not asked for is set aside: the strategy may give another now.
      if (auto hit = run->cache->Get(spec, start); hit && FamilyMismatch(run->family, hit->address).empty()) {
        run->result.candidates.push_back(Candidate{spec, hit->address, {}, milliseconds{0}, hit->age});
        run->result.address = hit->address;
        ++run->next;
        continue;
      }
    }
    run->discovering = true;
    run->answered = false;
    auto settled = std::make_shared<bool>(false);
    strategy.Discover(*run->host, run->timeout,
                      [run, settled, spec, cacheable, start](Result<std::string> answer) {
                        if (*settled) return;  // a strategy that answers twice: the first answer stands
                        *settled = true;
                        Record(*run, spec, cacheable, start, std::move(answer));
                        if (run->discovering) {
                          run->answered = true;
                        } else {
                          Advance(run);
                        }
                      });
    run->discovering = false;
    if (!run->answered) return;  // the answer comes later, from the event loop
  }
}

}  // namespace

Chain::Chain(std::vector<std::unique_ptr<Strategy>> strategies, Cache* cache, Clock clock, Family family)
    : strategies_(std::make_shared<const Strategies>(std::move(strategies))),
      cache_(cache),
      clock_(clock ? std::move(clock) : Clock([] { return std::chrono::steady_clock::now(); })),
      family_(family) {}

Result<Chain> Chain::Parse(const std::vector<std::string>& specs, Cache* cache, Clock clock, Family family) {
  if (specs.empty()) return Fail("no remote-ip strategies given");
  Strategies strategies;
  for (const auto& spec : specs) {
    auto strategy = ParseStrategy(spec, family);
    if (!strategy) return Fail(std::move(strategy.error()));
    strategies.push_back(std::move(*strategy));
  }
  return Chain(std::move(strategies), cache, std::move(clock), family);
}

void Chain::Run(Host& host, milliseconds per_strategy_timeout, Done done) const {
  auto run = std::make_shared<ChainRun>();
  run->strategies = strategies_;
  run->host = &host;
  run->cache = cache_;
  run->clock = clock_;
  run->family = family_;
  run->timeout = per_strategy_timeout;
  run->done = std::move(done);
  Advance(run);
}

std::vector<std::string> Chain::Specs() const {
  std::vector<std::string> specs;
  for (const auto& strategy : *strategies_) specs.push_back(strategy->Spec());
  return specs;
}

}  // namespace mconnect::remoteip
