# The master and launcher against a real sshd (no terminal needed).
add_library(mconnect_lab_support STATIC ${CMAKE_CURRENT_SOURCE_DIR}/support/mconnect_lab.cc)
target_link_libraries(mconnect_lab_support PUBLIC mconnect_test_support mconnect_proto)

mconnect_test(master_test
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/master/master_test.cc
  LIBS mconnect_lab_support
  LABELS integration)
# The tests run the built executables.
add_dependencies(master_test mconnect mconnect-mux)

# Unchanged OpenSSH clients through the master's socket.
mconnect_test(openssh_mux_test
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/master/openssh_mux_test.cc
  LIBS mconnect_lab_support
  LABELS integration
  SERIAL "*HundredConcurrent*")
add_dependencies(openssh_mux_test mconnect mconnect-mux)

mconnect_test(tty_modes_test
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/mux/tty_modes_test.cc
  LIBS mconnect_mux_openssh
  LABELS unit)

mconnect_test(escape_filter_test
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/mux/escape_filter_test.cc
  LIBS mconnect_mux_openssh
  LABELS unit)

# The master across its server going away and coming back.
mconnect_test(reconnect_test
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/master/reconnect_test.cc
  LIBS mconnect_lab_support
  LABELS integration)
add_dependencies(reconnect_test mconnect mconnect-mux)

# mosh's datagrams over the master (the `ssh` transport).
mconnect_test(relay_test
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/master/relay_test.cc
  LIBS mconnect_lab_support mconnect_mosh
  LABELS integration)
add_dependencies(relay_test mconnect mconnect-mux)

# Beside OpenSSH and a user's habits: OpenSSH's own master at the same ControlPath, the runtime
# directory, a stopped master, the names status and stop take.
mconnect_test(habits_test
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/master/habits_test.cc
  LIBS mconnect_lab_support
  LABELS integration)
add_dependencies(habits_test mconnect mconnect-mux)

# A session while the server is silent or the master reconnects: the host and the silence are
# named, not mosh-server.
mconnect_test(silent_server_test
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/master/silent_server_test.cc
  LIBS mconnect_lab_support
  LABELS integration)
add_dependencies(silent_server_test mconnect mconnect-mux)

# What this machine must offer mosh-client is checked before the server starts a mosh-server.
mconnect_test(client_checks_test
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/master/client_checks_test.cc
  LIBS mconnect_lab_support
  LABELS integration)
add_dependencies(client_checks_test mconnect mconnect-mux)

# libssh2's error codes in words.
mconnect_test(ssh2_errors_test
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/master/ssh2_errors_test.cc
  LIBS mconnect_base
  LABELS unit)
