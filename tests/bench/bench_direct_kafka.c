/* The kafka line of bench_pubsub: the workload straight with librdkafka
 * against ofe-kafka-mock, as a careful at-least-once librdkafka
 * application is written.
 *
 * Publisher: one idempotent acks=all producer with the partitioner settings
 * of the backend (murmur2_random, keyless events spread one by one),
 * records carrying what the Kafka binding writes for the bench event
 * (ce_id, ce_source, ce_specversion, ce_type, content-type and the data),
 * at most `window` unconfirmed, polled for delivery reports by its own
 * thread. Consumer: one group member with manual offset storing
 * (rd_kafka_offset_store after each message, committed every 100 ms like
 * the backend's commit pace), reading every header of each record.
 *
 * As on the abstraction side, the clock starts once the producer is
 * connected: the consumer's group join (a new group waits 3 s for more
 * members, in the mock as in Kafka) is inside both figures. The producer
 * asks for the topic's metadata first, as the backend does on a topic's
 * first publish (librdkafka alone finds a new topic on a 1 s timer, a
 * random stall of up to a second). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "bench_pubsub.h"
#include "ofe/config.h"
#include "ofe/err.h"
#include "servers.h"

struct kb_state {
    struct tu_server *srv;
};

static void *kb_start(char *why, size_t why_size)
{
    char *mock = tu_build_path("tests/ofe-kafka-mock");
    bool have = access(mock, X_OK) == 0;
    free(mock);
    if (!have) {
        snprintf(why, why_size, "ofe-kafka-mock is not built");
        return NULL;
    }
    /* The mock keeps about 5 MB per partition and creates topics with 4:
     * 50,000 events of 512 bytes would overflow them while the consumer
     * catches up. The topics bench_pubsub will use (bench-direct-PID-R and
     * bench-abs-PID-R) are made with 16 partitions up front, the same for
     * both sides; other names still work, with the mock's 4. */
    static char names[40][64];
    const char *extra[2 * 40 + 1];
    size_t ne = 0;
    for (int r = 0; r < 20; r++)
        for (int abs = 0; abs < 2; abs++) {
            char *n = names[2 * r + abs];
            snprintf(n, sizeof(names[0]), "bench-%s-%d-%d:16", abs ? "abs" : "direct",
                     (int)getpid(), r);
            extra[ne++] = "--topic";
            extra[ne++] = n;
        }
    extra[ne] = NULL;
    struct tu_server *srv = tu_server_start(TU_KAFKA, extra);
    if (!srv) {
        snprintf(why, why_size, "ofe-kafka-mock did not start");
        return NULL;
    }
    struct kb_state *s = calloc(1, sizeof(*s));
    s->srv = srv;
    return s;
}

static int kb_open(void *state, const struct ofe_bus_opts *o, struct ofe_bus **out, char *errstr,
                   size_t errstr_size)
{
    struct kb_state *s = state;
    struct ofe_config_kafka_bus kb = {.brokers = s->srv->url,
                                      .initial_offset = OFE_CONFIG_OFFSET_OLDEST};
    struct ofe_config_busdesc d = {
        .kind = OFE_CONFIG_BUS_KAFKA, .kind_name = "kafka", .options = &kb.node, .kafka = &kb};
    return ofe_bus_open(&d, o, out, errstr, errstr_size);
}

static void kb_stop(void *state)
{
    struct kb_state *s = state;
    tu_server_free(s->srv);
    free(s);
}

struct drun {
    rd_kafka_t *p, *c;
    size_t n;
    atomic_size_t confirmed, failed, consumed;
    atomic_bool assigned, stop;
    double t_last_confirm, t_last_ack;
    char err[512];
};

static void d_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct drun *d = opaque;
    if (m->err) {
        if (atomic_fetch_add(&d->failed, 1) == 0)
            snprintf(d->err, sizeof(d->err), "publish failed: %s", rd_kafka_err2str(m->err));
    } else if (atomic_fetch_add(&d->confirmed, 1) + 1 == d->n) {
        d->t_last_confirm = bench_now();
    }
}

static void d_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                        rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct drun *d = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        rd_kafka_assign(rk, parts);
        atomic_store(&d->assigned, true);
    } else {
        rd_kafka_assign(rk, NULL);
    }
}

static void *d_poll(void *arg)
{
    struct drun *d = arg;
    while (!atomic_load(&d->stop))
        rd_kafka_poll(d->p, 100);
    return NULL;
}

static void *d_consume(void *arg)
{
    struct drun *d = arg;
    while (!atomic_load(&d->stop)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(d->c, 100);
        if (!m)
            continue;
        if (!m->err) {
            /* Read the headers as an application reading CloudEvents would. */
            rd_kafka_headers_t *h;
            const char *name;
            const void *val;
            size_t len, seen = 0;
            if (rd_kafka_message_headers(m, &h) == 0)
                for (size_t i = 0; rd_kafka_header_get_all(h, i, &name, &val, &len) == 0; i++)
                    seen += !strncmp(name, "ce_", 3);
            (void)seen;
            /* Stores offset + 1 for the next commit. */
            rd_kafka_offset_store(m->rkt, m->partition, m->offset);
            if (atomic_fetch_add(&d->consumed, 1) + 1 == d->n)
                d->t_last_ack = bench_now();
        }
        rd_kafka_message_destroy(m);
    }
    return NULL;
}

static rd_kafka_conf_t *conf(const char *brokers, const char *const *kv, char *err, size_t size)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    if (rd_kafka_conf_set(c, "bootstrap.servers", brokers, err, size)) {
        rd_kafka_conf_destroy(c);
        return NULL;
    }
    for (size_t i = 0; kv[i]; i += 2)
        if (rd_kafka_conf_set(c, kv[i], kv[i + 1], err, size)) {
            rd_kafka_conf_destroy(c);
            return NULL;
        }
    return c;
}

/* The bench event's record: the headers the binding writes, the data. */
static int produce(struct drun *d, const char *topic, size_t i, const unsigned char *data,
                   size_t size)
{
    char id[64];
    snprintf(id, sizeof(id), "bench-%zu", i);
    rd_kafka_headers_t *h = rd_kafka_headers_new(5);
    rd_kafka_header_add(h, "ce_id", -1, id, -1);
    rd_kafka_header_add(h, "ce_source", -1, "/bench/pubsub", -1);
    rd_kafka_header_add(h, "ce_specversion", -1, "1.0", -1);
    rd_kafka_header_add(h, "ce_type", -1, "io.ofevents.bench", -1);
    rd_kafka_header_add(h, "content-type", -1, "application/octet-stream", -1);
    rd_kafka_resp_err_t e = rd_kafka_producev(
        d->p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_VALUE((void *)data, size), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
    if (e) {
        rd_kafka_headers_destroy(h);
        snprintf(d->err, sizeof(d->err), "produce: %s", rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

static int kb_direct(void *state, const char *topic, const struct bench_params *p,
                     struct bench_result *r)
{
    struct kb_state *s = state;
    struct drun d = {.n = p->n};
    char group[160], win[32];
    snprintf(group, sizeof(group), "%s-group", topic);
    /* Room above the window: librdkafka counts a message until its report
     * callback returned. */
    snprintf(win, sizeof(win), "%u", p->window < 1000 ? 2000 : p->window * 2);
    const char *pkv[] = {"enable.idempotence",
                         "true",
                         "acks",
                         "all",
                         "partitioner",
                         "murmur2_random",
                         "sticky.partitioning.linger.ms",
                         "0",
                         "queue.buffering.max.messages",
                         win,
                         "statistics.interval.ms",
                         "1000",
                         NULL};
    const char *ckv[] = {"group.id",
                         group,
                         "auto.offset.reset",
                         "earliest",
                         "enable.auto.offset.store",
                         "false",
                         "auto.commit.interval.ms",
                         "100",
                         "allow.auto.create.topics",
                         "true",
                         "queued.max.messages.kbytes",
                         "16384",
                         NULL};
    unsigned char *data = malloc(p->size ? p->size : 1);
    pthread_t tp = 0, tc = 0;
    int rc = -1;
    /* librdkafka leaves a message in errstr even when a topic-level
     * property set on the global conf succeeds: keep r->err clean. */
    char cerr[512] = "";
    rd_kafka_conf_t *pc = conf(s->srv->url, pkv, cerr, sizeof(cerr));
    rd_kafka_conf_t *cc = pc ? conf(s->srv->url, ckv, cerr, sizeof(cerr)) : NULL;
    if (!pc || !cc) {
        snprintf(r->err, sizeof(r->err), "%s", cerr);
        if (pc)
            rd_kafka_conf_destroy(pc);
        free(data);
        return -1;
    }
    rd_kafka_conf_set_opaque(pc, &d);
    rd_kafka_conf_set_dr_msg_cb(pc, d_dr);
    rd_kafka_conf_set_opaque(cc, &d);
    rd_kafka_conf_set_rebalance_cb(cc, d_rebalance);
    if (!(d.p = rd_kafka_new(RD_KAFKA_PRODUCER, pc, r->err, sizeof(r->err)))) {
        rd_kafka_conf_destroy(pc);
        rd_kafka_conf_destroy(cc);
        free(data);
        return -1;
    }
    if (!(d.c = rd_kafka_new(RD_KAFKA_CONSUMER, cc, r->err, sizeof(r->err)))) {
        rd_kafka_conf_destroy(cc);
        rd_kafka_destroy(d.p);
        free(data);
        return -1;
    }
    rd_kafka_poll_set_consumer(d.c);
    rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(tl, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(d.c, tl);
    rd_kafka_topic_partition_list_destroy(tl);
    pthread_create(&tp, NULL, d_poll, &d);
    pthread_create(&tc, NULL, d_consume, &d);
    /* Connected and the topic's partitions known (librdkafka would find
     * a new topic only on its 1 s timer; the backend asks at once too), as
     * the abstraction's readiness says before its clock starts. */
    const struct rd_kafka_metadata *md;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(d.p, topic, NULL);
    double until = bench_now() + 30;
    while (rd_kafka_metadata(d.p, 0, rkt, &md, 1000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        if (bench_now() > until) {
            snprintf(r->err, sizeof(r->err), "the producer did not connect");
            rd_kafka_topic_destroy(rkt);
            goto out;
        }
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    for (size_t k = 0; k < p->size; k++)
        data[k] = (unsigned char)(k * 7);
    double t0 = bench_now();
    for (size_t i = 0; i < p->n; i++) {
        while (i - atomic_load(&d.confirmed) - atomic_load(&d.failed) >= p->window)
            usleep(200);
        if (produce(&d, topic, i, data, p->size) != 0)
            goto out;
    }
    until = bench_now() + 120;
    while ((atomic_load(&d.consumed) < p->n ||
            atomic_load(&d.confirmed) + atomic_load(&d.failed) < p->n) &&
           bench_now() < until)
        usleep(1000);
    if (atomic_load(&d.failed)) {
        snprintf(r->err, sizeof(r->err), "%s", d.err);
        goto out;
    }
    r->consumed = atomic_load(&d.consumed);
    if (r->consumed < p->n) {
        snprintf(r->err, sizeof(r->err), "consumed %zu of %zu in 120 s", r->consumed, p->n);
        goto out;
    }
    r->pub_secs = d.t_last_confirm - t0;
    r->secs = d.t_last_ack - t0;
    rc = 0;
out:
    if (rc && !r->err[0])
        snprintf(r->err, sizeof(r->err), "%s", d.err);
    atomic_store(&d.stop, true);
    pthread_join(tp, NULL);
    pthread_join(tc, NULL);
    rd_kafka_consumer_close(d.c);
    rd_kafka_destroy(d.c);
    rd_kafka_flush(d.p, 5000);
    rd_kafka_destroy(d.p);
    free(data);
    return rc;
}

const struct bench_backend bench_kafka = {
    .name = "kafka",
    .start = kb_start,
    .open = kb_open,
    .direct = kb_direct,
    .stop = kb_stop,
};
