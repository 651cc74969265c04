# ofe-eventbus benchmark (tests/bench/bench_eventbus.sh drives it): the
# hiredis consumer of its consume phase.
ofe_test_program(bench_eventbus_consume bench/bench_eventbus_consume.c)
