# The trigger benchmark (a program, not a test): ofe-trigger vs wrk to the
# same local nginx, latency at a fixed rate, resident memory.
ofe_test_program(bench_trigger bench/bench_trigger.c)
if(TARGET bench_trigger)
  add_dependencies(bench_trigger ofe-trigger ofe-eventbus)
endif()
