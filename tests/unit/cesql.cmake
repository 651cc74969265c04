# CESQL engine: unit tests, the official TCK and the `ofe cesql` tool.
ofe_unit_test(test_cesql unit/test_cesql.c)

# The TCK runner exits 77 (SKIPPED) when the TCK directory is absent.
ofe_unit_test(test_cesql_tck unit/test_cesql_tck.c)
if(OFE_TESTS)
  set_tests_properties(test_cesql_tck PROPERTIES SKIP_RETURN_CODE 77)
endif()

# `ofe cesql` run as a user runs it.
ofe_test_program(test_cesql_cli unit/test_cesql_cli.c LIBS PkgConfig::CMOCKA)
ofe_script_test(test_cesql_cli COMMAND $<TARGET_FILE:test_cesql_cli> $<TARGET_FILE:ofe-cli>
                LABELS unit)
