# The pub/sub conformance suite (tests/integration/pubsub_conformance.c): one
# binary and one ctest per backend, each linking the suite with that
# backend's fixture (pubsub_fixture_<backend>.c, see pubsub_fixture.h). A
# backend adds itself with one line at the end of this file:
#
#     ofe_pubsub_conformance(<backend>)
#
# Exit status 77 (server not installed) shows as "skipped" in ctest.
function(ofe_pubsub_conformance backend)
  cmake_parse_arguments(P "" "TIMEOUT" "LABELS" ${ARGN})
  if(NOT OFE_TESTS)
    return()
  endif()
  if(NOT P_TIMEOUT)
    set(P_TIMEOUT 300)
  endif()
  set(name pubsub_conformance_${backend})
  # In the shared tree a line may land before its fixture file: say so
  # instead of breaking the configure step.
  if(NOT EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/integration/pubsub_fixture_${backend}.c)
    message(STATUS "${name}: integration/pubsub_fixture_${backend}.c does not exist yet; not built")
    return()
  endif()
  ofe_test_program(${name} integration/pubsub_conformance.c
                   integration/pubsub_fixture_${backend}.c)
  target_include_directories(${name} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/integration)
  ofe_script_test(${name} COMMAND ${name} LABELS "integration;pubsub;${P_LABELS}")
  set_tests_properties(${name} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT ${P_TIMEOUT})
endfunction()

ofe_pubsub_conformance(redis)

# The redis backend beyond the suite: option and authentication errors,
# trimming, start positions, redisDB, consumerID, foreign entries.
ofe_unit_test(test_pubsub_redis integration/pubsub_redis_test.c LABELS integration pubsub)
ofe_pubsub_conformance(mqtt)
ofe_pubsub_conformance(jetstream)
ofe_pubsub_conformance(kafka)

# ofe publish / ofe tail as a user runs them, against redis-server.
ofe_unit_test(test_pubsub_cli integration/pubsub_cli_test.c LABELS integration pubsub)
if(TARGET test_pubsub_cli)
  add_dependencies(test_pubsub_cli ofe-cli)
endif()
ofe_pubsub_conformance(embedded)
