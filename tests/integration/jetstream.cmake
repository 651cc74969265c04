# The jetstream backend against a real nats-server -js (tests/lib/servers.h):
# confirmation, groups, nack delay, kill -9 of a member, server restart,
# natsStreaming EventBus, bad options, auth, max_payload.
ofe_unit_test(test_pubsub_jetstream integration/test_pubsub_jetstream.c LABELS integration)
