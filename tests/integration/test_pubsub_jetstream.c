/* The jetstream backend against a real nats-server -js: publish
 * confirmation (what was confirmed is in the stream), every attribute kind
 * crossing the bus, durable groups that split and resume, nack with a delay
 * the server honours, redelivery after AckWait when a member is killed with
 * kill -9 (a child process: this binary re-executed), a server killed and
 * restarted with its store (nothing confirmed lost, clients reconnect by
 * themselves), an OpenFunction natsStreaming EventBus, precise errors for
 * bad options, authentication failure, an unreachable server and events
 * over max_payload. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <nats/nats.h>

#include "ofe/config.h"
#include "ofe/err.h"
#include "ofe/log.h"
#include "ofe/pubsub.h"
#include "servers.h"

extern char **environ;

static struct tu_server *g_srv; /* shared by the tests that need no restart */
static char g_self[4096];

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void msleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- buses ------------------------------------------------------------------ */

/* Loads YAML (printf-style), resolves eventBus "default" and opens it.
 * Returns the ofe_bus_open result; *warnings gets the config's warning
 * count when not NULL. */
static int open_yaml(struct ofe_bus **out, uint32_t publish_timeout_ms, size_t *warnings,
                     char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static int open_yaml(struct ofe_bus **out, uint32_t publish_timeout_ms, size_t *warnings,
                     char *errstr, size_t errstr_size, const char *fmt, ...)
{
    char yaml[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(yaml, sizeof(yaml), fmt, ap);
    va_end(ap);
    struct ofe_config *cfg = ofe_config_new();
    assert_non_null(cfg);
    ofe_config_load_buffer(cfg, "bus.yaml", yaml, strlen(yaml));
    size_t nd = 0;
    const struct ofe_config_diag *d = ofe_config_diags(cfg, &nd);
    for (size_t i = 0; i < nd; i++) {
        char line[1024];
        fprintf(stderr, "  config: %s\n", ofe_config_diag_format(&d[i], line, sizeof(line)));
    }
    if (warnings)
        *warnings = ofe_config_nwarnings(cfg);
    int rc;
    if (ofe_config_nerrors(cfg)) {
        snprintf(errstr, errstr_size, "config: %s", nd ? d[0].message : "?");
        rc = OFE_EINVAL;
    } else {
        struct ofe_config_busdesc desc;
        char where[512];
        rc = ofe_config_resolve_bus(cfg, "default", NULL, &desc, where, sizeof(where), errstr,
                                    errstr_size);
        if (rc == 0) {
            struct ofe_bus_opts bo = {.component = "test-js",
                                      .publish_timeout_ms = publish_timeout_ms};
            rc = ofe_bus_open(&desc, &bo, out, errstr, errstr_size);
        }
    }
    ofe_config_destroy(cfg);
    return rc;
}

/* A jetstream bus on url with stream name and AckWait, from an EventBus. */
static struct ofe_bus *open_bus(const char *url, const char *stream, const char *ack_wait)
{
    struct ofe_bus *b = NULL;
    char err[512];
    int rc = open_yaml(&b, 0, NULL, err, sizeof(err),
                       "apiVersion: events.openfunction.io/v1alpha1\n"
                       "kind: EventBus\n"
                       "metadata:\n  name: default\n"
                       "spec:\n"
                       "  jetstream:\n"
                       "    natsURL: %s\n"
                       "    streamName: %s\n"
                       "    ackWait: %s\n",
                       url, stream, ack_wait ? ack_wait : "30s");
    if (rc)
        fprintf(stderr, "open: %s\n", err);
    assert_int_equal(rc, 0);
    return b;
}

static bool wait_ready(struct ofe_bus *b, int timeout_ms)
{
    char why[512] = "";
    uint64_t end = now_ms() + (uint64_t)timeout_ms;
    while (now_ms() < end) {
        if (ofe_bus_ready(b, why, sizeof(why)))
            return true;
        msleep(20);
    }
    fprintf(stderr, "not ready: %s\n", why);
    return false;
}

/* ---- events ------------------------------------------------------------------ */

static struct ofe_ce *mkev(int i, size_t data_len)
{
    struct ofe_ce *ev = ofe_ce_new();
    char v[64], err[256];
    assert_non_null(ev);
    snprintf(v, sizeof(v), "ev-%d", i);
    assert_int_equal(ofe_ce_set_str(ev, "id", 0, v, err, sizeof(err)), 0);
    assert_int_equal(ofe_ce_set_str(ev, "source", 0, "/tests/jetstream", err, sizeof(err)), 0);
    assert_int_equal(ofe_ce_set_str(ev, "specversion", 0, "1.0", err, sizeof(err)), 0);
    assert_int_equal(ofe_ce_set_str(ev, "type", 0, "com.example.jetstream", err, sizeof(err)), 0);
    if (i % 2 == 0) {
        assert_int_equal(ofe_ce_set_str(ev, "subject", 0, "Euro € 😀 \"q\" %", err, sizeof(err)), 0);
        assert_int_equal(
            ofe_ce_set_str(ev, "time", 0, "2024-05-01T12:00:00.123456Z", err, sizeof(err)), 0);
        assert_int_equal(
            ofe_ce_set_str(ev, "dataschema", 0, "https://example.com/s.json", err, sizeof(err)), 0);
        assert_int_equal(ofe_ce_set_int(ev, "count", i, err, sizeof(err)), 0);
        assert_int_equal(ofe_ce_set_bool(ev, "flag", i % 4 == 0, err, sizeof(err)), 0);
        assert_int_equal(
            ofe_ce_set_str(ev, "link", OFE_CE_T_URI, "https://example.com/x?y=1", err, sizeof(err)),
            0);
        assert_int_equal(ofe_ce_set_str(ev, "blob", OFE_CE_T_BINARY, "AAEC/w==", err, sizeof(err)),
                         0);
        assert_int_equal(ofe_ce_set_str(ev, "when", OFE_CE_T_TIMESTAMP, "2020-01-01T00:00:00Z", err,
                                        sizeof(err)),
                         0);
        assert_int_equal(ofe_ce_set_str(ev, "ref", OFE_CE_T_URIREF, "/a/b#c", err, sizeof(err)), 0);
        assert_int_equal(ofe_ce_set_str(ev, "note", 0, "plain text", err, sizeof(err)), 0);
        assert_int_equal(
            ofe_ce_set_str(ev, "datacontenttype", 0, "application/octet-stream", err, sizeof(err)),
            0);
        unsigned char *d = malloc(data_len ? data_len : 1);
        for (size_t k = 0; k < data_len; k++)
            d[k] = (unsigned char)(k * 7 + (size_t)i);
        assert_int_equal(ofe_ce_set_data(ev, d, data_len), 0);
        free(d);
    } else {
        assert_int_equal(
            ofe_ce_set_str(ev, "datacontenttype", 0, "application/json", err, sizeof(err)), 0);
        char json[128];
        int n = snprintf(json, sizeof(json), "{\"n\":%d,\"s\":\"h\\u00e9\"}", i);
        assert_int_equal(ofe_ce_set_data(ev, json, (size_t)n), 0);
    }
    return ev;
}

static int ev_num(const struct ofe_ce *ev)
{
    const char *id = ev ? ofe_ce_get_str(ev, "id") : NULL;
    return id && !strncmp(id, "ev-", 3) ? atoi(id + 3) : -1;
}

/* ---- a consumer that records what it gets ---------------------------------- */

#define MAXN 8192

enum act { ACT_ACK = 0, ACT_HOLD, ACT_NACK_FIRST };

struct coll {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    enum act act;
    uint32_t nack_delay_ms;
    int sleep_us; /* per message, to let members interleave */
    int total;
    int count[MAXN];
    uint32_t redeliv[MAXN];
    uint64_t first_ms[MAXN], last_ms[MAXN];
    struct ofe_ce *ev[MAXN]; /* first copy */
    struct ofe_msg *held[64];
    int nheld;
    int invalid;
    char invalid_err[256];
    unsigned char invalid_payload[64];
    size_t invalid_len;
};

static void coll_init(struct coll *c, enum act act)
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    c->act = act;
}

static void coll_fini(struct coll *c)
{
    for (int i = 0; i < MAXN; i++)
        ofe_ce_unref(c->ev[i]);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
}

static void on_msg(struct ofe_msg *m, void *opaque)
{
    struct coll *c = opaque;
    struct ofe_ce *ev = ofe_msg_event(m);
    int i = ev_num(ev);
    if (c->sleep_us)
        usleep((useconds_t)c->sleep_us);
    pthread_mutex_lock(&c->lock);
    if (!ev) {
        c->invalid++;
        snprintf(c->invalid_err, sizeof(c->invalid_err), "%s", ofe_msg_error(m));
        size_t len = 0;
        const void *p = ofe_msg_payload(m, &len);
        c->invalid_len = len < sizeof(c->invalid_payload) ? len : sizeof(c->invalid_payload);
        memcpy(c->invalid_payload, p, c->invalid_len);
        c->total++;
        pthread_cond_broadcast(&c->cond);
        pthread_mutex_unlock(&c->lock);
        ofe_msg_ack(m);
        return;
    }
    bool first = false;
    if (i >= 0 && i < MAXN) {
        first = c->count[i]++ == 0;
        c->redeliv[i] = ofe_msg_redeliveries(m);
        c->last_ms[i] = now_ms();
        if (first) {
            c->first_ms[i] = c->last_ms[i];
            c->ev[i] = ofe_ce_ref(ev);
        }
    }
    c->total++;
    pthread_cond_broadcast(&c->cond);
    if (c->act == ACT_HOLD && c->nheld < 64) {
        c->held[c->nheld++] = m;
        pthread_mutex_unlock(&c->lock);
        return;
    }
    pthread_mutex_unlock(&c->lock);
    if (c->act == ACT_NACK_FIRST && first)
        ofe_msg_nack(m, c->nack_delay_ms);
    else
        ofe_msg_ack(m);
}

static int coll_wait(struct coll *c, int want, int timeout_ms)
{
    uint64_t end = now_ms() + (uint64_t)timeout_ms;
    pthread_mutex_lock(&c->lock);
    while (c->total < want && now_ms() < end) {
        pthread_mutex_unlock(&c->lock);
        msleep(10);
        pthread_mutex_lock(&c->lock);
    }
    int t = c->total;
    pthread_mutex_unlock(&c->lock);
    return t;
}

static struct ofe_sub *subscribe(struct ofe_bus *b, const char *group, const char *topic,
                                 struct coll *c, unsigned max_inflight)
{
    const char *topics[] = {topic};
    struct ofe_sub_opts o = {.group = group,
                             .topics = topics,
                             .ntopics = 1,
                             .max_inflight = max_inflight,
                             .on_msg = on_msg,
                             .opaque = c};
    struct ofe_sub *s = NULL;
    char err[512];
    int rc = ofe_bus_subscribe(b, &o, &s, err, sizeof(err));
    if (rc)
        fprintf(stderr, "subscribe: %s\n", err);
    assert_int_equal(rc, 0);
    return s;
}

/* ---- publishing ------------------------------------------------------------------ */

struct pubs {
    pthread_mutex_t lock;
    int done, ok;
    int err_code;
    char err[512];
    unsigned char confirmed[MAXN];
};

struct pub_one {
    struct pubs *ps;
    int i;
};

static void pub_done(void *opaque, int err, const char *msg)
{
    struct pub_one *po = opaque;
    struct pubs *ps = po->ps;
    pthread_mutex_lock(&ps->lock);
    ps->done++;
    if (!err) {
        ps->ok++;
        ps->confirmed[po->i] = 1;
    } else {
        ps->err_code = err;
        snprintf(ps->err, sizeof(ps->err), "%s", msg);
    }
    pthread_mutex_unlock(&ps->lock);
    free(po);
}

static void publish_async(struct ofe_bus *b, const char *topic, struct pubs *ps, int i,
                          size_t data_len)
{
    struct ofe_ce *ev = mkev(i, data_len);
    struct pub_one *po = malloc(sizeof(*po));
    po->ps = ps;
    po->i = i;
    char err[512];
    int rc;
    while ((rc = ofe_bus_publish(b, topic, ev, pub_done, po, err, sizeof(err))) == OFE_EAGAIN)
        msleep(1);
    if (rc)
        fprintf(stderr, "publish: %s\n", err);
    assert_int_equal(rc, 0);
    ofe_ce_unref(ev);
}

static int pubs_wait(struct pubs *ps, int want, int timeout_ms)
{
    uint64_t end = now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        pthread_mutex_lock(&ps->lock);
        int d = ps->done;
        pthread_mutex_unlock(&ps->lock);
        if (d >= want || now_ms() >= end)
            return d;
        msleep(5);
    }
}

/* ---- direct cnats, to look at the server's side --------------------------------- */

struct direct {
    natsConnection *nc;
    jsCtx *js;
};

static void direct_open(struct direct *d, const char *url)
{
    assert_int_equal(natsConnection_ConnectTo(&d->nc, url), NATS_OK);
    assert_int_equal(natsConnection_JetStream(&d->js, d->nc, NULL), NATS_OK);
}

static void direct_close(struct direct *d)
{
    jsCtx_Destroy(d->js);
    natsConnection_Destroy(d->nc);
}

static uint64_t stream_msgs(const char *url, const char *stream)
{
    struct direct d;
    direct_open(&d, url);
    jsStreamInfo *si = NULL;
    assert_int_equal(js_GetStreamInfo(&si, d.js, stream, NULL, NULL), NATS_OK);
    uint64_t n = si->State.Msgs;
    jsStreamInfo_Destroy(si);
    direct_close(&d);
    return n;
}

/* ---- tests ------------------------------------------------------------------ */

/* Every attribute kind and both data kinds cross the bus unchanged; a
 * confirmed publish is in the stream; a group resumes where it was. */
static void test_roundtrip_and_confirmation(void **state)
{
    const int n = 300;
    const char *topic = "default-src-roundtrip";
    struct ofe_bus *b = open_bus(g_srv->url, "RT", NULL);
    assert_true(wait_ready(b, 10000));
    assert_string_equal(ofe_bus_backend(b), "jetstream");
    struct pubs ps = {.lock = PTHREAD_MUTEX_INITIALIZER};
    for (int i = 0; i < n; i++)
        publish_async(b, topic, &ps, i, (size_t)(i * 13) % 2000 + 1);
    assert_int_equal(pubs_wait(&ps, n, 20000), n);
    assert_int_equal(ps.ok, n);
    /* confirmed means stored: the stream holds them all */
    assert_int_equal(stream_msgs(g_srv->url, "RT"), (uint64_t)n);

    struct coll c;
    coll_init(&c, ACT_ACK);
    struct ofe_sub *s = subscribe(b, "default-trigger-rt", topic, &c, 32);
    assert_int_equal(coll_wait(&c, n, 20000), n);
    for (int i = 0; i < n; i++) {
        assert_int_equal(c.count[i], 1);
        struct ofe_ce *want = mkev(i, (size_t)(i * 13) % 2000 + 1);
        if (!ofe_ce_equal(want, c.ev[i])) {
            struct ofe_buf j1 = OFE_BUF_INIT, j2 = OFE_BUF_INIT;
            char e[256];
            ofe_ce_json_encode(want, &j1, e, sizeof(e));
            ofe_ce_json_encode(c.ev[i], &j2, e, sizeof(e));
            fprintf(stderr, "sent:     %.*s\nreceived: %.*s\n", (int)j1.len, j1.data, (int)j2.len,
                    j2.data);
            for (size_t k = 0; ofe_ce_attr_at(want, k) || ofe_ce_attr_at(c.ev[i], k); k++) {
                const struct ofe_ce_attr *x = ofe_ce_attr_at(want, k),
                                         *y = ofe_ce_attr_at(c.ev[i], k);
                fprintf(stderr, "  %s:%d / %s:%d\n", x ? x->name : "-", x ? x->type : -1,
                        y ? y->name : "-", y ? y->type : -1);
            }
            ofe_buf_fini(&j1);
            ofe_buf_fini(&j2);
            fail_msg("event %d changed on the bus", i);
        }
        ofe_ce_unref(want);
        assert_int_equal(c.redeliv[i], 0);
    }
    assert_true(ofe_sub_inflight(s) == 0);
    ofe_sub_close(s);

    /* the durable group resumes: only what came after */
    for (int i = n; i < n + 10; i++)
        publish_async(b, topic, &ps, i, 10);
    assert_int_equal(pubs_wait(&ps, n + 10, 10000), n + 10);
    struct coll c2;
    coll_init(&c2, ACT_ACK);
    s = subscribe(b, "default-trigger-rt", topic, &c2, 32);
    assert_int_equal(coll_wait(&c2, 10, 10000), 10);
    msleep(300);
    assert_int_equal(c2.total, 10);
    for (int i = n; i < n + 10; i++)
        assert_int_equal(c2.count[i], 1);
    ofe_sub_close(s);
    ofe_bus_close(b, 1000);
    coll_fini(&c);
    coll_fini(&c2);
}

/* Two members of one group split the events, none to both or neither; a
 * second group gets all of them. */
static void test_group_split(void **state)
{
    const int n = 400;
    const char *topic = "default-src-split";
    struct ofe_bus *a = open_bus(g_srv->url, "SPLIT", NULL);
    struct ofe_bus *bb = open_bus(g_srv->url, "SPLIT", NULL);
    struct ofe_bus *other = open_bus(g_srv->url, "SPLIT", NULL);
    assert_true(wait_ready(a, 10000) && wait_ready(bb, 10000) && wait_ready(other, 10000));
    struct coll ca, cb, co;
    coll_init(&ca, ACT_ACK);
    coll_init(&cb, ACT_ACK);
    coll_init(&co, ACT_ACK);
    ca.sleep_us = cb.sleep_us = 1000;
    struct ofe_sub *sa = subscribe(a, "g-split", topic, &ca, 4);
    struct ofe_sub *sb = subscribe(bb, "g-split", topic, &cb, 4);
    struct ofe_sub *so = subscribe(other, "g-other", topic, &co, 64);
    struct pubs ps = {.lock = PTHREAD_MUTEX_INITIALIZER};
    for (int i = 0; i < n; i++)
        publish_async(a, topic, &ps, i, 100);
    assert_int_equal(pubs_wait(&ps, n, 20000), n);
    assert_int_equal(ps.ok, n);
    uint64_t end = now_ms() + 30000;
    while (ca.total + cb.total < n && now_ms() < end)
        msleep(10);
    assert_int_equal(coll_wait(&co, n, 20000), n);
    msleep(300);
    fprintf(stderr, "split: member a %d, member b %d, other group %d\n", ca.total, cb.total,
            co.total);
    for (int i = 0; i < n; i++) {
        if (ca.count[i] + cb.count[i] != 1)
            fail_msg("event %d reached the group %d times", i, ca.count[i] + cb.count[i]);
        assert_int_equal(co.count[i], 1);
    }
    assert_true(ca.total > 0 && cb.total > 0);
    ofe_sub_close(sa);
    ofe_sub_close(sb);
    ofe_sub_close(so);
    ofe_bus_close(a, 1000);
    ofe_bus_close(bb, 1000);
    ofe_bus_close(other, 1000);
    coll_fini(&ca);
    coll_fini(&cb);
    coll_fini(&co);
}

/* A nacked event comes back after the delay (the server times it: the
 * backend uses NakWithDelay), with its redelivery count. */
static void test_nack_delay(void **state)
{
    const char *topic = "default-src-nack";
    struct ofe_bus *b = open_bus(g_srv->url, "NACK", NULL);
    assert_true(wait_ready(b, 10000));
    struct coll c;
    coll_init(&c, ACT_NACK_FIRST);
    c.nack_delay_ms = 1500;
    struct ofe_sub *s = subscribe(b, "g-nack", topic, &c, 8);
    char err[512];
    struct ofe_ce *ev = mkev(7, 16);
    assert_int_equal(ofe_bus_publish_sync(b, topic, ev, err, sizeof(err)), 0);
    ofe_ce_unref(ev);
    assert_int_equal(coll_wait(&c, 2, 15000), 2);
    assert_int_equal(c.count[7], 2);
    assert_int_equal(c.redeliv[7], 1);
    uint64_t gap = c.last_ms[7] - c.first_ms[7];
    fprintf(stderr, "nack(1500 ms): redelivered after %" PRIu64 " ms\n", gap);
    assert_true(gap >= 1400); /* not redelivered before the delay */
    ofe_sub_close(s);
    ofe_bus_close(b, 1000);
    coll_fini(&c);
}

/* Child mode: subscribe, print the first event taken, never ack it. */
static int child_hold(const char *url, const char *stream, const char *group, const char *topic)
{
    ofe_log_set_level(OFE_LOG_WARN);
    struct ofe_bus *b = NULL;
    char err[512];
    int rc = open_yaml(&b, 0, NULL, err, sizeof(err),
                       "apiVersion: events.openfunction.io/v1alpha1\nkind: EventBus\n"
                       "metadata:\n  name: default\nspec:\n  jetstream:\n"
                       "    natsURL: %s\n    streamName: %s\n    ackWait: 1s\n",
                       url, stream);
    if (rc) {
        fprintf(stderr, "child: %s\n", err);
        return 2;
    }
    struct coll *c = calloc(1, sizeof(*c));
    coll_init(c, ACT_HOLD);
    const char *topics[] = {topic};
    struct ofe_sub_opts o = {
        .group = group, .topics = topics, .ntopics = 1, .on_msg = on_msg, .opaque = c};
    struct ofe_sub *s = NULL;
    if (ofe_bus_subscribe(b, &o, &s, err, sizeof(err)) != 0) {
        fprintf(stderr, "child: %s\n", err);
        return 2;
    }
    for (int i = 0; i < 3000; i++) {
        pthread_mutex_lock(&c->lock);
        int n = c->nheld;
        const char *id = n ? ofe_ce_get_str(ofe_msg_event(c->held[0]), "id") : NULL;
        if (n) {
            printf("HOLD %s\n", id);
            fflush(stdout);
        }
        pthread_mutex_unlock(&c->lock);
        if (n)
            break;
        msleep(10);
    }
    for (;;)
        pause(); /* until kill -9 */
}

/* A member that dies holding an event (kill -9, no ack): the server gives
 * it to another member after AckWait, counted as a redelivery. */
static void test_kill_member_redelivery(void **state)
{
    const char *topic = "default-src-kill";
    struct ofe_bus *b = open_bus(g_srv->url, "KILL", "1s");
    assert_true(wait_ready(b, 10000));
    char err[512];
    struct ofe_ce *ev = mkev(42, 8);
    assert_int_equal(ofe_bus_publish_sync(b, topic, ev, err, sizeof(err)), 0);
    ofe_ce_unref(ev);

    int fds[2];
    assert_int_equal(pipe(fds), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    char *argv[] = {g_self, "--child-hold", g_srv->url, "KILL", "g-kill", (char *)topic, NULL};
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, g_self, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    char line[256] = "";
    size_t got = 0;
    uint64_t end = now_ms() + 15000;
    while (!strchr(line, '\n') && now_ms() < end) {
        struct pollfd p = {.fd = fds[0], .events = POLLIN};
        if (poll(&p, 1, 100) > 0) {
            ssize_t r = read(fds[0], line + got, sizeof(line) - 1 - got);
            if (r <= 0)
                break;
            got += (size_t)r;
            line[got] = '\0';
        }
    }
    close(fds[0]);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    fprintf(stderr, "child said: %s", line);
    assert_non_null(strstr(line, "HOLD ev-42"));

    struct coll c;
    coll_init(&c, ACT_ACK);
    struct ofe_sub *s = subscribe(b, "g-kill", topic, &c, 8);
    assert_int_equal(coll_wait(&c, 1, 15000), 1);
    assert_int_equal(c.count[42], 1);
    assert_true(c.redeliv[42] >= 1);
    ofe_sub_close(s);
    ofe_bus_close(b, 1000);
    coll_fini(&c);
}

struct restart_pub {
    struct ofe_bus *b;
    struct pubs *ps;
    int n;
};

static void *restart_publisher(void *arg)
{
    struct restart_pub *rp = arg;
    for (int i = 0; i < rp->n; i++) {
        for (;;) { /* at most 200 waiting */
            pthread_mutex_lock(&rp->ps->lock);
            int waiting = i - rp->ps->done;
            pthread_mutex_unlock(&rp->ps->lock);
            if (waiting < 200)
                break;
            msleep(1);
        }
        publish_async(rp->b, "default-src-restart", rp->ps, i, 64);
        if (i % 50 == 0)
            msleep(20);
    }
    return NULL;
}

/* The server is killed (kill -9) and restarted with its store while events
 * flow: every confirmed publish reaches the group, the clients reconnect
 * by themselves, readiness says what happened. */
static void test_server_restart(void **state)
{
    const int n = 3000;
    struct tu_server *srv = tu_server_start(TU_NATS, NULL);
    assert_non_null(srv);
    struct ofe_bus *pb = open_bus(srv->url, "RESTART", "5s");
    struct ofe_bus *sb = open_bus(srv->url, "RESTART", "5s");
    assert_true(wait_ready(pb, 10000) && wait_ready(sb, 10000));
    struct coll c;
    coll_init(&c, ACT_ACK);
    struct ofe_sub *s = subscribe(sb, "g-restart", "default-src-restart", &c, 64);
    struct pubs ps = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct restart_pub rp = {.b = pb, .ps = &ps, .n = n};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, restart_publisher, &rp), 0);
    while (pubs_wait(&ps, n / 3, 100) < n / 3)
        ;
    tu_server_kill(srv);
    bool saw_down = false;
    char why[512] = "";
    for (int i = 0; i < 200 && !saw_down; i++) {
        saw_down = !ofe_bus_ready(pb, why, sizeof(why));
        msleep(10);
    }
    fprintf(stderr, "while down: %s\n", why);
    assert_true(saw_down);
    assert_non_null(strstr(why, "not connected"));
    msleep(500);
    assert_int_equal(tu_server_restart(srv), 0);
    pthread_join(t, NULL);
    assert_int_equal(pubs_wait(&ps, n, 60000), n);
    assert_true(wait_ready(pb, 15000));
    assert_true(wait_ready(sb, 15000));
    int confirmed = ps.ok;
    fprintf(stderr, "restart: %d of %d publishes confirmed (last error: %s)\n", confirmed, n,
            ps.err);
    uint64_t end = now_ms() + 30000;
    int missing = 0;
    for (;;) {
        missing = 0;
        pthread_mutex_lock(&c.lock);
        for (int i = 0; i < n; i++)
            if (ps.confirmed[i] && !c.count[i])
                missing++;
        pthread_mutex_unlock(&c.lock);
        if (!missing || now_ms() >= end)
            break;
        msleep(50);
    }
    int dups = 0;
    for (int i = 0; i < n; i++)
        dups += c.count[i] > 1;
    fprintf(stderr, "restart: received %d events, %d delivered more than once, %d missing\n",
            c.total, dups, missing);
    assert_int_equal(missing, 0);
    /* with a 30 s publish timeout every publish survives a short outage */
    assert_int_equal(confirmed, n);
    ofe_sub_close(s);
    ofe_bus_close(pb, 1000);
    ofe_bus_close(sb, 1000);
    coll_fini(&c);
    tu_server_free(srv);
}

/* OpenFunction's natsStreaming EventBus runs on JetStream: its durable
 * name prefixes the consumer, its ackWaitTime is the consumer's AckWait. */
static void test_nats_streaming_eventbus(void **state)
{
    struct ofe_bus *b = NULL;
    char err[512];
    size_t warnings = 0;
    int rc = open_yaml(&b, 0, &warnings, err, sizeof(err),
                       "apiVersion: events.openfunction.io/v1alpha1\n"
                       "kind: EventBus\n"
                       "metadata:\n  name: default\n"
                       "spec:\n"
                       "  natsStreaming:\n"
                       "    natsURL: \"%s\"\n"
                       "    natsStreamingClusterID: \"stan\"\n"
                       "    subscriptionType: \"queue\"\n"
                       "    durableSubscriptionName: \"ImDurable\"\n"
                       "    ackWaitTime: 7s\n",
                       g_srv->url);
    if (rc)
        fprintf(stderr, "open: %s\n", err);
    assert_int_equal(rc, 0);
    assert_true(warnings >= 1); /* the conversion is announced */
    assert_true(wait_ready(b, 10000));
    assert_non_null(strstr(ofe_bus_describe(b), "OFEVENTS"));
    struct coll c;
    coll_init(&c, ACT_ACK);
    struct ofe_sub *s = subscribe(b, "default-trigger", "default-sample-cron", &c, 16);
    struct pubs ps = {.lock = PTHREAD_MUTEX_INITIALIZER};
    for (int i = 0; i < 20; i++)
        publish_async(b, "default-sample-cron", &ps, i, 32);
    assert_int_equal(pubs_wait(&ps, 20, 10000), 20);
    assert_int_equal(ps.ok, 20);
    assert_int_equal(coll_wait(&c, 20, 10000), 20);

    struct direct d;
    direct_open(&d, g_srv->url);
    jsConsumerNamesList *names = NULL;
    assert_int_equal(js_ConsumerNames(&names, d.js, "OFEVENTS", NULL, NULL), NATS_OK);
    const char *mine = NULL;
    for (int i = 0; i < names->Count; i++)
        if (!strncmp(names->List[i], "ImDurable_default-trigger_default-sample-cron_", 46))
            mine = names->List[i];
    assert_non_null(mine);
    jsConsumerInfo *ci = NULL;
    assert_int_equal(js_GetConsumerInfo(&ci, d.js, "OFEVENTS", mine, NULL, NULL), NATS_OK);
    assert_int_equal(ci->Config->AckWait, (int64_t)7000000000);
    assert_string_equal(ci->Config->FilterSubject, "OFEVENTS.default-sample-cron");
    assert_int_equal(ci->Config->AckPolicy, js_AckExplicit);
    jsConsumerInfo_Destroy(ci);
    jsConsumerNamesList_Destroy(names);
    direct_close(&d);
    ofe_sub_close(s);
    ofe_bus_close(b, 1000);
    coll_fini(&c);
}

static int open_struct_opts(struct ofe_config_jetstream_bus *j, const struct ofe_bus_opts *bo,
                            struct ofe_bus **b, char *err, size_t errsz)
{
    struct ofe_config_busdesc d = {.kind = OFE_CONFIG_BUS_JETSTREAM,
                                   .kind_name = "jetstream",
                                   .options = &j->node,
                                   .jetstream = j};
    return ofe_bus_open(&d, bo, b, err, errsz);
}

static int open_struct(struct ofe_config_jetstream_bus *j, struct ofe_bus **b, char *err,
                       size_t errsz, uint32_t publish_timeout_ms)
{
    struct ofe_bus_opts bo = {.component = "test-js", .publish_timeout_ms = publish_timeout_ms};
    return open_struct_opts(j, &bo, b, err, errsz);
}

static void expect_open_error(struct ofe_config_jetstream_bus *j, const char *words)
{
    struct ofe_bus *b = NULL;
    char err[512] = "";
    int rc = open_struct(j, &b, err, sizeof(err), 0);
    fprintf(stderr, "expected error: %s\n", err);
    assert_int_equal(rc, OFE_EINVAL);
    assert_null(b);
    if (!strstr(err, words))
        fail_msg("\"%s\" does not mention \"%s\"", err, words);
}

/* Bad options are refused at open with a sentence naming the option. */
static void test_bad_options(void **state)
{
    struct ofe_config_jetstream_bus j;
    memset(&j, 0, sizeof(j));
    expect_open_error(&j, "natsURL is required");
    j.nats_url = "http://127.0.0.1:4222";
    expect_open_error(&j, "nats:// or tls://");
    j.nats_url = g_srv->url;
    j.stream_name = "bad.name";
    expect_open_error(&j, "streamName");
    j.stream_name = NULL;
    int64_t bo[3] = {50, 1000, 10000};
    j.back_off.v = bo;
    j.back_off.n = 3;
    j.max_deliver = 2;
    expect_open_error(&j, "maxDeliver (2) must be greater than the number of backOff values (3)");
    j.max_deliver = 0;
    j.jwt = "eyJhbGciOi.fake.jwt";
    expect_open_error(&j, "seedKey");
    j.seed_key = "not-a-seed";
    expect_open_error(&j, "seedKey is not a usable NKey seed");
    j.jwt = j.seed_key = NULL;
    j.tls_client_cert = "/nonexistent/client.pem";
    j.tls_client_key = "/nonexistent/client.key";
    expect_open_error(&j, "tls_client_cert: cannot read /nonexistent/client.pem");
    j.tls_client_cert = j.tls_client_key = NULL;
    j.deliver_policy = OFE_CONFIG_DELIVER_SEQUENCE;
    expect_open_error(&j, "startSequence");

    /* the config module names the field and its place in the file */
    struct ofe_bus *b = NULL;
    char err[512];
    int rc = open_yaml(&b, 0, NULL, err, sizeof(err),
                       "apiVersion: dapr.io/v1alpha1\nkind: Component\n"
                       "metadata:\n  name: default\nspec:\n  type: pubsub.jetstream\n"
                       "  version: v1\n  metadata:\n"
                       "  - name: natsURL\n    value: %s\n"
                       "  - name: deliverPolicy\n    value: sometimes\n",
                       g_srv->url);
    assert_int_equal(rc, OFE_EINVAL);
    assert_null(b);

    /* a Dapr Component with Dapr's names works */
    rc = open_yaml(&b, 0, NULL, err, sizeof(err),
                   "apiVersion: dapr.io/v1alpha1\nkind: Component\n"
                   "metadata:\n  name: default\nspec:\n  type: pubsub.jetstream\n"
                   "  version: v1\n  metadata:\n"
                   "  - name: natsURL\n    value: %s\n"
                   "  - name: streamName\n    value: DAPR\n"
                   "  - name: backOff\n    value: \"50ms, 1s, 10s\"\n"
                   "  - name: maxDeliver\n    value: \"5\"\n",
                   g_srv->url);
    assert_int_equal(rc, 0);
    assert_true(wait_ready(b, 10000));
    char e2[512];
    struct ofe_ce *ev = mkev(1, 4);
    assert_int_equal(ofe_bus_publish_sync(b, "dapr-topic", ev, e2, sizeof(e2)), 0);
    /* topics that cannot be NATS subjects are refused */
    assert_int_equal(ofe_bus_publish_sync(b, "a b", ev, e2, sizeof(e2)), OFE_EINVAL);
    assert_non_null(strstr(e2, "cannot be a NATS subject"));
    assert_int_equal(ofe_bus_publish_sync(b, "x.*", ev, e2, sizeof(e2)), OFE_EINVAL);
    assert_int_equal(ofe_bus_publish_sync(b, "x..y", ev, e2, sizeof(e2)), OFE_EINVAL);
    ofe_ce_unref(ev);
    ofe_bus_close(b, 1000);
}

/* Nothing listens: open works (connecting goes on in the background),
 * readiness says why, a publish waits its timeout and fails with
 * OFE_ECONN; closing fails what still waits with OFE_ECLOSED. */
static void test_unreachable(void **state)
{
    char url[64];
    snprintf(url, sizeof(url), "nats://127.0.0.1:%d", tu_free_port());
    struct ofe_config_jetstream_bus j;
    memset(&j, 0, sizeof(j));
    j.nats_url = url;
    struct ofe_bus *b = NULL;
    char err[512];
    assert_int_equal(open_struct(&j, &b, err, sizeof(err), 800), 0);
    char why[512];
    assert_false(ofe_bus_ready(b, why, sizeof(why)));
    fprintf(stderr, "unreachable: %s\n", why);
    assert_non_null(strstr(why, "not connected"));
    struct ofe_ce *ev = mkev(1, 4);
    uint64_t t0 = now_ms();
    int rc = ofe_bus_publish_sync(b, "t", ev, err, sizeof(err));
    fprintf(stderr, "publish: %s (%s) after %" PRIu64 " ms\n", ofe_strerror(rc), err,
            now_ms() - t0);
    assert_int_equal(rc, OFE_ECONN);
    assert_non_null(strstr(err, "not connected"));
    ofe_ce_unref(ev);
    ofe_bus_close(b, 100);

    /* close fails what is still waiting */
    assert_int_equal(open_struct(&j, &b, err, sizeof(err), 60000), 0);
    struct pubs ps = {.lock = PTHREAD_MUTEX_INITIALIZER};
    for (int i = 0; i < 5; i++)
        publish_async(b, "t", &ps, i, 4);
    ofe_bus_close(b, 200);
    assert_int_equal(ps.done, 5);
    assert_int_equal(ps.ok, 0);
    assert_int_equal(ps.err_code, OFE_ECLOSED);
}

/* A server that stops answering while the connection stays up (frozen
 * with SIGSTOP: no PubAck, no close): a publish fails at its deadline with
 * OFE_ETIMEDOUT ("no PubAck"), kept by the backend itself; meanwhile no
 * more than max_pending publishes are accepted (OFE_EAGAIN); once the
 * server runs again, publishing works. */
static void test_no_puback(void **state)
{
    struct tu_server *srv = tu_server_start(TU_NATS, NULL);
    assert_non_null(srv);
    struct ofe_config_jetstream_bus j;
    memset(&j, 0, sizeof(j));
    j.nats_url = srv->url;
    j.stream_name = "NOACK";
    struct ofe_bus *b = NULL;
    char err[512];
    struct ofe_bus_opts bo = {.component = "test-js", .publish_timeout_ms = 1000, .max_pending = 3};
    assert_int_equal(open_struct_opts(&j, &bo, &b, err, sizeof(err)), 0);
    assert_true(wait_ready(b, 10000));
    struct ofe_ce *ev = mkev(1, 8);
    assert_int_equal(ofe_bus_publish_sync(b, "t", ev, err, sizeof(err)), 0);

    /* kill() only queues the stop: wait until every thread of the server
     * has stopped (the parent hears of it), or the first PubAcks may
     * still come */
    assert_int_equal(kill(srv->proc->pid, SIGSTOP), 0);
    int st = 0;
    assert_int_equal(waitpid(srv->proc->pid, &st, WUNTRACED), srv->proc->pid);
    assert_true(WIFSTOPPED(st));
    struct pubs ps = {.lock = PTHREAD_MUTEX_INITIALIZER};
    uint64_t t0 = now_ms();
    for (int i = 0; i < 3; i++)
        publish_async(b, "t", &ps, i, 8);
    int rc = ofe_bus_publish(b, "t", ev, NULL, NULL, err, sizeof(err));
    fprintf(stderr, "a 4th publish: %s (%s)\n", ofe_strerror(rc), err);
    assert_int_equal(rc, OFE_EAGAIN);
    assert_non_null(strstr(err, "3 publishes are waiting"));
    int done = pubs_wait(&ps, 3, 10000);
    uint64_t took = now_ms() - t0;
    kill(srv->proc->pid, SIGCONT);
    fprintf(stderr, "frozen server: %d of 3 done after %" PRIu64 " ms: %s\n", done, took, ps.err);
    assert_int_equal(done, 3);
    assert_int_equal(ps.ok, 0);
    assert_int_equal(ps.err_code, OFE_ETIMEDOUT);
    assert_non_null(strstr(ps.err, "no PubAck"));

    assert_true(wait_ready(b, 15000));
    assert_int_equal(ofe_bus_publish_sync(b, "t", ev, err, sizeof(err)), 0);
    ofe_ce_unref(ev);
    ofe_bus_close(b, 1000);
    tu_server_free(srv);
}

/* A wrong password: readiness carries the server's refusal; the right one
 * works. */
static void test_auth(void **state)
{
    const char *extra[] = {"--user", "ofe", "--pass", "s3cret", NULL};
    struct tu_server *srv = tu_server_start(TU_NATS, extra);
    assert_non_null(srv);
    struct ofe_config_jetstream_bus j;
    memset(&j, 0, sizeof(j));
    j.nats_url = srv->url;
    j.user = "ofe";
    j.password = "wrong";
    struct ofe_bus *b = NULL;
    char err[512], why[512] = "";
    assert_int_equal(open_struct(&j, &b, err, sizeof(err), 0), 0);
    for (int i = 0; i < 100 && !strcasestr(why, "authorization"); i++) {
        ofe_bus_ready(b, why, sizeof(why));
        msleep(20);
    }
    fprintf(stderr, "wrong password: %s\n", why);
    assert_false(ofe_bus_ready(b, why, sizeof(why)));
    assert_non_null(strcasestr(why, "authorization"));
    ofe_bus_close(b, 100);
    j.password = "s3cret";
    assert_int_equal(open_struct(&j, &b, err, sizeof(err), 0), 0);
    assert_true(wait_ready(b, 10000));
    struct ofe_ce *ev = mkev(1, 4);
    assert_int_equal(ofe_bus_publish_sync(b, "auth-topic", ev, err, sizeof(err)), 0);
    ofe_ce_unref(ev);
    ofe_bus_close(b, 1000);
    tu_server_free(srv);
}

/* An event over the server's max_payload is refused at once with a clear
 * error; a large one under it passes intact. */
static void test_max_payload(void **state)
{
    const char *topic = "default-src-big";
    struct ofe_bus *b = open_bus(g_srv->url, "BIG", NULL);
    assert_true(wait_ready(b, 10000));
    char err[512];
    struct ofe_ce *big = mkev(2, 1536 * 1024);
    int rc = ofe_bus_publish_sync(b, topic, big, err, sizeof(err));
    fprintf(stderr, "1.5 MiB event: %s\n", err);
    assert_int_equal(rc, OFE_EINVAL);
    assert_non_null(strstr(err, "max_payload"));
    ofe_ce_unref(big);
    struct ofe_ce *ok = mkev(4, 900 * 1024);
    assert_int_equal(ofe_bus_publish_sync(b, topic, ok, err, sizeof(err)), 0);
    struct coll c;
    coll_init(&c, ACT_ACK);
    struct ofe_sub *s = subscribe(b, "g-big", topic, &c, 4);
    assert_int_equal(coll_wait(&c, 1, 10000), 1);
    assert_true(ofe_ce_equal(ok, c.ev[4]));
    ofe_ce_unref(ok);
    ofe_sub_close(s);
    ofe_bus_close(b, 1000);
    coll_fini(&c);
}

/* A message on the bus that is not a CloudEvent is still delivered, as an
 * invalid message with the reason and the raw payload. */
static void test_invalid_message(void **state)
{
    const char *topic = "default-src-raw";
    struct ofe_bus *b = open_bus(g_srv->url, "RAW", NULL);
    assert_true(wait_ready(b, 10000));
    struct direct d;
    direct_open(&d, g_srv->url);
    assert_int_equal(js_Publish(NULL, d.js, "RAW.default-src-raw", "not an event", 12, NULL, NULL),
                     NATS_OK);
    direct_close(&d);
    struct coll c;
    coll_init(&c, ACT_ACK);
    struct ofe_sub *s = subscribe(b, "g-raw", topic, &c, 4);
    assert_int_equal(coll_wait(&c, 1, 10000), 1);
    assert_int_equal(c.invalid, 1);
    fprintf(stderr, "invalid: %s\n", c.invalid_err);
    assert_true(strlen(c.invalid_err) > 0);
    assert_int_equal(c.invalid_len, 12);
    assert_memory_equal(c.invalid_payload, "not an event", 12);
    ofe_sub_close(s);
    ofe_bus_close(b, 1000);
    coll_fini(&c);
}

/* An operator deletes the group's consumer, then the whole stream: the
 * backend makes them again by itself and events keep flowing (at least
 * once: a consumer made again starts from the first event kept). */
static void test_admin_deletes(void **state)
{
    const char *topic = "default-src-admin";
    struct ofe_bus *b = open_bus(g_srv->url, "ADMIN", NULL);
    assert_true(wait_ready(b, 10000));
    struct coll c;
    coll_init(&c, ACT_ACK);
    struct ofe_sub *s = subscribe(b, "g-admin", topic, &c, 8);
    char err[512];
    struct ofe_ce *ev = mkev(1, 8);
    assert_int_equal(ofe_bus_publish_sync(b, topic, ev, err, sizeof(err)), 0);
    ofe_ce_unref(ev);
    assert_int_equal(coll_wait(&c, 1, 10000), 1);

    struct direct d;
    direct_open(&d, g_srv->url);
    jsConsumerNamesList *names = NULL;
    assert_int_equal(js_ConsumerNames(&names, d.js, "ADMIN", NULL, NULL), NATS_OK);
    assert_int_equal(names->Count, 1);
    /* nats-server 2.9 may fail a delete while it writes the consumer's
     * state ("directory not empty"): an operator tries again */
    natsStatus dst = NATS_ERR;
    for (int i = 0; i < 20 && dst != NATS_OK; i++) {
        dst = js_DeleteConsumer(d.js, "ADMIN", names->List[0], NULL, NULL);
        if (dst != NATS_OK) {
            fprintf(stderr, "delete consumer %s: %s\n", names->List[0], nats_GetLastError(NULL));
            msleep(50);
        }
    }
    assert_int_equal(dst, NATS_OK);
    jsConsumerNamesList_Destroy(names);
    ev = mkev(2, 8);
    assert_int_equal(ofe_bus_publish_sync(b, topic, ev, err, sizeof(err)), 0);
    ofe_ce_unref(ev);
    uint64_t end = now_ms() + 15000;
    while (!c.count[2] && now_ms() < end)
        msleep(10);
    assert_int_equal(c.count[2], 1);

    dst = NATS_ERR;
    for (int i = 0; i < 20 && dst != NATS_OK; i++) {
        dst = js_DeleteStream(d.js, "ADMIN", NULL, NULL);
        if (dst != NATS_OK) {
            fprintf(stderr, "delete stream: %s\n", nats_GetLastError(NULL));
            msleep(50);
        }
    }
    assert_int_equal(dst, NATS_OK);
    direct_close(&d);
    ev = mkev(3, 8);
    int rc = ofe_bus_publish_sync(b, topic, ev, err, sizeof(err));
    if (rc)
        fprintf(stderr, "publish after the stream was deleted: %s\n", err);
    assert_int_equal(rc, 0);
    ofe_ce_unref(ev);
    end = now_ms() + 15000;
    while (!c.count[3] && now_ms() < end)
        msleep(10);
    assert_int_equal(c.count[3], 1);
    assert_int_equal(stream_msgs(g_srv->url, "ADMIN"), 1);
    ofe_sub_close(s);
    ofe_bus_close(b, 1000);
    coll_fini(&c);
}

/* TLS with a private CA and a client certificate (nats-server --tlsverify):
 * with tls_ca_cert, tls_client_cert and tls_client_key events flow; without
 * the client certificate the server refuses and readiness says so. */
static void test_tls(void **state)
{
    char *dir = tu_mkdtemp("nats-tls");
    char cmd[4096];
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout ca.key -out ca.pem -days 2 -subj /CN=ofe-test-ca && "
             "for n in server client; do "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout $n.key -out $n.csr -subj /CN=127.0.0.1 && "
             "printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth,clientAuth\\n' "
             "> $n.ext && "
             "openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $n.pem "
             "-days 2 -extfile $n.ext || exit 1; done",
             dir);
    if (system(cmd) != 0) {
        tu_rmrf(dir);
        free(dir);
        fail_msg("openssl could not make the test certificates");
    }
    char ca[4200], scert[4200], skey[4200], ccert[4200], ckey[4200];
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    snprintf(scert, sizeof(scert), "%s/server.pem", dir);
    snprintf(skey, sizeof(skey), "%s/server.key", dir);
    snprintf(ccert, sizeof(ccert), "%s/client.pem", dir);
    snprintf(ckey, sizeof(ckey), "%s/client.key", dir);
    const char *extra[] = {"--tls",       "--tlscert",   scert, "--tlskey", skey,
                           "--tlsverify", "--tlscacert", ca,    NULL};
    struct tu_server *srv = tu_server_start(TU_NATS, extra);
    assert_non_null(srv);
    char url[128];
    snprintf(url, sizeof(url), "tls://%s", srv->addr);

    struct ofe_config_jetstream_bus j;
    memset(&j, 0, sizeof(j));
    j.nats_url = url;
    j.stream_name = "TLS";
    j.tls_ca_cert = ca;
    struct ofe_bus *b = NULL;
    char err[512], why[512] = "";
    assert_int_equal(open_struct(&j, &b, err, sizeof(err), 0), 0);
    msleep(500);
    assert_false(ofe_bus_ready(b, why, sizeof(why)));
    fprintf(stderr, "TLS without a client certificate: %s\n", why);
    ofe_bus_close(b, 100);

    j.tls_client_cert = ccert;
    j.tls_client_key = ckey;
    assert_int_equal(open_struct(&j, &b, err, sizeof(err), 0), 0);
    assert_true(wait_ready(b, 10000));
    struct coll c;
    coll_init(&c, ACT_ACK);
    struct ofe_sub *s = subscribe(b, "g-tls", "default-src-tls", &c, 4);
    struct ofe_ce *ev = mkev(5, 100);
    assert_int_equal(ofe_bus_publish_sync(b, "default-src-tls", ev, err, sizeof(err)), 0);
    assert_int_equal(coll_wait(&c, 1, 10000), 1);
    assert_true(ofe_ce_equal(ev, c.ev[5]));
    ofe_ce_unref(ev);
    ofe_sub_close(s);
    ofe_bus_close(b, 1000);
    coll_fini(&c);
    tu_server_free(srv);
    tu_rmrf(dir);
    free(dir);
}

/* Where a new group starts: the subscriber's NEWEST, the bus's
 * deliverPolicy sequence; an existing group resumes whatever it asks. */
static void test_start_positions(void **state)
{
    const char *topic = "default-src-start";
    struct ofe_bus *b = open_bus(g_srv->url, "START", NULL);
    assert_true(wait_ready(b, 10000));
    char err[512];
    for (int i = 0; i < 3; i++) {
        struct ofe_ce *ev = mkev(i, 8);
        assert_int_equal(ofe_bus_publish_sync(b, topic, ev, err, sizeof(err)), 0);
        ofe_ce_unref(ev);
    }
    struct coll c;
    coll_init(&c, ACT_ACK);
    const char *topics[] = {topic};
    struct ofe_sub_opts o = {.group = "g-newest",
                             .topics = topics,
                             .ntopics = 1,
                             .start = OFE_START_NEWEST,
                             .on_msg = on_msg,
                             .opaque = &c};
    struct ofe_sub *s = NULL;
    assert_int_equal(ofe_bus_subscribe(b, &o, &s, err, sizeof(err)), 0);
    /* publish the next ones once the group's consumer exists */
    struct direct d;
    direct_open(&d, g_srv->url);
    int ncons = 0;
    for (int i = 0; i < 500 && ncons == 0; i++) {
        jsConsumerNamesList *names = NULL;
        if (js_ConsumerNames(&names, d.js, "START", NULL, NULL) == NATS_OK) {
            ncons = names->Count;
            jsConsumerNamesList_Destroy(names);
        }
        if (!ncons)
            msleep(20);
    }
    direct_close(&d);
    assert_int_equal(ncons, 1);
    for (int i = 3; i < 5; i++) {
        struct ofe_ce *ev = mkev(i, 8);
        assert_int_equal(ofe_bus_publish_sync(b, topic, ev, err, sizeof(err)), 0);
        ofe_ce_unref(ev);
    }
    assert_int_equal(coll_wait(&c, 2, 10000), 2);
    msleep(300);
    assert_int_equal(c.total, 2);
    assert_int_equal(c.count[3] + c.count[4], 2);
    ofe_sub_close(s);
    ofe_bus_close(b, 1000);

    /* deliverPolicy sequence from a Dapr Component: from the 2nd event on */
    struct ofe_bus *b2 = NULL;
    int rc = open_yaml(&b2, 0, NULL, err, sizeof(err),
                       "apiVersion: dapr.io/v1alpha1\nkind: Component\n"
                       "metadata:\n  name: default\nspec:\n  type: pubsub.jetstream\n"
                       "  version: v1\n  metadata:\n"
                       "  - name: natsURL\n    value: %s\n"
                       "  - name: streamName\n    value: START\n"
                       "  - name: deliverPolicy\n    value: sequence\n"
                       "  - name: startSequence\n    value: \"2\"\n",
                       g_srv->url);
    assert_int_equal(rc, 0);
    assert_true(wait_ready(b2, 10000));
    struct coll c2;
    coll_init(&c2, ACT_ACK);
    struct ofe_sub *s2 = subscribe(b2, "g-seq", topic, &c2, 8);
    assert_int_equal(coll_wait(&c2, 4, 10000), 4);
    msleep(300);
    assert_int_equal(c2.total, 4);
    assert_int_equal(c2.count[0], 0);
    for (int i = 1; i < 5; i++)
        assert_int_equal(c2.count[i], 1);
    ofe_sub_close(s2);
    ofe_bus_close(b2, 1000);
    coll_fini(&c);
    coll_fini(&c2);
}

static int group_setup(void **state)
{
    g_srv = tu_server_start(TU_NATS, NULL);
    return g_srv ? 0 : -1;
}

static int group_teardown(void **state)
{
    tu_server_free(g_srv);
    g_srv = NULL;
    return 0;
}

int main(int argc, char **argv)
{
    ssize_t n = readlink("/proc/self/exe", g_self, sizeof(g_self) - 1);
    if (n > 0)
        g_self[n] = '\0';
    if (argc == 6 && !strcmp(argv[1], "--child-hold"))
        return child_hold(argv[2], argv[3], argv[4], argv[5]);
    signal(SIGPIPE, SIG_IGN);
    ofe_log_set_level(OFE_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_and_confirmation),
        cmocka_unit_test(test_group_split),
        cmocka_unit_test(test_nack_delay),
        cmocka_unit_test(test_start_positions),
        cmocka_unit_test(test_kill_member_redelivery),
        cmocka_unit_test(test_nats_streaming_eventbus),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_no_puback),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_tls),
        cmocka_unit_test(test_max_payload),
        cmocka_unit_test(test_invalid_message),
        cmocka_unit_test(test_admin_deletes),
        cmocka_unit_test(test_server_restart),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
