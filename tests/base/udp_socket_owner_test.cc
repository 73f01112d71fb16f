// Reading /proc/net/udp{,6}: which users' sockets could have sent a datagram from an address.
#include "base/udp_socket_owner.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <string_view>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/unique_fd.h"

namespace mconnect {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr uid_t kNobody = 65534;

sockaddr_in Loopback(std::uint16_t port, std::uint32_t address = INADDR_LOOPBACK) {
  sockaddr_in result{};
  result.sin_family = AF_INET;
  result.sin_addr.s_addr = htonl(address);
  result.sin_port = htons(port);
  return result;
}

// An address word as the kernel prints it: the four bytes, in network order, read as this
// machine reads an integer.
std::string KernelHex(std::uint32_t host_order_address) {
  std::uint32_t raw = htonl(host_order_address);
  return fmt::format("{:08X}", raw);
}

constexpr std::string_view kUdpHeader =
    "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref "
    "pointer drops            \n";
constexpr std::string_view kUdp6Header =
    "  sl  local_address                         remote_address                        st tx_queue rx_queue tr "
    "tm->when retrnsmt   uid  timeout inode ref pointer drops\n";

// One line of /proc/net/udp (or udp6, with a 32-digit address), as Linux 6.1 prints it.
std::string UdpLine(int slot, const std::string& address_hex, std::uint16_t port, const std::string& uid) {
  std::string zeros(address_hex.size(), '0');
  return fmt::format("{:5d}: {}:{:04X} {}:0000 07 00000000:00000000 00:00000000 00000000 {:>5}        0 41701 2 "
                     "000000001725947b 0         \n",
                     slot, address_hex, port, zeros, uid);
}

TEST(RelaySenderOwnerTest, FindsTheOwnersOfTheSourcePort) {
  const std::string table = std::string(kUdpHeader) +                         //
                            UdpLine(2706, KernelHex(0), 40000, "1000") +      // 0.0.0.0:40000
                            UdpLine(12666, KernelHex(0x7F000001), 40001, "0") +  // 127.0.0.1:40001
                            UdpLine(12667, KernelHex(0x7F000002), 40002, "7") +  // 127.0.0.2:40002
                            UdpLine(9, KernelHex(0x7F000001), 40003, "65534");
  auto wildcard = UdpSenderUids(table, Loopback(40000));
  ASSERT_TRUE(wildcard) << wildcard.error().message;
  EXPECT_THAT(*wildcard, ElementsAre(1000u));
  EXPECT_THAT(*UdpSenderUids(table, Loopback(40001)), ElementsAre(0u));
  EXPECT_THAT(*UdpSenderUids(table, Loopback(40003)), ElementsAre(kNobody));
  // Bound to another address: it cannot have sent from 127.0.0.1.
  EXPECT_THAT(*UdpSenderUids(table, Loopback(40002)), IsEmpty());
  EXPECT_THAT(*UdpSenderUids(table, Loopback(40002, 0x7F000002)), ElementsAre(7u));
  EXPECT_THAT(*UdpSenderUids(table, Loopback(40004)), IsEmpty());
  EXPECT_THAT(*UdpSenderUids(kUdpHeader, Loopback(40000)), IsEmpty());
}

TEST(RelaySenderOwnerTest, SeesEveryCandidateSoThatOneStrangerIsEnough) {
  // Two sockets may share a port (SO_REUSEADDR on both): each could be the sender.
  const std::string table = std::string(kUdpHeader) + UdpLine(1, KernelHex(0), 40000, "0") +
                            UdpLine(2, KernelHex(0x7F000001), 40000, "1000");
  EXPECT_THAT(*UdpSenderUids(table, Loopback(40000)), ElementsAre(0u, 1000u));
}

TEST(RelaySenderOwnerTest, ReadsDualStackSocketsFromUdp6) {
  const std::string any6(32, '0');
  const std::string mapped = KernelHex(0) + KernelHex(0) + KernelHex(0x0000FFFF) + KernelHex(0x7F000001);
  const std::string mapped_any = KernelHex(0) + KernelHex(0) + KernelHex(0x0000FFFF) + KernelHex(0);
  const std::string localhost6 = KernelHex(0) + KernelHex(0) + KernelHex(0) + KernelHex(1);
  const std::string table = std::string(kUdp6Header) + UdpLine(1, any6, 40000, "1000") +
                            UdpLine(2, mapped, 40001, "1001") + UdpLine(3, mapped_any, 40002, "1002") +
                            UdpLine(4, localhost6, 40003, "1003");
  auto any = UdpSenderUids(table, Loopback(40000));
  ASSERT_TRUE(any) << any.error().message;
  EXPECT_THAT(*any, ElementsAre(1000u));
  EXPECT_THAT(*UdpSenderUids(table, Loopback(40001)), ElementsAre(1001u));
  EXPECT_THAT(*UdpSenderUids(table, Loopback(40002)), ElementsAre(1002u));
  // ::1 is IPv6 only: it never sends from 127.0.0.1.
  EXPECT_THAT(*UdpSenderUids(table, Loopback(40003)), IsEmpty());
}

TEST(RelaySenderOwnerTest, AnUnreadableTableVouchesForNobody) {
  const std::string good = UdpLine(1, KernelHex(0x7F000001), 40000, "0");
  const std::string header(kUdpHeader);
  auto refused = [](const std::string& table) { return !UdpSenderUids(table, Loopback(40000)).has_value(); };
  EXPECT_FALSE(refused(header + good));
  EXPECT_TRUE(refused(""));
  EXPECT_TRUE(refused("\n"));
  EXPECT_TRUE(refused(good)) << "no header";
  EXPECT_TRUE(refused(header + good.substr(0, good.size() - 1))) << "no final newline: cut short";
  EXPECT_TRUE(refused(header + good.substr(0, 70) + "\n")) << "cut before the uid";
  const std::string uid_1000 = UdpLine(1, KernelHex(0x7F000001), 40000, "1000");
  EXPECT_TRUE(refused(header + uid_1000.substr(0, 80) + "\n")) << "cut inside the uid";
  EXPECT_TRUE(refused(header + good.substr(0, 90) + "\n")) << "cut before the inode";
  EXPECT_TRUE(refused(header + "\n" + good)) << "an empty line";
  EXPECT_TRUE(refused(header + "garbage\n" + good));
  EXPECT_TRUE(refused(header + good + std::string(100000, 'F') + "\n"));
  std::string nul = good;
  nul[9] = '\0';
  EXPECT_TRUE(refused(header + nul));
  // Fields out of range or of the wrong width.
  for (const char* uid : {"99999999999999999999", "4294967296", "4294967295", "-1", "+0", "1e3", "0x10", "12a"}) {
    EXPECT_TRUE(refused(header + UdpLine(1, KernelHex(0x7F000001), 40000, uid))) << "uid " << uid;
  }
  for (const char* address : {"100007F", "00100007F", "0100007G", "0100-07F", "0x00007F", "", "0100007F0100007F"}) {
    EXPECT_TRUE(refused(header + UdpLine(1, address, 40000, "0"))) << "address " << address;
  }
  std::string wide_port = good;
  wide_port.replace(wide_port.find(":9C40"), 5, ":09C40");
  EXPECT_TRUE(refused(header + wide_port));
  std::string no_port = good;
  no_port.replace(no_port.find(":9C40"), 5, " 9C40");
  EXPECT_TRUE(refused(header + no_port));
  std::string bad_slot = good;
  bad_slot.replace(bad_slot.find("1:"), 2, "x:");
  EXPECT_TRUE(refused(header + bad_slot));
  // Tabs and wider columns are still one table.
  std::string tabs = good;
  for (auto& c : tabs) {
    if (c == ' ') c = '\t';
  }
  EXPECT_FALSE(refused(header + tabs));
}

// The kernel's own table names us as the owner of our socket, and nobody once it is closed.
TEST(RelaySenderOwnerTest, ProcNetUdpNamesThisUser) {
  UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(fd);
  sockaddr_in local = Loopback(0);
  ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&local), sizeof local), 0);
  socklen_t length = sizeof local;
  ASSERT_EQ(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&local), &length), 0);
  auto owners = UdpSenderUidsFromProc(local);
  ASSERT_TRUE(owners) << owners.error().message;
  EXPECT_THAT(*owners, ElementsAre(::geteuid()));
  ::close(fd.Release());
  owners = UdpSenderUidsFromProc(local);
  ASSERT_TRUE(owners) << owners.error().message;
  EXPECT_THAT(*owners, IsEmpty()) << "a closed socket sends nothing";
}

}  // namespace
}  // namespace mconnect
