/* The redis backend's own behaviour against a real redis-server, beyond the
 * conformance suite: option errors (TLS needs hiredis >= 1.0), password and
 * ACL user authentication with precise errors, stream trimming, where a new
 * group starts, redisDB, consumerID, entries written by Dapr, a deleted
 * stream, and close with publishes still waiting. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "ofe/config.h"
#include "ofe/err.h"
#include "ofe/log.h"
#include "ofe/metrics.h"
#include "ofe/pubsub.h"
#include "servers.h"

#define PASSWORD "s3cret pass"
#define ALICE_PW "alice-pw"
static struct tu_server *SRV;

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

static int setup(void **state)
{
    ofe_log_set_level(OFE_LOG_ERROR);
    const char *extra[] = {"--requirepass", PASSWORD, NULL};
    SRV = tu_server_start(TU_REDIS, extra);
    if (!SRV)
        return -1;
    redisContext *c = redisConnect("127.0.0.1", SRV->port);
    redisReply *r = c && !c->err ? redisCommand(c, "AUTH %s", PASSWORD) : NULL;
    freeReplyObject(r);
    r = c && !c->err ? redisCommand(c, "ACL SETUSER alice on >%s ~* &* +@all", ALICE_PW) : NULL;
    int rc = r && r->type == REDIS_REPLY_STATUS ? 0 : -1;
    freeReplyObject(r);
    redisFree(c);
    return rc;
}

static int teardown(void **state)
{
    tu_server_free(SRV);
    return 0;
}

/* A raw hiredis connection, authenticated. */
static redisContext *raw(void)
{
    redisContext *c = redisConnect("127.0.0.1", SRV->port);
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    redisReply *r = redisCommand(c, "AUTH %s", PASSWORD);
    assert_non_null(r);
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    return c;
}

static long long xlen(int db, const char *key)
{
    redisContext *c = raw();
    redisReply *r = redisCommand(c, "SELECT %d", db);
    freeReplyObject(r);
    r = redisCommand(c, "XLEN %s", key);
    assert_non_null(r);
    long long n = r->integer;
    freeReplyObject(r);
    redisFree(c);
    return n;
}

static void base(struct ofe_config_redis_bus *r)
{
    static char host[64];
    snprintf(host, sizeof(host), "%s", SRV->addr);
    memset(r, 0, sizeof(*r));
    r->redis_host = host;
    r->redis_password = PASSWORD;
    r->processing_timeout_ms = 1000;
    r->redeliver_interval_ms = 250;
}

static int open_r(const struct ofe_config_redis_bus *r, uint32_t timeout_ms, struct ofe_bus **b,
                  char *err, size_t errsz)
{
    struct ofe_config_busdesc d = {
        .kind = OFE_CONFIG_BUS_REDIS, .kind_name = "redis", .options = &r->node, .redis = r};
    struct ofe_bus_opts o = {.component = "test", .publish_timeout_ms = timeout_ms};
    return ofe_bus_open(&d, &o, b, err, errsz);
}

static struct ofe_ce *ev(const char *id)
{
    struct ofe_ce *e = ofe_ce_new();
    char err[200];
    assert_int_equal(ofe_ce_set_str(e, "id", 0, id, err, sizeof(err)), 0);
    assert_int_equal(ofe_ce_set_str(e, "source", 0, "/redis-test", err, sizeof(err)), 0);
    assert_int_equal(ofe_ce_set_str(e, "specversion", 0, "1.0", err, sizeof(err)), 0);
    assert_int_equal(ofe_ce_set_str(e, "type", 0, "t", err, sizeof(err)), 0);
    assert_int_equal(ofe_ce_set_data(e, "payload", 7), 0);
    return e;
}

static void publish_ok(struct ofe_bus *b, const char *topic, const char *id)
{
    char err[600];
    struct ofe_ce *e = ev(id);
    int rc = ofe_bus_publish_sync(b, topic, e, err, sizeof(err));
    if (rc)
        fail_msg("publish %s: %s", id, err);
    ofe_ce_unref(e);
}

static bool wait_ready(struct ofe_bus *b, char *why, size_t whysz, unsigned ms)
{
    uint64_t end = now_ms() + ms;
    while (!ofe_bus_ready(b, why, whysz)) {
        if (now_ms() > end)
            return false;
        msleep(10);
    }
    return true;
}

/* A subscription that records ids (acking everything). */
struct rec {
    pthread_mutex_t lock;
    char ids[64][64];
    int n;
    int invalid;
    char inv_err[400];
};

static void rec_msg(struct ofe_msg *m, void *opaque)
{
    struct rec *r = opaque;
    pthread_mutex_lock(&r->lock);
    if (ofe_msg_event(m)) {
        if (r->n < 64)
            snprintf(r->ids[r->n++], 64, "%s", ofe_ce_get_str(ofe_msg_event(m), "id"));
    } else {
        r->invalid++;
        snprintf(r->inv_err, sizeof(r->inv_err), "%s", ofe_msg_error(m));
    }
    pthread_mutex_unlock(&r->lock);
    ofe_msg_ack(m);
}

static int rec_count(struct rec *r)
{
    pthread_mutex_lock(&r->lock);
    int n = r->n + r->invalid;
    pthread_mutex_unlock(&r->lock);
    return n;
}

static bool rec_wait(struct rec *r, int n, unsigned ms)
{
    uint64_t end = now_ms() + ms;
    while (rec_count(r) < n && now_ms() < end)
        msleep(10);
    return rec_count(r) >= n;
}

static struct ofe_sub *sub(struct ofe_bus *b, const char *topic, const char *group,
                           enum ofe_start start, struct rec *r)
{
    const char *topics[] = {topic};
    struct ofe_sub_opts so = {.group = group,
                              .topics = topics,
                              .ntopics = 1,
                              .start = start,
                              .on_msg = rec_msg,
                              .opaque = r};
    struct ofe_sub *s;
    char err[600];
    if (ofe_bus_subscribe(b, &so, &s, err, sizeof(err)))
        fail_msg("subscribe: %s", err);
    return s;
}

/* ---- tests -------------------------------------------------------------- */

static void expect_open_error(const struct ofe_config_redis_bus *r, int code, const char *needle)
{
    struct ofe_bus *b = NULL;
    char err[600] = "";
    int rc = open_r(r, 0, &b, err, sizeof(err));
    if (rc != code || !strstr(err, needle))
        fail_msg("open: got %d \"%s\", expected %d with \"%s\"", rc, err, code, needle);
    assert_null(b);
}

static void test_option_errors(void **state)
{
    struct ofe_config_redis_bus r;
    base(&r);
    r.enable_tls = true;
    expect_open_error(&r, OFE_EUNSUPP, "hiredis >= 1.0");
    base(&r);
    r.redis_host = "rediss://127.0.0.1:6379";
    expect_open_error(&r, OFE_EUNSUPP, "hiredis >= 1.0");
    base(&r);
    r.redis_host = NULL;
    expect_open_error(&r, OFE_EINVAL, "redisHost is required");
    base(&r);
    r.redis_host = "127.0.0.1:99999";
    expect_open_error(&r, OFE_EINVAL, "port must be a number");
    base(&r);
    r.redis_host = "127.0.0.1:abc";
    expect_open_error(&r, OFE_EINVAL, "port must be a number");
    base(&r);
    r.max_len_approx = 100;
    r.stream_ttl_ms = 60000;
    expect_open_error(&r, OFE_EINVAL, "choose one");
    base(&r);
    r.redis_password = NULL;
    r.redis_username = "alice";
    expect_open_error(&r, OFE_EINVAL, "redisUsername is set without redisPassword");
    base(&r);
    r.redis_db = -1;
    expect_open_error(&r, OFE_EINVAL, "redisDB");

    /* the embedded bus with TLS on its RESP port */
    struct ofe_config_embedded_bus e = {.address = "127.0.0.1:1"};
    e.tls.node.present = true;
    struct ofe_config_busdesc d = {.kind = OFE_CONFIG_BUS_EMBEDDED,
                                   .kind_name = "embedded",
                                   .options = &e.node,
                                   .embedded = &e};
    struct ofe_bus *b = NULL;
    char err[600] = "";
    assert_int_equal(ofe_bus_open(&d, NULL, &b, err, sizeof(err)), OFE_EUNSUPP);
    assert_non_null(strstr(err, "hiredis >= 1.0"));
}

static void test_auth_failures(void **state)
{
    struct ofe_config_redis_bus r;
    char err[600] = "", why[600] = "";
    struct ofe_bus *b = NULL;
    struct ofe_ce *e = ev("a1");

    /* wrong password: not ready, says why; publishes fail as auth errors */
    base(&r);
    r.redis_password = "wrong";
    assert_int_equal(open_r(&r, 800, &b, err, sizeof(err)), 0);
    assert_false(wait_ready(b, why, sizeof(why), 1500));
    if (!strstr(why, "authentication failed") || !strstr(why, "WRONGPASS"))
        fail_msg("why: %s", why);
    int rc = ofe_bus_publish_sync(b, "auth-topic", e, err, sizeof(err));
    assert_int_equal(rc, OFE_EAUTH);
    if (!strstr(err, "authentication failed"))
        fail_msg("publish error: %s", err);
    ofe_bus_close(b, 0);

    /* no password at all */
    base(&r);
    r.redis_password = NULL;
    assert_int_equal(open_r(&r, 800, &b, err, sizeof(err)), 0);
    assert_false(wait_ready(b, why, sizeof(why), 1500));
    if (!strstr(why, "NOAUTH") || !strstr(why, "no password configured"))
        fail_msg("why: %s", why);
    ofe_bus_close(b, 0);

    /* an ACL user with a wrong password */
    base(&r);
    r.redis_username = "alice";
    r.redis_password = "not-alice-pw";
    assert_int_equal(open_r(&r, 800, &b, err, sizeof(err)), 0);
    assert_false(wait_ready(b, why, sizeof(why), 1500));
    if (!strstr(why, "for user alice") || !strstr(why, "WRONGPASS"))
        fail_msg("why: %s", why);
    ofe_bus_close(b, 0);
    ofe_ce_unref(e);
}

static void test_acl_user(void **state)
{
    struct ofe_config_redis_bus r;
    char err[600], why[600];
    struct ofe_bus *b;
    base(&r);
    r.redis_username = "alice";
    r.redis_password = ALICE_PW;
    assert_int_equal(open_r(&r, 5000, &b, err, sizeof(err)), 0);
    assert_non_null(strstr(ofe_bus_describe(b), "user alice"));
    struct rec rc = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct ofe_sub *s = sub(b, "acl-topic", "acl-group", OFE_START_OLDEST, &rc);
    assert_true(wait_ready(b, why, sizeof(why), 5000));
    publish_ok(b, "acl-topic", "acl-1");
    assert_true(rec_wait(&rc, 1, 10000));
    assert_string_equal(rc.ids[0], "acl-1");
    ofe_sub_close(s);
    ofe_bus_close(b, 1000);
}

static void test_trimming(void **state)
{
    struct ofe_config_redis_bus r;
    char err[600];
    struct ofe_bus *b;
    base(&r);
    r.max_len_approx = 100;
    assert_int_equal(open_r(&r, 5000, &b, err, sizeof(err)), 0);
    for (int i = 0; i < 1000; i++) {
        char id[32];
        snprintf(id, sizeof(id), "t%d", i);
        publish_ok(b, "trim-topic", id);
    }
    long long n = xlen(0, "trim-topic");
    /* MAXLEN ~ trims whole macro nodes: about 100, never all 1000 */
    if (n < 100 || n >= 1000)
        fail_msg("XLEN after 1000 publishes with maxLenApprox 100: %lld", n);
    ofe_bus_close(b, 1000);
}

static void test_start_newest(void **state)
{
    struct ofe_config_redis_bus r;
    char err[600], why[600];
    struct ofe_bus *b;
    base(&r);
    assert_int_equal(open_r(&r, 5000, &b, err, sizeof(err)), 0);
    publish_ok(b, "newest-topic", "old-1");
    publish_ok(b, "newest-topic", "old-2");
    struct rec rn = {.lock = PTHREAD_MUTEX_INITIALIZER}, ro = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct ofe_sub *sn = sub(b, "newest-topic", "g-newest", OFE_START_NEWEST, &rn);
    struct ofe_sub *so = sub(b, "newest-topic", "g-default", OFE_START_DEFAULT, &ro);
    assert_true(wait_ready(b, why, sizeof(why), 5000));
    publish_ok(b, "newest-topic", "new-1");
    assert_true(rec_wait(&rn, 1, 10000));
    assert_true(rec_wait(&ro, 3, 10000)); /* the default is OLDEST */
    msleep(300);
    assert_int_equal(rec_count(&rn), 1);
    assert_string_equal(rn.ids[0], "new-1");
    assert_int_equal(rec_count(&ro), 3);
    assert_string_equal(ro.ids[0], "old-1");
    ofe_sub_close(sn);
    ofe_sub_close(so);
    ofe_bus_close(b, 1000);
}

static void test_db_and_consumer_id(void **state)
{
    struct ofe_config_redis_bus r;
    char err[600], why[600];
    struct ofe_bus *b;
    base(&r);
    r.redis_db = 3;
    r.consumer_id = "one-app";
    assert_int_equal(open_r(&r, 5000, &b, err, sizeof(err)), 0);
    assert_non_null(strstr(ofe_bus_describe(b), "db 3"));
    /* consumerID replaces the groups: two subscriptions share one group */
    struct rec r1 = {.lock = PTHREAD_MUTEX_INITIALIZER}, r2 = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct ofe_sub *s1 = sub(b, "db-topic", "group-a", OFE_START_OLDEST, &r1);
    struct ofe_sub *s2 = sub(b, "db-topic", "group-b", OFE_START_OLDEST, &r2);
    assert_true(wait_ready(b, why, sizeof(why), 5000));
    for (int i = 0; i < 20; i++) {
        char id[16];
        snprintf(id, sizeof(id), "db-%d", i);
        publish_ok(b, "db-topic", id);
    }
    uint64_t end = now_ms() + 10000;
    while (rec_count(&r1) + rec_count(&r2) < 20 && now_ms() < end)
        msleep(10);
    msleep(300);
    assert_int_equal(rec_count(&r1) + rec_count(&r2), 20);
    assert_int_equal(xlen(3, "db-topic"), 20);
    assert_int_equal(xlen(0, "db-topic"), 0);
    redisContext *c = raw();
    redisReply *x = redisCommand(c, "SELECT 3");
    freeReplyObject(x);
    x = redisCommand(c, "XINFO GROUPS db-topic");
    assert_non_null(x);
    assert_int_equal(x->type, REDIS_REPLY_ARRAY);
    assert_int_equal(x->elements, 1); /* only "one-app" */
    freeReplyObject(x);
    redisFree(c);
    ofe_sub_close(s1);
    ofe_sub_close(s2);
    ofe_bus_close(b, 1000);
}

static void test_foreign_entries(void **state)
{
    struct ofe_config_redis_bus r;
    char err[600], why[600];
    struct ofe_bus *b;
    base(&r);
    assert_int_equal(open_r(&r, 5000, &b, err, sizeof(err)), 0);
    struct rec rr = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct ofe_sub *s = sub(b, "foreign-topic", "g-foreign", OFE_START_OLDEST, &rr);
    assert_true(wait_ready(b, why, sizeof(why), 5000));
    redisContext *c = raw();
    /* what Dapr's pubsub.redis writes: the event as JSON in "data" */
    redisReply *x = redisCommand(
        c, "XADD foreign-topic * data %s",
        "{\"specversion\":\"1.0\",\"id\":\"dapr-1\",\"source\":\"/dapr\",\"type\":\"t\"}");
    freeReplyObject(x);
    /* a binding version this build does not know */
    x = redisCommand(c, "XADD foreign-topic * ofe-ce 9 id x source /s specversion 1.0 type t");
    freeReplyObject(x);
    redisFree(c);
    assert_true(rec_wait(&rr, 2, 10000));
    assert_int_equal(rr.n, 1);
    assert_string_equal(rr.ids[0], "dapr-1");
    assert_int_equal(rr.invalid, 1);
    if (!strstr(rr.inv_err, "binding version \"9\""))
        fail_msg("invalid: %s", rr.inv_err);
    ofe_sub_close(s);
    ofe_bus_close(b, 1000);
}

static void test_stream_deleted(void **state)
{
    struct ofe_config_redis_bus r;
    char err[600], why[600];
    struct ofe_bus *b;
    base(&r);
    assert_int_equal(open_r(&r, 5000, &b, err, sizeof(err)), 0);
    struct rec rr = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct ofe_sub *s = sub(b, "del-topic", "g-del", OFE_START_OLDEST, &rr);
    assert_true(wait_ready(b, why, sizeof(why), 5000));
    publish_ok(b, "del-topic", "before");
    assert_true(rec_wait(&rr, 1, 10000));
    redisContext *c = raw();
    redisReply *x = redisCommand(c, "DEL del-topic");
    freeReplyObject(x);
    redisFree(c);
    /* the group is gone with the stream: the subscription makes it again */
    uint64_t end = now_ms() + 15000;
    int i = 0;
    while (rec_count(&rr) < 2 && now_ms() < end) {
        char id[32];
        snprintf(id, sizeof(id), "after-%d", i++);
        publish_ok(b, "del-topic", id);
        msleep(200);
    }
    assert_true(rec_count(&rr) >= 2);
    ofe_sub_close(s);
    ofe_bus_close(b, 1000);
}

struct done_rec {
    pthread_mutex_t lock;
    int n, err;
    char msg[600];
};

static void done_cb(void *opaque, int err, const char *msg)
{
    struct done_rec *d = opaque;
    pthread_mutex_lock(&d->lock);
    d->n++;
    d->err = err;
    snprintf(d->msg, sizeof(d->msg), "%s", msg);
    pthread_mutex_unlock(&d->lock);
}

static void test_close_fails_waiting(void **state)
{
    /* nothing listens on this port: publishes wait, then close fails them */
    struct ofe_config_redis_bus r;
    char err[600], host[64];
    struct ofe_bus *b;
    base(&r);
    snprintf(host, sizeof(host), "127.0.0.1:%d", tu_free_port());
    r.redis_host = host;
    assert_int_equal(open_r(&r, 60000, &b, err, sizeof(err)), 0);
    struct done_rec d = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct ofe_ce *e = ev("c1");
    assert_int_equal(ofe_bus_publish(b, "close-topic", e, done_cb, &d, err, sizeof(err)), 0);
    assert_int_equal(ofe_bus_publish(b, "close-topic", e, done_cb, &d, err, sizeof(err)), 0);
    ofe_ce_unref(e);
    msleep(100);
    assert_int_equal(d.n, 0);
    uint64_t t0 = now_ms();
    ofe_bus_close(b, 200);
    assert_true(now_ms() - t0 < 5000);
    assert_int_equal(d.n, 2);
    assert_int_equal(d.err, OFE_ECLOSED);
    if (!strstr(d.msg, "Connection refused"))
        fail_msg("close error: %s", d.msg);
}

/* A subscription that keeps every message (no ack) until told. */
struct holder {
    pthread_mutex_t lock;
    struct ofe_msg *held[1024];
    int n, max_seen;
    struct ofe_sub *sub;
};

static void hold_msg(struct ofe_msg *m, void *opaque)
{
    struct holder *h = opaque;
    pthread_mutex_lock(&h->lock);
    h->held[h->n++] = m;
    pthread_mutex_unlock(&h->lock);
}

static int holder_count(struct holder *h)
{
    pthread_mutex_lock(&h->lock);
    int n = h->n;
    pthread_mutex_unlock(&h->lock);
    return n;
}

static void test_inflight_bound(void **state)
{
    struct ofe_config_redis_bus r;
    char err[600], why[600];
    struct ofe_bus *b;
    base(&r);
    assert_int_equal(open_r(&r, 10000, &b, err, sizeof(err)), 0);
    /* three topics: COUNT is per stream, the total must still fit */
    const char *topics[] = {"bound-a", "bound-b", "bound-c"};
    for (int i = 0; i < 300; i++) {
        char id[32];
        snprintf(id, sizeof(id), "bd-%d", i);
        publish_ok(b, topics[i % 3], id);
    }
    struct holder h = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct ofe_sub_opts so = {.group = "g-bound",
                              .topics = topics,
                              .ntopics = 3,
                              .max_inflight = 10,
                              .start = OFE_START_OLDEST,
                              .on_msg = hold_msg,
                              .opaque = &h};
    struct ofe_sub *s;
    assert_int_equal(ofe_bus_subscribe(b, &so, &s, err, sizeof(err)), 0);
    assert_true(wait_ready(b, why, sizeof(why), 5000));
    uint64_t end = now_ms() + 10000;
    while (holder_count(&h) < 10 && now_ms() < end)
        msleep(10);
    msleep(500);
    assert_int_equal(holder_count(&h), 10);
    assert_int_equal(ofe_sub_inflight(s), 10);
    /* acking frees the window: everything arrives, never more than 10 held */
    int acked = 0;
    end = now_ms() + 30000;
    while (acked < 300 && now_ms() < end) {
        pthread_mutex_lock(&h.lock);
        int n = h.n;
        pthread_mutex_unlock(&h.lock);
        if (n - acked > 10)
            fail_msg("%d messages held at once, max_inflight is 10", n - acked);
        if (acked < n) {
            ofe_msg_ack(h.held[acked++]);
            continue;
        }
        msleep(2);
    }
    assert_int_equal(acked, 300);
    ofe_sub_close(s);
    ofe_bus_close(b, 1000);
}

static void test_held_not_reclaimed(void **state)
{
    /* processingTimeout 400 ms, checked every 100 ms: the holder keeps the
     * message for 1.5 s and must not see it a second time */
    struct ofe_config_redis_bus r;
    char err[600], why[600];
    struct ofe_bus *b;
    base(&r);
    r.processing_timeout_ms = 400;
    r.redeliver_interval_ms = 100;
    assert_int_equal(open_r(&r, 10000, &b, err, sizeof(err)), 0);
    struct holder h = {.lock = PTHREAD_MUTEX_INITIALIZER};
    const char *topics[] = {"held-topic"};
    struct ofe_sub_opts so = {.group = "g-held",
                              .topics = topics,
                              .ntopics = 1,
                              .start = OFE_START_OLDEST,
                              .on_msg = hold_msg,
                              .opaque = &h};
    struct ofe_sub *s;
    assert_int_equal(ofe_bus_subscribe(b, &so, &s, err, sizeof(err)), 0);
    assert_true(wait_ready(b, why, sizeof(why), 5000));
    publish_ok(b, "held-topic", "held-1");
    uint64_t end = now_ms() + 10000;
    while (holder_count(&h) < 1 && now_ms() < end)
        msleep(10);
    msleep(1500);
    assert_int_equal(holder_count(&h), 1);
    /* the claims kept counting it in the PEL, though */
    redisContext *c = raw();
    redisReply *x = redisCommand(c, "XPENDING held-topic g-held - + 10");
    assert_true(x && x->type == REDIS_REPLY_ARRAY && x->elements == 1);
    assert_true(x->element[0]->element[3]->integer > 1);
    freeReplyObject(x);
    redisFree(c);
    ofe_msg_ack(h.held[0]);
    ofe_sub_close(s);
    ofe_bus_close(b, 1000);
}

static void test_lag_gauges(void **state)
{
    struct ofe_config_redis_bus r;
    char err[600], why[600];
    struct ofe_bus *b;
    base(&r);
    struct ofe_metrics *m = ofe_metrics_new();
    struct ofe_config_busdesc d = {
        .kind = OFE_CONFIG_BUS_REDIS, .kind_name = "redis", .options = &r.node, .redis = &r};
    struct ofe_bus_opts o = {.component = "test", .metrics = m};
    assert_int_equal(ofe_bus_open(&d, &o, &b, err, sizeof(err)), 0);
    for (int i = 0; i < 10; i++) {
        char id[16];
        snprintf(id, sizeof(id), "lag-%d", i);
        publish_ok(b, "lag-topic", id);
    }
    struct holder h = {.lock = PTHREAD_MUTEX_INITIALIZER};
    const char *topics[] = {"lag-topic"};
    struct ofe_sub_opts so = {.group = "g-lag",
                              .topics = topics,
                              .ntopics = 1,
                              .max_inflight = 3,
                              .start = OFE_START_OLDEST,
                              .on_msg = hold_msg,
                              .opaque = &h};
    struct ofe_sub *s;
    assert_int_equal(ofe_bus_subscribe(b, &so, &s, err, sizeof(err)), 0);
    assert_true(wait_ready(b, why, sizeof(why), 5000));
    const char *lb[] = {"backend", "redis", "topic", "lag-topic", "group", "g-lag", NULL};
    struct ofe_gauge *lag = ofe_metrics_gauge(m, "ofe_bus_consumer_lag", "", lb);
    struct ofe_gauge *pend = ofe_metrics_gauge(m, "ofe_bus_consumer_pending", "", lb);
    /* three held of ten: after the next refresh (every 5 s) lag 7, pending 3 */
    uint64_t end = now_ms() + 12000;
    while ((ofe_gauge_get(lag) != 7 || ofe_gauge_get(pend) != 3) && now_ms() < end)
        msleep(50);
    if (ofe_gauge_get(lag) != 7 || ofe_gauge_get(pend) != 3)
        fail_msg("lag %g pending %g (held %d)", ofe_gauge_get(lag), ofe_gauge_get(pend),
                 holder_count(&h));
    assert_int_equal(holder_count(&h), 3);
    for (int i = 0; i < 3; i++)
        ofe_msg_ack(h.held[i]);
    ofe_sub_close(s);
    pthread_mutex_lock(&h.lock);
    for (int i = 3; i < h.n; i++)
        ofe_msg_ack(h.held[i]);
    pthread_mutex_unlock(&h.lock);
    ofe_bus_close(b, 1000);
    ofe_metrics_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_option_errors),
        cmocka_unit_test(test_auth_failures),
        cmocka_unit_test(test_acl_user),
        cmocka_unit_test(test_trimming),
        cmocka_unit_test(test_start_newest),
        cmocka_unit_test(test_db_and_consumer_id),
        cmocka_unit_test(test_foreign_entries),
        cmocka_unit_test(test_stream_deleted),
        cmocka_unit_test(test_close_fails_waiting),
        cmocka_unit_test(test_inflight_bound),
        cmocka_unit_test(test_held_not_reclaimed),
        cmocka_unit_test(test_lag_gauges),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
