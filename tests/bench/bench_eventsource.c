/* The eventsource benchmark (a program, not a test): events per second
 * from a Kafka source (ofe-kafka-mock) and a NATS JetStream source
 * (nats-server -js) to the embedded bus (ofe-eventbus, fsync always),
 * next to the pub/sub benchmark's direct-client figures measured in the
 * same run: the source's own backend (librdkafka / cnats publishing and
 * consuming the same number of events, bench_direct_<backend>.c) and the
 * embedded bus (hiredis). Goal: eventsource >= 0.5x the source backend's
 * direct figure.
 *
 * Eventsource figure: N native records of SIZE bytes are written to the
 * source first; the daemon's runtime (the same code as ofe-eventsource,
 * in this process) then consumes them, turns each into a CloudEvent,
 * publishes it to the bus and acknowledges the input after the bus
 * confirmed; the clock runs from the first event taken to the last bus
 * confirmation (group joins are nobody's throughput).
 *
 * The Kafka mock keeps about 5 MB per partition and makes topics with 4
 * partitions: keep EVENTS x SIZE under about 16 MB (the default 20,000 x
 * 512 bytes is 10 MB).
 *
 *   bench_eventsource [-n EVENTS] [-s SIZE] [-r ROUNDS] [kafka] [jetstream] */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <nats/nats.h>

#include "bench_pubsub.h"
#include "es.h"
#include "ofe/log.h"
#include "servers.h"

extern const struct bench_backend bench_kafka;
extern const struct bench_backend bench_jetstream;
extern const struct bench_backend bench_embedded;

/* bench_pubsub.c's helpers, for the direct runs linked in here. */
double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct ofe_ce *bench_event(size_t i, size_t size)
{
    struct ofe_ce *ev = ofe_ce_new();
    char id[64], err[200];
    snprintf(id, sizeof(id), "bench-%zu", i);
    unsigned char *d = malloc(size ? size : 1);
    for (size_t k = 0; k < size; k++)
        d[k] = (unsigned char)(i * 31 + k * 7);
    if (ofe_ce_set_str(ev, "id", 0, id, err, sizeof(err)) ||
        ofe_ce_set_str(ev, "specversion", 0, "1.0", err, sizeof(err)) ||
        ofe_ce_set_str(ev, "source", 0, "/bench/pubsub", err, sizeof(err)) ||
        ofe_ce_set_str(ev, "type", 0, "io.ofevents.bench", err, sizeof(err)) ||
        ofe_ce_set_str(ev, "datacontenttype", 0, "application/octet-stream", err, sizeof(err)) ||
        ofe_ce_set_data(ev, d, size)) {
        fprintf(stderr, "bench_event: %s\n", err);
        abort();
    }
    free(d);
    return ev;
}

/* ---- filling the sources -------------------------------------------------- */

static void payload(size_t i, size_t size, unsigned char *out)
{
    for (size_t k = 0; k < size; k++)
        out[k] = (unsigned char)(i * 31 + k * 7);
}

static int fill_kafka(const char *brokers, const char *topic, size_t n, size_t size)
{
    char e[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "bootstrap.servers", brokers, e, sizeof(e));
    rd_kafka_conf_set(c, "linger.ms", "5", e, sizeof(e));
    rd_kafka_conf_set(c, "queue.buffering.max.messages", "1000000", e, sizeof(e));
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, c, e, sizeof(e));
    if (!p)
        return -1;
    unsigned char *buf = malloc(size ? size : 1);
    for (size_t i = 0; i < n; i++) {
        payload(i, size, buf);
        /* Round robin: the mock keeps about 5 MB per partition, and the
         * sticky partitioner would pile batches onto one. */
        while (rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION((int32_t)(i % 4)),
                                 RD_KAFKA_V_VALUE(buf, size),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END) != 0)
            rd_kafka_poll(p, 10);
        rd_kafka_poll(p, 0);
    }
    int rc = rd_kafka_flush(p, 60000) == 0 ? 0 : -1;
    rd_kafka_destroy(p);
    free(buf);
    return rc;
}

static int fill_jetstream(const char *url, const char *stream, const char *subject, size_t n,
                          size_t size)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    if (natsConnection_ConnectTo(&nc, url) != NATS_OK ||
        natsConnection_JetStream(&js, nc, NULL) != NATS_OK)
        return -1;
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = stream;
    const char *subj[] = {subject};
    sc.Subjects = subj;
    sc.SubjectsLen = 1;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    js_AddStream(&si, js, &sc, NULL, &jerr);
    jsStreamInfo_Destroy(si);
    unsigned char *buf = malloc(size ? size : 1);
    jsPubOptions po;
    jsPubOptions_Init(&po);
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        payload(i, size, buf);
        if (js_PublishAsync(js, subject, buf, (int)size, &po) != NATS_OK)
            rc = -1;
    }
    jsPubOptions_Init(&po);
    po.MaxWait = 60000;
    if (!rc && js_PublishAsyncComplete(js, &po) != NATS_OK)
        rc = -1;
    free(buf);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return rc;
}

/* ---- one eventsource run ------------------------------------------------------- */

/* Runs the events of yaml until `n` were confirmed on the bus. Returns
 * events/s (0 on failure, with why). */
static double run_eventsource(const char *yaml, const char *source_name, const char *kind, size_t n,
                              char *why, size_t why_size)
{
    struct ofe_metrics *m = ofe_metrics_new();
    struct ofe_config *cfg = ofe_config_new();
    ofe_config_load_buffer(cfg, "bench.yaml", yaml, strlen(yaml));
    if (ofe_config_nerrors(cfg)) {
        size_t nd;
        const struct ofe_config_diag *dg = ofe_config_diags(cfg, &nd);
        ofe_config_diag_format(&dg[0], why, why_size);
        ofe_config_destroy(cfg);
        ofe_metrics_destroy(m);
        return 0;
    }
    struct es_runtime_opts ro = {.metrics = m, .opts = {.drain_ms = 5000}};
    struct es_runtime *rt = es_runtime_new(&ro, why, why_size);
    if (!rt || es_runtime_apply(rt, cfg) != 0) {
        snprintf(why, why_size, "cannot start the eventsource");
        es_runtime_destroy(rt);
        ofe_metrics_destroy(m);
        return 0;
    }
    const char *lr[] = {"source", source_name, "kind", kind, NULL};
    const char *ld[] = {"source", source_name, "destination", "bus", NULL};
    struct ofe_counter *received =
        ofe_metrics_counter(m, "ofe_eventsource_events_received_total", "", lr);
    struct ofe_counter *delivered =
        ofe_metrics_counter(m, "ofe_eventsource_events_delivered_total", "", ld);
    double t0 = 0, t1 = 0, limit = bench_now() + 180, last_print = 0;
    bool verbose = getenv("BENCH_VERBOSE") != NULL;
    while (bench_now() < limit) {
        if (verbose && bench_now() - last_print > 0.5) {
            last_print = bench_now();
            fprintf(stderr, "  received %llu delivered %llu\n",
                    (unsigned long long)ofe_counter_get(received),
                    (unsigned long long)ofe_counter_get(delivered));
        }
        if (!t0 && ofe_counter_get(received) > 0)
            t0 = bench_now();
        if (ofe_counter_get(delivered) >= n) {
            t1 = bench_now();
            break;
        }
        struct timespec ts = {0, t0 ? 1000000 : 200000};
        nanosleep(&ts, NULL);
    }
    double rate = 0;
    if (!t1)
        snprintf(why, why_size, "%llu of %zu delivered in 180 s",
                 (unsigned long long)ofe_counter_get(delivered), n);
    else
        rate = (double)n / (t1 - t0);
    es_runtime_destroy(rt);
    ofe_metrics_destroy(m);
    return rate;
}

/* ---- lines ---------------------------------------------------------------------- */

struct line {
    const char *name;
    const struct bench_backend *direct;
    double (*run)(const struct bench_params *p, int round, char *why, size_t why_size);
};

static struct tu_server *g_bus;

static double run_kafka(const struct bench_params *p, int round, char *why, size_t why_size)
{
    char topic[64];
    snprintf(topic, sizeof(topic), "es-bench-%d", round);
    struct tu_server *k = tu_server_start(TU_KAFKA, NULL);
    if (!k) {
        snprintf(why, why_size, "ofe-kafka-mock did not start");
        return 0;
    }
    double rate = 0;
    if (fill_kafka(k->url, topic, p->n, p->size) != 0) {
        snprintf(why, why_size, "cannot fill the topic");
    } else {
        char yaml[2048];
        snprintf(yaml, sizeof(yaml),
                 "apiVersion: events.openfunction.io/v1alpha1\nkind: EventBus\n"
                 "metadata: {name: default}\nspec:\n  embedded: {address: \"%s\"}\n---\n"
                 "apiVersion: events.openfunction.io/v1alpha1\nkind: EventSource\n"
                 "metadata: {name: bench}\nspec:\n  eventBus: default\n  kafka:\n    k:\n"
                 "      brokers: \"%s\"\n      authRequired: false\n      topic: %s\n"
                 "      consumerGroup: es-bench-%d\n      initialOffset: oldest\n"
                 "      rdkafka.fetch.wait.max.ms: 10\n%s",
                 g_bus->addr, k->url, topic, round,
                 getenv("BENCH_RDKAFKA_DEBUG") ? "      rdkafka.debug: fetch,consumer,cgrp\n" : "");
        rate = run_eventsource(yaml, "default/bench/k", "kafka", p->n, why, why_size);
    }
    tu_server_free(k);
    return rate;
}

static double run_jetstream(const struct bench_params *p, int round, char *why, size_t why_size)
{
    struct tu_server *ns = tu_server_start(TU_NATS, NULL);
    if (!ns) {
        snprintf(why, why_size, "nats-server did not start");
        return 0;
    }
    double rate = 0;
    char subject[64];
    snprintf(subject, sizeof(subject), "esbench.%d", round);
    if (fill_jetstream(ns->url, "ESBENCH", subject, p->n, p->size) != 0) {
        snprintf(why, why_size, "cannot fill the stream");
    } else {
        char yaml[2048];
        snprintf(yaml, sizeof(yaml),
                 "apiVersion: events.openfunction.io/v1alpha1\nkind: EventBus\n"
                 "metadata: {name: default}\nspec:\n  embedded: {address: \"%s\"}\n---\n"
                 "apiVersion: events.openfunction.io/v1alpha1\nkind: EventSource\n"
                 "metadata: {name: bench}\nspec:\n  eventBus: default\n  nats:\n    j:\n"
                 "      url: \"%s\"\n      subject: %s\n"
                 "      jetstream: {stream: ESBENCH, maxAckPending: 10000}\n",
                 g_bus->addr, ns->url, subject);
        rate = run_eventsource(yaml, "default/bench/j", "nats", p->n, why, why_size);
    }
    tu_server_free(ns);
    return rate;
}

/* bench_kafka's own start makes 40 topics of 16 partitions up front, which
 * takes the mock longer than the server harness waits on a loaded machine;
 * this one starts a plain mock (topics made on first use with 4
 * partitions, as for the eventsource run) with the state bench_kafka's
 * direct run expects: a struct holding the server as its only member. */
struct kb_state_compat {
    struct tu_server *srv;
};

static void *kafka_plain_start(char *why, size_t why_size)
{
    struct tu_server *srv = tu_server_start(TU_KAFKA, NULL);
    if (!srv) {
        snprintf(why, why_size, "ofe-kafka-mock did not start");
        return NULL;
    }
    struct kb_state_compat *s = calloc(1, sizeof(*s));
    s->srv = srv;
    return s;
}

static void kafka_plain_stop(void *state)
{
    struct kb_state_compat *s = state;
    tu_server_free(s->srv);
    free(s);
}

static struct bench_backend kafka_direct;

static const struct line LINES[] = {
    {"kafka", &kafka_direct, run_kafka},
    {"jetstream", &bench_jetstream, run_jetstream},
};

static double best_direct(const struct bench_backend *be, const struct bench_params *p, int rounds,
                          char *why, size_t why_size)
{
    void *st = be->start(why, why_size);
    if (!st)
        return 0;
    double best = 0;
    for (int r = 0; r < rounds; r++) {
        char topic[128];
        struct bench_result res = {0};
        snprintf(topic, sizeof(topic), "bench-direct-%d-%d", (int)getpid(), r);
        if (be->direct(st, topic, p, &res) != 0) {
            snprintf(why, why_size, "%s", res.err);
            best = 0;
            break;
        }
        double v = (double)p->n / res.secs;
        if (v > best)
            best = v;
    }
    be->stop(st);
    return best;
}

int main(int argc, char **argv)
{
    struct bench_params p = {.n = 20000, .size = 512, .window = 1000};
    int rounds = 3, opt;
    while ((opt = getopt(argc, argv, "n:s:r:h")) != -1) {
        switch (opt) {
        case 'n':
            p.n = strtoul(optarg, NULL, 10);
            break;
        case 's':
            p.size = strtoul(optarg, NULL, 10);
            break;
        case 'r':
            rounds = atoi(optarg);
            break;
        default:
            fprintf(stderr, "usage: bench_eventsource [-n EVENTS] [-s SIZE] [-r ROUNDS] "
                            "[kafka] [jetstream]\n");
            return opt == 'h' ? 0 : 2;
        }
    }
    if (!p.n || rounds < 1)
        return 2;
    ofe_log_set_level(getenv("BENCH_VERBOSE") ? OFE_LOG_DEBUG : OFE_LOG_ERROR);
    kafka_direct = bench_kafka;
    kafka_direct.start = kafka_plain_start;
    kafka_direct.stop = kafka_plain_stop;
    size_t nl = sizeof(LINES) / sizeof(LINES[0]);
    bool wanted[8];
    double direct[8];
    char dwhy[8][600];
    /* The direct runs first, before any ofe-eventbus runs on this machine
     * (the Kafka mock with many topics starts unreliably after one). */
    for (size_t l = 0; l < nl; l++) {
        wanted[l] = optind >= argc;
        for (int a = optind; a < argc; a++)
            wanted[l] |= !strcmp(argv[a], LINES[l].name);
        dwhy[l][0] = '\0';
        direct[l] = wanted[l] ? best_direct(LINES[l].direct, &p, rounds, dwhy[l], 600) : 0;
    }
    char why[600] = "";
    double emb = best_direct(&bench_embedded, &p, rounds, why, sizeof(why));
    g_bus = tu_server_start(TU_EVENTBUS, NULL);
    if (!g_bus) {
        fprintf(stderr, "ofe-eventbus did not start\n");
        return 1;
    }
    printf("eventsource: %zu native events of %zu bytes from the source to the embedded bus "
           "(ofe-eventbus, fsync always), input acked after the bus confirmed, best of %d\n",
           p.n, p.size, rounds);
    printf("embedded bus, hiredis direct (publish + consume + ack): %.0f events/s%s%s\n", emb,
           emb ? "" : " failed: ", emb ? "" : why);
    printf("%-10s %15s %22s %7s %18s\n", "source", "eventsource/s", "direct client/s (same)",
           "ratio", "ratio to embedded");
    for (size_t l = 0; l < nl; l++) {
        if (!wanted[l])
            continue;
        if (!direct[l]) {
            printf("%-10s direct run failed: %s\n", LINES[l].name, dwhy[l]);
            continue;
        }
        double best = 0;
        for (int r = 0; r < rounds; r++) {
            why[0] = '\0';
            double v = LINES[l].run(&p, r, why, sizeof(why));
            if (!v) {
                printf("%-10s eventsource run failed: %s\n", LINES[l].name, why);
                best = 0;
                break;
            }
            if (v > best)
                best = v;
        }
        if (best)
            printf("%-10s %15.0f %22.0f %7.2f %18.2f\n", LINES[l].name, best, direct[l],
                   best / direct[l], emb ? best / emb : 0);
    }
    tu_server_free(g_bus);
    return 0;
}
