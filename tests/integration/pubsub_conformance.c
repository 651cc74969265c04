/* The pub/sub conformance suite: the same checks against every backend,
 * each through a real server started by the backend's fixture
 * (pubsub_fixture.h). Build: one binary per backend,
 * pubsub_conformance_<backend> (tests/integration/pubsub.cmake).
 *
 * Usage: pubsub_conformance_<backend> [--list] [CHECK...]
 * Runs every check (or the named ones) and prints one line per check:
 * PASS, FAIL with the reason, or SKIP with the fixture's reason. Exit
 * status: 0 when nothing failed, 1 when a check failed, 77 when the
 * backend's server is not installed (ctest reports the test as skipped).
 *
 * Every wait is bounded; no check asserts on timing. The kill-member check
 * runs a member in a child process: this binary re-executed with
 * --child-hold (never a bare fork of a threaded process). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ofe/err.h"
#include "ofe/log.h"
#include "ofe/pubsub.h"
#include "pubsub_fixture.h"

extern char **environ;

static const struct pubsub_fixture *FX = &pubsub_fixture;
static void *ST;           /* the fixture's state */
static char FAILMSG[2048]; /* why the running check failed */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void msleep(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

__attribute__((format(printf, 2, 3))) static int fail_at(int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(FAILMSG, sizeof(FAILMSG), "line %d: ", line);
    vsnprintf(FAILMSG + n, sizeof(FAILMSG) - (size_t)n, fmt, ap);
    va_end(ap);
    return 1;
}

/* EXPECT(cond, fmt, ...): on failure records the reason and jumps to out
 * (every check has one cleanup label). */
#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            rc = fail_at(__LINE__, __VA_ARGS__);                                                   \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

enum { PASS = 0, FAILED = 1, SKIPPED = 2 };

static const char *SKIPMSG;
static int skip_for(enum pf_cap cap)
{
    if (!FX->lacks[cap])
        return PASS;
    SKIPMSG = FX->lacks[cap];
    return SKIPPED;
}

/* ---- events ------------------------------------------------------------- */

static void b64(const unsigned char *in, size_t n, char *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        out[o++] = t[v >> 18 & 63];
        out[o++] = t[v >> 12 & 63];
        out[o++] = i + 1 < n ? t[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? t[v & 63] : '=';
    }
    out[o] = '\0';
}

#define SETS(ev, name, type, val)                                                                  \
    do {                                                                                           \
        char e_[256];                                                                              \
        if (ofe_ce_set_str(ev, name, type, val, e_, sizeof(e_))) {                                 \
            fprintf(stderr, "event: %s\n", e_);                                                    \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Event i of a check: every context attribute, an extension of each type,
 * and data that is binary (even i), JSON (odd i) or absent (every 50th). */
static struct ofe_ce *make_event(const char *tag, size_t i, size_t data_len)
{
    struct ofe_ce *ev = ofe_ce_new();
    char v[512], err[256];
    snprintf(v, sizeof(v), "%s-%zu", tag, i);
    SETS(ev, "id", 0, v);
    SETS(ev, "specversion", 0, "1.0");
    SETS(ev, "source", 0, "/conformance/source?x=1");
    snprintf(v, sizeof(v), "io.ofevents.conformance.kind%zu", i % 5);
    SETS(ev, "type", 0, v);
    if (i % 3) {
        snprintf(v, sizeof(v), "subject %zu with spaces/and/slashes", i);
        SETS(ev, "subject", 0, v);
    }
    snprintf(v, sizeof(v), "2024-02-29T23:59:%02zu.%06zuZ", i % 60, i % 1000000);
    SETS(ev, "time", 0, v);
    if (i % 4 == 0) {
        snprintf(v, sizeof(v), "https://example.com/schemas/%zu.json", i);
        SETS(ev, "dataschema", 0, v);
    }
    snprintf(v, sizeof(v), "h\xc3\xa9llo \"w\xc3\xb6rld\" %%20 & = , ; %zu", i);
    SETS(ev, "extstr", OFE_CE_T_STRING, v);
    if (ofe_ce_set_int(ev, "extint", (int32_t)i - 5000, err, sizeof(err)) ||
        ofe_ce_set_bool(ev, "extbool", i % 2 == 0, err, sizeof(err))) {
        fprintf(stderr, "event: %s\n", err);
        abort();
    }
    unsigned char raw[5] = {(unsigned char)i, 0, 0xff, (unsigned char)(i >> 8), '\n'};
    b64(raw, 1 + i % 5, v);
    SETS(ev, "extbin", OFE_CE_T_BINARY, v);
    snprintf(v, sizeof(v), "urn:ofevents:conformance:%zu", i);
    SETS(ev, "exturi", OFE_CE_T_URI, v);
    snprintf(v, sizeof(v), "../relative/%zu#frag", i);
    SETS(ev, "exturiref", OFE_CE_T_URIREF, v);
    SETS(ev, "extts", OFE_CE_T_TIMESTAMP, "1985-04-12T23:20:50.52+01:00");
    snprintf(v, sizeof(v), "key-%zu", i % 16);
    SETS(ev, "partitionkey", OFE_CE_T_STRING, v);
    if (data_len) {
        unsigned char *d = malloc(data_len);
        uint32_t x = (uint32_t)i * 2654435761u + 1;
        for (size_t k = 0; k < data_len; k++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            d[k] = (unsigned char)x;
        }
        SETS(ev, "datacontenttype", 0, "application/octet-stream");
        ofe_ce_set_data(ev, d, data_len);
        free(d);
    } else if (i % 50 == 0) {
        /* no data at all */
    } else if (i % 2 == 0) {
        size_t n = (i * 131) % 3000;
        unsigned char *d = malloc(n + 1);
        uint32_t x = (uint32_t)i * 2654435761u + 7;
        for (size_t k = 0; k < n; k++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            d[k] = (unsigned char)x;
        }
        if (n)
            d[0] = 0; /* a NUL first: binary for sure */
        SETS(ev, "datacontenttype", 0, "application/octet-stream");
        ofe_ce_set_data(ev, d, n);
        free(d);
    } else {
        char j[300];
        int n = snprintf(j, sizeof(j),
                         "{\"n\":%zu,\"text\":\"caf\xc3\xa9 \\\"quoted\\\"\",\"list\":[1,2.5,true,"
                         "null],\"nested\":{\"k\":\"v\"}}",
                         i);
        if (i % 4 == 1)
            SETS(ev, "datacontenttype", 0, "application/json");
        ofe_ce_set_data(ev, j, (size_t)n);
    }
    if (ofe_ce_validate(ev, err, sizeof(err))) {
        fprintf(stderr, "generated event %zu is invalid: %s\n", i, err);
        abort();
    }
    return ev;
}

/* ---- receiving ---------------------------------------------------------- */

enum { ACT_ACK = 0, ACT_HOLD, ACT_NACK_FIRST };

struct coll {
    pthread_mutex_t lock;
    const char *tag;
    size_t n;
    struct ofe_ce **orig; /* expected events by index, or NULL */
    uint32_t *count;      /* deliveries per index */
    uint32_t *redeliv;    /* largest ofe_msg_redeliveries seen per index */
    size_t distinct, total, dups, mismatches, foreign, invalid;
    char mismatch[600];
    char invalid_err[600];
    size_t invalid_len;
    int action;
    struct ofe_msg **held;
    size_t nheld;
    /* order per partitionkey: last index seen per key, -1 none */
    long last_by_key[16];
    size_t order_errors;
    char order_msg[300];
};

static void coll_init(struct coll *c, const char *tag, size_t n, struct ofe_ce **orig, int action)
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    c->tag = tag;
    c->n = n;
    c->orig = orig;
    c->count = calloc(n ? n : 1, sizeof(uint32_t));
    c->redeliv = calloc(n ? n : 1, sizeof(uint32_t));
    c->held = calloc(n ? n : 1, sizeof(*c->held));
    c->action = action;
    for (int k = 0; k < 16; k++)
        c->last_by_key[k] = -1;
}

static void coll_fini(struct coll *c)
{
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->nheld; i++)
        ofe_msg_ack(c->held[i]);
    c->nheld = 0;
    pthread_mutex_unlock(&c->lock);
    free(c->count);
    free(c->redeliv);
    free(c->held);
    pthread_mutex_destroy(&c->lock);
}

/* Index of an event of this check ("<tag>-<i>"), or -1. */
static long ev_index(const struct coll *c, const struct ofe_ce *ev)
{
    const char *id = ofe_ce_get_str(ev, "id");
    size_t tl = strlen(c->tag);
    if (!id || strncmp(id, c->tag, tl) || id[tl] != '-')
        return -1;
    char *end;
    long i = strtol(id + tl + 1, &end, 10);
    return *end || i < 0 || (size_t)i >= c->n ? -1 : i;
}

static void on_msg(struct ofe_msg *m, void *opaque)
{
    struct coll *c = opaque;
    struct ofe_ce *ev = ofe_msg_event(m);
    pthread_mutex_lock(&c->lock);
    c->total++;
    if (!ev) {
        c->invalid++;
        snprintf(c->invalid_err, sizeof(c->invalid_err), "%s",
                 ofe_msg_error(m) ? ofe_msg_error(m) : "");
        ofe_msg_payload(m, &c->invalid_len);
        pthread_mutex_unlock(&c->lock);
        ofe_msg_ack(m);
        return;
    }
    long i = ev_index(c, ev);
    if (i < 0) {
        c->foreign++;
        pthread_mutex_unlock(&c->lock);
        ofe_msg_ack(m);
        return;
    }
    uint32_t seen = c->count[i]++;
    if (seen == 0) {
        c->distinct++;
        if (c->orig && !ofe_ce_equal(c->orig[i], ev) && c->mismatches++ == 0) {
            struct ofe_buf a = OFE_BUF_INIT, b = OFE_BUF_INIT;
            char e[100];
            ofe_ce_json_encode(c->orig[i], &a, e, sizeof(e));
            ofe_ce_json_encode(ev, &b, e, sizeof(e));
            snprintf(c->mismatch, sizeof(c->mismatch),
                     "event %ld differs:\n sent %.250s\n got  %.250s", i, a.data ? a.data : "?",
                     b.data ? b.data : "?");
            ofe_buf_fini(&a);
            ofe_buf_fini(&b);
        }
        const char *pk = ofe_ce_get_str(ev, "partitionkey");
        int k = pk && !strncmp(pk, "key-", 4) ? atoi(pk + 4) : -1;
        if (k >= 0 && k < 16) {
            if (c->last_by_key[k] > i && c->order_errors++ == 0)
                snprintf(c->order_msg, sizeof(c->order_msg),
                         "key-%d: event %ld arrived after event %ld", k, i, c->last_by_key[k]);
            if (c->last_by_key[k] < i)
                c->last_by_key[k] = i;
        }
    } else if (c->action == ACT_ACK) {
        c->dups++;
    }
    uint32_t red = ofe_msg_redeliveries(m);
    if (red > c->redeliv[i])
        c->redeliv[i] = red;
    int act = c->action;
    if (act == ACT_HOLD) {
        c->held[c->nheld++] = m;
        pthread_mutex_unlock(&c->lock);
        return;
    }
    pthread_mutex_unlock(&c->lock);
    if (act == ACT_NACK_FIRST && seen == 0)
        ofe_msg_nack(m, 100);
    else
        ofe_msg_ack(m);
}

static size_t coll_distinct(struct coll *c)
{
    pthread_mutex_lock(&c->lock);
    size_t d = c->distinct;
    pthread_mutex_unlock(&c->lock);
    return d;
}

/* Waits until c has seen want distinct events; returns what it saw. */
static size_t wait_distinct(struct coll *c, size_t want, unsigned timeout_ms)
{
    uint64_t end = now_ms() + timeout_ms;
    size_t d;
    while ((d = coll_distinct(c)) < want && now_ms() < end)
        msleep(10);
    return d;
}

/* ---- publishing --------------------------------------------------------- */

struct pubstat {
    pthread_mutex_t lock;
    size_t done, ok, failed;
    unsigned char *confirmed; /* per index */
    char first_err[600];
};

struct pubref {
    struct pubstat *st;
    size_t i;
};

static void pub_done(void *opaque, int err, const char *msg)
{
    struct pubref *r = opaque;
    struct pubstat *st = r->st;
    pthread_mutex_lock(&st->lock);
    st->done++;
    if (err) {
        if (st->failed++ == 0)
            snprintf(st->first_err, sizeof(st->first_err), "%s (%s)", msg, ofe_strerror(err));
    } else {
        st->ok++;
        st->confirmed[r->i] = 1;
    }
    pthread_mutex_unlock(&st->lock);
}

static void pubstat_init(struct pubstat *st, size_t n)
{
    memset(st, 0, sizeof(*st));
    pthread_mutex_init(&st->lock, NULL);
    st->confirmed = calloc(n ? n : 1, 1);
}

static size_t pubstat_done(struct pubstat *st)
{
    pthread_mutex_lock(&st->lock);
    size_t d = st->done;
    pthread_mutex_unlock(&st->lock);
    return d;
}

/* Publishes evs[from..to) asynchronously (retrying while the bus says
 * EAGAIN), pacing pause_us between publishes. Returns 0, or -1 with
 * errstr when a publish was refused at once. */
static int publish_range(struct ofe_bus *b, const char *topic, struct ofe_ce **evs,
                         struct pubref *refs, size_t from, size_t to, unsigned pause_us,
                         char *errstr, size_t errstr_size)
{
    for (size_t i = from; i < to; i++) {
        uint64_t end = now_ms() + 60000;
        int rc;
        while ((rc = ofe_bus_publish(b, topic, evs[i], pub_done, &refs[i], errstr, errstr_size)) ==
                   OFE_EAGAIN &&
               now_ms() < end)
            msleep(1);
        if (rc)
            return -1;
        if (pause_us)
            usleep(pause_us);
    }
    return 0;
}

static bool wait_published(struct pubstat *st, size_t n, unsigned timeout_ms)
{
    uint64_t end = now_ms() + timeout_ms;
    while (pubstat_done(st) < n && now_ms() < end)
        msleep(5);
    return pubstat_done(st) >= n;
}

/* ---- helpers ------------------------------------------------------------ */

static char RUNID[32];

static void names(const char *check, char *topic, size_t tsz, char *group, size_t gsz)
{
    snprintf(topic, tsz, "conf-%s-%s", check, RUNID);
    if (group)
        snprintf(group, gsz, "grp-%s-%s", check, RUNID);
}

static int open_bus(const struct pf_open_opts *o, struct ofe_bus **b)
{
    char err[600];
    struct pf_open_opts dflt = {0};
    int rc = FX->open(ST, o ? o : &dflt, b, err, sizeof(err));
    if (rc)
        return fail_at(__LINE__, "open: %s (%s)", err, ofe_strerror(rc));
    return 0;
}

static int prepare(const char *topic)
{
    char err[600];
    if (FX->topic_prepare && FX->topic_prepare(ST, topic, err, sizeof(err)) != 0)
        return fail_at(__LINE__, "topic_prepare %s: %s", topic, err);
    return 0;
}

static int subscribe(struct ofe_bus *b, const char *topic, const char *group, const char *member,
                     unsigned max_inflight, struct coll *c, struct ofe_sub **out)
{
    const char *topics[] = {topic};
    struct ofe_sub_opts so = {
        .group = group,
        .consumer = member,
        .topics = topics,
        .ntopics = 1,
        .max_inflight = max_inflight,
        .start = OFE_START_OLDEST,
        .on_msg = on_msg,
        .opaque = c,
    };
    char err[600];
    int rc = ofe_bus_subscribe(b, &so, out, err, sizeof(err));
    if (rc)
        return fail_at(__LINE__, "subscribe: %s (%s)", err, ofe_strerror(rc));
    return 0;
}

/* Waits until every bus says ready (subscriptions established), then the
 * fixture's settle time. */
static int wait_ready(struct ofe_bus **buses, size_t n, unsigned timeout_ms)
{
    uint64_t end = now_ms() + timeout_ms;
    char why[600] = "";
    for (size_t i = 0; i < n; i++) {
        while (!ofe_bus_ready(buses[i], why, sizeof(why))) {
            if (now_ms() > end)
                return fail_at(__LINE__, "bus not ready after %u ms: %s", timeout_ms, why);
            msleep(10);
        }
    }
    if (FX->settle_ms)
        msleep(FX->settle_ms);
    return 0;
}

static size_t first_missing(const struct coll *c, const unsigned char *only)
{
    for (size_t i = 0; i < c->n; i++)
        if (!c->count[i] && (!only || only[i]))
            return i;
    return (size_t)-1;
}

/* ---- checks ------------------------------------------------------------- */

#define N_ROUNDTRIP 10000

/* 10,000 events with every attribute kind, extensions of each type, binary
 * and JSON data: byte-identical, attribute-identical after the trip. */
static int check_roundtrip(void)
{
    int rc = PASS;
    char topic[128], group[128], err[600];
    names("roundtrip", topic, sizeof(topic), group, sizeof(group));
    struct ofe_ce **evs = calloc(N_ROUNDTRIP, sizeof(*evs));
    struct pubref *refs = calloc(N_ROUNDTRIP, sizeof(*refs));
    struct pubstat st;
    struct coll c;
    struct ofe_bus *pb = NULL, *sb = NULL;
    struct ofe_sub *sub = NULL;
    pubstat_init(&st, N_ROUNDTRIP);
    for (size_t i = 0; i < N_ROUNDTRIP; i++) {
        evs[i] = make_event("rt", i, 0);
        refs[i] = (struct pubref){&st, i};
    }
    coll_init(&c, "rt", N_ROUNDTRIP, evs, ACT_ACK);
    EXPECT(prepare(topic) == 0, "%s", FAILMSG);
    EXPECT(open_bus(NULL, &pb) == 0 && open_bus(NULL, &sb) == 0, "%s", FAILMSG);
    EXPECT(subscribe(sb, topic, group, "m1", 256, &c, &sub) == 0, "%s", FAILMSG);
    EXPECT(wait_ready((struct ofe_bus *[]){pb, sb}, 2, 15000) == 0, "%s", FAILMSG);
    EXPECT(publish_range(pb, topic, evs, refs, 0, N_ROUNDTRIP, 0, err, sizeof(err)) == 0,
           "publish refused: %s", err);
    EXPECT(wait_published(&st, N_ROUNDTRIP, 60000), "only %zu of %d publishes completed",
           pubstat_done(&st), N_ROUNDTRIP);
    EXPECT(st.ok == N_ROUNDTRIP, "%zu publishes failed; first: %s", st.failed, st.first_err);
    size_t got = wait_distinct(&c, N_ROUNDTRIP, 60000);
    msleep(200); /* let duplicates, if any, show */
    pthread_mutex_lock(&c.lock);
    size_t miss = first_missing(&c, NULL);
    pthread_mutex_unlock(&c.lock);
    EXPECT(got == N_ROUNDTRIP, "received %zu of %d events (first missing: %zu)", got, N_ROUNDTRIP,
           miss);
    EXPECT(c.mismatches == 0, "%zu events changed on the way; first: %s", c.mismatches, c.mismatch);
    EXPECT(c.dups == 0, "%zu duplicate deliveries without any failure", c.dups);
    EXPECT(c.invalid == 0 && c.foreign == 0, "%zu invalid and %zu foreign messages", c.invalid,
           c.foreign);
out:
    ofe_sub_close(sub);
    ofe_bus_close(sb, 5000);
    ofe_bus_close(pb, 5000);
    coll_fini(&c);
    for (size_t i = 0; i < N_ROUNDTRIP; i++)
        ofe_ce_unref(evs[i]);
    free(evs);
    free(refs);
    free(st.confirmed);
    return rc;
}

#define N_GROUPS 2000

/* Publishes n events of tag to topic through b and waits for every
 * confirmation. */
static int publish_all(struct ofe_bus *b, const char *topic, const char *tag, size_t n,
                       struct ofe_ce ***evs_out)
{
    struct ofe_ce **evs = calloc(n, sizeof(*evs));
    struct pubref *refs = calloc(n, sizeof(*refs));
    struct pubstat st;
    char err[600];
    int rc = 0;
    pubstat_init(&st, n);
    for (size_t i = 0; i < n; i++) {
        evs[i] = make_event(tag, i, 0);
        refs[i] = (struct pubref){&st, i};
    }
    if (publish_range(b, topic, evs, refs, 0, n, 0, err, sizeof(err)) != 0)
        rc = fail_at(__LINE__, "publish refused: %s", err);
    else if (!wait_published(&st, n, 60000))
        rc = fail_at(__LINE__, "only %zu of %zu publishes completed", pubstat_done(&st), n);
    else if (st.ok != n)
        rc = fail_at(__LINE__, "%zu publishes failed; first: %s", st.failed, st.first_err);
    if (rc || !evs_out) {
        /* publishes still running hold their own references */
        for (size_t i = 0; i < n; i++)
            ofe_ce_unref(evs[i]);
        free(evs);
    } else {
        *evs_out = evs;
    }
    if (!wait_published(&st, n, 1000)) {
        /* refs must outlive pending callbacks: leak them on this failure */
        return rc;
    }
    free(refs);
    free(st.confirmed);
    return rc;
}

/* Two consumers in one group split the events: none to both or neither. */
static int check_group_split(void)
{
    int rc = PASS;
    char topic[128], group[128];
    names("split", topic, sizeof(topic), group, sizeof(group));
    struct coll c1, c2;
    coll_init(&c1, "sp", N_GROUPS, NULL, ACT_ACK);
    coll_init(&c2, "sp", N_GROUPS, NULL, ACT_ACK);
    struct ofe_bus *pb = NULL, *b1 = NULL, *b2 = NULL;
    struct ofe_sub *s1 = NULL, *s2 = NULL;
    struct pf_open_opts o1 = {.client_id = "member-1"}, o2 = {.client_id = "member-2"};
    EXPECT(prepare(topic) == 0, "%s", FAILMSG);
    EXPECT(open_bus(NULL, &pb) == 0 && open_bus(&o1, &b1) == 0 && open_bus(&o2, &b2) == 0, "%s",
           FAILMSG);
    /* small windows so both members take turns */
    EXPECT(subscribe(b1, topic, group, "member-1", 8, &c1, &s1) == 0, "%s", FAILMSG);
    EXPECT(subscribe(b2, topic, group, "member-2", 8, &c2, &s2) == 0, "%s", FAILMSG);
    EXPECT(wait_ready((struct ofe_bus *[]){pb, b1, b2}, 3, 15000) == 0, "%s", FAILMSG);
    EXPECT(publish_all(pb, topic, "sp", N_GROUPS, NULL) == 0, "%s", FAILMSG);
    uint64_t end = now_ms() + 60000;
    while (coll_distinct(&c1) + coll_distinct(&c2) < N_GROUPS && now_ms() < end)
        msleep(10);
    msleep(300);
    pthread_mutex_lock(&c1.lock);
    pthread_mutex_lock(&c2.lock);
    size_t both = 0, neither = 0, first_both = 0, first_neither = 0;
    for (size_t i = 0; i < N_GROUPS; i++) {
        if (c1.count[i] && c2.count[i] && both++ == 0)
            first_both = i;
        if (!c1.count[i] && !c2.count[i] && neither++ == 0)
            first_neither = i;
    }
    size_t d1 = c1.distinct, d2 = c2.distinct, dups = c1.dups + c2.dups;
    pthread_mutex_unlock(&c2.lock);
    pthread_mutex_unlock(&c1.lock);
    printf("    split: member-1 %zu, member-2 %zu\n", d1, d2);
    EXPECT(neither == 0, "%zu events reached no member (first: %zu)", neither, first_neither);
    EXPECT(both == 0, "%zu events reached both members (first: %zu)", both, first_both);
    EXPECT(dups == 0, "%zu duplicate deliveries", dups);
    EXPECT(d1 > 0 && d2 > 0, "one member got everything (%zu / %zu): the group did not split", d1,
           d2);
out:
    ofe_sub_close(s1);
    ofe_sub_close(s2);
    ofe_bus_close(b1, 5000);
    ofe_bus_close(b2, 5000);
    ofe_bus_close(pb, 5000);
    coll_fini(&c1);
    coll_fini(&c2);
    return rc;
}

/* Two groups each get every event. */
static int check_two_groups(void)
{
    int rc = PASS;
    char topic[128], ga[128], gb[160];
    names("groups", topic, sizeof(topic), ga, sizeof(ga));
    snprintf(gb, sizeof(gb), "%s-b", ga);
    struct coll ca, cb;
    coll_init(&ca, "tg", N_GROUPS, NULL, ACT_ACK);
    coll_init(&cb, "tg", N_GROUPS, NULL, ACT_ACK);
    struct ofe_bus *pb = NULL, *sb = NULL;
    struct ofe_sub *sa = NULL, *sbb = NULL;
    EXPECT(prepare(topic) == 0, "%s", FAILMSG);
    EXPECT(open_bus(NULL, &pb) == 0 && open_bus(NULL, &sb) == 0, "%s", FAILMSG);
    EXPECT(subscribe(sb, topic, ga, NULL, 64, &ca, &sa) == 0, "%s", FAILMSG);
    EXPECT(subscribe(sb, topic, gb, NULL, 64, &cb, &sbb) == 0, "%s", FAILMSG);
    EXPECT(wait_ready((struct ofe_bus *[]){pb, sb}, 2, 15000) == 0, "%s", FAILMSG);
    EXPECT(publish_all(pb, topic, "tg", N_GROUPS, NULL) == 0, "%s", FAILMSG);
    size_t a = wait_distinct(&ca, N_GROUPS, 60000);
    size_t b = wait_distinct(&cb, N_GROUPS, 60000);
    msleep(200);
    EXPECT(a == N_GROUPS, "group A got %zu of %d events", a, N_GROUPS);
    EXPECT(b == N_GROUPS, "group B got %zu of %d events", b, N_GROUPS);
    EXPECT(ca.dups == 0 && cb.dups == 0, "duplicates: %zu in A, %zu in B", ca.dups, cb.dups);
out:
    ofe_sub_close(sa);
    ofe_sub_close(sbb);
    ofe_bus_close(sb, 5000);
    ofe_bus_close(pb, 5000);
    coll_fini(&ca);
    coll_fini(&cb);
    return rc;
}

/* A nacked event is delivered again (after the delay), and counted. */
static int check_nack(void)
{
    int rc = PASS;
    enum { N = 20 };
    char topic[128], group[128];
    names("nack", topic, sizeof(topic), group, sizeof(group));
    struct coll c;
    coll_init(&c, "nk", N, NULL, ACT_NACK_FIRST);
    struct ofe_bus *b = NULL;
    struct ofe_sub *s = NULL;
    EXPECT(prepare(topic) == 0, "%s", FAILMSG);
    EXPECT(open_bus(NULL, &b) == 0, "%s", FAILMSG);
    EXPECT(subscribe(b, topic, group, NULL, 64, &c, &s) == 0, "%s", FAILMSG);
    EXPECT(wait_ready(&b, 1, 15000) == 0, "%s", FAILMSG);
    EXPECT(publish_all(b, topic, "nk", N, NULL) == 0, "%s", FAILMSG);
    uint64_t end = now_ms() + 30000;
    size_t twice = 0;
    while (now_ms() < end) {
        pthread_mutex_lock(&c.lock);
        twice = 0;
        for (size_t i = 0; i < N; i++)
            twice += c.count[i] >= 2;
        pthread_mutex_unlock(&c.lock);
        if (twice == N)
            break;
        msleep(10);
    }
    msleep(300); /* acked after the second delivery: no third one */
    pthread_mutex_lock(&c.lock);
    size_t more = 0, uncounted = 0;
    for (size_t i = 0; i < N; i++) {
        more += c.count[i] > 2;
        uncounted += c.redeliv[i] == 0;
    }
    pthread_mutex_unlock(&c.lock);
    EXPECT(twice == N, "only %zu of %d nacked events came back", twice, N);
    EXPECT(more == 0, "%zu events came a third time after being acked", more);
    EXPECT(uncounted == 0, "%zu redelivered events had ofe_msg_redeliveries() == 0", uncounted);
out:
    ofe_sub_close(s);
    ofe_bus_close(b, 5000);
    coll_fini(&c);
    return rc;
}

/* Child mode: join group on topic, hold every message without acking,
 * print "held <id>" per message and "ready" after count of them; wait to
 * be killed. */
static int child_hold(const char *exported, const char *topic, const char *group, int count,
                      uint32_t redeliver_ms)
{
    void *st = NULL;
    if (FX->attach(exported, &st) != 0) {
        fprintf(stderr, "child: attach failed\n");
        return 1;
    }
    char id[64], err[600];
    snprintf(id, sizeof(id), "child-%d", (int)getpid());
    struct pf_open_opts o = {.client_id = id, .redeliver_ms = redeliver_ms};
    struct ofe_bus *b;
    if (FX->open(st, &o, &b, err, sizeof(err)) != 0) {
        fprintf(stderr, "child: open: %s\n", err);
        return 1;
    }
    struct coll c;
    coll_init(&c, "km", (size_t)count, NULL, ACT_HOLD);
    struct ofe_sub *s;
    const char *topics[] = {topic};
    struct ofe_sub_opts so = {.group = group,
                              .consumer = id,
                              .topics = topics,
                              .ntopics = 1,
                              .max_inflight = (unsigned)count,
                              .start = OFE_START_OLDEST,
                              .on_msg = on_msg,
                              .opaque = &c};
    if (ofe_bus_subscribe(b, &so, &s, err, sizeof(err)) != 0) {
        fprintf(stderr, "child: subscribe: %s\n", err);
        return 1;
    }
    size_t reported = 0;
    uint64_t end = now_ms() + 120000;
    while (now_ms() < end) {
        pthread_mutex_lock(&c.lock);
        while (reported < c.nheld) {
            printf("held %s\n", ofe_ce_get_str(ofe_msg_event(c.held[reported]), "id"));
            reported++;
        }
        pthread_mutex_unlock(&c.lock);
        if (reported == (size_t)count) {
            printf("ready\n");
            fflush(stdout);
            for (;;)
                pause(); /* until kill -9 */
        }
        fflush(stdout);
        msleep(5);
    }
    return 1;
}

static char SELF[4096];

/* A member in a child process takes events and is killed with SIGKILL
 * without acking them: another member of the group gets them. */
static int check_kill_member(void)
{
    int rc = skip_for(PF_CAP_KILL_MEMBER);
    if (rc)
        return rc;
    enum { N = 5 };
    const uint32_t redeliver_ms = 1000;
    char topic[128], group[128], cnt[16], red[16];
    names("kill", topic, sizeof(topic), group, sizeof(group));
    struct coll c;
    coll_init(&c, "km", N, NULL, ACT_ACK);
    struct ofe_bus *pb = NULL, *b = NULL;
    struct ofe_sub *s = NULL;
    pid_t pid = -1;
    int pfd[2] = {-1, -1};
    EXPECT(prepare(topic) == 0, "%s", FAILMSG);
    EXPECT(open_bus(NULL, &pb) == 0, "%s", FAILMSG);
    EXPECT(publish_all(pb, topic, "km", N, NULL) == 0, "%s", FAILMSG);
    EXPECT(pipe(pfd) == 0, "pipe: %s", strerror(errno));
    snprintf(cnt, sizeof(cnt), "%d", N);
    snprintf(red, sizeof(red), "%u", redeliver_ms);
    char *argv[] = {SELF, "--child-hold", (char *)FX->export_state(ST), topic, group, cnt, red,
                    NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    posix_spawn_file_actions_addclose(&fa, pfd[0]);
    int sp = posix_spawn(&pid, SELF, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[1]);
    pfd[1] = -1;
    EXPECT(sp == 0, "posix_spawn %s: %s", SELF, strerror(sp));
    size_t held = 0;
    bool ready = false;
    uint64_t end = now_ms() + 30000;
    char buf[4096];
    size_t blen = 0;
    while (!ready && now_ms() < end) {
        struct pollfd p = {pfd[0], POLLIN, 0};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t r = read(pfd[0], buf + blen, sizeof(buf) - 1 - blen);
        if (r <= 0)
            break;
        blen += (size_t)r;
        buf[blen] = '\0';
        char *nl, *line = buf;
        while ((nl = strchr(line, '\n'))) {
            *nl = '\0';
            if (!strncmp(line, "held ", 5))
                held++;
            else if (!strcmp(line, "ready"))
                ready = true;
            line = nl + 1;
        }
        blen = strlen(line);
        memmove(buf, line, blen + 1);
    }
    EXPECT(ready && held == N, "the child member held %zu of %d events (ready: %d)", held, N,
           ready);
    /* The other member joins while the child holds everything. */
    struct pf_open_opts o = {.client_id = "survivor", .redeliver_ms = redeliver_ms};
    EXPECT(open_bus(&o, &b) == 0, "%s", FAILMSG);
    EXPECT(subscribe(b, topic, group, "survivor", 64, &c, &s) == 0, "%s", FAILMSG);
    EXPECT(wait_ready(&b, 1, 15000) == 0, "%s", FAILMSG);
    msleep(200);
    EXPECT(coll_distinct(&c) == 0, "the survivor got %zu events the child still held",
           coll_distinct(&c));
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    pid = -1;
    size_t got = wait_distinct(&c, N, 60000);
    EXPECT(got == N, "after kill -9 of the child, the survivor got %zu of %d events", got, N);
    if (!FX->lacks[PF_CAP_REDELIVERY_COUNT]) {
        pthread_mutex_lock(&c.lock);
        size_t zero = 0;
        for (size_t i = 0; i < N; i++)
            zero += c.redeliv[i] == 0;
        pthread_mutex_unlock(&c.lock);
        EXPECT(zero == 0, "%zu redelivered events had ofe_msg_redeliveries() == 0", zero);
    }
out:
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    if (pfd[0] >= 0)
        close(pfd[0]);
    if (pfd[1] >= 0)
        close(pfd[1]);
    ofe_sub_close(s);
    ofe_bus_close(b, 5000);
    ofe_bus_close(pb, 5000);
    coll_fini(&c);
    return rc;
}

#define N_RESTART 3000

struct restart_pub {
    struct ofe_bus *b;
    const char *topic;
    struct ofe_ce **evs;
    struct pubref *refs;
    atomic_size_t sent;
    int rc;
    char err[600];
};

static void *restart_publisher(void *arg)
{
    struct restart_pub *rp = arg;
    for (size_t i = 0; i < N_RESTART; i++) {
        if (publish_range(rp->b, rp->topic, rp->evs, rp->refs, i, i + 1, 1000, rp->err,
                          sizeof(rp->err)) != 0) {
            rp->rc = -1;
            break;
        }
        atomic_store(&rp->sent, i + 1);
    }
    return NULL;
}

/* The server is stopped and restarted mid-stream: no confirmed publish is
 * lost, publisher and subscriber reconnect by themselves. */
static int check_restart(void)
{
    int rc = skip_for(PF_CAP_RESTART);
    if (rc)
        return rc;
    char topic[128], group[128];
    names("restart", topic, sizeof(topic), group, sizeof(group));
    struct ofe_ce **evs = calloc(N_RESTART, sizeof(*evs));
    struct pubref *refs = calloc(N_RESTART, sizeof(*refs));
    struct pubstat st;
    pubstat_init(&st, N_RESTART);
    for (size_t i = 0; i < N_RESTART; i++) {
        evs[i] = make_event("rs", i, 0);
        refs[i] = (struct pubref){&st, i};
    }
    struct coll c;
    coll_init(&c, "rs", N_RESTART, evs, ACT_ACK);
    struct ofe_bus *pb = NULL, *sb = NULL;
    struct ofe_sub *s = NULL;
    pthread_t thr;
    bool started = false;
    struct restart_pub rp = {.topic = topic, .evs = evs, .refs = refs};
    struct pf_open_opts po = {.publish_timeout_ms = 30000};
    EXPECT(prepare(topic) == 0, "%s", FAILMSG);
    EXPECT(open_bus(&po, &pb) == 0 && open_bus(NULL, &sb) == 0, "%s", FAILMSG);
    EXPECT(subscribe(sb, topic, group, NULL, 64, &c, &s) == 0, "%s", FAILMSG);
    EXPECT(wait_ready((struct ofe_bus *[]){pb, sb}, 2, 15000) == 0, "%s", FAILMSG);
    rp.b = pb;
    EXPECT(pthread_create(&thr, NULL, restart_publisher, &rp) == 0, "pthread_create");
    started = true;
    uint64_t end = now_ms() + 60000;
    while (atomic_load(&rp.sent) < N_RESTART / 3 && now_ms() < end)
        msleep(5);
    size_t before = coll_distinct(&c);
    FX->server_stop(ST);
    msleep(1000);
    char why[600] = "";
    bool down_seen = !ofe_bus_ready(pb, why, sizeof(why));
    EXPECT(FX->server_restart(ST) == 0, "the server did not restart");
    pthread_join(thr, NULL);
    started = false;
    EXPECT(rp.rc == 0, "a publish was refused: %s", rp.err);
    EXPECT(wait_published(&st, N_RESTART, 60000), "only %zu of %d publishes completed",
           pubstat_done(&st), N_RESTART);
    printf("    restart: %zu received before the stop, bus %s while down%s%s; %zu confirmed, "
           "%zu failed%s%s\n",
           before, down_seen ? "not ready" : "still ready", down_seen ? ": " : "", why, st.ok,
           st.failed, st.failed ? "; first: " : "", st.first_err);
    EXPECT(st.ok > 0, "no publish was confirmed");
    end = now_ms() + 60000;
    size_t missing = 0, first = 0;
    do {
        pthread_mutex_lock(&c.lock);
        missing = 0;
        for (size_t i = 0; i < N_RESTART; i++)
            if (st.confirmed[i] && !c.count[i] && missing++ == 0)
                first = i;
        pthread_mutex_unlock(&c.lock);
        if (missing)
            msleep(20);
    } while (missing && now_ms() < end);
    EXPECT(missing == 0, "%zu confirmed events never arrived (first: %zu)", missing, first);
    EXPECT(c.mismatches == 0, "events changed on the way: %s", c.mismatch);
    EXPECT(wait_ready((struct ofe_bus *[]){pb, sb}, 2, 30000) == 0, "after restart: %s", FAILMSG);
out:
    if (started)
        pthread_join(thr, NULL);
    ofe_sub_close(s);
    ofe_bus_close(sb, 5000);
    ofe_bus_close(pb, 5000);
    coll_fini(&c);
    bool all_done = wait_published(&st, N_RESTART, 1000);
    for (size_t i = 0; i < N_RESTART; i++)
        ofe_ce_unref(evs[i]);
    free(evs);
    if (all_done) {
        free(refs);
        free(st.confirmed);
    }
    return rc;
}

/* While the server is down, a publish fails after publish_timeout_ms with a
 * clear error and the bus says why it is not ready; it recovers alone. */
static int check_outage(void)
{
    int rc = skip_for(PF_CAP_RESTART);
    if (rc)
        return rc;
    char topic[128], err[600], why[600] = "";
    names("outage", topic, sizeof(topic), NULL, 0);
    struct ofe_bus *b = NULL;
    struct ofe_ce *ev = make_event("ou", 1, 0);
    struct pf_open_opts o = {.publish_timeout_ms = 1500};
    bool stopped = false;
    EXPECT(prepare(topic) == 0, "%s", FAILMSG);
    EXPECT(open_bus(&o, &b) == 0, "%s", FAILMSG);
    EXPECT(wait_ready(&b, 1, 15000) == 0, "%s", FAILMSG);
    int prc = ofe_bus_publish_sync(b, topic, ev, err, sizeof(err));
    EXPECT(prc == 0, "publish while up: %s", err);
    FX->server_stop(ST);
    stopped = true;
    uint64_t end = now_ms() + 15000;
    while (ofe_bus_ready(b, why, sizeof(why)) && now_ms() < end)
        msleep(10);
    EXPECT(!ofe_bus_ready(b, why, sizeof(why)), "the bus still says ready with the server down");
    EXPECT(why[0], "not ready, but no reason given");
    uint64_t t0 = now_ms();
    prc = ofe_bus_publish_sync(b, topic, ev, err, sizeof(err));
    uint64_t took = now_ms() - t0;
    printf("    outage: ready=false: %s\n    outage: publish: %s (%s) after %llu ms\n", why, err,
           ofe_strerror(prc), (unsigned long long)took);
    EXPECT(prc == OFE_ETIMEDOUT || prc == OFE_ECONN,
           "publish with the server down returned %d (%s): %s", prc, ofe_strerror(prc), err);
    EXPECT(err[0], "no error message");
    EXPECT(FX->server_restart(ST) == 0, "the server did not restart");
    stopped = false;
    EXPECT(wait_ready(&b, 1, 30000) == 0, "after restart: %s", FAILMSG);
    prc = ofe_bus_publish_sync(b, topic, ev, err, sizeof(err));
    EXPECT(prc == 0, "publish after the restart: %s", err);
out:
    if (stopped)
        FX->server_restart(ST);
    ofe_bus_close(b, 5000);
    ofe_ce_unref(ev);
    return rc;
}

#define N_ORDER 1600

/* Events with one partitionkey arrive in publish order. */
static int check_order(void)
{
    int rc = skip_for(PF_CAP_ORDER_KEY);
    if (rc)
        return rc;
    char topic[128], group[128];
    names("order", topic, sizeof(topic), group, sizeof(group));
    struct coll c;
    coll_init(&c, "or", N_ORDER, NULL, ACT_ACK);
    struct ofe_bus *pb = NULL, *sb = NULL;
    struct ofe_sub *s = NULL;
    EXPECT(prepare(topic) == 0, "%s", FAILMSG);
    EXPECT(open_bus(NULL, &pb) == 0 && open_bus(NULL, &sb) == 0, "%s", FAILMSG);
    EXPECT(subscribe(sb, topic, group, NULL, 64, &c, &s) == 0, "%s", FAILMSG);
    EXPECT(wait_ready((struct ofe_bus *[]){pb, sb}, 2, 15000) == 0, "%s", FAILMSG);
    EXPECT(publish_all(pb, topic, "or", N_ORDER, NULL) == 0, "%s", FAILMSG);
    size_t got = wait_distinct(&c, N_ORDER, 60000);
    EXPECT(got == N_ORDER, "received %zu of %d events", got, N_ORDER);
    EXPECT(c.order_errors == 0, "%zu events out of order; first: %s", c.order_errors, c.order_msg);
out:
    ofe_sub_close(s);
    ofe_bus_close(sb, 5000);
    ofe_bus_close(pb, 5000);
    coll_fini(&c);
    return rc;
}

/* A 1 MiB event passes intact. */
static int check_large(void)
{
    int rc = skip_for(PF_CAP_LARGE_EVENT);
    if (rc)
        return rc;
    char topic[128], group[128], err[600];
    names("large", topic, sizeof(topic), group, sizeof(group));
    struct ofe_ce *ev = make_event("lg", 0, 1024 * 1024);
    struct coll c;
    coll_init(&c, "lg", 1, &ev, ACT_ACK);
    struct ofe_bus *b = NULL;
    struct ofe_sub *s = NULL;
    EXPECT(prepare(topic) == 0, "%s", FAILMSG);
    EXPECT(open_bus(NULL, &b) == 0, "%s", FAILMSG);
    EXPECT(subscribe(b, topic, group, NULL, 4, &c, &s) == 0, "%s", FAILMSG);
    EXPECT(wait_ready(&b, 1, 15000) == 0, "%s", FAILMSG);
    int prc = ofe_bus_publish_sync(b, topic, ev, err, sizeof(err));
    EXPECT(prc == 0, "publishing a 1 MiB event failed: %s (%s)", err, ofe_strerror(prc));
    EXPECT(wait_distinct(&c, 1, 30000) == 1, "the 1 MiB event did not arrive");
    EXPECT(c.mismatches == 0, "the 1 MiB event changed on the way: %s", c.mismatch);
out:
    ofe_sub_close(s);
    ofe_bus_close(b, 5000);
    coll_fini(&c);
    ofe_ce_unref(ev);
    return rc;
}

/* An event over the configured limit is refused with a clear error, and
 * the bus goes on working. */
static int check_size_limit(void)
{
    int rc = skip_for(PF_CAP_SIZE_LIMIT);
    if (rc)
        return rc;
    char topic[128], group[128], err[600] = "";
    names("limit", topic, sizeof(topic), group, sizeof(group));
    struct ofe_ce *big = make_event("sl", 0, FX->max_event_size + 64 * 1024);
    struct ofe_ce *small = make_event("sl", 1, 0);
    struct ofe_ce *orig[2] = {big, small};
    struct coll c;
    coll_init(&c, "sl", 2, orig, ACT_ACK);
    struct ofe_bus *b = NULL;
    struct ofe_sub *s = NULL;
    EXPECT(prepare(topic) == 0, "%s", FAILMSG);
    EXPECT(open_bus(NULL, &b) == 0, "%s", FAILMSG);
    EXPECT(subscribe(b, topic, group, NULL, 4, &c, &s) == 0, "%s", FAILMSG);
    EXPECT(wait_ready(&b, 1, 15000) == 0, "%s", FAILMSG);
    int prc = ofe_bus_publish_sync(b, topic, big, err, sizeof(err));
    printf("    limit: %zu bytes over a limit of %zu: %s (%s)\n", big->data_len, FX->max_event_size,
           err, ofe_strerror(prc));
    EXPECT(prc != 0, "an event of %zu bytes over the limit of %zu was accepted", big->data_len,
           FX->max_event_size);
    EXPECT(err[0], "refused without an error message");
    prc = ofe_bus_publish_sync(b, topic, small, err, sizeof(err));
    EXPECT(prc == 0, "after the refusal, a small publish failed: %s", err);
    EXPECT(wait_distinct(&c, 1, 30000) == 1, "the small event did not arrive");
    msleep(100);
    EXPECT(c.count[0] == 0, "the refused event was delivered");
    EXPECT(c.mismatches == 0, "%s", c.mismatch);
out:
    ofe_sub_close(s);
    ofe_bus_close(b, 5000);
    coll_fini(&c);
    ofe_ce_unref(big);
    ofe_ce_unref(small);
    return rc;
}

/* A message that is not a CloudEvent is delivered as an invalid message
 * (no event, an error, the raw payload), not dropped; the next valid event
 * follows. */
static int check_invalid(void)
{
    int rc = skip_for(PF_CAP_RAW_INJECT);
    if (rc)
        return rc;
    char topic[128], group[128], err[600];
    names("invalid", topic, sizeof(topic), group, sizeof(group));
    struct ofe_ce *ev = make_event("iv", 0, 0);
    struct coll c;
    coll_init(&c, "iv", 1, &ev, ACT_ACK);
    struct ofe_bus *b = NULL;
    struct ofe_sub *s = NULL;
    EXPECT(prepare(topic) == 0, "%s", FAILMSG);
    EXPECT(open_bus(NULL, &b) == 0, "%s", FAILMSG);
    EXPECT(subscribe(b, topic, group, NULL, 4, &c, &s) == 0, "%s", FAILMSG);
    EXPECT(wait_ready(&b, 1, 15000) == 0, "%s", FAILMSG);
    EXPECT(FX->inject_raw(ST, topic, err, sizeof(err)) == 0, "inject_raw: %s", err);
    int prc = ofe_bus_publish_sync(b, topic, ev, err, sizeof(err));
    EXPECT(prc == 0, "publish: %s", err);
    EXPECT(wait_distinct(&c, 1, 30000) == 1, "the valid event after the raw one did not arrive");
    uint64_t end = now_ms() + 10000;
    for (;;) {
        pthread_mutex_lock(&c.lock);
        size_t inv = c.invalid;
        pthread_mutex_unlock(&c.lock);
        if (inv || now_ms() > end)
            break;
        msleep(10);
    }
    printf("    invalid: %s (%zu payload bytes)\n", c.invalid_err, c.invalid_len);
    EXPECT(c.invalid == 1, "%zu invalid messages delivered, 1 expected", c.invalid);
    EXPECT(c.invalid_err[0], "the invalid message has no error text");
    EXPECT(c.invalid_len > 0, "the invalid message has no payload");
out:
    ofe_sub_close(s);
    ofe_bus_close(b, 5000);
    coll_fini(&c);
    ofe_ce_unref(ev);
    return rc;
}

/* ---- driver ------------------------------------------------------------- */

static const struct {
    const char *name;
    int (*fn)(void);
} CHECKS[] = {
    {"roundtrip", check_roundtrip},     {"group_split", check_group_split},
    {"two_groups", check_two_groups},   {"nack", check_nack},
    {"kill_member", check_kill_member}, {"restart", check_restart},
    {"outage", check_outage},           {"order_key", check_order},
    {"large_event", check_large},       {"size_limit", check_size_limit},
    {"invalid_message", check_invalid},
};
#define NCHECKS (sizeof(CHECKS) / sizeof(CHECKS[0]))

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!getenv("OFE_TEST_VERBOSE"))
        ofe_log_set_level(OFE_LOG_ERROR);
    if (argc >= 7 && !strcmp(argv[1], "--child-hold"))
        return child_hold(argv[2], argv[3], argv[4], atoi(argv[5]),
                          (uint32_t)strtoul(argv[6], NULL, 10));
    if (argc >= 2 && !strcmp(argv[1], "--list")) {
        for (size_t i = 0; i < NCHECKS; i++)
            printf("%s\n", CHECKS[i].name);
        return 0;
    }
    for (int a = 1; a < argc; a++) {
        bool known = false;
        for (size_t i = 0; i < NCHECKS; i++)
            known |= !strcmp(argv[a], CHECKS[i].name);
        if (!known) {
            fprintf(stderr, "unknown check '%s' (see --list)\n", argv[a]);
            return 2;
        }
    }
    ssize_t n = readlink("/proc/self/exe", SELF, sizeof(SELF) - 1);
    if (n <= 0) {
        fprintf(stderr, "readlink /proc/self/exe: %s\n", strerror(errno));
        return 1;
    }
    SELF[n] = '\0';
    snprintf(RUNID, sizeof(RUNID), "%d-%llu", (int)getpid(),
             (unsigned long long)(now_ms() % 100000));
    char why[600];
    int missing = 0;
    if (FX->start(&ST, &missing, why, sizeof(why)) != 0) {
        printf("pubsub conformance [%s]: %s: %s\n", FX->name,
               missing ? "SKIPPED (server not installed)" : "cannot start the server", why);
        return missing ? 77 : 1;
    }
    int failed = 0, passed = 0, skipped = 0;
    uint64_t t_all = now_ms();
    for (size_t i = 0; i < NCHECKS; i++) {
        bool run = argc < 2;
        for (int a = 1; a < argc; a++)
            run |= !strcmp(argv[a], CHECKS[i].name);
        if (!run)
            continue;
        FAILMSG[0] = '\0';
        SKIPMSG = NULL;
        uint64_t t0 = now_ms();
        int rc = CHECKS[i].fn();
        double secs = (double)(now_ms() - t0) / 1000.0;
        if (rc == PASS) {
            passed++;
            printf("[PASS] %s/%s (%.1f s)\n", FX->name, CHECKS[i].name, secs);
        } else if (rc == SKIPPED) {
            skipped++;
            printf("[SKIP] %s/%s: %s\n", FX->name, CHECKS[i].name, SKIPMSG);
        } else {
            failed++;
            printf("[FAIL] %s/%s (%.1f s): %s\n", FX->name, CHECKS[i].name, secs, FAILMSG);
        }
    }
    FX->stop(ST);
    printf("pubsub conformance [%s]: %d passed, %d failed, %d skipped (%.1f s)\n", FX->name, passed,
           failed, skipped, (double)(now_ms() - t_all) / 1000.0);
    return failed ? 1 : 0;
}
