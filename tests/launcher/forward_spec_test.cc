// Forwards as ssh writes them (the profile's `forward`, `ssh -G`'s forward lines), read as
// OpenSSH's parse_forward reads them, into what the master's forwards take.
#include "launcher/forward_spec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "launcher/ssh_config.h"
#include "proto/master_config.h"

namespace mconnect::launcher {
namespace {

using ::testing::HasSubstr;
using Forward = ConfiguredForward;

Forward Ok(Forward::Kind kind, std::string_view spec) {
  auto forward = ParseForwardSpec(kind, spec);
  EXPECT_TRUE(forward) << spec << ": " << forward.error().message;
  return forward ? *forward : Forward{};
}

std::string Error(Forward::Kind kind, std::string_view spec) {
  auto forward = ParseForwardSpec(kind, spec);
  EXPECT_FALSE(forward) << spec;
  return forward ? "" : forward.error().message;
}

TEST(ForwardSpec, LocalFormsAsSshTakesThem) {
  Forward f = Ok(Forward::KIND_LOCAL, "8080:localhost:80");
  EXPECT_EQ(f.listen_host(), "");
  EXPECT_EQ(f.listen_port(), 8080u);
  EXPECT_EQ(f.connect_host(), "localhost");
  EXPECT_EQ(f.connect_port(), 80u);

  f = Ok(Forward::KIND_LOCAL, "[::1]:8080:[2001:db8::1]:443");
  EXPECT_EQ(f.listen_host(), "::1");
  EXPECT_EQ(f.connect_host(), "2001:db8::1");
  EXPECT_EQ(f.connect_port(), 443u);

  f = Ok(Forward::KIND_LOCAL, "*:8080:db:5432");
  EXPECT_EQ(f.listen_host(), "*");
  f = Ok(Forward::KIND_LOCAL, ":8080:db:5432");
  EXPECT_EQ(f.listen_host(), "*") << "an empty bind address is every address, as for ssh";

  f = Ok(Forward::KIND_LOCAL, "/tmp/here.sock:db:5432");
  EXPECT_EQ(f.listen_host(), "/tmp/here.sock");
  EXPECT_EQ(f.listen_port(), proto::kPortStreamLocal);
  f = Ok(Forward::KIND_LOCAL, "8080:/run/there.sock");
  EXPECT_EQ(f.listen_port(), 8080u);
  EXPECT_EQ(f.connect_host(), "/run/there.sock");
  EXPECT_EQ(f.connect_port(), proto::kPortStreamLocal);
  f = Ok(Forward::KIND_LOCAL, "/tmp/a:/tmp/b");
  EXPECT_EQ(f.listen_host(), "/tmp/a");
  EXPECT_EQ(f.connect_host(), "/tmp/b");

  f = Ok(Forward::KIND_LOCAL, "8080:we\\:ird:80");
  EXPECT_EQ(f.connect_host(), "we:ird") << "\\ escapes a ':'";
}

TEST(ForwardSpec, RemoteAndDynamicForms) {
  Forward f = Ok(Forward::KIND_REMOTE, "0:localhost:80");
  EXPECT_EQ(f.listen_port(), 0u) << "the server picks the port";
  f = Ok(Forward::KIND_REMOTE, "9000");
  EXPECT_EQ(f.connect_host(), "socks") << "SOCKS on the server's side, as ssh's mux client sends it";
  EXPECT_EQ(f.connect_port(), 0u);
  f = Ok(Forward::KIND_REMOTE, "/tmp/remote.sock:localhost:22");
  EXPECT_EQ(f.listen_port(), proto::kPortStreamLocal);

  f = Ok(Forward::KIND_DYNAMIC, "1080");
  EXPECT_EQ(f.listen_port(), 1080u);
  EXPECT_EQ(f.connect_host(), "");
  f = Ok(Forward::KIND_DYNAMIC, "[127.0.0.1]:1081");
  EXPECT_EQ(f.listen_host(), "127.0.0.1");
  EXPECT_EQ(f.kind(), Forward::KIND_DYNAMIC);
}

TEST(ForwardSpec, WhatSshRefusesIsRefusedWithTheReason) {
  EXPECT_THAT(Error(Forward::KIND_LOCAL, "8080"), HasSubstr("expected [bind:]port:host:hostport"));
  EXPECT_THAT(Error(Forward::KIND_LOCAL, "0:localhost:80"), HasSubstr("listen port 0"));
  EXPECT_THAT(Error(Forward::KIND_LOCAL, "70000:localhost:80"), HasSubstr("listen port \"70000\""));
  EXPECT_THAT(Error(Forward::KIND_LOCAL, "8080:localhost:0"), HasSubstr("destination port \"0\""));
  EXPECT_THAT(Error(Forward::KIND_LOCAL, "8080:localhost:http"), HasSubstr("destination port \"http\""));
  EXPECT_THAT(Error(Forward::KIND_LOCAL, "8080::80"), HasSubstr("destination host is empty"));
  EXPECT_THAT(Error(Forward::KIND_LOCAL, "a:1:b:2:c"), HasSubstr("more than four"));
  EXPECT_THAT(Error(Forward::KIND_LOCAL, "[::1:8080:x:1"), HasSubstr("'[' without its ']'"));
  EXPECT_THAT(Error(Forward::KIND_LOCAL, "[::1]x:8080:x:1"), HasSubstr("after a ']'"));
  EXPECT_THAT(Error(Forward::KIND_LOCAL, ""), HasSubstr("empty"));
  EXPECT_THAT(Error(Forward::KIND_DYNAMIC, "1080:host:80"), HasSubstr("expected [bind:]port"));
  EXPECT_THAT(Error(Forward::KIND_DYNAMIC, "/tmp/socks"), HasSubstr("expected [bind:]port"));
  EXPECT_THAT(Error(Forward::KIND_REMOTE, std::string("9000:a\0b:80", 11)), HasSubstr("NUL"));
}

TEST(ForwardSpec, ProfileEntriesNameTheirKindFirst) {
  auto f = ParseProfileForward("  R 9000:localhost:9000 ");
  ASSERT_TRUE(f) << f.error().message;
  EXPECT_EQ(f->kind(), Forward::KIND_REMOTE);
  EXPECT_EQ(f->origin(), Forward::ORIGIN_PROFILE);
  EXPECT_EQ(f->text(), "R 9000:localhost:9000");
  for (std::string_view bad : {"X 80", "L", "8080:localhost:80", "l 8080:localhost:80", "-L 8080:localhost:80"}) {
    auto refused = ParseProfileForward(bad);
    ASSERT_FALSE(refused) << bad;
    EXPECT_THAT(refused.error().message, HasSubstr("expected L, R or D")) << bad;
  }
  auto refused = ParseProfileForward("D 1080:x:1");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message, "D: expected [bind:]port");
}

// What OpenSSH 9.2's `ssh -G` prints for LocalForward 8080 localhost:80, LocalForward
// /tmp/l.sock /tmp/r.sock, LocalForward 8082 /tmp/r2.sock, RemoteForward 9001, DynamicForward
// 127.0.0.1:1081 (the first two dynamicforward lines are its echoes of the Unix-socket forwards).
constexpr std::string_view kSshG =
    "hostname 127.0.0.1\nuser bob\nclearallforwardings no\nexitonforwardfailure yes\n"
    "dynamicforward /tmp/l.sock\ndynamicforward 8082\ndynamicforward [127.0.0.1]:1081\n"
    "localforward 8080 [localhost]:80\nlocalforward /tmp/l.sock /tmp/r.sock\nlocalforward 8082 /tmp/r2.sock\n"
    "remoteforward [*]:9002 [10.0.0.1]:22\nremoteforward 9001 [socks]:0\n";

TEST(ForwardSpec, SshGLinesBecomeForwardsWithoutOpenSsh92sEchoes) {
  auto settings = ParseSshG(kSshG, "a");
  ASSERT_TRUE(settings) << settings.error().message;
  EXPECT_TRUE(settings->exit_on_forward_failure);
  ASSERT_EQ(settings->forwards.size(), 6u);
  const auto& forwards = settings->forwards;
  EXPECT_EQ(forwards[0].kind(), Forward::KIND_DYNAMIC);
  EXPECT_EQ(forwards[0].listen_host(), "127.0.0.1");
  EXPECT_EQ(forwards[0].text(), "D [127.0.0.1]:1081");
  EXPECT_EQ(forwards[1].connect_host(), "localhost");
  EXPECT_EQ(forwards[1].origin(), Forward::ORIGIN_SSH_CONFIG);
  EXPECT_EQ(forwards[1].text(), "L 8080 [localhost]:80");
  EXPECT_EQ(forwards[2].listen_port(), proto::kPortStreamLocal);
  EXPECT_EQ(forwards[3].connect_host(), "/tmp/r2.sock");
  EXPECT_EQ(forwards[4].listen_host(), "*");
  EXPECT_EQ(forwards[4].connect_host(), "10.0.0.1");
  EXPECT_EQ(forwards[5].connect_host(), "socks");
  EXPECT_EQ(forwards[5].listen_port(), 9001u);
}

TEST(ForwardSpec, ClearAllForwardingsAndBadLines) {
  auto cleared = ParseSshG("hostname h\nuser u\nclearallforwardings yes\nlocalforward 8080 [localhost]:80\n", "a");
  ASSERT_TRUE(cleared) << cleared.error().message;
  EXPECT_TRUE(cleared->forwards.empty());
  auto bad = ParseSshG("hostname h\nuser u\nlocalforward 8080\n", "a");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message, "ssh -G printed localforward \"8080\" (expected 2 words)");
}

}  // namespace
}  // namespace mconnect::launcher
