# The test harness (tests/support/lab.h) that integration and end-to-end tests link, and its
# own tests. Included from tests/CMakeLists.txt, which defines mconnect_test().
add_library(mconnect_test_support STATIC ${CMAKE_CURRENT_SOURCE_DIR}/support/lab.cc ${CMAKE_CURRENT_SOURCE_DIR}/support/lab_tmux.cc)
target_include_directories(mconnect_test_support PUBLIC ${PROJECT_SOURCE_DIR})
# The harness finds sshd-lab in the source tree and puts the built executables first in PATH.
target_link_libraries(mconnect_test_support PUBLIC mconnect_base mconnect_test_paths)

# A raw OpenSSH mux client, for tests that send what OpenSSH's own client never would.
add_library(mconnect_mux_socket_support STATIC ${CMAKE_CURRENT_SOURCE_DIR}/support/mux_socket.cc)
target_link_libraries(mconnect_mux_socket_support PUBLIC mconnect_test_support mconnect_mux mconnect_proto)

mconnect_test(lab_test
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/support/lab_test.cc
  LIBS mconnect_test_support
  LABELS lab)
