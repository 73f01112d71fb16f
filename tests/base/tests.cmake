# base/: wire encoding, subprocesses, byte queues, poll and the poller, the UDP socket owner.
mconnect_test(base_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/wire_test.cc ${CMAKE_CURRENT_LIST_DIR}/subprocess_test.cc
          ${CMAKE_CURRENT_LIST_DIR}/byte_queue_test.cc ${CMAKE_CURRENT_LIST_DIR}/poll_test.cc ${CMAKE_CURRENT_LIST_DIR}/poller_test.cc
          ${CMAKE_CURRENT_LIST_DIR}/udp_socket_owner_test.cc
  LIBS mconnect_base)
