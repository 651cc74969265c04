# Configuration (common/config*.c, duration.c, condition.c) and `ofe validate`.
ofe_unit_test(test_config_duration unit/test_config_duration.c)
ofe_unit_test(test_config_condition unit/test_config_condition.c)
ofe_unit_test(test_config unit/test_config.c)
ofe_unit_test(test_config_env unit/test_config_env.c)
ofe_unit_test(test_config_schema unit/test_config_schema.c)
ofe_unit_test(test_config_resolve unit/test_config_resolve.c)
