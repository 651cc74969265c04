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
