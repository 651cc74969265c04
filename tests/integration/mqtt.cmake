# The mqtt pub/sub backend beyond the conformance suite (which is
# pubsub_conformance_mqtt in pubsub.cmake): libmosquitto PUBACK timing,
# options from YAML, bindings on the wire, a killed member resuming its
# session, unacked messages at close and across a broker restart, errors
# (options, unreachable broker, authentication, TLS, oversize with 3.1.1).
ofe_unit_test(test_pubsub_mqtt integration/test_pubsub_mqtt.c LABELS integration pubsub)
if(TARGET test_pubsub_mqtt)
  set_tests_properties(test_pubsub_mqtt PROPERTIES TIMEOUT 300)
endif()
