# The chaos suite (docs/chaos.md): webhook -> ofe-eventsource -> bus ->
# ofe-trigger -> ofe sink on every backend, with kill -9 of the daemons and
# the broker at seeded random moments; nothing acknowledged may be lost and
# the counters must agree with the sink. About a minute per backend
# (OFE_CHAOS_SECONDS for longer runs, OFE_CHAOS_SEED to replay one).
ofe_test_program(test_chaos e2e/chaos_main.c e2e/chaos_feed.c e2e/chaos_proc.c)
if(OFE_TESTS)
  add_dependencies(test_chaos ofe-trigger ofe-cli ofe-eventbus ofe-kafka-mock)
  if(TARGET ofe-eventsource)
    add_dependencies(test_chaos ofe-eventsource)
  endif()
  foreach(backend embedded redis jetstream mqtt kafka)
    add_test(NAME chaos_${backend} COMMAND test_chaos ${backend})
    set_tests_properties(chaos_${backend} PROPERTIES ENVIRONMENT "${OFE_TEST_ENV}"
                         LABELS "chaos;e2e" TIMEOUT 900 SKIP_RETURN_CODE 77)
  endforeach()
endif()
# Found while running scripts/bench: a NATS source's context was freed while
# cnats could still run its disconnected callback (use-after-free on reload
# or exit). The reproducer reloads a NATS source away and back 15 times.
ofe_script_test(eventsource_nats_reload_uaf
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/e2e/repro_nats_source_uaf.sh ${PROJECT_BINARY_DIR}
  LABELS "e2e;eventsource")
if(OFE_TESTS)
  set_tests_properties(eventsource_nats_reload_uaf PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)
endif()
