# The test server harness itself: every packaged server starts on a free
# port, survives kill -9 and restart with its data directory.
ofe_unit_test(test_servers integration/test_servers.c LABELS integration)
