# Configuration (common/config*.c, duration.c, condition.c) and `ofe validate`.
ofe_unit_test(test_config_duration unit/test_config_duration.c)
ofe_unit_test(test_config_condition unit/test_config_condition.c)
ofe_unit_test(test_config unit/test_config.c)
ofe_unit_test(test_config_env unit/test_config_env.c)
ofe_unit_test(test_config_schema unit/test_config_schema.c)
ofe_unit_test(test_config_resolve unit/test_config_resolve.c)

# `ofe validate` as a user runs it.
ofe_script_test(test_config_cli
  COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_config_cli.sh $<TARGET_FILE:ofe-cli>
          ${PROJECT_SOURCE_DIR}/tests/fixtures/config
  LABELS unit)

# docs/config.md is generated from the parsing tables: it must match.
# Regenerate with: ofe validate --dump-reference > docs/config.md
ofe_script_test(config_reference_uptodate
  COMMAND sh -c "\"$1\" validate --dump-reference | diff -u \"$2\" - && echo docs/config.md is up to date"
          sh $<TARGET_FILE:ofe-cli> ${PROJECT_SOURCE_DIR}/docs/config.md
  LABELS unit)

# Every example in configs/ validates, together, with the daemons' rules.
ofe_script_test(config_examples_validate
  COMMAND sh -c "cd \"$2\" && \"$1\" validate --strict configs/*.yaml"
          sh $<TARGET_FILE:ofe-cli> ${PROJECT_SOURCE_DIR}
  LABELS unit)
