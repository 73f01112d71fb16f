# The NAT lab (tests/lab/nat-lab): stock mosh vs mconnect's remote-ip strategies behind a
# masquerading router, in network namespaces. Needs root.
mconnect_test(nat_lab_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/nat_lab_test.cc
  LIBS mconnect_lab_support
  LABELS nat)
add_dependencies(nat_lab_test mconnect mconnect-mux)

# The master on a 50 ms path (bench/netpath and mconnect-delay-link). Needs root.
mconnect_test(delayed_path_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/delayed_path_test.cc
  LIBS mconnect_lab_support
  LABELS nat)
add_dependencies(delayed_path_test mconnect mconnect-mux mconnect-delay-link)
