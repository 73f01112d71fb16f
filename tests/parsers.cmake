# Pure parsers and the remote-ip library: unit tests only (no network, no sshd).
mconnect_test(remoteip_test
  SOURCES remote-ip/address_test.cc remote-ip/cache_test.cc remote-ip/strategy_test.cc
  LIBS mconnect_remoteip
  LABELS unit)
mconnect_test(mosh_server_test
  SOURCES mosh/server_test.cc mux/cipher_order_test.cc
  LIBS mconnect_mosh mconnect_mux_ssh
  LABELS unit)
mconnect_test(ssh_config_test
  SOURCES launcher/ssh_config_test.cc launcher/ssh_g_cache_test.cc
  LIBS mconnect_launcher
  LABELS unit)
