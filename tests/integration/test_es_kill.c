/* At least once under kill -9: for each source kind that acknowledges its
 * input (Kafka via ofe-kafka-mock, NATS JetStream, MQTT QoS 1, Redis
 * Streams), 10,000 messages flow from a producer thread into a running
 * ofe-eventsource whose sink is an HTTP server in this process; the daemon
 * is killed with SIGKILL twice while they flow and restarted each time.
 * Every message must reach the sink; duplicates are allowed, counted and
 * printed, and must carry the same CloudEvents id as the first copy. */
#include <mosquitto.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <nats/nats.h>

#include "es_testlib.h"
#include "servers.h"

#define N 10000

struct fx;
struct kind {
    const char *name;
    enum tu_server_kind server;
    /* the event block under spec: */
    void (*yaml)(struct fx *f, char *out, size_t size);
    int (*prepare)(struct fx *f);
    void (*produce)(struct fx *f, int i, const char *payload);
    void (*finish)(struct fx *f);
    bool start_first; /* the daemon must subscribe before anything is sent (MQTT) */
};

struct fx {
    const struct kind *k;
    struct tu_server *srv;
    struct es_sink *sink;
    /* clients */
    rd_kafka_t *kp;
    natsConnection *nc;
    jsCtx *js;
    struct mosquitto *mq;
    redisContext *rc;
    atomic_int produced;
    atomic_bool stop;
};

/* ---- kafka -------------------------------------------------------------------- */

static void kafka_yaml(struct fx *f, char *out, size_t size)
{
    snprintf(out, size,
             "  kafka:\n"
             "    flow:\n"
             "      brokers: \"%s\"\n"
             "      authRequired: false\n"
             "      topic: flow\n"
             "      initialOffset: oldest\n"
             "      rdkafka.session.timeout.ms: 4000\n"
             "      rdkafka.heartbeat.interval.ms: 500\n"
             "      rdkafka.fetch.wait.max.ms: 20\n",
             f->srv->url);
}

static int kafka_prepare(struct fx *f)
{
    char e[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "bootstrap.servers", f->srv->url, e, sizeof(e));
    rd_kafka_conf_set(c, "linger.ms", "5", e, sizeof(e));
    f->kp = rd_kafka_new(RD_KAFKA_PRODUCER, c, e, sizeof(e));
    return f->kp ? 0 : -1;
}

static void kafka_produce(struct fx *f, int i, const char *payload)
{
    /* spread over the topic's partitions */
    while (rd_kafka_producev(f->kp, RD_KAFKA_V_TOPIC("flow"), RD_KAFKA_V_PARTITION(i % 4),
                             RD_KAFKA_V_VALUE((void *)payload, strlen(payload)),
                             RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END) != 0)
        rd_kafka_poll(f->kp, 10);
    rd_kafka_poll(f->kp, 0);
}

static void kafka_finish(struct fx *f)
{
    if (f->kp) {
        rd_kafka_flush(f->kp, 10000);
        rd_kafka_destroy(f->kp);
    }
}

/* ---- jetstream ------------------------------------------------------------------ */

static void js_yaml(struct fx *f, char *out, size_t size)
{
    snprintf(out, size,
             "  nats:\n"
             "    flow:\n"
             "      url: \"%s\"\n"
             "      subject: flow.events\n"
             "      jetstream: {stream: FLOW, ackWait: 1s}\n",
             f->srv->url);
}

static int js_prepare(struct fx *f)
{
    if (natsConnection_ConnectTo(&f->nc, f->srv->url) != NATS_OK ||
        natsConnection_JetStream(&f->js, f->nc, NULL) != NATS_OK)
        return -1;
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = "FLOW";
    const char *subj[] = {"flow.events"};
    sc.Subjects = subj;
    sc.SubjectsLen = 1;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_AddStream(&si, f->js, &sc, NULL, &jerr);
    jsStreamInfo_Destroy(si);
    return s == NATS_OK ? 0 : -1;
}

static void js_produce(struct fx *f, int i, const char *payload)
{
    jsPubAck *pa = NULL;
    for (int tries = 0; tries < 50; tries++) {
        if (js_Publish(&pa, f->js, "flow.events", payload, (int)strlen(payload), NULL, NULL) ==
            NATS_OK)
            break;
        es_msleep(20);
    }
    jsPubAck_Destroy(pa);
}

static void js_finish(struct fx *f)
{
    jsCtx_Destroy(f->js);
    natsConnection_Destroy(f->nc);
}

/* ---- mqtt -------------------------------------------------------------------------- */

static void mqtt_yaml(struct fx *f, char *out, size_t size)
{
    snprintf(out, size,
             "  mqtt:\n"
             "    flow:\n"
             "      url: \"%s\"\n"
             "      topic: flow/events\n"
             "      qos: 1\n"
             "      consumerID: flow-reader\n",
             f->srv->url);
}

static int mqtt_prepare(struct fx *f)
{
    mosquitto_lib_init();
    f->mq = mosquitto_new(NULL, true, NULL);
    mosquitto_int_option(f->mq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_max_inflight_messages_set(f->mq, 100);
    if (mosquitto_connect(f->mq, "127.0.0.1", f->srv->port, 30) != 0)
        return -1;
    return mosquitto_loop_start(f->mq);
}

static void mqtt_produce(struct fx *f, int i, const char *payload)
{
    while (mosquitto_publish(f->mq, NULL, "flow/events", (int)strlen(payload), payload, 1, false) !=
           0)
        es_msleep(10);
    if (i % 200 == 199)
        es_msleep(5); /* let the client's queue drain a little */
}

static void mqtt_finish(struct fx *f)
{
    /* everything handed to the broker before leaving */
    for (int i = 0; i < 500 && mosquitto_want_write(f->mq); i++)
        es_msleep(10);
    es_msleep(500);
    mosquitto_disconnect(f->mq);
    mosquitto_loop_stop(f->mq, false);
    mosquitto_destroy(f->mq);
    mosquitto_lib_cleanup();
}

/* ---- redis streams ------------------------------------------------------------------ */

static void redis_yaml(struct fx *f, char *out, size_t size)
{
    snprintf(out, size,
             "  redis:\n"
             "    flow:\n"
             "      redisHost: \"%s\"\n"
             "      redisPassword: \"\"\n"
             "      stream: flow\n"
             "      initialOffset: oldest\n"
             "      processingTimeout: 1s\n"
             "      redeliverInterval: 500ms\n",
             f->srv->addr);
}

static int redis_prepare(struct fx *f)
{
    f->rc = redisConnect("127.0.0.1", f->srv->port);
    return f->rc && !f->rc->err ? 0 : -1;
}

static void redis_produce(struct fx *f, int i, const char *payload)
{
    redisReply *r = redisCommand(f->rc, "XADD flow * data %s", payload);
    freeReplyObject(r);
}

static void redis_finish(struct fx *f)
{
    redisFree(f->rc);
}

static const struct kind KAFKA = {"kafka",       TU_KAFKA,     kafka_yaml, kafka_prepare,
                                  kafka_produce, kafka_finish, false};
static const struct kind JETSTREAM = {"jetstream", TU_NATS,   js_yaml, js_prepare,
                                      js_produce,  js_finish, false};
static const struct kind MQTT = {"mqtt",       TU_MOSQUITTO, mqtt_yaml, mqtt_prepare,
                                 mqtt_produce, mqtt_finish,  true};
static const struct kind REDIS = {"redis",       TU_REDIS,     redis_yaml, redis_prepare,
                                  redis_produce, redis_finish, false};

/* ---- the scenario ------------------------------------------------------------------- */

static void *producer(void *arg)
{
    struct fx *f = arg;
    char payload[32];
    for (int i = 0; i < N && !atomic_load(&f->stop); i++) {
        snprintf(payload, sizeof(payload), "msg-%05d", i);
        f->k->produce(f, i, payload);
        atomic_store(&f->produced, i + 1);
        if (i % 1000 == 999)
            es_msleep(20); /* keep it flowing while the daemon dies */
    }
    return NULL;
}

/* Index of "msg-NNNNN" data, or -1. */
static int index_of(const struct ofe_ce *ev)
{
    if (!ev->has_data || ev->data_len != 9 || memcmp(ev->data, "msg-", 4))
        return -1;
    return atoi((const char *)ev->data + 4);
}

static void run(const struct kind *k)
{
    struct fx f = {.k = k};
    atomic_init(&f.produced, 0);
    atomic_init(&f.stop, false);
    f.srv = tu_server_start(k->server, NULL);
    assert_non_null(f.srv);
    f.sink = es_sink_start(0);
    assert_non_null(f.sink);
    assert_int_equal(k->prepare(&f), 0);
    char block[2048], yaml[4096];
    k->yaml(&f, block, sizeof(block));
    snprintf(yaml, sizeof(yaml),
             "apiVersion: events.openfunction.io/v1alpha1\n"
             "kind: EventSource\n"
             "metadata: {name: kill}\n"
             "spec:\n"
             "  sink: {uri: \"%s\"}\n"
             "  delivery: {retry: 2, backoffDelay: 20ms, backoffCap: 200ms, timeout: 2s}\n"
             "%s",
             es_sink_url(f.sink), block);
    struct es_daemon *d = es_daemon_start(yaml, NULL);
    assert_non_null(d);
    if (k->start_first)
        assert_true(es_daemon_wait_ready(d, 15000));
    uint64_t t0 = es_now_ms_test();
    pthread_t thr;
    pthread_create(&thr, NULL, producer, &f);

    /* kill -9 twice while events flow */
    size_t marks[] = {N / 5, N / 2};
    for (int k9 = 0; k9 < 2; k9++) {
        size_t got = es_sink_wait(f.sink, marks[k9], 60000);
        if (got < marks[k9])
            es_daemon_free(d, true), d = NULL;
        assert_true(got >= marks[k9]);
        es_daemon_kill(d);
        fprintf(stderr, "%s: killed with %zu events at the sink, %d produced\n", k->name,
                es_sink_count(f.sink), atomic_load(&f.produced));
        es_msleep(200);
        assert_int_equal(es_daemon_restart(d), 0);
    }
    pthread_join(thr, NULL);
    assert_int_equal(atomic_load(&f.produced), N);

    /* every message arrives; duplicates keep their id */
    char **ids = calloc(N, sizeof(*ids));
    int seen = 0, dups = 0, bad_ids = 0;
    uint64_t end = es_now_ms_test() + 90000;
    size_t scanned = 0;
    while (seen < N && es_now_ms_test() < end) {
        es_sink_wait(f.sink, scanned + 1, 500);
        for (struct ofe_ce *ev; (ev = es_sink_event(f.sink, scanned)); scanned++) {
            int i = index_of(ev);
            const char *id = ofe_ce_get_str(ev, "id");
            if (i >= 0 && i < N) {
                if (!ids[i]) {
                    ids[i] = strdup(id);
                    seen++;
                } else {
                    dups++;
                    if (strcmp(ids[i], id)) {
                        if (bad_ids++ < 5)
                            fprintf(stderr, "%s: msg-%05d came again with id %s, first %s\n",
                                    k->name, i, id, ids[i]);
                    }
                }
            }
            ofe_ce_unref(ev);
        }
    }
    fprintf(stderr,
            "%s: %d of %d messages delivered in %.1f s across 2 kill -9, %d duplicate(s), %d with "
            "another id\n",
            k->name, seen, N, (double)(es_now_ms_test() - t0) / 1000.0, dups, bad_ids);
    if (seen < N) {
        int shown = 0;
        for (int i = 0; i < N && shown < 10; i++)
            if (!ids[i])
                fprintf(stderr, "%s: missing msg-%05d\n", k->name, i), shown++;
        es_daemon_free(d, true);
        d = NULL;
    }
    assert_int_equal(seen, N);
    assert_int_equal(bad_ids, 0);
    for (int i = 0; i < N; i++)
        free(ids[i]);
    free(ids);
    assert_int_equal(es_daemon_stop(d), 0);
    es_daemon_free(d, false);
    k->finish(&f);
    es_sink_stop(f.sink);
    tu_server_free(f.srv);
}

static void test_kafka(void **state)
{
    run(&KAFKA);
}

static void test_jetstream(void **state)
{
    run(&JETSTREAM);
}

static void test_mqtt(void **state)
{
    run(&MQTT);
}

static void test_redis(void **state)
{
    run(&REDIS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kafka),
        cmocka_unit_test(test_jetstream),
        cmocka_unit_test(test_mqtt),
        cmocka_unit_test(test_redis),
    };
    if (getenv("ES_TEST"))
        cmocka_set_test_filter(getenv("ES_TEST"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
