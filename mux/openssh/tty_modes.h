// The terminal modes of a pty request (RFC 4254 section 8): the client's termios as opcode +
// uint32 pairs, so the remote pty behaves like the local terminal (erase key, echo, signals).
// Pure: a termios in, bytes out.
#pragma once

#include <termios.h>

#include <cstddef>
#include <string>

namespace mconnect::mux {

// At most `max_bytes`, the most useful modes first (the erase and interrupt keys, echo, signals,
// UTF-8, CR/NL mapping), always ending with the speeds and TTY_OP_END.
std::string EncodeTtyModes(const termios& modes, std::size_t max_bytes);

}  // namespace mconnect::mux
