# The launcher's unit tests: command line, profile, and the example profile in contrib/.
mconnect_test(launcher_cli_test
  SOURCES launcher/cli_test.cc launcher/profile_test.cc
  LIBS mconnect_launcher
  LABELS unit)

# The `auto` transport's remembered verdict and its expiry.
mconnect_test(launcher_transport_test
  SOURCES launcher/transport_test.cc
  LIBS mconnect_launcher mconnect_test_support
  LABELS unit)

# The MasterConfig the launcher hands a master: filled from its inputs, read back as the master
# reads it, each bound and required field refused with one line; and mconnect-mux's own refusal.
mconnect_test(master_config_test
  SOURCES launcher/master_config_test.cc
  LIBS mconnect_launcher
  LABELS unit)
add_dependencies(master_config_test mconnect-mux)
