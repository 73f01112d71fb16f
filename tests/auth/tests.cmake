# Authentication against a real sshd, typed in tmux like a person: key passphrases, SSH_ASKPASS,
# the agent, keyboard-interactive and password through PAM, multi-factor, RSA keys and hosts,
# host-key questions; and the pure parts (key files, method order, prompt routes) without a server.
mconnect_test(auth_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/passphrase_test.cc ${CMAKE_CURRENT_LIST_DIR}/server_methods_test.cc
          ${CMAKE_CURRENT_LIST_DIR}/key_files_test.cc
  LIBS mconnect_lab_support mconnect_mux
  LABELS integration)
add_dependencies(auth_test mconnect mconnect-mux)
