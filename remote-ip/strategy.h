// Remote-ip discovery: pluggable strategies that each name one address at which the server's
// mosh UDP port may be reachable, and the chain that tries them in order.
//
// Everything here is asynchronous through callbacks, because the master runs it inside its one
// poll() loop: a strategy that runs a remote command returns at once and answers when the
// command's channel closes. Nothing here blocks, except the `dns` strategy's getaddrinfo (see
// MakeDnsStrategy).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "remote-ip/address.h"
#include "remote-ip/cache.h"

namespace mconnect::remoteip {

// What running one command on the server gave.
struct CommandOutcome {
  int exit_status = -1;  // -1 when the command died of a signal or never ran
  std::string out;
  std::string err;
  bool timed_out = false;
  std::string error;  // transport failure (channel refused, connection lost); empty otherwise
  // With timed_out: the server never answered, not even the request to run the command.
  bool unanswered = false;
};

// The server as strategies see it; implemented by the master over its SSH connection.
class Host {
 public:
  virtual ~Host() = default;
  // Runs `command` through the remote user's shell (an SSH exec request). Must call `done`
  // exactly once, either before returning or later from the event loop, also on timeout
  // (timed_out) and on transport failure (error); output is bounded by the implementation.
  virtual void RunCommand(std::string command, std::chrono::milliseconds timeout,
                          std::function<void(CommandOutcome)> done) = 0;
  // The address the master's TCP connection reached; nullopt when there is no direct TCP peer
  // (ProxyCommand, ProxyJump) or no connection.
  virtual std::optional<std::string> PeerAddress() const = 0;
  // Why PeerAddress has no answer, for the `peer` strategy's message ("the master's connection
  // is down: ..."); the default says only that there is none.
  virtual std::string NoPeerAddress() const { return "the master's connection has no TCP peer address"; }
  // The ssh HostName (after `ssh -G`), for the `dns` strategy.
  virtual std::string HostName() const = 0;
};

class Strategy {
 public:
  using Done = std::function<void(Result<std::string>)>;

  virtual ~Strategy() = default;
  // The spec this strategy was parsed from, in canonical form ("command:curl -sS
  // https://ipinfo.io/ip", "peer", "static:203.0.113.7"): the cache key and the name in
  // every message.
  virtual std::string Spec() const = 0;
  // Whether a successful answer may be served from the cache. Strategies that answer instantly
  // and exactly (peer, static) say no, so a reconnect to a different peer is never hidden.
  virtual bool Cacheable() const { return true; }
  // Calls `done` exactly once, synchronously or later, with a validated canonical IP literal or
  // an error whose message starts with Spec() (e.g. "command:curl -sS https://ipinfo.io/ip:
  // printed HTML, not an address"). `host` must outlive the call to `done`.
  virtual void Discover(Host& host, std::chrono::milliseconds timeout, Done done) = 0;
};

// Parses one strategy spec:
//   command:<shell command>  run on the server; its output must be exactly one IP literal
//   peer                     the address the master's TCP connection reached
//   ssh-connection           the server field of $SSH_CONNECTION on the server (mosh "remote")
//   dns                      HostName resolved on this machine (mosh "local")
//   static:<ip>              that address
// Surrounding whitespace is ignored. Errors name the spec and say what was expected.
// `family` shapes the `dns` strategy's choice among a name's addresses (see Family).
Result<std::unique_ptr<Strategy>> ParseStrategy(std::string_view spec, Family family = Family::kAll);

// The strategy spec equivalent to mosh's `--experimental-remote-ip=MODE`: proxy → "peer",
// local → "dns", remote → "ssh-connection"; nullopt for anything else.
std::optional<std::string> MoshRemoteIpMode(std::string_view mode);

// Resolves a host name to IP literals, in the resolver's preferred order.
using Resolver = std::function<Result<std::vector<std::string>>(const std::string& host)>;
// getaddrinfo (AI_ADDRCONFIG, so an IPv6 answer is only offered to a host with IPv6). It
// blocks; the master normally resolved the same name moments earlier to connect, so the answer
// is usually cached, but a dead resolver stalls the caller for the resolver's own timeout.
Result<std::vector<std::string>> ResolveHostName(const std::string& host);
// The `dns` strategy with an injected resolver (ParseStrategy("dns") uses ResolveHostName).
std::unique_ptr<Strategy> MakeDnsStrategy(Resolver resolver, Family family = Family::kAll);

// One strategy's answer within a chain run.
struct Candidate {
  std::string strategy;  // its Spec()
  std::string address;   // empty on failure
  std::string error;     // empty on success; names the strategy
  std::chrono::milliseconds elapsed{0};
  std::chrono::milliseconds age{0};  // nonzero only for an answer served from the cache
};

struct ChainResult {
  std::vector<Candidate> candidates;   // in the order tried
  std::optional<std::string> address;  // the first valid answer, if any
};

// Strategies tried in order until one gives a valid address. Failures (HTML, two lines, a
// hostname, an empty answer, a timeout, a non-zero exit, an address of a family `family` does
// not admit) are recorded and fall through.
class Chain {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  using Done = std::function<void(ChainResult)>;

  // Parses every spec up front; the first bad one is the error. An empty list is an error.
  // `cache` (may be null) must outlive every run; `clock` defaults to steady_clock::now.
  static Result<Chain> Parse(const std::vector<std::string>& specs, Cache* cache = nullptr, Clock clock = {},
                             Family family = Family::kAll);
  // For strategies built elsewhere (plug-ins, tests).
  explicit Chain(std::vector<std::unique_ptr<Strategy>> strategies, Cache* cache = nullptr, Clock clock = {},
                 Family family = Family::kAll);

  // Runs the chain; `done` is called exactly once, possibly before Run returns. A cached answer
  // (for a Cacheable strategy, younger than the cache's ttl, of a family `family` admits) is
  // used instead of running that strategy, with its age; only successes are cached. Strategies that answer synchronously are
  // iterated, not recursed into, so a long chain of them uses constant stack. The Chain may be
  // destroyed while a run is in flight; `host` and the cache may not.
  void Run(Host& host, std::chrono::milliseconds per_strategy_timeout, Done done) const;

  std::vector<std::string> Specs() const;

 private:
  using Strategies = std::vector<std::unique_ptr<Strategy>>;
  std::shared_ptr<const Strategies> strategies_;
  Cache* cache_ = nullptr;
  Clock clock_;
  Family family_ = Family::kAll;
};

}  // namespace mconnect::remoteip
