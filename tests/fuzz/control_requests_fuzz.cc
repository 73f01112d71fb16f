// A control client's byte stream, fed to a real ControlServer over a socketpair and answered by
// services that run the master's own validators (mux/control/requests.h) and then reply with
// fakes instead of touching a connection. Beyond "no crash":
//   * what each validator accepts is inside the bounds it promises (timeouts, output sizes, -v
//     count, strategy count, pid range, the mosh-server command line's length);
//   * everything the server writes back is a well-formed frame of a reply type whose payload
//     decodes, the first one a HelloReply when the client began with Hello (or, when the client
//     is refused, exactly the refusal);
//   * no fd is left open once the server and the client's end are gone.
//
// Input: one flags byte, then the client's bytes.
//   bit 0  a valid Hello frame goes first       bit 3  services answer a turn later (async)
//   bit 1  half-close after the last byte       bit 4  the client reads nothing until the end
//   bit 2  the client is added with a refusal
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "base/poller.h"
#include "base/unique_fd.h"
#include "mosh/server.h"
#include "mux/control/requests.h"
#include "mux/control/server.h"
#include "proto/control.pb.h"
#include "proto/frame.h"
#include "remote-ip/cache.h"
#include "remote-ip/strategy.h"
#include "tests/fuzz/harness.h"

namespace {

using namespace mconnect;
using std::chrono::milliseconds;

using mux::kMaxCommandWords;
using mux::kMaxLocaleBytes;
using mux::kMaxLocaleEntries;
using mux::kMaxReasonBytes;
using mux::kMaxStrategyBytes;
using mux::kMaxWordBytes;
// The longest line BuildMoshServerCommand can make of a request the validator let through: every
// word quoted at worst (4 bytes per byte, as ' becomes '\'', plus the two quotes) after a space.
constexpr std::size_t Quoted(std::size_t bytes) { return 1 + 4 * bytes + 2; }
constexpr std::size_t kMaxMoshCommandLine =
    kMaxWordBytes +                                         // the server prefix, unquoted
    Quoted(3) + Quoted(2) + Quoted(8) +                     // new -c COLORS
    Quoted(2) + Quoted(kMaxWordBytes) +                     // -i ADDR (or -s)
    Quoted(2) + Quoted(kMaxWordBytes) +                     // -p RANGE
    mux::kMaxVerbose * Quoted(2) +                          // -v...
    kMaxLocaleEntries * (Quoted(2) + Quoted(kMaxLocaleBytes)) +  // -l NAME=VALUE...
    Quoted(2) + kMaxCommandWords * Quoted(0) + 4 * mux::kMaxCommandBytes;  // -- command...
// The most turns one input gets; an idle exchange ends sooner.
constexpr int kMaxTurns = 4096;

enum Flags : std::uint8_t {
  kSendHello = 1 << 0,
  kHalfClose = 1 << 1,
  kRefuse = 1 << 2,
  kDeferReplies = 1 << 3,
  kReadLate = 1 << 4,
};

control::ErrorReply MakeError(std::string message) {
  control::ErrorReply error;
  error.set_message(std::move(message));
  return error;
}

// Answers the server as strategies expect, synchronously: a command's "output" is an address
// or garbage, chosen by the command itself so the fuzzer can steer it.
class FakeHost final : public remoteip::Host {
 public:
  void RunCommand(std::string command, milliseconds timeout, std::function<void(remoteip::CommandOutcome)> done) override {
    FUZZ_CHECK(timeout > milliseconds(0) && timeout <= mux::kMaxStrategyTimeout);
    remoteip::CommandOutcome outcome;
    outcome.exit_status = command.size() % 3 == 0 ? 1 : 0;
    outcome.out = command.size() % 2 == 0 ? "203.0.113.9\n" : command;
    outcome.timed_out = command.size() % 5 == 0;
    done(std::move(outcome));
  }
  std::optional<std::string> PeerAddress() const override { return "192.0.2.1"; }
  std::string HostName() const override { return "localhost"; }
};

class FuzzServices final : public mux::MasterServices {
 public:
  explicit FuzzServices(bool defer) : defer_(defer) {}

  control::StatusReply Status() override {
    control::StatusReply reply;
    reply.set_destination("fuzz@example.invalid:22");
    reply.set_pid(static_cast<std::uint32_t>(::getpid()));
    return reply;
  }

  void Exec(const control::ExecRequest& request, Reply<control::ExecReply> reply) override {
    auto spec = mux::ExecFromRequest(request);
    if (!spec) return Answer(std::move(reply), std::unexpected(MakeError(spec.error().message)));
    FUZZ_CHECK(!spec->command.empty() && spec->command.size() <= mux::kMaxCommandBytes);
    FUZZ_CHECK(spec->command == request.command());
    FUZZ_CHECK(spec->timeout > milliseconds(0) && spec->timeout <= mux::kMaxExecTimeout);
    FUZZ_CHECK(request.timeout_ms() == 0 || spec->timeout <= milliseconds(request.timeout_ms()));
    FUZZ_CHECK(spec->max_output > 0 && spec->max_output <= mux::kMaxExecOutput);
    FUZZ_CHECK(request.max_output() == 0 || spec->max_output <= request.max_output());
    control::ExecReply out;
    out.set_stdout(spec->command.substr(0, spec->max_output));
    out.set_truncated(spec->command.size() > spec->max_output);
    out.set_exit_status(static_cast<std::int32_t>(spec->command.size() % 256));
    Answer(std::move(reply), std::move(out));
  }

  void DiscoverIp(const control::DiscoverIpRequest& request, Reply<control::DiscoverIpReply> reply) override {
    auto params = mux::DiscoverFromRequest(request);
    if (!params) return Answer(std::move(reply), std::unexpected(MakeError(params.error().message)));
    FUZZ_CHECK(!params->strategies.empty() && params->strategies.size() <= mux::kMaxStrategies);
    FUZZ_CHECK(request.strategies_size() != 0 || params->strategies == std::vector<std::string>{"peer"});
    for (const auto& spec : params->strategies) FUZZ_CHECK(spec.size() <= kMaxStrategyBytes);
    FUZZ_CHECK(params->timeout > milliseconds(0) && params->timeout <= mux::kMaxStrategyTimeout);
    FUZZ_CHECK(params->refresh == request.refresh());
    auto chain = remoteip::Chain::Parse(params->strategies, &cache_, {}, params->family);
    if (!chain) return Answer(std::move(reply), std::unexpected(MakeError(chain.error().message)));
    const auto specs = chain->Specs();
    FUZZ_CHECK(specs.size() == params->strategies.size());
    // `dns` resolves on this machine (getaddrinfo blocks): parsed, not run.
    if (std::find(specs.begin(), specs.end(), "dns") != specs.end()) {
      return Answer(std::move(reply), std::unexpected(MakeError("dns is not run by the fuzzer")));
    }
    std::optional<remoteip::ChainResult> result;
    chain->Run(host_, params->timeout, [&result](remoteip::ChainResult r) { result = std::move(r); });
    if (!result) return;  // a strategy that answers later: no reply, as the client would wait
    FUZZ_CHECK(!result->candidates.empty() && result->candidates.size() <= specs.size());
    control::DiscoverIpReply out;
    for (const auto& candidate : result->candidates) {
      FUZZ_CHECK(candidate.address.empty() != candidate.error.empty());
      auto* c = out.add_candidates();
      c->set_strategy(candidate.strategy);
      c->set_address(candidate.address);
      c->set_error(candidate.error);
    }
    if (result->address) out.set_address(*result->address);
    Answer(std::move(reply), std::move(out));
  }

  void StartMoshServer(const control::StartMoshServerRequest& request,
                       Reply<control::StartMoshServerReply> reply) override {
    std::optional<std::string> first_error;
    // The master asks again with locale_fallback when the server lacks the locale.
    for (bool locale_fallback : {false, true}) {
      auto params = mux::MoshServerFromRequest(request, locale_fallback);
      if (!params) {
        if (!first_error) first_error = params.error().message;
        continue;
      }
      CheckMoshServerParams(request, *params, locale_fallback);
      auto command = mosh::BuildMoshServerCommand(*params);
      if (!command) {
        if (!first_error) first_error = command.error().message;
        continue;
      }
      FUZZ_CHECK(command->size() <= kMaxMoshCommandLine);
      // What the master runs: the same line, or a refusal when it would not fit one packet.
      auto line = mux::MoshServerCommandFromRequest(request, locale_fallback);
      FUZZ_CHECK(line.has_value() == (command->size() <= mux::kMaxCommandBytes));
      if (line) FUZZ_CHECK(*line == *command);
      FUZZ_CHECK(mux::BoundedTimeout(request.timeout_ms(), milliseconds(20000)) <= mux::kMaxExecTimeout);
    }
    if (first_error) return Answer(std::move(reply), std::unexpected(MakeError(*first_error)));
    auto connect = mosh::ParseMoshServerOutput(0, "MOSH CONNECT 60001 4NeCCgvZFe2RnPgrcU1PQw\n",
                                              "[mosh-server detached, pid = 4242]\n");
    FUZZ_CHECK(connect.has_value());
    control::StartMoshServerReply out;
    out.set_port(connect->port);
    out.set_key(connect->key);
    out.set_server_pid(connect->server_pid);
    Answer(std::move(reply), std::move(out));
  }

  void StartRelay(const control::StartRelayRequest& request, Reply<control::StartRelayReply> reply) override {
    auto params = mux::RelayFromRequest(request);
    if (!params) return Answer(std::move(reply), std::unexpected(MakeError(params.error().message)));
    FUZZ_CHECK(params->port >= 1 && params->port <= 65535);
    FUZZ_CHECK(params->server_pid >= 2 && params->server_pid <= mux::kMaxPid);
    FUZZ_CHECK(params->relay.size() <= kMaxWordBytes);
    FUZZ_CHECK(params->reason.size() <= kMaxReasonBytes + 3);  // "..." after a cut
    control::StartRelayReply out;
    out.set_local_port(40000);
    out.set_relay(params->relay.empty() ? "mconnect" : params->relay);
    Answer(std::move(reply), std::move(out));
  }

  void Stop(bool) override { ++stops_; }

  void AdoptOpenSshClient(UniqueFd fd, std::vector<std::uint8_t> first_bytes, std::string) override {
    // Its fd closes here: the OpenSSH side has its own target (openssh_requests_fuzz).
    FUZZ_CHECK(fd.valid());
    FUZZ_CHECK(first_bytes.size() == 8 && proto::IdentifyProtocol(first_bytes) == proto::Protocol::kOpenSshMux);
    ++adopted_;
  }

  // Answers held back by the last turn (kDeferReplies); true when there were any.
  bool FirePending() {
    if (pending_.empty()) return false;
    auto pending = std::move(pending_);
    pending_.clear();
    for (auto& answer : pending) answer();
    return true;
  }

  int adopted() const { return adopted_; }

 private:
  template <typename T>
  void Answer(Reply<T> reply, std::type_identity_t<std::expected<T, control::ErrorReply>> result) {
    if (!defer_) return reply(std::move(result));
    pending_.push_back([reply = std::move(reply), result = std::move(result)]() mutable { reply(std::move(result)); });
  }

  static void CheckMoshServerParams(const control::StartMoshServerRequest& request, const mosh::MoshServerParams& params,
                                    bool locale_fallback) {
    FUZZ_CHECK(params.verbose >= 0 && static_cast<unsigned>(params.verbose) <= mux::kMaxVerbose);
    FUZZ_CHECK(static_cast<unsigned>(params.verbose) == request.verbose());
    FUZZ_CHECK(params.colors <= mux::kMaxColors);
    FUZZ_CHECK(params.server.size() <= kMaxWordBytes && params.bind.size() <= kMaxWordBytes &&
               params.port_range.size() <= kMaxWordBytes);
    FUZZ_CHECK(params.locale.size() <= kMaxLocaleEntries);
    for (const auto& entry : params.locale) FUZZ_CHECK(entry.size() <= kMaxLocaleBytes);
    if (locale_fallback) FUZZ_CHECK(params.locale == std::vector<std::string>{"LANG=C.UTF-8"});
    FUZZ_CHECK(params.command.size() <= kMaxCommandWords);
    std::size_t command_bytes = 0;
    for (const auto& word : params.command) command_bytes += word.size() + 1;
    FUZZ_CHECK(command_bytes <= mux::kMaxCommandBytes);
  }

  bool defer_;
  FakeHost host_;
  remoteip::Cache cache_{std::chrono::minutes(5)};
  std::vector<std::function<void()>> pending_;
  int stops_ = 0;
  int adopted_ = 0;
};

bool IsReplyType(std::uint32_t type) {
  using T = proto::MessageType;
  switch (static_cast<T>(type)) {
    case T::kHelloReply:
    case T::kStatusReply:
    case T::kExecReply:
    case T::kDiscoverIpReply:
    case T::kStartMoshServerReply:
    case T::kStopReply:
    case T::kStartRelayReply:
    case T::kError:
      return true;
    default:
      return false;
  }
}

bool DecodesAsItsType(const proto::Frame& frame) {
  using T = proto::MessageType;
  switch (static_cast<T>(frame.type)) {
    case T::kHelloReply: { control::HelloReply m; return proto::DecodePayload(frame, m); }
    case T::kStatusReply: { control::StatusReply m; return proto::DecodePayload(frame, m); }
    case T::kExecReply: { control::ExecReply m; return proto::DecodePayload(frame, m); }
    case T::kDiscoverIpReply: { control::DiscoverIpReply m; return proto::DecodePayload(frame, m); }
    case T::kStartMoshServerReply: { control::StartMoshServerReply m; return proto::DecodePayload(frame, m); }
    case T::kStopReply: { control::StopReply m; return proto::DecodePayload(frame, m); }
    case T::kStartRelayReply: { control::StartRelayReply m; return proto::DecodePayload(frame, m); }
    case T::kError: { control::ErrorReply m; return proto::DecodePayload(frame, m) && !m.message().empty(); }
    default: return false;
  }
}

// The client's side: what it has still to send, and the replies it has read.
struct Client {
  UniqueFd fd;
  std::vector<std::uint8_t> to_send;
  std::size_t sent = 0;
  bool send_failed = false;  // the server closed: the rest cannot go
  bool shut = false;
  bool eof = false;
  std::vector<std::uint8_t> replies;
  std::size_t replies_parsed = 0;
  std::vector<std::uint32_t> reply_types;

  bool Write() {
    if (send_failed || sent == to_send.size()) return false;
    ssize_t n = ::send(fd.get(), to_send.data() + sent, to_send.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno != EAGAIN && errno != EINTR) send_failed = true;
      return false;
    }
    sent += static_cast<std::size_t>(n);
    return n > 0;
  }

  bool Read() {
    bool progress = false;
    std::uint8_t buffer[65536];
    while (!eof) {
      ssize_t n = ::recv(fd.get(), buffer, sizeof buffer, MSG_DONTWAIT);
      if (n == 0) eof = true;
      if (n <= 0) break;
      replies.insert(replies.end(), buffer, buffer + n);
      progress = true;
    }
    // Every reply must be a whole, well-formed frame of a reply type.
    while (true) {
      auto parsed = proto::ParseFrame(std::span(replies).subspan(replies_parsed));
      FUZZ_CHECK(parsed.has_value());
      if (!parsed->has_value()) break;
      const proto::Frame& frame = (*parsed)->frame;
      FUZZ_CHECK(IsReplyType(frame.type));
      FUZZ_CHECK(DecodesAsItsType(frame));
      reply_types.push_back(frame.type);
      replies_parsed += (*parsed)->consumed;
    }
    return progress;
  }
};

// One round of the server's events, without waiting: how many fds were ready.
int PollOnce(mux::ControlServer& server) {
  Poller poller;
  server.Watch(poller);
  poller.WakeBy(Poller::Clock::now());
  return poller.Wait(nullptr);
}

void RunOne(const std::uint8_t* data, std::size_t size) {
  const std::uint8_t flags = size > 0 ? data[0] : 0;
  std::span<const std::uint8_t> stream = size > 0 ? std::span(data + 1, size - 1) : std::span<const std::uint8_t>();

  int pair[2];
  FUZZ_CHECK(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) == 0);
  UniqueFd server_end(pair[0]);
  Client client;
  client.fd = UniqueFd(pair[1]);
  if (flags & kSendHello) {
    control::Hello hello;
    hello.set_version(proto::kProtocolVersion);
    hello.set_program("control_requests_fuzz");
    client.to_send = proto::EncodeFrame(proto::MessageType::kHello, hello);
  }
  client.to_send.insert(client.to_send.end(), stream.begin(), stream.end());

  const std::string refusal = (flags & kRefuse) ? "no room for another client" : "";
  FuzzServices services(flags & kDeferReplies);
  {
    mux::ControlServer server(services);
    server.Add(std::move(server_end), refusal, refusal.empty() ? "" : "try later");
    int idle = 0;
    for (int turn = 0; turn < kMaxTurns && idle < 3; ++turn) {
      bool progress = client.Write();
      if (!client.shut && (flags & kHalfClose) && (client.sent == client.to_send.size() || client.send_failed)) {
        ::shutdown(client.fd.get(), SHUT_WR);
        client.shut = true;
        progress = true;
      }
      if (PollOnce(server) > 0) progress = true;
      server.ProcessBacklogs();
      server.ExpireHandshakes();
      if (services.FirePending()) progress = true;
      if (!(flags & kReadLate) && client.Read()) progress = true;
      Poller next;  // only asked when it would wake
      server.Watch(next);
      const auto deadline = next.deadline();
      const bool backlog = deadline && *deadline <= std::chrono::steady_clock::now();
      idle = progress || backlog ? 0 : idle + 1;
    }
    // The late reader takes everything now; nothing more is asked of the server.
    for (int turn = 0; turn < kMaxTurns; ++turn) {
      const int ready = PollOnce(server);
      server.ProcessBacklogs();
      services.FirePending();
      if (!client.Read() && ready <= 0) break;
    }
    FUZZ_CHECK(server.client_count() <= 1);
    const bool held = server.client_count() == 1;
    if (!refusal.empty()) {
      // A refused control client hears the refusal, once, and nothing else; an OpenSSH one is
      // passed on with it.
      FUZZ_CHECK(client.reply_types.size() <= 1);
      if (client.reply_types.size() == 1) {
        FUZZ_CHECK(client.reply_types[0] == static_cast<std::uint32_t>(proto::MessageType::kError));
      }
    } else if ((flags & kSendHello) && !client.reply_types.empty() && services.adopted() == 0) {
      FUZZ_CHECK(client.reply_types[0] == static_cast<std::uint32_t>(proto::MessageType::kHelloReply));
    }
    // While the server still holds the client, everything it queued has been written: no reply
    // may stop halfway.
    if (held && !(flags & kReadLate)) FUZZ_CHECK(client.replies_parsed == client.replies.size());
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::SilenceLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::size_t fds_before = fuzz::OpenFdCount();
  RunOne(data, size);
  FUZZ_CHECK(fuzz::OpenFdCount() == fds_before);
  return 0;
}
