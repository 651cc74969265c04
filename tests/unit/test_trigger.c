/* Unit tests of ofe-trigger's runtime (trigger/ without main.c) on the
 * in-process memory bus, with an in-process HTTP sink: conditions and
 * windows, filters, delivery rules (retries, backoff, Retry-After, 400,
 * timeouts), dead letters, re-publish and replies with the loop guard,
 * concurrency, ordering, back-pressure, reload, drain. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ofe/config.h"
#include "ofe/daemon.h"
#include "ofe/err.h"
#include "ofe/pubsub.h"
#include "../../trigger/trigger.h"
#include "trigger_testsink.h"

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- environment ---------------------------------------------------------- */

struct env {
    char bus[32];
    struct ofe_metrics *m;
    struct ofe_bus *pub; /* the test's own handle on the memory broker */
    struct trg_runtime *rt;
};

static int mem_get(void *arg, const struct ofe_config_busdesc *d, struct ofe_bus **out,
                   char *errstr, size_t errstr_size)
{
    /* Every bus is the memory broker, except that a Kafka bus cannot be
     * opened here (to test a trigger that cannot start). */
    if (d->kind == OFE_CONFIG_BUS_KAFKA)
        return ofe_err(errstr, errstr_size, OFE_EUNSUPP, "no Kafka in this test");
    struct ofe_bus_opts o = {.component = "trigger"};
    return ofe_bus_open_memory(arg, &o, out, errstr, errstr_size);
}

static void mem_put(void *arg, struct ofe_bus *b)
{
    ofe_bus_close(b, 1000);
}

static struct ofe_config *load(const char *yaml)
{
    struct ofe_config *cfg = ofe_config_new();
    ofe_config_set_cesql_check(cfg, ofe_daemon_cesql_check, NULL);
    ofe_config_load_buffer(cfg, "test.yaml", yaml, strlen(yaml));
    ofe_config_check_refs(cfg, OFE_CONFIG_ERROR);
    size_t n;
    const struct ofe_config_diag *d = ofe_config_diags(cfg, &n);
    for (size_t i = 0; i < n; i++) {
        char line[1024];
        fprintf(stderr, "%s\n", ofe_config_diag_format(&d[i], line, sizeof(line)));
    }
    assert_int_equal(ofe_config_nerrors(cfg), 0);
    return cfg;
}

static void env_runtime(struct env *e, uint32_t drain_ms, unsigned max_inflight)
{
    char err[256];
    struct trg_runtime_opts o = {
        .metrics = e->m,
        .buses = {mem_get, mem_put, e->bus},
        .max_inflight = max_inflight,
        .drain_ms = drain_ms,
        .no_jitter = true,
    };
    e->rt = trg_runtime_new(&o, err, sizeof(err));
    assert_non_null(e->rt);
}

static void env_init(struct env *e)
{
    static int n;
    memset(e, 0, sizeof(*e));
    snprintf(e->bus, sizeof(e->bus), "trg%d-%d", (int)getpid(), ++n);
    e->m = ofe_metrics_new();
    char err[256];
    struct ofe_bus_opts o = {.component = "test"};
    assert_int_equal(ofe_bus_open_memory(e->bus, &o, &e->pub, err, sizeof(err)), 0);
    env_runtime(e, 10000, 64);
}

static void env_apply(struct env *e, const char *yaml)
{
    char err[512];
    int rc = trg_runtime_apply(e->rt, load(yaml), err, sizeof(err));
    if (rc)
        fprintf(stderr, "apply: %s\n", err);
    assert_int_equal(rc, 0);
}

static void env_fini(struct env *e)
{
    trg_runtime_destroy(e->rt);
    ofe_bus_close(e->pub, 1000);
    ofe_metrics_destroy(e->m);
}

static struct ofe_ce *mkev(const char *id, const char *type, const char *subject)
{
    struct ofe_ce *ev = ofe_ce_new();
    assert_int_equal(ofe_ce_set_str(ev, "specversion", OFE_CE_T_NONE, "1.0", NULL, 0), 0);
    assert_int_equal(ofe_ce_set_str(ev, "id", OFE_CE_T_NONE, id, NULL, 0), 0);
    assert_int_equal(ofe_ce_set_str(ev, "source", OFE_CE_T_NONE, "/test", NULL, 0), 0);
    assert_int_equal(ofe_ce_set_str(ev, "type", OFE_CE_T_NONE, type ? type : "t", NULL, 0), 0);
    if (subject)
        assert_int_equal(ofe_ce_set_str(ev, "subject", OFE_CE_T_NONE, subject, NULL, 0), 0);
    assert_int_equal(ofe_ce_set_data(ev, "hello", 5), 0);
    return ev;
}

static void pub_ev(struct env *e, const char *topic, struct ofe_ce *ev)
{
    char err[256];
    assert_int_equal(ofe_bus_publish_sync(e->pub, topic, ev, err, sizeof(err)), 0);
    ofe_ce_unref(ev);
}

static void pub(struct env *e, const char *topic, const char *id)
{
    pub_ev(e, topic, mkev(id, NULL, NULL));
}

static uint64_t counter(struct env *e, const char *name, const char *trig, const char *k,
                        const char *v)
{
    char id[128];
    snprintf(id, sizeof(id), "default/%s", trig);
    const char *l[] = {"trigger", id, k, v, NULL};
    if (!k)
        l[2] = NULL;
    return ofe_counter_get(ofe_metrics_counter(e->m, name, "", l));
}

static uint64_t sub_counter(struct env *e, const char *name, const char *trig, const char *sub)
{
    return counter(e, name, trig, "subscriber", sub);
}

/* Waits until the trigger acked n messages (every job of each done). */
static void wait_acked(struct env *e, const char *trig, uint64_t n)
{
    uint64_t t0 = now_ms();
    while (counter(e, "ofe_trigger_acked_total", trig, NULL, NULL) < n) {
        if (now_ms() - t0 > 20000)
            fail_msg("trigger %s: %llu acked, waited for %llu", trig,
                     (unsigned long long)counter(e, "ofe_trigger_acked_total", trig, NULL, NULL),
                     (unsigned long long)n);
        usleep(2000);
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The ids the sink got on a path, comma-separated, in arrival order, or
 * sorted (for subscribers that deliver concurrently). */
static void ids_on_(struct tsink *s, const char *path, bool sorted, char *out, size_t size)
{
    out[0] = '\0';
    struct tsink_rec r;
    char *ids[256];
    unsigned n = 0;
    for (unsigned i = 0; tsink_get(s, i, &r); i++) {
        if (!strcmp(r.path, path) && n < 256)
            ids[n++] = strdup(ofe_ce_get_str(r.ev, "id"));
        ofe_ce_unref(r.ev);
    }
    if (sorted)
        qsort(ids, n, sizeof(ids[0]), cmp_str);
    for (unsigned i = 0; i < n; i++) {
        size_t l = strlen(out);
        snprintf(out + l, size - l, "%s%s", l ? "," : "", ids[i]);
        free(ids[i]);
    }
}

#define ids_on(s, path, out, size)        ids_on_(s, path, false, out, size)
#define ids_sorted_on(s, path, out, size) ids_on_(s, path, true, out, size)

/* Reads n events of topic through a group of the test (oldest first). */
struct collect {
    pthread_mutex_t lock;
    struct ofe_ce *ev[64];
    unsigned n;
};

static void on_collect(struct ofe_msg *m, void *opaque)
{
    struct collect *c = opaque;
    pthread_mutex_lock(&c->lock);
    if (c->n < 64 && ofe_msg_event(m))
        c->ev[c->n++] = ofe_ce_ref(ofe_msg_event(m));
    pthread_mutex_unlock(&c->lock);
    ofe_msg_ack(m);
}

static unsigned collect(struct env *e, const char *topic, unsigned n, struct ofe_ce **out)
{
    struct collect c = {.n = 0};
    pthread_mutex_init(&c.lock, NULL);
    const char *topics[] = {topic};
    struct ofe_sub_opts so = {.group = "checker",
                              .topics = topics,
                              .ntopics = 1,
                              .start = OFE_START_OLDEST,
                              .on_msg = on_collect,
                              .opaque = &c};
    struct ofe_sub *sub;
    char err[256];
    assert_int_equal(ofe_bus_subscribe(e->pub, &so, &sub, err, sizeof(err)), 0);
    uint64_t t0 = now_ms();
    for (;;) {
        pthread_mutex_lock(&c.lock);
        unsigned got = c.n;
        pthread_mutex_unlock(&c.lock);
        if (got >= n || now_ms() - t0 > 10000)
            break;
        usleep(2000);
    }
    ofe_sub_close(sub);
    for (unsigned i = 0; i < c.n; i++)
        out[i] = c.ev[i];
    pthread_mutex_destroy(&c.lock);
    return c.n;
}

#define HEAD                                                                                       \
    "apiVersion: events.openfunction.io/v1alpha1\nkind: Trigger\nmetadata:\n  name: %s\nspec:\n"   \
    "  eventBus: default\n"

/* ---- conditions ----------------------------------------------------------- */

/* /readyz is served before the configuration is applied: an empty runtime
 * must not look ready, an applied one must. */
static void test_ready_after_apply(void **state)
{
    struct env e;
    env_init(&e);
    char why[512] = "";
    assert_false(trg_runtime_ready(e.rt, why, sizeof(why)));
    assert_non_null(strstr(why, "starting"));
    char y[1024];
    snprintf(y, sizeof(y),
             HEAD
             "  inputs:\n    a: {eventSource: es, event: a}\n"
             "  subscribers:\n  - {name: s, condition: a, sink: {uri: 'http://127.0.0.1:9/'}}\n",
             "ready");
    env_apply(&e, y);
    assert_true(trg_runtime_ready(e.rt, why, sizeof(why)));
    env_fini(&e);
}

static void test_condition_and_window(void **state)
{
    struct env e;
    env_init(&e);
    struct tsink *s = tsink_start(NULL);
    char y[4096];
    /* w60: a && b with the default window; w300: the same, 300 ms window */
    snprintf(y, sizeof(y),
             HEAD
             "  inputs:\n    a: {eventSource: es, event: a}\n    b: {eventSource: es, event: b}\n"
             "  subscribers:\n  - {name: s, condition: a && b, sink: {uri: '%s/w60'}}\n"
             "---\n" HEAD "  conditionWindow: 300ms\n"
             "  inputs:\n    a: {eventSource: es2, event: a}\n    b: {eventSource: es2, event: "
             "b}\n"
             "  subscribers:\n  - {name: s, condition: a && b, sink: {uri: '%s/w300'}}\n",
             "w60", tsink_url(s), "w300", tsink_url(s));
    env_apply(&e, y);
    char ids[512];

    pub(&e, "default-es-a", "a1"); /* only a: no */
    wait_acked(&e, "w60", 1);
    assert_int_equal(tsink_count(s), 0);
    assert_int_equal(sub_counter(&e, "ofe_trigger_condition_false_total", "w60", "s"), 1);
    pub(&e, "default-es-b", "b1"); /* a and b: the b event goes */
    wait_acked(&e, "w60", 2);
    pub(&e, "default-es-a", "a2"); /* still both */
    wait_acked(&e, "w60", 3);
    ids_on(s, "/w60", ids, sizeof(ids));
    assert_string_equal(ids, "b1,a2");

    /* Expiry: b, then more than the window later, a: no. */
    pub(&e, "default-es2-b", "x1");
    wait_acked(&e, "w300", 1);
    usleep(450 * 1000);
    pub(&e, "default-es2-a", "x2");
    wait_acked(&e, "w300", 2);
    ids_on(s, "/w300", ids, sizeof(ids));
    assert_string_equal(ids, "");
    pub(&e, "default-es2-b", "x3"); /* a (x2) is fresh now */
    wait_acked(&e, "w300", 3);
    ids_on(s, "/w300", ids, sizeof(ids));
    assert_string_equal(ids, "x3");
    assert_int_equal(sub_counter(&e, "ofe_trigger_delivered_total", "w300", "s"), 1);
    assert_int_equal(sub_counter(&e, "ofe_trigger_condition_false_total", "w300", "s"), 2);
    env_fini(&e);
    tsink_stop(s);
}

static void test_condition_operators(void **state)
{
    struct env e;
    env_init(&e);
    struct tsink *s = tsink_start(NULL);
    char y[4096];
    snprintf(y, sizeof(y),
             HEAD
             "  inputs:\n    a: {eventSource: es, event: a}\n    b: {eventSource: es, event: b}\n"
             "    c: {eventSource: es, event: c}\n"
             "  subscribers:\n"
             "  - {name: s1, condition: 'a || !b', sink: {uri: '%s/s1'}}\n"
             "  - {name: s2, condition: '(a && b) || c', sink: {uri: '%s/s2'}}\n"
             "  - {name: s3, condition: 'not a and (b or c)', sink: {uri: '%s/s3'}}\n"
             "  - {name: s4, condition: b, sink: {uri: '%s/s4'}}\n"
             "  - {name: s5, condition: b, sink: {uri: '%s/s5'}}\n",
             "ops", tsink_url(s), tsink_url(s), tsink_url(s), tsink_url(s), tsink_url(s));
    env_apply(&e, y);
    pub(&e, "default-es-c", "c1");
    wait_acked(&e, "ops", 1);
    pub(&e, "default-es-b", "b1");
    wait_acked(&e, "ops", 2);
    pub(&e, "default-es-a", "a1");
    wait_acked(&e, "ops", 3);
    char ids[512];
    ids_on(s, "/s1", ids, sizeof(ids));
    assert_string_equal(ids, "c1,a1");
    ids_on(s, "/s2", ids, sizeof(ids));
    assert_string_equal(ids, "c1,b1,a1");
    ids_on(s, "/s3", ids, sizeof(ids));
    assert_string_equal(ids, "c1,b1");
    /* Two subscribers with the same condition are two subscribers. */
    ids_on(s, "/s4", ids, sizeof(ids));
    assert_string_equal(ids, "b1,a1");
    ids_on(s, "/s5", ids, sizeof(ids));
    assert_string_equal(ids, "b1,a1");
    assert_int_equal(counter(&e, "ofe_trigger_input_events_total", "ops", "input", "a"), 1);
    env_fini(&e);
    tsink_stop(s);
}

/* ---- filters ------------------------------------------------------------- */

static void test_filters(void **state)
{
    struct env e;
    env_init(&e);
    struct tsink *s = tsink_start(NULL);
    const char *u = tsink_url(s);
    char y[8192];
    snprintf(y, sizeof(y),
             HEAD
             "  inputs:\n    a: {eventSource: es, event: a}\n"
             "  subscribers:\n"
             "  - name: cesql\n    condition: a\n    sink: {uri: '%s/cesql'}\n"
             "    filter: \"type = 'order.created' AND subject LIKE 'eu/%%'\"\n"
             "  - name: exact\n    condition: a\n    sink: {uri: '%s/exact'}\n"
             "    filters: [{exact: {type: order.created}}]\n"
             "  - name: prefix\n    condition: a\n    sink: {uri: '%s/prefix'}\n"
             "    filters: [{prefix: {type: order.}}]\n"
             "  - name: suffix\n    condition: a\n    sink: {uri: '%s/suffix'}\n"
             "    filters: [{suffix: {subject: /9}}]\n"
             "  - name: all\n    condition: a\n    sink: {uri: '%s/all'}\n"
             "    filters: [{all: [{exact: {type: order.created}}, {prefix: {subject: eu/}}]}]\n"
             "  - name: any\n    condition: a\n    sink: {uri: '%s/any'}\n"
             "    filters: [{any: [{exact: {subject: eu/1}}, {exact: {subject: us/9}}]}]\n"
             "  - name: not\n    condition: a\n    sink: {uri: '%s/not'}\n"
             "    filters: [{not: {exact: {type: order.created}}}]\n"
             "  - name: cesqld\n    condition: a\n    sink: {uri: '%s/cesqld'}\n"
             "    filters: [{cesql: 'myint > 5'}]\n"
             "  - name: ext\n    condition: a\n    sink: {uri: '%s/ext'}\n"
             "    filters: [{exact: {myext: v1}}, {prefix: {source: /te}}]\n",
             "flt", u, u, u, u, u, u, u, u, u);
    env_apply(&e, y);
    pub_ev(&e, "default-es-a", mkev("e1", "order.created", "eu/1"));
    struct ofe_ce *e2 = mkev("e2", "order.deleted", "us/9");
    assert_int_equal(ofe_ce_set_str(e2, "myext", OFE_CE_T_STRING, "v1", NULL, 0), 0);
    pub_ev(&e, "default-es-a", e2);
    struct ofe_ce *e3 = mkev("e3", "other", "x");
    assert_int_equal(ofe_ce_set_int(e3, "myint", 7, NULL, 0), 0);
    assert_int_equal(ofe_ce_set_str(e3, "myext", OFE_CE_T_STRING, "v2", NULL, 0), 0);
    pub_ev(&e, "default-es-a", e3);
    wait_acked(&e, "flt", 3);
    static const struct {
        const char *path, *want;
    } cases[] = {
        {"/cesql", "e1"},  {"/exact", "e1"},  {"/prefix", "e1,e2"},
        {"/suffix", "e2"}, {"/all", "e1"},    {"/any", "e1,e2"},
        {"/not", "e2,e3"}, {"/cesqld", "e3"}, {"/ext", "e2"},
    };
    char ids[512];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ids_sorted_on(s, cases[i].path, ids, sizeof(ids));
        if (strcmp(ids, cases[i].want))
            fail_msg("%s got \"%s\", want \"%s\"", cases[i].path, ids, cases[i].want);
    }
    assert_int_equal(sub_counter(&e, "ofe_trigger_filtered_total", "flt", "exact"), 2);
    /* myint is missing on e1 and e2: evaluation errors, no match */
    assert_int_equal(sub_counter(&e, "ofe_trigger_filter_errors_total", "flt", "cesqld"), 2);
    env_fini(&e);
    tsink_stop(s);
}

/* ---- delivery ------------------------------------------------------------- */

static void gaps_at_least(struct tsink *s, const char *path, const unsigned *min_ms, unsigned n)
{
    struct tsink_rec r[16];
    unsigned k = 0;
    for (unsigned i = 0; k < 16 && tsink_get(s, i, &r[k]); i++) {
        if (!strcmp(r[k].path, path))
            k++;
        else
            ofe_ce_unref(r[k].ev);
    }
    assert_int_equal(k, n + 1);
    for (unsigned i = 0; i < n; i++) {
        uint64_t gap = (r[i + 1].t_ns - r[i].t_ns) / 1000000u;
        if (gap < min_ms[i])
            fail_msg("%s: wait before attempt %u was %llu ms, at least %u expected", path, i + 2,
                     (unsigned long long)gap, min_ms[i]);
    }
    for (unsigned i = 0; i < k; i++)
        ofe_ce_unref(r[i].ev);
}

static void test_retries_backoff(void **state)
{
    struct env e;
    env_init(&e);
    struct tsink_prog p3 = {.fail_first = 3};
    struct tsink_prog p2 = {.fail_first = 2};
    struct tsink *s1 = tsink_start(&p3), *s2 = tsink_start(&p2);
    char y[4096];
    snprintf(y, sizeof(y),
             HEAD "  inputs:\n    a: {eventSource: es, event: a}\n"
                  "  subscribers:\n"
                  "  - name: exp\n    condition: a\n    sink: {uri: '%s/exp'}\n"
                  "    delivery: {retry: 5, backoffPolicy: exponential, backoffDelay: PT0.1S}\n"
                  "  - name: lin\n    condition: a\n    sink: {uri: '%s/lin'}\n"
                  "    delivery: {retry: 5, backoffPolicy: linear, backoffDelay: PT0.1S}\n",
             "rb", tsink_url(s1), tsink_url(s2));
    env_apply(&e, y);
    pub(&e, "default-es-a", "r1");
    wait_acked(&e, "rb", 1);
    /* 503 three times then 200: exactly four attempts, waits growing. */
    assert_int_equal(tsink_count(s1), 4);
    static const unsigned exp_ms[] = {100, 200, 400};
    gaps_at_least(s1, "/exp", exp_ms, 3);
    assert_int_equal(tsink_count(s2), 3);
    static const unsigned lin_ms[] = {100, 200};
    gaps_at_least(s2, "/lin", lin_ms, 2);
    assert_int_equal(sub_counter(&e, "ofe_trigger_retried_total", "rb", "exp"), 3);
    assert_int_equal(sub_counter(&e, "ofe_trigger_delivered_total", "rb", "exp"), 1);
    assert_int_equal(sub_counter(&e, "ofe_trigger_deadlettered_total", "rb", "exp"), 0);
    env_fini(&e);
    tsink_stop(s1);
    tsink_stop(s2);
}

static void test_retry_after(void **state)
{
    struct env e;
    env_init(&e);
    struct tsink_prog p = {.fail_first = 1, .fail_status = 429, .retry_after_s = 1};
    struct tsink *s = tsink_start(&p);
    char y[4096];
    snprintf(y, sizeof(y),
             HEAD "  inputs:\n    a: {eventSource: es, event: a}\n"
                  "  subscribers:\n"
                  "  - name: ra\n    condition: a\n    sink: {uri: '%s/ra'}\n"
                  "    delivery: {retry: 2, backoffDelay: PT0.01S, backoffCap: 5s}\n",
             "ra", tsink_url(s));
    env_apply(&e, y);
    pub(&e, "default-es-a", "q1");
    wait_acked(&e, "ra", 1);
    static const unsigned ms[] = {1000};
    gaps_at_least(s, "/ra", ms, 1);
    env_fini(&e);
    tsink_stop(s);
}

/* Checks a dead-lettered event: the original plus the ofeerror*
 * extensions. */
static void check_dead(const struct ofe_ce *ev, const char *id, const char *dest, int code,
                       const char *data_part)
{
    assert_string_equal(ofe_ce_get_str(ev, "id"), id);
    assert_string_equal(ofe_ce_get_str(ev, "source"), "/test");
    assert_string_equal(ofe_ce_get_str(ev, TRG_ERR_DEST), dest);
    const struct ofe_ce_attr *c = ofe_ce_get(ev, TRG_ERR_CODE, strlen(TRG_ERR_CODE));
    assert_non_null(c);
    char want[16];
    snprintf(want, sizeof(want), "%d", code);
    assert_string_equal(c->value, want);
    if (data_part) {
        const char *d = ofe_ce_get_str(ev, TRG_ERR_DATA);
        assert_non_null(d);
        if (!strstr(d, data_part))
            fail_msg("ofeerrordata \"%s\" lacks \"%s\"", d, data_part);
    }
    assert_int_equal(ev->data_len, 5);
    assert_memory_equal(ev->data, "hello", 5);
}

static void test_400_dead_letters(void **state)
{
    struct env e;
    env_init(&e);
    struct tsink_prog p = {.status = 400};
    struct tsink *s = tsink_start(&p), *dls = tsink_start(NULL);
    char y[4096], url[128];
    snprintf(url, sizeof(url), "%s/bad", tsink_url(s));
    snprintf(y, sizeof(y),
             HEAD "  inputs:\n    a: {eventSource: es, event: a}\n"
                  "  subscribers:\n"
                  "  - name: s\n    condition: a\n    sink: {uri: '%s'}\n"
                  "    deadLetterSink: {uri: '%s/dead'}\n    deadLetterTopic: dead\n"
                  "    delivery: {retry: 5, backoffDelay: PT0.01S}\n",
             "d4", url, tsink_url(dls));
    env_apply(&e, y);
    pub(&e, "default-es-a", "x1");
    wait_acked(&e, "d4", 1);
    assert_int_equal(tsink_count(s), 1); /* 400: not retried */
    assert_int_equal(tsink_count(dls), 1);
    struct tsink_rec r;
    assert_true(tsink_get(dls, 0, &r));
    check_dead(r.ev, "x1", url, 400, "injected failure");
    ofe_ce_unref(r.ev);
    struct ofe_ce *got[64];
    assert_int_equal(collect(&e, "dead", 1, got), 1);
    check_dead(got[0], "x1", url, 400, "injected failure");
    ofe_ce_unref(got[0]);
    assert_int_equal(sub_counter(&e, "ofe_trigger_deadlettered_total", "d4", "s"), 1);
    assert_int_equal(sub_counter(&e, "ofe_trigger_retried_total", "d4", "s"), 0);
    env_fini(&e);
    tsink_stop(s);
    tsink_stop(dls);
}

static void test_exhausted_dead_letters(void **state)
{
    struct env e;
    env_init(&e);
    struct tsink_prog p = {.status = 503};
    struct tsink *s = tsink_start(&p), *dls = tsink_start(NULL);
    char y[4096], url[128];
    snprintf(url, sizeof(url), "%s/down", tsink_url(s));
    snprintf(y, sizeof(y),
             HEAD "  inputs:\n    a: {eventSource: es, event: a}\n"
                  "  subscribers:\n"
                  "  - name: s\n    condition: a\n    sink: {uri: '%s'}\n"
                  "    deadLetterSink: {uri: '%s/dead'}\n    deadLetterTopic: dead\n"
                  "    delivery: {retry: 2, backoffDelay: PT0.02S}\n",
             "dx", url, tsink_url(dls));
    env_apply(&e, y);
    pub(&e, "default-es-a", "x2");
    wait_acked(&e, "dx", 1);
    assert_int_equal(tsink_count(s), 3);
    struct tsink_rec r;
    assert_true(tsink_get(dls, 0, &r));
    check_dead(r.ev, "x2", url, 503, "injected failure");
    ofe_ce_unref(r.ev);
    struct ofe_ce *got[64];
    assert_int_equal(collect(&e, "dead", 1, got), 1);
    check_dead(got[0], "x2", url, 503, NULL);
    ofe_ce_unref(got[0]);
    assert_int_equal(sub_counter(&e, "ofe_trigger_retried_total", "dx", "s"), 2);
    assert_int_equal(sub_counter(&e, "ofe_trigger_deadlettered_total", "dx", "s"), 1);
    env_fini(&e);
    tsink_stop(s);
    tsink_stop(dls);
}

static void test_timeout_retried(void **state)
{
    struct env e;
    env_init(&e);
    struct tsink_prog p = {.delay_first = 1, .delay_first_ms = 1500};
    struct tsink *s = tsink_start(&p);
    char y[4096];
    snprintf(y, sizeof(y),
             HEAD "  inputs:\n    a: {eventSource: es, event: a}\n"
                  "  subscribers:\n"
                  "  - name: s\n    condition: a\n    sink: {uri: '%s/slow'}\n"
                  "    delivery: {retry: 3, backoffDelay: PT0.05S, timeout: 300ms}\n",
             "to", tsink_url(s));
    env_apply(&e, y);
    pub(&e, "default-es-a", "t1");
    wait_acked(&e, "to", 1);
    assert_int_equal(tsink_count(s), 2); /* timed out, then answered */
    assert_int_equal(sub_counter(&e, "ofe_trigger_delivered_total", "to", "s"), 1);
    assert_int_equal(sub_counter(&e, "ofe_trigger_retried_total", "to", "s"), 1);
    env_fini(&e);
    tsink_stop(s);
}

static void test_dropped_without_dead_letter(void **state)
{
    struct env e;
    env_init(&e);
    struct tsink_prog p = {.status = 500};
    struct tsink *s = tsink_start(&p);
    char y[4096];
    snprintf(y, sizeof(y),
             HEAD "  inputs:\n    a: {eventSource: es, event: a}\n"
                  "  subscribers:\n"
                  "  - name: s\n    condition: a\n    sink: {uri: '%s/x'}\n"
                  "    delivery: {retry: 1, backoffDelay: PT0.01S}\n",
             "dr", tsink_url(s));
    env_apply(&e, y);
    pub(&e, "default-es-a", "z1");
    wait_acked(&e, "dr", 1);
    assert_int_equal(sub_counter(&e, "ofe_trigger_dropped_total", "dr", "s"), 1);
    assert_int_equal(tsink_count(s), 2);
    usleep(300 * 1000); /* acked: nothing comes again */
    assert_int_equal(tsink_count(s), 2);
    env_fini(&e);
    tsink_stop(s);
}

static void test_dead_letter_down_redelivers(void **state)
{
    struct env e;
    env_init(&e);
    struct tsink_prog p = {.status = 503}, pd = {.status = 503};
    struct tsink *s = tsink_start(&p), *dls = tsink_start(&pd);
    char y[4096];
    snprintf(y, sizeof(y),
             HEAD "  inputs:\n    a: {eventSource: es, event: a}\n"
                  "  subscribers:\n"
                  "  - name: s\n    condition: a\n    sink: {uri: '%s/x'}\n"
                  "    deadLetterSink: {uri: '%s/dead'}\n"
                  "    delivery: {retry: 0}\n",
             "dd", tsink_url(s), tsink_url(dls));
    env_apply(&e, y);
    pub(&e, "default-es-a", "w1");
    /* The dead-letter sink fails too: the message is given back... */
    uint64_t t0 = now_ms();
    while (counter(&e, "ofe_trigger_redelivered_total", "dd", NULL, NULL) < 1) {
        assert_true(now_ms() - t0 < 20000);
        usleep(2000);
    }
    assert_int_equal(counter(&e, "ofe_trigger_acked_total", "dd", NULL, NULL), 0);
    /* ...and comes again; once the dead-letter sink works, it lands there. */
    tsink_set(dls, &(struct tsink_prog){.status = 200});
    wait_acked(&e, "dd", 1);
    assert_true(tsink_count(s) >= 2);
    assert_int_equal(sub_counter(&e, "ofe_trigger_deadlettered_total", "dd", "s"), 1);
    struct tsink_rec r;
    assert_true(tsink_get(dls, tsink_count(dls) - 1, &r));
    assert_int_equal(r.status, 200);
    assert_string_equal(ofe_ce_get_str(r.ev, "id"), "w1");
    ofe_ce_unref(r.ev);
    env_fini(&e);
    tsink_stop(s);
    tsink_stop(dls);
}

/* ---- concurrency, ordering, back-pressure ---------------------------------- */

static void test_concurrency(void **state)
{
    struct env e;
    env_init(&e);
    struct tsink_prog p = {.delay_ms = 60};
    struct tsink *s = tsink_start(&p);
    char y[4096];
    snprintf(y, sizeof(y),
             HEAD "  inputs:\n    a: {eventSource: es, event: a}\n"
                  "  subscribers:\n"
                  "  - {name: s, condition: a, concurrency: 2, sink: {uri: '%s/c'}}\n",
             "cc", tsink_url(s));
    env_apply(&e, y);
    for (int i = 0; i < 10; i++) {
        char id[16];
        snprintf(id, sizeof(id), "c%d", i);
        pub(&e, "default-es-a", id);
    }
    wait_acked(&e, "cc", 10);
    assert_int_equal(tsink_count(s), 10);
    assert_int_equal(tsink_max_inflight(s), 2);
    env_fini(&e);
    tsink_stop(s);
}

static void test_ordering(void **state)
{
    struct env e;
    env_init(&e);
    struct tsink_prog p = {.delay_ms = 15};
    struct tsink *s = tsink_start(&p);
    char y[4096];
    snprintf(y, sizeof(y),
             HEAD "  inputs:\n    a: {eventSource: es, event: a}\n"
                  "  subscribers:\n"
                  "  - {name: s, condition: a, ordering: ordered, concurrency: 3, sink: {uri: "
                  "'%s/o'}}\n",
             "or", tsink_url(s));
    env_apply(&e, y);
    const int per = 8, keys = 4;
    for (int i = 0; i < per; i++)
        for (int k = 0; k < keys; k++) {
            char id[32], key[8];
            snprintf(id, sizeof(id), "k%d-%d", k, i);
            snprintf(key, sizeof(key), "k%d", k);
            struct ofe_ce *ev = mkev(id, NULL, NULL);
            assert_int_equal(ofe_ce_set_str(ev, "partitionkey", OFE_CE_T_STRING, key, NULL, 0), 0);
            pub_ev(&e, "default-es-a", ev);
        }
    wait_acked(&e, "or", (uint64_t)(per * keys));
    assert_int_equal(tsink_max_inflight_per_key(s), 1);
    assert_true(tsink_max_inflight(s) <= 3);
    assert_true(tsink_max_inflight(s) >= 2); /* keys do run side by side */
    int next[4] = {0};
    struct tsink_rec r;
    for (unsigned i = 0; tsink_get(s, i, &r); i++) {
        int k, n;
        assert_int_equal(sscanf(ofe_ce_get_str(r.ev, "id"), "k%d-%d", &k, &n), 2);
        assert_int_equal(n, next[k]); /* in order per key */
        next[k]++;
        ofe_ce_unref(r.ev);
    }
    for (int k = 0; k < keys; k++)
        assert_int_equal(next[k], per);
    env_fini(&e);
    tsink_stop(s);
}

static void test_ordering_no_key(void **state)
{
    struct env e;
    env_init(&e);
    struct tsink_prog p = {.delay_ms = 10};
    struct tsink *s = tsink_start(&p);
    char y[4096];
    snprintf(y, sizeof(y),
             HEAD "  inputs:\n    a: {eventSource: es, event: a}\n"
                  "  subscribers:\n"
                  "  - {name: s, condition: a, ordering: ordered, concurrency: 8, sink: {uri: "
                  "'%s/o'}}\n",
             "onk", tsink_url(s));
    env_apply(&e, y);
    for (int i = 0; i < 12; i++) {
        char id[16];
        snprintf(id, sizeof(id), "n%02d", i);
        pub(&e, "default-es-a", id);
    }
    wait_acked(&e, "onk", 12);
    /* Without partitionkey all events share one key: one at a time. */
    assert_int_equal(tsink_max_inflight(s), 1);
    char ids[512];
    ids_on(s, "/o", ids, sizeof(ids));
    assert_string_equal(ids, "n00,n01,n02,n03,n04,n05,n06,n07,n08,n09,n10,n11");
    env_fini(&e);
    tsink_stop(s);
}

static void test_backpressure(void **state)
{
    struct env e;
    env_init(&e);
    trg_runtime_destroy(e.rt);
    env_runtime(&e, 10000, 8); /* max_inflight 8 */
    struct tsink_prog p = {.delay_ms = 40};
    struct tsink *s = tsink_start(&p);
    char y[4096];
    snprintf(y, sizeof(y),
             HEAD "  inputs:\n    a: {eventSource: es, event: a}\n"
                  "  subscribers:\n"
                  "  - {name: s, condition: a, concurrency: 2, sink: {uri: '%s/b'}}\n",
             "bp", tsink_url(s));
    env_apply(&e, y);
    for (int i = 0; i < 40; i++) {
        char id[16];
        snprintf(id, sizeof(id), "b%d", i);
        pub(&e, "default-es-a", id);
    }
    const struct trg_trigger *t = trg_runtime_instance(e.rt, "default", "bp");
    assert_non_null(t);
    const char *ls[] = {"trigger", "default/bp", "subscriber", "s", NULL};
    struct ofe_gauge *queued = ofe_metrics_gauge(e.m, "ofe_trigger_queued", "", ls);
    double max_queued = 0;
    unsigned max_held = 0;
    uint64_t t0 = now_ms();
    while (counter(&e, "ofe_trigger_acked_total", "bp", NULL, NULL) < 40) {
        assert_true(now_ms() - t0 < 20000);
        unsigned h = ofe_sub_inflight(t->sub);
        if (h > max_held)
            max_held = h;
        if (ofe_gauge_get(queued) > max_queued)
            max_queued = ofe_gauge_get(queued);
        usleep(1000);
    }
    /* The bus hands out no more than 8: the rest waits on the bus. */
    assert_true(max_held <= 8);
    assert_true(max_held >= 4);
    assert_true(max_queued <= 6);
    assert_int_equal(tsink_count(s), 40);
    env_fini(&e);
    tsink_stop(s);
}

/* ---- re-publish, replies, loop guard ------------------------------------------ */

static void test_republish_reply_loop_guard(void **state)
{
    struct env e;
    env_init(&e);
    struct tsink_prog p = {.reply_type = "pong"};
    struct tsink *s = tsink_start(&p);
    char y[4096];
    snprintf(y, sizeof(y),
             HEAD "  inputs:\n    a: {eventSource: es, event: a}\n"
                  "  subscribers:\n"
                  "  - {name: chain, condition: a, topic: next}\n"
                  "  - {name: fn, condition: a, sink: {uri: '%s/fn'}, replyTopic: replies}\n",
             "rp", tsink_url(s));
    env_apply(&e, y);
    pub(&e, "default-es-a", "p1");
    wait_acked(&e, "rp", 1);
    struct ofe_ce *got[64];
    assert_int_equal(collect(&e, "next", 1, got), 1);
    assert_string_equal(ofe_ce_get_str(got[0], "id"), "p1");
    const struct ofe_ce_attr *ttl = ofe_ce_get(got[0], TRG_TTL_EXT, strlen(TRG_TTL_EXT));
    assert_non_null(ttl);
    assert_int_equal(ttl->type, OFE_CE_T_INTEGER);
    assert_int_equal(ttl->ival, TRG_TTL_DEFAULT - 1);
    ofe_ce_unref(got[0]);
    assert_int_equal(collect(&e, "replies", 1, got), 1);
    assert_string_equal(ofe_ce_get_str(got[0], "id"), "reply-p1");
    assert_string_equal(ofe_ce_get_str(got[0], "type"), "pong");
    ttl = ofe_ce_get(got[0], TRG_TTL_EXT, strlen(TRG_TTL_EXT));
    assert_non_null(ttl);
    assert_int_equal(ttl->ival, TRG_TTL_DEFAULT - 1);
    ofe_ce_unref(got[0]);

    /* An event whose guard is spent goes to the sink, but neither it nor
     * its reply goes back on the bus. */
    struct ofe_ce *ev = mkev("p2", NULL, NULL);
    assert_int_equal(ofe_ce_set_int(ev, TRG_TTL_EXT, 0, NULL, 0), 0);
    pub_ev(&e, "default-es-a", ev);
    ev = mkev("p3", NULL, NULL);
    assert_int_equal(ofe_ce_set_int(ev, TRG_TTL_EXT, 3, NULL, 0), 0);
    pub_ev(&e, "default-es-a", ev);
    wait_acked(&e, "rp", 3);
    assert_int_equal(sub_counter(&e, "ofe_trigger_loop_guard_total", "rp", "chain"), 1);
    assert_int_equal(sub_counter(&e, "ofe_trigger_loop_guard_total", "rp", "fn"), 1);
    assert_int_equal(sub_counter(&e, "ofe_trigger_delivered_total", "rp", "fn"), 3);
    assert_int_equal(sub_counter(&e, "ofe_trigger_republished_total", "rp", "chain"), 2);
    assert_int_equal(sub_counter(&e, "ofe_trigger_replies_total", "rp", "fn"), 2);
    /* The checker group read p1 already: only p3 is new (p2 never came). */
    assert_int_equal(collect(&e, "next", 1, got), 1);
    assert_string_equal(ofe_ce_get_str(got[0], "id"), "p3");
    assert_int_equal(ofe_ce_get(got[0], TRG_TTL_EXT, strlen(TRG_TTL_EXT))->ival, 2);
    ofe_ce_unref(got[0]);
    env_fini(&e);
    tsink_stop(s);
}

/* ---- reload, drain --------------------------------------------------------- */

static void test_reload(void **state)
{
    struct env e;
    env_init(&e);
    struct tsink_prog p = {.delay_first = 1, .delay_first_ms = 800};
    struct tsink *s = tsink_start(&p);
    const char *u = tsink_url(s);
    char y1[4096], y2[4096], y3[4096];
    const char *fmt_r1 = HEAD "  inputs:\n    a: {eventSource: es, event: a}\n"
                              "  subscribers:\n  - {name: s, condition: a, sink: {uri: '%s/r1'}}\n";
    char r1[1024], r2a[1024], r2b[1024], r3[1024];
    snprintf(r1, sizeof(r1), fmt_r1, "r1", u);
    snprintf(r2a, sizeof(r2a),
             HEAD "  inputs:\n    a: {eventSource: es, event: b}\n"
                  "  subscribers:\n  - {name: s, condition: a, sink: {uri: '%s/r2'}}\n",
             "r2", u);
    snprintf(r2b, sizeof(r2b),
             HEAD "  inputs:\n    a: {eventSource: es, event: b}\n"
                  "  subscribers:\n  - {name: s, condition: a, filter: \"type = 't'\", sink: {uri: "
                  "'%s/r2'}}\n",
             "r2", u);
    snprintf(r3, sizeof(r3),
             HEAD "  inputs:\n    a: {eventSource: es, event: c}\n"
                  "  subscribers:\n  - {name: s, condition: a, sink: {uri: '%s/r3'}}\n",
             "r3", u);
    snprintf(y1, sizeof(y1), "%s---\n%s", r1, r2a);
    snprintf(y2, sizeof(y2), "%s---\n%s---\n%s", r2b, r1, r3); /* order changed too */
    snprintf(y3, sizeof(y3), "%s---\n%s", r3, r1);
    env_apply(&e, y1);
    assert_int_equal(trg_runtime_count(e.rt), 2);
    const void *i1 = trg_runtime_instance(e.rt, "default", "r1");
    const void *i2 = trg_runtime_instance(e.rt, "default", "r2");
    assert_non_null(i1);
    /* r1 is delivering (the sink holds the answer 800 ms) during the reload. */
    pub(&e, "default-es-a", "slow");
    assert_true(tsink_wait(s, 1, 5000));
    env_apply(&e, y2);
    assert_int_equal(trg_runtime_count(e.rt), 3);
    assert_ptr_equal(trg_runtime_instance(e.rt, "default", "r1"), i1); /* untouched */
    assert_true(trg_runtime_instance(e.rt, "default", "r2") != i2);    /* rebuilt */
    assert_non_null(trg_runtime_instance(e.rt, "default", "r3"));
    wait_acked(&e, "r1", 1);
    assert_int_equal(tsink_count(s), 1); /* delivered once: never interrupted */
    assert_int_equal(counter(&e, "ofe_trigger_redelivered_total", "r1", NULL, NULL), 0);
    pub(&e, "default-es-b", "to-r2");
    pub(&e, "default-es-c", "to-r3");
    wait_acked(&e, "r2", 1);
    wait_acked(&e, "r3", 1);
    env_apply(&e, y3);
    assert_int_equal(trg_runtime_count(e.rt), 2);
    assert_null(trg_runtime_instance(e.rt, "default", "r2"));
    assert_ptr_equal(trg_runtime_instance(e.rt, "default", "r1"), i1);

    /* A changed r1 that cannot run (its new bus cannot be opened): the
     * running version stays, and stays ready. */
    char y4[4096], bad[1024], err[512];
    snprintf(bad, sizeof(bad),
             "apiVersion: events.openfunction.io/v1alpha1\nkind: EventBus\nmetadata: {name: k}\n"
             "spec:\n  kafka: {brokers: '127.0.0.1:1'}\n---\n" HEAD
             "  inputs:\n    a: {eventSource: es, event: a}\n"
             "  subscribers:\n  - {name: s, condition: a, sink: {uri: '%s/r1'}}\n",
             "r1", u);
    /* eventBus: k instead of default */
    char *eb = strstr(bad, "eventBus: default");
    assert_non_null(eb);
    memcpy(eb, "eventBus: k      ", 17);
    snprintf(y4, sizeof(y4), "%s---\n%s", r3, bad);
    assert_int_not_equal(trg_runtime_apply(e.rt, load(y4), err, sizeof(err)), 0);
    assert_ptr_equal(trg_runtime_instance(e.rt, "default", "r1"), i1);
    assert_int_equal(trg_runtime_count(e.rt), 2);
    assert_true(trg_runtime_ready(e.rt, err, sizeof(err)));
    pub(&e, "default-es-a", "still");
    wait_acked(&e, "r1", 2);
    env_fini(&e);
    tsink_stop(s);
}

static void test_drain_and_give_back(void **state)
{
    struct env e;
    env_init(&e);
    struct tsink_prog p = {.delay_ms = 200};
    struct tsink *s = tsink_start(&p);
    char y[4096];
    snprintf(y, sizeof(y),
             HEAD "  inputs:\n    a: {eventSource: es, event: a}\n"
                  "  subscribers:\n  - {name: s, condition: a, sink: {uri: '%s/d'}}\n",
             "dn", tsink_url(s));
    env_apply(&e, y);
    for (int i = 0; i < 5; i++) {
        char id[16];
        snprintf(id, sizeof(id), "d%d", i);
        pub(&e, "default-es-a", id);
    }
    assert_true(tsink_wait(s, 5, 5000));
    /* Drain: everything in flight completes before the runtime is gone. */
    trg_runtime_destroy(e.rt);
    e.rt = NULL;
    assert_int_equal(counter(&e, "ofe_trigger_acked_total", "dn", NULL, NULL), 5);

    /* Forced: a drain shorter than the sink's answer gives the messages
     * back; the next runtime gets them again. */
    tsink_set(s, &(struct tsink_prog){.delay_first = 12, .delay_first_ms = 2000});
    env_runtime(&e, 100, 64);
    snprintf(y, sizeof(y),
             HEAD "  inputs:\n    a: {eventSource: es, event: a}\n"
                  "  subscribers:\n  - {name: s, condition: a, sink: {uri: '%s/d'}}\n",
             "dn2", tsink_url(s));
    env_apply(&e, y);
    pub(&e, "default-es-a", "g1");
    pub(&e, "default-es-a", "g2");
    /* dn2 starts at the oldest event: d0..d4 too (its own group). */
    assert_true(tsink_wait(s, 12, 5000));
    trg_runtime_destroy(e.rt);
    e.rt = NULL;
    assert_int_equal(counter(&e, "ofe_trigger_acked_total", "dn2", NULL, NULL), 0);
    env_runtime(&e, 10000, 64);
    env_apply(&e, y);
    wait_acked(&e, "dn2", 7);
    assert_true(tsink_count(s) >= 19);
    env_fini(&e);
    tsink_stop(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ready_after_apply),
        cmocka_unit_test(test_condition_and_window),
        cmocka_unit_test(test_condition_operators),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_retries_backoff),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_400_dead_letters),
        cmocka_unit_test(test_exhausted_dead_letters),
        cmocka_unit_test(test_timeout_retried),
        cmocka_unit_test(test_dropped_without_dead_letter),
        cmocka_unit_test(test_dead_letter_down_redelivers),
        cmocka_unit_test(test_concurrency),
        cmocka_unit_test(test_ordering),
        cmocka_unit_test(test_ordering_no_key),
        cmocka_unit_test(test_backpressure),
        cmocka_unit_test(test_republish_reply_loop_guard),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_drain_and_give_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
