# CloudEvents core (common/ce*.c, common/hdrs.c): the event model and type
# system, the JSON format, every protocol binding, and the `ofe ce` commands.
ofe_unit_test(test_ce_model unit/test_ce_model.c)
ofe_unit_test(test_ce_json unit/test_ce_json.c)
ofe_unit_test(test_ce_bindings unit/test_ce_bindings.c)
ofe_script_test(test_ce_cli
  COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_ce_cli.sh $<TARGET_FILE:ofe-cli>
          ${PROJECT_SOURCE_DIR}/tests/fixtures/ce
  LABELS unit)
