#include "mux/openssh/requests.h"

#include <fmt/format.h>

namespace mconnect::mux {

bool SessionEnvEntryValid(std::string_view entry) {
  std::size_t equals = entry.find('=');
  return equals != std::string_view::npos && equals != 0 && equals <= kMaxEnvNameBytes &&
         entry.size() <= kMaxRequestBytes;
}

std::expected<SessionRequest, std::string> SessionFromRequest(const openssh::NewSession& request) {
  if (request.command.size() > kMaxRequestBytes) {
    return std::unexpected(fmt::format("the {} is {} bytes long: too long for one SSH packet (at most {} bytes)",
                                       request.subsystem ? "subsystem name" : "command", request.command.size(),
                                       kMaxRequestBytes));
  }
  SessionRequest session;
  // libssh2 caps the terminal name and modes at 256 bytes: a longer name could never get a pty.
  session.term = request.term.substr(0, 64);
  session.command = request.command;
  session.subsystem = request.subsystem;
  session.want_tty = request.want_tty;
  session.forward_agent = request.want_agent;
  session.want_x11 = request.want_x11;
  for (const auto& entry : request.env) {
    if (session.env.size() == kMaxSessionEnv) break;
    if (SessionEnvEntryValid(entry)) session.env.push_back(entry);
  }
  return session;
}

std::optional<std::string> InvalidStdioForward(const openssh::NewStdioForward& request) {
  if (request.port == openssh::kPortStreamLocal || request.port == 0 || request.port > 65535) {
    return "-W needs a host and a TCP port";
  }
  if (request.host.empty() || request.host.size() > kMaxHostBytes) return "-W needs a host name of 1 to 1024 bytes";
  return std::nullopt;
}

std::optional<std::string> InvalidForward(const openssh::ForwardSpec& spec) {
  if (auto reason = openssh::InvalidForwardReason(spec)) return std::string(*reason);
  if (spec.listen_host.size() > kMaxHostBytes || spec.connect_host.size() > kMaxHostBytes) {
    return fmt::format("a forward's host or path is longer than {} bytes", kMaxHostBytes);
  }
  // The Unix sockets the master itself listens on (-L PATH:...) or connects to (-R ...:PATH).
  const bool local_listen = spec.type == openssh::kMuxFwdLocal && spec.listen_port == openssh::kPortStreamLocal;
  const bool local_connect = spec.type == openssh::kMuxFwdRemote && spec.connect_port == openssh::kPortStreamLocal;
  const std::string* path = local_listen ? &spec.listen_host : local_connect ? &spec.connect_host : nullptr;
  if (path != nullptr && (path->empty() || path->size() > kMaxUnixPathBytes)) {
    return fmt::format("a Unix socket path here must be 1 to {} bytes", kMaxUnixPathBytes);
  }
  return std::nullopt;
}

}  // namespace mconnect::mux
