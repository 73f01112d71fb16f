# mosh's datagram codec (unit) and the UDP probe against a real, throwaway mosh-server on
# loopback (needs /usr/bin/mosh-server; the probe tests skip without it).
mconnect_test(mosh_probe_test
  SOURCES remote-ip/mosh_datagram_test.cc remote-ip/udp_probe_test.cc
  LIBS mconnect_remoteip
  LABELS integration)
