/* ofe-eventsource with a kafka source against ofe-kafka-mock (a real
 * Kafka protocol broker on librdkafka's mock cluster), ofe-eventbus as the
 * bus and an HTTP sink in this process, as a user runs it:
 *   - native records and CloudEvent records become the documented
 *     CloudEvents, checked attribute by attribute at the sink and on the
 *     bus; a record that claims to be a CloudEvent but is not one is
 *     counted and skipped;
 *   - a sink answering 503, timing out or refusing connections gets
 *     retries, and the offset is committed only after delivery;
 *   - a bus that is down pauses the source (bounded in flight) and it
 *     resumes by itself. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>

#include "es_testlib.h"
#include "ofe/config.h"
#include "ofe/pubsub.h"
#include "servers.h"

static struct tu_server *kafka, *bus;
static struct es_sink *sink;

/* ---- kafka helpers -------------------------------------------------------- */

static rd_kafka_t *producer(void)
{
    char e[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "bootstrap.servers", kafka->url, e, sizeof(e));
    rd_kafka_conf_set(c, "linger.ms", "1", e, sizeof(e));
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, c, e, sizeof(e));
    assert_non_null(p);
    return p;
}

/* Produces one record to partition 0 and waits for it. hdrs: name, value
 * pairs, NULL-terminated. */
static void produce(rd_kafka_t *p, const char *topic, const void *key, size_t klen, const void *val,
                    size_t vlen, const char *const *hdrs)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    for (size_t i = 0; hdrs && hdrs[i]; i += 2)
        rd_kafka_header_add(h, hdrs[i], -1, hdrs[i + 1], -1);
    rd_kafka_resp_err_t err = rd_kafka_producev(
        p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0), RD_KAFKA_V_KEY(key, klen),
        RD_KAFKA_V_VALUE((void *)val, vlen), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
    if (err)
        rd_kafka_headers_destroy(h);
    assert_int_equal(err, 0);
    assert_int_equal(rd_kafka_flush(p, 10000), 0);
}

/* Committed offset of partition 0 of topic for group (-1001: none). */
static int64_t committed(const char *group, const char *topic)
{
    char e[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "bootstrap.servers", kafka->url, e, sizeof(e));
    rd_kafka_conf_set(c, "group.id", group, e, sizeof(e));
    rd_kafka_t *k = rd_kafka_new(RD_KAFKA_CONSUMER, c, e, sizeof(e));
    assert_non_null(k);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, 0);
    int64_t off = -1001;
    if (rd_kafka_committed(k, l, 5000) == 0)
        off = l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(k);
    return off;
}

/* ---- config ----------------------------------------------------------------- */

static char *yaml_for(const char *topic, const char *group, bool with_bus, const char *extra)
{
    char *y = NULL;
    int n = asprintf(&y,
                     "apiVersion: events.openfunction.io/v1alpha1\n"
                     "kind: EventBus\n"
                     "metadata: {name: default}\n"
                     "spec:\n"
                     "  embedded: {address: \"%s\"}\n"
                     "---\n"
                     "apiVersion: events.openfunction.io/v1alpha1\n"
                     "kind: EventSource\n"
                     "metadata: {name: ks}\n"
                     "spec:\n"
                     "%s"
                     "  sink: {uri: \"%s\"}\n"
                     "  delivery: {retry: 2, backoffDelay: 20ms, backoffCap: 200ms, timeout: 1s}\n"
                     "  kafka:\n"
                     "    %s:\n"
                     "      brokers: \"%s\"\n"
                     "      authRequired: false\n"
                     "      topic: %s\n"
                     "      consumerGroup: %s\n"
                     "      initialOffset: oldest\n"
                     "      rdkafka.session.timeout.ms: 4000\n"
                     "      rdkafka.heartbeat.interval.ms: 500\n"
                     "      rdkafka.fetch.wait.max.ms: 20\n"
                     "%s",
                     bus->addr, with_bus ? "  eventBus: default\n" : "", es_sink_url(sink), topic,
                     kafka->url, topic, group, extra ? extra : "");
    assert_true(n > 0);
    return y;
}

/* ---- tests --------------------------------------------------------------------- */

static void test_attributes(void **state)
{
    char *yaml = yaml_for("orders", "g-attr", true, NULL);
    struct es_daemon *d = es_daemon_start(yaml, NULL);
    assert_non_null(d);
    struct es_got *g = es_got_subscribe(yaml, "default-ks-orders", "check");
    assert_non_null(g);

    rd_kafka_t *p = producer();
    /* 0: native JSON, text key, a header */
    const char *j = "{\"order\": 42}";
    produce(p, "orders", "user-7", 6, j, strlen(j), (const char *[]){"X-Trace", "abc-1", NULL});
    /* 1: native binary with a binary key and an explicit content type */
    const unsigned char bin[] = {0, 1, 2, 0xff, 0xfe};
    const unsigned char bkey[] = {0x00, 0x9f};
    produce(p, "orders", bkey, 2, bin, sizeof(bin),
            (const char *[]){"content-type", "application/x-thing", NULL});
    /* 2: a CloudEvent in binary mode passes through */
    produce(p, "orders", "pk", 2, "hello", 5,
            (const char *[]){"ce_specversion", "1.0", "ce_id", "ce-bin-1", "ce_source",
                             "/my/source", "ce_type", "com.example.bin", "ce_myext", "x y",
                             "content-type", "text/plain", NULL});
    /* 3: a structured CloudEvent passes through */
    const char *st = "{\"specversion\":\"1.0\",\"id\":\"ce-st-1\",\"source\":\"/s\",\"type\":"
                     "\"com.example.st\",\"subject\":\"sub\",\"datacontenttype\":"
                     "\"application/json\",\"data\":{\"a\":1}}";
    produce(p, "orders", NULL, 0, st, strlen(st),
            (const char *[]){"content-type", "application/cloudevents+json", NULL});
    /* 4: claims to be a CloudEvent but has no id: counted, skipped */
    produce(p, "orders", NULL, 0, "x", 1,
            (const char *[]){"ce_specversion", "1.0", "ce_source", "/s", "ce_type", "t", NULL});
    /* 5: a tombstone (no value): an event without data */
    produce(p, "orders", "gone", 4, NULL, 0, NULL);

    bool ok = es_sink_wait(sink, 5, 20000) >= 5 && es_got_wait(g, 5, 10000) >= 5;
    if (!ok)
        es_daemon_free(d, true), d = NULL;
    assert_true(ok);

    struct ofe_ce *ev = es_sink_find_id(sink, "orders/0/0");
    assert_non_null(ev);
    es_assert_attr(ev, "specversion", "1.0");
    es_assert_attr(ev, "source", "/namespaces/default/eventsources/ks/orders");
    es_assert_attr(ev, "type", "dev.ofevents.kafka.message");
    es_assert_attr(ev, "subject", "orders");
    es_assert_attr(ev, "datacontenttype", "application/json");
    es_assert_attr(ev, "partition", "0");
    es_assert_attr(ev, "offset", "0");
    es_assert_attr(ev, "partitionkey", "user-7");
    es_assert_attr(ev, "kafkaheaderxtrace", "abc-1");
    assert_non_null(ofe_ce_get_str(ev, "time"));
    assert_int_equal(ev->data_len, strlen(j));
    assert_memory_equal(ev->data, j, strlen(j));
    /* on the bus the same event, with typed extensions */
    struct ofe_ce *bev = es_got_find(g, "orders/0/0");
    assert_non_null(bev);
    assert_int_equal(ofe_ce_get(bev, "partition", 9)->type, OFE_CE_T_INTEGER);
    assert_string_equal(ofe_ce_get_str(bev, "time"), ofe_ce_get_str(ev, "time"));
    assert_string_equal(ofe_ce_get_str(bev, "kafkaheaderxtrace"), "abc-1");
    assert_int_equal(bev->data_len, strlen(j));
    ofe_ce_unref(ev);

    ev = es_sink_find_id(sink, "orders/0/1");
    assert_non_null(ev);
    es_assert_attr(ev, "datacontenttype", "application/x-thing");
    es_assert_attr(ev, "partitionkey", NULL);
    es_assert_attr(ev, "kafkakey", "AJ8=");
    assert_int_equal(ev->data_len, sizeof(bin));
    assert_memory_equal(ev->data, bin, sizeof(bin));
    bev = es_got_find(g, "orders/0/1");
    assert_non_null(bev);
    assert_int_equal(ofe_ce_get(bev, "kafkakey", 8)->type, OFE_CE_T_BINARY);
    ofe_ce_unref(ev);

    ev = es_sink_find_id(sink, "ce-bin-1");
    assert_non_null(ev);
    es_assert_attr(ev, "source", "/my/source");
    es_assert_attr(ev, "type", "com.example.bin");
    es_assert_attr(ev, "myext", "x y");
    es_assert_attr(ev, "datacontenttype", "text/plain");
    es_assert_attr(ev, "partitionkey", "pk");
    es_assert_attr(ev, "partition", NULL); /* passed through unchanged */
    assert_int_equal(ev->data_len, 5);
    bev = es_got_find(g, "ce-bin-1");
    assert_non_null(bev);
    assert_true(ofe_ce_equal(bev, ev) || !strcmp(ofe_ce_get_str(bev, "myext"), "x y"));
    ofe_ce_unref(ev);

    ev = es_sink_find_id(sink, "ce-st-1");
    assert_non_null(ev);
    es_assert_attr(ev, "type", "com.example.st");
    es_assert_attr(ev, "subject", "sub");
    es_assert_attr(ev, "datacontenttype", "application/json");
    assert_memory_equal(ev->data, "{\"a\":1}", 7);
    ofe_ce_unref(ev);

    ev = es_sink_find_id(sink, "orders/0/5");
    assert_non_null(ev);
    assert_false(ev->has_data);
    es_assert_attr(ev, "datacontenttype", NULL);
    es_assert_attr(ev, "partitionkey", "gone");
    ofe_ce_unref(ev);
    assert_null(es_sink_find_id(sink, "orders/0/4"));

    const char *src = "source=\"default/ks/orders\"";
    assert_int_equal((int)es_daemon_metric_sum(d, "ofe_eventsource_events_invalid_total", src), 1);
    assert_int_equal((int)es_daemon_metric_sum(d, "ofe_eventsource_events_received_total", src), 5);
    assert_int_equal(
        (int)es_daemon_metric(d, "ofe_eventsource_events_delivered_total{source=\"default/ks/"
                                 "orders\",destination=\"sink\"}"),
        5);
    assert_int_equal(
        (int)es_daemon_metric(d, "ofe_eventsource_events_delivered_total{source=\"default/ks/"
                                 "orders\",destination=\"bus\"}"),
        5);
    /* everything acked: the offset after the last record gets committed */
    uint64_t end = es_now_ms_test() + 5000;
    while (committed("g-attr", "orders") != 6 && es_now_ms_test() < end)
        es_msleep(50);
    assert_int_equal(committed("g-attr", "orders"), 6);
    assert_true(es_daemon_log_has(d, "not a valid CloudEvent"));
    assert_int_equal(es_daemon_stop(d), 0);

    es_got_free(g);
    rd_kafka_destroy(p);
    es_daemon_free(d, false);
    es_sink_clear(sink);
    free(yaml);
}

/* Waits until the sink saw at least n requests. */
static bool wait_requests(size_t n, int timeout_ms)
{
    uint64_t end = es_now_ms_test() + (uint64_t)timeout_ms;
    while (es_sink_requests(sink) < n && es_now_ms_test() < end)
        es_msleep(20);
    return es_sink_requests(sink) >= n;
}

static void test_failing_sink(void **state)
{
    char *yaml = yaml_for("retry", "g-retry", false, NULL);
    struct es_daemon *d = es_daemon_start(yaml, NULL);
    assert_non_null(d);
    rd_kafka_t *p = producer();
    produce(p, "retry", NULL, 0, "first", 5, NULL);
    assert_true(es_sink_wait(sink, 1, 20000) >= 1);
    uint64_t end = es_now_ms_test() + 5000;
    while (committed("g-retry", "retry") != 1 && es_now_ms_test() < end)
        es_msleep(50);
    assert_int_equal(committed("g-retry", "retry"), 1);

    /* 503: retried (3 attempts per round, then redriven), not committed */
    es_sink_fail(sink, 503, -1);
    size_t before = es_sink_requests(sink);
    produce(p, "retry", NULL, 0, "second", 6, NULL);
    assert_true(wait_requests(before + 6, 10000));
    es_msleep(300); /* a commit would have happened by now */
    assert_int_equal(committed("g-retry", "retry"), 1);
    assert_int_equal(es_sink_count(sink), 1);
    const char *s = "ofe_eventsource_events_retried_total{source=\"default/ks/retry\","
                    "destination=\"sink\"}";
    assert_true(es_daemon_metric(d, s) >= 5);
    assert_true(es_daemon_metric(d, "ofe_eventsource_inputs_acked_total{source=\"default/ks/"
                                    "retry\",kind=\"kafka\"}") == 1);

    /* timeouts: the sink answers after the 1 s attempt timeout */
    es_sink_fail(sink, 0, 0);
    es_sink_delay(sink, 1500);
    before = es_sink_requests(sink);
    assert_true(wait_requests(before + 2, 10000));
    assert_int_equal(committed("g-retry", "retry"), 1);

    /* connection refused: the sink is gone */
    int port = es_sink_port(sink);
    es_sink_stop(sink);
    es_msleep(1500);
    assert_int_equal(committed("g-retry", "retry"), 1);
    char why[512];
    assert_int_equal(es_daemon_get(d, "/readyz", why, sizeof(why)), 503);
    assert_non_null(strstr(why, "sink"));
    /* back: delivered once accepted, then committed */
    sink = es_sink_start(port);
    assert_non_null(sink);
    assert_true(es_sink_wait(sink, 1, 20000) >= 1);
    struct ofe_ce *ev = es_sink_event(sink, 0);
    assert_string_equal(ofe_ce_get_str(ev, "id"), "retry/0/1");
    assert_memory_equal(ev->data, "second", 6);
    ofe_ce_unref(ev);
    end = es_now_ms_test() + 5000;
    while (committed("g-retry", "retry") != 2 && es_now_ms_test() < end)
        es_msleep(50);
    assert_int_equal(committed("g-retry", "retry"), 2);
    assert_true(es_daemon_wait_ready(d, 5000));

    /* 400: refused for good, not retried, acknowledged and counted */
    es_sink_clear(sink);
    es_sink_fail(sink, 400, 1);
    produce(p, "retry", NULL, 0, "third", 5, NULL);
    end = es_now_ms_test() + 10000;
    while (committed("g-retry", "retry") != 3 && es_now_ms_test() < end)
        es_msleep(50);
    assert_int_equal(committed("g-retry", "retry"), 3);
    assert_int_equal(es_sink_requests(sink), 1);
    assert_int_equal((int)es_daemon_metric(d, "ofe_eventsource_events_rejected_total{source="
                                              "\"default/ks/retry\",destination=\"sink\"}"),
                     1);
    assert_int_equal(es_daemon_stop(d), 0);
    rd_kafka_destroy(p);
    es_daemon_free(d, false);
    es_sink_delay(sink, 0);
    es_sink_fail(sink, 0, 0);
    es_sink_clear(sink);
    free(yaml);
}

static void test_bus_down(void **state)
{
    char *yaml = yaml_for("busdown", "g-busdown", true, NULL);
    struct es_daemon *d = es_daemon_start(yaml, (const char *[]){"--max-inflight", "8", NULL});
    assert_non_null(d);
    assert_true(es_daemon_wait_ready(d, 20000));
    rd_kafka_t *p = producer();
    produce(p, "busdown", NULL, 0, "warm", 4, NULL);
    assert_true(es_sink_wait(sink, 1, 20000) >= 1);

    tu_server_kill(bus);
    char line[64];
    for (int i = 0; i < 100; i++) {
        snprintf(line, sizeof(line), "ev-%03d", i);
        produce(p, "busdown", NULL, 0, line, strlen(line), NULL);
    }
    es_msleep(2500);
    /* Paused: at most max in-flight (plus one fetched batch) went out. */
    size_t at_sink = es_sink_count(sink);
    assert_true(at_sink < 1 + 8 + 8);
    const char *src = "source=\"default/ks/busdown\"";
    assert_int_equal((int)es_daemon_metric_sum(d, "ofe_eventsource_source_paused", src), 1);
    double recv = es_daemon_metric_sum(d, "ofe_eventsource_events_received_total", src);
    assert_true(recv <= 1 + 8 + 8);
    char why[512];
    assert_int_equal(es_daemon_get(d, "/readyz", why, sizeof(why)), 503);

    assert_int_equal(tu_server_restart(bus), 0);
    /* Resumes by itself: every record reaches the sink (redriven ones may
     * come twice) and the bus. */
    uint64_t end = es_now_ms_test() + 30000;
    bool all = false;
    while (!all && es_now_ms_test() < end) {
        all = true;
        for (int i = 0; i < 100 && all; i++) {
            snprintf(line, sizeof(line), "ev-%03d", i);
            struct ofe_ce *ev = es_sink_find_data(sink, line, strlen(line));
            all = ev != NULL;
            ofe_ce_unref(ev);
        }
        if (!all)
            es_msleep(100);
    }
    if (!all)
        es_daemon_free(d, true), d = NULL;
    assert_true(all);
    struct es_got *g = es_got_subscribe(yaml, "default-ks-busdown", "check");
    assert_non_null(g);
    assert_true(es_got_wait(g, 101, 20000) >= 101);
    for (int i = 0; i < 100; i++) {
        char id[64];
        snprintf(id, sizeof(id), "busdown/0/%d", i + 1);
        assert_non_null(es_got_find(g, id));
    }
    assert_true(es_daemon_wait_ready(d, 10000));
    assert_int_equal((int)es_daemon_metric_sum(d, "ofe_eventsource_source_paused", src), 0);
    es_got_free(g);
    assert_int_equal(es_daemon_stop(d), 0);
    rd_kafka_destroy(p);
    es_daemon_free(d, false);
    es_sink_clear(sink);
    free(yaml);
}

static void test_validate(void **state)
{
    char *yaml = yaml_for("v", "g-v", false,
                          "      rdkafka.no.such.property: 1\n"
                          "    second:\n"
                          "      brokers: 127.0.0.1:1\n"
                          "      authRequired: false\n"
                          "      topic: t\n"
                          "      tls: {serverName: kafka.example}\n"
                          "      rdkafka.fetch.wait.max.ms: often\n");
    char out[8192];
    int rc = es_validate(yaml, out, sizeof(out));
    if (rc != 2 || !strstr(out, "3 error(s)"))
        fprintf(stderr, "%s\n", out);
    assert_int_equal(rc, 2);
    /* file:line:column and the field path of each problem, with
     * librdkafka's own words */
    assert_non_null(strstr(out, "config.yaml:23:33: error: spec.kafka.v.rdkafka.no.such.property: "
                                "No such configuration property: \"no.such.property\""));
    assert_non_null(strstr(out, "config.yaml:28:25: error: spec.kafka.second.tls.serverName: "
                                "librdkafka has no server name override"));
    assert_non_null(strstr(out, "config.yaml:29:34: error: "
                                "spec.kafka.second.rdkafka.fetch.wait.max.ms: "));
    assert_non_null(strstr(out, "3 error(s) in the configuration"));
    free(yaml);
}

static int setup(void **state)
{
    kafka = tu_server_start(TU_KAFKA, NULL);
    bus = tu_server_start(TU_EVENTBUS, NULL);
    sink = es_sink_start(0);
    return kafka && bus && sink ? 0 : -1;
}

static int teardown(void **state)
{
    es_sink_stop(sink);
    tu_server_free(bus);
    tu_server_free(kafka);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_attributes),
        cmocka_unit_test(test_failing_sink),
        cmocka_unit_test(test_bus_down),
    };
    if (getenv("ES_TEST"))
        cmocka_set_test_filter(getenv("ES_TEST"));
    return cmocka_run_group_tests(tests, setup, teardown);
}
