/* Bus resolution, cross-document reference checks, fingerprints and the
 * generated reference. */
#include "test_config_helpers.h"

#include <unistd.h>

#include "ofe/err.h"

#define DOC(kind, name, ns, spec)                                                                  \
    "---\napiVersion: events.openfunction.io/v1alpha1\nkind: " kind "\nmetadata: {name: " name     \
    ", namespace: " ns "}\nspec:\n" spec

#define COMP(name, ns, spec)                                                                       \
    "---\napiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: " name                   \
    ", namespace: " ns "}\nspec:\n" spec

static void test_resolution_order(void **state)
{
    (void)state;
    struct ofe_config *cfg = tc_load(
        DOC("EventBus", "bus", "app", "  kafka: {brokers: 'k:9092'}\n")
            DOC("ClusterEventBus", "bus", "default", "  jetstream: {natsURL: 'nats://j:4222'}\n")
                COMP("bus", "app",
                     "  type: pubsub.redis\n"
                     "  metadata: [{name: redisHost, value: 'r:6379'}]\n")
                    COMP("bus", "other",
                         "  type: pubsub.mqtt3\n"
                         "  metadata: [{name: url, value: 'tcp://m:1883'}]\n")
                        COMP("only-comp", "default",
                             "  type: pubsub.mqtt3\n"
                             "  metadata: [{name: url, value: 'tcp://m:1883'}]\n"));
    assert_clean(cfg);
    struct ofe_config_busdesc bd;
    char desc[1024], err[512];

    /* 1. The EventBus in the namespace wins. */
    assert_int_equal(
        ofe_config_resolve_bus(cfg, "bus", "app", &bd, desc, sizeof(desc), err, sizeof(err)), 0);
    assert_int_equal(bd.kind, OFE_CONFIG_BUS_KAFKA);
    assert_string_equal(bd.kind_name, "kafka");
    assert_ptr_equal(bd.doc, cfg->buses[0]);
    assert_ptr_equal(bd.kafka, &cfg->buses[0]->spec.kafka);
    assert_ptr_equal(bd.options, &cfg->buses[0]->spec.kafka.node);
    assert_null(bd.jetstream);
    assert_true(bd.fingerprint != 0);
    assert_int_equal(bd.fingerprint, cfg->buses[0]->doc.fingerprint);
    assert_string_equal(desc, "eventBus \"bus\" (namespace \"app\") is EventBus app/bus from "
                              "t.yaml:2:1: kafka, brokers k:9092");

    /* 2. Elsewhere, the ClusterEventBus. */
    assert_int_equal(
        ofe_config_resolve_bus(cfg, "bus", "other", &bd, desc, sizeof(desc), err, sizeof(err)), 0);
    assert_int_equal(bd.kind, OFE_CONFIG_BUS_JETSTREAM);
    assert_string_equal(desc, "eventBus \"bus\" (namespace \"other\") is ClusterEventBus bus from "
                              "t.yaml:8:1 (no EventBus of that name in the namespace): jetstream "
                              "at nats://j:4222");

    /* 3. A Component when neither exists. */
    assert_int_equal(
        ofe_config_resolve_bus(cfg, "only-comp", NULL, &bd, desc, sizeof(desc), err, sizeof(err)),
        0);
    assert_int_equal(bd.kind, OFE_CONFIG_BUS_MQTT);
    assert_string_equal(bd.mqtt->url, "tcp://m:1883");
    assert_string_equal(desc, "eventBus \"only-comp\" (namespace \"default\") is Dapr Component "
                              "default/only-comp of type pubsub.mqtt3 from t.yaml:28:1 (no "
                              "EventBus or ClusterEventBus of that name): mqtt at tcp://m:1883");

    /* 4. "default" with nothing named so: the embedded bus. */
    assert_int_equal(
        ofe_config_resolve_bus(cfg, NULL, "app", &bd, desc, sizeof(desc), err, sizeof(err)), 0);
    assert_int_equal(bd.kind, OFE_CONFIG_BUS_EMBEDDED);
    assert_null(bd.doc);
    assert_int_equal(bd.fingerprint, 0);
    assert_string_equal(bd.embedded->address, OFE_CONFIG_EMBEDDED_DEFAULT_ADDRESS);
    assert_int_equal(bd.embedded->http_port, OFE_CONFIG_EMBEDDED_DEFAULT_HTTP_PORT);
    assert_int_equal(bd.embedded->fsync, OFE_CONFIG_FSYNC_EVERYSEC);
    assert_string_equal(desc, "eventBus \"default\" (namespace \"app\"): no EventBus, "
                              "ClusterEventBus or Component named \"default\" is loaded, so the "
                              "embedded bus (ofe-eventbus) at 127.0.0.1:6380 is used");

    /* Anything else that matches nothing. */
    assert_int_equal(
        ofe_config_resolve_bus(cfg, "nope", "app", &bd, desc, sizeof(desc), err, sizeof(err)),
        OFE_ENOENT);
    assert_string_equal(err, "eventBus \"nope\": no EventBus \"nope\" in namespace \"app\", no "
                             "ClusterEventBus \"nope\" and no Component \"nope\" in namespace "
                             "\"app\" is loaded");
    ofe_config_destroy(cfg);
}

static void test_resolution_special(void **state)
{
    (void)state;
    /* A defined "default" wins over the implicit one; a natsStreaming bus is
     * JetStream; a bus with errors is refused rather than skipped. */
    struct ofe_config *cfg = tc_load(
        DOC("EventBus", "default", "default",
            "  natsStreaming: {natsURL: 'nats://n:4222', natsStreamingClusterID: c, "
            "subscriptionType: topic}\n") DOC("EventBus", "broken", "default",
                                              "  kafka: {brokers: 'k:9092', authType: password}\n")
            DOC("ClusterEventBus", "broken", "default", "  embedded: {}\n"));
    assert_errors(cfg, 2);
    struct ofe_config_busdesc bd;
    char desc[1024], err[512];
    assert_int_equal(ofe_config_resolve_bus(cfg, "default", "default", &bd, desc, sizeof(desc), err,
                                            sizeof(err)),
                     0);
    assert_int_equal(bd.kind, OFE_CONFIG_BUS_JETSTREAM);
    assert_true(bd.jetstream->from_nats_streaming);
    assert_string_equal(desc, "eventBus \"default\" (namespace \"default\") is EventBus "
                              "default/default from t.yaml:2:1: jetstream at nats://n:4222 "
                              "(converted from natsStreaming)");
    assert_int_equal(ofe_config_resolve_bus(cfg, "broken", NULL, &bd, NULL, 0, err, sizeof(err)),
                     OFE_EINVAL);
    assert_string_equal(err, "eventBus \"broken\" names EventBus default/broken (t.yaml:8:1), "
                             "which has errors");
    ofe_config_destroy(cfg);

    /* An embedded bus document: clients use its address. */
    cfg = tc_load(DOC("EventBus", "default", "default",
                      "  embedded: {address: '127.0.0.1:7000', requirepass: pw}\n"));
    assert_int_equal(
        ofe_config_resolve_bus(cfg, NULL, NULL, &bd, desc, sizeof(desc), err, sizeof(err)), 0);
    assert_string_equal(bd.embedded->address, "127.0.0.1:7000");
    assert_string_equal(bd.embedded->requirepass, "pw");
    assert_string_equal(desc, "eventBus \"default\" (namespace \"default\") is EventBus "
                              "default/default from t.yaml:2:1: the embedded bus (ofe-eventbus) "
                              "at 127.0.0.1:7000");
    ofe_config_destroy(cfg);
}

static void test_check_refs(void **state)
{
    (void)state;
    struct ofe_config *cfg =
        tc_load(DOC("EventSource", "es", "default",
                    "  eventBus: missing\n"
                    "  cron: {tick: {schedule: '@hourly'}, tock: {schedule: '@daily'}}\n")
                    DOC("EventSource", "es2", "default",
                        "  sink: {uri: 'http://x/'}\n"
                        "  cron: {tick: {schedule: '@hourly'}}\n")
                        DOC("Trigger", "tr", "default",
                            "  eventBus: default\n"
                            "  inputs:\n"
                            "    a: {eventSource: es, event: tick}\n"
                            "    b: {eventSource: es, event: tik}\n"
                            "    c: {eventSource: elsewhere, event: x}\n"
                            "  subscribers: [{condition: a && b && c, topic: t}]\n"));
    assert_clean(cfg);
    assert_int_equal(ofe_config_check_refs(cfg, OFE_CONFIG_WARNING), 2);
    assert_errors(cfg, 0);
    assert_diag(cfg, "t.yaml:6:13: warning: spec.eventBus: eventBus \"missing\": no EventBus "
                     "\"missing\" in namespace \"default\"");
    assert_diag(cfg, "t.yaml:23:33: warning: spec.inputs.b.event: EventSource default/es "
                     "(t.yaml:2) has no event 'tik' (events: tick, tock)");
    ofe_config_check_refs(cfg, OFE_CONFIG_ERROR);
    assert_errors(cfg, 2);
    ofe_config_destroy(cfg);
}

static const char *const base_yaml = "# comment\n"
                                     "apiVersion: events.openfunction.io/v1alpha1\n"
                                     "kind: EventSource\n"
                                     "metadata: {name: es}\n"
                                     "spec:\n"
                                     "  eventBus: default\n"
                                     "  kafka:\n"
                                     "    k: {brokers: 'a:1', authRequired: false, topic: t}\n"
                                     "  cron:\n"
                                     "    c: {schedule: '@hourly'}\n";

static uint64_t fp_of(const char *yaml)
{
    struct ofe_config *cfg = tc_load(yaml);
    assert_errors(cfg, 0);
    assert_int_equal(cfg->neventsources, 1);
    uint64_t f = cfg->eventsources[0]->doc.fingerprint;
    ofe_config_destroy(cfg);
    return f;
}

/* Fingerprints of the events of one EventSource, by event name. */
static void event_fps(const char *yaml, uint64_t *k, uint64_t *c)
{
    struct ofe_config *cfg = tc_load(yaml);
    assert_errors(cfg, 0);
    const struct ofe_config_eventsource *es = cfg->eventsources[0];
    assert_int_equal(es->nevents, 2);
    for (size_t i = 0; i < es->nevents; i++) {
        assert_true(es->events[i].fingerprint != 0);
        if (!strcmp(es->events[i].name, "k"))
            *k = es->events[i].fingerprint;
        else
            *c = es->events[i].fingerprint;
    }
    ofe_config_destroy(cfg);
}

static void test_event_fingerprints(void **state)
{
    (void)state;
    uint64_t k0, c0, k1, c1;
    event_fps(base_yaml, &k0, &c0);
    assert_true(k0 != c0);
    /* Changing the kafka event changes its fingerprint only. */
    event_fps("apiVersion: events.openfunction.io/v1alpha1\nkind: EventSource\n"
              "metadata: {name: es}\nspec:\n  eventBus: default\n  kafka:\n"
              "    k: {brokers: 'a:1', authRequired: false, topic: t2}\n"
              "  cron:\n    c: {schedule: '@hourly'}\n",
              &k1, &c1);
    assert_true(k1 != k0);
    assert_int_equal(c1, c0);
    /* Changing the cron event changes its fingerprint only. */
    event_fps("apiVersion: events.openfunction.io/v1alpha1\nkind: EventSource\n"
              "metadata: {name: es}\nspec:\n  eventBus: default\n  kafka:\n"
              "    k: {brokers: 'a:1', authRequired: false, topic: t}\n"
              "  cron:\n    c: {schedule: '@daily'}\n",
              &k1, &c1);
    assert_int_equal(k1, k0);
    assert_true(c1 != c0);
    /* A document-wide setting (the sink) changes both. */
    event_fps("apiVersion: events.openfunction.io/v1alpha1\nkind: EventSource\n"
              "metadata: {name: es}\nspec:\n  eventBus: default\n"
              "  sink: {uri: 'http://127.0.0.1:1/'}\n  kafka:\n"
              "    k: {brokers: 'a:1', authRequired: false, topic: t}\n"
              "  cron:\n    c: {schedule: '@hourly'}\n",
              &k1, &c1);
    assert_true(k1 != k0);
    assert_true(c1 != c0);
}

static void test_fingerprints(void **state)
{
    (void)state;
    uint64_t base = fp_of(base_yaml);
    assert_true(base != 0);
    /* Same content: reordered keys, other comments, flow vs block style. */
    assert_int_equal(fp_of("apiVersion: events.openfunction.io/v1alpha1\n"
                           "kind: EventSource\n"
                           "spec:\n"
                           "  cron:\n"
                           "    c:\n"
                           "      schedule: \"@hourly\"   # every hour\n"
                           "  kafka:\n"
                           "    k:\n"
                           "      topic: t\n"
                           "      authRequired: false\n"
                           "      brokers: a:1\n"
                           "  eventBus: default\n"
                           "metadata:\n"
                           "  name: es\n"),
                     base);
    /* A different value, key, or event name changes it. */
    assert_true(fp_of("apiVersion: events.openfunction.io/v1alpha1\nkind: EventSource\n"
                      "metadata: {name: es}\nspec:\n  eventBus: default\n  kafka:\n"
                      "    k: {brokers: 'a:1', authRequired: false, topic: t2}\n"
                      "  cron:\n    c: {schedule: '@hourly'}\n") != base);
    assert_true(fp_of("apiVersion: events.openfunction.io/v1alpha1\nkind: EventSource\n"
                      "metadata: {name: es}\nspec:\n  eventBus: default\n  kafka:\n"
                      "    k2: {brokers: 'a:1', authRequired: false, topic: t}\n"
                      "  cron:\n    c: {schedule: '@hourly'}\n") != base);
    assert_true(fp_of("apiVersion: events.openfunction.io/v1alpha1\nkind: EventSource\n"
                      "metadata: {name: es}\nspec:\n  eventBus: default\n  kafka:\n"
                      "    k: {brokers: 'a:1', authRequired: false, topic: t, initialOffset: "
                      "newest}\n"
                      "  cron:\n    c: {schedule: '@hourly'}\n") != base);
    /* ${VAR} values count after expansion. */
    setenv("OFE_T_TOPIC", "t", 1);
    assert_int_equal(fp_of("apiVersion: events.openfunction.io/v1alpha1\nkind: EventSource\n"
                           "metadata: {name: es}\nspec:\n  eventBus: default\n  kafka:\n"
                           "    k: {brokers: 'a:1', authRequired: false, topic: '${OFE_T_TOPIC}'}\n"
                           "  cron:\n    c: {schedule: '@hourly'}\n"),
                     base);

    /* A secret file's content is part of it: rotating the secret reloads. */
    char dir[256];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/ofe-fp-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(dir));
    char secret[300], yaml[1024];
    snprintf(secret, sizeof(secret), "%s/pw", dir);
    snprintf(yaml, sizeof(yaml),
             "apiVersion: events.openfunction.io/v1alpha1\nkind: EventSource\n"
             "metadata: {name: es}\nspec:\n  eventBus: default\n"
             "  redis: {r: {redisHost: 'h:1', redisPasswordFile: '%s', stream: s}}\n",
             secret);
    FILE *f = fopen(secret, "w");
    fputs("one\n", f);
    fclose(f);
    struct ofe_config *a = tc_load(yaml);
    struct ofe_config *b = tc_load(yaml);
    assert_true(ofe_config_doc_same(&a->eventsources[0]->doc, &b->eventsources[0]->doc));
    f = fopen(secret, "w");
    fputs("two\n", f);
    fclose(f);
    struct ofe_config *c = tc_load(yaml);
    assert_false(ofe_config_doc_same(&a->eventsources[0]->doc, &c->eventsources[0]->doc));
    assert_false(ofe_config_doc_same(&a->eventsources[0]->doc, NULL));
    ofe_config_destroy(a);
    ofe_config_destroy(b);
    ofe_config_destroy(c);
    unlink(secret);
    rmdir(dir);
}

static void test_reference(void **state)
{
    (void)state;
    struct ofe_buf b = OFE_BUF_INIT;
    assert_int_equal(ofe_config_reference(&b), 0);
    /* Every block of every kind is documented, with types and defaults
     * taken from the tables. */
    static const char *const want[] = {
        "### EventSource.spec\n",
        "### EventSource.spec.kafka.<event>\n",
        "### EventSource.spec.cron.<event>\n",
        "### EventSource.spec.redis.<event>\n",
        "### EventSource.spec.mqtt.<event>\n",
        "### EventSource.spec.nats.<event>\n",
        "### EventSource.spec.webhook.<event>\n",
        "### EventBus.spec\n",
        "### EventBus.spec.natsStreaming\n",
        "### EventBus.spec.jetstream\n",
        "### EventBus.spec.kafka\n",
        "### EventBus.spec.mqtt\n",
        "### EventBus.spec.redis\n",
        "### EventBus.spec.embedded\n",
        "### Component.spec\n",
        "### Trigger.spec\n",
        "### Trigger.spec.inputs.<name>\n",
        "### Trigger.spec.subscribers[]\n",
        "| `brokers` | a comma-separated string or a list | **required** |",
        "| `saslPassword` | string, secret (or `saslPasswordFile`) | - | SASL password. |",
        "| `backoffDelay` | a duration 1ms..24h | `PT0.2S` |",
        "| `address` | a string | `127.0.0.1:6380` |",
        "| `fsync` | one of always, everysec, no | `everysec` |",
        "| `condition` | a string | **required** | Boolean expression over input names: &&, "
        "\\|\\|, "
        "!, parentheses, and/or/not. |",
        "| `kafka` | mapping of names to [EventSource.spec.kafka.<event>](#eventsource-kafka) |",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        if (!strstr(b.data, want[i]))
            print_error("reference lacks: %s\n", want[i]);
        assert_non_null(strstr(b.data, want[i]));
    }
    /* Hidden bookkeeping fields are not listed. */
    assert_null(strstr(b.data, "resourceVersion`"));
    ofe_buf_fini(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resolution_order),   cmocka_unit_test(test_resolution_special),
        cmocka_unit_test(test_check_refs),         cmocka_unit_test(test_fingerprints),
        cmocka_unit_test(test_event_fingerprints), cmocka_unit_test(test_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
