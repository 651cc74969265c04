# CESQL: parser and evaluator together (corpus: tests/fuzz/corpus/cesql).
ofe_fuzzer(fuzz_cesql fuzz/fuzz_cesql.c)
