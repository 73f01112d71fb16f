// The master's own end of a forward: the sockets it listens on (-L, -D) and the ones it connects
// to for connections the server hands over (-R), each a TCP address or a Unix socket path
// (OpenSSH's streamlocal forwards: the port beside the path is openssh::kPortStreamLocal).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

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

// Where a -L or -D forward listens, as ssh decides for its own listeners (channels.c,
// channel_fwd_bind_addr, with GatewayPorts no): no address or "localhost" is every loopback
// address (127.0.0.1 and ::1), "*" every address of each family, anything else that address.
struct BindAddress {
  std::optional<std::string> node;  // nullopt: getaddrinfo's own loopback or wildcard addresses
  bool wildcard = false;
  std::string described;            // for messages: "localhost", "*" or the address
};
BindAddress BindAddressOf(const std::string& listen_host);

struct LocalListener {
  std::vector<UniqueFd> fds;             // one per address; one for a Unix socket
  std::unique_ptr<UnixSocketFile> file;  // set for a Unix socket
};

// Listens on the Unix socket `host` when `port` is kPortStreamLocal, else where BindAddressOf
// says, one socket per address: as ssh does, an address that cannot be bound (its port taken,
// its family missing) is no error while another binds, and each binds `port` on its own (port
// 0: each family gets a port of its own, as with ssh -L 0). A Unix socket is made as ssh makes
// it with its defaults: mode 0600 (StreamLocalBindMask 0177), and an existing file at the path
// is an error (StreamLocalBindUnlink no), never removed.
Result<LocalListener> ListenLocal(const std::string& host, std::uint32_t port);

// Starts a non-blocking connect to host:port, or to the Unix socket `host`. The fd is writable
// once the connect is done; SO_ERROR then says whether it succeeded. Resolves names with
// getaddrinfo, in the loop, as the -R destinations always were and as OpenSSH's ssh resolves a
// remote dynamic forward's (channels.c connect_to_helper): a slow resolver stalls the loop.
Result<UniqueFd> ConnectLocal(const std::string& host, std::uint32_t port);

}  // namespace mconnect::mux
