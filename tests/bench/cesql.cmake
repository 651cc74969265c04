# CESQL evaluation speed (a program, not a test): build/tests/bench_cesql [SECONDS]
ofe_test_program(bench_cesql bench/bench_cesql.c)
