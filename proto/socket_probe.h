// What answers at a socket path: nothing, a stale socket, an mconnect master, OpenSSH's own
// master (ControlMaster in the user's ssh config, at the same ControlPath), or something else.
// OpenSSH's rule (mux.c, muxserver_listen): a socket that accepts a connection is someone's;
// only a refused connection makes it stale. A master never deletes a socket that answers.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>

namespace mconnect::proto {

struct SocketAnswer {
  enum class Kind {
    kNothing,    // no file there
    kNotSocket,  // a file that is not a socket (refuse to touch it)
    kStale,      // a socket nobody listens on (connect: ECONNREFUSED): safe to replace
    kMconnect,   // an mconnect master answered its Hello
    kOpenSsh,    // OpenSSH's master answered its mux HELLO and ALIVE_CHECK
    kSilent,     // it accepts connections but says nothing in time (a stopped master, a stuck one)
    kOther,      // something else answers, or another user serves it
  };
  Kind kind = Kind::kNothing;
  pid_t pid = 0;       // kMconnect, kOpenSsh: the master's pid
  std::string detail;  // what was seen, for messages
};

// Asks at `path` with both protocols, each answer bounded by `timeout`. Never deletes anything.
SocketAnswer ProbeSocket(const std::string& path, std::chrono::milliseconds timeout);

// "an OpenSSH master (pid 42)", "an mconnect master (pid 7)", "a stale socket", ...
std::string DescribeAnswer(const SocketAnswer& answer);

}  // namespace mconnect::proto
