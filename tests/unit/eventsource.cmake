# Unit tests of ofe-eventsource's parts (linked from the ofe_eventsource
# library): cron expressions and time zones, webhook authentication, the
# Kafka offset window.
ofe_unit_test(test_es_cron unit/test_es_cron.c LIBS ofe_eventsource)
ofe_unit_test(test_es_parts unit/test_es_parts.c LIBS ofe_eventsource)
