# The OpenSSH mux protocol codec: pure, unit tests only (vectors captured from OpenSSH 9.2).
mconnect_test(openssh_mux_codec_test
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/mux/openssh_mux_codec_test.cc ${CMAKE_CURRENT_SOURCE_DIR}/mux/openssh_mux_decode_test.cc
  LIBS mconnect_mux_openssh
  LABELS unit)
