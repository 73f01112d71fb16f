# The master's pure parts (mux/): unit tests only, no network and no sshd.

# The OpenSSH mux protocol codec (vectors captured from OpenSSH 9.2).
mconnect_test(openssh_mux_codec_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/openssh_mux_codec_test.cc ${CMAKE_CURRENT_LIST_DIR}/openssh_mux_decode_test.cc
  LIBS mconnect_mux_openssh
  LABELS unit)

# The SOCKS4/4a/5 codec behind dynamic forwarding (vectors captured from curl 7.88).
mconnect_test(socks_codec_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/socks_codec_test.cc
  LIBS mconnect_mux_forward
  LABELS unit)

# What the master passes on of a session request (the environment).
mconnect_test(openssh_requests_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/openssh_requests_test.cc
  LIBS mconnect_mux_openssh
  LABELS unit)

mconnect_test(tty_modes_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/tty_modes_test.cc
  LIBS mconnect_mux_openssh
  LABELS unit)

mconnect_test(escape_filter_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/escape_filter_test.cc
  LIBS mconnect_mux_openssh
  LABELS unit)

# The master's cipher preference (AES-GCM first on AES-capable CPUs).
mconnect_test(cipher_order_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/cipher_order_test.cc
  LIBS mconnect_mux_ssh
  LABELS unit)

# X11 forwarding's cookie spoofing, xauth's output and DISPLAY (mux/forward/x11_auth.h).
mconnect_test(x11_auth_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/x11_auth_test.cc
  LIBS mconnect_mux_forward
  LABELS unit)
