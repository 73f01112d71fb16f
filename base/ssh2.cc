#include "base/ssh2.h"

#include <fmt/format.h>

namespace mconnect {

void Ssh2GlobalInit() {
  static const int result = libssh2_init(0);
  (void)result;
}

std::string_view Ssh2ErrorWords(int code) {
  switch (code) {
    case LIBSSH2_ERROR_NONE: return "no error";
    case LIBSSH2_ERROR_SOCKET_NONE: return "there is no connection to the server";
    case LIBSSH2_ERROR_BANNER_RECV: return "no SSH greeting came from the server (not an SSH server, or the connection was cut)";
    case LIBSSH2_ERROR_BANNER_SEND: return "the SSH greeting could not be sent to the server";
    case LIBSSH2_ERROR_INVALID_MAC: return "a packet from the server failed its integrity check (damaged on the way)";
    case LIBSSH2_ERROR_KEX_FAILURE: return "the key exchange with the server failed";
    case LIBSSH2_ERROR_ALLOC: return "out of memory";
    case LIBSSH2_ERROR_SOCKET_SEND: return "sending to the server failed: the connection is broken";
    case LIBSSH2_ERROR_KEY_EXCHANGE_FAILURE: return "the key exchange with the server failed (no algorithm in common?)";
    case LIBSSH2_ERROR_TIMEOUT: return "the server did not answer in time";
    case LIBSSH2_ERROR_HOSTKEY_INIT: return "the server's host key could not be read";
    case LIBSSH2_ERROR_HOSTKEY_SIGN: return "the server's host key signature does not verify";
    case LIBSSH2_ERROR_DECRYPT: return "a packet from the server could not be decrypted";
    case LIBSSH2_ERROR_SOCKET_DISCONNECT: return "the server closed the connection";
    case LIBSSH2_ERROR_PROTO: return "the server broke the SSH protocol (a message out of place or malformed)";
    case LIBSSH2_ERROR_PASSWORD_EXPIRED: return "the password has expired and must be changed";
    case LIBSSH2_ERROR_FILE: return "a key file could not be read";
    case LIBSSH2_ERROR_METHOD_NONE: return "no authentication method was agreed on with the server";
    case LIBSSH2_ERROR_AUTHENTICATION_FAILED: return "the server refused the authentication";
    case LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED: return "the server did not accept the key's signature";
    case LIBSSH2_ERROR_CHANNEL_OUTOFORDER: return "channel messages arrived out of order";
    case LIBSSH2_ERROR_CHANNEL_FAILURE: return "the server refused to open a channel (sshd's MaxSessions reached?)";
    case LIBSSH2_ERROR_CHANNEL_REQUEST_DENIED: return "the server refused the request on the channel";
    case LIBSSH2_ERROR_CHANNEL_UNKNOWN: return "the server does not know the channel";
    case LIBSSH2_ERROR_CHANNEL_WINDOW_EXCEEDED: return "the server sent more than the channel's window allows";
    case LIBSSH2_ERROR_CHANNEL_PACKET_EXCEEDED: return "the server sent a packet larger than agreed";
    case LIBSSH2_ERROR_CHANNEL_CLOSED: return "the channel is closed already";
    case LIBSSH2_ERROR_CHANNEL_EOF_SENT: return "the end of the channel's data was sent already";
    case LIBSSH2_ERROR_SCP_PROTOCOL: return "the scp exchange with the server went wrong";
    case LIBSSH2_ERROR_ZLIB: return "decompressing the server's data failed";
    case LIBSSH2_ERROR_SOCKET_TIMEOUT: return "the connection to the server timed out";
    case LIBSSH2_ERROR_SFTP_PROTOCOL: return "the sftp exchange with the server went wrong";
    case LIBSSH2_ERROR_REQUEST_DENIED: return "the server refused the request";
    case LIBSSH2_ERROR_METHOD_NOT_SUPPORTED: return "the server does not support the method asked for";
    case LIBSSH2_ERROR_INVAL: return "an invalid request (a bug in mconnect)";
    case LIBSSH2_ERROR_INVALID_POLL_TYPE: return "an invalid poll type (a bug in mconnect)";
    case LIBSSH2_ERROR_PUBLICKEY_PROTOCOL: return "the server's publickey subsystem answered something unexpected";
    case LIBSSH2_ERROR_EAGAIN: return "the operation would have to wait (a bug in mconnect if it is shown)";
    case LIBSSH2_ERROR_BUFFER_TOO_SMALL: return "a message did not fit its buffer";
    case LIBSSH2_ERROR_BAD_USE: return "the SSH library was used wrongly (a bug in mconnect)";
    case LIBSSH2_ERROR_COMPRESS: return "compressing data for the server failed";
    case LIBSSH2_ERROR_OUT_OF_BOUNDARY: return "a message from the server reaches past its own end";
    case LIBSSH2_ERROR_AGENT_PROTOCOL: return "the ssh-agent answered something unexpected (is SSH_AUTH_SOCK an agent?)";
    case LIBSSH2_ERROR_SOCKET_RECV: return "reading from the server failed: the connection is broken";
    case LIBSSH2_ERROR_ENCRYPT: return "encrypting data for the server failed";
    case LIBSSH2_ERROR_BAD_SOCKET: return "the connection's socket cannot be used";
    case LIBSSH2_ERROR_KNOWN_HOSTS: return "the known_hosts file could not be read or written";
    case LIBSSH2_ERROR_CHANNEL_WINDOW_FULL: return "the channel is full (the other end does not read)";
    case LIBSSH2_ERROR_KEYFILE_AUTH_FAILED: return "the key file could not be used (a wrong passphrase, or a format not supported)";
    case LIBSSH2_ERROR_RANDGEN: return "this machine's random number generator failed";
    case LIBSSH2_ERROR_MISSING_USERAUTH_BANNER: return "the server sent no authentication banner";
    case LIBSSH2_ERROR_ALGO_UNSUPPORTED: return "the server chose an algorithm not supported here";
    case LIBSSH2_ERROR_MAC_FAILURE: return "computing a packet's integrity check failed";
    case LIBSSH2_ERROR_HASH_INIT: return "a hash could not be set up";
    case LIBSSH2_ERROR_HASH_CALC: return "a hash could not be computed";
    default: return "an error this version of mconnect does not know";
  }
}

std::string Ssh2LastError(LIBSSH2_SESSION* session) {
  char* message = nullptr;
  int length = 0;
  int code = libssh2_session_last_error(session, &message, &length, 0);
  if (message == nullptr || length <= 0) return fmt::format("{} (libssh2 error {})", Ssh2ErrorWords(code), code);
  return fmt::format("{} (libssh2: {}, error {})", Ssh2ErrorWords(code), std::string_view(message, length), code);
}

}  // namespace mconnect
