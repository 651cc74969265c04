# ofe-kafka-mock: the Kafka test broker (librdkafka mock cluster) that the
# integration tests start through tests/lib/servers.c (TU_KAFKA). It lands
# in ${build}/tests/ofe-kafka-mock.
ofe_test_program(ofe-kafka-mock tools/kafka_mock.c)
# Programs that start the mock need it built (they are defined in earlier
# fragments: tests/bench, tests/integration).
foreach(t pubsub_conformance_kafka bench_pubsub)
  if(TARGET ${t})
    add_dependencies(${t} ofe-kafka-mock)
  endif()
endforeach()
