# The eventsource benchmark (a program, not a test): events/s from a Kafka
# and a NATS JetStream source to the embedded bus, next to the pub/sub
# benchmark's direct-client figures of the same backends in the same run.
ofe_test_program(bench_eventsource bench/bench_eventsource.c bench/bench_direct_kafka.c
                 bench/bench_direct_jetstream.c bench/bench_direct_redis.c LIBS ofe_eventsource)
if(TARGET bench_eventsource)
  target_include_directories(bench_eventsource PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/bench)
  add_dependencies(bench_eventsource ofe-eventbus ofe-kafka-mock)
endif()
