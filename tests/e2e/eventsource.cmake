# ofe-eventsource end to end: ofe-eventbus, `ofe sink`, curl and `ofe tail`
# around the daemon run from tests/fixtures/eventsource (webhook with GitHub
# signatures, cron, SIGHUP, --validate, SIGTERM).
ofe_script_test(eventsource_e2e COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/e2e/test_eventsource_e2e.sh
                LABELS e2e)
