# The pub/sub benchmark (a program, not a test): bench_pubsub runs the same
# workload through the abstraction and directly with each client library.
# A backend adds tests/bench/bench_direct_<backend>.c (globbed here) and one
# line in the table in bench_pubsub.c.
file(GLOB BENCH_PUBSUB_DIRECT CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/bench/bench_direct_*.c)
ofe_test_program(bench_pubsub bench/bench_pubsub.c ${BENCH_PUBSUB_DIRECT})
if(TARGET bench_pubsub)
  target_include_directories(bench_pubsub PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/bench)
endif()
