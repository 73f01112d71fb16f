# The SOCKS4/4a/5 codec behind dynamic forwarding: pure, unit tests only (vectors captured from
# curl 7.88).
mconnect_test(socks_codec_test
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/mux/socks_codec_test.cc
  LIBS mconnect_mux_forward
  LABELS unit)
