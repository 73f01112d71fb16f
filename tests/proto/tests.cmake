# proto/: the control protocol's framing.
mconnect_test(proto_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/frame_test.cc
  LIBS mconnect_proto)
