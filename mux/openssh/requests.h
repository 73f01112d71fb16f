// What the master does with a decoded OpenSSH mux request, before any channel: the session it
// asks for, bounded, or the one line that says why it cannot run. Pure: no fd, no libssh2, no
// clock, so that a fuzzer drives it with every value a decoded frame may hold.
//
// The codec (mux/openssh/codec.h) caps what a frame may carry (256 KiB, 4096 env strings);
// these caps are what one SSH packet and a few round trips can carry: libssh2 1.11 sends packets
// of at most 35000 bytes, and asks for a reply to every environment variable it sets.
#pragma once

#include <cstddef>
#include <expected>
#include <optional>
#include <string>
#include <string_view>

#include "mux/openssh/codec.h"
#include "mux/openssh/session.h"

namespace mconnect::mux {

// A command, subsystem name or environment entry, and a -W or forward host, each fit one packet.
inline constexpr std::size_t kMaxRequestBytes = 32 * 1024;
inline constexpr std::size_t kMaxHostBytes = 1024;
// A Unix socket path the master binds or connects to: sockaddr_un's sun_path less its NUL.
inline constexpr std::size_t kMaxUnixPathBytes = 107;
// Environment entries passed on (each costs a round trip before the command starts); the
// client's further entries are dropped, as OpenSSH's master drops those past its own cap.
inline constexpr std::size_t kMaxSessionEnv = 64;
// The longest variable name passed on: OpenSSH's mux drops a name of 1024 bytes or more.
inline constexpr std::size_t kMaxEnvNameBytes = 1023;

// Whether an environment entry a client sends is passed on to the server as an "env" request:
// NAME=VALUE with a name of 1 to kMaxEnvNameBytes bytes, at most kMaxRequestBytes in all (what
// OpenSSH's master checks). Which names come is the client's choice: OpenSSH's client sends what
// its SendEnv patterns match (after `-PATTERN` removals) and then its SetEnv entries; sshd's
// AcceptEnv decides what the session gets.
bool SessionEnvEntryValid(std::string_view entry);

// The session a NEW_SESSION asks for (without what the lent terminal tells: modes, size), or
// why it cannot run, as one line the client's stderr shows. Its env holds the client's valid
// entries in the client's order, duplicates included (the server applies them in turn), up to
// kMaxSessionEnv of them.
std::expected<SessionRequest, std::string> SessionFromRequest(const openssh::NewSession& request);

// Why a stdio forward (ssh -W) or a port forward cannot be served; nullopt when it can.
std::optional<std::string> InvalidStdioForward(const openssh::NewStdioForward& request);
std::optional<std::string> InvalidForward(const openssh::ForwardSpec& spec);

}  // namespace mconnect::mux
