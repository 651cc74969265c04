# End-to-end tests of ofe-trigger: real brokers, ofe-trigger processes
# from YAML, `ofe sink` processes as sinks (tests/e2e/test_trigger_e2e.c).
ofe_test_program(test_trigger_e2e e2e/test_trigger_e2e.c)
if(OFE_TESTS)
  add_dependencies(test_trigger_e2e ofe-trigger ofe-cli ofe-eventbus ofe-kafka-mock)
  if(TARGET ofe-eventsource)
    add_dependencies(test_trigger_e2e ofe-eventsource)
  endif()
  function(trigger_e2e name backend)
    add_test(NAME ${name} COMMAND test_trigger_e2e ${backend} ${ARGN})
    set_tests_properties(${name} PROPERTIES ENVIRONMENT "${OFE_TEST_ENV}"
                         LABELS "e2e;trigger" TIMEOUT 240 SKIP_RETURN_CODE 77)
  endfunction()
  trigger_e2e(trigger_e2e_embedded embedded pipeline invalid deadletter drain reload validate)
  trigger_e2e(trigger_e2e_eventsource embedded eventsource)
  trigger_e2e(trigger_e2e_kill9 embedded kill9)
  trigger_e2e(trigger_e2e_replicas embedded replicas)
  trigger_e2e(trigger_e2e_redis redis pipeline invalid replicas kill9)
  trigger_e2e(trigger_e2e_jetstream jetstream pipeline replicas kill9)
  trigger_e2e(trigger_e2e_kafka kafka pipeline replicas kill9)
  trigger_e2e(trigger_e2e_mqtt mqtt pipeline replicas kill9)
endif()
# `ofe sink` from the command line (curl and jq as clients).
ofe_script_test(ofe_sink_cli COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/e2e/test_ofe_sink.sh
                LABELS "e2e;trigger")
