# ofe-eventbus: the RESP parser with command dispatch on an in-memory store,
# and storage recovery (segment + group journal images).
ofe_fuzzer(fuzz_resp fuzz/fuzz_resp.c LIBS ofebus)
ofe_fuzzer(fuzz_segment fuzz/fuzz_segment.c LIBS ofebus)
