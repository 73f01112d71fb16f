# The NAT lab (tests/lab/nat-lab): stock mosh vs mconnect's remote-ip strategies behind a
# masquerading router, in network namespaces. Needs root.
mconnect_test(nat_lab_test
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/nat/nat_lab_test.cc
  LIBS mconnect_lab_support
  LABELS nat)
add_dependencies(nat_lab_test mconnect mconnect-mux)
