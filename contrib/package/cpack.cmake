# `cpack -G DEB` in a build directory makes mconnect_VERSION_ARCH.deb (scripts/package does it):
# the two programs (stripped), the manual pages, the completions, the systemd user unit and the
# documentation, installed under /usr. Dependencies: mosh (mosh-client, and mosh-server for
# `mconnect doctor`'s and --local's sake on a machine that is also a server), openssh-client
# (`ssh -G`, and the ssh, scp and rsync that reuse the master), and what dpkg-shlibdeps finds in
# the binaries (libssh2 is linked statically; OpenSSL, protobuf, zlib... are not).
set(doc ${CMAKE_INSTALL_DATADIR}/doc/mconnect)
find_program(GZIP gzip REQUIRED)
set(changelog ${CMAKE_CURRENT_BINARY_DIR}/changelog.gz)
add_custom_command(OUTPUT ${changelog}
  COMMAND ${GZIP} -9nc ${CMAKE_CURRENT_SOURCE_DIR}/contrib/package/changelog > ${changelog}
  DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/contrib/package/changelog)
add_custom_target(package_changelog ALL DEPENDS ${changelog})
install(FILES ${changelog} contrib/package/copyright DESTINATION ${doc})
install(FILES contrib/package/lintian-overrides DESTINATION ${CMAKE_INSTALL_DATADIR}/lintian/overrides RENAME mconnect)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME mconnect)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "mconnect developers <mconnect@example.org>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "mosh launcher with a persistent SSH master")
set(CPACK_PACKAGE_DESCRIPTION "mconnect opens mosh sessions like mosh does, over one authenticated SSH
connection per destination that it keeps open (like OpenSSH's ControlMaster),
so later sessions and ssh, scp, rsync or git start without a new handshake.
It finds the address where the server's mosh UDP port is really reachable
(also behind NAT) and checks each step with mconnect doctor.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "mosh, openssh-client")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
