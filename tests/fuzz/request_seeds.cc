// Writes the seed corpora of control_requests_fuzz and openssh_requests_fuzz: each request type
// with its fields at their type's limits (0, 1, 0x7FFFFFFF, 0xFFFFFFFF, the validators' caps and
// one past them, empty and long strings, 10000 repeated entries). Run from the build directory:
//   bin/request_seeds ../tests/fuzz/seeds
// Frames are written by hand, not by the encoders, so that values the encoders refuse are there.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "mux/control/requests.h"
#include "mux/openssh/codec.h"
#include "mux/openssh/requests.h"
#include "proto/control.pb.h"
#include "proto/frame.h"

namespace {

using namespace mconnect;
namespace ossh = mux::openssh;
using Bytes = std::vector<std::uint8_t>;

constexpr std::uint32_t kLimits[] = {0, 1, 0x7FFFFFFF, 0xFFFFFFFF};

void WriteSeed(const std::filesystem::path& dir, const std::string& name, const Bytes& bytes) {
  std::filesystem::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// ---- control protocol: flags byte (see control_requests_fuzz.cc) + frames ----

constexpr std::uint8_t kSendHello = 1;

class ControlSeeds {
 public:
  explicit ControlSeeds(std::filesystem::path dir) : dir_(std::move(dir)) {}

  template <typename... Frames>
  void Add(const std::string& name, std::uint8_t flags, const Frames&... frames) {
    Bytes bytes{flags};
    (bytes.insert(bytes.end(), frames.begin(), frames.end()), ...);
    WriteSeed(dir_, name, bytes);
  }

 private:
  std::filesystem::path dir_;
};

Bytes Frame(proto::MessageType type, const google::protobuf::MessageLite& message) {
  Bytes out;
  if (!proto::AppendFrame(out, type, message)) std::fprintf(stderr, "request_seeds: frame too large\n");
  return out;
}

void Control(const std::filesystem::path& dir) {
  using T = proto::MessageType;
  ControlSeeds seeds(dir);
  const std::string name_of[] = {"0", "1", "7fffffff", "ffffffff"};

  seeds.Add("status", kSendHello, Frame(T::kStatus, control::StatusRequest{}));
  seeds.Add("stop", kSendHello, Frame(T::kStop, control::StopRequest{}));
  seeds.Add("status_before_hello", 0, Frame(T::kStatus, control::StatusRequest{}));
  seeds.Add("unknown_type", kSendHello, Bytes{0, 0, 0, 4, 0x6D, 0x63, 0x00, 0x77});
  seeds.Add("malformed_exec", kSendHello, Bytes{0, 0, 0, 7, 0x6D, 0x63, 0x00, 0x05, 0x0A, 0xFF, 0x01});
  seeds.Add("refused", kSendHello | 0x04, Frame(T::kStatus, control::StatusRequest{}));
  {
    control::Hello hello;
    hello.set_version(0xFFFFFFFF);
    hello.set_program(std::string(4096, 'p'));
    seeds.Add("hello_other_version", 0, Frame(T::kHello, hello), Frame(T::kStatus, control::StatusRequest{}));
  }
  seeds.Add("openssh_hello", 0, Bytes{0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 4});

  for (std::size_t i = 0; i < 4; ++i) {
    control::ExecRequest exec;
    exec.set_command("echo hi");
    exec.set_timeout_ms(kLimits[i]);
    seeds.Add("exec_timeout_" + name_of[i], kSendHello, Frame(T::kExec, exec));
    exec.set_timeout_ms(0);
    exec.set_max_output(kLimits[i]);
    seeds.Add("exec_max_output_" + name_of[i], kSendHello | 0x08, Frame(T::kExec, exec));
  }
  for (std::size_t size : {std::size_t{0}, std::size_t{1}, mux::kMaxCommandBytes, mux::kMaxCommandBytes + 1}) {
    control::ExecRequest exec;
    exec.set_command(std::string(size, 'x'));
    seeds.Add("exec_command_" + std::to_string(size), kSendHello, Frame(T::kExec, exec));
  }

  for (std::size_t i = 0; i < 4; ++i) {
    control::DiscoverIpRequest discover;
    discover.set_timeout_ms(kLimits[i]);
    discover.set_refresh(i % 2 == 1);
    seeds.Add("discover_timeout_" + name_of[i], kSendHello, Frame(T::kDiscoverIp, discover));
  }
  for (std::size_t count : {std::size_t{1}, mux::kMaxStrategies, mux::kMaxStrategies + 1, std::size_t{10000}}) {
    control::DiscoverIpRequest discover;
    for (std::size_t i = 0; i < count; ++i) discover.add_strategies(i % 2 ? "peer" : "static:192.0.2.7");
    seeds.Add("discover_strategies_" + std::to_string(count), kSendHello, Frame(T::kDiscoverIp, discover));
  }
  {
    control::DiscoverIpRequest discover;
    for (const char* spec : {"command:curl -sS https://ipinfo.io/ip", "ssh-connection", "command:echo 203.0.113.1",
                             "static:2001:db8::1", "peer", " peer "}) {
      discover.add_strategies(spec);
    }
    seeds.Add("discover_every_kind", kSendHello, Frame(T::kDiscoverIp, discover));
    discover.add_strategies("dns");
    seeds.Add("discover_dns", kSendHello, Frame(T::kDiscoverIp, discover));
    discover.Clear();
    discover.add_strategies("command:" + std::string(4096 - 8, 'c'));
    seeds.Add("discover_strategy_4096", kSendHello, Frame(T::kDiscoverIp, discover));
    discover.Clear();
    discover.add_strategies("command:" + std::string(4097 - 8, 'c'));
    seeds.Add("discover_strategy_4097", kSendHello, Frame(T::kDiscoverIp, discover));
    discover.Clear();
    discover.add_strategies("");
    seeds.Add("discover_strategy_empty", kSendHello, Frame(T::kDiscoverIp, discover));
  }

  auto mosh = [] {
    control::StartMoshServerRequest request;
    request.add_locale("LANG=en_US.UTF-8");
    request.set_colors(256);
    return request;
  };
  for (std::size_t i = 0; i < 4; ++i) {
    auto request = mosh();
    request.set_verbose(kLimits[i]);
    seeds.Add("mosh_verbose_" + name_of[i], kSendHello, Frame(T::kStartMoshServer, request));
    request = mosh();
    request.set_colors(kLimits[i]);
    seeds.Add("mosh_colors_" + name_of[i], kSendHello, Frame(T::kStartMoshServer, request));
    request = mosh();
    request.set_timeout_ms(kLimits[i]);
    seeds.Add("mosh_timeout_" + name_of[i], kSendHello, Frame(T::kStartMoshServer, request));
  }
  for (std::uint32_t verbose : {mux::kMaxVerbose, mux::kMaxVerbose + 1}) {
    auto request = mosh();
    request.set_verbose(verbose);
    seeds.Add("mosh_verbose_" + std::to_string(verbose), kSendHello, Frame(T::kStartMoshServer, request));
  }
  for (std::uint32_t colors : {mux::kMaxColors, mux::kMaxColors + 1}) {
    auto request = mosh();
    request.set_colors(colors);
    seeds.Add("mosh_colors_" + std::to_string(colors), kSendHello, Frame(T::kStartMoshServer, request));
  }
  for (std::size_t count : {std::size_t{32}, std::size_t{33}, std::size_t{10000}}) {
    auto request = mosh();
    request.clear_locale();
    for (std::size_t i = 0; i < count; ++i) request.add_locale("LC_ALL=C.UTF-8");
    seeds.Add("mosh_locales_" + std::to_string(count), kSendHello, Frame(T::kStartMoshServer, request));
  }
  for (std::size_t size : {std::size_t{256}, std::size_t{257}}) {
    auto request = mosh();
    request.clear_locale();
    request.add_locale("LANG=" + std::string(size - 5, 'u'));
    seeds.Add("mosh_locale_" + std::to_string(size), kSendHello, Frame(T::kStartMoshServer, request));
  }
  for (std::size_t count : {std::size_t{256}, std::size_t{257}, std::size_t{10000}}) {
    auto request = mosh();
    for (std::size_t i = 0; i < count; ++i) request.add_command(i == 0 ? "tmux" : "a");
    seeds.Add("mosh_command_words_" + std::to_string(count), kSendHello, Frame(T::kStartMoshServer, request));
  }
  {
    // The most quoting can make of a command the validator accepts: every byte a single quote.
    auto request = mosh();
    request.add_command(std::string(mux::kMaxCommandBytes - 1, '\''));
    seeds.Add("mosh_command_quotes", kSendHello, Frame(T::kStartMoshServer, request));
    request = mosh();
    request.add_command(std::string(mux::kMaxCommandBytes, 'w'));
    seeds.Add("mosh_command_too_long", kSendHello, Frame(T::kStartMoshServer, request));
    request = mosh();
    request.set_server(std::string(4096, 's'));
    request.set_bind("any");
    request.set_port_range("60001:60999");
    seeds.Add("mosh_server_4096", kSendHello, Frame(T::kStartMoshServer, request));
    request.set_server(std::string(4097, 's'));
    seeds.Add("mosh_server_4097", kSendHello, Frame(T::kStartMoshServer, request));
    for (const char* bind : {"ssh", "any", "192.0.2.1", "::1", "", "not an address"}) {
      request = mosh();
      request.set_bind(bind);
      seeds.Add(std::string("mosh_bind_") + (*bind ? bind : "empty"), kSendHello, Frame(T::kStartMoshServer, request));
    }
    int n = 0;
    for (const char* range : {"60001", "60001:60999", "0", "65536", "2:1", "1:65535", "4294967297"}) {
      request = mosh();
      request.set_port_range(range);
      seeds.Add("mosh_port_range_" + std::to_string(n++), kSendHello, Frame(T::kStartMoshServer, request));
    }
  }

  auto relay = [] {
    control::StartRelayRequest request;
    request.set_port(60001);
    request.set_server_pid(4242);
    return request;
  };
  for (std::uint32_t port : {0u, 1u, 65535u, 65536u, 0x7FFFFFFFu, 0xFFFFFFFFu}) {
    auto request = relay();
    request.set_port(port);
    seeds.Add("relay_port_" + std::to_string(port), kSendHello, Frame(T::kStartRelay, request));
  }
  for (std::uint32_t pid : {0u, 1u, 2u, mux::kMaxPid, mux::kMaxPid + 1, 0x7FFFFFFFu, 0xFFFFFFFFu}) {
    auto request = relay();
    request.set_server_pid(pid);
    seeds.Add("relay_pid_" + std::to_string(pid), kSendHello, Frame(T::kStartRelay, request));
  }
  for (std::size_t size : {std::size_t{0}, std::size_t{4096}, std::size_t{4097}}) {
    auto request = relay();
    request.set_relay(std::string(size, 'r'));
    request.set_reason(std::string(10000, '\x1b'));
    seeds.Add("relay_kind_" + std::to_string(size), kSendHello, Frame(T::kStartRelay, request));
  }

  // Everything in one stream, and requests pipelined past a turn's worth (backlog), read late.
  {
    control::ExecRequest exec;
    exec.set_command("uname");
    Bytes all;
    for (const auto& frame : {Frame(T::kStatus, control::StatusRequest{}), Frame(T::kExec, exec),
                              Frame(T::kDiscoverIp, control::DiscoverIpRequest{}), Frame(T::kStartMoshServer, mosh()),
                              Frame(T::kStartRelay, relay()), Frame(T::kStop, control::StopRequest{})}) {
      all.insert(all.end(), frame.begin(), frame.end());
    }
    seeds.Add("every_request", kSendHello, all);
    seeds.Add("every_request_deferred_half_closed", kSendHello | 0x08 | 0x02, all);
    Bytes pipelined;
    for (int i = 0; i < 2000; ++i) {
      auto frame = Frame(T::kExec, exec);
      pipelined.insert(pipelined.end(), frame.begin(), frame.end());
    }
    seeds.Add("pipelined_2000", kSendHello | 0x10, pipelined);
  }
}

// ---- OpenSSH mux: header (see openssh_requests_fuzz.cc) + frames after the HELLO ----

class Writer {
 public:
  Writer& U32(std::uint32_t value) {
    for (int shift = 24; shift >= 0; shift -= 8) body_.push_back(static_cast<std::uint8_t>(value >> shift));
    return *this;
  }
  Writer& String(std::string_view text) {
    U32(static_cast<std::uint32_t>(text.size()));
    body_.insert(body_.end(), text.begin(), text.end());
    return *this;
  }
  Bytes Frame(std::uint32_t type) const {
    Writer framed;
    framed.U32(static_cast<std::uint32_t>(body_.size() + 4)).U32(type);
    Bytes out = framed.body_;
    out.insert(out.end(), body_.begin(), body_.end());
    return out;
  }

 private:
  Bytes body_;
};

struct Session {
  std::uint32_t want_tty = 0;
  std::uint32_t subsystem = 0;
  std::uint32_t escape = ossh::kNoEscapeChar;
  std::string term = "xterm-256color";
  std::string command;
  std::vector<std::string> env;

  Session& Tty(std::uint32_t escape_char) {
    want_tty = 1;
    escape = escape_char;
    return *this;
  }
  Session& Term(std::string name) {
    want_tty = 1;
    term = std::move(name);
    return *this;
  }
  Session& Command(std::string line) {
    command = std::move(line);
    return *this;
  }
  Session& Subsystem(std::string name) {
    subsystem = 1;
    command = std::move(name);
    return *this;
  }
};

Bytes NewSession(const Session& session, std::uint32_t request_id = 1) {
  Writer writer;
  writer.U32(request_id).String("").U32(session.want_tty).U32(0).U32(0).U32(session.subsystem).U32(session.escape);
  writer.String(session.term).String(session.command);
  for (const auto& entry : session.env) writer.String(entry);
  return writer.Frame(ossh::kMuxCNewSession);
}

Bytes StdioForward(std::string_view host, std::uint32_t port) {
  return Writer().U32(2).String("").String(host).U32(port).Frame(ossh::kMuxCNewStdioFwd);
}

Bytes Forward(std::uint32_t message, std::uint32_t type, std::string_view listen_host, std::uint32_t listen_port,
              std::string_view connect_host, std::uint32_t connect_port) {
  return Writer().U32(3).U32(type).String(listen_host).U32(listen_port).String(connect_host).U32(connect_port).Frame(
      message);
}

class OpenSshSeeds {
 public:
  explicit OpenSshSeeds(std::filesystem::path dir) : dir_(std::move(dir)) {}

  // header: byte 0, byte 1, typed (into each lent stdin), then frames.
  template <typename... Frames>
  void Add(const std::string& name, std::uint8_t flags0, std::uint8_t flags1, std::string_view typed,
           const Frames&... frames) {
    Bytes bytes{flags0, flags1, static_cast<std::uint8_t>(typed.size())};
    bytes.insert(bytes.end(), typed.begin(), typed.end());
    (bytes.insert(bytes.end(), frames.begin(), frames.end()), ...);
    WriteSeed(dir_, name, bytes);
  }

 private:
  std::filesystem::path dir_;
};

void OpenSsh(const std::filesystem::path& dir) {
  OpenSshSeeds seeds(dir);
  // byte 0: tasks (bits 0-1), lent kind (bits 2-3): pipes = 0x04, terminal = 0x08, O_PATH = 0x0C.
  constexpr std::uint8_t kPlay = 2, kHold = 3, kPipes = 0x04, kTerminal = 0x08, kPath = 0x0C;
  constexpr std::uint8_t kOneMessage = 0x10, kExtraFd = 0x20, kRefused = 0x40, kHalfClose = 0x80;

  seeds.Add("alive", 0, 0, "", Writer().U32(7).Frame(ossh::kMuxCAliveCheck));
  seeds.Add("terminate", 0, 0, "", Writer().U32(7).Frame(ossh::kMuxCTerminate));
  seeds.Add("stop_listening", 0, 0, "", Writer().U32(7).Frame(ossh::kMuxCStopListening));
  seeds.Add("proxy", 0, 0, "", Writer().U32(7).Frame(ossh::kMuxCProxy));
  seeds.Add("ext_info", 0, 0, "", Writer().U32(7).Frame(ossh::kMuxCExtInfo));
  seeds.Add("raw_hello_v3", 0, 1, "", Bytes{0, 0, 0, 8, 0, 0, 0, 3}, Writer().U32(7).Frame(ossh::kMuxCAliveCheck));
  seeds.Add("raw_hello_extensions", 0, 1, "",
            Writer().U32(4).String("x").String(std::string(100, 'v')).Frame(ossh::kMuxMsgHello));

  seeds.Add("shell_devnull", 0, 0, "", NewSession(Session()));
  seeds.Add("shell_played", kPlay, 0, "", NewSession(Session()));
  seeds.Add("exec_pipes_played", kPlay | kPipes, 0xC0, "input\n", NewSession(Session().Command("cat")));
  seeds.Add("exec_pipes_one_message", kPlay | kPipes | kOneMessage, 0x60, "x", NewSession(Session().Command("ls")));
  seeds.Add("exec_extra_fd", kPipes | kExtraFd, 0, "", NewSession(Session().Command("ls")));
  seeds.Add("exec_extra_fd_one_message", kOneMessage | kExtraFd, 0, "", NewSession(Session().Command("ls")));
  seeds.Add("tty_terminal_played", kPlay | kTerminal, 0x08, "ls\n~.\n",
            NewSession(Session().Tty('~')));
  seeds.Add("tty_terminal_held", kHold | kTerminal | kHalfClose, 0x18, "~?\n", NewSession(Session().Tty('~')));
  seeds.Add("tty_escape_limits", kPlay | kTerminal, 0, "", NewSession(Session().Tty(255)),
            NewSession(Session().Tty(256)));
  seeds.Add("o_path", kPath, 0, "", NewSession(Session().Command("ls")));
  seeds.Add("refused_session", kRefused | kPipes, 0, "", NewSession(Session().Command("ls")));
  seeds.Add("refused_stdio", kRefused, 0, "", StdioForward("localhost", 22));
  seeds.Add("subsystem", kPlay | kPipes, 0, "", NewSession(Session().Subsystem("sftp")));
  seeds.Add("second_session", kPlay, 0, "", NewSession(Session()), NewSession(Session(), 2));
  seeds.Add("session_then_alive", 1, 0, "", NewSession(Session()), Writer().U32(9).Frame(ossh::kMuxCAliveCheck));

  for (std::size_t size : {std::size_t{0}, std::size_t{64}, std::size_t{65}, std::size_t{1000}}) {
    seeds.Add("term_" + std::to_string(size), kPlay, 0, "", NewSession(Session().Term(std::string(size, 't'))));
  }
  for (std::size_t size : {mux::kMaxRequestBytes, mux::kMaxRequestBytes + 1, ossh::kMaxFrame - 100}) {
    seeds.Add("command_" + std::to_string(size), kPlay, 0, "", NewSession(Session().Command(std::string(size, 'c'))));
  }
  for (std::size_t count : {mux::kMaxSessionEnv, mux::kMaxSessionEnv + 1, ossh::kMaxEnvStrings,
                            ossh::kMaxEnvStrings + 1, std::size_t{10000}}) {
    Session session = Session().Command("env");
    for (std::size_t i = 0; i < count; ++i) session.env.push_back(i % 3 ? "LANG=C.UTF-8" : "LC_" + std::to_string(i) + "=x");
    seeds.Add("env_" + std::to_string(count), kPlay, 0, "", NewSession(session));
  }
  {
    Session session = Session().Command("env");
    session.env = {"=x", "LANG", "PATH=/evil", "LC_ALL=" + std::string(mux::kMaxRequestBytes, 'v'), "TZ=UTC"};
    seeds.Add("env_odd", kPlay, 0, "", NewSession(session));
  }

  for (std::uint32_t port : {0u, 1u, 22u, 65535u, 65536u, 0x7FFFFFFFu, ossh::kPortStreamLocal, 0xFFFFFFFFu}) {
    seeds.Add("stdio_port_" + std::to_string(port), kPlay | kPipes, 0, "data", StdioForward("localhost", port));
  }
  for (std::size_t size : {std::size_t{0}, std::size_t{1}, mux::kMaxHostBytes, mux::kMaxHostBytes + 1}) {
    seeds.Add("stdio_host_" + std::to_string(size), kPlay | kPipes | kOneMessage, 0, "",
              StdioForward(std::string(size, 'h'), 22));
  }
  seeds.Add("stdio_held", kHold | kPipes, 0, "", StdioForward("localhost", 22));

  using F = std::initializer_list<std::uint32_t>;
  for (std::uint32_t message : F{ossh::kMuxCOpenFwd, ossh::kMuxCCloseFwd}) {
    const std::string verb = message == ossh::kMuxCOpenFwd ? "open" : "close";
    for (std::uint32_t type : F{0, ossh::kMuxFwdLocal, ossh::kMuxFwdRemote, ossh::kMuxFwdDynamic, 4, 0xFFFFFFFF}) {
      for (std::uint32_t port : F{0, 1, 65535, 65536, ossh::kPortStreamLocal, 0xFFFFFFFF}) {
        seeds.Add(verb + "_type" + std::to_string(type) + "_port" + std::to_string(port), 0, port % 2 ? 0x02 : 0x04,
                  "", Forward(message, type, "", port, "localhost", port));
      }
    }
    seeds.Add(verb + "_hosts_1024", 0, 0, "",
              Forward(message, ossh::kMuxFwdLocal, std::string(1024, 'l'), 8080, std::string(1024, 'c'), 80));
    seeds.Add(verb + "_hosts_1025", 0, 0, "",
              Forward(message, ossh::kMuxFwdLocal, std::string(1025, 'l'), 8080, "c", 80));
    seeds.Add(verb + "_socks", 0, 0x02, "", Forward(message, ossh::kMuxFwdDynamic, "*", 1080, "socks", 0));
    seeds.Add(verb + "_remote_any", 0, 0, "", Forward(message, ossh::kMuxFwdRemote, "", 0, "localhost", 22));
    seeds.Add(verb + "_unix", 0, 0, "",
              Forward(message, ossh::kMuxFwdLocal, "/tmp/sock", ossh::kPortStreamLocal, "/run/sock",
                      ossh::kPortStreamLocal));
    for (std::size_t size : {mux::kMaxUnixPathBytes, mux::kMaxUnixPathBytes + 1}) {
      seeds.Add(verb + "_unix_listen_" + std::to_string(size), 0, 0, "",
                Forward(message, ossh::kMuxFwdLocal, std::string(size, 'p'), ossh::kPortStreamLocal, "h", 80));
      seeds.Add(verb + "_remote_to_unix_" + std::to_string(size), 0, 0, "",
                Forward(message, ossh::kMuxFwdRemote, "", 8000, std::string(size, 'p'), ossh::kPortStreamLocal));
    }
    seeds.Add(verb + "_remote_dynamic", 0, 0x02, "", Forward(message, ossh::kMuxFwdRemote, "", 1080, "socks", 0));
  }
  seeds.Add("forward_refused", kRefused, 0, "", Forward(ossh::kMuxCOpenFwd, ossh::kMuxFwdLocal, "", 8080, "h", 80));
  seeds.Add("forward_then_session", kPlay | kPipes, 0x02, "",
            Forward(ossh::kMuxCOpenFwd, ossh::kMuxFwdLocal, "", 8080, "h", 80), NewSession(Session().Command("ls")));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s SEEDS_DIR (tests/fuzz/seeds)\n", argv[0]);
    return 2;
  }
  const std::filesystem::path root = argv[1];
  Control(root / "control_requests_fuzz");
  OpenSsh(root / "openssh_requests_fuzz");
  return 0;
}
