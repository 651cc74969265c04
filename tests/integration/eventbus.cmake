# ofe-eventbus against real servers (tests/lib/servers.h).
# test_bus_diff: the same command scripts (tests/integration/eventbus_diff/)
# against redis-server 7 and ofe-eventbus; replies must match.
ofe_test_program(test_bus_diff integration/test_bus_diff.c)
if(OFE_TESTS)
  add_dependencies(test_bus_diff ofe-eventbus)
  add_test(NAME test_bus_diff COMMAND test_bus_diff)
  set_tests_properties(test_bus_diff PROPERTIES ENVIRONMENT "${OFE_TEST_ENV}"
                       LABELS "integration;eventbus" TIMEOUT 300)
endif()
# Crash test: writers and a consumer group under load, kill -9, restart,
# everything acknowledged is there (fsync always).
ofe_test_program(test_bus_crash integration/test_bus_crash.c)
if(OFE_TESTS)
  add_dependencies(test_bus_crash ofe-eventbus)
  add_test(NAME test_bus_crash COMMAND test_bus_crash)
  set_tests_properties(test_bus_crash PROPERTIES ENVIRONMENT "${OFE_TEST_ENV}"
                       LABELS "integration;eventbus" TIMEOUT 300)
endif()
# Limits: oversize events, max clients, a client that never reads, input
# over the limit, garbage protocol; the broker keeps serving.
ofe_test_program(test_bus_limits integration/test_bus_limits.c)
if(OFE_TESTS)
  add_dependencies(test_bus_limits ofe-eventbus)
  add_test(NAME test_bus_limits COMMAND test_bus_limits)
  set_tests_properties(test_bus_limits PROPERTIES ENVIRONMENT "${OFE_TEST_ENV}"
                       LABELS "integration;eventbus" TIMEOUT 300)
endif()
# HTTP ingress (libcurl): binary, structured, batch, 400, 413, 401, metrics.
ofe_test_program(test_bus_http integration/test_bus_http.c)
if(OFE_TESTS)
  add_dependencies(test_bus_http ofe-eventbus)
  add_test(NAME test_bus_http COMMAND test_bus_http)
  set_tests_properties(test_bus_http PROPERTIES ENVIRONMENT "${OFE_TEST_ENV}"
                       LABELS "integration;eventbus" TIMEOUT 120)
endif()
# redis-cli, redis-benchmark and the command line, from a shell.
if(OFE_TESTS)
  ofe_script_test(test_bus_cli COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_bus_cli.sh
                  LABELS "integration;eventbus")
  set_tests_properties(test_bus_cli PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)
endif()
# Storage failure (a write over the file size limit, as a full disk): the
# broker stays up, refuses writes with the reason, is not ready, and keeps
# exactly what it acknowledged across a kill -9 and restart.
if(OFE_TESTS)
  ofe_script_test(test_bus_storage COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_bus_storage.sh
                  LABELS "integration;eventbus")
  set_tests_properties(test_bus_storage PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)
endif()
