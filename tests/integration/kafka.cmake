# The kafka pub/sub backend: its offset tracker (unit), and the backend
# against ofe-kafka-mock (tests/tools/kafka.cmake), a real Kafka protocol
# broker on librdkafka's mock cluster.
ofe_unit_test(test_kafka_track integration/test_kafka_track.c)
ofe_unit_test(test_pubsub_kafka integration/test_pubsub_kafka.c LABELS integration)
if(OFE_TESTS)
  target_include_directories(test_kafka_track PRIVATE ${PROJECT_SOURCE_DIR}/common)
  # The test starts the mock: build it first.
  add_dependencies(test_pubsub_kafka ofe-kafka-mock)
endif()
