# Hostile OpenSSH mux clients on the master's socket while a real transfer runs, and the fds an
# OpenSSH client lends the master (regular file, pipe, tty) coming back as they were lent.
mconnect_test(openssh_robustness_test
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/master/openssh_hostile_clients_test.cc
          ${CMAKE_CURRENT_SOURCE_DIR}/master/openssh_lent_fds_test.cc
  LIBS mconnect_lab_support mconnect_mux_socket_support
  LABELS integration)
# The tests run the built executables.
add_dependencies(openssh_robustness_test mconnect mconnect-mux)
