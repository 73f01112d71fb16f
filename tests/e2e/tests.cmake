# Real mosh sessions through the master, driven through tmux.
mconnect_test(mosh_e2e_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/mosh_e2e_test.cc
  LIBS mconnect_lab_support
  LABELS e2e)
add_dependencies(mosh_e2e_test mconnect mconnect-mux)

# A mosh session and ssh -S through a jump host (ProxyJump, ProxyCommand).
mconnect_test(proxy_jump_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/proxy_jump_test.cc
  LIBS mconnect_lab_support
  LABELS e2e)
add_dependencies(proxy_jump_test mconnect mconnect-mux)

# --local: a mosh session on this machine with no SSH and no master.
mconnect_test(local_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/local_test.cc
  LIBS mconnect_lab_support
  LABELS e2e)
add_dependencies(local_test mconnect mconnect-mux)
