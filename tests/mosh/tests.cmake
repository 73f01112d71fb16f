# mosh's own protocol and programs (mosh/).

# mosh's datagram codec (unit) and the UDP probe against a real, throwaway mosh-server on
# loopback (needs /usr/bin/mosh-server: without it the probe tests fail under CI=true, skip elsewhere).
mconnect_test(mosh_probe_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/datagram_test.cc ${CMAKE_CURRENT_LIST_DIR}/udp_probe_test.cc
  LIBS mconnect_mosh
  LABELS integration)

# mosh-server's command line and what it prints.
mconnect_test(mosh_server_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/server_test.cc
  LIBS mconnect_mosh
  LABELS unit)

# The length framing of mosh's datagrams over an SSH channel (the `ssh` transport).
mconnect_test(mosh_datagram_frame_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/datagram_frame_test.cc
  LIBS mconnect_mosh
  LABELS unit)

# The relay's server side (perl and `mconnect relay`), with pipes and a UDP echo server, started
# by the master's own command line (RelayCommand, mux/mosh_over_ssh/mosh_over_ssh.h).
mconnect_test(relay_server_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/relay_server_test.cc
  LIBS mconnect_mux_mosh_over_ssh mconnect_mosh
  LABELS integration)
add_dependencies(relay_server_test mconnect)

# mosh/relay.pl compiles. Without perl this fails rather than skips: the perl relay is what a
# server without mconnect runs, so a machine that cannot check it cannot vouch for it.
add_test(NAME PerlRelay.Compiles
  COMMAND sh -c "command -v perl >/dev/null || { echo 'perl is missing' >&2; exit 1; }; exec perl -c \"$1\""
          sh ${PROJECT_SOURCE_DIR}/mosh/relay.pl)
set_tests_properties(PerlRelay.Compiles PROPERTIES LABELS unit TIMEOUT 60)
