# The pub/sub benchmark (a program, not a test): bench_pubsub runs the same
# workload through the abstraction and directly with each client library.
# A backend adds tests/bench/bench_direct_<backend>.c defining
# `const struct bench_backend bench_<backend>` (picked up here) and one line
# in the table in bench_pubsub.c. Files without such a definition (e.g. a
# standalone program) are left out.
file(GLOB BENCH_PUBSUB_CANDIDATES CONFIGURE_DEPENDS
     ${CMAKE_CURRENT_SOURCE_DIR}/bench/bench_direct_*.c)
set(BENCH_PUBSUB_DIRECT "")
foreach(f ${BENCH_PUBSUB_CANDIDATES})
  file(STRINGS ${f} defines REGEX "^const struct bench_backend bench_")
  if(defines)
    list(APPEND BENCH_PUBSUB_DIRECT ${f})
  endif()
endforeach()
ofe_test_program(bench_pubsub bench/bench_pubsub.c ${BENCH_PUBSUB_DIRECT})
if(TARGET bench_pubsub)
  target_include_directories(bench_pubsub PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/bench)
endif()
