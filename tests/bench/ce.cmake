# CloudEvents codec throughput (a program, not a test): build-ce/tests/bench_ce [SECONDS]
ofe_test_program(bench_ce bench/bench_ce.c)
