# The launcher's unit tests.

# Command line, profile, and the example profile in contrib/.
mconnect_test(launcher_cli_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/cli_test.cc ${CMAKE_CURRENT_LIST_DIR}/profile_test.cc
  LIBS mconnect_launcher
  LABELS unit)

# `ssh -G` output read into the launcher's view of the host, and the cache that keeps it.
mconnect_test(ssh_config_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/ssh_config_test.cc ${CMAKE_CURRENT_LIST_DIR}/ssh_g_cache_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/forward_spec_test.cc
  LIBS mconnect_launcher
  LABELS unit)

# The `auto` transport's remembered verdict and its expiry.
mconnect_test(launcher_transport_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/transport_test.cc
  LIBS mconnect_launcher mconnect_test_support
  LABELS unit)

# The MasterConfig the launcher hands a master: filled from its inputs, read back as the master
# reads it, each bound and required field refused with one line; and mconnect-mux's own refusal.
mconnect_test(master_config_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/master_config_test.cc
  LIBS mconnect_launcher
  LABELS unit)
add_dependencies(master_config_test mconnect-mux)
