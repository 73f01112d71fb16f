#include "mux/openssh/tty_modes.h"

#include <gtest/gtest.h>

#include <map>

#include "base/wire.h"

namespace mconnect::mux {
namespace {

termios Sample() {
  termios modes{};
  modes.c_cc[VERASE] = 0x7f;
  modes.c_cc[VINTR] = 0x03;
  modes.c_lflag = ECHO | ICANON | ISIG;
  modes.c_iflag = ICRNL | IUTF8;
  modes.c_cflag = CS8;
  cfsetispeed(&modes, B38400);
  cfsetospeed(&modes, B38400);
  return modes;
}

// opcode -> value, checking the structure on the way.
std::map<int, std::uint32_t> Decode(const std::string& bytes) {
  std::map<int, std::uint32_t> values;
  WireReader reader(std::span(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
  while (true) {
    auto opcode = reader.U8();
    EXPECT_TRUE(opcode.has_value());
    if (!opcode || *opcode == 0) break;
    auto value = reader.U32();
    EXPECT_TRUE(value.has_value());
    values[*opcode] = value.value_or(0);
  }
  EXPECT_TRUE(reader.empty()) << "TTY_OP_END is the last byte";
  return values;
}

TEST(TtyModes, CarriesTheKeysAndFlagsThatMatter) {
  auto values = Decode(EncodeTtyModes(Sample(), 256));
  EXPECT_EQ(values[3], 0x7fu);   // VERASE
  EXPECT_EQ(values[1], 0x03u);   // VINTR
  EXPECT_EQ(values[53], 1u);     // ECHO
  EXPECT_EQ(values[51], 1u);     // ICANON
  EXPECT_EQ(values[42], 1u);     // IUTF8
  EXPECT_EQ(values[72], 0u);     // ONLCR not set
  EXPECT_EQ(values[91], 1u);     // CS8
  EXPECT_EQ(values[128], 38400u);
  EXPECT_EQ(values[129], 38400u);
}

TEST(TtyModes, StaysWithinTheBudgetAndKeepsTheSpeeds) {
  for (std::size_t budget : {16u, 40u, 100u, 241u, 256u}) {
    std::string bytes = EncodeTtyModes(Sample(), budget);
    EXPECT_LE(bytes.size(), budget);
    auto values = Decode(bytes);
    EXPECT_EQ(values.count(128), 1u) << budget;
  }
}

}  // namespace
}  // namespace mconnect::mux
