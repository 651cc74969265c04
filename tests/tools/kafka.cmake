# ofe-kafka-mock: the Kafka test broker (librdkafka mock cluster) that the
# integration tests start through tests/lib/servers.c (TU_KAFKA). It lands
# in ${build}/tests/ofe-kafka-mock.
ofe_test_program(ofe-kafka-mock tools/kafka_mock.c)
