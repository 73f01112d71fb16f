#include "mux/ssh/cipher_order.h"

#include <gtest/gtest.h>

namespace mconnect::mux {
namespace {

TEST(CipherPreference, OpenSshsDefaultListIsNoChoiceAndAesGcmLeadsOnAesHardware) {
  EXPECT_EQ(CipherPreference(kOpenSshDefaultCiphers, true),
            "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,"
            "aes256-ctr");
  EXPECT_EQ(CipherPreference("", true).substr(0, 22), "aes128-gcm@openssh.com");
}

TEST(CipherPreference, WithoutAesHardwareOpenSshsOrderStays) {
  EXPECT_EQ(CipherPreference(kOpenSshDefaultCiphers, false), kOpenSshDefaultCiphers);
  EXPECT_EQ(CipherPreference("", false), kOpenSshDefaultCiphers);
}

TEST(CipherPreference, AUsersListKeepsItsOrderAndLosesWhatLibssh2Lacks) {
  EXPECT_EQ(CipherPreference("chacha20-poly1305@openssh.com,aes256-ctr", true),
            "chacha20-poly1305@openssh.com,aes256-ctr");
  EXPECT_EQ(CipherPreference("3des-cbc,aes256-gcm@openssh.com,,aes128-ctr", true),
            "aes256-gcm@openssh.com,aes128-ctr");
  EXPECT_EQ(CipherPreference("3des-cbc", true), "") << "nothing libssh2 knows: its own order, and a clear failure";
}

}  // namespace
}  // namespace mconnect::mux
