/* ofe-eventsource with mqtt sources against a real mosquitto, the embedded
 * bus (ofe-eventbus) and an HTTP sink in this process:
 *   - MQTT 5: native messages (content type property, wildcard topics)
 *     and CloudEvents in user properties or structured payloads become
 *     the documented events, checked at the sink and on the bus;
 *   - MQTT 3.1.1: structured CloudEvents and plain payloads;
 *   - a QoS 1 message is acknowledged only after delivery: while the sink
 *     fails, a kill -9 of the daemon leaves it with the broker, and the
 *     restarted daemon delivers it with the same id. */
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "es_testlib.h"
#include "servers.h"

static struct tu_server *mq, *bus;
static struct es_sink *sink;

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
                     "metadata: {name: ms}\n"
                     "spec:\n"
                     "  eventBus: default\n"
                     "  sink: {uri: \"%s\"}\n"
                     "  delivery: {retry: 1, backoffDelay: 20ms, backoffCap: 100ms, timeout: 1s}\n"
                     "  mqtt:\n"
                     "    %s:\n"
                     "      url: \"%s\"\n"
                     "%s",
                     bus->addr, es_sink_url(sink), event, mq->url, body);
    assert_true(n > 0);
    return y;
}

/* A publisher: QoS 1, waits for each PUBACK. */
struct pub {
    struct mosquitto *m;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int acked;
};

static void on_pub(struct mosquitto *m, void *obj, int mid, int rc, const mosquitto_property *p)
{
    struct pub *p_ = obj;
    pthread_mutex_lock(&p_->lock);
    p_->acked++;
    pthread_cond_broadcast(&p_->cond);
    pthread_mutex_unlock(&p_->lock);
}

static struct pub *pub_new(int version)
{
    struct pub *p = calloc(1, sizeof(*p));
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    p->m = mosquitto_new(NULL, true, p);
    mosquitto_int_option(p->m, MOSQ_OPT_PROTOCOL_VERSION, version);
    mosquitto_publish_v5_callback_set(p->m, on_pub);
    assert_int_equal(mosquitto_connect(p->m, "127.0.0.1", mq->port, 30), 0);
    assert_int_equal(mosquitto_loop_start(p->m), 0);
    return p;
}

static void pub_free(struct pub *p)
{
    mosquitto_disconnect(p->m);
    mosquitto_loop_stop(p->m, false);
    mosquitto_destroy(p->m);
    free(p);
}

/* props: NULL-terminated pairs; "content-type" sets the Content Type. */
static void publish(struct pub *p, const char *topic, const void *data, size_t len,
                    const char *const *props)
{
    mosquitto_property *pl = NULL;
    for (size_t i = 0; props && props[i]; i += 2) {
        if (!strcmp(props[i], "content-type"))
            mosquitto_property_add_string(&pl, MQTT_PROP_CONTENT_TYPE, props[i + 1]);
        else
            mosquitto_property_add_string_pair(&pl, MQTT_PROP_USER_PROPERTY, props[i],
                                               props[i + 1]);
    }
    pthread_mutex_lock(&p->lock);
    int before = p->acked;
    pthread_mutex_unlock(&p->lock);
    assert_int_equal(mosquitto_publish_v5(p->m, NULL, topic, (int)len, data, 1, false, pl), 0);
    mosquitto_property_free_all(&pl);
    pthread_mutex_lock(&p->lock);
    while (p->acked == before)
        pthread_cond_wait(&p->cond, &p->lock);
    pthread_mutex_unlock(&p->lock);
}

static void test_v5(void **state)
{
    char *yaml = yaml_for("sensors", "      topic: \"sensors/+/temp\"\n      qos: 1\n");
    struct es_daemon *d = es_daemon_start(yaml, NULL);
    assert_non_null(d);
    bool ready = es_daemon_wait_ready(d, 15000);
    if (!ready)
        es_daemon_free(d, true), d = NULL;
    assert_true(ready);
    struct es_got *g = es_got_subscribe(yaml, "default-ms-sensors", "check");
    assert_non_null(g);
    struct pub *p = pub_new(MQTT_PROTOCOL_V5);
    publish(p, "sensors/kitchen/temp", "{\"c\": 21}", 9, NULL);
    publish(p, "sensors/hall/temp", "21.5", 4,
            (const char *[]){"content-type", "text/x-celsius", NULL});
    publish(p, "sensors/ce/temp", "22", 2,
            (const char *[]){"content-type", "text/plain", "specversion", "1.0", "id", "mq-ce-1",
                             "source", "/thermo/1", "type", "com.example.temp", "unit", "C", NULL});
    const char *st = "{\"specversion\":\"1.0\",\"id\":\"mq-st-1\",\"source\":\"/s\",\"type\":"
                     "\"t.st\",\"data\":{\"x\":1}}";
    publish(p, "sensors/st/temp", st, strlen(st),
            (const char *[]){"content-type", "application/cloudevents+json", NULL});
    publish(p, "other/topic", "x", 1, NULL); /* not subscribed */
    publish(p, "sensors/bad/temp", "x", 1,
            (const char *[]){"specversion", "1.0", "source", "/no-id", "type", "t", NULL});
    bool ok = es_sink_wait(sink, 4, 10000) >= 4 && es_got_wait(g, 4, 10000) >= 4;
    if (!ok)
        es_daemon_free(d, true), d = NULL;
    assert_true(ok);

    struct ofe_ce *ev = es_sink_find_data(sink, "{\"c\": 21}", 9);
    assert_non_null(ev);
    es_assert_attr(ev, "source", "/namespaces/default/eventsources/ms/sensors");
    es_assert_attr(ev, "type", "dev.ofevents.mqtt.message");
    es_assert_attr(ev, "subject", "sensors/kitchen/temp");
    es_assert_attr(ev, "datacontenttype", "application/json");
    assert_int_equal(strlen(ofe_ce_get_str(ev, "id")), 32);
    assert_non_null(es_got_find(g, ofe_ce_get_str(ev, "id")));
    ofe_ce_unref(ev);
    ev = es_sink_find_data(sink, "21.5", 4);
    assert_non_null(ev);
    es_assert_attr(ev, "datacontenttype", "text/x-celsius");
    es_assert_attr(ev, "subject", "sensors/hall/temp");
    ofe_ce_unref(ev);
    ev = es_sink_find_id(sink, "mq-ce-1");
    assert_non_null(ev);
    es_assert_attr(ev, "source", "/thermo/1");
    es_assert_attr(ev, "type", "com.example.temp");
    es_assert_attr(ev, "unit", "C");
    es_assert_attr(ev, "datacontenttype", "text/plain");
    struct ofe_ce *bev = es_got_find(g, "mq-ce-1");
    assert_non_null(bev);
    es_assert_attr(bev, "unit", "C");
    ofe_ce_unref(ev);
    ev = es_sink_find_id(sink, "mq-st-1");
    assert_non_null(ev);
    assert_memory_equal(ev->data, "{\"x\":1}", 7);
    ofe_ce_unref(ev);
    const char *src = "source=\"default/ms/sensors\"";
    assert_int_equal((int)es_daemon_metric_sum(d, "ofe_eventsource_events_invalid_total", src), 1);
    assert_int_equal((int)es_daemon_metric_sum(d, "ofe_eventsource_events_received_total", src), 4);
    pub_free(p);
    assert_int_equal(es_daemon_stop(d), 0);
    es_got_free(g);
    es_daemon_free(d, false);
    es_sink_clear(sink);
    free(yaml);
}

static void test_v311(void **state)
{
    char *yaml = yaml_for("old", "      topic: legacy/#\n      protocolVersion: 311\n");
    struct es_daemon *d = es_daemon_start(yaml, NULL);
    assert_non_null(d);
    assert_true(es_daemon_wait_ready(d, 15000));
    struct pub *p = pub_new(MQTT_PROTOCOL_V311);
    const char *st = "{\"specversion\":\"1.0\",\"id\":\"old-1\",\"source\":\"/s\",\"type\":\"t\","
                     "\"datacontenttype\":\"text/plain\",\"data\":\"hi\"}";
    publish(p, "legacy/a", st, strlen(st), NULL);
    publish(p, "legacy/b", "plain words", 11, NULL);
    assert_true(es_sink_wait(sink, 2, 10000) >= 2);
    struct ofe_ce *ev = es_sink_find_id(sink, "old-1");
    assert_non_null(ev);
    es_assert_attr(ev, "datacontenttype", "text/plain");
    assert_memory_equal(ev->data, "hi", 2);
    ofe_ce_unref(ev);
    ev = es_sink_find_data(sink, "plain words", 11);
    assert_non_null(ev);
    es_assert_attr(ev, "datacontenttype", "text/plain; charset=utf-8");
    es_assert_attr(ev, "subject", "legacy/b");
    ofe_ce_unref(ev);
    pub_free(p);
    assert_int_equal(es_daemon_stop(d), 0);
    es_daemon_free(d, false);
    es_sink_clear(sink);
    free(yaml);
}

static void test_ack_after_delivery(void **state)
{
    char *yaml = yaml_for("held", "      topic: held/x\n      consumerID: held-client\n");
    struct es_daemon *d = es_daemon_start(yaml, NULL);
    assert_non_null(d);
    assert_true(es_daemon_wait_ready(d, 15000));
    struct pub *p = pub_new(MQTT_PROTOCOL_V5);
    es_sink_fail(sink, 503, -1);
    size_t before = es_sink_requests(sink);
    publish(p, "held/x", "precious", 8, NULL);
    uint64_t end = es_now_ms_test() + 10000;
    while (es_sink_requests(sink) < before + 4 && es_now_ms_test() < end)
        es_msleep(20);
    assert_true(es_sink_requests(sink) >= before + 4);
    assert_int_equal(es_sink_count(sink), 0);
    /* The PUBACK was never sent: kill -9, and the broker keeps it. */
    es_daemon_kill(d);
    es_sink_fail(sink, 0, 0);
    assert_int_equal(es_daemon_restart(d), 0);
    bool got = es_sink_wait(sink, 1, 15000) >= 1;
    if (!got)
        es_daemon_free(d, true), d = NULL;
    assert_true(got);
    struct ofe_ce *ev = es_sink_event(sink, 0);
    assert_memory_equal(ev->data, "precious", 8);
    char id1[64];
    snprintf(id1, sizeof(id1), "%s", ofe_ce_get_str(ev, "id"));
    ofe_ce_unref(ev);
    /* and only once it was delivered it is acknowledged: a restart now
     * brings nothing again */
    es_msleep(300);
    assert_int_equal(es_daemon_stop(d), 0);
    assert_int_equal(es_daemon_restart(d), 0);
    assert_true(es_daemon_wait_ready(d, 15000));
    es_msleep(1000);
    assert_int_equal(es_sink_count(sink), 1);
    pub_free(p);
    assert_int_equal(es_daemon_stop(d), 0);
    es_daemon_free(d, false);
    es_sink_clear(sink);
    free(yaml);
}

static void test_validate(void **state)
{
    char *yaml = yaml_for("v", "      topic: \"a/#/b\"\n");
    char out[8192];
    int rc = es_validate(yaml, out, sizeof(out));
    if (rc != 2 || !strstr(out, "config.yaml:17:14"))
        fprintf(stderr, "%s\n", out);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "config.yaml:17:14: error: spec.mqtt.v.topic: \"a/#/b\" is not a "
                                "valid MQTT topic filter"));
    free(yaml);
}

static int setup(void **state)
{
    mosquitto_lib_init();
    mq = tu_server_start(TU_MOSQUITTO, NULL);
    bus = tu_server_start(TU_EVENTBUS, NULL);
    sink = es_sink_start(0);
    return mq && bus && sink ? 0 : -1;
}

static int teardown(void **state)
{
    es_sink_stop(sink);
    tu_server_free(bus);
    tu_server_free(mq);
    mosquitto_lib_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_v5),
        cmocka_unit_test(test_v311),
        cmocka_unit_test(test_ack_after_delivery),
    };
    if (getenv("ES_TEST"))
        cmocka_set_test_filter(getenv("ES_TEST"));
    return cmocka_run_group_tests(tests, setup, teardown);
}
