# The master under attack, load and faults, against the real sshd lab and real OpenSSH
# clients. tests/hardening/run-under-valgrind runs the concurrency and fault tests again with
# the master under valgrind's memcheck.
add_library(mconnect_hardening_support STATIC ${CMAKE_CURRENT_LIST_DIR}/hardening.cc)
target_link_libraries(mconnect_hardening_support PUBLIC mconnect_lab_support mconnect_mux_socket_support)

foreach(suite access secrets faults fd_exhaustion half_close hostile_clients known_hosts suspend)
  mconnect_test(hardening_${suite}_test
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/${suite}_test.cc
    LIBS mconnect_hardening_support mconnect_mux
    LABELS hardening)
  add_dependencies(hardening_${suite}_test mconnect mconnect-mux)
endforeach()
# Hundreds of overlapping sessions, and the soak of everything at once: alone, for the same
# reason as the load test below.
foreach(suite overload soak)
  mconnect_test(hardening_${suite}_test
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/${suite}_test.cc
    LIBS mconnect_hardening_support mconnect_mux
    LABELS hardening
    SERIAL "*")
  add_dependencies(hardening_${suite}_test mconnect mconnect-mux)
endforeach()
mconnect_test(hardening_load_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/load_test.cc
  LIBS mconnect_hardening_support mconnect_mux
  LABELS hardening
  SERIAL "*")
add_dependencies(hardening_load_test mconnect mconnect-mux)
