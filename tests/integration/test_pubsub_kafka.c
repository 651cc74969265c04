/* The kafka pub/sub backend against ofe-kafka-mock (librdkafka's mock
 * cluster), as a user of the bus sees it: confirmed publishes, events that
 * come back identical, consumer groups that split and groups that each get
 * everything, offsets committed only up to the first unacked message (a
 * consumer child process is killed with SIGKILL after acking around a
 * gap), rebalances without loss, per-key order, size limits, bounded
 * in-flight with pausing, nack, readiness while the brokers are down, and
 * the error text of bad options.
 *
 * Child mode: `test_pubsub_kafka --child-gap BROKERS GROUP TOPIC` consumes
 * ten events, acks all but the fifth, prints "ready" and waits to be
 * killed. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>

#include "ofe/config.h"
#include "ofe/err.h"
#include "ofe/metrics.h"
#include "ofe/pubsub.h"
#include "servers.h"

static struct tu_server *srv;

static void msleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- bus options built as the config module would ---------------------- */

struct kcfg {
    struct ofe_config_kafka_bus kb;
    struct ofe_config_busdesc d;
    struct ofe_config_kv kv[16];
};

static void kcfg_init(struct kcfg *c, const char *brokers)
{
    memset(c, 0, sizeof(*c));
    c->kb.brokers = (char *)brokers;
    c->kb.initial_offset = OFE_CONFIG_OFFSET_OLDEST;
    c->kb.rdkafka.v = c->kv;
    c->d.kind = OFE_CONFIG_BUS_KAFKA;
    c->d.kind_name = "kafka";
    c->d.kafka = &c->kb;
    c->d.options = &c->kb.node;
}

static void kcfg_set(struct kcfg *c, const char *key, const char *value)
{
    c->kv[c->kb.rdkafka.n].key = (char *)key;
    c->kv[c->kb.rdkafka.n].value = (char *)value;
    c->kb.rdkafka.n++;
}

/* Short group timings so that a dead member leaves quickly. Not under 4 s:
 * the mock makes a new group's first member wait 3 s for others without
 * counting the wait as activity. */
static void kcfg_fast_groups(struct kcfg *c)
{
    kcfg_set(c, "session.timeout.ms", "4000");
    kcfg_set(c, "heartbeat.interval.ms", "500");
    kcfg_set(c, "fetch.wait.max.ms", "50");
}

static struct ofe_bus *open_bus(struct kcfg *c, uint32_t timeout_ms)
{
    struct ofe_bus_opts o = {.component = "test", .publish_timeout_ms = timeout_ms};
    struct ofe_bus *b = NULL;
    char err[512] = "";
    int rc = ofe_bus_open(&c->d, &o, &b, err, sizeof(err));
    if (rc)
        fprintf(stderr, "open: %s\n", err);
    assert_int_equal(rc, 0);
    assert_string_equal(ofe_bus_backend(b), "kafka");
    return b;
}

static bool wait_ready(struct ofe_bus *b, bool want, int timeout_ms, char *why, size_t wsize)
{
    for (uint64_t end = now_ms() + (uint64_t)timeout_ms; now_ms() < end; msleep(50))
        if (ofe_bus_ready(b, why, wsize) == want)
            return true;
    return ofe_bus_ready(b, why, wsize) == want;
}

/* ---- events ------------------------------------------------------------- */

static void set(struct ofe_ce *ev, const char *name, enum ofe_ce_type t, const char *v)
{
    char err[256];
    int rc = ofe_ce_set_str(ev, name, t, v, err, sizeof(err));
    if (rc)
        fprintf(stderr, "set %s: %s\n", name, err);
    assert_int_equal(rc, 0);
}

/* Event i: every attribute kind, extensions of each type; data binary,
 * JSON, empty or absent by i. */
static struct ofe_ce *mkev(int i, const char *pkey)
{
    struct ofe_ce *ev = ofe_ce_new();
    char buf[128];
    snprintf(buf, sizeof(buf), "%d", i);
    set(ev, "id", 0, buf);
    set(ev, "source", 0, "/tests/kafka");
    set(ev, "specversion", 0, "1.0");
    set(ev, "type", 0, "io.ofevents.test");
    set(ev, "subject", 0, "sub ject é");
    set(ev, "time", 0, "2024-05-06T07:08:09.123Z");
    set(ev, "dataschema", 0, "https://example.com/schema");
    set(ev, "seq", OFE_CE_T_INTEGER, buf);
    set(ev, "flag", OFE_CE_T_BOOLEAN, i % 2 ? "true" : "false");
    set(ev, "link", OFE_CE_T_URI, "https://example.com/x?y=1");
    set(ev, "ref", OFE_CE_T_URIREF, "/a/b#c");
    set(ev, "when", OFE_CE_T_TIMESTAMP, "2023-01-02T03:04:05Z");
    set(ev, "blob", OFE_CE_T_BINARY, "AAECAwQ=");
    set(ev, "note", OFE_CE_T_STRING, "text, with: punctuation");
    if (pkey)
        set(ev, "partitionkey", OFE_CE_T_STRING, pkey);
    switch (i % 4) {
    case 0: {
        unsigned char d[300];
        for (size_t k = 0; k < sizeof(d); k++)
            d[k] = (unsigned char)(k * 7 + (size_t)i);
        set(ev, "datacontenttype", 0, "application/octet-stream");
        assert_int_equal(ofe_ce_set_data(ev, d, (size_t)(i % 300)), 0);
        break;
    }
    case 1:
        snprintf(buf, sizeof(buf), "{\"i\":%d,\"s\":\"x\"}", i);
        set(ev, "datacontenttype", 0, "application/json");
        assert_int_equal(ofe_ce_set_data(ev, buf, strlen(buf)), 0);
        break;
    case 2:
        set(ev, "datacontenttype", 0, "text/plain");
        assert_int_equal(ofe_ce_set_data(ev, "", 0), 0);
        break;
    default:
        break; /* no data */
    }
    return ev;
}

static int ev_id(const struct ofe_msg *m)
{
    const struct ofe_ce *ev = ofe_msg_event(m);
    return ev ? atoi(ofe_ce_get_str(ev, "id")) : -1;
}

/* ---- publishing ----------------------------------------------------------- */

struct pubwait {
    pthread_mutex_t lock;
    int ok, failed, last_err;
    char last_msg[512];
};

static void pub_done(void *opaque, int err, const char *msg)
{
    struct pubwait *w = opaque;
    pthread_mutex_lock(&w->lock);
    if (err) {
        w->failed++;
        w->last_err = err;
        snprintf(w->last_msg, sizeof(w->last_msg), "%s", msg);
    } else {
        w->ok++;
    }
    pthread_mutex_unlock(&w->lock);
}

static void publish_all(struct ofe_bus *b, const char *topic, struct ofe_ce **evs, int n)
{
    struct pubwait w = {.lock = PTHREAD_MUTEX_INITIALIZER};
    char err[512];
    for (int i = 0; i < n; i++) {
        int rc;
        while ((rc = ofe_bus_publish(b, topic, evs[i], pub_done, &w, err, sizeof(err))) ==
               OFE_EAGAIN)
            msleep(1);
        if (rc)
            fprintf(stderr, "publish: %s\n", err);
        assert_int_equal(rc, 0);
    }
    for (uint64_t end = now_ms() + 20000; now_ms() < end; msleep(5)) {
        pthread_mutex_lock(&w.lock);
        int done = w.ok + w.failed;
        pthread_mutex_unlock(&w.lock);
        if (done == n)
            break;
    }
    if (w.failed)
        fprintf(stderr, "publish failed: %s\n", w.last_msg);
    assert_int_equal(w.failed, 0);
    assert_int_equal(w.ok, n);
}

/* ---- consuming ------------------------------------------------------------ */

#define MAXID 4096

struct coll {
    pthread_mutex_t lock;
    int count[MAXID];
    int total, invalid;
    int last_seq[8]; /* per key */
    int order_errors;
    struct ofe_ce **expect; /* compare with these when set */
    int mismatches;
    int nack_id;     /* nack this id the first time, -1 none */
    int redelivered; /* redeliveries seen of nack_id */
    bool hold;       /* keep messages instead of acking */
    struct ofe_msg *held[MAXID];
    int nheld, max_held;
};

static void coll_init(struct coll *c)
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    c->nack_id = -1;
    for (int i = 0; i < 8; i++)
        c->last_seq[i] = -1;
}

static void on_msg(struct ofe_msg *m, void *opaque)
{
    struct coll *c = opaque;
    struct ofe_ce *ev = ofe_msg_event(m);
    pthread_mutex_lock(&c->lock);
    if (!ev) {
        c->invalid++;
        fprintf(stderr, "invalid message: %s\n", ofe_msg_error(m));
        pthread_mutex_unlock(&c->lock);
        ofe_msg_ack(m);
        return;
    }
    int id = ev_id(m);
    if (id >= 0 && id < MAXID)
        c->count[id]++;
    c->total++;
    if (c->expect && id >= 0 && id < MAXID && c->expect[id] && !ofe_ce_equal(ev, c->expect[id]))
        c->mismatches++;
    const char *pk = ofe_ce_get_str(ev, "partitionkey");
    if (pk && pk[0] == 'k' && pk[1] >= '0' && pk[1] <= '7') {
        int k = pk[1] - '0';
        int s = atoi(ofe_ce_get_str(ev, "seq"));
        if (s != c->last_seq[k] + 1)
            c->order_errors++;
        c->last_seq[k] = s;
    }
    if (id == c->nack_id) {
        if (ofe_msg_redeliveries(m) == 0) {
            pthread_mutex_unlock(&c->lock);
            ofe_msg_nack(m, 300);
            return;
        }
        c->redelivered++;
    }
    if (c->hold) {
        c->held[c->nheld++] = m;
        if (c->nheld > c->max_held)
            c->max_held = c->nheld;
        pthread_mutex_unlock(&c->lock);
        return;
    }
    pthread_mutex_unlock(&c->lock);
    ofe_msg_ack(m);
}

static int coll_total(struct coll *c)
{
    pthread_mutex_lock(&c->lock);
    int t = c->total;
    pthread_mutex_unlock(&c->lock);
    return t;
}

/* Distinct ids in [lo, hi) seen at least once. */
static int coll_distinct(struct coll *c, int lo, int hi)
{
    int n = 0;
    pthread_mutex_lock(&c->lock);
    for (int i = lo; i < hi; i++)
        n += c->count[i] > 0;
    pthread_mutex_unlock(&c->lock);
    return n;
}

static bool wait_distinct(struct coll *c, int lo, int hi, int timeout_ms)
{
    for (uint64_t end = now_ms() + (uint64_t)timeout_ms; now_ms() < end; msleep(20))
        if (coll_distinct(c, lo, hi) == hi - lo)
            return true;
    return coll_distinct(c, lo, hi) == hi - lo;
}

static struct ofe_sub *subscribe(struct ofe_bus *b, const char *group, const char *consumer,
                                 const char *topic, unsigned max_inflight, struct coll *c)
{
    const char *topics[] = {topic};
    struct ofe_sub_opts o = {.group = group,
                             .consumer = consumer,
                             .topics = topics,
                             .ntopics = 1,
                             .max_inflight = max_inflight,
                             .start = OFE_START_OLDEST,
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

/* Committed offset of partition 0 of topic for group, read with a plain
 * librdkafka consumer handle that does not join the group. */
static int64_t committed(const char *group, const char *topic, int32_t partition)
{
    char err[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "bootstrap.servers", srv->url, err, sizeof(err));
    rd_kafka_conf_set(c, "group.id", group, err, sizeof(err));
    rd_kafka_conf_set(c, "log_level", "3", err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof(err));
    assert_non_null(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition);
    int64_t off = -2;
    if (rd_kafka_committed(rk, l, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR && !l->elems[0].err)
        off = l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    return off;
}

/* Sum of the committed offsets of partitions 0..n-1 (-1001 for each
 * partition without one). */
static int64_t committed_sum(const char *group, const char *topic, int n)
{
    int64_t sum = 0;
    for (int p = 0; p < n; p++) {
        int64_t o = committed(group, topic, p);
        sum += o >= 0 ? o : -1001;
    }
    return sum;
}

static bool wait_committed(const char *group, const char *topic, int64_t want, int timeout_ms)
{
    for (uint64_t end = now_ms() + (uint64_t)timeout_ms; now_ms() < end; msleep(100))
        if (committed(group, topic, 0) == want)
            return true;
    return false;
}

/* ---- tests ---------------------------------------------------------------- */

/* A bus on the test broker with short group timings (kcfg_fast_groups). */
static struct ofe_bus *open_fast_bus(void)
{
    struct kcfg c;
    kcfg_init(&c, srv->url);
    kcfg_fast_groups(&c);
    return open_bus(&c, 10000);
}

/* Publishes confirm; events come back attribute- and byte-identical. */
static void test_roundtrip(void **state)
{
    enum { N = 400 };
    struct kcfg c;
    kcfg_init(&c, srv->url);
    kcfg_set(&c, "statistics.interval.ms", "300"); /* the lag gauge, sooner */
    struct ofe_metrics *metrics = ofe_metrics_new();
    struct ofe_bus_opts o = {.component = "test", .metrics = metrics};
    struct ofe_bus *b = NULL;
    char err[512];
    assert_int_equal(ofe_bus_open(&c.d, &o, &b, err, sizeof(err)), 0);
    static struct ofe_ce *evs[N];
    for (int i = 0; i < N; i++)
        evs[i] = mkev(i, i % 5 ? NULL : "key-é");
    publish_all(b, "roundtrip", evs, N);
    struct coll *col = calloc(1, sizeof(*col));
    coll_init(col);
    col->expect = evs;
    struct ofe_sub *s = subscribe(b, "g-roundtrip", NULL, "roundtrip", 64, col);
    assert_true(wait_distinct(col, 0, N, 20000));
    /* Everything acked and committed: the group's lag gauge reaches 0. */
    const char *series = "ofe_bus_consumer_lag{backend=\"kafka\",group=\"g-roundtrip\","
                         "topic=\"roundtrip\"} 0\n";
    bool lag0 = false;
    for (uint64_t end = now_ms() + 10000; now_ms() < end && !lag0; msleep(100)) {
        struct ofe_buf text = OFE_BUF_INIT;
        assert_int_equal(ofe_metrics_render(metrics, &text), 0);
        lag0 = text.data && strstr(text.data, series);
        if (!lag0 && now_ms() + 100 >= end)
            fprintf(stderr, "metrics:\n%s\n", text.data ? text.data : "");
        ofe_buf_fini(&text);
    }
    assert_true(lag0);
    ofe_sub_close(s);
    assert_int_equal(col->mismatches, 0);
    assert_int_equal(col->invalid, 0);
    assert_int_equal(col->total, N);
    for (int i = 0; i < N; i++)
        ofe_ce_unref(evs[i]);
    ofe_bus_close(b, 2000);
    ofe_metrics_destroy(metrics);
    free(col);
}

/* Two members of one group split the events (each to exactly one of
 * them); another group gets every event. */
static void test_groups(void **state)
{
    struct ofe_bus *b = open_fast_bus();
    struct coll *a = calloc(1, sizeof(*a)), *bb = calloc(1, sizeof(*bb)),
                *other = calloc(1, sizeof(*other));
    coll_init(a);
    coll_init(bb);
    coll_init(other);
    struct ofe_sub *sa = subscribe(b, "g-split", "member-a", "split", 64, a);
    struct ofe_sub *sb = subscribe(b, "g-split", "member-b", "split", 64, bb);
    /* Warm up until both members receive: the group is then stable. */
    int warm = 0;
    for (uint64_t end = now_ms() + 30000; now_ms() < end && warm < 1000; warm++) {
        if (coll_total(a) > 0 && coll_total(bb) > 0)
            break;
        struct ofe_ce *ev = mkev(3000 + warm % 1000, NULL);
        char err[256];
        assert_int_equal(ofe_bus_publish_sync(b, "split", ev, err, sizeof(err)), 0);
        ofe_ce_unref(ev);
        msleep(20);
    }
    assert_true(coll_total(a) > 0 && coll_total(bb) > 0);
    enum { N = 600 };
    static struct ofe_ce *evs[N];
    for (int i = 0; i < N; i++) {
        /* Keyed, so that the events spread over the partitions (keyless
         * ones stick to one partition for a while). */
        char key[16];
        snprintf(key, sizeof(key), "x%d", i);
        evs[i] = mkev(i, key);
    }
    publish_all(b, "split", evs, N);
    struct ofe_sub *so = subscribe(b, "g-split-other", NULL, "split", 64, other);
    for (uint64_t end = now_ms() + 20000; now_ms() < end; msleep(20)) {
        int both = 0;
        pthread_mutex_lock(&a->lock);
        pthread_mutex_lock(&bb->lock);
        for (int i = 0; i < N; i++)
            both += a->count[i] + bb->count[i] > 0;
        pthread_mutex_unlock(&bb->lock);
        pthread_mutex_unlock(&a->lock);
        if (both == N && coll_distinct(other, 0, N) == N)
            break;
    }
    int only_a = 0, only_b = 0, twice = 0, none = 0;
    for (int i = 0; i < N; i++) {
        int n = a->count[i] + bb->count[i];
        if (n == 0)
            none++;
        else if (n > 1)
            twice++;
        else if (a->count[i])
            only_a++;
        else
            only_b++;
    }
    fprintf(stderr, "groups: a=%d b=%d twice=%d none=%d (warm-up %d)\n", only_a, only_b, twice,
            none, warm);
    assert_int_equal(none, 0);
    assert_int_equal(twice, 0);
    assert_true(only_a > 0 && only_b > 0);
    assert_int_equal(coll_distinct(other, 0, N), N);
    ofe_sub_close(sa);
    ofe_sub_close(sb);
    ofe_sub_close(so);
    for (int i = 0; i < N; i++)
        ofe_ce_unref(evs[i]);
    ofe_bus_close(b, 2000);
    free(a);
    free(bb);
    free(other);
}

/* The child of test_gap_crash. */
static int child_gap(const char *brokers, const char *group, const char *topic)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    struct kcfg c;
    kcfg_init(&c, brokers);
    kcfg_fast_groups(&c);
    struct ofe_bus_opts o = {.component = "child"};
    struct ofe_bus *b = NULL;
    char err[512];
    if (ofe_bus_open(&c.d, &o, &b, err, sizeof(err))) {
        fprintf(stderr, "child: %s\n", err);
        return 1;
    }
    struct coll *col = calloc(1, sizeof(*col));
    coll_init(col);
    col->hold = true;
    const char *topics[] = {topic};
    struct ofe_sub_opts so = {.group = group,
                              .topics = topics,
                              .ntopics = 1,
                              .max_inflight = 64,
                              .start = OFE_START_OLDEST,
                              .on_msg = on_msg,
                              .opaque = col};
    struct ofe_sub *s;
    if (ofe_bus_subscribe(b, &so, &s, err, sizeof(err))) {
        fprintf(stderr, "child: %s\n", err);
        return 1;
    }
    for (uint64_t end = now_ms() + 30000; now_ms() < end && coll_total(col) < 10; msleep(10))
        ;
    if (coll_total(col) < 10) {
        fprintf(stderr, "child: got %d events\n", coll_total(col));
        return 1;
    }
    /* Ack 0..3 and 5..9; keep 4. */
    for (int i = 0; i < col->nheld; i++)
        if (ev_id(col->held[i]) != 4)
            ofe_msg_ack(col->held[i]);
    printf("ready\n");
    fflush(stdout);
    for (;;)
        pause();
}

/* A member acks around a gap and is killed: the committed offset stopped
 * at the gap, and the next member gets the unacked event and everything
 * after it, not what was acked before it. */
static void test_gap_crash(void **state)
{
    struct ofe_bus *b = open_fast_bus();
    static struct ofe_ce *evs[10];
    for (int i = 0; i < 10; i++)
        evs[i] = mkev(i, NULL);
    publish_all(b, "gap", evs, 10);

    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        execl("/proc/self/exe", "test_pubsub_kafka", "--child-gap", srv->url, "g-gap", "gap",
              (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char line[64] = "";
    FILE *f = fdopen(fds[0], "r");
    bool ready = fgets(line, sizeof(line), f) && !strncmp(line, "ready", 5);
    fclose(f);
    assert_true(ready);
    /* The acked prefix 0..3 is committed; 5..9 must not be. */
    assert_true(wait_committed("g-gap", "gap", 4, 15000));
    msleep(1000); /* ten commit intervals: a wrong commit would have happened */
    assert_int_equal(committed("g-gap", "gap", 0), 4);
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);

    struct coll *col = calloc(1, sizeof(*col));
    coll_init(col);
    struct ofe_sub *s = subscribe(b, "g-gap", "after-crash", "gap", 64, col);
    assert_true(wait_distinct(col, 4, 10, 30000));
    ofe_sub_close(s);
    for (int i = 0; i < 4; i++)
        assert_int_equal(col->count[i], 0);
    for (int i = 4; i < 10; i++)
        assert_int_equal(col->count[i], 1);
    /* Everything acked now. */
    assert_true(wait_committed("g-gap", "gap", 10, 10000));
    for (int i = 0; i < 10; i++)
        ofe_ce_unref(evs[i]);
    ofe_bus_close(b, 2000);
    free(col);
}

/* A second member joins mid-stream and the first leaves mid-stream: every
 * event is delivered, and both members took part. */
static void test_rebalance(void **state)
{
    enum { N = 3000 };
    struct ofe_bus *b = open_fast_bus();
    struct coll *a = calloc(1, sizeof(*a)), *bb = calloc(1, sizeof(*bb));
    coll_init(a);
    coll_init(bb);
    struct ofe_sub *sa = subscribe(b, "g-rebal", "first", "rebal", 16, a);
    struct ofe_sub *sb = NULL;
    struct pubwait w = {.lock = PTHREAD_MUTEX_INITIALIZER};
    int joined_at = -1, left_at = -1, n = 0, b_at_close = 0;
    int64_t sum_at_join = 0;
    /* Publish at a steady pace; the second member joins once the first
     * receives, the first leaves once the second receives, and 200 more
     * events follow. */
    for (; n < N && (left_at < 0 || n < left_at + 200); n++) {
        char key[16];
        snprintf(key, sizeof(key), "r%d", n);
        struct ofe_ce *ev = mkev(n, key);
        char err[256];
        int rc;
        while ((rc = ofe_bus_publish(b, "rebal", ev, pub_done, &w, err, sizeof(err))) == OFE_EAGAIN)
            msleep(1);
        assert_int_equal(rc, 0);
        ofe_ce_unref(ev);
        /* Each step waits for the group to commit progress, as it does in
         * steady operation (the mock refuses commits while a rebalance is
         * in progress, so back-to-back rebalances only redeliver more). */
        if (joined_at < 0 && coll_total(a) > 20 && n % 20 == 0 &&
            committed_sum("g-rebal", "rebal", 4) > 0) {
            sb = subscribe(b, "g-rebal", "second", "rebal", 16, bb);
            joined_at = n;
            sum_at_join = committed_sum("g-rebal", "rebal", 4);
        }
        if (joined_at >= 0 && left_at < 0 && coll_total(bb) > 20 && n % 20 == 0 &&
            committed_sum("g-rebal", "rebal", 4) > sum_at_join) {
            b_at_close = coll_total(bb);
            ofe_sub_close(sa);
            sa = NULL;
            left_at = n;
        }
        msleep(5);
    }
    assert_true(left_at > 0);
    for (uint64_t end = now_ms() + 30000; now_ms() < end; msleep(20)) {
        int all = 0;
        for (int i = 0; i < n; i++)
            all += coll_distinct(a, i, i + 1) + coll_distinct(bb, i, i + 1) > 0;
        if (all == n)
            break;
    }
    int all = 0, dup = 0;
    for (int i = 0; i < n; i++) {
        all += a->count[i] + bb->count[i] > 0;
        dup += a->count[i] + bb->count[i] > 1;
    }
    fprintf(stderr,
            "rebalance: %d events; second joined at %d, first left at %d; first got %d, "
            "second %d (%d before the first left); %d delivered twice\n",
            n, joined_at, left_at, coll_total(a), coll_total(bb), b_at_close, dup);
    assert_int_equal(all, n);
    assert_true(b_at_close > 0);
    /* After the first left, the second got everything published since. */
    assert_int_equal(coll_distinct(bb, left_at + 1, n), n - left_at - 1);
    pthread_mutex_lock(&w.lock);
    assert_int_equal(w.failed, 0);
    pthread_mutex_unlock(&w.lock);
    ofe_sub_close(sb);
    ofe_bus_close(b, 2000);
    free(a);
    free(bb);
}

/* The group refuses commits (the mock does so while a rebalance is in
 * progress; here it is made to refuse all of them) when a second member
 * joins: the partitions the first member keeps resume at its own acked
 * point, not at the stale committed offset, so it gets none of its events
 * twice. The partitions the second member takes start at the committed
 * offset (redelivery there is allowed: at least once). */
static void test_resume_refused(void **state)
{
    enum { N1 = 200, N2 = 200, N = N1 + N2 };
    struct ofe_bus *b = open_fast_bus();
    struct coll *a = calloc(1, sizeof(*a)), *bb = calloc(1, sizeof(*bb));
    coll_init(a);
    coll_init(bb);
    static struct ofe_ce *evs[N];
    for (int i = 0; i < N; i++) {
        char key[16];
        snprintf(key, sizeof(key), "q%d", i); /* spread over the 4 partitions */
        evs[i] = mkev(i, key);
    }
    struct ofe_sub *sa = subscribe(b, "g-resume", "first", "resume", 64, a);
    publish_all(b, "resume", evs, N1);
    assert_true(wait_distinct(a, 0, N1, 30000));
    /* the first batch is committed: every partition has an offset */
    int64_t sum = 0;
    for (uint64_t end = now_ms() + 10000; now_ms() < end && sum != N1; msleep(100))
        sum = committed_sum("g-resume", "resume", 4);
    assert_int_equal(sum, N1);
    kill(srv->proc->pid, SIGRTMIN + 1); /* from now on every commit is refused */
    msleep(200);
    publish_all(b, "resume", evs + N1, N2);
    assert_true(wait_distinct(a, N1, N, 30000));
    msleep(300); /* the first member tries to commit them, in vain */
    struct ofe_sub *sb = subscribe(b, "g-resume", "second", "resume", 64, bb);
    /* the second member gets its partitions' share of the second batch
     * again (from the committed offsets); then the first member's
     * partitions have been assigned back to it for a while */
    bool second = false;
    for (uint64_t end = now_ms() + 30000; now_ms() < end && !second; msleep(50))
        second = coll_total(bb) > 0;
    msleep(2000);
    int64_t sum_refused = committed_sum("g-resume", "resume", 4);
    kill(srv->proc->pid, SIGRTMIN + 2);
    int twice = 0, first_twice = -1;
    pthread_mutex_lock(&a->lock);
    for (int i = 0; i < N; i++)
        if (a->count[i] > 1 && twice++ == 0)
            first_twice = i;
    int total_a = a->total;
    pthread_mutex_unlock(&a->lock);
    fprintf(stderr,
            "resume: first member %d deliveries, %d events twice (first %d); second member %d; "
            "committed sum while refused %lld\n",
            total_a, twice, first_twice, coll_total(bb), (long long)sum_refused);
    assert_true(second);
    assert_int_equal(sum_refused, N1); /* the commits were indeed refused */
    assert_int_equal(twice, 0);
    ofe_sub_close(sb);
    ofe_sub_close(sa);
    ofe_bus_close(b, 2000);
    for (int i = 0; i < N; i++)
        ofe_ce_unref(evs[i]);
    free(a);
    free(bb);
}

/* Events with one partition key keep their order. */
static void test_key_order(void **state)
{
    enum { KEYS = 4, PER = 150 };
    struct kcfg c;
    kcfg_init(&c, srv->url);
    struct ofe_bus *b = open_bus(&c, 10000);
    static struct ofe_ce *evs[KEYS * PER];
    for (int s = 0; s < PER; s++)
        for (int k = 0; k < KEYS; k++) {
            char key[8];
            snprintf(key, sizeof(key), "k%d", k);
            struct ofe_ce *ev = mkev(s * KEYS + k, key);
            char seq[16];
            snprintf(seq, sizeof(seq), "%d", s);
            set(ev, "seq", OFE_CE_T_INTEGER, seq);
            evs[s * KEYS + k] = ev;
        }
    publish_all(b, "order", evs, KEYS * PER);
    struct coll *col = calloc(1, sizeof(*col));
    coll_init(col);
    struct ofe_sub *sub = subscribe(b, "g-order", NULL, "order", 64, col);
    assert_true(wait_distinct(col, 0, KEYS * PER, 20000));
    ofe_sub_close(sub);
    assert_int_equal(col->order_errors, 0);
    for (int k = 0; k < KEYS; k++)
        assert_int_equal(col->last_seq[k], PER - 1);
    for (int i = 0; i < KEYS * PER; i++)
        ofe_ce_unref(evs[i]);
    ofe_bus_close(b, 2000);
    free(col);
}

/* A 1 MiB event passes; events over maxMessageBytes are refused with a
 * sentence that says so. */
static void test_sizes(void **state)
{
    struct kcfg c;
    kcfg_init(&c, srv->url);
    struct ofe_bus *b = open_bus(&c, 10000);
    size_t big = 1024 * 1024;
    unsigned char *d = malloc(2 * big);
    for (size_t i = 0; i < 2 * big; i++)
        d[i] = (unsigned char)(i * 31 + (i >> 9));
    struct ofe_ce *ev = mkev(7, NULL);
    set(ev, "datacontenttype", 0, "application/octet-stream");
    assert_int_equal(ofe_ce_set_data(ev, d, big), 0);
    char err[512] = "";
    int rc = ofe_bus_publish_sync(b, "big", ev, err, sizeof(err));
    if (rc)
        fprintf(stderr, "1 MiB: %s\n", err);
    assert_int_equal(rc, 0);
    struct coll *col = calloc(1, sizeof(*col));
    coll_init(col);
    struct ofe_ce *expect[8] = {0};
    expect[7] = ev;
    col->expect = expect;
    struct ofe_sub *s = subscribe(b, "g-big", NULL, "big", 4, col);
    assert_true(wait_distinct(col, 7, 8, 20000));
    ofe_sub_close(s);
    assert_int_equal(col->mismatches, 0);

    struct ofe_ce *ev2 = mkev(8, NULL);
    assert_int_equal(ofe_ce_set_data(ev2, d, 2 * big), 0);
    rc = ofe_bus_publish_sync(b, "big", ev2, err, sizeof(err));
    fprintf(stderr, "2 MiB: %s\n", err);
    assert_int_equal(rc, OFE_EINVAL);
    assert_non_null(strstr(err, "maxMessageBytes"));
    ofe_bus_close(b, 2000);

    /* A configured limit. */
    kcfg_init(&c, srv->url);
    c.kb.max_message_bytes = 4096;
    b = open_bus(&c, 10000);
    struct ofe_ce *small = mkev(9, NULL);
    assert_int_equal(ofe_ce_set_data(small, d, 1000), 0);
    assert_int_equal(ofe_bus_publish_sync(b, "big", small, err, sizeof(err)), 0);
    assert_int_equal(ofe_ce_set_data(small, d, 5000), 0);
    rc = ofe_bus_publish_sync(b, "big", small, err, sizeof(err));
    fprintf(stderr, "over 4096: %s\n", err);
    assert_int_equal(rc, OFE_EINVAL);
    assert_non_null(strstr(err, "(4096)"));
    ofe_bus_close(b, 2000);
    ofe_ce_unref(small);
    ofe_ce_unref(ev);
    ofe_ce_unref(ev2);
    free(d);
    free(col);
}

/* Bad options fail at open with librdkafka's own words. */
static void test_bad_options(void **state)
{
    struct kcfg c;
    struct ofe_bus *b = NULL;
    char err[512];
    struct ofe_bus_opts o = {.component = "test"};

    kcfg_init(&c, srv->url);
    kcfg_set(&c, "no.such.property", "1");
    assert_int_equal(ofe_bus_open(&c.d, &o, &b, err, sizeof(err)), OFE_EINVAL);
    fprintf(stderr, "%s\n", err);
    assert_non_null(strstr(err, "rdkafka.no.such.property"));
    assert_non_null(strstr(err, "No such configuration property"));

    kcfg_init(&c, srv->url);
    kcfg_set(&c, "acks", "maybe");
    assert_int_equal(ofe_bus_open(&c.d, &o, &b, err, sizeof(err)), OFE_EINVAL);
    fprintf(stderr, "%s\n", err);
    assert_non_null(strstr(err, "rdkafka.acks"));
    assert_non_null(strstr(err, "Invalid value"));

    /* A consumer-only property with a value out of range. */
    kcfg_init(&c, srv->url);
    kcfg_set(&c, "session.timeout.ms", "0");
    assert_int_equal(ofe_bus_open(&c.d, &o, &b, err, sizeof(err)), OFE_EINVAL);
    fprintf(stderr, "%s\n", err);
    assert_non_null(strstr(err, "session.timeout.ms"));

    /* Settings librdkafka refuses only when the client is created. */
    kcfg_init(&c, srv->url);
    kcfg_set(&c, "max.in.flight.requests.per.connection", "50");
    assert_int_equal(ofe_bus_open(&c.d, &o, &b, err, sizeof(err)), OFE_EINVAL);
    fprintf(stderr, "%s\n", err);
    assert_non_null(strstr(err, "max.in.flight"));

    kcfg_init(&c, srv->url);
    c.kb.auth_type = OFE_CONFIG_KAFKA_AUTH_PASSWORD;
    assert_int_equal(ofe_bus_open(&c.d, &o, &b, err, sizeof(err)), OFE_EINVAL);
    fprintf(stderr, "%s\n", err);
    assert_non_null(strstr(err, "saslUsername"));

    kcfg_init(&c, NULL);
    assert_int_equal(ofe_bus_open(&c.d, &o, &b, err, sizeof(err)), OFE_EINVAL);
    assert_non_null(strstr(err, "brokers"));

    kcfg_init(&c, srv->url);
    b = open_bus(&c, 10000);
    struct ofe_ce *ev = mkev(1, NULL);
    assert_int_equal(ofe_bus_publish_sync(b, "bad topic", ev, err, sizeof(err)), OFE_EINVAL);
    fprintf(stderr, "%s\n", err);
    assert_non_null(strstr(err, "not a valid Kafka topic name"));
    ofe_ce_unref(ev);
    ofe_bus_close(b, 1000);
}

/* At most max_inflight messages are out; a stalled consumer pauses the
 * partitions and resumes without losing or repeating anything. */
struct acker {
    struct coll *c;
    atomic_bool stop;
};

static void *ack_slowly(void *arg)
{
    struct acker *a = arg;
    while (!atomic_load(&a->stop)) {
        msleep(150); /* longer than the 100 ms after which the backend pauses */
        pthread_mutex_lock(&a->c->lock);
        int n = a->c->nheld;
        struct ofe_msg *m[MAXID];
        memcpy(m, a->c->held, (size_t)n * sizeof(*m));
        a->c->nheld = 0;
        pthread_mutex_unlock(&a->c->lock);
        for (int i = 0; i < n; i++)
            ofe_msg_ack(m[i]);
    }
    return NULL;
}

static void test_bounded_inflight(void **state)
{
    enum { N = 120 };
    struct kcfg c;
    kcfg_init(&c, srv->url);
    struct ofe_bus *b = open_bus(&c, 10000);
    static struct ofe_ce *evs[N];
    for (int i = 0; i < N; i++)
        evs[i] = mkev(i, NULL);
    publish_all(b, "bounded", evs, N);
    struct coll *col = calloc(1, sizeof(*col));
    coll_init(col);
    col->hold = true;
    struct acker ak = {.c = col};
    pthread_t t;
    pthread_create(&t, NULL, ack_slowly, &ak);
    struct ofe_sub *s = subscribe(b, "g-bounded", NULL, "bounded", 6, col);
    assert_true(wait_distinct(col, 0, N, 30000));
    atomic_store(&ak.stop, true);
    pthread_join(t, NULL);
    for (int i = 0; i < col->nheld; i++)
        ofe_msg_ack(col->held[i]);
    ofe_sub_close(s);
    fprintf(stderr, "bounded: at most %d held, %d delivered\n", col->max_held, col->total);
    assert_true(col->max_held <= 6);
    assert_int_equal(col->total, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(col->count[i], 1);
        ofe_ce_unref(evs[i]);
    }
    ofe_bus_close(b, 2000);
    free(col);
}

/* A nacked event comes again after the delay, marked as a redelivery,
 * and holds the commit point until acked. */
static void test_nack(void **state)
{
    enum { N = 6 };
    struct kcfg c;
    kcfg_init(&c, srv->url);
    struct ofe_bus *b = open_bus(&c, 10000);
    static struct ofe_ce *evs[N];
    for (int i = 0; i < N; i++)
        evs[i] = mkev(i, NULL);
    publish_all(b, "nack", evs, N);
    struct coll *col = calloc(1, sizeof(*col));
    coll_init(col);
    col->nack_id = 2;
    struct ofe_sub *s = subscribe(b, "g-nack", NULL, "nack", 8, col);
    /* N first deliveries and the redelivery. */
    for (uint64_t end = now_ms() + 20000; now_ms() < end && coll_total(col) < N + 1; msleep(10))
        ;
    assert_int_equal(coll_total(col), N + 1);
    assert_int_equal(col->redelivered, 1);
    assert_int_equal(col->count[2], 2);
    assert_true(wait_committed("g-nack", "nack", N, 10000));
    ofe_sub_close(s);
    for (int i = 0; i < N; i++)
        ofe_ce_unref(evs[i]);
    ofe_bus_close(b, 2000);
    free(col);
}

/* Readiness follows the brokers; publishes while they are down wait and
 * then fail with a clear error; everything works again once they are
 * back. */
static void test_brokers_down(void **state)
{
    struct kcfg c;
    kcfg_init(&c, srv->url);
    kcfg_set(&c, "reconnect.backoff.max.ms", "500");
    struct ofe_bus *b = open_bus(&c, 2000);
    char why[512] = "";
    assert_true(wait_ready(b, true, 10000, why, sizeof(why)));
    kill(srv->proc->pid, SIGUSR1);
    assert_true(wait_ready(b, false, 15000, why, sizeof(why)));
    fprintf(stderr, "down: %s\n", why);
    assert_non_null(strstr(why, "kafka:"));
    struct ofe_ce *ev = mkev(1, NULL);
    char err[512];
    int rc = ofe_bus_publish_sync(b, "down", ev, err, sizeof(err));
    fprintf(stderr, "publish while down: %s (%s)\n", err, ofe_strerror(rc));
    assert_true(rc == OFE_ECONN || rc == OFE_ETIMEDOUT);
    assert_non_null(strstr(err, "not confirmed within 2000 ms"));
    kill(srv->proc->pid, SIGUSR2);
    assert_true(wait_ready(b, true, 15000, why, sizeof(why)));
    assert_int_equal(ofe_bus_publish_sync(b, "down", ev, err, sizeof(err)), 0);
    ofe_ce_unref(ev);
    ofe_bus_close(b, 2000);
}

/* Nothing listens: open works, readiness says why, publishes fail. */
static void test_unreachable(void **state)
{
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", tu_free_port());
    struct kcfg c;
    kcfg_init(&c, addr);
    struct ofe_bus *b = open_bus(&c, 1500);
    char why[512] = "";
    assert_false(ofe_bus_ready(b, why, sizeof(why)));
    assert_true(wait_ready(b, false, 100, why, sizeof(why)));
    struct ofe_ce *ev = mkev(1, NULL);
    char err[512];
    int rc = ofe_bus_publish_sync(b, "nowhere", ev, err, sizeof(err));
    fprintf(stderr, "unreachable: ready: %s; publish: %s\n", why, err);
    assert_int_equal(rc, OFE_ECONN);
    assert_non_null(strstr(err, addr));
    ofe_bus_ready(b, why, sizeof(why));
    assert_non_null(strstr(why, addr));
    ofe_ce_unref(ev);
    ofe_bus_close(b, 500);
}

/* A bus from YAML, as a daemon gets it: an EventBus with the kafka block
 * (initialOffset not written: a new group starts at the oldest event;
 * consumerGroup: every subscription's group; rdkafka.* passed through),
 * and a Dapr pubsub.kafka Component whose bad rdkafka.* entry is reported
 * with librdkafka's words and its place in the file. */
static struct ofe_config *load_yaml(const char *yaml, struct ofe_config_busdesc *d,
                                    const char *name)
{
    struct ofe_config *cfg = ofe_config_new();
    int rc = ofe_config_load_buffer(cfg, "bus.yaml", yaml, strlen(yaml));
    size_t nd;
    const struct ofe_config_diag *diags = ofe_config_diags(cfg, &nd);
    for (size_t i = 0; i < nd; i++) {
        char line[512];
        fprintf(stderr, "%s\n", ofe_config_diag_format(&diags[i], line, sizeof(line)));
    }
    assert_int_equal(rc, 0);
    char desc[512], err[512];
    rc = ofe_config_resolve_bus(cfg, name, NULL, d, desc, sizeof(desc), err, sizeof(err));
    if (rc)
        fprintf(stderr, "resolve: %s\n", err);
    assert_int_equal(rc, 0);
    fprintf(stderr, "%s\n", desc);
    assert_int_equal(d->kind, OFE_CONFIG_BUS_KAFKA);
    return cfg;
}

static void test_yaml(void **state)
{
    char yaml[2048];
    snprintf(yaml, sizeof(yaml),
             "apiVersion: events.openfunction.io/v1alpha1\n"
             "kind: EventBus\n"
             "metadata:\n"
             "  name: default\n"
             "spec:\n"
             "  kafka:\n"
             "    brokers: %s\n"
             "    consumerGroup: yaml-shared\n"
             "    rdkafka.fetch.wait.max.ms: \"50\"\n",
             srv->url);
    struct ofe_config_busdesc d;
    struct ofe_config *cfg = load_yaml(yaml, &d, "default");
    struct ofe_bus_opts o = {.component = "test"};
    struct ofe_bus *b = NULL;
    char err[512];
    int rc = ofe_bus_open(&d, &o, &b, err, sizeof(err));
    ofe_config_destroy(cfg); /* the bus keeps its own copy of the options */
    if (rc)
        fprintf(stderr, "open: %s\n", err);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(ofe_bus_describe(b), srv->url));
    /* Published before anyone subscribed: found by the new group. */
    enum { N = 5 };
    static struct ofe_ce *evs[N];
    for (int i = 0; i < N; i++)
        evs[i] = mkev(i, NULL);
    publish_all(b, "yaml", evs, N);
    struct coll *col = calloc(1, sizeof(*col));
    coll_init(col);
    const char *topics[] = {"yaml"};
    struct ofe_sub_opts so = {.group = "ignored-for-consumerGroup",
                              .topics = topics,
                              .ntopics = 1,
                              .start = OFE_START_DEFAULT,
                              .on_msg = on_msg,
                              .opaque = col};
    struct ofe_sub *s;
    assert_int_equal(ofe_bus_subscribe(b, &so, &s, err, sizeof(err)), 0);
    assert_true(wait_distinct(col, 0, N, 20000));
    /* Committed under consumerGroup, not the subscription's group name. */
    int64_t sum = 0;
    for (uint64_t end = now_ms() + 10000; now_ms() < end && sum != N; msleep(100)) {
        sum = 0;
        for (int p = 0; p < 4; p++) {
            int64_t off = committed("yaml-shared", "yaml", p);
            sum += off > 0 ? off : 0;
        }
    }
    fprintf(stderr, "yaml: committed offsets of yaml-shared sum to %lld\n", (long long)sum);
    assert_int_equal(sum, N);
    assert_int_equal(committed("ignored-for-consumerGroup", "yaml", 0) >= 0, 0);
    ofe_sub_close(s);
    ofe_bus_close(b, 2000);
    for (int i = 0; i < N; i++)
        ofe_ce_unref(evs[i]);
    free(col);

    snprintf(yaml, sizeof(yaml),
             "apiVersion: dapr.io/v1alpha1\n"
             "kind: Component\n"
             "metadata:\n"
             "  name: kbus\n"
             "spec:\n"
             "  type: pubsub.kafka\n"
             "  version: v1\n"
             "  metadata:\n"
             "  - name: brokers\n"
             "    value: %s\n"
             "  - name: initialOffset\n"
             "    value: newest\n"
             "  - name: rdkafka.no.such.property\n"
             "    value: \"1\"\n",
             srv->url);
    cfg = load_yaml(yaml, &d, "kbus");
    assert_int_equal(d.kafka->initial_offset, OFE_CONFIG_OFFSET_NEWEST);
    rc = ofe_bus_open(&d, &o, &b, err, sizeof(err));
    fprintf(stderr, "component: %s\n", err);
    assert_int_equal(rc, OFE_EINVAL);
    assert_non_null(strstr(err, "rdkafka.no.such.property: No such configuration property"));
    assert_non_null(strstr(err, "bus.yaml:"));
    ofe_config_destroy(cfg);
}

int main(int argc, char **argv)
{
    if (argc == 5 && !strcmp(argv[1], "--child-gap"))
        return child_gap(argv[2], argv[3], argv[4]);
    const char *extra[] = {"--topic", "gap:1",   "--topic", "nack:1",    "--topic",
                           "big:1",   "--topic", "split:4", "--topic",   "rebal:4",
                           "--topic", "order:4", "--topic", "bounded:2", NULL};
    srv = tu_server_start(TU_KAFKA, extra);
    if (!srv)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_yaml),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_key_order),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_nack),
        cmocka_unit_test(test_bounded_inflight),
        cmocka_unit_test(test_groups),
        cmocka_unit_test(test_gap_crash),
        cmocka_unit_test(test_rebalance),
        cmocka_unit_test(test_resume_refused),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_brokers_down),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tu_server_free(srv);
    return rc;
}
