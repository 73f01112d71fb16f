#include "mux/ssh/channel_end.h"

namespace mconnect::mux {

bool WaitClosedDiscarding(LIBSSH2_CHANNEL* channel) {
  if (libssh2_channel_wait_closed(channel) != LIBSSH2_ERROR_EAGAIN) return true;
  char sink[4096];
  while (libssh2_channel_read_ex(channel, 0, sink, sizeof sink) > 0) {
  }
  while (libssh2_channel_read_ex(channel, SSH_EXTENDED_DATA_STDERR, sink, sizeof sink) > 0) {
  }
  return false;
}

ChannelExit ReadChannelExit(LIBSSH2_SESSION* session, LIBSSH2_CHANNEL* channel) {
  ChannelExit exit;
  exit.status = libssh2_channel_get_exit_status(channel);
  char* signal = nullptr;
  std::size_t length = 0;
  if (libssh2_channel_get_exit_signal(channel, &signal, &length, nullptr, nullptr, nullptr, nullptr) == 0 &&
      signal != nullptr) {
    exit.signal.assign(signal, length);
    libssh2_free(session, signal);
  }
  return exit;
}

}  // namespace mconnect::mux
