// Owning handles for libssh2 objects. A channel or session handle frees the object; orderly
// shutdown (close, disconnect), which can return EAGAIN, is the owner's job before that.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <libssh2.h>

namespace mconnect {

struct Ssh2SessionFree {
  void operator()(LIBSSH2_SESSION* session) const { libssh2_session_free(session); }
};
struct Ssh2ChannelFree {
  void operator()(LIBSSH2_CHANNEL* channel) const { libssh2_channel_free(channel); }
};
struct Ssh2KnownHostsFree {
  void operator()(LIBSSH2_KNOWNHOSTS* hosts) const { libssh2_knownhost_free(hosts); }
};
struct Ssh2AgentFree {
  void operator()(LIBSSH2_AGENT* agent) const {
    libssh2_agent_disconnect(agent);
    libssh2_agent_free(agent);
  }
};

using Ssh2Session = std::unique_ptr<LIBSSH2_SESSION, Ssh2SessionFree>;
using Ssh2Channel = std::unique_ptr<LIBSSH2_CHANNEL, Ssh2ChannelFree>;
using Ssh2KnownHosts = std::unique_ptr<LIBSSH2_KNOWNHOSTS, Ssh2KnownHostsFree>;
using Ssh2Agent = std::unique_ptr<LIBSSH2_AGENT, Ssh2AgentFree>;

// libssh2_init once per process; safe to call repeatedly.
void Ssh2GlobalInit();

// What libssh2 error `code` (LIBSSH2_ERROR_...) means, in words for the user; every code has
// some ("an error this mconnect does not know" for one a newer libssh2 adds).
std::string_view Ssh2ErrorWords(int code);

// The session's last error as a user reads it: the words first, libssh2's own message and the
// number beside them: "reading from the server failed: the connection is broken (libssh2: Error
// waiting on socket, error -43)". No libssh2 number reaches a user without its words.
std::string Ssh2LastError(LIBSSH2_SESSION* session);

}  // namespace mconnect
