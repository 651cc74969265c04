/* Config loader: documents, YAML errors, and the generic error paths of the
 * table engine (types, bounds, enums, unknown and missing fields), each
 * asserted on the message text with file, line, column and field path. */
#include "test_config_helpers.h"

#include <unistd.h>

#include "ofe/err.h"
#include "testutil.h"

static void test_multi_document(void **state)
{
    (void)state;
    struct ofe_config *cfg = tc_load("# leading comment\n"
                                     "---\n" ES_HEAD "  eventBus: default\n"
                                     "  cron:\n"
                                     "    tick:\n"
                                     "      schedule: \"@every 5s\"\n"
                                     "---\n"
                                     "---\n" BUS_HEAD "  embedded: {}\n"
                                     "---\n" TRIGGER_HEAD "  eventBus: bus\n"
                                     "  inputs:\n"
                                     "    a: {eventSource: es, event: tick}\n"
                                     "  subscribers:\n"
                                     "  - condition: a\n"
                                     "    topic: next\n"
                                     "---\n" COMPONENT_HEAD "  type: pubsub.redis\n"
                                     "  metadata:\n"
                                     "  - name: redisHost\n"
                                     "    value: localhost:6379\n");
    assert_clean(cfg);
    assert_int_equal(cfg->neventsources, 1);
    assert_int_equal(cfg->nbuses, 2);
    assert_int_equal(cfg->ntriggers, 1);
    const struct ofe_config_eventsource *es = cfg->eventsources[0];
    assert_string_equal(es->doc.name, "es");
    assert_string_equal(es->doc.namespace, "default");
    assert_string_equal(es->doc.kind_name, "EventSource");
    assert_int_equal(es->doc.kind, OFE_CONFIG_EVENTSOURCE);
    assert_int_equal(es->doc.doc_index, 0);
    assert_string_equal(es->doc.node.pos.file, "t.yaml");
    assert_int_equal(es->doc.node.pos.line, 3);
    assert_int_equal(cfg->buses[0]->doc.kind, OFE_CONFIG_EVENTBUS);
    assert_int_equal(cfg->buses[0]->doc.doc_index, 2);
    assert_int_equal(cfg->buses[1]->doc.kind, OFE_CONFIG_COMPONENT);
    assert_int_equal(cfg->buses[1]->backend, OFE_CONFIG_BUS_REDIS);
    assert_string_equal(cfg->buses[1]->spec.redis.redis_host, "localhost:6379");
    assert_non_null(ofe_config_find_eventsource(cfg, NULL, "es"));
    assert_non_null(ofe_config_find_eventsource(cfg, "default", "es"));
    assert_null(ofe_config_find_eventsource(cfg, "other", "es"));
    assert_non_null(ofe_config_find_trigger(cfg, NULL, "tr"));
    assert_null(ofe_config_find_trigger(cfg, NULL, "es"));
    ofe_config_destroy(cfg);
    ofe_config_destroy(NULL);
}

static void test_empty_file(void **state)
{
    (void)state;
    struct ofe_config *cfg = tc_load("# nothing here\n---\n...\n");
    assert_errors(cfg, 0);
    assert_diag(cfg, "t.yaml: warning: no documents in this file");
    ofe_config_destroy(cfg);
}

static void test_yaml_syntax_error(void **state)
{
    (void)state;
    /* The first document is kept; the error stops the file. */
    struct ofe_config *cfg = tc_load(ES_HEAD "  cron:\n"
                                             "    t: {schedule: '@hourly'}\n"
                                             "  eventBus: default\n"
                                             "---\n"
                                             "apiVersion: x\n"
                                             "kind: [unclosed\n"
                                             "metadata: {}\n");
    assert_int_equal(cfg->neventsources, 1);
    assert_errors(cfg, 1);
    assert_diag(cfg, "t.yaml:12:9: error: YAML syntax error: did not find expected ',' or ']' "
                     "(while parsing a flow sequence at line 11, column 7)");
    ofe_config_destroy(cfg);

    cfg = tc_load("a: b\n  c: d\n");
    assert_diag(cfg, "t.yaml:2:4: error: YAML syntax error: mapping values are not allowed in "
                     "this context");
    ofe_config_destroy(cfg);

    /* Invalid UTF-8 is a reader error reported at its byte. */
    cfg = tc_load("kind: x\nname: ab\xff\n");
    assert_diag(cfg, "t.yaml:2:9: error: invalid input: invalid leading UTF-8 octet (byte 0xff)");
    ofe_config_destroy(cfg);
}

static void test_document_shape(void **state)
{
    (void)state;
    struct ofe_config *cfg = tc_load("- a\n- b\n");
    assert_diag(cfg, "t.yaml:1:1: error: a document must be a mapping with apiVersion, kind, "
                     "metadata and spec; got a list");
    ofe_config_destroy(cfg);

    cfg = tc_load("apiVersion: events.openfunction.io/v1beta1\nkind: EventSource\n");
    assert_diag(cfg, "t.yaml:1:13: error: apiVersion: unknown apiVersion "
                     "'events.openfunction.io/v1beta1' (expected events.openfunction.io/v1alpha1 "
                     "or dapr.io/v1alpha1)");
    ofe_config_destroy(cfg);

    cfg = tc_load("apiVersion: events.openfunction.io/v1alpha1\nkind: EventSorce\n");
    assert_diag(cfg, "t.yaml:2:7: error: kind: unknown kind 'EventSorce' for "
                     "events.openfunction.io/v1alpha1; did you mean 'EventSource'?");
    ofe_config_destroy(cfg);

    cfg = tc_load("apiVersion: events.openfunction.io/v1alpha1\nkind: Function\n");
    assert_diag(cfg, "t.yaml:2:7: error: kind: unknown kind 'Function' for "
                     "events.openfunction.io/v1alpha1 (expected one of: EventSource, EventBus, "
                     "ClusterEventBus, Trigger)");
    ofe_config_destroy(cfg);

    cfg = tc_load("apiVersion: events.openfunction.io/v1alpha1\nkind: Component\n");
    assert_diag(cfg, "t.yaml:2:7: error: kind: kind Component belongs to apiVersion "
                     "dapr.io/v1alpha1, not events.openfunction.io/v1alpha1");
    ofe_config_destroy(cfg);

    cfg = tc_load("metadata: {name: x}\n");
    assert_diag(cfg, "t.yaml:1:1: error: apiVersion: missing apiVersion");
    assert_diag(cfg, "t.yaml:1:1: error: kind: missing kind");
    ofe_config_destroy(cfg);

    /* Missing metadata and spec; an unknown top-level key. */
    cfg = tc_load("apiVersion: events.openfunction.io/v1alpha1\nkind: EventBus\nspek: {}\n");
    assert_diag(cfg, "t.yaml:3:1: error: spek: unknown field 'spek' in EventBus; did you mean "
                     "'spec'?");
    assert_diag(cfg, "t.yaml:1:1: error: metadata: missing required field 'metadata'");
    assert_diag(cfg, "t.yaml:1:1: error: spec: missing required field 'spec'");
    assert_int_equal(cfg->nbuses, 0); /* nameless: not kept */
    ofe_config_destroy(cfg);
}

static void test_duplicate_keys(void **state)
{
    (void)state;
    struct ofe_config *cfg = tc_load(ES_HEAD "  eventBus: default\n"
                                             "  cron:\n"
                                             "    t:\n"
                                             "      schedule: '@hourly'\n"
                                             "      schedule: '@daily'\n"
                                             "  eventBus: other\n");
    assert_diag(cfg, "t.yaml:10:7: error: spec.cron.t.schedule: duplicate key 'schedule' (first "
                     "at line 9, column 7)");
    assert_diag(cfg, "t.yaml:11:3: error: spec.eventBus: duplicate key 'eventBus' (first at line "
                     "6, column 3)");
    assert_errors(cfg, 2);
    /* The first occurrence is kept. */
    assert_string_equal(cfg->eventsources[0]->spec.event_bus, "default");
    assert_string_equal(cfg->eventsources[0]->spec.cron.v[0].schedule, "@hourly");
    ofe_config_destroy(cfg);
}

static void test_types(void **state)
{
    (void)state;
    struct ofe_config *cfg = tc_load(ES_HEAD "  eventBus: {a: b}\n"
                                             "  webhook:\n"
                                             "    w:\n"
                                             "      port: \"8080\"\n"
                                             "      endpoint: [a]\n"
                                             "      maxPayloadSize: lots\n"
                                             "      auth: yes\n"
                                             "    v:\n"
                                             "      port: 80x\n"
                                             "      endpoint: /v\n"
                                             "  kafka:\n"
                                             "    k:\n"
                                             "      brokers: a:1\n"
                                             "      authRequired: \"true\"\n"
                                             "      topic: t\n"
                                             "    k2:\n"
                                             "      brokers: a:1\n"
                                             "      authRequired: maybe\n"
                                             "      topic: t\n"
                                             "      tls: []\n");
    assert_diag(cfg, "t.yaml:6:13: error: spec.eventBus: expected a string, got a mapping");
    assert_diag(cfg, "t.yaml:9:13: error: spec.webhook.w.port: expected an integer, got the "
                     "string \"8080\" (remove the quotes)");
    assert_diag(cfg, "t.yaml:10:17: error: spec.webhook.w.endpoint: expected a string, got a list");
    assert_diag(cfg, "t.yaml:11:23: error: spec.webhook.w.maxPayloadSize: expected a size (bytes, "
                     "or a number with a unit: 512Ki, 1MiB, 4MB), got 'lots'");
    assert_diag(cfg, "t.yaml:12:13: error: spec.webhook.w.auth: expected a mapping "
                     "(EventSource.spec.webhook.<event>.auth), got a single value");
    assert_diag(cfg, "t.yaml:14:13: error: spec.webhook.v.port: expected an integer, got '80x'");
    assert_diag(cfg, "t.yaml:19:21: error: spec.kafka.k.authRequired: expected true or false, "
                     "got the string \"true\" (remove the quotes)");
    assert_diag(cfg, "t.yaml:23:21: error: spec.kafka.k2.authRequired: expected true or false, "
                     "got 'maybe'");
    assert_diag(cfg, "t.yaml:25:12: error: spec.kafka.k2.tls: expected a mapping (tls), got a "
                     "list");
    /* A field with a type error is also a missing required field only when
     * it had no value at all: here each required field was written. */
    assert_no_diag(cfg, "missing required field 'port'");
    ofe_config_destroy(cfg);
}

static void test_bounds_and_enums(void **state)
{
    (void)state;
    struct ofe_config *cfg = tc_load(ES_HEAD "  eventBus: default\n"
                                             "  mode: binery\n"
                                             "  delivery:\n"
                                             "    retry: -1\n"
                                             "    backoffDelay: 2d\n"
                                             "    timeout: 2h\n"
                                             "    backoffPolicy: Linear\n"
                                             "  mqtt:\n"
                                             "    m:\n"
                                             "      url: tcp://h:1883\n"
                                             "      topic: t\n"
                                             "      qos: 3\n"
                                             "      protocolVersion: 4\n");
    assert_diag(cfg, "t.yaml:7:9: error: spec.mode: unknown value 'binery' (expected one of: "
                     "binary, structured)");
    assert_diag(cfg, "t.yaml:9:12: error: spec.delivery.retry: value -1 is out of range (allowed "
                     "0 to 10000)");
    assert_diag(cfg, "t.yaml:10:20: error: spec.delivery.backoffDelay: unknown unit 'd' (Go style "
                     "has no days: write 24h or P1D)");
    assert_diag(cfg, "t.yaml:11:14: error: spec.delivery.timeout: value 2h is out of range "
                     "(allowed 1ms to 1h)");
    assert_diag(cfg, "t.yaml:17:12: error: spec.mqtt.m.qos: value 3 is out of range (allowed 0 "
                     "to 2)");
    assert_diag(cfg, "t.yaml:18:24: error: spec.mqtt.m.protocolVersion: unknown value '4' "
                     "(expected one of: 5, 311, 3.1.1)");
    assert_errors(cfg, 6);
    /* Enums match in any letter case. */
    assert_int_equal(cfg->eventsources[0]->spec.delivery.backoff_policy, OFE_CONFIG_BACKOFF_LINEAR);
    ofe_config_destroy(cfg);
}

static void test_unknown_and_missing(void **state)
{
    (void)state;
    struct ofe_config *cfg = tc_load(ES_HEAD "  eventbus: default\n"
                                             "  kafka:\n"
                                             "    sample-one:\n"
                                             "      broker: a:9092\n"
                                             "      authRequired: false\n"
                                             "      colour: red\n"
                                             "  sink:\n"
                                             "    ref:\n"
                                             "      kind: Function\n"
                                             "      name:\n");
    assert_diag(cfg, "t.yaml:6:3: error: spec.eventbus: unknown field 'eventbus' in "
                     "EventSource.spec; did you mean 'eventBus'?");
    assert_diag(cfg, "t.yaml:9:7: error: spec.kafka.sample-one.broker: unknown field 'broker' in "
                     "EventSource.spec.kafka.<event>; did you mean 'brokers'?");
    assert_diag(cfg, "t.yaml:11:7: error: spec.kafka.sample-one.colour: unknown field 'colour' in "
                     "EventSource.spec.kafka.<event> (expected one of: brokers, authRequired, "
                     "topic, saslUsername, saslPassword, saslMechanism, maxMessageBytes, "
                     "consumerGroup, initialOffset, tls, rdkafka)");
    assert_diag(cfg, "t.yaml:8:5: error: spec.kafka.sample-one.brokers: missing required field "
                     "'brokers': Bootstrap brokers");
    assert_diag(cfg, "t.yaml:8:5: error: spec.kafka.sample-one.topic: missing required field "
                     "'topic': Topic to consume.");
    assert_diag(cfg, "t.yaml:13:5: error: spec.sink.ref.apiVersion: missing required field "
                     "'apiVersion'");
    assert_diag(cfg, "t.yaml:15:7: error: spec.sink.ref.name: 'name' has no value (Name of the "
                     "referent.)");
    assert_errors(cfg, 7);
    ofe_config_destroy(cfg);

    /* Long tables point at the reference. */
    cfg = tc_load(ES_HEAD "  eventBus: default\n"
                          "  redis:\n"
                          "    r: {redisHost: 'h:1', redisPassword: '', stream: s, colour: red}\n");
    assert_diag(cfg, "t.yaml:8:57: error: spec.redis.r.colour: unknown field 'colour' in "
                     "EventSource.spec.redis.<event> (see docs/config.md, section "
                     "\"EventSource.spec.redis.<event>\")");
    assert_errors(cfg, 1);
    ofe_config_destroy(cfg);

    /* Short tables list what they accept. */
    cfg = tc_load(ES_HEAD "  eventBus: default\n"
                          "  cron:\n"
                          "    t:\n"
                          "      schedule: '@hourly'\n"
                          "      zzz: 1\n");
    assert_diag(cfg, "t.yaml:10:7: error: spec.cron.t.zzz: unknown field 'zzz' in "
                     "EventSource.spec.cron.<event> (expected one of: schedule, timezone, catchup, "
                     "data, contentType)");
    ofe_config_destroy(cfg);
}

static void test_eventsource_rules(void **state)
{
    (void)state;
    struct ofe_config *cfg = tc_load(ES_HEAD "  logLevel: \"2\"\n"
                                             "  cron:\n"
                                             "    t: {schedule: '@hourly'}\n");
    assert_diag(cfg, "t.yaml:5:1: error: spec: an EventSource needs a sink, an eventBus, or both "
                     "(neither is given)");
    assert_errors(cfg, 1);
    ofe_config_destroy(cfg);

    cfg = tc_load(ES_HEAD "  eventBus: default\n");
    assert_diag(cfg, "t.yaml:5:1: error: spec: an EventSource needs at least one event");
    ofe_config_destroy(cfg);

    cfg = tc_load(ES_HEAD "  sink: {}\n"
                          "  logLevel: loud\n"
                          "  cron:\n"
                          "    t: {schedule: '@hourly'}\n"
                          "  webhook:\n"
                          "    t: {port: 8080, endpoint: /x}\n");
    assert_diag(cfg, "t.yaml:6:3: error: spec.sink: a sink needs a uri or a ref");
    assert_diag(cfg, "t.yaml:7:13: error: spec.logLevel: unknown log level 'loud'");
    assert_diag(cfg, "t.yaml:11:5: error: spec.webhook.t: event name 't' is already used by "
                     "spec.cron.t (line 9)");
    assert_errors(cfg, 3);
    ofe_config_destroy(cfg);

    cfg = tc_load(ES_HEAD "  sink:\n"
                          "    uri: ftp://x/\n"
                          "  cron:\n"
                          "    t: {schedule: '@hourly'}\n");
    assert_diag(cfg, "t.yaml:7:10: error: spec.sink.uri: 'ftp://x/' is not a URL with a host and "
                     "one of the schemes http://, https://");
    ofe_config_destroy(cfg);

    cfg = tc_load(ES_HEAD "  sink:\n"
                          "    uri: http://fn.local/\n"
                          "    ref: {kind: Function, apiVersion: core.openfunction.io/v1beta2, "
                          "name: fn}\n"
                          "  cron:\n"
                          "    t: {schedule: '@hourly'}\n");
    assert_errors(cfg, 0);
    assert_diag(cfg, "t.yaml:8:10: warning: spec.sink.ref: both uri and ref are given: uri is "
                     "used, ref is ignored");
    ofe_config_destroy(cfg);
}

static void test_metadata(void **state)
{
    (void)state;
    struct ofe_config *cfg = tc_load("apiVersion: events.openfunction.io/v1alpha1\n"
                                     "kind: EventBus\n"
                                     "metadata:\n"
                                     "  name: My_Bus\n"
                                     "  namespace: -prod\n"
                                     "  uid: 1234\n"
                                     "  labels: {app: x}\n"
                                     "spec:\n"
                                     "  embedded: {}\n"
                                     "status: {whatever: 1}\n");
    assert_diag(cfg, "t.yaml:4:9: error: metadata.name: 'My_Bus' is not a valid name");
    assert_diag(cfg, "t.yaml:5:14: error: metadata.namespace: '-prod' is not a valid namespace");
    assert_errors(cfg, 2);
    assert_string_equal(cfg->buses[0]->doc.metadata.labels.v[0].key, "app");
    assert_string_equal(cfg->buses[0]->doc.metadata.labels.v[0].value, "x");
    ofe_config_destroy(cfg);
}

static void test_duplicate_documents(void **state)
{
    (void)state;
    struct ofe_config *cfg = tc_load(BUS_HEAD "  embedded: {}\n"
                                              "---\n" BUS_HEAD "  embedded: {}\n"
                                              "---\n"
                                              "apiVersion: events.openfunction.io/v1alpha1\n"
                                              "kind: EventBus\n"
                                              "metadata: {name: bus, namespace: other}\n"
                                              "spec: {embedded: {}}\n");
    assert_diag(cfg, "t.yaml:11:9: error: metadata.name: EventBus default/bus is already defined "
                     "at t.yaml:1:1");
    assert_errors(cfg, 1);
    ofe_config_destroy(cfg);
}

static void test_all_errors_collected(void **state)
{
    (void)state;
    /* Twenty independent mistakes in three documents: all are reported. */
    struct ofe_config *cfg = tc_load(ES_HEAD "  eventBus: default\n"
                                             "  kafka:\n"
                                             "    k:\n"
                                             "      brokers: nohostport\n"
                                             "      authRequired: true\n"
                                             "      topic: ''\n"
                                             "      maxMessageBytes: -5\n"
                                             "      initialOffset: latest\n"
                                             "  cron:\n"
                                             "    c: {schedule: '* * *'}\n"
                                             "  redis:\n"
                                             "    r: {redisHost: h, redisPassword: ''}\n"
                                             "---\n" BUS_HEAD "  kafka: {brokers: a:1}\n"
                                             "  redis: {redisHost: h:1}\n"
                                             "---\n" TRIGGER_HEAD "  eventBus: bus\n"
                                             "  inputs:\n"
                                             "    a: {event: x}\n"
                                             "    not: {eventSource: es, event: x}\n"
                                             "  subscribers:\n"
                                             "  - condition: a &&& b\n"
                                             "  - condition: a\n"
                                             "    sink: {uri: http://x/}\n"
                                             "    delivery: {retry: many}\n");
    assert_diag(cfg, "spec.kafka.k.brokers: 'nohostport' is not host:port");
    assert_diag(cfg, "spec.kafka.k.saslUsername: authRequired is true: saslUsername is required");
    assert_diag(cfg, "spec.kafka.k.saslPassword: authRequired is true: saslPassword");
    assert_diag(cfg, "spec.kafka.k.topic: must not be empty");
    assert_diag(cfg, "spec.kafka.k.maxMessageBytes: expected a size");
    assert_diag(cfg, "spec.kafka.k.initialOffset: unknown value 'latest' (expected one of: "
                     "newest, oldest)");
    assert_diag(cfg, "spec.cron.c.schedule: '* * *' has 3 fields");
    assert_diag(cfg, "spec.redis.r.redisHost: 'h' is not host:port");
    assert_diag(cfg, "spec.redis.r: set one of stream");
    assert_diag(cfg, "t.yaml:25:3: error: spec.redis: only one backend block is allowed: kafka is "
                     "already given (line 24)");
    assert_diag(cfg, "spec.inputs.a.eventSource: missing required field 'eventSource'");
    assert_diag(cfg, "t.yaml:35:5: error: spec.inputs.not: name 'not' cannot be used in "
                     "conditions");
    assert_diag(cfg, "t.yaml:37:20: error: spec.subscribers[0].condition: at character 5: "
                     "expected '&&' (a single '&' is not an operator)");
    assert_diag(cfg, "spec.subscribers[0]: a subscriber needs a sink (HTTP) or a topic (bus)");
    assert_diag(cfg, "t.yaml:40:23: error: spec.subscribers[1].delivery.retry: expected an "
                     "integer, got 'many'");
    assert_errors(cfg, 15);
    ofe_config_destroy(cfg);
}

static void test_tags_and_aliases(void **state)
{
    (void)state;
    struct ofe_config *cfg = tc_load(ES_HEAD "  eventBus: !custom default\n"
                                             "  cron:\n"
                                             "    a: &tick {schedule: '@hourly'}\n"
                                             "    b: *tick\n");
    assert_diag(cfg, "t.yaml:6:13: error: spec.eventBus: unsupported YAML tag '!custom'");
    assert_errors(cfg, 2); /* and then no sink and no bus */
    assert_int_equal(cfg->eventsources[0]->spec.cron.n, 2);
    assert_string_equal(cfg->eventsources[0]->spec.cron.v[1].schedule, "@hourly");
    ofe_config_destroy(cfg);

    /* A billion laughs is cut short. */
    cfg = tc_load(ES_HEAD "  eventBus: default\n"
                          "  cron:\n"
                          "    c: {schedule: '@hourly'}\n"
                          "  a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                          "  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                          "  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                          "  d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                          "  e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                          "  f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                          "  labels:\n"
                          "    g: [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n");
    assert_int_equal(cfg->neventsources, 1); /* unknown keys are not walked */
    ofe_config_destroy(cfg);

    cfg = tc_load("apiVersion: events.openfunction.io/v1alpha1\n"
                  "kind: Trigger\n"
                  "metadata: {name: t}\n"
                  "spec:\n"
                  "  eventBus: b\n"
                  "  inputs: {a: {eventSource: s, event: e}}\n"
                  "  subscribers:\n"
                  "  - condition: a\n"
                  "    topic: x\n"
                  "    filters:\n"
                  "    - &a {exact: {type: x}}\n"
                  "    - &b {all: [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]}\n"
                  "    - &c {all: [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]}\n"
                  "    - &d {all: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]}\n"
                  "    - &e {all: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]}\n"
                  "    - &f {all: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]}\n");
    assert_diag(cfg, "document too large: more than 200000 YAML nodes visited");
    ofe_config_destroy(cfg);
}

static void test_error_cap(void **state)
{
    (void)state;
    /* 3000 unknown keys, duplicated: the document stops at 1000 errors. */
    struct ofe_buf b = OFE_BUF_INIT;
    ofe_buf_puts(&b, ES_HEAD "  eventBus: default\n  cron: {t: {schedule: '@hourly'}}\n");
    for (int i = 0; i < 3000; i++)
        ofe_buf_printf(&b, "  k%d: %d\n  k%d: %d\n", i % 1500, i, i % 1500, i);
    struct ofe_config *cfg = tc_load(b.data);
    assert_diag(cfg, "t.yaml:1:1: error: too many errors in this document; the rest of it is not "
                     "checked");
    assert_errors(cfg, 1001);
    assert_int_equal(cfg->neventsources, 1);
    ofe_config_destroy(cfg);
    ofe_buf_fini(&b);
}

static void test_files(void **state)
{
    (void)state;
    struct ofe_config *cfg = ofe_config_new();
    assert_int_equal(ofe_config_load_file(cfg, "/nonexistent/x.yaml"), OFE_EIO);
    assert_diag(cfg, "/nonexistent/x.yaml: error: cannot open: No such file or directory");
    assert_int_equal(ofe_config_load_file(cfg, "/tmp"), OFE_EIO);
    assert_diag(cfg, "/tmp: error: not a regular file");
    ofe_config_destroy(cfg);

    char path[1024];
    snprintf(path, sizeof(path), "%s/tests/fixtures/config/valid-all.yaml", tu_source_dir());
    cfg = ofe_config_new();
    assert_int_equal(ofe_config_load_file(cfg, path), 0);
    assert_errors(cfg, 0);
    assert_true(cfg->neventsources >= 1 && cfg->ntriggers >= 1 && cfg->nbuses >= 1);
    ofe_config_destroy(cfg);

    snprintf(path, sizeof(path), "%s/tests/fixtures/config/invalid-many.yaml", tu_source_dir());
    cfg = ofe_config_new();
    assert_int_equal(ofe_config_load_file(cfg, path), OFE_EINVAL);
    char want[1200];
    snprintf(want, sizeof(want),
             "%s:8:27: error: spec.kafka.sample-one.brokers: 'no port' is "
             "not host:port",
             path);
    assert_diag(cfg, want);
    ofe_config_destroy(cfg);
}

static void test_field_pos(void **state)
{
    (void)state;
    struct ofe_config *cfg = tc_load(ES_HEAD "  eventBus: default\n"
                                             "  kafka:\n"
                                             "    sample-one:\n"
                                             "      brokers: \"127.0.0.1:9092\"\n"
                                             "      authRequired: false\n"
                                             "      topic: t\n");
    assert_errors(cfg, 0);
    const struct ofe_config_kafka_source *k = &cfg->eventsources[0]->spec.kafka.v[0];
    assert_string_equal(k->node.name, "sample-one");
    assert_string_equal(k->node.path, "spec.kafka.sample-one");
    assert_int_equal(k->node.pos.line, 8); /* the key sample-one */
    assert_int_equal(k->node.pos.col, 5);
    const struct ofe_config_pos *p = ofe_config_field_pos(&k->node, "brokers");
    assert_int_equal(p->line, 9);
    assert_int_equal(p->col, 16); /* the opening quote */
    p = ofe_config_field_pos(&k->node, "topic");
    assert_int_equal(p->line, 11);
    assert_int_equal(p->col, 14);
    /* Not written: the block's own position. */
    p = ofe_config_field_pos(&k->node, "consumerGroup");
    assert_int_equal(p->line, 8);
    char buf[256];
    assert_string_equal(ofe_config_where(&k->node, "brokers", buf, sizeof(buf)),
                        "t.yaml:9:16 (spec.kafka.sample-one.brokers)");
    assert_string_equal(
        ofe_config_where(&cfg->eventsources[0]->spec.delivery.node, "retry", buf, sizeof(buf)),
        "default (spec.delivery.retry)");
    ofe_config_destroy(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_multi_document),
        cmocka_unit_test(test_empty_file),
        cmocka_unit_test(test_yaml_syntax_error),
        cmocka_unit_test(test_document_shape),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_bounds_and_enums),
        cmocka_unit_test(test_unknown_and_missing),
        cmocka_unit_test(test_eventsource_rules),
        cmocka_unit_test(test_metadata),
        cmocka_unit_test(test_duplicate_documents),
        cmocka_unit_test(test_all_errors_collected),
        cmocka_unit_test(test_tags_and_aliases),
        cmocka_unit_test(test_error_cap),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_field_pos),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
