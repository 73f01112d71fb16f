#include "mux/openssh/tty_modes.h"

#include <cstdint>

#include "base/wire.h"

namespace mconnect::mux {
namespace {

struct CharMode {
  std::uint8_t opcode;
  int index;
};
struct FlagMode {
  std::uint8_t opcode;
  tcflag_t termios::*field;
  tcflag_t bit;
};

// Most important first: libssh2 1.11 refuses a pty request whose terminal name and modes
// exceed 256 bytes together, so the encoder stops where the budget ends.
constexpr CharMode kChars[] = {
    {1, VINTR},  {2, VQUIT},   {3, VERASE},    {4, VKILL},  {5, VEOF},   {10, VSUSP},  {13, VWERASE},
    {14, VLNEXT}, {12, VREPRINT}, {8, VSTART}, {9, VSTOP}, {6, VEOL},   {7, VEOL2},   {18, VDISCARD},
};

const FlagMode kFlags[] = {
    {36, &termios::c_iflag, ICRNL},   {38, &termios::c_iflag, IXON},    {42, &termios::c_iflag, IUTF8},
    {50, &termios::c_lflag, ISIG},    {51, &termios::c_lflag, ICANON},  {53, &termios::c_lflag, ECHO},
    {54, &termios::c_lflag, ECHOE},   {55, &termios::c_lflag, ECHOK},   {59, &termios::c_lflag, IEXTEN},
    {60, &termios::c_lflag, ECHOCTL}, {61, &termios::c_lflag, ECHOKE},  {70, &termios::c_oflag, OPOST},
    {72, &termios::c_oflag, ONLCR},   {40, &termios::c_iflag, IXOFF},   {39, &termios::c_iflag, IXANY},
    {41, &termios::c_iflag, IMAXBEL}, {56, &termios::c_lflag, ECHONL},  {57, &termios::c_lflag, NOFLSH},
    {58, &termios::c_lflag, TOSTOP},  {30, &termios::c_iflag, IGNPAR},  {31, &termios::c_iflag, PARMRK},
    {32, &termios::c_iflag, INPCK},   {33, &termios::c_iflag, ISTRIP},  {34, &termios::c_iflag, INLCR},
    {35, &termios::c_iflag, IGNCR},   {73, &termios::c_oflag, OCRNL},   {74, &termios::c_oflag, ONOCR},
    {75, &termios::c_oflag, ONLRET},  {92, &termios::c_cflag, PARENB},  {93, &termios::c_cflag, PARODD},
};

std::uint32_t Baud(speed_t speed) {
  switch (speed) {
    case B9600: return 9600;
    case B19200: return 19200;
    case B38400: return 38400;
    case B57600: return 57600;
    case B115200: return 115200;
    case B230400: return 230400;
    default: return 38400;
  }
}

}  // namespace

std::string EncodeTtyModes(const termios& modes, std::size_t max_bytes) {
  // Each mode is 5 bytes; the speeds and CS8 (10 + 5) and TTY_OP_END (1) always fit.
  WireWriter out(max_bytes);
  std::size_t budget = max_bytes >= 16 ? max_bytes - 16 : 0;
  auto add = [&](std::uint8_t opcode, std::uint32_t value) {
    if (out.size() + 5 > budget) return;
    out.U8(opcode);
    out.U32(value);
  };
  // CS8 is a value of the CSIZE field, not a single bit.
  std::uint32_t cs8 = (modes.c_cflag & CSIZE) == CS8 ? 1 : 0;
  for (const auto& mode : kChars) add(mode.opcode, modes.c_cc[mode.index]);
  for (const auto& mode : kFlags) add(mode.opcode, (modes.*mode.field & mode.bit) != 0 ? 1 : 0);
  budget = max_bytes;
  add(91, cs8);
  add(128, Baud(cfgetispeed(&modes)));  // TTY_OP_ISPEED
  add(129, Baud(cfgetospeed(&modes)));  // TTY_OP_OSPEED
  out.U8(0);                            // TTY_OP_END
  return std::string(out.data().begin(), out.data().end());
}

}  // namespace mconnect::mux
