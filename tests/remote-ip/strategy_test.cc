#include "remote-ip/strategy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <deque>
#include <map>

namespace mconnect::remoteip {
namespace {

using namespace std::chrono_literals;
using TimePoint = std::chrono::steady_clock::time_point;

constexpr std::string_view kIpinfo = "curl -sS https://ipinfo.io/ip";
constexpr std::string_view kSshConnectionCommand = "sh -c 'echo \"$SSH_CONNECTION\"'";

CommandOutcome Printed(std::string out) { return CommandOutcome{0, std::move(out), "", false, ""}; }

// The master as strategies see it: canned outcomes per command, answered at once or, when
// `deferred`, only when the test calls RunPending (as the event loop would, later).
class FakeHost : public Host {
 public:
  void RunCommand(std::string command, std::chrono::milliseconds timeout,
                  std::function<void(CommandOutcome)> done) override {
    commands.push_back(command);
    timeouts.push_back(timeout);
    auto it = replies.find(command);
    CommandOutcome outcome =
        it != replies.end() ? it->second : CommandOutcome{127, "", "sh: 1: " + command + ": not found\n", false, ""};
    if (deferred) {
      pending.push_back([done = std::move(done), outcome] { done(outcome); });
    } else {
      done(outcome);
    }
  }
  std::optional<std::string> PeerAddress() const override { return peer; }
  std::string HostName() const override { return host_name; }

  void RunPending() {
    while (!pending.empty()) {
      auto next = std::move(pending.front());
      pending.pop_front();
      next();
    }
  }

  std::map<std::string, CommandOutcome> replies;
  bool deferred = false;
  std::deque<std::function<void()>> pending;
  std::vector<std::string> commands;
  std::vector<std::chrono::milliseconds> timeouts;
  std::optional<std::string> peer;
  std::string host_name = "server.example";
};

std::string Command(std::string_view command) { return "command:" + std::string(command); }

Chain MakeChain(const std::vector<std::string>& specs, Cache* cache = nullptr, Chain::Clock clock = {}) {
  auto chain = Chain::Parse(specs, cache, std::move(clock));
  EXPECT_TRUE(chain) << chain.error().message;
  return std::move(*chain);
}

// Runs a chain whose host answers synchronously; the result must be there when Run returns.
ChainResult RunNow(const Chain& chain, Host& host, std::chrono::milliseconds timeout = 5000ms) {
  std::optional<ChainResult> result;
  int calls = 0;
  chain.Run(host, timeout, [&](ChainResult r) {
    ++calls;
    result = std::move(r);
  });
  EXPECT_EQ(calls, 1);
  return result.value_or(ChainResult{});
}

TEST(Chain, FirstValidAnswerWins) {
  FakeHost host;
  host.replies["curl -sS https://ipinfo.io/ip"] = Printed("<html><body>rate limited</body></html>\n");
  host.replies["curl -sS https://api.ipify.org"] = Printed("203.0.113.7\n");
  host.replies["curl -sS https://icanhazip.com"] = Printed("198.51.100.1\n");
  auto chain = MakeChain({Command(kIpinfo), "command:curl -sS https://api.ipify.org",
                          "command:curl -sS https://icanhazip.com"});
  auto result = RunNow(chain, host);
  ASSERT_TRUE(result.address);
  EXPECT_EQ(*result.address, "203.0.113.7");
  ASSERT_EQ(result.candidates.size(), 2u);
  EXPECT_EQ(result.candidates[0].strategy, "command:curl -sS https://ipinfo.io/ip");
  EXPECT_EQ(result.candidates[0].error, "command:curl -sS https://ipinfo.io/ip: printed HTML, not an address");
  EXPECT_EQ(result.candidates[0].address, "");
  EXPECT_EQ(result.candidates[1].address, "203.0.113.7");
  EXPECT_EQ(result.candidates[1].error, "");
  EXPECT_EQ(host.commands.size(), 2u) << "the chain must stop at the first valid answer";
}

TEST(Chain, EveryFailureFallsThroughWithAMessageNamingTheStrategy) {
  FakeHost host;
  host.replies["empty"] = Printed("");
  host.replies["two"] = Printed("203.0.113.7\n10.0.0.5\n");
  host.replies["name"] = Printed("server.example.org\n");
  host.replies["fails"] = CommandOutcome{6, "", "curl: (6) Could not resolve host: ipinfo.io\n", false, ""};
  host.replies["slow"] = CommandOutcome{-1, "", "", true, ""};
  host.replies["lost"] = CommandOutcome{-1, "", "", false, "connection to the server lost"};
  host.replies["killed"] = CommandOutcome{-1, "", "", false, ""};
  auto chain = MakeChain({"command:empty", "command:two", "command:name", "command:fails", "command:slow",
                          "command:lost", "command:killed", "command:missing", "static:192.0.2.44"});
  auto result = RunNow(chain, host, 1500ms);
  ASSERT_TRUE(result.address);
  EXPECT_EQ(*result.address, "192.0.2.44");
  ASSERT_EQ(result.candidates.size(), 9u);
  EXPECT_EQ(result.candidates[0].error, "command:empty: printed nothing");
  EXPECT_EQ(result.candidates[1].error, "command:two: printed 2 lines: \"203.0.113.7?10.0.0.5\"");
  EXPECT_EQ(result.candidates[2].error, "command:name: printed a hostname, not an IP literal: \"server.example.org\"");
  EXPECT_EQ(result.candidates[3].error,
            "command:fails: exited with status 6: curl: (6) Could not resolve host: ipinfo.io");
  EXPECT_EQ(result.candidates[4].error, "command:slow: timed out after 1500 ms");
  EXPECT_EQ(result.candidates[5].error, "command:lost: connection to the server lost");
  EXPECT_EQ(result.candidates[6].error, "command:killed: ended without an exit status (killed by a signal)");
  EXPECT_EQ(result.candidates[7].error, "command:missing: exited with status 127: sh: 1: missing: not found");
  EXPECT_EQ(result.candidates[8].address, "192.0.2.44");
  for (auto timeout : host.timeouts) EXPECT_EQ(timeout, 1500ms);
}

TEST(Chain, NoValidAnswerGivesNoAddressAndEveryCandidate) {
  FakeHost host;
  auto chain = MakeChain({"peer", "command:nothing-here"});
  auto result = RunNow(chain, host);
  EXPECT_FALSE(result.address);
  ASSERT_EQ(result.candidates.size(), 2u);
  EXPECT_TRUE(result.candidates[0].error.starts_with("peer: ")) << result.candidates[0].error;
  EXPECT_TRUE(result.candidates[1].error.starts_with("command:nothing-here: exited with status 127"));
}

TEST(Chain, DeferredCallbacksContinueTheChain) {
  FakeHost host;
  host.deferred = true;
  host.replies["a"] = Printed("not an address at all\n");
  host.replies["b"] = Printed("2001:DB8::7\n");
  auto chain = MakeChain({"command:a", "command:b"});
  std::optional<ChainResult> result;
  int calls = 0;
  chain.Run(host, 5000ms, [&](ChainResult r) {
    ++calls;
    result = std::move(r);
  });
  EXPECT_EQ(calls, 0) << "nothing has answered yet";
  EXPECT_EQ(host.commands.size(), 1u) << "one strategy at a time";
  host.RunPending();
  ASSERT_EQ(calls, 1);
  ASSERT_TRUE(result->address);
  EXPECT_EQ(*result->address, "2001:db8::7");
  EXPECT_EQ(result->candidates.size(), 2u);
  EXPECT_EQ(result->candidates[0].error, "command:a: printed 5 words: \"not an address at all\"");
}

TEST(Chain, MixedSynchronousAndDeferredStrategies) {
  FakeHost host;
  host.deferred = true;
  host.replies["a"] = Printed("");
  auto chain = MakeChain({"peer", "command:a", "peer", "static:192.0.2.5"});
  std::optional<ChainResult> result;
  chain.Run(host, 5000ms, [&](ChainResult r) { result = std::move(r); });
  EXPECT_FALSE(result);
  host.RunPending();
  ASSERT_TRUE(result && result->address);
  EXPECT_EQ(*result->address, "192.0.2.5");
  EXPECT_EQ(result->candidates.size(), 4u);
}

TEST(Chain, MayBeDestroyedWhileARunIsInFlight) {
  FakeHost host;
  host.deferred = true;
  host.replies["a"] = Printed("203.0.113.8\n");
  std::optional<ChainResult> result;
  {
    auto chain = MakeChain({"command:a"});
    chain.Run(host, 5000ms, [&](ChainResult r) { result = std::move(r); });
  }
  host.RunPending();
  ASSERT_TRUE(result && result->address);
  EXPECT_EQ(*result->address, "203.0.113.8");
}

// A plug-in strategy: answers synchronously, with whatever it was given, possibly twice.
class CannedStrategy : public Strategy {
 public:
  CannedStrategy(std::string spec, Result<std::string> answer, int times = 1)
      : spec_(std::move(spec)), answer_(std::move(answer)), times_(times) {}
  std::string Spec() const override { return spec_; }
  void Discover(Host&, std::chrono::milliseconds, Done done) override {
    for (int i = 0; i < times_; ++i) done(answer_);
  }

 private:
  std::string spec_;
  Result<std::string> answer_;
  int times_;
};

TEST(Chain, ALongChainOfSynchronousFailuresDoesNotRecurse) {
  constexpr int kStrategies = 100000;  // recursing once per strategy would overflow the stack
  std::vector<std::unique_ptr<Strategy>> strategies;
  for (int i = 0; i < kStrategies; ++i) strategies.push_back(std::make_unique<CannedStrategy>("x", Fail("no")));
  strategies.push_back(std::make_unique<CannedStrategy>("last", std::string("192.0.2.9")));
  Chain chain(std::move(strategies));
  FakeHost host;
  auto result = RunNow(chain, host);
  ASSERT_TRUE(result.address);
  EXPECT_EQ(result.candidates.size(), static_cast<std::size_t>(kStrategies + 1));
  EXPECT_EQ(result.candidates[0].error, "x: no");
}

TEST(Chain, PluginAnswersAreValidatedAndNamed) {
  std::vector<std::unique_ptr<Strategy>> strategies;
  strategies.push_back(std::make_unique<CannedStrategy>("mine", std::string("server.example.org")));
  strategies.push_back(std::make_unique<CannedStrategy>("named", Fail("named: already says who")));
  strategies.push_back(std::make_unique<CannedStrategy>("twice", std::string(" 192.0.2.10\n"), 2));
  Chain chain(std::move(strategies));
  FakeHost host;
  auto result = RunNow(chain, host);
  ASSERT_EQ(result.candidates.size(), 3u);
  EXPECT_EQ(result.candidates[0].error, "mine: printed a hostname, not an IP literal: \"server.example.org\"");
  EXPECT_EQ(result.candidates[1].error, "named: already says who");
  EXPECT_EQ(result.candidates[2].address, "192.0.2.10");
  EXPECT_EQ(*result.address, "192.0.2.10");
}

TEST(Chain, ReportsElapsedTimeFromTheInjectedClock) {
  TimePoint now{std::chrono::hours(1)};
  FakeHost host;
  host.deferred = true;
  host.replies["a"] = Printed("192.0.2.1");
  auto chain = MakeChain({"command:a"}, nullptr, [&] { return now; });
  std::optional<ChainResult> result;
  chain.Run(host, 5000ms, [&](ChainResult r) { result = std::move(r); });
  now += 250ms;
  host.RunPending();
  ASSERT_TRUE(result);
  EXPECT_EQ(result->candidates.at(0).elapsed, 250ms);
  EXPECT_EQ(result->candidates.at(0).age, 0ms);
}

TEST(Chain, CachedAnswerCarriesItsAgeAndSkipsTheCommand) {
  TimePoint now{std::chrono::hours(1)};
  Cache cache(60s);
  FakeHost host;
  host.replies["broken"] = Printed("<html>");
  host.replies[std::string(kIpinfo)] = Printed("203.0.113.7\n");
  auto chain = MakeChain({"command:broken", Command(kIpinfo)}, &cache, [&] { return now; });

  auto first = RunNow(chain, host);
  ASSERT_TRUE(first.address);
  EXPECT_EQ(first.candidates.at(1).age, 0ms);
  EXPECT_EQ(host.commands.size(), 2u);

  now += 5s;
  auto second = RunNow(chain, host);
  ASSERT_TRUE(second.address);
  EXPECT_EQ(*second.address, "203.0.113.7");
  ASSERT_EQ(second.candidates.size(), 2u);
  EXPECT_EQ(second.candidates[0].error, "command:broken: printed HTML, not an address")
      << "failures are not cached: the preferred strategy is tried again";
  EXPECT_EQ(second.candidates[1].age, 5s);
  EXPECT_EQ(second.candidates[1].address, "203.0.113.7");
  EXPECT_EQ(host.commands.size(), 3u) << "the cached strategy did not run again";

  now += 60s;
  auto third = RunNow(chain, host);
  EXPECT_EQ(third.candidates.at(1).age, 0ms) << "expired: asked again";
  EXPECT_EQ(host.commands.size(), 5u);
}

TEST(Chain, PeerAndStaticAreNeverServedFromTheCache) {
  Cache cache(60s);
  FakeHost host;
  host.peer = "192.0.2.1";
  auto chain = MakeChain({"peer"}, &cache);
  EXPECT_EQ(RunNow(chain, host).address.value_or(""), "192.0.2.1");
  host.peer = "192.0.2.2";  // the master reconnected elsewhere
  EXPECT_EQ(RunNow(chain, host).address.value_or(""), "192.0.2.2");
  EXPECT_FALSE(cache.Get("peer", std::chrono::steady_clock::now()));
}

TEST(Chain, ParseValidatesEverySpecUpFront) {
  EXPECT_FALSE(Chain::Parse({}));
  auto bad = Chain::Parse({"peer", "stun"});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("\"stun\""), std::string::npos);
  auto chain = Chain::Parse({" command:  curl -sS https://ipinfo.io/ip ", "static:2001:DB8::1"});
  ASSERT_TRUE(chain);
  EXPECT_EQ(chain->Specs(), (std::vector<std::string>{"command:curl -sS https://ipinfo.io/ip", "static:2001:db8::1"}));
}

TEST(Strategies, PeerUsesTheMastersPeerAddress) {
  FakeHost host;
  host.peer = "::ffff:198.51.100.3";
  auto chain = MakeChain({"peer"});
  EXPECT_EQ(RunNow(chain, host).address.value_or(""), "198.51.100.3");
  host.peer.reset();
  auto result = RunNow(chain, host);
  EXPECT_FALSE(result.address);
  EXPECT_NE(result.candidates.at(0).error.find("no TCP peer address"), std::string::npos);
}

TEST(Strategies, SshConnectionTakesTheServerField) {
  FakeHost host;
  host.replies[std::string(kSshConnectionCommand)] = Printed("198.51.100.20 53022 10.0.0.5 22\n");
  auto chain = MakeChain({"ssh-connection"});
  EXPECT_EQ(RunNow(chain, host).address.value_or(""), "10.0.0.5");
  EXPECT_EQ(host.commands.at(0), kSshConnectionCommand);

  host.replies[std::string(kSshConnectionCommand)] = Printed("\n");
  EXPECT_EQ(RunNow(chain, host).candidates.at(0).error, "ssh-connection: $SSH_CONNECTION is empty on the server");
  host.replies[std::string(kSshConnectionCommand)] = Printed("garbage\n");
  EXPECT_EQ(RunNow(chain, host).candidates.at(0).error,
            "ssh-connection: $SSH_CONNECTION is not \"client_ip client_port server_ip server_port\": \"garbage\"");
}

TEST(Strategies, DnsResolvesTheHostName) {
  FakeHost host;
  std::vector<std::string> asked;
  auto resolver = [&](const std::string& name) -> Result<std::vector<std::string>> {
    asked.push_back(name);
    if (name == "nowhere.example") return Fail("Name or service not known");
    return std::vector<std::string>{"ff02::1", "2001:db8::10", "192.0.2.10"};
  };
  std::vector<std::unique_ptr<Strategy>> strategies;
  strategies.push_back(MakeDnsStrategy(resolver));
  Chain chain(std::move(strategies));
  EXPECT_EQ(RunNow(chain, host).address.value_or(""), "2001:db8::10") << "the first usable answer, in order";

  host.host_name = "nowhere.example";
  EXPECT_EQ(RunNow(chain, host).candidates.at(0).error,
            "dns: cannot resolve nowhere.example: Name or service not known");

  host.host_name = "192.0.2.77";
  asked.clear();
  EXPECT_EQ(RunNow(chain, host).address.value_or(""), "192.0.2.77");
  EXPECT_TRUE(asked.empty()) << "a numeric HostName is its own answer";
}

TEST(Strategies, DnsDefaultResolverResolvesLocalhost) {
  auto addresses = ResolveHostName("localhost");
  ASSERT_TRUE(addresses) << addresses.error().message;
  ASSERT_FALSE(addresses->empty());
  for (const auto& address : *addresses) EXPECT_TRUE(address == "127.0.0.1" || address == "::1") << address;
  EXPECT_FALSE(ResolveHostName("no-such-host.invalid"));
}

TEST(ParseStrategy, KnowsTheBuiltIns) {
  for (std::string spec :
       {"peer", "ssh-connection", "dns", "static:203.0.113.7", "command:curl -sS https://ipinfo.io/ip"}) {
    auto strategy = ParseStrategy(spec);
    ASSERT_TRUE(strategy) << spec << ": " << strategy.error().message;
    EXPECT_EQ((*strategy)->Spec(), spec);
  }
}

TEST(ParseStrategy, ExplainsBadSpecs) {
  auto message = [](std::string_view spec) {
    auto strategy = ParseStrategy(spec);
    return strategy ? std::string("accepted") : strategy.error().message;
  };
  EXPECT_EQ(message(""), "empty remote-ip strategy");
  EXPECT_EQ(message("stun"),
            "unknown remote-ip strategy \"stun\" (expected command:<shell command>, peer, ssh-connection, dns or "
            "static:<ip>)");
  EXPECT_EQ(message("remote"),
            "unknown remote-ip strategy \"remote\" (mosh's --experimental-remote-ip=remote is \"ssh-connection\")");
  EXPECT_TRUE(message("command:").starts_with("command: needs a shell command"));
  EXPECT_TRUE(message("command:   ").starts_with("command: needs a shell command"));
  EXPECT_TRUE(message("command").starts_with("command: needs a shell command"));
  EXPECT_EQ(message("static:"), "static: needs an IP address, e.g. static:203.0.113.7");
  EXPECT_EQ(message("static:example.org"), "static:example.org: not an IP literal");
  EXPECT_EQ(message("static:224.0.0.1"), "static:224.0.0.1: 224.0.0.1 is a multicast address, not a host");
  EXPECT_EQ(message("static:fe80::1%eth0"), "static:fe80::1%eth0: not an IP literal");
}

TEST(MoshRemoteIpMode, MapsMoshsNames) {
  EXPECT_EQ(MoshRemoteIpMode("proxy").value_or(""), "peer");
  EXPECT_EQ(MoshRemoteIpMode("local").value_or(""), "dns");
  EXPECT_EQ(MoshRemoteIpMode("remote").value_or(""), "ssh-connection");
  EXPECT_FALSE(MoshRemoteIpMode("peer"));
  EXPECT_FALSE(MoshRemoteIpMode(""));
}


// Without a peer address, `peer` says why in the host's words (the master: its connection is
// down, or goes through a proxy), and by default only that there is none: never a ProxyJump
// the configuration may not have.
TEST(Strategies, PeerSaysWhyThereIsNoPeerAddress) {
  FakeHost plain;
  EXPECT_EQ(RunNow(MakeChain({"peer"}), plain).candidates.at(0).error,
            "peer: the master's connection has no TCP peer address");

  class DownHost : public FakeHost {
   public:
    std::string NoPeerAddress() const override { return "the master's connection is down (no answer for 9 s)"; }
  } down;
  EXPECT_EQ(RunNow(MakeChain({"peer"}), down).candidates.at(0).error,
            "peer: the master's connection is down (no answer for 9 s)");
}

// A command the server never even agreed to run timed out for the connection's sake, and says so.
TEST(Strategies, AnUnansweredCommandSaysTheServerDidNotAnswer) {
  FakeHost host;
  CommandOutcome unanswered{-1, "", "", true, ""};
  unanswered.unanswered = true;
  host.replies["silent"] = unanswered;
  auto result = RunNow(MakeChain({Command("silent")}), host, 1500ms);
  EXPECT_EQ(result.candidates.at(0).error,
            "command:silent: timed out after 1500 ms: the server did not even answer the request to run it");
}

}  // namespace
}  // namespace mconnect::remoteip

// ---- mosh's --family ------------------------------------------------------------------------

namespace mconnect::remoteip {
namespace {

TEST(Family, ParsesMoshsNamesAndSaysWhichItKnows) {
  for (std::string_view name : {"inet", "inet6", "auto", "all", "prefer-inet", "prefer-inet6"}) {
    auto family = ParseFamily(name);
    ASSERT_TRUE(family) << name;
    EXPECT_EQ(FamilyName(*family), name);
  }
  for (std::string_view name : {"", "INET", "ipv4", "inet4", "prefer-inet66", "inet\n"}) {
    auto family = ParseFamily(name);
    ASSERT_FALSE(family) << name;
    EXPECT_THAT(family.error().message, ::testing::EndsWith("is not inet, inet6, auto, all, prefer-inet or prefer-inet6"));
  }
}

TEST(Family, OnlyInetAndInet6RuleAnAddressOut) {
  EXPECT_EQ(FamilyMismatch(Family::kInet, "192.0.2.1"), "");
  EXPECT_EQ(FamilyMismatch(Family::kInet6, "2001:db8::1"), "");
  EXPECT_EQ(FamilyMismatch(Family::kInet6, "192.0.2.1"), "192.0.2.1 is an IPv4 address; --family=inet6 takes IPv6 only");
  EXPECT_EQ(FamilyMismatch(Family::kInet, "2001:DB8::1"), "2001:db8::1 is an IPv6 address; --family=inet takes IPv4 only");
  EXPECT_EQ(FamilyMismatch(Family::kInet, "::ffff:192.0.2.1"), "") << "mapped: an IPv4 address";
  for (Family any : {Family::kAll, Family::kAuto, Family::kPreferInet, Family::kPreferInet6}) {
    EXPECT_EQ(FamilyMismatch(any, "192.0.2.1"), "");
    EXPECT_EQ(FamilyMismatch(any, "2001:db8::1"), "");
  }
}

Chain FamilyChain(const std::vector<std::string>& specs, Family family, Cache* cache = nullptr) {
  auto chain = Chain::Parse(specs, cache, {}, family);
  EXPECT_TRUE(chain) << chain.error().message;
  return std::move(*chain);
}

TEST(Family, AnAnswerOfTheOtherFamilyFallsThroughToTheNextStrategy) {
  FakeHost host;
  host.peer = "192.0.2.1";
  auto chain = FamilyChain({"peer", "static:2001:db8::1"}, Family::kInet6);
  auto result = RunNow(chain, host);
  EXPECT_EQ(result.address.value_or(""), "2001:db8::1");
  ASSERT_EQ(result.candidates.size(), 2u);
  EXPECT_EQ(result.candidates[0].error, "peer: 192.0.2.1 is an IPv4 address; --family=inet6 takes IPv6 only");
  EXPECT_EQ(result.candidates[0].address, "");

  auto v4 = RunNow(FamilyChain({"static:2001:db8::1"}, Family::kInet), host);
  EXPECT_FALSE(v4.address) << "no answer of the family asked for is no answer";
}

TEST(Family, DnsChoosesAmongTheNamesAddressesAsMoshDoes) {
  FakeHost host;
  auto resolver = [](const std::string&) -> Result<std::vector<std::string>> {
    return std::vector<std::string>{"2001:db8::10", "192.0.2.10", "2001:db8::11", "192.0.2.11"};
  };
  auto run = [&](Family family) {
    std::vector<std::unique_ptr<Strategy>> strategies;
    strategies.push_back(MakeDnsStrategy(resolver, family));
    Chain chain(std::move(strategies), nullptr, {}, family);
    return RunNow(chain, host);
  };
  EXPECT_EQ(run(Family::kPreferInet).address.value_or(""), "192.0.2.10");
  EXPECT_EQ(run(Family::kPreferInet6).address.value_or(""), "2001:db8::10");
  EXPECT_EQ(run(Family::kInet).address.value_or(""), "192.0.2.10");
  EXPECT_EQ(run(Family::kInet6).address.value_or(""), "2001:db8::10");
  EXPECT_EQ(run(Family::kAll).address.value_or(""), "2001:db8::10") << "the resolver's order";
  auto both = run(Family::kAuto);
  EXPECT_FALSE(both.address);
  EXPECT_EQ(both.candidates.at(0).error,
            "dns: server.example has both IPv4 and IPv6 addresses; --family (or -4, -6) says which to use");

  auto only_v4 = [](const std::string&) -> Result<std::vector<std::string>> {
    return std::vector<std::string>{"192.0.2.10"};
  };
  std::vector<std::unique_ptr<Strategy>> strategies;
  strategies.push_back(MakeDnsStrategy(only_v4, Family::kInet6));
  Chain chain(std::move(strategies), nullptr, {}, Family::kInet6);
  EXPECT_EQ(RunNow(chain, host).candidates.at(0).error, "dns: server.example has no IPv6 address (--family=inet6)");
  std::vector<std::unique_ptr<Strategy>> single;
  single.push_back(MakeDnsStrategy(only_v4, Family::kAuto));
  EXPECT_EQ(RunNow(Chain(std::move(single), nullptr, {}, Family::kAuto), host).address.value_or(""), "192.0.2.10")
      << "auto takes a name of one family";
}

TEST(Family, ACachedAnswerOfTheOtherFamilyIsSetAsideAndTheStrategyAskedAgain) {
  Cache cache(60s);
  FakeHost host;
  host.replies["which"] = Printed("192.0.2.7\n");
  auto first = RunNow(FamilyChain({"command:which"}, Family::kPreferInet, &cache), host);
  EXPECT_EQ(first.address.value_or(""), "192.0.2.7");
  EXPECT_EQ(host.commands.size(), 1u);

  host.replies["which"] = Printed("2001:db8::7\n");
  auto v6 = RunNow(FamilyChain({"command:which"}, Family::kInet6, &cache), host);
  EXPECT_EQ(v6.address.value_or(""), "2001:db8::7");
  EXPECT_EQ(host.commands.size(), 2u) << "the cached IPv4 answer was not used for -6";
  EXPECT_EQ(v6.candidates.at(0).age, 0ms);
}

}  // namespace
}  // namespace mconnect::remoteip
