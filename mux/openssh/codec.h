// OpenSSH's connection-multiplexing protocol, version 4, as spoken on a ControlPath socket by
// `ssh -S PATH`, `ssh -O check|exit|stop|forward|cancel|proxy` and everything that runs through
// them (scp, rsync, git). Pure: bytes in, typed messages or a typed error out; no fd, no I/O, no
// clock. The server that owns the socket (and the fds passed over it) lives elsewhere.
//
// The authority is openssh-portable's mux.c, not PROTOCOL.mux, where the two disagree:
//   * NEW_SESSION's four flags are uint32, not bool;
//   * NEW_STDIO_FWD's port is a uint32, not a string;
//   * after NEW_SESSION the master answers SESSION_OPENED and never MUX_S_OK (a real client
//     treats any later message other than TTY_ALLOC_FAIL / EXIT_MESSAGE as fatal).
// The client layouts were checked byte for byte against frames captured from OpenSSH 9.2p1's
// client, the master layouts against what that client accepts.
//
// Framing (both directions): uint32 length | uint32 type | body, where length counts the type and
// the body. Integers are big-endian; "string" is uint32 length + bytes; "cstring" is a string that
// may not contain NUL. Every message except HELLO starts its body with a uint32 request id (client
// to master) or echoes it (master to client); EXIT_MESSAGE and TTY_ALLOC_FAIL carry a session id
// instead.
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace mconnect::mux::openssh {

inline constexpr std::uint32_t kProtocolVersion = 4;  // SSHMUX_VER

// Largest accepted length field (type + body). OpenSSH's master refuses more than this too
// (channels.c), so no real client sends more; checked before anything is allocated.
inline constexpr std::size_t kMaxFrame = 256 * 1024;
// Caps inside a frame. The frame cap already bounds memory; these reject nonsense early and
// keep every decoded string sane for logs. The command of a session is bounded only by the
// frame: `ssh host "$(cat script)"` is legitimate.
inline constexpr std::size_t kMaxStringBytes = 64 * 1024;
inline constexpr std::size_t kMaxCommandBytes = kMaxFrame;
// mux.c stops taking environment strings after 4096 (MUX_MAX_ENV_VARS); a client with
// `SendEnv *` can legitimately send a few hundred, so the cap is OpenSSH's, not lower.
inline constexpr std::size_t kMaxEnvStrings = 4096;
inline constexpr std::size_t kMaxHelloExtensions = 64;
// Reasons in PERMISSION_DENIED / FAILURE are cut to this many bytes by the encoders.
inline constexpr std::size_t kMaxReasonBytes = 4096;

// Message types (mux.c).
inline constexpr std::uint32_t kMuxMsgHello = 0x00000001;
inline constexpr std::uint32_t kMuxCNewSession = 0x10000002;
inline constexpr std::uint32_t kMuxCAliveCheck = 0x10000004;
inline constexpr std::uint32_t kMuxCTerminate = 0x10000005;
inline constexpr std::uint32_t kMuxCOpenFwd = 0x10000006;
inline constexpr std::uint32_t kMuxCCloseFwd = 0x10000007;
inline constexpr std::uint32_t kMuxCNewStdioFwd = 0x10000008;
inline constexpr std::uint32_t kMuxCStopListening = 0x10000009;
inline constexpr std::uint32_t kMuxCProxy = 0x1000000f;
// OpenSSH >= 9.9 (`ssh -O conninfo|channels`); its client sends it only to a master whose HELLO
// advertised the "info" extension, which ours does not. Decoded as an unknown type.
inline constexpr std::uint32_t kMuxCExtInfo = 0x20000001;
inline constexpr std::uint32_t kMuxSOk = 0x80000001;
inline constexpr std::uint32_t kMuxSPermissionDenied = 0x80000002;
inline constexpr std::uint32_t kMuxSFailure = 0x80000003;
inline constexpr std::uint32_t kMuxSExitMessage = 0x80000004;
inline constexpr std::uint32_t kMuxSAlive = 0x80000005;
inline constexpr std::uint32_t kMuxSSessionOpened = 0x80000006;
inline constexpr std::uint32_t kMuxSRemotePort = 0x80000007;
inline constexpr std::uint32_t kMuxSTtyAllocFail = 0x80000008;
inline constexpr std::uint32_t kMuxSProxy = 0x8000000f;
inline constexpr std::uint32_t kMuxSExtInfo = 0x90000001;

// Forward types in OPEN_FWD / CLOSE_FWD.
inline constexpr std::uint32_t kMuxFwdLocal = 1;    // -L
inline constexpr std::uint32_t kMuxFwdRemote = 2;   // -R
inline constexpr std::uint32_t kMuxFwdDynamic = 3;  // -D

// A port of (uint32)-2 (OpenSSH's PORT_STREAMLOCAL) means the host beside it is a Unix socket
// path. Every other port is in 0..65535.
inline constexpr std::uint32_t kPortStreamLocal = 0xfffffffe;
// NEW_SESSION's escape char when escapes are off (`-e none`).
inline constexpr std::uint32_t kNoEscapeChar = 0xffffffff;

// "MUX_C_NEW_SESSION", ... or "unknown".
std::string_view MessageTypeName(std::uint32_t type);

// ---- Framing -----------------------------------------------------------------------------

struct Frame {
  std::uint32_t type = 0;
  std::vector<std::uint8_t> body;  // everything after the type
};

enum class FrameError {
  kTooLarge,  // length field above kMaxFrame: OpenSSH's master drops such a client too
  kTooSmall,  // length field below 4: no room for the type
};
std::string_view FrameErrorName(FrameError error);

struct Parsed {
  Frame frame;
  std::size_t consumed = 0;  // 4 + length
};

// The first complete frame in `buffer`; nullopt when more bytes are needed. The length is checked
// against kMaxFrame as soon as its 4 bytes are there, before the body arrives.
std::expected<std::optional<Parsed>, FrameError> ParseFrame(std::span<const std::uint8_t> buffer);

// How many bytes the frame starting at `buffer` occupies in total: 4 while the length field is
// incomplete, then 4 + length. A server reads exactly up to this and never beyond: the fds a
// client passes after NEW_SESSION / NEW_STDIO_FWD ride on the bytes that follow the frame.
std::expected<std::size_t, FrameError> FrameSizeWanted(std::span<const std::uint8_t> buffer);

// ---- Decoding ----------------------------------------------------------------------------

enum class DecodeErrorKind {
  kUnknownType,  // well-formed frame of a type not handled here; `request_id` is set. OpenSSH
                 // answers MUX_S_FAILURE "unsupported request" and keeps the client.
  kTruncated,    // the body ends inside a field; close the client, as mux.c does
  kTooLong,      // a string longer than its cap
  kBadValue,     // NUL in a cstring, a port neither in 0..65535 nor kPortStreamLocal
  kTooMany,      // more env strings or HELLO extensions than the cap
};

struct DecodeError {
  DecodeErrorKind kind = DecodeErrorKind::kTruncated;
  std::uint32_t type = 0;
  std::optional<std::uint32_t> request_id;  // when the body got that far
  std::string_view field;                   // static name of the field that failed, or ""
};
std::string_view DecodeErrorKindName(DecodeErrorKind kind);
// One line for a log: "MUX_C_NEW_SESSION (request 1): term: truncated".
std::string DescribeDecodeError(const DecodeError& error);

// HELLO, both directions:
//   uint32 version | { cstring name | string value }*  (pairs until the body ends)
// The master sends its HELLO on accept without waiting for the client's. The decoder accepts
// any version; the server closes a client whose version is not kProtocolVersion, as mux.c does.
struct Hello {
  std::uint32_t version = kProtocolVersion;
  std::vector<std::pair<std::string, std::string>> extensions;
  bool operator==(const Hello&) const = default;
};

// MUX_C_NEW_SESSION:
//   uint32 request_id | string reserved | uint32 want_tty | uint32 want_x11 | uint32 want_agent |
//   uint32 subsystem | uint32 escape_char | cstring term | cstring command | cstring env*
// env strings ("NAME=VALUE", not validated here) run to the end of the body. A nonzero flag is
// true. escape_char is kNoEscapeChar or a byte value ('~' = 0x7e by default); OpenSSH's master
// applies it (~. ~? ...) to a tty session's stdin, the client does not. The client follows the
// frame with its stdin, stdout and stderr fds, each in its own sendmsg with one data byte.
struct NewSession {
  std::uint32_t request_id = 0;
  std::string reserved;
  bool want_tty = false;
  bool want_x11 = false;
  bool want_agent = false;
  bool subsystem = false;  // command names a subsystem (ssh -s), e.g. "sftp"
  std::uint32_t escape_char = kNoEscapeChar;
  std::string term;
  std::string command;  // empty: the login shell
  std::vector<std::string> env;
  bool operator==(const NewSession&) const = default;
};

// A request whose body is its request_id alone; the tag keeps each kind a type of its own.
template <typename Tag>
struct IdOnlyRequest {
  std::uint32_t request_id = 0;
  bool operator==(const IdOnlyRequest&) const = default;
};

// MUX_C_ALIVE_CHECK: uint32 request_id. Answered by ALIVE with the master's pid.
using AliveCheck = IdOnlyRequest<struct AliveCheckTag>;
// MUX_C_TERMINATE: uint32 request_id. Answered by OK (or PERMISSION_DENIED).
using Terminate = IdOnlyRequest<struct TerminateTag>;

// The forward named by OPEN_FWD / CLOSE_FWD:
//   uint32 type | cstring listen_host | uint32 listen_port | cstring connect_host |
//   uint32 connect_port
// listen_host "" means the default bind address (loopback unless GatewayPorts), "*" every
// address. A port of kPortStreamLocal makes the host beside it a Unix socket path. -D sends
// connect_host "socks" and connect_port 0; -R 0:... asks the server to pick the port. The type is
// not checked by the decoder (mux.c answers FAILURE to a bad one): see InvalidForwardReason.
struct ForwardSpec {
  std::uint32_t type = kMuxFwdLocal;
  std::string listen_host;
  std::uint32_t listen_port = 0;
  std::string connect_host;
  std::uint32_t connect_port = 0;
  bool operator==(const ForwardSpec&) const = default;
};

// uint32 request_id | forward; the tag keeps opening and closing apart as types.
template <typename Tag>
struct ForwardRequest {
  std::uint32_t request_id = 0;
  ForwardSpec forward;
  bool operator==(const ForwardRequest&) const = default;
};

// MUX_C_OPEN_FWD: Answered by OK, REMOTE_PORT (a -R with listen port 0), PERMISSION_DENIED or
// FAILURE.
using OpenForward = ForwardRequest<struct OpenForwardTag>;
// MUX_C_CLOSE_FWD (the forward as it was opened): Answered by OK or FAILURE.
using CloseForward = ForwardRequest<struct CloseForwardTag>;

// MUX_C_NEW_STDIO_FWD (ssh -W):
//   uint32 request_id | string reserved | cstring host | uint32 port
// port is in 0..65535 or kPortStreamLocal (host is then a path). The client follows the frame
// with its stdin and stdout fds, one sendmsg each.
struct NewStdioForward {
  std::uint32_t request_id = 0;
  std::string reserved;
  std::string host;
  std::uint32_t port = 0;
  bool operator==(const NewStdioForward&) const = default;
};

// MUX_C_STOP_LISTENING: uint32 request_id. Answered by OK once the socket is gone.
using StopListening = IdOnlyRequest<struct StopListeningTag>;
// MUX_C_PROXY: uint32 request_id. Asks to switch the socket to raw SSH connection-protocol
// packets; a master that does not do that answers FAILURE.
using Proxy = IdOnlyRequest<struct ProxyTag>;

using ClientMessage = std::variant<Hello, NewSession, AliveCheck, Terminate, OpenForward, CloseForward,
                                   NewStdioForward, StopListening, Proxy>;

// A client's frame as a message. Bytes after the last field of a fixed-layout message are
// ignored, as mux.c ignores them; in HELLO and NEW_SESSION the trailing fields run to the end of
// the body, so stray bytes there fail as a truncated or bad field.
std::expected<ClientMessage, DecodeError> DecodeClientMessage(const Frame& frame);

// Master -> client messages.
//   MUX_S_OK:                uint32 request_id
//   MUX_S_PERMISSION_DENIED: uint32 request_id | cstring reason
//   MUX_S_FAILURE:           uint32 request_id | cstring reason
//   MUX_S_EXIT_MESSAGE:      uint32 session_id | uint32 exit_value
//   MUX_S_ALIVE:             uint32 request_id | uint32 pid
//   MUX_S_SESSION_OPENED:    uint32 request_id | uint32 session_id
//   MUX_S_REMOTE_PORT:       uint32 request_id | uint32 allocated_port
//   MUX_S_TTY_ALLOC_FAIL:    uint32 session_id
struct Ok {
  std::uint32_t request_id = 0;
  bool operator==(const Ok&) const = default;
};
// PERMISSION_DENIED and FAILURE: the same body; the tag keeps them apart as types.
template <typename Tag>
struct Refusal {
  std::uint32_t request_id = 0;
  std::string reason;
  bool operator==(const Refusal&) const = default;
};
using PermissionDenied = Refusal<struct PermissionDeniedTag>;
using Failure = Refusal<struct FailureTag>;
struct ExitMessage {
  std::uint32_t session_id = 0;
  std::uint32_t exit_value = 0;
  bool operator==(const ExitMessage&) const = default;
};
// A reply of request_id and one number: ALIVE's pid, SESSION_OPENED's session id, REMOTE_PORT's
// allocated port. The tag keeps each kind a type of its own.
template <typename Tag>
struct NumberReply {
  std::uint32_t request_id = 0;
  std::uint32_t value = 0;
  bool operator==(const NumberReply&) const = default;
};
using Alive = NumberReply<struct AliveTag>;
using SessionOpened = NumberReply<struct SessionOpenedTag>;
using RemotePort = NumberReply<struct RemotePortTag>;
struct TtyAllocFail {
  std::uint32_t session_id = 0;
  bool operator==(const TtyAllocFail&) const = default;
};

using ServerMessage =
    std::variant<Hello, Ok, PermissionDenied, Failure, ExitMessage, Alive, SessionOpened, RemotePort, TtyAllocFail>;

// A master's frame as a message (for tests and tools that act as the client). For the fixed
// layouts, trailing bytes are ignored, as OpenSSH's client ignores them.
std::expected<ServerMessage, DecodeError> DecodeServerMessage(const Frame& frame);

// Why OpenSSH's master would answer FAILURE "Invalid forwarding request" to this forward, or
// nullopt if it is well-formed: an unknown type, a dynamic forward on a Unix socket path, a
// connect port of 0 on a -L, no connect host on a -L / -R.
std::optional<std::string_view> InvalidForwardReason(const ForwardSpec& forward);

// ---- Encoding ----------------------------------------------------------------------------
// Every encoder returns one complete frame, length prefix included, that the decoders above
// accept: encoders enforce the same caps.

enum class EncodeError {
  kTooLong,   // a field over its cap, or the frame over kMaxFrame
  kBadValue,  // a NUL in a cstring field, a port out of range
};
std::string_view EncodeErrorName(EncodeError error);

// Master -> client; these cannot fail. A reason is cut to kMaxReasonBytes and any NUL in it
// becomes '?': OpenSSH's client reads it as a cstring and dies on a NUL.
std::vector<std::uint8_t> EncodeHello(std::uint32_t version = kProtocolVersion);
std::vector<std::uint8_t> EncodeOk(std::uint32_t request_id);
std::vector<std::uint8_t> EncodePermissionDenied(std::uint32_t request_id, std::string_view reason);
std::vector<std::uint8_t> EncodeFailure(std::uint32_t request_id, std::string_view reason);
std::vector<std::uint8_t> EncodeExitMessage(std::uint32_t session_id, std::uint32_t exit_value);
std::vector<std::uint8_t> EncodeAlive(std::uint32_t request_id, std::uint32_t pid);
std::vector<std::uint8_t> EncodeSessionOpened(std::uint32_t request_id, std::uint32_t session_id);
std::vector<std::uint8_t> EncodeRemotePort(std::uint32_t request_id, std::uint32_t allocated_port);
std::vector<std::uint8_t> EncodeTtyAllocFail(std::uint32_t session_id);

// Any message, either direction, with its values checked rather than repaired.
std::expected<std::vector<std::uint8_t>, EncodeError> EncodeClientMessage(const ClientMessage& message);
std::expected<std::vector<std::uint8_t>, EncodeError> EncodeServerMessage(const ServerMessage& message);

}  // namespace mconnect::mux::openssh
