# ofe-eventbus unit tests: RESP parser, storage (segments, journal,
# recovery fixtures in tests/fixtures/eventbus, retention), stream model.
ofe_unit_test(test_bus_resp unit/test_bus_resp.c LIBS ofebus)
ofe_unit_test(test_bus_store unit/test_bus_store.c LIBS ofebus)
ofe_unit_test(test_bus_stream unit/test_bus_stream.c LIBS ofebus)
