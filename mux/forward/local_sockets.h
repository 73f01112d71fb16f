// The master's own end of a forward: the sockets it listens on (-L, -D) and the ones it connects
// to for connections the server hands over (-R), each a TCP address or a Unix socket path
// (OpenSSH's streamlocal forwards: the port beside the path is openssh::kPortStreamLocal).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"

namespace mconnect::mux {

// "host:port", or the path alone for a Unix socket.
std::string Endpoint(const std::string& host, std::uint32_t port);

// A Unix socket file the master bound, removed when the listener goes (-O cancel, the master's
// exit) if it is still the master's: a file put in its place since is someone else's. OpenSSH's
// ssh leaves the file behind, and the next forward on the path then fails; we remove only what
// we made.
class UnixSocketFile {
 public:
  UnixSocketFile(std::string path, dev_t device, ino_t inode)
      : path_(std::move(path)), device_(device), inode_(inode) {}
  ~UnixSocketFile();
  UnixSocketFile(const UnixSocketFile&) = delete;
  UnixSocketFile& operator=(const UnixSocketFile&) = delete;

 private:
  std::string path_;
  dev_t device_;
  ino_t inode_;
};

struct LocalListener {
  UniqueFd fd;
  std::unique_ptr<UnixSocketFile> file;  // set for a Unix socket
};

// Listens on host:port, or on the Unix socket `host` when `port` is kPortStreamLocal. A Unix
// socket is made as ssh makes it with its defaults: mode 0600 (StreamLocalBindMask 0177), and an
// existing file at the path is an error (StreamLocalBindUnlink no), never removed.
Result<LocalListener> ListenLocal(const std::string& host, std::uint32_t port);

// Starts a non-blocking connect to host:port, or to the Unix socket `host`. The fd is writable
// once the connect is done; SO_ERROR then says whether it succeeded. Resolves names with
// getaddrinfo, in the loop, as the -R destinations always were and as OpenSSH's ssh resolves a
// remote dynamic forward's (channels.c connect_to_helper): a slow resolver stalls the loop.
Result<UniqueFd> ConnectLocal(const std::string& host, std::uint32_t port);

}  // namespace mconnect::mux
