// The forwards a master opens by itself, from its MasterConfig: the ssh config's LocalForward,
// RemoteForward and DynamicForward (as OpenSSH's master opens them when it starts) and the
// profile's `forward` entries. Each goes through the same entry point as `ssh -O forward`
// (Forwards::Open), so every kind that entry point serves is served here too.
//
// Unlike a client's forward, these are kept: across a reconnect the local listeners (-L, -D)
// stay up, and a connection made meanwhile waits for the new SSH connection (the driver holds
// its channel open for reconnect_wait); the server-side listeners (-R) die with the old
// connection and are asked of the new one after every reconnect. One that cannot be opened is
// tried again with backoff (5 s, doubling up to 60 s): a port another program held, a server that
// still holds the old connection's port. Each has a state for `mconnect status`.
#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mux/forward/forwards.h"
#include "mux/openssh/codec.h"

namespace mconnect::mux {

struct ConfiguredForward {
  openssh::ForwardSpec spec;
  std::string text;    // as written: "L 8080:localhost:80"
  std::string origin;  // where it was written: "ssh config", "profile"
};

class ConfiguredForwards {
 public:
  using Clock = std::chrono::steady_clock;
  enum class State {
    kOpening,  // asked of the server (-R), answer pending
    kUp,       // listening (-L, -D here; -R on the server)
    kWaiting,  // the connection is lost and being re-opened
    kFailed,   // could not be opened; tried again at retry_at
  };
  struct Entry {
    ConfiguredForward forward;
    State state = State::kOpening;
    std::string detail;             // why it failed, or what it waits for
    std::uint32_t bound_port = 0;   // -R: the port the server listens on (the one it picked for 0)
    bool listening = false;         // Forwards holds a listener for it (to close before reopening)
    bool opened_once = false;       // it has been up at least once
    std::uint64_t generation = 0;   // answers to an older open are ignored
    int failures = 0;               // in a row
    Clock::time_point retry_at{};
  };

  // `exit_on_failure`: ssh's ExitOnForwardFailure; a forward that fails at start is fatal.
  ConfiguredForwards(Forwards& forwards, std::vector<ConfiguredForward> list, bool exit_on_failure);

  // Opens every forward: the local ones listen (or have failed, with a warning in the log) when
  // this returns; the remote ones are asked of the server.
  void Start();

  // Once per round: whether the main connection is up, and how many times it has been re-opened.
  void Update(bool link_up, std::uint64_t reconnects, Clock::time_point now);
  // When a failed forward is to be tried again.
  std::optional<Clock::time_point> NextDeadline() const;
  // With ExitOnForwardFailure: the line saying which forward failed at start (the master exits).
  const std::optional<std::string>& fatal() const { return fatal_; }

  const std::list<Entry>& entries() const { return entries_; }
  static std::string_view StateName(State state);
  // "L", "R" or "D".
  static std::string_view KindName(const openssh::ForwardSpec& spec);

 private:
  void Open(Entry& entry, Clock::time_point now);
  void OnOpened(Entry& entry, Result<std::uint32_t> opened);
  // Closes what is left of an earlier open (a -R listener of a connection that died), then opens.
  void Reopen(Entry& entry, Clock::time_point now);
  static std::string Name(const Entry& entry);

  Forwards& forwards_;
  std::list<Entry> entries_;  // never shrinks: callbacks hold pointers to entries
  bool exit_on_failure_;
  std::optional<std::string> fatal_;
  std::uint64_t reconnects_seen_ = 0;
};

}  // namespace mconnect::mux
