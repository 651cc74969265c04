# ofe-eventsource against real servers, run as a user runs it (the daemon
# from YAML, an HTTP sink in the test process): one test per source kind
# (attributes at the sink and on the bus, failing sinks, a bus that is
# down), and kill -9 under load for the at-least-once kinds.
if(OFE_TESTS)
  add_library(es_testlib STATIC integration/es_testlib.c)
  target_include_directories(es_testlib PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/integration)
  target_link_libraries(es_testlib PUBLIC ofe_testlib ofe PkgConfig::CMOCKA)
endif()
ofe_unit_test(test_es_kafka integration/test_es_kafka.c LIBS es_testlib LABELS integration)
if(OFE_TESTS)
  add_dependencies(test_es_kafka ofe-eventsource ofe-kafka-mock ofe-eventbus)
endif()
ofe_unit_test(test_es_nats integration/test_es_nats.c LIBS es_testlib LABELS integration)
if(OFE_TESTS)
  add_dependencies(test_es_nats ofe-eventsource ofe-eventbus)
endif()
