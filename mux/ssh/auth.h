// User authentication of a fresh SSH session, the way OpenSSH's ssh does it: the methods in
// PreferredAuthentications order (default publickey, keyboard-interactive, password), each only
// when enabled and when the server lists it, the list read again after a partial success
// (multi-factor: publickey, then keyboard-interactive). Publickey tries the agent's keys, then
// each IdentityFile; an encrypted key's passphrase is asked (only once the server has said it
// would take that key, when its public half is known), up to NumberOfPasswordPrompts times.
// Nothing is asked in BatchMode or when nobody is there (a reconnect); methods that need a
// person are then skipped. Secrets are cleared from memory after use, also from the blocks
// freed and the stack used while authenticating (base/secret.h), and from every block libssh2
// frees (see NewSession).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <libssh2.h>

#include "base/result.h"
#include "mux/ssh/key_file.h"

namespace mconnect::mux {

// The authentication settings of ssh_config(5), as `ssh -G` prints them.
struct AuthOptions {
  // PreferredAuthentications; empty: OpenSSH's default order. Names other than publickey,
  // keyboard-interactive and password are ignored.
  std::vector<std::string> preferred;
  bool pubkey = true;           // PubkeyAuthentication
  bool kbd_interactive = true;  // KbdInteractiveAuthentication
  bool password = true;         // PasswordAuthentication
  int password_prompts = 3;     // NumberOfPasswordPrompts
  bool batch_mode = false;      // BatchMode: nobody is ever asked anything
};

// Splits "publickey,password" into its names.
std::vector<std::string> SplitMethods(std::string_view list);

// The methods to try, in order: `preferred` (or the default order) filtered by the switches.
std::vector<std::string> MethodOrder(const AuthOptions& options);

struct AuthRequest {
  std::string user;
  std::string host;  // as prompts and messages name it: HostKeyAlias if set, else HostName
  std::vector<std::string> identity_files;
  bool identities_only = false;
  std::string identity_agent;  // socket path; empty: $SSH_AUTH_SOCK; "none": no agent
  AuthOptions options;
  bool interactive = true;  // false: nobody is there to answer (reconnects, overflow connections)
};

// Authenticates `session` (handshake and host key done). Returns how, e.g.
// "publickey (/home/u/.ssh/id_ed25519)" or "publickey (agent key \"u@h\") + keyboard-interactive".
// The error is one line: "u@h: Permission denied (publickey,password); ..." naming what was
// tried and why each key was not used, or the reason the connection broke.
Result<std::string> Authenticate(LIBSSH2_SESSION* session, const AuthRequest& request);

// A libssh2 session whose allocator clears every block libssh2 frees or moves: libssh2 frees
// without clearing them the buffers that held keyboard-interactive answers, passwords,
// decrypted keys, and every decrypted packet (mosh-server's output with the session key).
// Always, not only while a secret is expected: a packet can be freed far from where it was read
// (a channel closed with data unread). Measured: about 2% more master CPU for 500 MiB through
// a channel (clearing is a memset of what was decrypted), no throughput change.
LIBSSH2_SESSION* NewSession();

}  // namespace mconnect::mux
