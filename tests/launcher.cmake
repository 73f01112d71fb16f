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
