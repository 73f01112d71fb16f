#include "launcher/ssh_config.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "base/subprocess.h"

namespace mconnect::launcher {
namespace {

// Captured with OpenSSH 9.2p1 (Debian 12) as root: `ssh -G -F /dev/null example.org`.
// Note identityfile keeps its "~", userknownhostsfile does not, and connecttimeout is "none".
constexpr std::string_view kCapturedSshG = R"(
host example.org
user root
hostname example.org
port 22
addressfamily any
batchmode no
canonicalizefallbacklocal yes
canonicalizehostname false
checkhostip no
compression no
controlmaster false
enablesshkeysign no
clearallforwardings no
exitonforwardfailure no
fingerprinthash SHA256
forwardx11 no
forwardx11trusted yes
gatewayports no
gssapiauthentication no
gssapikeyexchange no
gssapidelegatecredentials no
gssapitrustdns no
gssapirenewalforcesrekey no
gssapikexalgorithms gss-group14-sha256-,gss-group16-sha512-,gss-nistp256-sha256-,gss-curve25519-sha256-,gss-group14-sha1-,gss-gex-sha1-
hashknownhosts no
hostbasedauthentication no
identitiesonly no
kbdinteractiveauthentication yes
nohostauthenticationforlocalhost no
passwordauthentication yes
permitlocalcommand no
proxyusefdpass no
pubkeyauthentication true
requesttty auto
sessiontype default
stdinnull no
forkafterauthentication no
streamlocalbindunlink no
stricthostkeychecking ask
tcpkeepalive yes
tunnel false
verifyhostkeydns false
visualhostkey no
updatehostkeys true
enableescapecommandline no
canonicalizemaxdots 1
connectionattempts 1
forwardx11timeout 1200
numberofpasswordprompts 3
serveralivecountmax 3
serveraliveinterval 0
requiredrsasize 1024
ciphers chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,aes128-gcm@openssh.com,aes256-gcm@openssh.com
hostkeyalgorithms ssh-ed25519-cert-v01@openssh.com,ecdsa-sha2-nistp256-cert-v01@openssh.com,ecdsa-sha2-nistp384-cert-v01@openssh.com,ecdsa-sha2-nistp521-cert-v01@openssh.com,sk-ssh-ed25519-cert-v01@openssh.com,sk-ecdsa-sha2-nistp256-cert-v01@openssh.com,rsa-sha2-512-cert-v01@openssh.com,rsa-sha2-256-cert-v01@openssh.com,ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,sk-ssh-ed25519@openssh.com,sk-ecdsa-sha2-nistp256@openssh.com,rsa-sha2-512,rsa-sha2-256
hostbasedacceptedalgorithms ssh-ed25519-cert-v01@openssh.com,ecdsa-sha2-nistp256-cert-v01@openssh.com,ecdsa-sha2-nistp384-cert-v01@openssh.com,ecdsa-sha2-nistp521-cert-v01@openssh.com,sk-ssh-ed25519-cert-v01@openssh.com,sk-ecdsa-sha2-nistp256-cert-v01@openssh.com,rsa-sha2-512-cert-v01@openssh.com,rsa-sha2-256-cert-v01@openssh.com,ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,sk-ssh-ed25519@openssh.com,sk-ecdsa-sha2-nistp256@openssh.com,rsa-sha2-512,rsa-sha2-256
kexalgorithms sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,diffie-hellman-group14-sha256
casignaturealgorithms ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,sk-ssh-ed25519@openssh.com,sk-ecdsa-sha2-nistp256@openssh.com,rsa-sha2-512,rsa-sha2-256
loglevel INFO
macs umac-64-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,hmac-sha1-etm@openssh.com,umac-64@openssh.com,umac-128@openssh.com,hmac-sha2-256,hmac-sha2-512,hmac-sha1
securitykeyprovider internal
pubkeyacceptedalgorithms ssh-ed25519-cert-v01@openssh.com,ecdsa-sha2-nistp256-cert-v01@openssh.com,ecdsa-sha2-nistp384-cert-v01@openssh.com,ecdsa-sha2-nistp521-cert-v01@openssh.com,sk-ssh-ed25519-cert-v01@openssh.com,sk-ecdsa-sha2-nistp256-cert-v01@openssh.com,rsa-sha2-512-cert-v01@openssh.com,rsa-sha2-256-cert-v01@openssh.com,ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,sk-ssh-ed25519@openssh.com,sk-ecdsa-sha2-nistp256@openssh.com,rsa-sha2-512,rsa-sha2-256
xauthlocation /usr/bin/xauth
identityfile ~/.ssh/id_rsa
identityfile ~/.ssh/id_ecdsa
identityfile ~/.ssh/id_ecdsa_sk
identityfile ~/.ssh/id_ed25519
identityfile ~/.ssh/id_ed25519_sk
identityfile ~/.ssh/id_xmss
identityfile ~/.ssh/id_dsa
canonicaldomains none
globalknownhostsfile /etc/ssh/ssh_known_hosts /etc/ssh/ssh_known_hosts2
userknownhostsfile /root/.ssh/known_hosts /root/.ssh/known_hosts2
logverbose none
permitremoteopen any
addkeystoagent false
forwardagent no
connecttimeout none
tunneldevice any:any
canonicalizePermittedcnames none
controlpersist no
escapechar ~
ipqos lowdelay throughput
rekeylimit 0 0
streamlocalbindmask 0177
syslogfacility USER
)";

// Sets $HOME for one test (ParseSshG expands "~/" with it) and puts it back.
class ScopedHome {
 public:
  explicit ScopedHome(const char* home) {
    if (const char* old = std::getenv("HOME")) old_ = old;
    ::setenv("HOME", home, 1);
  }
  ~ScopedHome() {
    if (old_) {
      ::setenv("HOME", old_->c_str(), 1);
    } else {
      ::unsetenv("HOME");
    }
  }

 private:
  std::optional<std::string> old_;
};

std::string ErrorOf(std::string_view output) {
  auto parsed = ParseSshG(output, "alias");
  EXPECT_FALSE(parsed) << "accepted";
  return parsed ? std::string() : parsed.error().message;
}

TEST(ParseSshG, ReadsCapturedOutput) {
  ScopedHome home("/home/alice");
  auto settings = ParseSshG(kCapturedSshG.substr(1), "example.org");
  ASSERT_TRUE(settings) << settings.error().message;
  EXPECT_EQ(settings->host_alias, "example.org");
  EXPECT_EQ(settings->hostname, "example.org");
  EXPECT_EQ(settings->user, "root");
  EXPECT_EQ(settings->port, 22);
  EXPECT_EQ(settings->identity_files,
            (std::vector<std::string>{"/home/alice/.ssh/id_rsa", "/home/alice/.ssh/id_ecdsa",
                                      "/home/alice/.ssh/id_ecdsa_sk", "/home/alice/.ssh/id_ed25519",
                                      "/home/alice/.ssh/id_ed25519_sk", "/home/alice/.ssh/id_xmss",
                                      "/home/alice/.ssh/id_dsa"}));
  EXPECT_FALSE(settings->identities_only);
  EXPECT_EQ(settings->identity_agent, "");
  EXPECT_EQ(settings->user_known_hosts_files,
            (std::vector<std::string>{"/root/.ssh/known_hosts", "/root/.ssh/known_hosts2"}));
  EXPECT_EQ(settings->global_known_hosts_files,
            (std::vector<std::string>{"/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"}));
  EXPECT_EQ(settings->strict_host_key_checking, "ask");
  EXPECT_EQ(settings->host_key_alias, "");
  EXPECT_EQ(settings->connect_timeout_s, 0);
  EXPECT_EQ(settings->server_alive_interval_s, 0);
  EXPECT_EQ(settings->server_alive_count_max, 3);
  EXPECT_EQ(settings->control_path, "");
  EXPECT_EQ(settings->ciphers,
            "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,aes128-gcm@openssh.com,"
            "aes256-gcm@openssh.com");
  EXPECT_EQ(settings->proxy_command, "");
  EXPECT_EQ(settings->proxy_jump, "");
  EXPECT_FALSE(settings->batch_mode);
  EXPECT_EQ(settings->preferred_authentications, "") << "ssh -G prints none when unset";
  EXPECT_TRUE(settings->pubkey_authentication);
  EXPECT_TRUE(settings->kbd_interactive_authentication);
  EXPECT_TRUE(settings->password_authentication);
  EXPECT_EQ(settings->number_of_password_prompts, 3);
  EXPECT_EQ(settings->address_family, "any");
  EXPECT_EQ(DestinationName(*settings), "root@example.org:22");
}

// AddressFamily, which `ssh -4`/`-6` (and so mconnect's -4/-6) set: the master connects over it.
TEST(ParseSshG, ReadsTheAddressFamily) {
  for (std::string_view family : {"any", "inet", "inet6"}) {
    auto settings = ParseSshG("hostname h\nuser u\naddressfamily " + std::string(family) + "\n", "alias");
    ASSERT_TRUE(settings) << settings.error().message;
    EXPECT_EQ(settings->address_family, family);
  }
  EXPECT_EQ(ErrorOf("hostname h\nuser u\naddressfamily inet4\n"),
            "ssh -G printed addressfamily \"inet4\" (expected any, inet or inet6)");
}

TEST(ParseSshG, ReadsTheAuthenticationSettings) {
  auto settings = ParseSshG(
      "hostname h\nuser u\n"
      "preferredauthentications keyboard-interactive,publickey\n"
      "pubkeyauthentication false\n"
      "kbdinteractiveauthentication no\n"
      "passwordauthentication no\n"
      "numberofpasswordprompts 5\n",
      "h");
  ASSERT_TRUE(settings) << settings.error().message;
  EXPECT_EQ(settings->preferred_authentications, "keyboard-interactive,publickey");
  EXPECT_FALSE(settings->pubkey_authentication);
  EXPECT_FALSE(settings->kbd_interactive_authentication);
  EXPECT_FALSE(settings->password_authentication);
  EXPECT_EQ(settings->number_of_password_prompts, 5);

  // OpenSSH 9's other spellings of "yes" for PubkeyAuthentication.
  for (const char* value : {"unbound", "host-bound", "yes", "true"}) {
    auto bound = ParseSshG(std::string("hostname h\nuser u\npubkeyauthentication no\npubkeyauthentication ") + value +
                               "\n",
                           "h");
    ASSERT_TRUE(bound) << value;
    EXPECT_TRUE(bound->pubkey_authentication) << value;
  }
  EXPECT_EQ(ErrorOf("hostname h\nuser u\nnumberofpasswordprompts many\n"),
            "ssh -G printed numberofpasswordprompts \"many\" (expected a count)");
  EXPECT_EQ(ErrorOf("hostname h\nuser u\npasswordauthentication maybe\n"),
            "ssh -G printed passwordauthentication \"maybe\" (expected yes or no)");
}

TEST(ParseSshG, ReadsTheFieldsWeUse) {
  ScopedHome home("/home/alice");
  auto settings = ParseSshG(
      "host bebou\n"
      "user bob\n"
      "hostname 2001:db8::5\n"
      "port 2222\n"
      "batchmode yes\n"
      "identitiesonly yes\n"
      "stricthostkeychecking true\n"
      "identityagent ~/agent.sock\n"
      "identityfile ~/.ssh/id_work\n"
      "identityfile /keys/with space/id\n"
      "userknownhostsfile ~/kh1 /tmp/kh2\n"
      "globalknownhostsfile none\n"
      "hostkeyalias bebou-key\n"
      "connecttimeout 7\n"
      "serveraliveinterval 15\n"
      "serveralivecountmax 4\n"
      "controlpath ~/.ssh/cm-bob@2001:db8::5:2222\n"
      "proxycommand ssh -W %h:%p jump\n"
      "proxyjump j1,j2\n",
      "bebou");
  ASSERT_TRUE(settings) << settings.error().message;
  EXPECT_EQ(settings->hostname, "2001:db8::5");
  EXPECT_EQ(settings->port, 2222);
  EXPECT_TRUE(settings->batch_mode);
  EXPECT_TRUE(settings->identities_only);
  EXPECT_EQ(settings->strict_host_key_checking, "yes");
  EXPECT_EQ(settings->identity_agent, "/home/alice/agent.sock");
  EXPECT_EQ(settings->identity_files, (std::vector<std::string>{"/home/alice/.ssh/id_work", "/keys/with space/id"}));
  EXPECT_EQ(settings->user_known_hosts_files, (std::vector<std::string>{"/home/alice/kh1", "/tmp/kh2"}));
  EXPECT_TRUE(settings->global_known_hosts_files.empty());
  EXPECT_EQ(settings->host_key_alias, "bebou-key");
  EXPECT_EQ(settings->connect_timeout_s, 7);
  EXPECT_EQ(settings->server_alive_interval_s, 15);
  EXPECT_EQ(settings->server_alive_count_max, 4);
  EXPECT_EQ(settings->control_path, "/home/alice/.ssh/cm-bob@2001:db8::5:2222");
  EXPECT_EQ(settings->proxy_command, "ssh -W %h:%p jump");
  EXPECT_EQ(settings->proxy_jump, "j1,j2");
  EXPECT_EQ(DestinationName(*settings), "bob@[2001:db8::5]:2222");
}

TEST(ParseSshG, ForwardAgentSocketAndForwardX11Trusted) {
  // `ssh -G` prints ForwardAgent as yes/no, or the socket it names; only a socket is kept.
  auto yes = ParseSshG("hostname h\nuser u\nforwardagent yes\nforwardx11trusted yes\n", "h");
  ASSERT_TRUE(yes) << yes.error().message;
  EXPECT_EQ(yes->forward_agent, "");
  EXPECT_FALSE(yes->forward_x11_untrusted);
  auto path = ParseSshG("hostname h\nuser u\nforwardagent /run/agent.sock\nforwardx11trusted no\n", "h");
  ASSERT_TRUE(path) << path.error().message;
  EXPECT_EQ(path->forward_agent, "/run/agent.sock");
  EXPECT_TRUE(path->forward_x11_untrusted);
}

TEST(ParseSshG, NoneMeansEmpty) {
  auto settings = ParseSshG("hostname h\nuser u\nproxycommand none\nproxyjump none\ncontrolpath none\n"
                            "identityagent none\nstricthostkeychecking false\nconnecttimeout none\n",
                            "h");
  ASSERT_TRUE(settings) << settings.error().message;
  EXPECT_EQ(settings->proxy_command, "");
  EXPECT_EQ(settings->proxy_jump, "");
  EXPECT_EQ(settings->control_path, "");
  EXPECT_EQ(settings->identity_agent, "none") << "none disables the agent; it is not the default";
  EXPECT_EQ(settings->strict_host_key_checking, "no");
  EXPECT_EQ(settings->connect_timeout_s, 0);
}

TEST(ParseSshG, AcceptsNewAndAskAndCrlfAndMixedCaseKeys) {
  auto settings = ParseSshG("HostName h\r\nUser u\r\nPort 2200\r\nStrictHostKeyChecking accept-new\r\n", "h");
  ASSERT_TRUE(settings) << settings.error().message;
  EXPECT_EQ(settings->port, 2200);
  EXPECT_EQ(settings->strict_host_key_checking, "accept-new");
}

TEST(ParseSshG, TildeWithoutHomeIsLeftAlone) {
  ScopedHome home("");
  auto settings = ParseSshG("hostname h\nuser u\nidentityfile ~/.ssh/id_ed25519\nidentityfile ~bob/key\n", "h");
  ASSERT_TRUE(settings);
  EXPECT_EQ(settings->identity_files, (std::vector<std::string>{"~/.ssh/id_ed25519", "~bob/key"}));
}

TEST(ParseSshG, BadNumbersNameTheKey) {
  EXPECT_EQ(ErrorOf("hostname h\nuser u\nport 0\n"), "ssh -G printed port \"0\" (expected 1..65535)");
  EXPECT_EQ(ErrorOf("hostname h\nuser u\nport 70000\n"), "ssh -G printed port \"70000\" (expected 1..65535)");
  EXPECT_EQ(ErrorOf("hostname h\nuser u\nport 22x\n"), "ssh -G printed port \"22x\" (expected 1..65535)");
  EXPECT_EQ(ErrorOf("hostname h\nuser u\nport\n"), "ssh -G printed port \"\" (expected 1..65535)");
  EXPECT_EQ(ErrorOf("hostname h\nuser u\nconnecttimeout soon\n"),
            "ssh -G printed connecttimeout \"soon\" (expected a number of seconds or none)");
  EXPECT_EQ(ErrorOf("hostname h\nuser u\nserveraliveinterval -1\n"),
            "ssh -G printed serveraliveinterval \"-1\" (expected a number of seconds)");
  EXPECT_EQ(ErrorOf("hostname h\nuser u\nserveralivecountmax 99999999999999\n"),
            "ssh -G printed serveralivecountmax \"99999999999999\" (expected a count)");
  EXPECT_EQ(ErrorOf("hostname h\nuser u\nbatchmode perhaps\n"),
            "ssh -G printed batchmode \"perhaps\" (expected yes or no)");
  EXPECT_EQ(ErrorOf("hostname h\nuser u\nstricthostkeychecking maybe\n"),
            "ssh -G printed stricthostkeychecking \"maybe\" (expected yes, no, ask or accept-new)");
}

TEST(ParseSshG, RequiresHostnameAndUser) {
  EXPECT_EQ(ErrorOf(""), "ssh -G printed no hostname for alias");
  EXPECT_EQ(ErrorOf("user u\n"), "ssh -G printed no hostname for alias");
  EXPECT_EQ(ErrorOf("hostname h\n"), "ssh -G printed no user for alias");
  EXPECT_EQ(ErrorOf("usage: ssh [-46AaCfGgKkMNnqsTtVvXxYy]\n"), "ssh -G printed no hostname for alias");
}

TEST(ParseSshG, ErrorsQuoteSanitizedValues) {
  auto message = ErrorOf("hostname h\nuser u\nport \x1b[2J" + std::string(300, '9') + "\n");
  EXPECT_EQ(message.find('\x1b'), std::string::npos);
  EXPECT_LT(message.size(), 160u);
}

TEST(DestinationName, FormatsUserHostPort) {
  SshSettings settings;
  settings.user = "bob";
  settings.hostname = "bebou.example";
  settings.port = 2222;
  EXPECT_EQ(DestinationName(settings), "bob@bebou.example:2222");
}

// A temporary ssh config; nothing under the real ~/.ssh is read or written.
class TempConfig {
 public:
  explicit TempConfig(std::string_view text) {
    char dir_template[] = "/tmp/mconnect-ssh-config-XXXXXX";
    char* dir = ::mkdtemp(dir_template);
    EXPECT_NE(dir, nullptr);
    dir_ = dir != nullptr ? dir : "/tmp";
    path_ = dir_ + "/config";
    std::ofstream(path_) << text;
  }
  ~TempConfig() {
    std::remove(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  const std::string& path() const { return path_; }

 private:
  std::string dir_;
  std::string path_;
};

TEST(ResolveSshSettings, RunsTheRealSshWithAnFFile) {
  TempConfig config(
      "Host alias\n"
      " HostName 127.0.0.1\n"
      " Port 2222\n"
      " User bob\n"
      " IdentityFile /tmp/x/key\n");
  auto settings = ResolveSshSettings("ssh -F " + ShellQuote(config.path()), "alias");
  ASSERT_TRUE(settings) << settings.error().message;
  EXPECT_EQ(settings->host_alias, "alias");
  EXPECT_EQ(settings->hostname, "127.0.0.1");
  EXPECT_EQ(settings->port, 2222);
  EXPECT_EQ(settings->user, "bob");
  EXPECT_EQ(settings->identity_files, (std::vector<std::string>{"/tmp/x/key"}));
  EXPECT_EQ(DestinationName(*settings), "bob@127.0.0.1:2222");
}

TEST(ResolveSshSettings, ReadsAuthenticationSettingsFromTheRealSsh) {
  TempConfig config(
      "Host alias\n"
      " HostName 127.0.0.1\n"
      " PreferredAuthentications password,publickey\n"
      " PubkeyAuthentication no\n"
      " KbdInteractiveAuthentication no\n"
      " PasswordAuthentication yes\n"
      " NumberOfPasswordPrompts 1\n"
      " BatchMode yes\n");
  auto settings = ResolveSshSettings("ssh -F " + ShellQuote(config.path()), "alias");
  ASSERT_TRUE(settings) << settings.error().message;
  EXPECT_EQ(settings->preferred_authentications, "password,publickey");
  EXPECT_FALSE(settings->pubkey_authentication);
  EXPECT_FALSE(settings->kbd_interactive_authentication);
  EXPECT_TRUE(settings->password_authentication);
  EXPECT_EQ(settings->number_of_password_prompts, 1);
  EXPECT_TRUE(settings->batch_mode);
}

TEST(ResolveSshSettings, UserAtHostOverridesTheConfig) {
  TempConfig config("Host alias\n HostName 127.0.0.1\n User bob\n");
  auto settings = ResolveSshSettings("ssh -F " + ShellQuote(config.path()), "carol@alias");
  ASSERT_TRUE(settings) << settings.error().message;
  EXPECT_EQ(settings->user, "carol");
  EXPECT_EQ(settings->hostname, "127.0.0.1");
}

TEST(ResolveSshSettings, HostIsOneArgumentNotShellText) {
  TempConfig config("Host *\n User bob\n");
  auto settings = ResolveSshSettings("ssh -F " + ShellQuote(config.path()), "a;touch /tmp/mconnect-pwned");
  // ssh may accept or refuse the odd name, but the shell never runs the second half.
  EXPECT_NE(::access("/tmp/mconnect-pwned", F_OK), 0);
}

TEST(ResolveSshSettings, FailureIsOneLineWithSshsReason) {
  auto settings = ResolveSshSettings("ssh -F /nonexistent/mconnect-test-config", "alias");
  ASSERT_FALSE(settings);
  EXPECT_NE(settings.error().message.find("Can't open user config file /nonexistent/mconnect-test-config"),
            std::string::npos)
      << settings.error().message;
  EXPECT_EQ(settings.error().message.find('\n'), std::string::npos);

  auto missing = ResolveSshSettings("mconnect-no-such-ssh", "alias");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("exit status 127"), std::string::npos) << missing.error().message;
}

TEST(ResolveSshSettings, RefusesHostsThatLookLikeOptions) {
  auto settings = ResolveSshSettings("ssh", "-oProxyCommand=touch /tmp/x");
  ASSERT_FALSE(settings);
  EXPECT_EQ(settings.error().message, "host \"-oProxyCommand=touch /tmp/x\" looks like an option");
  EXPECT_FALSE(ResolveSshSettings("ssh", ""));
}

// Two aliases of one user@host:port share a master; what else differs is said, each setting
// with both values.
TEST(MasterIdentity, DifferencesNameEachSettingWithBothValues) {
  auto a = ParseSshG("hostname h\nuser u\nidentityfile /keys/a\nuserknownhostsfile /kh/a\n"
                     "globalknownhostsfile /dev/null\n", "work");
  auto b = ParseSshG("hostname h\nuser u\nidentityfile /keys/b\nuserknownhostsfile /kh/a\n"
                     "globalknownhostsfile /dev/null\nproxycommand nc %h %p\n", "play");
  ASSERT_TRUE(a && b);
  auto master = IdentityOf(*a, {"ssh"});
  auto session = IdentityOf(*b, {"ssh"});
  ASSERT_TRUE(master && session);
  EXPECT_EQ(master->known_hosts_files, (std::vector<std::string>{"/kh/a", "/dev/null"}));
  EXPECT_EQ(IdentityDifferences(*master, *session, "play"),
            (std::vector<std::string>{"IdentityFile /keys/a (play's: /keys/b)", "proxy none (play's: `nc h 22`)"}));
  EXPECT_TRUE(IdentityDifferences(*master, *master, "work").empty());
}

}  // namespace
}  // namespace mconnect::launcher
