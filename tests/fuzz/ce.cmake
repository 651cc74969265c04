# CloudEvents: JSON format decode (single + batch, then encode of what
# decoded) and HTTP message decode (headers + body, every binding's decoder).
ofe_fuzzer(fuzz_ce_json fuzz/fuzz_ce_json.c)
ofe_fuzzer(fuzz_ce_http fuzz/fuzz_ce_http.c)
