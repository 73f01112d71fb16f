# The test harness the other folders link, and its own tests.

# tests/support/lab.h: temporary directories, processes, a throwaway sshd (tests/lab/sshd-lab),
# tmux. The harness finds sshd-lab in the source tree and puts the built executables first in PATH.
add_library(mconnect_test_support STATIC ${CMAKE_CURRENT_LIST_DIR}/lab.cc ${CMAKE_CURRENT_LIST_DIR}/lab_tmux.cc)
target_link_libraries(mconnect_test_support PUBLIC mconnect_base mconnect_test_paths)

# tests/support/mconnect_lab.h: the lab with mconnect's own programs and a master.
add_library(mconnect_lab_support STATIC ${CMAKE_CURRENT_LIST_DIR}/mconnect_lab.cc)
target_link_libraries(mconnect_lab_support PUBLIC mconnect_test_support mconnect_proto)

# A raw OpenSSH mux client, for tests that send what OpenSSH's own client never would.
add_library(mconnect_mux_socket_support STATIC ${CMAKE_CURRENT_LIST_DIR}/mux_socket.cc)
target_link_libraries(mconnect_mux_socket_support PUBLIC mconnect_test_support mconnect_mux mconnect_proto)

mconnect_test(lab_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/lab_test.cc
  LIBS mconnect_test_support
  LABELS lab)
