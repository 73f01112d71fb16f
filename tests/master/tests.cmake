# The master and launcher against a real sshd (no terminal needed). Every lab test runs the
# built executables, hence the dependencies on mconnect and mconnect-mux.

mconnect_test(master_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/master_test.cc
  LIBS mconnect_lab_support
  LABELS integration)
add_dependencies(master_test mconnect mconnect-mux)

# Unchanged OpenSSH clients through the master's socket.
mconnect_test(openssh_mux_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/openssh_mux_test.cc
  LIBS mconnect_lab_support
  LABELS integration
  SERIAL "*HundredConcurrent*")
add_dependencies(openssh_mux_test mconnect mconnect-mux)

# Unix-socket forwards on either side and remote dynamic forwarding (SOCKS served by the master),
# asked by unchanged OpenSSH clients.
mconnect_test(openssh_forward_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/openssh_forward_test.cc
  LIBS mconnect_lab_support
  LABELS integration)
add_dependencies(openssh_forward_test mconnect mconnect-mux)

# scp, rsync, git, sftp and plain file redirections through the master's socket, each with
# unchanged OpenSSH clients (the tools run `ssh`, which reuses the master).
mconnect_test(openssh_tools_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/openssh_tools_test.cc
  LIBS mconnect_lab_support
  LABELS integration)
add_dependencies(openssh_tools_test mconnect mconnect-mux)

# Hostile OpenSSH mux clients on the master's socket while a real transfer runs, and the fds an
# OpenSSH client lends the master (regular file, pipe, tty) coming back as they were lent.
mconnect_test(openssh_robustness_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/openssh_hostile_clients_test.cc ${CMAKE_CURRENT_LIST_DIR}/openssh_lent_fds_test.cc
  LIBS mconnect_lab_support mconnect_mux_socket_support
  LABELS integration)
add_dependencies(openssh_robustness_test mconnect mconnect-mux)

# The master across its server going away and coming back.
mconnect_test(reconnect_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/reconnect_test.cc
  LIBS mconnect_lab_support
  LABELS integration)
add_dependencies(reconnect_test mconnect mconnect-mux)

# mosh's datagrams over the master (the `ssh` transport).
mconnect_test(relay_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/relay_test.cc
  LIBS mconnect_lab_support mconnect_mosh
  LABELS integration)
add_dependencies(relay_test mconnect mconnect-mux)

# Beside OpenSSH and a user's habits: OpenSSH's own master at the same ControlPath, the runtime
# directory, a stopped master, the names status and stop take.
mconnect_test(habits_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/habits_test.cc
  LIBS mconnect_lab_support
  LABELS integration)
add_dependencies(habits_test mconnect mconnect-mux)

# A session while the server is silent or the master reconnects: the host and the silence are
# named, not mosh-server.
mconnect_test(silent_server_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/silent_server_test.cc
  LIBS mconnect_lab_support
  LABELS integration)
add_dependencies(silent_server_test mconnect mconnect-mux)

# What this machine must offer mosh-client is checked before the server starts a mosh-server.
mconnect_test(client_checks_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/client_checks_test.cc
  LIBS mconnect_lab_support
  LABELS integration)
add_dependencies(client_checks_test mconnect mconnect-mux)

# libssh2's error codes in words.
mconnect_test(ssh2_errors_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/ssh2_errors_test.cc
  LIBS mconnect_base
  LABELS unit)

# The environment of sessions through the master (SendEnv, SetEnv, git's GIT_PROTOCOL).
mconnect_test(openssh_env_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/openssh_env_test.cc
  LIBS mconnect_lab_support
  LABELS integration)
add_dependencies(openssh_env_test mconnect mconnect-mux)

# Where -L, -D and -R listen: both loopback families, as ssh does.
mconnect_test(openssh_bind_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/openssh_bind_test.cc
  LIBS mconnect_lab_support
  LABELS integration)
add_dependencies(openssh_bind_test mconnect mconnect-mux)
# Agent forwarding (ssh -A) through the master, with a real ssh-agent.
mconnect_test(agent_forwarding_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/agent_forwarding_test.cc
  LIBS mconnect_lab_support
  LABELS integration)
add_dependencies(agent_forwarding_test mconnect mconnect-mux)

# X11 forwarding (ssh -X/-Y) through the master, with a real Xvfb and xauth.
mconnect_test(x11_forwarding_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/x11_forwarding_test.cc
  LIBS mconnect_lab_support
  LABELS integration)
add_dependencies(x11_forwarding_test mconnect mconnect-mux)
# Port forwards the master opens by itself (the ssh config's LocalForward/RemoteForward/
# DynamicForward, the profile's `forward`), across a reconnect, and in `mconnect status`.
mconnect_test(configured_forwards_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/configured_forwards_test.cc
  LIBS mconnect_lab_support
  LABELS integration)
add_dependencies(configured_forwards_test mconnect mconnect-mux)
