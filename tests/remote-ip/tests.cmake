# The remote-ip library: pure, unit tests only (no network, no sshd).
mconnect_test(remoteip_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/address_test.cc ${CMAKE_CURRENT_LIST_DIR}/cache_test.cc
          ${CMAKE_CURRENT_LIST_DIR}/strategy_test.cc
  LIBS mconnect_remoteip
  LABELS unit)
