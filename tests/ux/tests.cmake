# What a user meets besides a session: the manual pages against the help, the shell
# completions, `mconnect doctor` / `status` / `master` against a real sshd, and the .deb.
mconnect_test(ux_unit_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/doctor_parse_test.cc ${CMAKE_CURRENT_LIST_DIR}/man_page_test.cc
  LIBS mconnect_launcher
  LABELS unit)
# The man page test reads `mconnect --help` from the built program and renders the pages.
add_dependencies(ux_unit_test mconnect)

mconnect_test(ux_lab_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/doctor_test.cc ${CMAKE_CURRENT_LIST_DIR}/completion_test.cc
          ${CMAKE_CURRENT_LIST_DIR}/master_command_test.cc ${CMAKE_CURRENT_LIST_DIR}/terminal_test.cc
          ${CMAKE_CURRENT_LIST_DIR}/persist_test.cc ${CMAKE_CURRENT_LIST_DIR}/exit_status_test.cc
          ${CMAKE_CURRENT_LIST_DIR}/family_test.cc
  LIBS mconnect_lab_support mconnect_launcher_messages
  LABELS integration)
add_dependencies(ux_lab_test mconnect mconnect-mux)

# The package as a user installs it: cpack -G DEB from this build, lintian, dpkg-deb -x into a
# fresh tree, and that tree's mconnect against a throwaway sshd. Not in the sanitizer build: a
# package of ASan binaries is not what anybody installs.
if(NOT MCONNECT_SANITIZE)
  add_test(NAME package_deb
    COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/package-test ${CMAKE_BINARY_DIR} ${PROJECT_SOURCE_DIR} ${PROJECT_VERSION})
  set_tests_properties(package_deb PROPERTIES LABELS package TIMEOUT 240)
endif()
