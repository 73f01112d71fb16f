# The server side of the `ssh` transport in perl, for a server that has perl (essential on Debian
# and Ubuntu) but no mconnect; `mconnect relay` (mosh/relay_server.h) is its twin and behaves the
# same. The master runs it as `perl -e TEXT PORT PID` (RelayCommand, mux/mosh_over_ssh/mosh_over_ssh.h). It
# exchanges framed datagrams (mosh/datagram_frame.h: a uint16 big-endian length, then the
# datagram) on stdin/stdout with one UDP socket connected to mosh-server's PORT on 127.0.0.1, and
# leaves when mosh-server's PID is gone (checked every 5 s), saying so: a channel closed for any
# other reason (a lost connection, a killed relay) is restarted. A zombie counts as gone: an init
# that reaps late (a container whose PID 1 is a shell) would otherwise keep the relay, and its
# channel, for as long as the master lives.
#
# The build embeds this file as mosh::kPerlRelay (mosh/perl_relay.h) without these leading
# comment lines: all that follows travels in the command line of every relay channel, so keep it
# short and free of comments. ctest's PerlRelay.Compiles runs `perl -c` on it.
use strict; use warnings; use Socket;
my ($port, $pid) = @ARGV;
socket(my $u, PF_INET, SOCK_DGRAM, 0) or die "mconnect-relay: socket: $!\n";
connect($u, pack_sockaddr_in($port, inet_aton("127.0.0.1"))) or die "mconnect-relay: connect: $!\n";
binmode STDIN; binmode STDOUT; $| = 1;
print STDERR "mconnect-relay: perl\n";
sub gone { my ($p) = @_; return 1 unless kill(0, $p);
  open(my $f, "<", "/proc/$p/stat") or return 0; my $s = <$f> // ""; return $s =~ /\)\s+Z\s/ ? 1 : 0; }
my ($in, $rin, $check) = ("", "", 0);
vec($rin, fileno(STDIN), 1) = 1; vec($rin, fileno($u), 1) = 1;
while (1) {
  my $n = select(my $rout = $rin, undef, undef, 5);
  if ($pid && time >= $check) {
    $check = time + 5;
    if (gone($pid)) { print STDERR "mconnect-relay: done\n"; exit 0; }
  }
  next if $n <= 0;
  if (vec($rout, fileno($u), 1) && defined(recv($u, my $d, 65535, 0))) {
    defined(syswrite(STDOUT, pack("n", length $d) . $d)) or exit 0;
  }
  if (vec($rout, fileno(STDIN), 1)) {
    my $r = sysread(STDIN, $in, 65536, length $in);
    exit 0 unless $r;
    while (length($in) >= 2) {
      my $len = unpack("n", $in);
      last if length($in) < 2 + $len;
      send($u, substr($in, 2, $len), 0);
      substr($in, 0, 2 + $len, "");
    }
  }
}
