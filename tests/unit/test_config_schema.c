/* The schema of every kind: values land in the right struct members,
 * defaults apply, and each block's own rules report precise errors. */
#include "test_config_helpers.h"

#include "ofe/condition.h"

static void test_kafka_source(void **state)
{
    (void)state;
    struct ofe_config *cfg = tc_load(ES_HEAD "  eventBus: default\n"
                                             "  kafka:\n"
                                             "    sample-one:\n"
                                             "      brokers: [\"a:9092\", \" b:9093 \"]\n"
                                             "      authRequired: true\n"
                                             "      topic: events\n"
                                             "      saslUsername: user\n"
                                             "      saslPassword: pw\n"
                                             "      saslMechanism: SHA-512\n"
                                             "      maxMessageBytes: 2MiB\n"
                                             "      scaleOption: {minReplicaCount: 1}\n"
                                             "      initialOffset: oldest\n"
                                             "      tls: {insecureSkipVerify: true}\n"
                                             "      rdkafka.fetch.wait.max.ms: 100\n"
                                             "      rdkafka:\n"
                                             "        socket.keepalive.enable: true\n");
    assert_errors(cfg, 0);
    assert_diag(cfg, "t.yaml:16:20: warning: spec.kafka.sample-one.scaleOption: ignored: KEDA "
                     "scaling options apply to Kubernetes deployments only.");
    const struct ofe_config_eventsource *es = cfg->eventsources[0];
    const struct ofe_config_kafka_source *k = &es->spec.kafka.v[0];
    assert_string_equal(k->brokers, "a:9092,b:9093");
    assert_true(k->auth_required);
    assert_string_equal(k->topic, "events");
    assert_string_equal(k->sasl_username, "user");
    assert_string_equal(k->sasl_password, "pw");
    assert_null(k->sasl_password_file);
    assert_int_equal(k->sasl_mechanism, OFE_CONFIG_SASL_SCRAM_SHA_512);
    assert_int_equal(k->max_message_bytes, 2 * 1048576);
    assert_int_equal(k->initial_offset, OFE_CONFIG_OFFSET_OLDEST);
    assert_true(k->tls.node.present);
    assert_true(k->tls.insecure_skip_verify);
    assert_string_equal(k->consumer_group, "default-es-sample-one");
    assert_int_equal(k->rdkafka.n, 2);
    assert_string_equal(k->rdkafka.v[0].key, "fetch.wait.max.ms");
    assert_string_equal(k->rdkafka.v[0].value, "100");
    assert_string_equal(k->rdkafka.v[1].key, "socket.keepalive.enable");
    assert_string_equal(k->rdkafka.v[1].value, "true");
    /* The flattened event list and the bus topic. */
    assert_int_equal(es->nevents, 1);
    assert_int_equal(es->events[0].kind, OFE_CONFIG_SOURCE_KAFKA);
    assert_string_equal(es->events[0].kind_name, "kafka");
    assert_string_equal(es->events[0].name, "sample-one");
    assert_ptr_equal(es->events[0].spec, &k->node);
    assert_string_equal(es->events[0].bus_topic, "default-es-sample-one");
    /* Defaults of the EventSource's own delivery options. */
    assert_false(es->spec.delivery.node.present);
    assert_int_equal(es->spec.delivery.retry, 3);
    assert_int_equal(es->spec.delivery.backoff_policy, OFE_CONFIG_BACKOFF_EXPONENTIAL);
    assert_int_equal(es->spec.delivery.backoff_delay_ms, 200);
    assert_int_equal(es->spec.delivery.backoff_cap_ms, 60000);
    assert_int_equal(es->spec.delivery.timeout_ms, 30000);
    assert_int_equal(es->spec.mode, OFE_CONFIG_MODE_BINARY);
    ofe_config_destroy(cfg);

    cfg = tc_load(ES_HEAD "  eventBus: default\n"
                          "  kafka:\n"
                          "    k:\n"
                          "      brokers: a:1\n"
                          "      authRequired: false\n"
                          "      topic: t\n"
                          "      saslUsername: u\n"
                          "      rdkafka.x: 1\n"
                          "      rdkafka: {x: 2}\n"
                          "      tls: {clientCert: c}\n");
    assert_diag(cfg, "t.yaml:12:21: warning: spec.kafka.k.saslUsername: ignored because "
                     "authRequired is false");
    assert_diag(cfg, "t.yaml:14:17: error: spec.kafka.k.rdkafka.x: 'x' is set twice");
    assert_diag(cfg, "t.yaml:15:7: error: spec.kafka.k.tls.clientKey: clientCert and clientKey "
                     "go together (give both or neither)");
    assert_errors(cfg, 2);
    ofe_config_destroy(cfg);
}

static void test_cron_source(void **state)
{
    (void)state;
    struct ofe_config *cfg =
        tc_load(ES_HEAD "  eventBus: default\n"
                        "  cron:\n"
                        "    a: {schedule: '*/5 * * * *'}\n"
                        "    b: {schedule: '0 */5 * * * *', timezone: UTC,"
                        " catchup: true, data: '{\"x\":1}', contentType: "
                        "application/json}\n"
                        "    c: {schedule: 'CRON_TZ=Europe/Berlin 0 9 * * 1-5'}\n"
                        "    d: {schedule: '@daily'}\n"
                        "    e: {schedule: '@every 1m30s'}\n");
    assert_clean(cfg);
    const struct ofe_config_cron_source *c = cfg->eventsources[0]->spec.cron.v;
    assert_false(c[0].catchup);
    assert_null(c[0].data);
    assert_string_equal(c[0].content_type, "text/plain");
    assert_true(c[1].catchup);
    assert_string_equal(c[1].timezone, "UTC");
    assert_string_equal(c[1].data, "{\"x\":1}");
    assert_string_equal(c[1].content_type, "application/json");
    assert_string_equal(c[2].schedule, "CRON_TZ=Europe/Berlin 0 9 * * 1-5");
    ofe_config_destroy(cfg);

    cfg = tc_load(ES_HEAD "  eventBus: default\n"
                          "  cron:\n"
                          "    a: {schedule: '@every 5x'}\n"
                          "    b: {schedule: '@weekday'}\n"
                          "    c: {schedule: '* * * * * * *'}\n"
                          "    d: {schedule: '* * * * $'}\n"
                          "    e: {schedule: 'CRON_TZ=UTC * * * * *', timezone: UTC}\n"
                          "    f: {schedule: '* * * * *', timezone: Mars/Olympus}\n");
    assert_diag(cfg, "t.yaml:8:19: error: spec.cron.a.schedule: bad @every interval: unknown unit "
                     "'x' (expected ns, us, ms, s, m or h)");
    assert_diag(cfg, "t.yaml:9:19: error: spec.cron.b.schedule: unknown schedule '@weekday'");
    assert_diag(cfg, "t.yaml:10:19: error: spec.cron.c.schedule: '* * * * * * *' has 7 fields");
    assert_diag(cfg, "t.yaml:11:19: error: spec.cron.d.schedule: unexpected character '$' in "
                     "schedule '* * * * $'");
    assert_diag(cfg, "t.yaml:12:54: error: spec.cron.e.timezone: give the time zone either as "
                     "timezone or as a CRON_TZ= prefix, not both");
    assert_diag(cfg, "t.yaml:13:42: error: spec.cron.f.timezone: unknown time zone "
                     "'Mars/Olympus'");
    assert_errors(cfg, 6);
    ofe_config_destroy(cfg);
}

static void test_redis_source(void **state)
{
    (void)state;
    struct ofe_config *cfg = tc_load(ES_HEAD "  eventBus: default\n"
                                             "  redis:\n"
                                             "    s:\n"
                                             "      redisHost: 127.0.0.1:6379\n"
                                             "      redisPassword: \"\"\n"
                                             "      stream: orders\n"
                                             "      redisDB: 2\n"
                                             "      processingTimeout: PT30S\n"
                                             "      enableTLS: true\n"
                                             "    p:\n"
                                             "      redisHost: '[::1]:6379'\n"
                                             "      redisPassword: x\n"
                                             "      channel: news\n");
    assert_clean(cfg);
    const struct ofe_config_redis_source *r = cfg->eventsources[0]->spec.redis.v;
    assert_string_equal(r[0].redis_password, "");
    assert_string_equal(r[0].stream, "orders");
    assert_int_equal(r[0].redis_db, 2);
    assert_int_equal(r[0].processing_timeout_ms, 30000);
    assert_int_equal(r[0].redeliver_interval_ms, 60000);
    assert_int_equal(r[0].dial_timeout_ms, 5000);
    assert_int_equal(r[0].pool_size, 10);
    assert_true(r[0].enable_tls);
    assert_string_equal(r[0].consumer_group, "default-es-s");
    assert_null(r[1].consumer_group); /* channels have no group */
    ofe_config_destroy(cfg);

    cfg = tc_load(ES_HEAD "  eventBus: default\n"
                          "  redis:\n"
                          "    s: {redisHost: 'h:1', stream: a, channel: b, failover: true}\n"
                          "    t: {redisHost: 'h:99999', redisPassword: '', channel: c, "
                          "consumerGroup: g}\n");
    assert_diag(cfg, "t.yaml:8:5: error: spec.redis.s.redisPassword: missing required field "
                     "'redisPassword' (or 'redisPasswordFile'): Password (may be \"\" for none).");
    assert_diag(cfg, "t.yaml:8:47: error: spec.redis.s.channel: set only one of stream and "
                     "channel");
    assert_diag(cfg, "t.yaml:8:5: error: spec.redis.s.sentinelMasterName: failover is true: "
                     "sentinelMasterName is required");
    assert_diag(cfg, "t.yaml:9:20: error: spec.redis.t.redisHost: 'h:99999' has no valid port "
                     "(1-65535)");
    assert_diag(cfg, "t.yaml:9:77: warning: spec.redis.t.consumerGroup: ignored for a pub/sub "
                     "channel");
    assert_errors(cfg, 4);
    ofe_config_destroy(cfg);
}

static void test_mqtt_nats_webhook(void **state)
{
    (void)state;
    struct ofe_config *cfg = tc_load(ES_HEAD "  sink: {uri: 'https://fn.example/'}\n"
                                             "  mqtt:\n"
                                             "    m:\n"
                                             "      url: ssl://broker:8883\n"
                                             "      topic: sensors/+/temp\n"
                                             "      qos: 2\n"
                                             "      protocolVersion: 311\n"
                                             "      username: u\n"
                                             "      password: p\n"
                                             "  nats:\n"
                                             "    n:\n"
                                             "      url: nats://a:4222, tls://b:4222\n"
                                             "      subject: orders.>\n"
                                             "      queueGroup: q\n"
                                             "      jetstream: {stream: ORDERS, maxDeliver: 5}\n"
                                             "    n.2:\n"
                                             "      url: nats://a:4222\n"
                                             "      subject: x\n"
                                             "  webhook:\n"
                                             "    gh:\n"
                                             "      port: 12000\n"
                                             "      endpoint: /github\n"
                                             "      auth: {github: {secret: abc}}\n"
                                             "    hm:\n"
                                             "      port: 12000\n"
                                             "      endpoint: /hmac\n"
                                             "      method: put\n"
                                             "      maxPayloadSize: 64Ki\n"
                                             "      auth:\n"
                                             "        hmac: {header: X-Sig, secret: k, "
                                             "algorithm: sha512, prefix: 'sha512='}\n");
    assert_clean(cfg);
    const struct ofe_config_eventsource *es = cfg->eventsources[0];
    const struct ofe_config_mqtt_source *m = &es->spec.mqtt.v[0];
    assert_int_equal(m->qos, 2);
    assert_int_equal(m->protocol_version, OFE_CONFIG_MQTT_V311);
    assert_false(m->clean_session);
    assert_int_equal(m->keep_alive_ms, 60000);
    assert_string_equal(m->consumer_id, "default-es-m");
    const struct ofe_config_nats_source *n = es->spec.nats.v;
    assert_true(n[0].jetstream.node.present);
    assert_string_equal(n[0].jetstream.stream, "ORDERS");
    assert_string_equal(n[0].jetstream.durable, "default-es-n");
    assert_int_equal(n[0].jetstream.max_deliver, 5);
    assert_int_equal(n[0].jetstream.ack_wait_ms, 30000);
    assert_false(n[1].jetstream.node.present);
    assert_null(n[1].jetstream.durable);
    const struct ofe_config_webhook_source *w = es->spec.webhook.v;
    assert_string_equal(w[0].address, "0.0.0.0");
    assert_int_equal(w[0].method, OFE_CONFIG_HTTP_POST);
    assert_int_equal(w[0].max_payload_size, 1048576);
    assert_true(w[0].auth.github.node.present);
    assert_string_equal(w[0].auth.github.secret, "abc");
    assert_false(w[0].auth.hmac.node.present);
    assert_int_equal(w[1].method, OFE_CONFIG_HTTP_PUT);
    assert_string_equal(ofe_config_http_method_names[w[1].method], "PUT");
    assert_int_equal(w[1].max_payload_size, 65536);
    assert_string_equal(w[1].auth.hmac.header, "X-Sig");
    assert_int_equal(w[1].auth.hmac.algorithm, OFE_CONFIG_HMAC_SHA512);
    assert_string_equal(w[1].auth.hmac.prefix, "sha512=");
    assert_string_equal(es->events[2].bus_topic, "default-es-n.2");
    ofe_config_destroy(cfg);

    cfg = tc_load(ES_HEAD "  eventBus: default\n"
                          "  mqtt:\n"
                          "    m: {url: 'http://b:1883', topic: t, password: p}\n"
                          "  nats:\n"
                          "    n: {url: 'nats://a:1', subject: s, token: t, user: u}\n"
                          "  webhook:\n"
                          "    a: {port: 8080, endpoint: hook, auth: {github: {secret: s}, "
                          "bearer: {token: t}}}\n"
                          "    b: {port: 8080, endpoint: /x, auth: {hmac: {secret: s}}}\n"
                          "    c: {port: 8080, endpoint: /x}\n"
                          "    d: {port: 8080, endpoint: /x, method: GET, address: 127.0.0.1}\n");
    assert_diag(cfg, "t.yaml:8:14: error: spec.mqtt.m.url: 'http://b:1883' is not a URL with a "
                     "host and one of the schemes tcp://, mqtt://, ssl://, mqtts://, tls://");
    assert_diag(cfg, "t.yaml:8:5: error: spec.mqtt.m.username: password is set: username is "
                     "required");
    assert_diag(cfg, "t.yaml:10:5: error: spec.nats.n: choose one authentication: credentials, "
                     "token, user/password or nkeySeed");
    assert_diag(cfg, "t.yaml:12:31: error: spec.webhook.a.endpoint: endpoint 'hook' must start "
                     "with '/'");
    assert_diag(cfg, "t.yaml:12:37: error: spec.webhook.a.auth: give at most one of github, "
                     "gitlab, bearer and hmac");
    assert_diag(cfg, "t.yaml:13:42: error: spec.webhook.b.auth.hmac.header: missing required "
                     "field 'header'");
    assert_diag(cfg, "t.yaml:14:31: error: spec.webhook.c.endpoint: POST /x on port 8080 is "
                     "already served by default/es spec.webhook.b (t.yaml:13)");
    assert_diag(cfg, "t.yaml:15:15: error: spec.webhook.d.port: port 8080 is already used with "
                     "address 0.0.0.0 by default/es spec.webhook.a (t.yaml:12)");
    assert_errors(cfg, 8);
    ofe_config_destroy(cfg);
}

static void test_eventbus_backends(void **state)
{
    (void)state;
    struct ofe_config *cfg = tc_load(BUS_HEAD "  embedded: {}\n"
                                              "---\n"
                                              "apiVersion: events.openfunction.io/v1alpha1\n"
                                              "kind: EventBus\n"
                                              "metadata: {name: k}\n"
                                              "spec:\n"
                                              "  topic: unused\n"
                                              "  kafka:\n"
                                              "    brokers: a:1,b:2\n"
                                              "    authType: password\n"
                                              "    saslUsername: u\n"
                                              "    saslPassword: p\n"
                                              "    compression: zstd\n"
                                              "    rdkafka.linger.ms: 5\n"
                                              "---\n"
                                              "apiVersion: events.openfunction.io/v1alpha1\n"
                                              "kind: ClusterEventBus\n"
                                              "metadata: {name: j}\n"
                                              "spec:\n"
                                              "  jetstream:\n"
                                              "    natsURL: nats://n:4222\n"
                                              "    streamName: EV\n"
                                              "    backOff: 50ms, 1s, PT10S\n"
                                              "    deliverPolicy: sequence\n"
                                              "    startSequence: 7\n"
                                              "---\n"
                                              "apiVersion: events.openfunction.io/v1alpha1\n"
                                              "kind: EventBus\n"
                                              "metadata: {name: m}\n"
                                              "spec:\n"
                                              "  mqtt: {url: 'tcp://m:1883', sessionExpiry: 2h}\n"
                                              "---\n"
                                              "apiVersion: events.openfunction.io/v1alpha1\n"
                                              "kind: EventBus\n"
                                              "metadata: {name: r}\n"
                                              "spec:\n"
                                              "  redis: {redisHost: 'r:6379', maxLenApprox: "
                                              "10000, streamTTL: 1h}\n");
    assert_clean(cfg);
    assert_int_equal(cfg->nbuses, 5);
    const struct ofe_config_bus *b = cfg->buses[0];
    assert_int_equal(b->backend, OFE_CONFIG_BUS_EMBEDDED);
    assert_true(b->valid);
    const struct ofe_config_embedded_bus *e = &b->spec.embedded;
    assert_string_equal(e->address, "127.0.0.1:6380");
    assert_int_equal(e->http_port, 8089);
    assert_string_equal(e->data_dir, "ofe-eventbus-data");
    assert_int_equal(e->fsync, OFE_CONFIG_FSYNC_EVERYSEC);
    assert_int_equal(e->retention.max_age_ms, 7 * 24 * 3600 * 1000LL);
    assert_int_equal(e->limits.max_event_size, 4 * 1048576);
    assert_int_equal(e->limits.max_clients, 10000);
    assert_int_equal(e->limits.client_output_buffer, 64 * 1048576);
    assert_null(e->requirepass);
    assert_false(e->tls.node.present);
    b = cfg->buses[1];
    assert_int_equal(b->backend, OFE_CONFIG_BUS_KAFKA);
    assert_string_equal(b->spec.topic, "unused");
    assert_string_equal(b->spec.kafka.brokers, "a:1,b:2");
    assert_int_equal(b->spec.kafka.auth_type, OFE_CONFIG_KAFKA_AUTH_PASSWORD);
    assert_int_equal(b->spec.kafka.compression, OFE_CONFIG_COMPRESSION_ZSTD);
    assert_string_equal(b->spec.kafka.rdkafka.v[0].key, "linger.ms");
    b = cfg->buses[2];
    assert_int_equal(b->doc.kind, OFE_CONFIG_CLUSTEREVENTBUS);
    assert_int_equal(b->backend, OFE_CONFIG_BUS_JETSTREAM);
    assert_int_equal(b->spec.jetstream.back_off.n, 3);
    assert_int_equal(b->spec.jetstream.back_off.v[0], 50);
    assert_int_equal(b->spec.jetstream.back_off.v[2], 10000);
    assert_int_equal(b->spec.jetstream.deliver_policy, OFE_CONFIG_DELIVER_SEQUENCE);
    assert_int_equal(b->spec.jetstream.max_ack_pending, 1000);
    assert_false(b->spec.jetstream.from_nats_streaming);
    assert_int_equal(cfg->buses[3]->spec.mqtt.session_expiry_ms, 7200000);
    assert_int_equal(cfg->buses[3]->spec.mqtt.qos, 1);
    assert_int_equal(cfg->buses[4]->spec.redis.max_len_approx, 10000);
    assert_int_equal(cfg->buses[4]->spec.redis.processing_timeout_ms, 15000);
    ofe_config_destroy(cfg);

    cfg = tc_load(BUS_HEAD "  topic: x\n"
                           "---\n"
                           "apiVersion: events.openfunction.io/v1alpha1\n"
                           "kind: EventBus\n"
                           "metadata:\n"
                           "  name: bus2\n"
                           "spec:\n"
                           "  kafka: {brokers: 'a:1', authType: mtls}\n"
                           "  mqtt: {url: 'tcp://m:1'}\n"
                           "  embedded: {fsync: sometimes, address: localhost, "
                           "limits: {maxEventSize: 10}}\n");
    assert_diag(cfg, "t.yaml:5:1: error: spec: no backend: add one of natsStreaming, jetstream, "
                     "kafka, mqtt, redis or embedded");
    assert_diag(cfg, "t.yaml:14:3: error: spec.mqtt: only one backend block is allowed: kafka is "
                     "already given (line 13)");
    assert_diag(cfg, "t.yaml:15:3: error: spec.embedded: only one backend block is allowed: kafka "
                     "is already given (line 13)");
    assert_diag(cfg, "t.yaml:13:3: error: spec.kafka.clientCert: authType mtls needs clientCert "
                     "and clientKey");
    assert_diag(cfg, "t.yaml:15:21: error: spec.embedded.fsync: unknown value 'sometimes' "
                     "(expected one of: always, everysec, no)");
    assert_diag(cfg, "t.yaml:15:41: error: spec.embedded.address: 'localhost' is not host:port");
    assert_diag(cfg, "t.yaml:15:75: error: spec.embedded.limits.maxEventSize: value 10 is out of "
                     "range (allowed 1024 to 536870912)");
    assert_errors(cfg, 7);
    /* Documents with errors are kept (and marked): resolution refuses them. */
    assert_int_equal(cfg->nbuses, 2);
    assert_false(cfg->buses[0]->valid);
    assert_false(cfg->buses[1]->valid);
    assert_int_equal(cfg->buses[1]->doc.nerrors, 6);
    ofe_config_destroy(cfg);
}

static void test_nats_streaming(void **state)
{
    (void)state;
    struct ofe_config *cfg = tc_load(BUS_HEAD "  natsStreaming:\n"
                                              "    natsURL: nats://nats.default:4222\n"
                                              "    natsStreamingClusterID: stan\n"
                                              "    subscriptionType: queue\n"
                                              "    durableSubscriptionName: ImDurable\n"
                                              "    ackWaitTime: 2m\n"
                                              "    maxInFlight: 50\n"
                                              "    startAtTime: '2024-05-01T12:00:00+02:00'\n"
                                              "    scaleOption: {lagThreshold: '10'}\n");
    assert_errors(cfg, 0);
    assert_diag(cfg, "t.yaml:6:3: warning: spec.natsStreaming: natsStreaming (NATS Streaming is "
                     "end-of-life) runs on NATS JetStream: natsURL=nats://nats.default:4222, "
                     "durableName=ImDurable, queueGroupName=ImDurable, ackWait=120000ms, "
                     "maxAckPending=50, deliverPolicy=time; natsStreamingClusterID 'stan' is not "
                     "used");
    assert_diag(cfg, "t.yaml:14:18: warning: spec.natsStreaming.scaleOption: ignored");
    const struct ofe_config_bus *b = cfg->buses[0];
    assert_int_equal(b->backend, OFE_CONFIG_BUS_JETSTREAM);
    assert_true(b->valid);
    const struct ofe_config_jetstream_bus *j = &b->spec.jetstream;
    assert_true(j->node.present);
    assert_true(j->from_nats_streaming);
    assert_string_equal(j->nats_url, "nats://nats.default:4222");
    assert_string_equal(j->durable_name, "ImDurable");
    assert_string_equal(j->queue_group_name, "ImDurable");
    assert_int_equal(j->ack_wait_ms, 120000);
    assert_int_equal(j->max_ack_pending, 50);
    assert_int_equal(j->deliver_policy, OFE_CONFIG_DELIVER_TIME);
    assert_int_equal(j->start_time, 1714557600); /* 2024-05-01T10:00:00Z */
    ofe_config_destroy(cfg);

    cfg = tc_load(BUS_HEAD "  natsStreaming:\n"
                           "    natsURL: nats://n:4222\n"
                           "    subscriptionType: fanout\n"
                           "    deliverNew: true\n"
                           "    deliverAll: true\n"
                           "    startAtTime: yesterday\n"
                           "    startAtTimeFormat: '2006-01-02'\n");
    assert_diag(cfg, "t.yaml:6:3: error: spec.natsStreaming.natsStreamingClusterID: missing "
                     "required field 'natsStreamingClusterID'");
    assert_diag(cfg, "t.yaml:8:23: error: spec.natsStreaming.subscriptionType: unknown value "
                     "'fanout' (expected one of: topic, queue)");
    assert_diag(cfg, "t.yaml:6:3: error: spec.natsStreaming: give at most one of deliverNew, "
                     "deliverAll");
    assert_errors(cfg, 3);
    ofe_config_destroy(cfg);

    cfg = tc_load(BUS_HEAD "  natsStreaming:\n"
                           "    natsURL: nats://n:4222\n"
                           "    natsStreamingClusterID: c\n"
                           "    subscriptionType: topic\n"
                           "    startAtTime: yesterday\n"
                           "    startAtTimeFormat: '2006-01-02'\n");
    assert_diag(cfg, "t.yaml:11:24: error: spec.natsStreaming.startAtTimeFormat: only RFC 3339 "
                     "(2006-01-02T15:04:05Z07:00) is supported");
    assert_diag(cfg, "t.yaml:10:18: error: spec.natsStreaming.startAtTime: 'yesterday' is not an "
                     "RFC 3339 time");
    assert_errors(cfg, 2);
    ofe_config_destroy(cfg);
}

static void test_components(void **state)
{
    (void)state;
    struct ofe_config *cfg = tc_load(COMPONENT_HEAD "  type: pubsub.kafka\n"
                                                    "  version: v1\n"
                                                    "  metadata:\n"
                                                    "  - name: brokers\n"
                                                    "    value: \"k:9092\"\n"
                                                    "  - name: authType\n"
                                                    "    value: \"none\"\n"
                                                    "  - name: maxMessageBytes\n"
                                                    "    value: \"1024\"\n"
                                                    "  - name: disableTls\n"
                                                    "    value: \"true\"\n"
                                                    "  - name: initialOffset\n"
                                                    "    value: oldest\n"
                                                    "  - name: version\n"
                                                    "    value: 2.0.0\n"
                                                    "---\n"
                                                    "apiVersion: dapr.io/v1alpha1\n"
                                                    "kind: Component\n"
                                                    "metadata: {name: js, namespace: prod}\n"
                                                    "spec:\n"
                                                    "  type: pubsub.jetstream\n"
                                                    "  metadata:\n"
                                                    "  - {name: natsURL, value: 'nats://n:4222'}\n"
                                                    "  - {name: maxDeliver, value: '5'}\n"
                                                    "  - {name: ackWait, value: 10s}\n"
                                                    "  - {name: memoryStorage, value: 'yes'}\n"
                                                    "---\n"
                                                    "apiVersion: dapr.io/v1alpha1\n"
                                                    "kind: Component\n"
                                                    "metadata: {name: mq}\n"
                                                    "spec:\n"
                                                    "  type: pubsub.mqtt3\n"
                                                    "  metadata:\n"
                                                    "  - {name: url, value: 'tcp://m:1883'}\n"
                                                    "  - {name: qos, value: 0}\n"
                                                    "  - {name: cleanSession, value: true}\n"
                                                    "scopes: [app1]\n");
    assert_errors(cfg, 0);
    assert_diag(cfg, "t.yaml:20:12: warning: spec.metadata.version: ignored: Dapr option; "
                     "librdkafka negotiates the protocol version.");
    const struct ofe_config_bus *b = cfg->buses[0];
    assert_int_equal(b->doc.kind, OFE_CONFIG_COMPONENT);
    assert_string_equal(b->spec.type, "pubsub.kafka");
    assert_int_equal(b->backend, OFE_CONFIG_BUS_KAFKA);
    assert_true(b->valid);
    assert_string_equal(b->spec.kafka.brokers, "k:9092");
    assert_int_equal(b->spec.kafka.max_message_bytes, 1024);
    assert_true(b->spec.kafka.disable_tls);
    assert_int_equal(b->spec.kafka.initial_offset, OFE_CONFIG_OFFSET_OLDEST);
    assert_int_equal(b->spec.kafka.sasl_mechanism, OFE_CONFIG_SASL_PLAIN);
    assert_string_equal(ofe_config_field_pos(&b->spec.kafka.node, "brokers")->file, "t.yaml");
    assert_int_equal(ofe_config_field_pos(&b->spec.kafka.node, "brokers")->line, 10);
    b = cfg->buses[1];
    assert_string_equal(b->doc.namespace, "prod");
    assert_int_equal(b->backend, OFE_CONFIG_BUS_JETSTREAM);
    assert_int_equal(b->spec.jetstream.max_deliver, 5);
    assert_int_equal(b->spec.jetstream.ack_wait_ms, 10000);
    assert_true(b->spec.jetstream.memory_storage);
    b = cfg->buses[2];
    assert_int_equal(b->backend, OFE_CONFIG_BUS_MQTT);
    assert_int_equal(b->spec.mqtt.qos, 0);
    assert_true(b->spec.mqtt.clean_session);
    ofe_config_destroy(cfg);

    cfg = tc_load(COMPONENT_HEAD "  type: pubsub.redis\n"
                                 "  metadata:\n"
                                 "  - name: redisHots\n"
                                 "    value: r:1\n"
                                 "  - name: redisDB\n"
                                 "    value: \"two\"\n"
                                 "  - name: redisDB\n"
                                 "    value: \"3\"\n"
                                 "  - value: x\n"
                                 "  - name: concurrency\n"
                                 "  - name: enableTLS\n"
                                 "    value: maybe\n"
                                 "    extra: 1\n"
                                 "---\n"
                                 "apiVersion: dapr.io/v1alpha1\n"
                                 "kind: Component\n"
                                 "metadata: {name: c2}\n"
                                 "spec:\n"
                                 "  type: pubsub.natsstreaming\n"
                                 "---\n"
                                 "apiVersion: dapr.io/v1alpha1\n"
                                 "kind: Component\n"
                                 "metadata: {name: c3}\n"
                                 "spec:\n"
                                 "  type: state.redis\n"
                                 "  version: v2\n"
                                 "---\n"
                                 "apiVersion: dapr.io/v1alpha1\n"
                                 "kind: Component\n"
                                 "metadata: {name: c4}\n"
                                 "spec:\n"
                                 "  type: pubsub.kafka\n");
    assert_diag(cfg, "t.yaml:8:11: error: spec.metadata.redisHots: unknown metadata name "
                     "'redisHots' in EventBus.spec.redis; did you mean 'redisHost'?");
    assert_diag(cfg, "t.yaml:11:12: error: spec.metadata.redisDB: expected an integer, got 'two'");
    assert_diag(cfg, "t.yaml:12:11: error: spec.metadata[2].name: metadata 'redisDB' is given "
                     "twice (first at line 10)");
    assert_diag(cfg, "t.yaml:14:5: error: spec.metadata[3].name: a metadata entry needs a name");
    assert_diag(cfg, "t.yaml:15:5: error: spec.metadata[4].value: metadata entry 'concurrency' "
                     "has no value");
    assert_diag(cfg, "t.yaml:18:5: error: spec.metadata[5].extra: unknown key 'extra' in a "
                     "metadata entry (expected name and value)");
    assert_diag(cfg, "t.yaml:17:12: error: spec.metadata.enableTLS: expected true or false, got "
                     "'maybe'");
    assert_diag(cfg, "t.yaml:8:3: error: spec.metadata.redisHost: missing required field "
                     "'redisHost'");
    assert_diag(cfg, "t.yaml:24:9: error: spec.type: pubsub.natsstreaming is end-of-life and not "
                     "supported: use pubsub.jetstream");
    assert_diag(cfg, "t.yaml:30:9: error: spec.type: 'state.redis' is not a pub/sub component");
    assert_diag(cfg, "t.yaml:36:1: error: spec.metadata.brokers: missing required field "
                     "'brokers'");
    assert_errors(cfg, 11);
    ofe_config_destroy(cfg);
}

static void test_trigger(void **state)
{
    (void)state;
    struct ofe_config *cfg =
        tc_load("apiVersion: events.openfunction.io/v1alpha1\n"
                "kind: Trigger\n"
                "metadata: {name: tr, namespace: app}\n"
                "spec:\n"
                "  eventBus: default\n"
                "  conditionWindow: 5m\n"
                "  inputs:\n"
                "    inputA: {eventSource: es, event: a}\n"
                "    input-b_2: {eventSource: es, event: b, namespace: other}\n"
                "  subscribers:\n"
                "  - condition: inputA && !input-b_2\n"
                "    sink: {ref: {kind: Function, apiVersion: "
                "core.openfunction.io/v1beta2, name: fn}}\n"
                "    deadLetterSink: {uri: 'http://dl/'}\n"
                "    deadLetterTopic: dead\n"
                "    filter: \"type = 'x' AND source LIKE 'a%'\"\n"
                "    filters:\n"
                "    - exact: {type: com.example.a}\n"
                "    - any:\n"
                "      - prefix: {source: /a}\n"
                "      - not: {suffix: {subject: .tmp}}\n"
                "    - cesql: \"subject = 'x'\"\n"
                "    delivery: {retry: 5, backoffPolicy: linear, "
                "backoffDelay: PT1S, timeout: 10s}\n"
                "    ordering: ordered\n"
                "    concurrency: 4\n"
                "    mode: structured\n"
                "    replyTopic: replies\n"
                "  - name: chain\n"
                "    condition: inputA or input-b_2\n"
                "    topic: next\n");
    assert_clean(cfg);
    const struct ofe_config_trigger *t = cfg->triggers[0];
    assert_string_equal(t->consumer_group, "app-tr");
    assert_int_equal(t->spec.condition_window_ms, 300000);
    assert_int_equal(t->spec.inputs.n, 2);
    assert_string_equal(t->input_names[0], "inputA");
    assert_string_equal(t->input_names[1], "input-b_2");
    assert_string_equal(t->spec.inputs.v[0].namespace, "app");
    assert_string_equal(t->spec.inputs.v[0].bus_topic, "app-es-a");
    assert_string_equal(t->spec.inputs.v[1].bus_topic, "other-es-b");
    const struct ofe_config_subscriber *s = t->spec.subscribers.v;
    assert_string_equal(s[0].name, "0");
    assert_string_equal(s[1].name, "chain");
    uint64_t bits = 1; /* inputA only */
    assert_true(ofe_condition_eval_bits(s[0].cond, &bits));
    bits = 3;
    assert_false(ofe_condition_eval_bits(s[0].cond, &bits));
    assert_true(ofe_condition_eval_bits(s[1].cond, &bits));
    char url[256];
    assert_int_equal(ofe_config_destination_url(&s[0].sink, t->doc.namespace, url, sizeof(url)), 0);
    assert_string_equal(url, "http://fn.app.svc.cluster.local/");
    assert_int_equal(
        ofe_config_destination_url(&s[0].dead_letter_sink, t->doc.namespace, url, sizeof(url)), 0);
    assert_string_equal(url, "http://dl/");
    assert_int_equal(ofe_config_destination_url(&s[1].sink, NULL, url, sizeof(url)), -1);
    assert_string_equal(s[0].filter, "type = 'x' AND source LIKE 'a%'");
    assert_int_equal(s[0].filter_pos.line, 15);
    assert_int_equal(s[0].filter_pos.col, 14); /* first character inside the quotes */
    assert_int_equal(s[0].filters.n, 3);
    assert_int_equal(s[0].filters.v[0].kind, OFE_CONFIG_FILTER_EXACT);
    assert_string_equal(s[0].filters.v[0].attrs.v[0].key, "type");
    assert_string_equal(s[0].filters.v[0].attrs.v[0].value, "com.example.a");
    assert_int_equal(s[0].filters.v[1].kind, OFE_CONFIG_FILTER_ANY);
    assert_int_equal(s[0].filters.v[1].nsub, 2);
    assert_int_equal(s[0].filters.v[1].sub[1].kind, OFE_CONFIG_FILTER_NOT);
    assert_int_equal(s[0].filters.v[1].sub[1].sub[0].kind, OFE_CONFIG_FILTER_SUFFIX);
    assert_string_equal(s[0].filters.v[1].sub[1].sub[0].attrs.v[0].value, ".tmp");
    assert_int_equal(s[0].filters.v[2].kind, OFE_CONFIG_FILTER_CESQL);
    assert_string_equal(s[0].filters.v[2].cesql, "subject = 'x'");
    assert_int_equal(s[0].filters.v[2].cesql_pos.line, 21);
    assert_int_equal(s[0].filters.v[2].cesql_pos.col, 15);
    assert_int_equal(s[0].delivery.retry, 5);
    assert_int_equal(s[0].delivery.backoff_policy, OFE_CONFIG_BACKOFF_LINEAR);
    assert_int_equal(s[0].delivery.backoff_delay_ms, 1000);
    assert_int_equal(s[0].ordering, OFE_CONFIG_ORDERING_ORDERED);
    assert_int_equal(s[0].concurrency, 4);
    assert_int_equal(s[0].mode, OFE_CONFIG_MODE_STRUCTURED);
    assert_int_equal(s[1].concurrency, 16);
    assert_int_equal(s[1].ordering, OFE_CONFIG_ORDERING_UNORDERED);
    assert_int_equal(s[1].delivery.retry, 3);
    ofe_config_destroy(cfg);
}

static void test_trigger_errors(void **state)
{
    (void)state;
    struct ofe_config *cfg = tc_load(TRIGGER_HEAD "  inputs: {}\n"
                                                  "  subscribers: []\n"
                                                  "  logLevel: verbose\n"
                                                  "---\n"
                                                  "apiVersion: events.openfunction.io/v1alpha1\n"
                                                  "kind: Trigger\n"
                                                  "metadata:\n"
                                                  "  name: tr2\n"
                                                  "spec:\n"
                                                  "  eventBus: b\n"
                                                  "  inputs:\n"
                                                  "    -bad: {eventSource: s, event: e}\n"
                                                  "    ok: {eventSource: s}\n"
                                                  "  subscribers:\n"
                                                  "  - condition: \"ok && (missing || -bad)\"\n"
                                                  "    topic: t\n"
                                                  "    replyTopic: r\n"
                                                  "    filters:\n"
                                                  "    - exact: {Type: x}\n"
                                                  "    - prefix: {source: ''}\n"
                                                  "    - exact: {type: a}\n"
                                                  "      suffix: {type: b}\n"
                                                  "    - regex: {type: a}\n"
                                                  "    - ani: []\n"
                                                  "    - all: []\n"
                                                  "    - not: [x]\n"
                                                  "    - cesql: ''\n"
                                                  "  - name: dup\n"
                                                  "    condition: ok\n"
                                                  "    topic: t\n"
                                                  "  - name: dup\n"
                                                  "    condition: ok\n"
                                                  "    sink: {uri: 'http://x/'}\n");
    assert_diag(cfg, "t.yaml:5:1: error: spec.eventBus: missing required field 'eventBus'");
    assert_diag(cfg, "t.yaml:6:11: error: spec.inputs: a Trigger needs at least one input");
    assert_diag(cfg, "t.yaml:7:16: error: spec.subscribers: a Trigger needs at least one "
                     "subscriber");
    assert_diag(cfg, "t.yaml:8:13: error: spec.logLevel: unknown log level 'verbose'");
    assert_diag(cfg, "t.yaml:17:5: error: spec.inputs.-bad: name '-bad' cannot be used in "
                     "conditions");
    assert_diag(cfg, "t.yaml:18:5: error: spec.inputs.ok.event: missing required field 'event'");
    assert_diag(cfg, "t.yaml:20:24: error: spec.subscribers[0].condition: at character 8: unknown "
                     "input 'missing' (inputs: -bad, ok)");
    assert_diag(cfg, "t.yaml:22:17: warning: spec.subscribers[0].replyTopic: ignored without a "
                     "sink");
    assert_diag(cfg, "t.yaml:24:15: error: spec.subscribers[0].filters[0].exact.Type: 'Type' is "
                     "not a CloudEvents attribute name (lower-case a-z and 0-9)");
    assert_diag(cfg, "t.yaml:25:24: error: spec.subscribers[0].filters[1].prefix.source: prefix "
                     "value must not be empty");
    assert_diag(cfg, "t.yaml:26:7: error: spec.subscribers[0].filters[2]: a filter needs exactly "
                     "one dialect (exact, prefix, suffix, all, any, not, cesql), got 2 keys");
    assert_diag(cfg, "t.yaml:28:7: error: spec.subscribers[0].filters[3].regex: unknown filter "
                     "dialect 'regex' (expected exact, prefix, suffix, all, any, not or cesql)");
    assert_diag(cfg, "t.yaml:29:7: error: spec.subscribers[0].filters[4].ani: unknown filter "
                     "dialect 'ani'; did you mean 'any'?");
    assert_diag(cfg, "t.yaml:30:7: error: spec.subscribers[0].filters[5].all: all needs at least "
                     "one filter");
    assert_diag(cfg, "t.yaml:31:12: error: spec.subscribers[0].filters[6].not: expected a filter "
                     "(a mapping with one of exact, prefix, suffix, all, any, not, cesql), got a "
                     "list");
    assert_diag(cfg, "t.yaml:32:14: error: spec.subscribers[0].filters[7].cesql: empty CESQL "
                     "expression");
    assert_diag(cfg, "t.yaml:36:11: error: spec.subscribers[2].name: subscriber name 'dup' is "
                     "already used by spec.subscribers[1]");
    assert_errors(cfg, 16);
    ofe_config_destroy(cfg);
}

/* A stand-in CESQL checker: refuses expressions containing "BAD" and
 * reports its offset. */
static int fake_cesql(void *ctx, const char *expr, size_t *off, char *err, size_t n)
{
    int *calls = ctx;
    (*calls)++;
    const char *bad = strstr(expr, "BAD");
    if (!bad)
        return 0;
    *off = (size_t)(bad - expr);
    snprintf(err, n, "column %zu: unexpected BAD", *off + 1);
    return -1;
}

static void test_cesql_hook(void **state)
{
    (void)state;
    int calls = 0;
    struct ofe_config *cfg = ofe_config_new();
    ofe_config_set_cesql_check(cfg, fake_cesql, &calls);
    const char *y = TRIGGER_HEAD "  eventBus: b\n"
                                 "  inputs: {a: {eventSource: s, event: e}}\n"
                                 "  subscribers:\n"
                                 "  - condition: a\n"
                                 "    topic: t\n"
                                 "    filter: \"type = BAD\"\n"
                                 "    filters:\n"
                                 "    - cesql: type = 'ok'\n"
                                 "    - all: [{cesql: x BAD}]\n";
    ofe_config_load_buffer(cfg, "t.yaml", y, strlen(y));
    assert_int_equal(calls, 3);
    assert_diag(cfg, "t.yaml:11:21: error: spec.subscribers[0].filter: CESQL: column 8: "
                     "unexpected BAD");
    assert_diag(cfg, "t.yaml:14:23: error: spec.subscribers[0].filters[1].all[0].cesql: CESQL: "
                     "column 3: unexpected BAD");
    assert_errors(cfg, 2);
    ofe_config_destroy(cfg);

    /* Without a checker, expressions are stored unchecked. */
    cfg = tc_load(y);
    assert_clean(cfg);
    ofe_config_destroy(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kafka_source),      cmocka_unit_test(test_cron_source),
        cmocka_unit_test(test_redis_source),      cmocka_unit_test(test_mqtt_nats_webhook),
        cmocka_unit_test(test_eventbus_backends), cmocka_unit_test(test_nats_streaming),
        cmocka_unit_test(test_components),        cmocka_unit_test(test_trigger),
        cmocka_unit_test(test_trigger_errors),    cmocka_unit_test(test_cesql_hook),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
