# scp, rsync, git, sftp and plain file redirections through the master's socket, each with
# unchanged OpenSSH clients (the tools run `ssh`, which reuses the master).
mconnect_test(openssh_tools_test
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/master/openssh_tools_test.cc
  LIBS mconnect_lab_support
  LABELS integration)
add_dependencies(openssh_tools_test mconnect mconnect-mux)
