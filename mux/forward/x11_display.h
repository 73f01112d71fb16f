// The local display that sessions asking for X11 forwarding (ssh -X/-Y) reach: the master's own
// DISPLAY, as for OpenSSH's master, and the cookies the server is given for it. For each
// session the master reads the display's cookie with xauth (ForwardX11Trusted yes, Debian's
// default) or has xauth generate an untrusted one (ForwardX11Trusted no: the X server's SECURITY
// extension then keeps the client from other clients' windows), and hands the server a fake
// cookie of the same length; x11_auth.h swaps them back when the server connects.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "mux/forward/x11_auth.h"
#include "mux/openssh/session.h"

namespace mconnect::mux {

class X11Display {
 public:
  // At most this many cookies are held; a newer grant pushes out the oldest.
  static constexpr std::size_t kMaxGrants = 16;
  // How long one xauth run may take (the master's loop waits for it, as OpenSSH's master does).
  static constexpr int kXauthSeconds = 3;

  // `display`: DISPLAY as the master was started with; empty: none.
  X11Display(std::string display, bool trusted) : display_(std::move(display)), trusted_(trusted) {}

  // A fake cookie and the screen for a session's x11-req, or why X11 cannot be forwarded.
  Result<X11Request> Grant();
  // Where the display listens, when it is local (":N" or "unix:N").
  std::optional<x11::LocalDisplay> Local() const { return x11::ParseDisplay(display_); }
  const std::vector<x11::Grant>& grants() const { return grants_; }

 private:
  Result<x11::Cookie> RealCookie() const;

  std::string display_;
  bool trusted_;
  std::vector<x11::Grant> grants_;
};

}  // namespace mconnect::mux
