// The end of a channel's life, the same for every kind of task: wait for the server's CLOSE
// (discarding what still arrives, or the close is never seen) and read how the remote side
// exited.
#pragma once

#include <string>

#include <libssh2.h>

namespace mconnect::mux {

// libssh2_channel_wait_closed, non-blocking: false means EAGAIN (call again later).
bool WaitClosedDiscarding(LIBSSH2_CHANNEL* channel);

struct ChannelExit {
  int status = -1;
  std::string signal;  // e.g. "TERM" when the remote command was killed
};
ChannelExit ReadChannelExit(LIBSSH2_SESSION* session, LIBSSH2_CHANNEL* channel);

}  // namespace mconnect::mux
