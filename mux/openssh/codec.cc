#include "mux/openssh/codec.h"

#include <algorithm>
#include <type_traits>
#include <utility>

#include <fmt/format.h>

#include "base/text.h"
#include "base/result.h"
#include "base/wire.h"

namespace mconnect::mux::openssh {

namespace {

constexpr std::size_t kLengthBytes = 4;
constexpr std::size_t kTypeBytes = 4;
constexpr std::uint32_t kMaxPort = 65535;

bool PortOk(std::uint32_t port) { return port <= kMaxPort || port == kPortStreamLocal; }

DecodeErrorKind KindOf(WireError error) {
  switch (error) {
    case WireError::kTruncated: return DecodeErrorKind::kTruncated;
    case WireError::kTooLong: return DecodeErrorKind::kTooLong;
    case WireError::kBadValue: return DecodeErrorKind::kBadValue;
  }
  return DecodeErrorKind::kBadValue;
}

// Reads a body field by field with a sticky error: after the first failure every read is a no-op
// returning an empty value, and error() names the field that failed. Keeps each decoder a plain
// list of fields in wire order.
class BodyReader {
 public:
  explicit BodyReader(const Frame& frame) : type_(frame.type), reader_(frame.body) {}

  std::uint32_t U32(std::string_view field) { return Read(&WireReader::U32, field); }

  // The request id that starts every body except HELLO's; remembered for the error.
  std::uint32_t RequestId() {
    std::uint32_t id = U32("request id");
    if (!failed()) request_id_ = id;
    return id;
  }

  bool Flag(std::string_view field) { return U32(field) != 0; }

  std::uint32_t Port(std::string_view field) {
    std::uint32_t port = U32(field);
    if (!failed() && !PortOk(port)) Fail(DecodeErrorKind::kBadValue, field);
    return port;
  }

  std::string String(std::string_view field, std::size_t max_length) {
    return Read(&WireReader::String, field, max_length);
  }
  std::string CString(std::string_view field, std::size_t max_length) {
    return Read(&WireReader::CString, field, max_length);
  }

  void Fail(DecodeErrorKind kind, std::string_view field) {
    if (failed()) return;
    error_ = DecodeError{kind, type_, request_id_, field};
  }

  bool failed() const { return error_.has_value(); }
  bool empty() const { return reader_.empty(); }
  const DecodeError& error() const { return *error_; }

  // The decoded message, or the first error.
  template <typename Variant, typename Message>
  std::expected<Variant, DecodeError> Finish(Message message) const {
    if (failed()) return std::unexpected(*error_);
    return Variant(std::move(message));
  }

 private:
  // One field through `method` of the wire reader; after this or an earlier failure, the value
  // type's default.
  template <typename Method, typename... Args>
  using ValueOf = typename std::invoke_result_t<Method, WireReader&, Args...>::value_type;
  template <typename Method, typename... Args>
  ValueOf<Method, Args...> Read(Method method, std::string_view field, Args... args) {
    using Value = ValueOf<Method, Args...>;
    if (failed()) return Value{};
    auto value = (reader_.*method)(args...);
    if (!value) {
      Fail(KindOf(value.error()), field);
      return Value{};
    }
    return Value(std::move(*value));
  }

  std::uint32_t type_;
  WireReader reader_;
  std::optional<std::uint32_t> request_id_;
  std::optional<DecodeError> error_;
};

Hello ReadHello(BodyReader& in) {
  Hello hello;
  hello.version = in.U32("version");
  while (!in.failed() && !in.empty()) {
    if (hello.extensions.size() == kMaxHelloExtensions) {
      in.Fail(DecodeErrorKind::kTooMany, "extension");
      break;
    }
    std::string name = in.CString("extension name", kMaxStringBytes);
    std::string value = in.String("extension value", kMaxStringBytes);
    if (!in.failed()) hello.extensions.emplace_back(std::move(name), std::move(value));
  }
  return hello;
}

ForwardSpec ReadForward(BodyReader& in) {
  ForwardSpec forward;
  forward.type = in.U32("forward type");
  forward.listen_host = in.CString("listen host", kMaxStringBytes);
  forward.listen_port = in.Port("listen port");
  forward.connect_host = in.CString("connect host", kMaxStringBytes);
  forward.connect_port = in.Port("connect port");
  return forward;
}

// Builds one frame: the length is patched in once the body is complete. Any write past kMaxFrame
// or any refused field marks the whole frame failed.
class FrameBuilder {
 public:
  explicit FrameBuilder(std::uint32_t type) : writer_(kLengthBytes + kMaxFrame) {
    writer_.U32(0);
    writer_.U32(type);
  }

  void U32(std::uint32_t value) { writer_.U32(value); }
  void Flag(bool value) { writer_.U32(value ? 1 : 0); }

  void Port(std::uint32_t port) {
    if (!PortOk(port)) Fail(EncodeError::kBadValue);
    writer_.U32(port);
  }

  void String(std::string_view value, std::size_t max_length) {
    if (value.size() > max_length) {
      Fail(EncodeError::kTooLong);
      return;
    }
    writer_.String(value);
  }

  void CString(std::string_view value, std::size_t max_length) {
    if (value.find('\0') != std::string_view::npos) Fail(EncodeError::kBadValue);
    String(value, max_length);
  }

  void Fail(EncodeError error) {
    if (!error_) error_ = error;
  }

  std::expected<std::vector<std::uint8_t>, EncodeError> Finish() {
    if (error_) return std::unexpected(*error_);
    if (writer_.overflowed()) return std::unexpected(EncodeError::kTooLong);
    bool patched = writer_.PatchU32(0, static_cast<std::uint32_t>(writer_.size() - kLengthBytes));
    MCONNECT_CHECK(patched);
    return writer_.Take();
  }

 private:
  WireWriter writer_;
  std::optional<EncodeError> error_;
};

// ---- Per-message layouts. Each pair (Read / Write) is the wire contract in the header. ----

std::expected<ClientMessage, DecodeError> ReadClient(BodyReader& in, std::uint32_t type) {
  if (type == kMuxMsgHello) {
    Hello hello = ReadHello(in);
    return in.Finish<ClientMessage>(std::move(hello));
  }
  // Every other client message starts with a request id, read before the type is dispatched
  // (as mux.c does) so that an unknown type can still be answered.
  std::uint32_t request_id = in.RequestId();
  if (in.failed()) return std::unexpected(in.error());
  switch (type) {
    case kMuxCNewSession: {
      NewSession m;
      m.request_id = request_id;
      m.reserved = in.String("reserved", kMaxStringBytes);
      m.want_tty = in.Flag("want tty");
      m.want_x11 = in.Flag("want x11");
      m.want_agent = in.Flag("want agent");
      m.subsystem = in.Flag("subsystem");
      m.escape_char = in.U32("escape char");
      m.term = in.CString("term", kMaxStringBytes);
      m.command = in.CString("command", kMaxCommandBytes);
      while (!in.failed() && !in.empty()) {
        if (m.env.size() == kMaxEnvStrings) {
          in.Fail(DecodeErrorKind::kTooMany, "env");
          break;
        }
        std::string entry = in.CString("env", kMaxStringBytes);
        if (!in.failed()) m.env.push_back(std::move(entry));
      }
      return in.Finish<ClientMessage>(std::move(m));
    }
    case kMuxCAliveCheck: return in.Finish<ClientMessage>(AliveCheck{request_id});
    case kMuxCTerminate: return in.Finish<ClientMessage>(Terminate{request_id});
    case kMuxCOpenFwd: {
      ForwardSpec forward = ReadForward(in);
      return in.Finish<ClientMessage>(OpenForward{request_id, std::move(forward)});
    }
    case kMuxCCloseFwd: {
      ForwardSpec forward = ReadForward(in);
      return in.Finish<ClientMessage>(CloseForward{request_id, std::move(forward)});
    }
    case kMuxCNewStdioFwd: {
      NewStdioForward m;
      m.request_id = request_id;
      m.reserved = in.String("reserved", kMaxStringBytes);
      m.host = in.CString("host", kMaxStringBytes);
      m.port = in.Port("port");
      return in.Finish<ClientMessage>(std::move(m));
    }
    case kMuxCStopListening: return in.Finish<ClientMessage>(StopListening{request_id});
    case kMuxCProxy: return in.Finish<ClientMessage>(Proxy{request_id});
    default: break;
  }
  in.Fail(DecodeErrorKind::kUnknownType, "");
  return std::unexpected(in.error());
}

std::expected<ServerMessage, DecodeError> ReadServer(BodyReader& in, std::uint32_t type) {
  // The session-scoped messages carry a session id where the others carry a request id.
  switch (type) {
    case kMuxMsgHello: {
      Hello hello = ReadHello(in);
      return in.Finish<ServerMessage>(std::move(hello));
    }
    case kMuxSExitMessage: {
      ExitMessage m;
      m.session_id = in.U32("session id");
      m.exit_value = in.U32("exit value");
      return in.Finish<ServerMessage>(m);
    }
    case kMuxSTtyAllocFail: {
      TtyAllocFail m;
      m.session_id = in.U32("session id");
      return in.Finish<ServerMessage>(m);
    }
    default: break;
  }
  std::uint32_t request_id = in.RequestId();
  switch (type) {
    case kMuxSOk: return in.Finish<ServerMessage>(Ok{request_id});
    case kMuxSPermissionDenied: {
      std::string reason = in.CString("reason", kMaxStringBytes);
      return in.Finish<ServerMessage>(PermissionDenied{request_id, std::move(reason)});
    }
    case kMuxSFailure: {
      std::string reason = in.CString("reason", kMaxStringBytes);
      return in.Finish<ServerMessage>(Failure{request_id, std::move(reason)});
    }
    case kMuxSAlive: {
      std::uint32_t pid = in.U32("pid");
      return in.Finish<ServerMessage>(Alive{request_id, pid});
    }
    case kMuxSSessionOpened: {
      std::uint32_t session_id = in.U32("session id");
      return in.Finish<ServerMessage>(SessionOpened{request_id, session_id});
    }
    case kMuxSRemotePort: {
      std::uint32_t port = in.U32("port");
      return in.Finish<ServerMessage>(RemotePort{request_id, port});
    }
    default: break;
  }
  if (in.failed()) return std::unexpected(in.error());
  in.Fail(DecodeErrorKind::kUnknownType, "");
  return std::unexpected(in.error());
}

void WriteForward(FrameBuilder& out, const ForwardSpec& forward) {
  out.U32(forward.type);
  out.CString(forward.listen_host, kMaxStringBytes);
  out.Port(forward.listen_port);
  out.CString(forward.connect_host, kMaxStringBytes);
  out.Port(forward.connect_port);
}

void WriteHello(FrameBuilder& out, const Hello& m) {
  if (m.extensions.size() > kMaxHelloExtensions) out.Fail(EncodeError::kTooLong);
  out.U32(m.version);
  for (const auto& [name, value] : m.extensions) {
    out.CString(name, kMaxStringBytes);
    out.String(value, kMaxStringBytes);
  }
}

std::uint32_t TypeOf(const Hello&) { return kMuxMsgHello; }
std::uint32_t TypeOf(const NewSession&) { return kMuxCNewSession; }
std::uint32_t TypeOf(const AliveCheck&) { return kMuxCAliveCheck; }
std::uint32_t TypeOf(const Terminate&) { return kMuxCTerminate; }
std::uint32_t TypeOf(const OpenForward&) { return kMuxCOpenFwd; }
std::uint32_t TypeOf(const CloseForward&) { return kMuxCCloseFwd; }
std::uint32_t TypeOf(const NewStdioForward&) { return kMuxCNewStdioFwd; }
std::uint32_t TypeOf(const StopListening&) { return kMuxCStopListening; }
std::uint32_t TypeOf(const Proxy&) { return kMuxCProxy; }
std::uint32_t TypeOf(const Ok&) { return kMuxSOk; }
std::uint32_t TypeOf(const PermissionDenied&) { return kMuxSPermissionDenied; }
std::uint32_t TypeOf(const Failure&) { return kMuxSFailure; }
std::uint32_t TypeOf(const ExitMessage&) { return kMuxSExitMessage; }
std::uint32_t TypeOf(const Alive&) { return kMuxSAlive; }
std::uint32_t TypeOf(const SessionOpened&) { return kMuxSSessionOpened; }
std::uint32_t TypeOf(const RemotePort&) { return kMuxSRemotePort; }
std::uint32_t TypeOf(const TtyAllocFail&) { return kMuxSTtyAllocFail; }

void Write(FrameBuilder& out, const Hello& m) { WriteHello(out, m); }
void Write(FrameBuilder& out, const NewSession& m) {
  if (m.env.size() > kMaxEnvStrings) out.Fail(EncodeError::kTooLong);
  out.U32(m.request_id);
  out.String(m.reserved, kMaxStringBytes);
  out.Flag(m.want_tty);
  out.Flag(m.want_x11);
  out.Flag(m.want_agent);
  out.Flag(m.subsystem);
  out.U32(m.escape_char);
  out.CString(m.term, kMaxStringBytes);
  out.CString(m.command, kMaxCommandBytes);
  for (const std::string& entry : m.env) out.CString(entry, kMaxStringBytes);
}
template <typename Tag>
void Write(FrameBuilder& out, const IdOnlyRequest<Tag>& m) {
  out.U32(m.request_id);
}
template <typename Tag>
void Write(FrameBuilder& out, const ForwardRequest<Tag>& m) {
  out.U32(m.request_id);
  WriteForward(out, m.forward);
}
void Write(FrameBuilder& out, const NewStdioForward& m) {
  out.U32(m.request_id);
  out.String(m.reserved, kMaxStringBytes);
  out.CString(m.host, kMaxStringBytes);
  out.Port(m.port);
}
void Write(FrameBuilder& out, const Ok& m) { out.U32(m.request_id); }
template <typename Tag>
void Write(FrameBuilder& out, const Refusal<Tag>& m) {
  out.U32(m.request_id);
  out.CString(m.reason, kMaxStringBytes);
}
void Write(FrameBuilder& out, const ExitMessage& m) {
  out.U32(m.session_id);
  out.U32(m.exit_value);
}
template <typename Tag>
void Write(FrameBuilder& out, const NumberReply<Tag>& m) {
  out.U32(m.request_id);
  out.U32(m.value);
}
void Write(FrameBuilder& out, const TtyAllocFail& m) { out.U32(m.session_id); }

template <typename Message>
std::expected<std::vector<std::uint8_t>, EncodeError> EncodeOne(const Message& message) {
  FrameBuilder out(TypeOf(message));
  Write(out, message);
  return out.Finish();
}

// For the master's replies, whose values the caller controls and which must always go out.
template <typename Message>
std::vector<std::uint8_t> EncodeInfallible(const Message& message) {
  auto frame = EncodeOne(message);
  MCONNECT_CHECK(frame.has_value());
  return std::move(*frame);
}

std::string SanitizeReason(std::string_view reason) {
  std::string out(reason.substr(0, kMaxReasonBytes));
  std::replace(out.begin(), out.end(), '\0', '?');
  return out;
}

}  // namespace

std::string_view MessageTypeName(std::uint32_t type) {
  switch (type) {
    case kMuxMsgHello: return "MUX_MSG_HELLO";
    case kMuxCNewSession: return "MUX_C_NEW_SESSION";
    case kMuxCAliveCheck: return "MUX_C_ALIVE_CHECK";
    case kMuxCTerminate: return "MUX_C_TERMINATE";
    case kMuxCOpenFwd: return "MUX_C_OPEN_FWD";
    case kMuxCCloseFwd: return "MUX_C_CLOSE_FWD";
    case kMuxCNewStdioFwd: return "MUX_C_NEW_STDIO_FWD";
    case kMuxCStopListening: return "MUX_C_STOP_LISTENING";
    case kMuxCProxy: return "MUX_C_PROXY";
    case kMuxCExtInfo: return "MUX_C_EXT_INFO";
    case kMuxSOk: return "MUX_S_OK";
    case kMuxSPermissionDenied: return "MUX_S_PERMISSION_DENIED";
    case kMuxSFailure: return "MUX_S_FAILURE";
    case kMuxSExitMessage: return "MUX_S_EXIT_MESSAGE";
    case kMuxSAlive: return "MUX_S_ALIVE";
    case kMuxSSessionOpened: return "MUX_S_SESSION_OPENED";
    case kMuxSRemotePort: return "MUX_S_REMOTE_PORT";
    case kMuxSTtyAllocFail: return "MUX_S_TTY_ALLOC_FAIL";
    case kMuxSProxy: return "MUX_S_PROXY";
    case kMuxSExtInfo: return "MUX_S_EXT_INFO";
    default: return "unknown";
  }
}

std::string_view FrameErrorName(FrameError error) {
  switch (error) {
    case FrameError::kTooLarge: return "frame larger than 256 KiB";
    case FrameError::kTooSmall: return "frame too small to hold a type";
  }
  return "unknown";
}

std::expected<std::size_t, FrameError> FrameSizeWanted(std::span<const std::uint8_t> buffer) {
  WireReader reader(buffer);
  auto length = reader.U32();
  if (!length) return kLengthBytes;
  if (*length > kMaxFrame) return std::unexpected(FrameError::kTooLarge);
  if (*length < kTypeBytes) return std::unexpected(FrameError::kTooSmall);
  return kLengthBytes + *length;
}

std::expected<std::optional<Parsed>, FrameError> ParseFrame(std::span<const std::uint8_t> buffer) {
  auto wanted = FrameSizeWanted(buffer);
  if (!wanted) return std::unexpected(wanted.error());
  if (buffer.size() < kLengthBytes || buffer.size() < *wanted) return std::nullopt;
  WireReader reader(buffer.first(*wanted));
  auto length = reader.U32();
  auto type = reader.U32();
  auto body = reader.Bytes(reader.remaining());
  MCONNECT_CHECK(length && type && body);  // sizes were checked above
  Parsed parsed;
  parsed.frame.type = *type;
  parsed.frame.body.assign(body->begin(), body->end());
  parsed.consumed = *wanted;
  return parsed;
}

std::string_view DecodeErrorKindName(DecodeErrorKind kind) {
  switch (kind) {
    case DecodeErrorKind::kUnknownType: return "unsupported message type";
    case DecodeErrorKind::kTruncated: return "truncated";
    case DecodeErrorKind::kTooLong: return "longer than allowed";
    case DecodeErrorKind::kBadValue: return "bad value";
    case DecodeErrorKind::kTooMany: return "too many entries";
  }
  return "unknown";
}

std::string DescribeDecodeError(const DecodeError& error) {
  std::string_view name = MessageTypeName(error.type);
  std::string where = name == "unknown" ? fmt::format("type {:#010x}", error.type) : std::string(name);
  if (error.request_id) where += fmt::format(" (request {})", *error.request_id);
  if (error.field.empty()) return fmt::format("{}: {}", where, DecodeErrorKindName(error.kind));
  return fmt::format("{}: {}: {}", where, error.field, DecodeErrorKindName(error.kind));
}

std::expected<ClientMessage, DecodeError> DecodeClientMessage(const Frame& frame) {
  BodyReader in(frame);
  return ReadClient(in, frame.type);
}

std::expected<ServerMessage, DecodeError> DecodeServerMessage(const Frame& frame) {
  BodyReader in(frame);
  return ReadServer(in, frame.type);
}

std::optional<std::string_view> InvalidForwardReason(const ForwardSpec& forward) {
  switch (forward.type) {
    case kMuxFwdLocal:
    case kMuxFwdRemote:
    case kMuxFwdDynamic: break;
    default: return "unknown forwarding type";
  }
  if (!PortOk(forward.listen_port) || !PortOk(forward.connect_port)) return "port out of range";
  if (forward.type == kMuxFwdDynamic && forward.listen_port == kPortStreamLocal) {
    return "a dynamic forward cannot listen on a Unix socket";
  }
  if (forward.type == kMuxFwdLocal && forward.connect_port == 0) return "connect port 0";
  if (forward.type != kMuxFwdDynamic && forward.connect_host.empty()) return "missing connect host";
  return std::nullopt;
}

std::string_view EncodeErrorName(EncodeError error) {
  return NameIn(error, {{EncodeError::kTooLong, "field or frame over its limit"},
                        {EncodeError::kBadValue, "NUL in a string or port out of range"}});
}

std::vector<std::uint8_t> EncodeHello(std::uint32_t version) { return EncodeInfallible(Hello{version, {}}); }
std::vector<std::uint8_t> EncodeOk(std::uint32_t request_id) { return EncodeInfallible(Ok{request_id}); }
std::vector<std::uint8_t> EncodePermissionDenied(std::uint32_t request_id, std::string_view reason) {
  return EncodeInfallible(PermissionDenied{request_id, SanitizeReason(reason)});
}
std::vector<std::uint8_t> EncodeFailure(std::uint32_t request_id, std::string_view reason) {
  return EncodeInfallible(Failure{request_id, SanitizeReason(reason)});
}
std::vector<std::uint8_t> EncodeExitMessage(std::uint32_t session_id, std::uint32_t exit_value) {
  return EncodeInfallible(ExitMessage{session_id, exit_value});
}
std::vector<std::uint8_t> EncodeAlive(std::uint32_t request_id, std::uint32_t pid) {
  return EncodeInfallible(Alive{request_id, pid});
}
std::vector<std::uint8_t> EncodeSessionOpened(std::uint32_t request_id, std::uint32_t session_id) {
  return EncodeInfallible(SessionOpened{request_id, session_id});
}
std::vector<std::uint8_t> EncodeRemotePort(std::uint32_t request_id, std::uint32_t allocated_port) {
  return EncodeInfallible(RemotePort{request_id, allocated_port});
}
std::vector<std::uint8_t> EncodeTtyAllocFail(std::uint32_t session_id) {
  return EncodeInfallible(TtyAllocFail{session_id});
}

std::expected<std::vector<std::uint8_t>, EncodeError> EncodeClientMessage(const ClientMessage& message) {
  return std::visit([](const auto& m) { return EncodeOne(m); }, message);
}

std::expected<std::vector<std::uint8_t>, EncodeError> EncodeServerMessage(const ServerMessage& message) {
  return std::visit([](const auto& m) { return EncodeOne(m); }, message);
}

}  // namespace mconnect::mux::openssh
