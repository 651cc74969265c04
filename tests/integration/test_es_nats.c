/* ofe-eventsource with nats sources against a real nats-server -js, the
 * embedded bus (ofe-eventbus) and an HTTP sink in this process:
 *   - core NATS: native messages (with Nats-Msg-Id, Content-Type) and
 *     CloudEvents in headers or structured become the documented events,
 *     checked at the sink and on the bus;
 *   - JetStream: a durable consumer made on first start (stream looked up
 *     by subject), ids {stream}/{sequence}, metadata time; a message is
 *     acked only after the sink accepted it (the consumer's ack-pending
 *     count stays up while the sink answers 503). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <nats/nats.h>

#include "es_testlib.h"
#include "servers.h"

static struct tu_server *nats, *bus;
static struct es_sink *sink;
static natsConnection *nc;
static jsCtx *js;

static char *yaml_for(const char *event, const char *body)
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
                     "metadata: {name: ns}\n"
                     "spec:\n"
                     "  eventBus: default\n"
                     "  sink: {uri: \"%s\"}\n"
                     "  delivery: {retry: 1, backoffDelay: 20ms, backoffCap: 100ms, timeout: 1s}\n"
                     "  nats:\n"
                     "    %s:\n"
                     "      url: \"%s\"\n"
                     "%s",
                     bus->addr, es_sink_url(sink), event, nats->url, body);
    assert_true(n > 0);
    return y;
}

static void publish(const char *subject, const char *data, const char *const *hdrs, bool jet)
{
    natsMsg *m = NULL;
    assert_int_equal(natsMsg_Create(&m, subject, NULL, data, data ? (int)strlen(data) : 0),
                     NATS_OK);
    for (size_t i = 0; hdrs && hdrs[i]; i += 2)
        natsMsgHeader_Add(m, hdrs[i], hdrs[i + 1]);
    if (jet) {
        jsPubAck *pa = NULL;
        assert_int_equal(js_PublishMsg(&pa, js, m, NULL, NULL), NATS_OK);
        jsPubAck_Destroy(pa);
    } else {
        assert_int_equal(natsConnection_PublishMsg(nc, m), NATS_OK);
        natsConnection_Flush(nc);
    }
    natsMsg_Destroy(m);
}

static void test_core(void **state)
{
    char *yaml = yaml_for("tele", "      subject: \"tele.>\"\n      queueGroup: workers\n");
    struct es_daemon *d = es_daemon_start(yaml, NULL);
    assert_non_null(d);
    bool ready = es_daemon_wait_ready(d, 15000);
    if (!ready)
        es_daemon_free(d, true), d = NULL;
    assert_true(ready);
    struct es_got *g = es_got_subscribe(yaml, "default-ns-tele", "check");
    assert_non_null(g);

    publish("tele.a", "{\"t\": 21.5}", (const char *[]){"Nats-Msg-Id", "m-1", NULL}, false);
    publish("tele.b.c", "plain text", (const char *[]){"Content-Type", "text/x-log", NULL}, false);
    publish("tele.ce", "payload",
            (const char *[]){"ce-specversion", "1.0", "ce-id", "nats-ce-1", "ce-source",
                             "/sensors/1", "ce-type", "com.example.reading", "ce-reading", "21%25",
                             "Content-Type", "text/plain", NULL},
            false);
    publish("tele.st",
            "{\"specversion\":\"1.0\",\"id\":\"nats-st-1\",\"source\":\"/s\",\"type\":\"t.st\","
            "\"data\":[1,2]}",
            (const char *[]){"Content-Type", "application/cloudevents+json", NULL}, false);
    publish("tele.bad", "x", (const char *[]){"ce-specversion", "1.0", "ce-id", "no-source", NULL},
            false);

    bool ok = es_sink_wait(sink, 4, 10000) >= 4 && es_got_wait(g, 4, 10000) >= 4;
    if (!ok)
        es_daemon_free(d, true), d = NULL;
    assert_true(ok);
    struct ofe_ce *ev = es_sink_find_id(sink, "m-1");
    assert_non_null(ev);
    es_assert_attr(ev, "source", "/namespaces/default/eventsources/ns/tele");
    es_assert_attr(ev, "type", "dev.ofevents.nats.message");
    es_assert_attr(ev, "subject", "tele.a");
    es_assert_attr(ev, "datacontenttype", "application/json");
    assert_non_null(ofe_ce_get_str(ev, "time"));
    assert_memory_equal(ev->data, "{\"t\": 21.5}", 11);
    assert_non_null(es_got_find(g, "m-1"));
    ofe_ce_unref(ev);

    ev = es_sink_find_data(sink, "plain text", 10);
    assert_non_null(ev);
    es_assert_attr(ev, "subject", "tele.b.c");
    es_assert_attr(ev, "datacontenttype", "text/x-log");
    assert_int_equal(strlen(ofe_ce_get_str(ev, "id")), 36); /* a UUID: no stable id exists */
    assert_non_null(es_got_find(g, ofe_ce_get_str(ev, "id")));
    ofe_ce_unref(ev);

    ev = es_sink_find_id(sink, "nats-ce-1");
    assert_non_null(ev);
    es_assert_attr(ev, "source", "/sensors/1");
    es_assert_attr(ev, "type", "com.example.reading");
    es_assert_attr(ev, "reading", "21%");
    es_assert_attr(ev, "datacontenttype", "text/plain");
    es_assert_attr(ev, "subject", NULL);
    struct ofe_ce *bev = es_got_find(g, "nats-ce-1");
    assert_non_null(bev);
    es_assert_attr(bev, "reading", "21%");
    assert_memory_equal(bev->data, "payload", 7);
    ofe_ce_unref(ev);

    ev = es_sink_find_id(sink, "nats-st-1");
    assert_non_null(ev);
    es_assert_attr(ev, "type", "t.st");
    assert_memory_equal(ev->data, "[1,2]", 5);
    ofe_ce_unref(ev);

    const char *src = "source=\"default/ns/tele\"";
    assert_int_equal((int)es_daemon_metric_sum(d, "ofe_eventsource_events_invalid_total", src), 1);
    assert_int_equal((int)es_daemon_metric_sum(d, "ofe_eventsource_events_received_total", src), 4);
    assert_int_equal(es_daemon_stop(d), 0);
    es_got_free(g);
    es_daemon_free(d, false);
    es_sink_clear(sink);
    free(yaml);
}

static int64_t ack_pending(const char *stream, const char *durable)
{
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    if (js_GetConsumerInfo(&ci, js, stream, durable, NULL, &jerr) != NATS_OK)
        return -1;
    int64_t n = ci->NumAckPending + (int64_t)ci->NumPending;
    jsConsumerInfo_Destroy(ci);
    return n;
}

static void test_jetstream(void **state)
{
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = "ORDERS";
    const char *subj[] = {"orders.*"};
    sc.Subjects = subj;
    sc.SubjectsLen = 1;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    assert_int_equal(js_AddStream(&si, js, &sc, NULL, &jerr), NATS_OK);
    jsStreamInfo_Destroy(si);
    /* published before the source first started: deliverPolicy all gets it */
    publish("orders.created", "{\"n\":1}", NULL, true);

    char *yaml = yaml_for("orders", "      subject: orders.created\n"
                                    "      jetstream: {ackWait: 2s}\n");
    struct es_daemon *d = es_daemon_start(yaml, NULL);
    assert_non_null(d);
    struct es_got *g = es_got_subscribe(yaml, "default-ns-orders", "check");
    assert_non_null(g);
    publish("orders.created", "{\"n\":2}", (const char *[]){"Nats-Msg-Id", "dedupe-2", NULL}, true);
    publish("orders.other", "{\"n\":0}", NULL, true); /* not this subject */
    bool ok = es_sink_wait(sink, 2, 15000) >= 2 && es_got_wait(g, 2, 10000) >= 2;
    if (!ok)
        es_daemon_free(d, true), d = NULL;
    assert_true(ok);
    struct ofe_ce *ev = es_sink_find_id(sink, "ORDERS/1");
    assert_non_null(ev);
    es_assert_attr(ev, "subject", "orders.created");
    es_assert_attr(ev, "type", "dev.ofevents.nats.message");
    es_assert_attr(ev, "datacontenttype", "application/json");
    assert_memory_equal(ev->data, "{\"n\":1}", 7);
    ofe_ce_unref(ev);
    ev = es_sink_find_id(sink, "ORDERS/2");
    assert_non_null(ev);
    assert_memory_equal(ev->data, "{\"n\":2}", 7);
    struct ofe_ce *bev = es_got_find(g, "ORDERS/2");
    assert_non_null(bev);
    assert_string_equal(ofe_ce_get_str(bev, "time"), ofe_ce_get_str(ev, "time"));
    ofe_ce_unref(ev);
    /* the durable got its default name, everything acked */
    uint64_t end = es_now_ms_test() + 5000;
    while (ack_pending("ORDERS", "default-ns-orders") != 0 && es_now_ms_test() < end)
        es_msleep(50);
    assert_int_equal(ack_pending("ORDERS", "default-ns-orders"), 0);

    /* the sink fails: the message stays unacked, and is delivered once the
     * sink accepts */
    es_sink_fail(sink, 503, -1);
    size_t before = es_sink_requests(sink);
    publish("orders.created", "{\"n\":3}", NULL, true);
    while (es_sink_requests(sink) < before + 4 && es_now_ms_test() < end + 10000)
        es_msleep(20);
    assert_true(es_sink_requests(sink) >= before + 4);
    assert_int_equal(ack_pending("ORDERS", "default-ns-orders"), 1);
    assert_int_equal(es_sink_count(sink), 2);
    es_sink_fail(sink, 0, 0);
    assert_true(es_sink_wait(sink, 3, 10000) >= 3);
    ev = es_sink_find_id(sink, "ORDERS/4");
    assert_non_null(ev);
    ofe_ce_unref(ev);
    end = es_now_ms_test() + 5000;
    while (ack_pending("ORDERS", "default-ns-orders") != 0 && es_now_ms_test() < end)
        es_msleep(50);
    assert_int_equal(ack_pending("ORDERS", "default-ns-orders"), 0);
    int st = es_daemon_stop(d);
    if (st != 0)
        es_daemon_free(d, true), d = NULL;
    assert_int_equal(st, 0);
    es_got_free(g);
    es_daemon_free(d, false);
    es_sink_clear(sink);
    free(yaml);
}

static void test_validate(void **state)
{
    char *yaml = yaml_for("v", "      subject: a\n"
                               "      queueGroup: q\n"
                               "      nkeySeed: SUNOTASEED\n"
                               "      jetstream: {}\n");
    char out[8192];
    int rc = es_validate(yaml, out, sizeof(out));
    if (rc != 2 || !strstr(out, "config.yaml:19:17"))
        fprintf(stderr, "%s\n", out);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "config.yaml:18:19: error: spec.nats.v.queueGroup: "));
    assert_non_null(strstr(out, "config.yaml:19:17: error: spec.nats.v.nkeySeed: not an NKey"));
    free(yaml);
}

static int setup(void **state)
{
    nats = tu_server_start(TU_NATS, NULL);
    bus = tu_server_start(TU_EVENTBUS, NULL);
    sink = es_sink_start(0);
    if (!nats || !bus || !sink)
        return -1;
    if (natsConnection_ConnectTo(&nc, nats->url) != NATS_OK)
        return -1;
    if (natsConnection_JetStream(&js, nc, NULL) != NATS_OK)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    es_sink_stop(sink);
    tu_server_free(bus);
    tu_server_free(nats);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_core),
        cmocka_unit_test(test_jetstream),
    };
    if (getenv("ES_TEST"))
        cmocka_set_test_filter(getenv("ES_TEST"));
    return cmocka_run_group_tests(tests, setup, teardown);
}
