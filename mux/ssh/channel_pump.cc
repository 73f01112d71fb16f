#include "mux/ssh/channel_pump.h"

#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "base/log.h"
#include "base/ssh2.h"
#include "mux/ssh/channel_end.h"

namespace mconnect::mux {

PumpResult PumpChannel(LIBSSH2_SESSION* session, LIBSSH2_CHANNEL* channel, ChannelPipes& pipes, bool& eof_sent) {
  bool progress = false;
  // Local → server, as far as the window allows.
  while (!pipes.to_remote.empty()) {
    std::string_view front = pipes.to_remote.Front();
    ssize_t n = libssh2_channel_write(channel, front.data(), front.size());
    if (n == LIBSSH2_ERROR_EAGAIN) {
      // A partly sent packet must be finished before any other call that sends.
      if (libssh2_session_block_directions(session) & LIBSSH2_SESSION_BLOCK_OUTBOUND) return PumpResult::kBlocked;
      break;  // the window is full: read meanwhile
    }
    if (n < 0) {
      log::Info("writing to the channel failed: {}", Ssh2LastError(session));
      return PumpResult::kFailed;
    }
    pipes.to_remote.consume(static_cast<std::size_t>(n));
    progress = true;
  }
  if (pipes.local_eof && pipes.to_remote.empty() && !eof_sent) {
    int rc = libssh2_channel_send_eof(channel);
    if (rc == LIBSSH2_ERROR_EAGAIN) return PumpResult::kBlocked;
    eof_sent = true;
    progress = true;
  }
  if (pipes.remote_eof) return progress ? PumpResult::kProgress : PumpResult::kBlocked;
  // Server → local, while the local side keeps up.
  // libssh2 copies straight into the queue: 32 KiB is one packet's worth.
  for (int stream : {0, SSH_EXTENDED_DATA_STDERR}) {
    ByteQueue& sink = stream == 0 ? pipes.stdout_data : pipes.stderr_data;
    while (sink.size() < ChannelPipes::kBufferLimit) {
      ssize_t n = sink.AppendFrom(32768, [&](char* into, std::size_t room) {
        return libssh2_channel_read_ex(channel, stream, into, room);
      });
      if (n == LIBSSH2_ERROR_EAGAIN || n == 0) break;
      if (n < 0) {
        log::Info("reading from the channel failed: {}", Ssh2LastError(session));
        return PumpResult::kFailed;
      }
      progress = true;
    }
  }
  // EOF counts only once nothing of the server's data is left inside libssh2 (libssh2_channel_eof
  // says no while data for the channel is queued; the reads above stopped only for lack of it
  // when both queues have room).
  if (libssh2_channel_eof(channel) && pipes.stdout_data.size() < ChannelPipes::kBufferLimit &&
      pipes.stderr_data.size() < ChannelPipes::kBufferLimit) {
    pipes.remote_eof = true;
    progress = true;
  }
  return progress ? PumpResult::kProgress : PumpResult::kBlocked;
}

void AddLocalPollFds(const LocalEnds& ends, const ChannelPipes& pipes, std::vector<pollfd>& fds) {
  bool want_input = pipes.opened && !pipes.local_eof && pipes.to_remote.size() < ChannelPipes::kBufferLimit;
  fds.push_back({want_input ? ends.input : -1, POLLIN, 0});
  fds.push_back({pipes.stdout_data.empty() ? -1 : ends.output, POLLOUT, 0});
  fds.push_back({pipes.stderr_data.empty() ? -1 : ends.errors, POLLOUT, 0});
}

bool PumpLocalEnds(const LocalEnds& ends, ChannelPipes& pipes, const pollfd* fds) {
  // An fd poll() cannot watch (a lent O_PATH descriptor, one closed under us) says POLLNVAL at
  // once, every time: nothing can be read or written through it, and polling on would spin.
  for (int i = 0; i < 3; ++i) {
    if (fds[i].fd >= 0 && (fds[i].revents & POLLNVAL)) return false;
  }
  // POLLERR needs no such care: the read or write below fails on it, which ends that direction.
  if (fds[0].fd >= 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) {
    constexpr std::size_t kChunk = 32768;
    std::size_t room = ChannelPipes::kBufferLimit - std::min(ChannelPipes::kBufferLimit, pipes.to_remote.size());
    ssize_t n;
    if (ends.input_filter) {
      char buffer[kChunk];
      n = ::read(ends.input, buffer, std::min(room, kChunk));
      if (n > 0) ends.input_filter(std::string_view(buffer, static_cast<std::size_t>(n)), pipes);
    } else {
      n = pipes.to_remote.AppendFrom(std::min(room, kChunk),
                                     [&](char* into, std::size_t size) { return ::read(ends.input, into, size); });
    }
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) pipes.local_eof = true;
  }
  bool output_alive = true;
  for (int i : {1, 2}) {
    ByteQueue& data = i == 1 ? pipes.stdout_data : pipes.stderr_data;
    if (fds[i].fd < 0 || data.empty() || !(fds[i].revents & (POLLOUT | POLLERR | POLLHUP))) continue;
    // A descriptor someone else made blocking again gets at most PIPE_BUF: poll's POLLOUT
    // promises that much room on a pipe, so it cannot stall the master's loop.
    int flags = ::fcntl(fds[i].fd, F_GETFL);
    std::string_view front = data.Front();
    std::size_t limit = flags >= 0 && (flags & O_NONBLOCK) != 0 ? front.size() : PIPE_BUF;
    ssize_t n = ::write(fds[i].fd, front.data(), std::min(front.size(), limit));
    if (n > 0) {
      data.consume(static_cast<std::size_t>(n));
    } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
      data.clear();  // the reader went away (EPIPE): drop, as ssh does
      if (i == 1) output_alive = false;
    }
  }
  return output_alive;
}

void ChannelPump::Abort(const std::string& why) {
  if (!pipes_->opened) {
    pipes_->failure = why;
  } else {
    pipes_->finished = true;
    pipes_->exit_status = 255;
  }
}

ChannelTask::Step ChannelPump::Pump(LIBSSH2_SESSION* session, LIBSSH2_CHANNEL* channel) {
  if (pipes_->client_gone && state_ < State::kClosing) state_ = State::kClosing;
  switch (state_) {
    case State::kSetup: {
      Step step = Setup(session, channel);
      if (step != Step::kFinished) return step;
      if (!pipes_->failure.empty()) return Step::kFinished;
      pipes_->opened = true;
      state_ = State::kPumping;
      return Step::kProgress;
    }
    case State::kPumping: {
      Step before = BeforePump(session, channel);
      if (before == Step::kBlocked) return before;
      switch (PumpChannel(session, channel, *pipes_, eof_sent_)) {
        case PumpResult::kProgress: return Step::kProgress;
        case PumpResult::kBlocked: break;
        case PumpResult::kFailed:
          failed_ = true;
          state_ = State::kClosing;
          return Step::kProgress;
      }
      if (!pipes_->remote_eof) return Step::kBlocked;
      // The server's direction is done. Ours is done once our EOF went; before that only the
      // server's CLOSE ends it (libssh2 lets us ask only after its EOF: EAGAIN while open).
      if (!eof_sent_) {
        int rc = libssh2_channel_wait_closed(channel);
        if (rc == LIBSSH2_ERROR_EAGAIN) return Step::kBlocked;
        if (rc == 0) pipes_->to_remote.clear();
        else failed_ = true;
      }
      state_ = State::kClosing;
      return Step::kProgress;
    }
    case State::kClosing: {
      int rc = libssh2_channel_close(channel);
      if (rc == LIBSSH2_ERROR_EAGAIN) return Step::kBlocked;
      close_sent_ = true;
      state_ = State::kWaitingClosed;
      return Step::kProgress;
    }
    case State::kWaitingClosed: {
      if (!WaitClosedDiscarding(channel)) return Step::kBlocked;
      if (!close_sent_) {  // the server closed first: answer its CLOSE
        state_ = State::kClosing;
        return Step::kProgress;
      }
      return Finish(session, channel);
    }
  }
  return Step::kFinished;
}

ChannelTask::Step ChannelPump::Finish(LIBSSH2_SESSION* session, LIBSSH2_CHANNEL* channel) {
  ChannelExit exit = ReadChannelExit(session, channel);
  pipes_->exit_status = failed_ ? 255 : exit.status;
  pipes_->exit_signal = failed_ ? std::string() : std::move(exit.signal);
  pipes_->finished = true;
  return Step::kFinished;
}

}  // namespace mconnect::mux
