// One user of one SSH channel (a command with captured output, an OpenSSH mux session, later
// forwards), driven by the SshDriver. The driver opens the channel (one open in flight per
// session), then pumps the task whenever the session may have progressed; the task makes the
// non-blocking libssh2 calls its protocol needs and says how far it got.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <libssh2.h>

namespace mconnect::mux {

class ChannelTask {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Step {
    kProgress,  // did something; pump again
    kBlocked,   // a libssh2 call said EAGAIN, or nothing to do until more arrives
    kFinished,  // done (the channel is closed or must be dropped); the driver frees both
  };

  virtual ~ChannelTask() = default;

  // Drives the task on its open channel. After a call that returned EAGAIN the task must return
  // kBlocked and repeat exactly that call next time (libssh2's rule for partial sends; the
  // driver pumps nobody else while the session is blocked on sending).
  virtual Step Pump(LIBSSH2_SESSION* session, LIBSSH2_CHANNEL* channel) = 0;

  // True when the task no longer wants a channel it has not got yet (its deadline passed, its
  // client left). The driver then calls Abort instead of opening one.
  virtual bool Abandoned() const { return false; }

  // No channel for this task after all (refused, abandoned, connection lost). Called at most
  // once, and never after Pump returned kFinished; the task reports and is destroyed.
  virtual void Abort(const std::string& why) = 0;

  // Opens this task's channel (non-blocking: nullptr with EAGAIN means call again, with the same
  // arguments). A session channel whose receive window is `window` bytes by default; forwards
  // open direct-tcpip channels instead (libssh2 gives those its default window).
  virtual LIBSSH2_CHANNEL* OpenChannel(LIBSSH2_SESSION* session, std::uint32_t window) {
    return libssh2_channel_open_ex(session, "session", sizeof "session" - 1, window, LIBSSH2_CHANNEL_PACKET_DEFAULT,
                                   nullptr, 0);
  }
  // Whether the pre-opened spare session channel will do.
  virtual bool UsesSessionChannel() const { return true; }

  // When the driver must pump this task even if the socket stays quiet.
  virtual std::optional<Clock::time_point> Deadline() const { return std::nullopt; }

  // Counted in `mconnect status` (the master's own spare channel is not).
  virtual bool counts_as_busy() const { return true; }

  // What this task's session asked the server for and got, so that channels the server opens on
  // its own for it are taken: its agent (auth-agent@openssh.com) or X11 connections ("x11").
  // The driver refuses such channels while no live task of its connection says so.
  virtual bool forwards_agent() const { return false; }
  virtual bool forwards_x11() const { return false; }
};

// Work on the session that is not one channel of ours: a remote forward's listener (the
// server's tcpip-forward, whose connections arrive as channels the server opens).
class SessionJob {
 public:
  virtual ~SessionJob() = default;
  // Same contract as ChannelTask::Pump: kBlocked after EAGAIN (repeat the same call next time).
  virtual ChannelTask::Step Pump(LIBSSH2_SESSION* session) = 0;
  // The connection died; the job reports and is destroyed.
  virtual void Abort(const std::string& why) = 0;
};

}  // namespace mconnect::mux
