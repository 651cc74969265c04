# Configuration loader (corpus: tests/fuzz/corpus/config).
ofe_fuzzer(fuzz_config fuzz/fuzz_config.c)
