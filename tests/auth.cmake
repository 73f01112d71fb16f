# Authentication against a real sshd, typed in tmux like a person: key passphrases, SSH_ASKPASS,
# keyboard-interactive and password through PAM, multi-factor, RSA keys and hosts, host-key
# questions; and the pure parts (key files, method order, prompt routes) without a server.
mconnect_test(auth_test
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/auth/passphrase_test.cc ${CMAKE_CURRENT_SOURCE_DIR}/auth/server_methods_test.cc
          ${CMAKE_CURRENT_SOURCE_DIR}/auth/key_files_test.cc
  LIBS mconnect_lab_support mconnect_mux
  LABELS integration)
add_dependencies(auth_test mconnect mconnect-mux)
