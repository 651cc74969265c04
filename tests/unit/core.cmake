# Unit tests of the shared runtime: the arena, metrics, HTTP server and client,
# delivery (retries), the pub/sub core with the memory backend.
ofe_unit_test(test_arena unit/test_arena.c)
ofe_unit_test(test_metrics unit/test_metrics.c)
ofe_unit_test(test_http unit/test_http.c)
ofe_unit_test(test_delivery unit/test_delivery.c)
ofe_unit_test(test_pubsub_memory unit/test_pubsub_memory.c)
