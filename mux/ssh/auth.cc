#include "mux/ssh/auth.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <set>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <openssl/evp.h>

#include "base/log.h"
#include "base/secret.h"
#include "base/ssh2.h"
#include "base/unique_fd.h"
#include "base/wire.h"
#include "mux/ssh/prompt.h"

namespace mconnect::mux {
namespace {

constexpr std::string_view kDefaultOrder[] = {"publickey", "keyboard-interactive", "password"};

// ---- libssh2's memory ------------------------------------------------------------------------

// libssh2 keeps secrets in blocks it allocates and frees without clearing them: decrypted
// packets (a mosh key in a command's output, a keyboard-interactive answer on its way out),
// passwords, decrypted private keys. Every block it frees or moves is cleared first.
void* Allocate(std::size_t count, void** /*abstract*/) { return std::malloc(count); }
void Free(void* block, void** /*abstract*/) { WipeAndFree(block); }
void* Reallocate(void* block, std::size_t count, void** /*abstract*/) { return WipingRealloc(block, count); }

bool ListHas(std::string_view list, std::string_view method) {
  auto methods = SplitMethods(list);
  return std::find(methods.begin(), methods.end(), method) != methods.end();
}

bool ConnectionBroken(int rc) {
  return rc == LIBSSH2_ERROR_SOCKET_SEND || rc == LIBSSH2_ERROR_SOCKET_RECV || rc == LIBSSH2_ERROR_SOCKET_DISCONNECT ||
         rc == LIBSSH2_ERROR_TIMEOUT || rc == LIBSSH2_ERROR_SOCKET_TIMEOUT || rc == LIBSSH2_ERROR_BAD_SOCKET;
}

// ---- the callbacks libssh2 calls ------------------------------------------------------------

// A publickey query: libssh2 sends the key without a signature and calls this only when the
// server answers that it would take the key (SSH_MSG_USERAUTH_PK_OK). We note that and refuse
// to sign, so that the passphrase is asked only for a key that can work (as ssh does).
extern "C" int NoteAcceptedKey(LIBSSH2_SESSION* /*session*/, unsigned char** /*sig*/, std::size_t* /*sig_len*/,
                               const unsigned char* /*data*/, std::size_t /*data_len*/, void** abstract) {
  *static_cast<bool*>(*abstract) = true;
  return -1;
}

struct KeyboardInteractive {
  const Prompter* prompter = nullptr;
  std::string prefix;  // "(user@host) ", as ssh shows it before each prompt
  int info_requests = 0;
  bool gave_up = false;  // the person did not answer: no further attempt
};

// Gives each answer to libssh2 in a malloc'd block, which libssh2 frees (cleared, while
// Authenticate runs). A prompt nobody answers gets an empty answer.
extern "C" void AnswerPrompts(const char* name, int name_length, const char* instruction, int instruction_length,
                              int count, const LIBSSH2_USERAUTH_KBDINT_PROMPT* prompts,
                              LIBSSH2_USERAUTH_KBDINT_RESPONSE* responses, void** abstract) {
  auto* context = static_cast<KeyboardInteractive*>(*abstract);
  ++context->info_requests;
  if (name_length > 0) context->prompter->Tell(std::string_view(name, static_cast<std::size_t>(name_length)));
  if (instruction_length > 0) {
    context->prompter->Tell(std::string_view(instruction, static_cast<std::size_t>(instruction_length)));
  }
  for (int i = 0; i < count; ++i) {
    SecretString answer;
    if (!context->gave_up) {
      std::string_view text(reinterpret_cast<const char*>(prompts[i].text), prompts[i].length);
      auto asked = context->prompter->Ask(context->prefix + SanitizeForTerminal(text), prompts[i].echo != 0);
      if (asked) {
        answer = std::move(*asked);
      } else {
        log::Info("keyboard-interactive: {}", asked.error().message);
        context->gave_up = true;
      }
    }
    responses[i].text = static_cast<char*>(std::malloc(answer.size() + 1));
    responses[i].length = 0;
    if (responses[i].text == nullptr) continue;
    std::memcpy(responses[i].text, answer.c_str(), answer.size() + 1);
    responses[i].length = static_cast<unsigned>(answer.size());
  }
}

// ---- the methods ----------------------------------------------------------------------------

class Authenticator {
 public:
  Authenticator(LIBSSH2_SESSION* session, const AuthRequest& request)
      : session_(session),
        request_(request),
        prompter_(request.interactive && !request.options.batch_mode ? Prompter::ForThisProcess() : Prompter()) {}

  Result<std::string> Run();

 private:
  enum class Outcome {
    kDone,      // authenticated
    kNotDone,   // this method is used up
    kPartial,   // the server took it but wants another method too (the list was re-read)
    kBroken,    // the connection failed; broken_ says why
  };

  Outcome Try(const std::string& method);
  // Asks the server for its methods (the "none" request): true when that alone authenticated.
  Result<bool> ReadList();
  bool HaveKeyToOffer() const;
  Outcome TryPublicKey();
  Outcome TryAgent();
  // The public halves of the IdentityFile keys (from an OpenSSH private key, else KEY.pub).
  std::vector<std::vector<std::uint8_t>> ConfiguredPublicKeys() const;
  Outcome TryKeyFile(const std::string& file);
  Outcome TryEncryptedKeyFile(const std::string& file, const PrivateKeyInfo& info);
  Outcome TryKeyboardInteractive();
  Outcome TryPassword();

  // After a refusal with return code `rc`: whether the connection broke, or (for a refusal
  // that came after the server had accepted the key and seen the signature) whether it was a
  // partial success, which only the re-read method list tells with libssh2.
  Outcome AfterRefusal(int rc, const std::string& what);
  // Re-reads the server's method list; kPartial when it changed.
  Outcome ReadListAgain(const std::string& what);
  Outcome Succeeded(std::string what);
  Outcome Broken(std::string_view doing);

  // Why nobody is asked, for the failure line.
  std::string NobodyReason() const;
  std::string Who() const { return request_.user + "@" + request_.host; }
  std::string DeniedMessage() const;
  void ShowBanner();

  LIBSSH2_SESSION* session_;
  const AuthRequest& request_;
  Prompter prompter_;
  std::string server_list_;
  bool list_known_ = true;  // false while publickey is offered before the server's list was asked
  std::vector<std::string> done_;      // methods that succeeded (partially), in order
  std::vector<std::string> tried_;     // method names tried, in order, once each
  std::vector<std::string> notes_;     // why a key or method did not help
  std::set<std::string> used_keys_;    // key files offered, so a partial success does not reuse them
  int agent_keys_refused_ = 0;
  bool any_key_ = false;
  std::string broken_;
};

void NoteOnce(std::vector<std::string>& list, const std::string& item) {
  if (std::find(list.begin(), list.end(), item) == list.end()) list.push_back(item);
}

Result<std::string> Authenticator::Run() {
  std::vector<std::string> order = MethodOrder(request_.options);
  // Asking the server for its methods (the "none" request) costs a round trip. When publickey
  // comes first and there is a key to offer, offer it at once, as nearly every server takes
  // keys; the list is asked for only if the keys do not do.
  const bool optimistic = !order.empty() && order.front() == "publickey" && HaveKeyToOffer();
  if (optimistic) {
    server_list_ = "publickey";
    list_known_ = false;
  } else if (auto read = ReadList(); !read) {
    return Fail(read.error());
  } else if (*read) {
    return std::string("none");
  }

  std::set<std::string> used;  // for the current server list
  while (true) {
    auto next = std::find_if(order.begin(), order.end(), [&](const std::string& method) {
      return !used.contains(method) && ListHas(server_list_, method);
    });
    if (next == order.end() && !list_known_) {
      auto read = ReadList();
      if (!read) return Fail(read.error());
      if (*read) return fmt::format("{}", fmt::join(done_, " + "));
      if (!ListHas(server_list_, "publickey")) {
        // The server takes no keys: the keys offered blindly say nothing about why it failed.
        std::erase(tried_, "publickey");
        notes_.clear();
      }
      continue;
    }
    if (next == order.end()) break;
    used.insert(*next);
    switch (Try(*next)) {
      case Outcome::kDone:
        if (!list_known_) ShowBanner();  // a server's banner comes with its first answer
        return fmt::format("{}", fmt::join(done_, " + "));
      case Outcome::kBroken:
        return Fail("{}", broken_);
      case Outcome::kPartial:
        // A new list: start over from the first preferred method, as ssh does.
        used.clear();
        break;
      case Outcome::kNotDone:
        break;
    }
  }
  return Fail("{}", DeniedMessage());
}

Authenticator::Outcome Authenticator::Try(const std::string& method) {
  if (method == "publickey") return TryPublicKey();
  if (!prompter_.CanAsk()) {
    NoteOnce(notes_, fmt::format("{} skipped ({})", method, NobodyReason()));
    return Outcome::kNotDone;
  }
  if (request_.options.password_prompts <= 0) {
    NoteOnce(notes_, fmt::format("{} skipped (NumberOfPasswordPrompts is 0)", method));
    return Outcome::kNotDone;
  }
  if (method == "keyboard-interactive") return TryKeyboardInteractive();
  return TryPassword();
}

Authenticator::Outcome Authenticator::TryPublicKey() {
  NoteOnce(tried_, "publickey");
  if (Outcome outcome = TryAgent(); outcome != Outcome::kNotDone) return outcome;
  for (const auto& file : request_.identity_files) {
    if (Outcome outcome = TryKeyFile(file); outcome != Outcome::kNotDone) return outcome;
  }
  if (agent_keys_refused_ > 0) {
    notes_.push_back(fmt::format("{} agent key{} refused", agent_keys_refused_, agent_keys_refused_ == 1 ? "" : "s"));
    agent_keys_refused_ = 0;
  }
  if (!any_key_) NoteOnce(notes_, "no key to offer (no ssh-agent, and none of the IdentityFile entries exists)");
  return Outcome::kNotDone;
}

std::vector<std::vector<std::uint8_t>> Authenticator::ConfiguredPublicKeys() const {
  std::vector<std::vector<std::uint8_t>> keys;
  for (const auto& file : request_.identity_files) {
    std::vector<std::uint8_t> blob;
    if (auto contents = ReadKeyFile(file)) {
      if (auto info = InspectPrivateKey(*contents)) blob = std::move(info->public_blob);
      Wipe(*contents);
    }
    if (blob.empty()) {
      auto line = ReadKeyFile(file + ".pub");
      auto parsed = line ? ParsePublicKeyLine(*line) : Fail(line.error());
      if (parsed) blob = std::move(*parsed);
    }
    if (!blob.empty()) keys.push_back(std::move(blob));
  }
  return keys;
}

Authenticator::Outcome Authenticator::TryAgent() {
  std::string socket = request_.identity_agent == "SSH_AUTH_SOCK" ? "" : request_.identity_agent;
  bool use_agent = socket != "none" && (!socket.empty() || std::getenv("SSH_AUTH_SOCK"));
  if (!use_agent) return Outcome::kNotDone;
  // IdentitiesOnly, as ssh reads it: the agent still signs, but only for the IdentityFile keys
  // (so an encrypted key file whose key the agent holds needs no passphrase).
  std::vector<std::vector<std::uint8_t>> allowed;
  if (request_.identities_only) {
    allowed = ConfiguredPublicKeys();
    if (allowed.empty()) return Outcome::kNotDone;
  }
  Ssh2Agent agent(libssh2_agent_init(session_));
  if (!agent) return Outcome::kNotDone;
  if (!socket.empty()) libssh2_agent_set_identity_path(agent.get(), socket.c_str());
  if (libssh2_agent_connect(agent.get()) != 0 || libssh2_agent_list_identities(agent.get()) != 0) {
    log::Info("ssh-agent not usable: {}", Ssh2LastError(session_));
    return Outcome::kNotDone;
  }
  libssh2_agent_publickey* identity = nullptr;
  while (libssh2_agent_get_identity(agent.get(), &identity, identity) == 0) {
    std::string label = fmt::format("agent key \"{}\"", SanitizeForTerminal(identity->comment ? identity->comment : ""));
    if (used_keys_.contains(label)) continue;
    if (request_.identities_only &&
        std::ranges::none_of(allowed, [identity](const std::vector<std::uint8_t>& key) {
          return key.size() == identity->blob_len && std::equal(key.begin(), key.end(), identity->blob);
        })) {
      continue;
    }
    used_keys_.insert(label);
    any_key_ = true;
    int rc = libssh2_agent_userauth(agent.get(), request_.user.c_str(), identity);
    if (rc == 0) return Succeeded("publickey (" + label + ")");
    log::Info("{} refused: {}", label, Ssh2LastError(session_));
    ++agent_keys_refused_;
    if (Outcome outcome = AfterRefusal(rc, "publickey (" + label + ")"); outcome != Outcome::kNotDone) return outcome;
  }
  return Outcome::kNotDone;
}

Authenticator::Outcome Authenticator::TryKeyFile(const std::string& file) {
  if (::access(file.c_str(), R_OK) != 0 || used_keys_.contains(file)) return Outcome::kNotDone;
  used_keys_.insert(file);
  any_key_ = true;
  auto contents = ReadKeyFile(file);
  auto info = contents ? InspectPrivateKey(*contents) : Fail(contents.error());
  if (contents) Wipe(*contents);
  if (info && info->encrypted) return TryEncryptedKeyFile(file, *info);
  if (!info) log::Info("{}: {}; offering it anyway", file, info.error().message);

  std::string public_file = file + ".pub";
  bool has_public = ::access(public_file.c_str(), R_OK) == 0;
  // An empty passphrase rather than none: OpenSSL would otherwise ask on the terminal itself
  // for a PEM key we did not recognise as encrypted.
  int rc = libssh2_userauth_publickey_fromfile_ex(session_, request_.user.c_str(),
                                                  static_cast<unsigned>(request_.user.size()),
                                                  has_public ? public_file.c_str() : nullptr, file.c_str(), "");
  if (rc == 0) return Succeeded("publickey (" + file + ")");
  log::Info("key {} refused: {}", file, Ssh2LastError(session_));
  notes_.push_back(file + (rc == LIBSSH2_ERROR_FILE ? " (unreadable)" : " (refused)"));
  return AfterRefusal(rc, "publickey (" + file + ")");
}

Authenticator::Outcome Authenticator::TryEncryptedKeyFile(const std::string& file, const PrivateKeyInfo& info) {
  if (!prompter_.CanAsk()) {
    notes_.push_back(fmt::format("{} (encrypted; {})", file, NobodyReason()));
    return Outcome::kNotDone;
  }
  // Would the server take it? Asked without the private half when the public one is known.
  std::vector<std::uint8_t> blob = info.public_blob;
  if (blob.empty()) {
    auto line = ReadKeyFile(file + ".pub");
    auto parsed = line ? ParsePublicKeyLine(*line) : Fail(line.error());
    if (parsed) blob = std::move(*parsed);
  }
  if (!blob.empty()) {
    bool accepted = false;
    void* note = &accepted;
    int rc = libssh2_userauth_publickey(session_, request_.user.c_str(), blob.data(), blob.size(), NoteAcceptedKey,
                                        &note);
    if (rc == 0) return Succeeded("publickey (" + file + ")");  // without a signature (!)
    if (ConnectionBroken(rc)) return Broken("offering a key");
    if (!accepted && rc == LIBSSH2_ERROR_AUTHENTICATION_FAILED) {
      log::Info("key {} refused before its passphrase was asked: {}", file, Ssh2LastError(session_));
      notes_.push_back(file + " (refused)");
      return Outcome::kNotDone;
    }
    if (!accepted) log::Info("could not ask about key {} first ({}); asking its passphrase", file, Ssh2LastError(session_));
  }
  std::string question = fmt::format("Enter passphrase for key '{}': ", file);
  for (int attempt = 0; attempt < request_.options.password_prompts; ++attempt) {
    auto passphrase = prompter_.Ask(question, false);
    if (!passphrase || passphrase->empty()) {
      if (!passphrase) log::Info("{}", passphrase.error().message);
      notes_.push_back(file + " (no passphrase given)");
      return Outcome::kNotDone;
    }
    // Without the public key file, libssh2 opens the private key (and so checks the
    // passphrase) before it sends anything: a wrong passphrase costs no attempt at the server.
    int rc = libssh2_userauth_publickey_fromfile_ex(session_, request_.user.c_str(),
                                                    static_cast<unsigned>(request_.user.size()), nullptr,
                                                    file.c_str(), passphrase->c_str());
    if (rc == 0) return Succeeded("publickey (" + file + ")");
    if (rc == LIBSSH2_ERROR_FILE || rc == LIBSSH2_ERROR_KEYFILE_AUTH_FAILED) {
      log::Info("key {}: wrong passphrase ({})", file, Ssh2LastError(session_));
      continue;
    }
    log::Info("key {} refused: {}", file, Ssh2LastError(session_));
    notes_.push_back(file + " (refused)");
    return AfterRefusal(rc, "publickey (" + file + ")");
  }
  notes_.push_back(request_.options.password_prompts > 0 ? file + " (wrong passphrase)"
                                                         : file + " (encrypted; NumberOfPasswordPrompts is 0)");
  return Outcome::kNotDone;
}

Authenticator::Outcome Authenticator::TryKeyboardInteractive() {
  NoteOnce(tried_, "keyboard-interactive");
  KeyboardInteractive context;
  context.prompter = &prompter_;
  context.prefix = "(" + Who() + ") ";
  void** abstract = libssh2_session_abstract(session_);
  for (int attempt = 1; attempt <= request_.options.password_prompts; ++attempt) {
    // ssh's rule: a server that sent no question on the first attempt gets no second one.
    if (attempt > 1 && context.info_requests == 0) break;
    void* saved = std::exchange(*abstract, &context);
    int rc = libssh2_userauth_keyboard_interactive_ex(session_, request_.user.c_str(),
                                                      static_cast<unsigned>(request_.user.size()), AnswerPrompts);
    *abstract = saved;
    if (rc == 0) return Succeeded("keyboard-interactive");
    if (ConnectionBroken(rc)) return Broken("keyboard-interactive authentication");
    log::Info("keyboard-interactive attempt {} failed: {}", attempt, Ssh2LastError(session_));
    if (context.gave_up) break;
  }
  return Outcome::kNotDone;
}

Authenticator::Outcome Authenticator::TryPassword() {
  NoteOnce(tried_, "password");
  std::string question = fmt::format("{}'s password: ", Who());
  for (int attempt = 1; attempt <= request_.options.password_prompts; ++attempt) {
    if (attempt > 1) prompter_.Tell("Permission denied, please try again.");
    auto password = prompter_.Ask(question, false);
    if (!password) {
      log::Info("password: {}", password.error().message);
      break;
    }
    int rc = libssh2_userauth_password_ex(session_, request_.user.c_str(), static_cast<unsigned>(request_.user.size()),
                                          password->c_str(), static_cast<unsigned>(password->size()), nullptr);
    if (rc == 0) return Succeeded("password");
    if (rc == LIBSSH2_ERROR_PASSWORD_EXPIRED) {
      broken_ = fmt::format("{}: the server requires a new password before it lets you in; change it with ssh {} first",
                            Who(), Who());
      return Outcome::kBroken;
    }
    if (ConnectionBroken(rc)) return Broken("password authentication");
    log::Info("password attempt {} failed: {}", attempt, Ssh2LastError(session_));
  }
  return Outcome::kNotDone;
}

Authenticator::Outcome Authenticator::AfterRefusal(int rc, const std::string& what) {
  if (ConnectionBroken(rc)) return Broken("publickey authentication");
  // PUBLICKEY_UNVERIFIED comes after the signature was sent (or the reply never came): the
  // one case where a refusal may really be a partial success.
  if (rc == LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED) return ReadListAgain(what);
  return Outcome::kNotDone;
}

Result<bool> Authenticator::ReadList() {
  const char* list = libssh2_userauth_list(session_, request_.user.c_str(), static_cast<unsigned>(request_.user.size()));
  list_known_ = true;
  if (list == nullptr) {
    if (libssh2_userauth_authenticated(session_)) return true;
    return Fail("{}: the server offered no authentication methods: {}", Who(), Ssh2LastError(session_));
  }
  server_list_ = list;
  log::Info("server offers authentication methods: {}", server_list_);
  ShowBanner();
  return false;
}

bool Authenticator::HaveKeyToOffer() const {
  if (!request_.options.pubkey) return false;
  std::string socket = request_.identity_agent == "SSH_AUTH_SOCK" ? "" : request_.identity_agent;
  if (socket != "none" && (!socket.empty() || std::getenv("SSH_AUTH_SOCK"))) return true;
  return std::ranges::any_of(request_.identity_files,
                             [](const std::string& file) { return ::access(file.c_str(), R_OK) == 0; });
}

Authenticator::Outcome Authenticator::ReadListAgain(const std::string& what) {
  const char* list = libssh2_userauth_list(session_, request_.user.c_str(), static_cast<unsigned>(request_.user.size()));
  if (list == nullptr) {
    if (libssh2_userauth_authenticated(session_)) return Succeeded(what);
    return Broken("authentication");
  }
  if (!list_known_) {
    // Offered before the list was known: a signed key the server refused is taken to be a
    // partial success (the other cause, a bad signature, is no server's habit).
    list_known_ = true;
    log::Info("{} accepted with partial success; the server now wants: {}", what, list);
    done_.push_back(what);
    server_list_ = list;
    ShowBanner();
    return Outcome::kPartial;
  }
  if (server_list_ == list) return Outcome::kNotDone;
  log::Info("{} accepted with partial success; the server now wants: {}", what, list);
  done_.push_back(what);
  server_list_ = list;
  return Outcome::kPartial;
}

Authenticator::Outcome Authenticator::Succeeded(std::string what) {
  log::Info("authenticated with {}", what);
  done_.push_back(std::move(what));
  return Outcome::kDone;
}

Authenticator::Outcome Authenticator::Broken(std::string_view doing) {
  broken_ = fmt::format("{}: connection lost during {}: {}", Who(), doing, Ssh2LastError(session_));
  return Outcome::kBroken;
}

std::string Authenticator::NobodyReason() const {
  if (request_.options.batch_mode) return "BatchMode is on";
  if (!request_.interactive) return "nobody is there to answer";
  return "no terminal to ask on, and SSH_ASKPASS needs DISPLAY or SSH_ASKPASS_REQUIRE=force";
}

std::string Authenticator::DeniedMessage() const {
  // ssh's words, with the methods tried (or, when none could be, the server's list) and then
  // what became of each key and skipped method.
  std::string message = tried_.empty()
                            ? fmt::format("{}: Permission denied (nothing to try; the server allows {})", Who(), server_list_)
                            : fmt::format("{}: Permission denied ({})", Who(), fmt::join(tried_, ","));
  if (!done_.empty()) message += fmt::format("; after {} the server wants {}", fmt::join(done_, " + "), server_list_);
  for (const auto& note : notes_) message += "; " + note;
  return message;
}

void Authenticator::ShowBanner() {
  char* banner = nullptr;
  if (libssh2_userauth_banner(session_, &banner) == 0 && banner != nullptr) prompter_.Tell(banner);
}

}  // namespace

std::vector<std::string> SplitMethods(std::string_view list) {
  std::vector<std::string> methods;
  while (!list.empty()) {
    std::size_t comma = list.find(',');
    std::string_view name = list.substr(0, comma);
    if (!name.empty()) methods.emplace_back(name);
    list.remove_prefix(comma == std::string_view::npos ? list.size() : comma + 1);
  }
  return methods;
}

std::vector<std::string> MethodOrder(const AuthOptions& options) {
  std::vector<std::string> order;
  auto enabled = [&options](std::string_view method) {
    return (method == "publickey" && options.pubkey) || (method == "keyboard-interactive" && options.kbd_interactive) ||
           (method == "password" && options.password);
  };
  auto add = [&](std::string_view method) {
    if (enabled(method) && std::find(order.begin(), order.end(), method) == order.end()) order.emplace_back(method);
  };
  if (options.preferred.empty()) {
    for (auto method : kDefaultOrder) add(method);
  } else {
    for (const auto& method : options.preferred) add(method);
  }
  return order;
}

Result<std::string> Authenticate(LIBSSH2_SESSION* session, const AuthRequest& request) {
  // Passphrases and passwords pass through copies we do not see (OpenSSL's and libssh2's
  // temporaries, strings freed on the way): freed blocks are cleared while this runs, and the
  // stack it used once it is done.
  WipeFrees wipe_frees;
  auto result = Authenticator(session, request).Run();
  WipeStack();
  return result;
}

LIBSSH2_SESSION* NewSession() { return libssh2_session_init_ex(Allocate, Free, Reallocate, nullptr); }

}  // namespace mconnect::mux
