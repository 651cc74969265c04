# Unit tests of ofe-trigger: its runtime (trigger/*.c without main.c) on the
# memory bus, with an in-process HTTP sink.
if(OFE_TESTS)
  file(GLOB TRG_CORE_SRCS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/trigger/*.c)
  list(FILTER TRG_CORE_SRCS EXCLUDE REGEX "/main\\.c$")
  ofe_unit_test(test_trigger unit/test_trigger.c unit/trigger_testsink.c ${TRG_CORE_SRCS}
                LABELS trigger)
  set_tests_properties(test_trigger PROPERTIES TIMEOUT 180)
endif()
