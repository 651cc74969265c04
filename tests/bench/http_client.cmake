# The HTTP client alone (a program, not a test): our HTTP/1.1 engine and
# libcurl posting to a local nginx, next to wrk; throughput, CPU per
# request, latency at a fixed rate.
ofe_test_program(bench_http_client bench/bench_http_client.c)
