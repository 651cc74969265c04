/* The redis backend: Redis Streams (Redis >= 6.2, Valkey) and the embedded
 * bus ofe-eventbus, which speaks the same RESP2 stream commands.
 *
 * Mapping (docs/backends.md): a topic is a stream key of the same name; a
 * consumer group is a Redis consumer group (XGROUP CREATE ... MKSTREAM, at
 * "0" for OLDEST, "$" for NEWEST); a member is a Redis consumer named by
 * ofe_sub__consumer(). An event is one stream entry in the Redis field
 * mapping (ofe_ce_redis_encode, docs/bindings.md).
 *
 * Connections and threads:
 *   - one command connection per bus, run by the bus thread (cmd_run): it
 *     writes XADDs (and XACKs of every subscription, batched per stream and
 *     group) pipelined with writev from a FIFO and matches the replies in
 *     order. A publish completes on its XADD reply. While disconnected,
 *     publishes wait (bounded by publish_timeout_ms) and are written again
 *     after reconnecting, so a publish whose reply was lost with the
 *     connection may be stored twice (at least once).
 *   - one connection and thread per subscription (sub_run), blocking in
 *     XREADGROUP ... BLOCK while it has capacity, and every
 *     redeliverInterval running XAUTOCLAIM for entries idle longer than
 *     processingTimeout (left by a dead member), with their delivery counts
 *     from XPENDING.
 * hiredis (0.14) is used for connecting, AUTH, the RESP formatter and the
 * reply parser; the bus thread does its own non-blocking I/O.
 *
 * Nack: the core keeps a nacked message and delivers it again after the
 * delay (ops->nack is NULL); the entry stays pending in Redis meanwhile, so
 * a crash still redelivers it. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "ofe/arena.h"
#include "ofe/config.h"
#include "ofe/err.h"
#include "ofe/log.h"
#include "ofe/metrics.h"
#include "pubsub_int.h"

#define R_DEFAULT_PORT          6379
#define R_DEFAULT_REDELIVER_MS  60000 /* Dapr's redeliverInterval default */
#define R_DEFAULT_PROCESSING_MS 15000 /* Dapr's processingTimeout default */
#define R_DEFAULT_QUEUE_DEPTH   100
#define R_DEFAULT_DIAL_MS       5000
#define R_DEFAULT_READ_MS       3000
#define R_DEFAULT_MAX_BULK      (512LL * 1024 * 1024) /* Redis's proto-max-bulk-len default */
#define R_BACKOFF_BASE_MS       100
#define R_BACKOFF_CAP_MS        5000
#define R_MAX_UNREPLIED         8192 /* requests written and not yet answered */
#define R_MAX_UNREPLIED_BYTES   (16 * 1024 * 1024)
#define R_ACK_BATCH             1000  /* ids per XACK */
#define R_ACK_BACKLOG_MAX       50000 /* acks not yet written: subscriptions stop fetching */
#define R_BLOCK_MAX_MS          5000
#define R_ID_MAX                48
#define R_RBUF                  (256 * 1024)
#define R_FEED                  4096 /* bytes per redisReaderFeed */

/* An ack waits up to R_ACK_DELAY_MS for others to go out in the same XACK
 * (or until R_ACK_EAGER are waiting, or a publish goes out anyway): a
 * handler acking from its own thread would otherwise wake the bus thread
 * and cost the server one XACK (and, under fsync always, one journal
 * write) per event. A crash in that window redelivers those entries, as
 * for any unacked entry. */
#define R_ACK_DELAY_MS 1
#define R_ACK_EAGER    256

/* A publish made while the bus thread sleeps waiting for replies to
 * requests it already wrote does not wake it: the next reply does, and the
 * publish goes out then (the server answers one connection's commands in
 * order, so it would not have been served sooner). Only every
 * R_PUB_HOLD-th such publish wakes it, to keep the pipeline full. */
#define R_PUB_HOLD 64

/* The backend's threads do all its socket writes; a server that closed
 * the connection must give EPIPE there, not kill the process (hiredis 0.14
 * writes with write(2), without MSG_NOSIGNAL). */
static void block_sigpipe(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#define MS(x) ((uint64_t)(x)*1000000u)

/* ---- options ------------------------------------------------------------ */

struct rconf {
    bool embedded;
    char *host; /* host name, or a unix socket path when port is 0 */
    int port;
    char *username;
    char *password;
    int db;
    char *group; /* consumerID: replaces every subscriber's group when set */
    uint32_t redeliver_ms, processing_ms;
    unsigned queue_depth;
    int64_t maxlen;
    int64_t ttl_ms;
    uint32_t dial_ms, read_ms, write_ms;
    int64_t max_event; /* client-side limit from the config, 0 = the server's */
};

static void rconf_free(struct rconf *c)
{
    free(c->host);
    free(c->username);
    if (c->password) {
        explicit_bzero(c->password, strlen(c->password));
        free(c->password);
    }
    free(c->group);
}

/* Parses "host:port", "[v6]:port", "host", "redis://host:port" or a unix
 * socket path. */
static int parse_address(const char *key, const char *a, struct rconf *c, char *errstr,
                         size_t errstr_size)
{
    if (!a || !*a)
        return ofe_err(errstr, errstr_size, OFE_EINVAL, "%s is empty", key);
    if (!strncasecmp(a, "rediss://", 9))
        return ofe_err(errstr, errstr_size, OFE_EUNSUPP,
                       "%s \"%s\": TLS (rediss://) needs hiredis >= 1.0; this build uses "
                       "hiredis %d.%d, which has no TLS support",
                       key, a, HIREDIS_MAJOR, HIREDIS_MINOR);
    if (!strncasecmp(a, "redis://", 8))
        a += 8;
    if (a[0] == '/' || !strncasecmp(a, "unix:", 5)) {
        c->host = strdup(a[0] == '/' ? a : a + 5);
        c->port = 0;
        return c->host ? 0 : ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    }
    const char *hb = a, *he, *colon;
    if (a[0] == '[') {
        hb = a + 1;
        he = strchr(hb, ']');
        if (!he)
            return ofe_err(errstr, errstr_size, OFE_EINVAL, "%s \"%s\": missing ']'", key, a);
        colon = he[1] == ':' ? he + 1 : NULL;
        if (he[1] && !colon)
            return ofe_err(errstr, errstr_size, OFE_EINVAL, "%s \"%s\": expected host:port", key,
                           a);
    } else {
        colon = strrchr(a, ':');
        he = colon ? colon : a + strlen(a);
    }
    c->port = R_DEFAULT_PORT;
    if (colon) {
        char *end;
        errno = 0;
        long p = strtol(colon + 1, &end, 10);
        if (errno || end == colon + 1 || (*end && *end != '/') || p < 1 || p > 65535)
            return ofe_err(errstr, errstr_size, OFE_EINVAL,
                           "%s \"%s\": the port must be a number from 1 to 65535", key, a);
        c->port = (int)p;
    }
    if (he == hb)
        return ofe_err(errstr, errstr_size, OFE_EINVAL, "%s \"%s\": no host name", key, a);
    c->host = strndup(hb, (size_t)(he - hb));
    return c->host ? 0 : ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
}

static uint32_t ms_or(int64_t v, uint32_t dflt)
{
    if (v <= 0)
        return dflt;
    return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

static int conf_from_desc(const struct ofe_config_busdesc *d, struct rconf *c, char *errstr,
                          size_t errstr_size)
{
    memset(c, 0, sizeof(*c));
    int rc;
    if (d->kind == OFE_CONFIG_BUS_EMBEDDED) {
        const struct ofe_config_embedded_bus *e = d->embedded;
        c->embedded = true;
        if (e && e->tls.node.present)
            return ofe_err(errstr, errstr_size, OFE_EUNSUPP,
                           "embedded bus: its RESP port speaks TLS (spec.embedded.tls), and TLS "
                           "needs hiredis >= 1.0; this build uses hiredis %d.%d, which has no "
                           "TLS support",
                           HIREDIS_MAJOR, HIREDIS_MINOR);
        rc = parse_address("embedded.address",
                           e && e->address ? e->address : OFE_CONFIG_EMBEDDED_DEFAULT_ADDRESS, c,
                           errstr, errstr_size);
        if (rc)
            return rc;
        if (e && e->requirepass && *e->requirepass && !(c->password = strdup(e->requirepass)))
            return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
        if (e && e->limits.max_event_size > 0)
            c->max_event = e->limits.max_event_size;
        c->redeliver_ms = e ? e->redeliver_interval_ms : R_DEFAULT_REDELIVER_MS;
        c->processing_ms = e ? e->processing_timeout_ms : R_DEFAULT_PROCESSING_MS;
        c->queue_depth = R_DEFAULT_QUEUE_DEPTH;
        c->dial_ms = R_DEFAULT_DIAL_MS;
        c->read_ms = c->write_ms = R_DEFAULT_READ_MS;
        return 0;
    }
    const struct ofe_config_redis_bus *r = d->redis;
    if (!r)
        return ofe_err(errstr, errstr_size, OFE_EINVAL, "redis: no options");
    if (r->enable_tls)
        return ofe_err(errstr, errstr_size, OFE_EUNSUPP,
                       "redis: enableTLS is true, but TLS needs hiredis >= 1.0; this build uses "
                       "hiredis %d.%d, which has no TLS support (use a TLS-terminating proxy "
                       "such as stunnel on loopback, or rebuild against hiredis >= 1.0)",
                       HIREDIS_MAJOR, HIREDIS_MINOR);
    if (!r->redis_host || !*r->redis_host)
        return ofe_err(errstr, errstr_size, OFE_EINVAL, "redis: redisHost is required");
    if ((rc = parse_address("redis: redisHost", r->redis_host, c, errstr, errstr_size)))
        return rc;
    if (r->redis_db < 0 || r->redis_db > INT_MAX)
        return ofe_err(errstr, errstr_size, OFE_EINVAL,
                       "redis: redisDB %lld is out of range (0 or more)", (long long)r->redis_db);
    if (r->max_len_approx < 0)
        return ofe_err(errstr, errstr_size, OFE_EINVAL,
                       "redis: maxLenApprox must be 0 (no trimming) or more");
    if (r->max_len_approx > 0 && r->stream_ttl_ms > 0)
        return ofe_err(errstr, errstr_size, OFE_EINVAL,
                       "redis: maxLenApprox and streamTTL are both set, but Redis trims a stream "
                       "by one criterion per XADD (MAXLEN or MINID): choose one");
    c->db = (int)r->redis_db;
    c->maxlen = r->max_len_approx;
    c->ttl_ms = r->stream_ttl_ms > 0 ? r->stream_ttl_ms : 0;
    if ((r->redis_username && *r->redis_username && !(c->username = strdup(r->redis_username))) ||
        (r->redis_password && *r->redis_password && !(c->password = strdup(r->redis_password))) ||
        (r->consumer_id && *r->consumer_id && !(c->group = strdup(r->consumer_id))))
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    if (c->username && !c->password)
        return ofe_err(errstr, errstr_size, OFE_EINVAL,
                       "redis: redisUsername is set without redisPassword");
    /* redeliverInterval 0: never look for entries of dead members (the
     * config's default is 60s); processingTimeout 0 would claim every
     * member's entries at once, so it means the default */
    c->redeliver_ms = r->redeliver_interval_ms <= 0 ? 0 : ms_or(r->redeliver_interval_ms, 0);
    c->processing_ms = ms_or(r->processing_timeout_ms, R_DEFAULT_PROCESSING_MS);
    c->queue_depth = r->queue_depth > 0
                         ? (unsigned)(r->queue_depth > 100000 ? 100000 : r->queue_depth)
                         : R_DEFAULT_QUEUE_DEPTH;
    c->dial_ms = ms_or(r->dial_timeout_ms, R_DEFAULT_DIAL_MS);
    c->read_ms = ms_or(r->read_timeout_ms, R_DEFAULT_READ_MS);
    c->write_ms = ms_or(r->write_timeout_ms, c->read_ms);
    return 0;
}

/* ---- connections -------------------------------------------------------- */

static bool transient_error(const char *s)
{
    return !strncmp(s, "LOADING", 7) || !strncmp(s, "BUSY", 4) || !strncmp(s, "TRYAGAIN", 8) ||
           !strncmp(s, "MASTERDOWN", 10);
}

static bool auth_error(const char *s)
{
    return !strncmp(s, "NOAUTH", 6) || !strncmp(s, "WRONGPASS", 9) || !strncmp(s, "NOPERM", 6) ||
           strstr(s, "invalid password") || strstr(s, "without any password configured");
}

/* Connects and authenticates (blocking, bounded by the dial and read
 * timeouts). *max_bulk receives the server's proto-max-bulk-len when it
 * tells (else it is left alone). Returns the context, or NULL with *code
 * (OFE_ECONN, OFE_EAUTH, OFE_EINVAL, OFE_EREMOTE) and err. */
static redisContext *rconnect(const struct rconf *cf, const char *what, uint32_t extra_read_ms,
                              int64_t *max_bulk, int *code, char *err, size_t errsz)
{
    struct timeval tv = {cf->dial_ms / 1000, (cf->dial_ms % 1000) * 1000};
    redisContext *c = cf->port ? redisConnectWithTimeout(cf->host, cf->port, tv)
                               : redisConnectUnixWithTimeout(cf->host, tv);
    if (!c || c->err) {
        *code = OFE_ECONN;
        snprintf(err, errsz, "cannot connect to %s: %s", what, c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    uint32_t rms = cf->read_ms + extra_read_ms;
    struct timeval rt = {rms / 1000, (rms % 1000) * 1000};
    redisSetTimeout(c, rt);
    if (cf->port)
        redisEnableKeepAlive(c);
    /* hiredis frees its input buffer whenever it empties past 16 KiB and
     * grows it again for the next batch of replies: a large malloc (and a
     * consolidation of glibc's fast bins) per read. Keep up to 4 MiB. */
    if (c->reader)
        c->reader->maxbuf = 4u << 20;
    redisReply *r = NULL;
    if (cf->password) {
        if (cf->username)
            r = redisCommand(c, "AUTH %s %s", cf->username, cf->password);
        else
            r = redisCommand(c, "AUTH %s", cf->password);
        if (!r)
            goto io;
        if (r->type == REDIS_REPLY_ERROR) {
            *code = transient_error(r->str) ? OFE_ECONN : OFE_EAUTH;
            snprintf(err, errsz, "%s: authentication failed%s%s: %s", what,
                     cf->username ? " for user " : "", cf->username ? cf->username : "", r->str);
            goto fail;
        }
        freeReplyObject(r);
    }
    if (cf->db) {
        if (!(r = redisCommand(c, "SELECT %d", cf->db)))
            goto io;
        if (r->type == REDIS_REPLY_ERROR) {
            *code = auth_error(r->str) ? OFE_EAUTH : OFE_EINVAL;
            snprintf(err, errsz, "%s: SELECT %d (redisDB) failed: %s", what, cf->db, r->str);
            goto fail;
        }
        freeReplyObject(r);
    }
    if (!(r = redisCommand(c, "PING")))
        goto io;
    if (r->type == REDIS_REPLY_ERROR) {
        if (auth_error(r->str)) {
            *code = OFE_EAUTH;
            snprintf(err, errsz, "%s: authentication failed: %s%s", what, r->str,
                     cf->password ? "" : " (no password configured)");
        } else {
            *code = transient_error(r->str) ? OFE_ECONN : OFE_EREMOTE;
            snprintf(err, errsz, "%s: not ready: %s", what, r->str);
        }
        goto fail;
    }
    freeReplyObject(r);
    if (max_bulk) {
        /* Entries longer than this would make the server drop the
         * connection: refuse them at publish time instead. Servers without
         * CONFIG (ofe-eventbus, managed Redis) just answer an error. */
        r = redisCommand(c, "CONFIG GET proto-max-bulk-len");
        if (!r)
            goto io;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            r->element[1]->type == REDIS_REPLY_STRING) {
            long long v = strtoll(r->element[1]->str, NULL, 10);
            if (v > 0)
                *max_bulk = v;
        }
        freeReplyObject(r);
    }
    return c;
io:
    *code = OFE_ECONN;
    snprintf(err, errsz, "%s: %s", what, c->errstr[0] ? c->errstr : "connection lost");
    redisFree(c);
    return NULL;
fail:
    freeReplyObject(r);
    redisFree(c);
    return NULL;
}

/* ---- the bus ------------------------------------------------------------ */

enum { REQ_PUB = 0, REQ_ACK };

/* One command on the command connection: an XADD (p set until it
 * completes) or an XACK batch. */
struct req {
    struct req *next;
    int kind;
    struct ofe_pub *p; /* NULL for an ack, or a publish that already timed out */
    char *cmd;         /* formatted RESP (in the same allocation, see req_new) */
    size_t len;
    uint64_t deadline;
    char *topic; /* for error messages (publishes; same allocation) */
};

struct ackid {
    char id[R_ID_MAX];
    uint8_t len;
};

/* Ids to acknowledge on one stream for one group. Owned by the bus (lives
 * until close), so acks outlive their subscription. */
struct bucket {
    struct bucket *next, *next_dirty;
    char *topic, *group;
    struct ackid *ids;
    size_t n, cap;
    bool dirty;
};

struct rsub;

struct rctx {
    struct ofe_bus *bus;
    struct rconf cf;
    const char *comp;
    char what[300]; /* "redis 127.0.0.1:6379" */
    char desc[400];
    pthread_t thr;
    bool thr_started;
    int efd;
    pthread_mutex_t lock;
    /* under lock */
    struct req *wait_head, *wait_tail; /* publishes not written yet, in deadline order */
    struct bucket *buckets, *dirty;
    size_t ack_backlog;
    uint64_t ack_since;   /* when the backlog last became non-empty */
    uint64_t sleep_until; /* the bus thread's wake-up time while sleeping */
    bool sleeping, closing;
    bool replies_due; /* while sleeping: requests are out, their replies will wake it */
    unsigned held;    /* publishes queued since it slept without waking it */
    uint64_t drain_deadline;
    bool up;
    int down_code;
    char why[512];
    _Atomic int64_t max_bulk; /* the server's proto-max-bulk-len */
    struct rsub *subs;
    /* the bus thread only */
    redisContext *c;
    struct req *sent_head, *sent_tail, *wr; /* wr: first not fully written */
    size_t wr_off, nunreplied, unreplied_bytes;
    uint64_t last_read, last_write;
};

static void wake(struct rctx *x)
{
    uint64_t one = 1;
    ssize_t w = write(x->efd, &one, sizeof(one));
    (void)w;
}

/* Acks made by handlers while a subscription thread delivers a batch
 * (the common case: the handler acks at once) wake the bus thread once at
 * the end of the batch, so they go out as one XACK. */
static __thread struct rctx *tl_batch;
static __thread bool tl_batch_wake;

static void batch_begin(struct rctx *x)
{
    tl_batch = x;
    tl_batch_wake = false;
}

/* Whether the queued acks go out now (called with lock). */
static bool acks_due_locked(struct rctx *x, uint64_t now)
{
    return x->dirty && (x->closing || x->wait_head || x->ack_backlog >= R_ACK_EAGER ||
                        now - x->ack_since >= MS(R_ACK_DELAY_MS));
}

/* After queuing acks: whether the sleeping bus thread must be woken (it
 * is not when it wakes up on its own in time to send them). Called with
 * lock; clears sleeping when it returns true. */
static bool ack_wake_locked(struct rctx *x)
{
    if (!x->sleeping)
        return false;
    if (!x->closing && x->ack_backlog < R_ACK_EAGER &&
        x->sleep_until <= x->ack_since + MS(2 * R_ACK_DELAY_MS))
        return false;
    x->sleeping = false;
    return true;
}

static void batch_end(struct rctx *x)
{
    tl_batch = NULL;
    if (!tl_batch_wake)
        return;
    tl_batch_wake = false;
    pthread_mutex_lock(&x->lock);
    bool w = ack_wake_locked(x);
    pthread_mutex_unlock(&x->lock);
    if (w)
        wake(x);
}

static void req_free(struct req *r)
{
    free(r);
}

static void set_state(struct rctx *x, bool up, int code, const char *why)
{
    pthread_mutex_lock(&x->lock);
    bool was = x->up;
    x->up = up;
    x->down_code = code;
    snprintf(x->why, sizeof(x->why), "%s", why ? why : "");
    pthread_mutex_unlock(&x->lock);
    if (up && !was)
        OFE_INFO(x->comp, "redis", "connected to %s", x->what);
    else if (!up && was)
        OFE_WARN(x->comp, "redis", "%s", why);
}

/* Completes a publish with its reply. */
static void pub_reply(struct rctx *x, struct req *q, redisReply *r)
{
    if (!q->p)
        return;
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) {
        ofe_pub__done(q->p, 0, NULL);
    } else {
        char msg[1400];
        int code = OFE_EREMOTE;
        if (r->type == REDIS_REPLY_ERROR) {
            if (auth_error(r->str))
                code = OFE_EAUTH;
            snprintf(msg, sizeof(msg), "%s: XADD to stream \"%s\" failed: %s", x->what, q->topic,
                     r->str);
        } else {
            snprintf(msg, sizeof(msg), "%s: XADD to stream \"%s\": unexpected reply type %d",
                     x->what, q->topic, r->type);
        }
        ofe_pub__done(q->p, code, msg);
    }
    q->p = NULL;
}

/* The command connection broke: forget it and put every unanswered request
 * (publishes and ack batches; XACK is idempotent) back in front of the
 * waiting ones, in their order. */
static void cmd_lost(struct rctx *x, const char *why)
{
    redisFree(x->c);
    x->c = NULL;
    struct req *head = NULL, *tail = NULL;
    for (struct req *q = x->sent_head, *n; q; q = n) {
        n = q->next;
        q->next = NULL;
        if (q->kind == REQ_PUB && !q->p) {
            req_free(q); /* timed out already */
            continue;
        }
        if (tail)
            tail->next = q;
        else
            head = q;
        tail = q;
    }
    x->sent_head = x->sent_tail = x->wr = NULL;
    x->wr_off = x->nunreplied = x->unreplied_bytes = 0;
    pthread_mutex_lock(&x->lock);
    if (head) {
        tail->next = x->wait_head;
        if (!x->wait_head)
            x->wait_tail = tail;
        x->wait_head = head;
    }
    pthread_mutex_unlock(&x->lock);
    char msg[1400];
    snprintf(msg, sizeof(msg), "%s: connection lost: %s; reconnecting", x->what, why);
    set_state(x, false, OFE_ECONN, msg);
}

/* Fails every waiting publish whose deadline passed (called with lock). */
static struct req *expire_waiting_locked(struct rctx *x, uint64_t now)
{
    struct req *out = NULL, **prev = &x->wait_head, *last = NULL;
    for (struct req *q = x->wait_head; q;) {
        struct req *n = q->next;
        if (q->kind == REQ_PUB && q->deadline <= now) {
            *prev = n;
            q->next = out;
            out = q;
        } else {
            prev = &q->next;
            last = q;
        }
        q = n;
    }
    x->wait_tail = last;
    return out;
}

static void fail_list(struct rctx *x, struct req *l, int code, const char *fmt)
{
    while (l) {
        struct req *n = l->next;
        if (l->p) {
            char msg[1400];
            pthread_mutex_lock(&x->lock);
            char why[512];
            snprintf(why, sizeof(why), "%s", x->up ? "connected, no reply" : x->why);
            pthread_mutex_unlock(&x->lock);
            snprintf(msg, sizeof(msg), fmt, x->what, l->topic,
                     ofe_bus__opts(x->bus)->publish_timeout_ms, why);
            ofe_pub__done(l->p, code, msg);
            l->p = NULL;
        }
        req_free(l);
        l = n;
    }
}

static void expire(struct rctx *x, uint64_t now)
{
    pthread_mutex_lock(&x->lock);
    struct req *l = expire_waiting_locked(x, now);
    int code = x->up ? OFE_ETIMEDOUT : x->down_code ? x->down_code : OFE_ECONN;
    pthread_mutex_unlock(&x->lock);
    fail_list(x, l, code, "%s: publish to stream \"%s\" not confirmed within %u ms (%s)");
    /* Written but unanswered publishes past their deadline complete now;
     * their reply is ignored when it comes. */
    for (struct req *q = x->sent_head; q; q = q->next) {
        if (q->kind == REQ_PUB && q->p && q->deadline <= now) {
            char msg[1400];
            snprintf(msg, sizeof(msg),
                     "%s: publish to stream \"%s\" not confirmed within %u ms (no reply yet)",
                     x->what, q->topic, ofe_bus__opts(x->bus)->publish_timeout_ms);
            ofe_pub__done(q->p, OFE_ETIMEDOUT, msg);
            q->p = NULL;
        }
    }
}

static size_t dec_len(size_t v)
{
    size_t n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

static char *put_dec(char *p, size_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* A request with its command (a RESP array of bulk strings, sized
 * exactly: hiredis 0.14's formatter calls sprintf for every argument) and
 * its topic in one allocation. Returns NULL when out of memory. */
static struct req *req_new(int kind, const char *topic, size_t argc, const char *const *argv,
                           const size_t *argl)
{
    size_t total = 1 + dec_len(argc) + 2;
    for (size_t i = 0; i < argc; i++)
        total += 1 + dec_len(argl[i]) + 2 + argl[i] + 2;
    size_t tl = topic ? strlen(topic) + 1 : 0;
    struct req *q = malloc(sizeof(*q) + total + tl);
    if (!q)
        return NULL;
    memset(q, 0, sizeof(*q));
    q->kind = kind;
    q->cmd = (char *)(q + 1);
    q->len = total;
    char *p = q->cmd;
    *p++ = '*';
    p = put_dec(p, argc);
    *p++ = '\r';
    *p++ = '\n';
    for (size_t i = 0; i < argc; i++) {
        *p++ = '$';
        p = put_dec(p, argl[i]);
        *p++ = '\r';
        *p++ = '\n';
        if (argl[i])
            memcpy(p, argv[i], argl[i]);
        p += argl[i];
        *p++ = '\r';
        *p++ = '\n';
    }
    if (topic) {
        q->topic = p;
        memcpy(q->topic, topic, tl);
    }
    return q;
}

/* Queues one id for XACK (called with the bus lock). Returns false when
 * out of memory (the entry then stays pending and is claimed again). */
static bool bucket_add_locked(struct rctx *x, struct bucket *b, const char *id, size_t len)
{
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 64;
        struct ackid *ni = realloc(b->ids, nc * sizeof(*ni));
        if (!ni)
            return false;
        b->ids = ni;
        b->cap = nc;
    }
    memcpy(b->ids[b->n].id, id, len);
    b->ids[b->n++].len = (uint8_t)len;
    if (x->ack_backlog++ == 0)
        x->ack_since = now_ns();
    if (!b->dirty) {
        b->dirty = true;
        b->next_dirty = x->dirty;
        x->dirty = b;
    }
    return true;
}

/* Turns dirty buckets into XACK requests (called with lock). */
static void build_acks_locked(struct rctx *x, struct req ***tailp)
{
    while (x->dirty) {
        struct bucket *b = x->dirty;
        size_t n = b->n > R_ACK_BATCH ? R_ACK_BATCH : b->n;
        const char *argv[3 + R_ACK_BATCH];
        size_t argl[3 + R_ACK_BATCH];
        argv[0] = "XACK";
        argl[0] = 4;
        argv[1] = b->topic;
        argl[1] = strlen(b->topic);
        argv[2] = b->group;
        argl[2] = strlen(b->group);
        for (size_t i = 0; i < n; i++) {
            argv[3 + i] = b->ids[b->n - n + i].id;
            argl[3 + i] = b->ids[b->n - n + i].len;
        }
        struct req *q = req_new(REQ_ACK, NULL, 3 + n, argv, argl);
        if (!q)
            return; /* try again next round */
        q->deadline = UINT64_MAX;
        **tailp = q;
        *tailp = &q->next;
        b->n -= n;
        x->ack_backlog -= n;
        if (b->n == 0) {
            b->dirty = false;
            x->dirty = b->next_dirty;
            b->next_dirty = NULL;
        }
    }
}

static void sent_append(struct rctx *x, struct req *q)
{
    q->next = NULL;
    if (x->sent_tail)
        x->sent_tail->next = q;
    else
        x->sent_head = q;
    x->sent_tail = q;
    if (!x->wr) {
        x->wr = q;
        x->wr_off = 0;
    }
    x->nunreplied++;
    x->unreplied_bytes += q->len;
}

static bool room(const struct rctx *x)
{
    return x->nunreplied < R_MAX_UNREPLIED && x->unreplied_bytes < R_MAX_UNREPLIED_BYTES;
}

/* One lock for each turn of the bus thread: moves waiting requests and
 * due acks to the sent list (within the pipeline bounds), and decides how
 * long the coming poll may sleep (*timeout_ms; 0 when work is left). From
 * here until that poll returns the thread counts as sleeping: a publish or
 * an ack made meanwhile wakes it through the eventfd when it must. */
static void feed(struct rctx *x, int *timeout_ms)
{
    struct req *acks = NULL, **at = &acks;
    pthread_mutex_lock(&x->lock);
    uint64_t now = now_ns();
    if (acks_due_locked(x, now))
        build_acks_locked(x, &at);
    while (x->wait_head && room(x)) {
        struct req *q = x->wait_head;
        x->wait_head = q->next;
        if (!x->wait_head)
            x->wait_tail = NULL;
        sent_append(x, q);
    }
    for (struct req *q = acks, *n; q; q = n) {
        n = q->next;
        sent_append(x, q);
    }
    bool more = room(x) && (x->wait_head || acks_due_locked(x, now));
    int timeout = more ? 0 : 100;
    if (!more && room(x) && x->dirty) {
        /* acks waiting for company (not due yet): up when they are */
        uint64_t due = x->ack_since + MS(R_ACK_DELAY_MS);
        timeout = due > now ? (int)((due - now) / 1000000u) + 1 : 1;
    }
    x->sleeping = !more;
    x->sleep_until = now + MS(timeout);
    x->replies_due = x->sent_head != NULL;
    x->held = 0;
    pthread_mutex_unlock(&x->lock);
    *timeout_ms = timeout;
}

/* Writes what it can. Returns 0, or -1 when the connection broke. */
static int cmd_write(struct rctx *x, char *why, size_t whysz)
{
    while (x->wr) {
        struct iovec iov[64];
        int n = 0;
        size_t off = x->wr_off;
        for (struct req *q = x->wr; q && n < 64; q = q->next) {
            iov[n].iov_base = q->cmd + off;
            iov[n].iov_len = q->len - off;
            off = 0;
            n++;
        }
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(x->c->fd, &mh, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return 0;
            snprintf(why, whysz, "write: %s", strerror(errno));
            return -1;
        }
        x->last_write = now_ns();
        size_t left = (size_t)w;
        while (x->wr && left) {
            size_t rest = x->wr->len - x->wr_off;
            if (left >= rest) {
                left -= rest;
                x->wr = x->wr->next;
                x->wr_off = 0;
            } else {
                x->wr_off += left;
                left = 0;
            }
        }
    }
    return 0;
}

/* Completes the requests whose replies the reader has. Returns 0 or -1. */
static int cmd_replies(struct rctx *x, char *why, size_t whysz)
{
    for (;;) {
        void *rp = NULL;
        if (redisReaderGetReply(x->c->reader, &rp) != REDIS_OK) {
            snprintf(why, whysz, "protocol error: %s", x->c->reader->errstr);
            return -1;
        }
        if (!rp)
            break;
        redisReply *r = rp;
        struct req *q = x->sent_head;
        if (!q || q == x->wr) {
            freeReplyObject(r);
            snprintf(why, whysz, "protocol error: a reply to no request");
            return -1;
        }
        if (r->type == REDIS_REPLY_ERROR && transient_error(r->str)) {
            /* the server is not ready (e.g. loading its AOF after a
             * restart): start over with this request */
            snprintf(why, whysz, "%s", r->str);
            freeReplyObject(r);
            return -1;
        }
        x->sent_head = q->next;
        if (!x->sent_head)
            x->sent_tail = NULL;
        x->nunreplied--;
        x->unreplied_bytes -= q->len;
        if (q->kind == REQ_PUB)
            pub_reply(x, q, r);
        else if (r->type == REDIS_REPLY_ERROR)
            OFE_WARN(x->comp, "redis", "%s: XACK failed: %s", x->what, r->str);
        freeReplyObject(r);
        req_free(q);
    }
    return 0;
}

/* Reads and completes what the server answered. Returns 0 or -1. */
static int cmd_read(struct rctx *x, char *buf, char *why, size_t whysz)
{
    for (int rounds = 0; rounds < 16; rounds++) {
        ssize_t n = read(x->c->fd, buf, R_RBUF);
        if (n == 0) {
            snprintf(why, whysz, "the server closed the connection");
            return -1;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return 0;
            snprintf(why, whysz, "read: %s", strerror(errno));
            return -1;
        }
        x->last_read = now_ns();
        /* hiredis 0.14's reader moves its unread bytes down every 1 KiB it
         * consumes: feed it small slices so that stays cheap. */
        for (size_t off = 0; off < (size_t)n; off += R_FEED) {
            size_t k = (size_t)n - off < R_FEED ? (size_t)n - off : R_FEED;
            if (redisReaderFeed(x->c->reader, buf + off, k) != REDIS_OK) {
                snprintf(why, whysz, "protocol error: %s", x->c->reader->errstr);
                return -1;
            }
            if (cmd_replies(x, why, whysz) != 0)
                return -1;
        }
        if (n < R_RBUF)
            return 0;
    }
    return 0;
}

static bool cmd_idle_locked(struct rctx *x)
{
    return !x->wait_head && !x->dirty;
}

/* Waits on the wake fd (and the connection) up to timeout_ms. */
static void cmd_poll(struct rctx *x, int fd, short events, int timeout_ms, short *revents)
{
    struct pollfd p[2] = {{x->efd, POLLIN, 0}, {fd, events, 0}};
    int n = poll(p, fd >= 0 ? 2 : 1, timeout_ms);
    if (n > 0 && (p[0].revents & POLLIN)) {
        uint64_t v;
        ssize_t r = read(x->efd, &v, sizeof(v));
        (void)r;
    }
    *revents = n > 0 && fd >= 0 ? p[1].revents : 0;
}

static void *cmd_run(void *arg)
{
    struct rctx *x = arg;
    block_sigpipe();
    pthread_setname_np(pthread_self(), "ofe-redis-bus");
    char *rbuf = malloc(R_RBUF);
    unsigned attempt = 0;
    uint64_t last_expire = 0, next_connect = 0;
    char why[600];
    for (;;) {
        uint64_t now = now_ns();
        pthread_mutex_lock(&x->lock);
        x->sleeping = false;
        bool closing = x->closing;
        bool drained = closing && cmd_idle_locked(x) && !x->sent_head;
        bool late = closing && now >= x->drain_deadline;
        pthread_mutex_unlock(&x->lock);
        if (drained || late || !rbuf)
            break;
        if (now - last_expire >= MS(20)) {
            expire(x, now);
            last_expire = now;
        }
        if (!x->c) {
            /* Wait for the next attempt in short steps, so publishes
             * waiting meanwhile fail on time and close is prompt. */
            if (now < next_connect) {
                uint64_t left = (next_connect - now) / 1000000u;
                short rev;
                cmd_poll(x, -1, 0, left > 20 ? 20 : (int)left + 1, &rev);
                continue;
            }
            int code = 0;
            int64_t mb = 0;
            x->c = rconnect(&x->cf, x->what, 0, &mb, &code, why, sizeof(why));
            if (!x->c) {
                set_state(x, false, code, why);
                uint32_t wait =
                    ofe_pubsub__backoff_ms(attempt++, R_BACKOFF_BASE_MS, R_BACKOFF_CAP_MS);
                next_connect = now_ns() + MS(wait < 10 ? 10 : wait);
                continue;
            }
            attempt = 0;
            int fl = fcntl(x->c->fd, F_GETFL);
            fcntl(x->c->fd, F_SETFL, fl | O_NONBLOCK);
            x->c->flags &= ~REDIS_BLOCK;
            if (mb > 0)
                atomic_store_explicit(&x->max_bulk, mb, memory_order_relaxed);
            x->last_read = x->last_write = now_ns();
            set_state(x, true, 0, "");
        }
        int timeout;
        feed(x, &timeout);
        short ev = POLLIN;
        if (x->wr) {
            if (cmd_write(x, why, sizeof(why)) != 0) {
                cmd_lost(x, why);
                continue;
            }
            if (x->wr)
                ev |= POLLOUT;
        }
        short rev = 0;
        cmd_poll(x, x->c->fd, ev, timeout, &rev);
        if (rev & (POLLIN | POLLHUP | POLLERR)) {
            if (cmd_read(x, rbuf, why, sizeof(why)) != 0) {
                cmd_lost(x, why);
                continue;
            }
        }
        now = now_ns();
        if (x->sent_head && x->sent_head != x->wr && now - x->last_read > MS(x->cf.read_ms) &&
            now - x->last_write > MS(x->cf.read_ms)) {
            snprintf(why, sizeof(why), "no reply within %u ms (readTimeout)", x->cf.read_ms);
            cmd_lost(x, why);
            continue;
        }
        if (x->wr && now - x->last_write > MS(x->cf.write_ms)) {
            snprintf(why, sizeof(why), "cannot write for %u ms (writeTimeout)", x->cf.write_ms);
            cmd_lost(x, why);
            continue;
        }
    }
    /* Closing: whatever is left fails. */
    struct req *left = x->sent_head;
    x->sent_head = x->sent_tail = x->wr = NULL;
    if (x->c) {
        redisFree(x->c);
        x->c = NULL;
    }
    pthread_mutex_lock(&x->lock);
    struct req *w = x->wait_head;
    x->wait_head = x->wait_tail = NULL;
    pthread_mutex_unlock(&x->lock);
    for (struct req *q = left, *n; q; q = n) {
        n = q->next;
        if (q->p) {
            char msg[1400];
            snprintf(msg, sizeof(msg),
                     "%s: the bus closed before the server confirmed the publish to stream "
                     "\"%s\"",
                     x->what, q->topic);
            ofe_pub__done(q->p, OFE_ECLOSED, msg);
        }
        req_free(q);
    }
    for (struct req *q = w, *n; q; q = n) {
        n = q->next;
        if (q->p) {
            char msg[1400];
            snprintf(msg, sizeof(msg),
                     "%s: the bus closed before the publish to stream \"%s\" could be sent "
                     "(%s)",
                     x->what, q->topic, x->why[0] ? x->why : "not connected");
            ofe_pub__done(q->p, OFE_ECLOSED, msg);
        }
        req_free(q);
    }
    free(rbuf);
    return NULL;
}

static void ctx_free(struct rctx *x)
{
    for (struct bucket *b = x->buckets, *n; b; b = n) {
        n = b->next;
        free(b->topic);
        free(b->group);
        free(b->ids);
        free(b);
    }
    if (x->efd >= 0)
        close(x->efd);
    pthread_mutex_destroy(&x->lock);
    rconf_free(&x->cf);
    free(x);
}

static int r_open(struct ofe_bus *bus, const void *def, void **ctx, char *errstr,
                  size_t errstr_size)
{
    const struct ofe_config_busdesc *d = def;
    struct rctx *x = calloc(1, sizeof(*x));
    if (!x)
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    x->efd = -1;
    pthread_mutex_init(&x->lock, NULL);
    int rc = conf_from_desc(d, &x->cf, errstr, errstr_size);
    if (rc) {
        ctx_free(x);
        return rc;
    }
    x->bus = bus;
    x->comp = ofe_bus__opts(bus)->component;
    const char *kind = x->cf.embedded ? "embedded bus (ofe-eventbus)" : "redis";
    if (x->cf.port)
        snprintf(x->what, sizeof(x->what), "%s %s%s%s:%d", kind, strchr(x->cf.host, ':') ? "[" : "",
                 x->cf.host, strchr(x->cf.host, ':') ? "]" : "", x->cf.port);
    else
        snprintf(x->what, sizeof(x->what), "%s unix:%s", kind, x->cf.host);
    int n = snprintf(x->desc, sizeof(x->desc), "%s", x->what);
    if (x->cf.db && n > 0 && (size_t)n < sizeof(x->desc))
        n += snprintf(x->desc + n, sizeof(x->desc) - (size_t)n, " db %d", x->cf.db);
    if (x->cf.username && n > 0 && (size_t)n < sizeof(x->desc))
        n += snprintf(x->desc + n, sizeof(x->desc) - (size_t)n, " user %s", x->cf.username);
    if (x->cf.maxlen && n > 0 && (size_t)n < sizeof(x->desc))
        snprintf(x->desc + n, sizeof(x->desc) - (size_t)n, ", streams trimmed to ~%lld entries",
                 (long long)x->cf.maxlen);
    else if (x->cf.ttl_ms && n > 0 && (size_t)n < sizeof(x->desc))
        snprintf(x->desc + n, sizeof(x->desc) - (size_t)n, ", entries trimmed after %lld ms",
                 (long long)x->cf.ttl_ms);
    x->max_bulk = R_DEFAULT_MAX_BULK;
    snprintf(x->why, sizeof(x->why), "%s: connecting", x->what);
    x->down_code = OFE_ECONN;
    x->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (x->efd < 0) {
        rc = ofe_err(errstr, errstr_size, OFE_EIO, "redis: eventfd: %s", strerror(errno));
        ctx_free(x);
        return rc;
    }
    if (pthread_create(&x->thr, NULL, cmd_run, x) != 0) {
        ctx_free(x);
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "redis: cannot start a thread");
    }
    x->thr_started = true;
    *ctx = x;
    return 0;
}

static int r_publish(void *ctx, const char *topic, struct ofe_pub *p, char *errstr,
                     size_t errstr_size)
{
    struct rctx *x = ctx;
    struct ofe_hdrs f;
    ofe_hdrs_init(&f);
    int rc = ofe_ce_redis_encode(ofe_pub__event(p), OFE_CE_BIND_TYPEHINTS, &f, errstr, errstr_size);
    if (rc) {
        ofe_hdrs_fini(&f);
        return rc;
    }
    int64_t limit = atomic_load_explicit(&x->max_bulk, memory_order_relaxed);
    int64_t total = 0;
    for (size_t i = 0; i < f.n; i++) {
        total += (int64_t)(f.v[i].name_len + f.v[i].value_len);
        if ((int64_t)f.v[i].value_len > limit) {
            rc = ofe_err(errstr, errstr_size, OFE_EINVAL,
                         "%s: event too big: field \"%.*s\" has %zu bytes, over the server's "
                         "proto-max-bulk-len of %lld bytes",
                         x->what, (int)f.v[i].name_len, f.v[i].name, f.v[i].value_len,
                         (long long)limit);
            ofe_hdrs_fini(&f);
            return rc;
        }
    }
    /* ofe-eventbus counts every field name and value against its limit */
    if (x->cf.max_event > 0 && total > x->cf.max_event) {
        rc = ofe_err(errstr, errstr_size, OFE_EINVAL,
                     "%s: event too big: %lld bytes of stream fields and values, over the limit "
                     "of %lld bytes (limits.maxEventSize)",
                     x->what, (long long)total, (long long)x->cf.max_event);
        ofe_hdrs_fini(&f);
        return rc;
    }
    /* XADD key [MAXLEN ~ n | MINID ~ id] * field value ... */
    size_t argc = 0, cap = 8 + 2 * f.n;
    const char *argv_s[72];
    size_t argl_s[72];
    bool heap = cap > 72;
    const char **argv = heap ? malloc(cap * sizeof(*argv)) : argv_s;
    size_t *argl = heap ? malloc(cap * sizeof(*argl)) : argl_s;
    struct req *q = NULL;
    char num[48];
    if (!argv || !argl)
        goto nomem;
#define ARG(s, l) (argv[argc] = (s), argl[argc++] = (l))
    ARG("XADD", 4);
    ARG(topic, strlen(topic));
    if (x->cf.maxlen > 0) {
        ARG("MAXLEN", 6);
        ARG("~", 1);
        int k = snprintf(num, sizeof(num), "%lld", (long long)x->cf.maxlen);
        ARG(num, (size_t)k);
    } else if (x->cf.ttl_ms > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long long ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - x->cf.ttl_ms;
        ARG("MINID", 5);
        ARG("~", 1);
        int k = snprintf(num, sizeof(num), "%lld-0", ms < 0 ? 0 : ms);
        ARG(num, (size_t)k);
    }
    ARG("*", 1);
    for (size_t i = 0; i < f.n; i++) {
        ARG(f.v[i].name, f.v[i].name_len);
        ARG(f.v[i].value, f.v[i].value_len);
    }
#undef ARG
    if (!(q = req_new(REQ_PUB, topic, argc, argv, argl)))
        goto nomem;
    if (heap) {
        free(argv);
        free(argl);
    }
    ofe_hdrs_fini(&f);
    q->p = p;
    q->deadline = now_ns() + MS(ofe_bus__opts(x->bus)->publish_timeout_ms);
    pthread_mutex_lock(&x->lock);
    if (x->wait_tail)
        x->wait_tail->next = q;
    else
        x->wait_head = q;
    x->wait_tail = q;
    bool w = x->sleeping && (!x->replies_due || ++x->held >= R_PUB_HOLD);
    if (w)
        x->sleeping = false;
    pthread_mutex_unlock(&x->lock);
    if (w)
        wake(x);
    return 0;
nomem:
    if (heap) {
        free(argv);
        free(argl);
    }
    ofe_hdrs_fini(&f);
    return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
}

static void r_close(void *ctx, uint32_t drain_ms)
{
    struct rctx *x = ctx;
    pthread_mutex_lock(&x->lock);
    x->closing = true;
    x->drain_deadline = now_ns() + MS(drain_ms);
    pthread_mutex_unlock(&x->lock);
    wake(x);
    if (x->thr_started)
        pthread_join(x->thr, NULL);
    ctx_free(x);
}

static const char *r_describe(void *ctx)
{
    return ((struct rctx *)ctx)->desc;
}

/* ---- subscriptions ------------------------------------------------------ */

/* Per-message data. */
struct rmsg {
    uint32_t topic;
    uint32_t slot; /* in the subscription's in-flight table */
    uint8_t idlen;
    char id[R_ID_MAX];
};

struct islot {
    uint32_t topic;
    uint8_t idlen; /* 0: free */
    char id[R_ID_MAX];
};

/* XREADGROUP replies are built in a bump arena kept by the subscription
 * instead of hiredis' one malloc per reply node (a 512-byte event is ~25
 * nodes): the arena is reset before the next read, when nothing points
 * into it any more (deliver_entry copies what it keeps). Other replies on
 * the connection use hiredis' own functions. */
#define R_ARENA_MIN (64 * 1024)
#define R_ARENA_MAX (8 * 1024 * 1024) /* kept across reads at most */

static __thread struct ofe_arena *tl_arena; /* set while a read builds its reply */

static redisReply *arena_node(const redisReadTask *t, int type)
{
    redisReply *r = ofe_arena_alloc(tl_arena, sizeof(*r));
    if (!r)
        return NULL;
    memset(r, 0, sizeof(*r));
    r->type = type;
    if (t->parent)
        ((redisReply *)t->parent->obj)->element[t->idx] = r;
    return r;
}

static void *arena_string(const redisReadTask *t, char *str, size_t len)
{
    char *buf = ofe_arena_bytes(tl_arena, len + 1);
    if (!buf)
        return NULL;
    redisReply *r = arena_node(t, t->type);
    if (!r)
        return NULL;
    memcpy(buf, str, len);
    buf[len] = '\0';
    r->str = buf;
    r->len = len;
    return r;
}

static void *arena_array(const redisReadTask *t, int n)
{
    redisReply **el = NULL;
    if (n > 0) {
        if (!(el = ofe_arena_alloc(tl_arena, (size_t)n * sizeof(*el))))
            return NULL;
        memset(el, 0, (size_t)n * sizeof(*el));
    }
    redisReply *r = arena_node(t, REDIS_REPLY_ARRAY);
    if (!r)
        return NULL;
    r->element = el;
    r->elements = n > 0 ? (size_t)n : 0;
    return r;
}

static void *arena_integer(const redisReadTask *t, long long v)
{
    redisReply *r = arena_node(t, REDIS_REPLY_INTEGER);
    if (r)
        r->integer = v;
    return r;
}

static void *arena_nil(const redisReadTask *t)
{
    return arena_node(t, REDIS_REPLY_NIL);
}

static void arena_free_obj(void *obj)
{
    (void)obj; /* the arena's reset frees it */
}

static redisReplyObjectFunctions arena_fns = {arena_string, arena_array, arena_integer, arena_nil,
                                              arena_free_obj};

struct rsub {
    struct rctx *x;
    struct ofe_sub *sub;
    const char *group; /* the subscription's, or consumerID */
    const char *consumer;
    const char *const *topics;
    size_t ntopics;
    const char *start_id;
    struct bucket **buckets;  /* per topic */
    char (*cursor)[R_ID_MAX]; /* XAUTOCLAIM cursor per topic */
    pthread_t thr;
    bool thr_started;
    pthread_mutex_t lock; /* stop, c, the in-flight table */
    pthread_cond_t cond;
    bool stop;
    redisContext *c;
    struct islot *slots;
    uint32_t nslots, *free_slots, nfree;
    bool claim_unsupported;
    bool ahead;                            /* an XREADGROUP was sent and its reply not read yet */
    unsigned asked;                        /* entries the last XREADGROUP asked for */
    size_t rr;                             /* first stream of the next read when not all fit */
    struct ofe_gauge **g_lag, **g_pending; /* per topic, when the bus has metrics */
    struct ofe_arena arena;                /* the last XREADGROUP reply */
    /* under ctx lock */
    struct rsub *next;
    bool up;
    char why[512];
};

static bool sub_stopping(struct rsub *s)
{
    pthread_mutex_lock(&s->lock);
    bool st = s->stop;
    pthread_mutex_unlock(&s->lock);
    return st || ofe_sub__stopping(s->sub);
}

static void sub_state(struct rsub *s, bool up, const char *why)
{
    struct rctx *x = s->x;
    pthread_mutex_lock(&x->lock);
    bool was = s->up;
    s->up = up;
    snprintf(s->why, sizeof(s->why), "%s", why ? why : "");
    pthread_mutex_unlock(&x->lock);
    if (!up && was && why)
        OFE_WARN(x->comp, s->group, "%s", why);
}

/* Waits ms unless the subscription stops first. */
static void sub_sleep(struct rsub *s, uint32_t ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->lock);
    while (!s->stop)
        if (pthread_cond_timedwait(&s->cond, &s->lock, &dl) != 0)
            break;
    pthread_mutex_unlock(&s->lock);
}

static int slot_take(struct rsub *s, uint32_t topic, const char *id, size_t idlen, uint32_t *out)
{
    pthread_mutex_lock(&s->lock);
    if (!s->nfree) {
        uint32_t n = s->nslots ? s->nslots * 2 : 64;
        struct islot *ns = realloc(s->slots, n * sizeof(*ns));
        uint32_t *nf = ns ? realloc(s->free_slots, n * sizeof(*nf)) : NULL;
        if (ns)
            s->slots = ns;
        if (!nf) {
            pthread_mutex_unlock(&s->lock);
            return OFE_ENOMEM;
        }
        s->free_slots = nf;
        for (uint32_t i = n; i-- > s->nslots;) {
            s->slots[i].idlen = 0;
            s->free_slots[s->nfree++] = i;
        }
        s->nslots = n;
    }
    uint32_t i = s->free_slots[--s->nfree];
    s->slots[i].topic = topic;
    s->slots[i].idlen = (uint8_t)idlen;
    memcpy(s->slots[i].id, id, idlen);
    *out = i;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static void slot_free(struct rsub *s, uint32_t i)
{
    pthread_mutex_lock(&s->lock);
    if (i < s->nslots && s->slots[i].idlen) {
        s->slots[i].idlen = 0;
        s->free_slots[s->nfree++] = i;
    }
    pthread_mutex_unlock(&s->lock);
}

static bool slot_held(struct rsub *s, uint32_t topic, const char *id, size_t idlen)
{
    bool held = false;
    pthread_mutex_lock(&s->lock);
    for (uint32_t i = 0; i < s->nslots && !held; i++)
        held = s->slots[i].idlen == idlen && s->slots[i].topic == topic &&
               !memcmp(s->slots[i].id, id, idlen);
    pthread_mutex_unlock(&s->lock);
    return held;
}

static void json_str(struct ofe_buf *b, const char *s, size_t n)
{
    ofe_buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            ofe_buf_putc(b, '\\');
            ofe_buf_putc(b, (char)ch);
        } else if (ch < 0x20 || ch >= 0x7f) {
            ofe_buf_printf(b, "\\u%04x", ch);
        } else {
            ofe_buf_putc(b, (char)ch);
        }
    }
    ofe_buf_putc(b, '"');
}

/* Renders the fields of an entry that is not a CloudEvent: a JSON object
 * {"field": "value", ...} with every byte outside printable ASCII written
 * as \u00XX (so the bytes can be recovered exactly). */
static void render_fields(const redisReply *fv, struct ofe_buf *b)
{
    ofe_buf_putc(b, '{');
    for (size_t i = 0; fv && i + 1 < fv->elements; i += 2) {
        if (i)
            ofe_buf_putc(b, ',');
        const redisReply *k = fv->element[i], *v = fv->element[i + 1];
        json_str(b, k->str ? k->str : "", k->str ? k->len : 0);
        ofe_buf_putc(b, ':');
        json_str(b, v->str ? v->str : "", v->str ? v->len : 0);
    }
    ofe_buf_putc(b, '}');
}

/* Delivers one stream entry [id, [field, value, ...]]. Returns 0, or -1
 * when the subscription is stopping. */
static int deliver_entry(struct rsub *s, uint32_t ti, const redisReply *e, uint32_t redeliveries)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
        e->element[0]->type != REDIS_REPLY_STRING || e->element[0]->len >= R_ID_MAX)
        return 0;
    const redisReply *idr = e->element[0], *fv = e->element[1];
    const char *topic = s->topics[ti];
    if (fv->type != REDIS_REPLY_ARRAY) {
        /* trimmed away while pending: nothing to deliver, settle it */
        struct rctx *x = s->x;
        pthread_mutex_lock(&x->lock);
        bucket_add_locked(x, s->buckets[ti], idr->str, idr->len);
        pthread_mutex_unlock(&x->lock);
        return 0;
    }
    struct ofe_msg *m = ofe_msg__new(s->sub, topic, sizeof(struct rmsg));
    if (!m)
        return 0; /* stays pending: claimed again later */
    struct rmsg *rm = (struct rmsg *)m->priv;
    rm->topic = ti;
    rm->idlen = (uint8_t)idr->len;
    memcpy(rm->id, idr->str, idr->len);
    m->redeliveries = redeliveries;
    struct ofe_hdrs h;
    ofe_hdrs_init(&h);
    for (size_t i = 0; i + 1 < fv->elements; i += 2) {
        const redisReply *k = fv->element[i], *v = fv->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING)
            ofe_hdrs_add_ref(&h, k->str, k->len, v->str, v->len);
    }
    char err[400];
    struct ofe_ce *ev = NULL;
    int rc = ofe_ce_redis_decode(&h, OFE_CE_BIND_TYPEHINTS, &ev, err, sizeof(err));
    ofe_hdrs_fini(&h);
    if (rc == 0) {
        m->ev = ev;
    } else {
        struct ofe_buf b = OFE_BUF_INIT;
        render_fields(fv, &b);
        char why[600];
        snprintf(why, sizeof(why), "stream entry %s of \"%s\" is not a CloudEvent: %s", rm->id,
                 topic, err);
        ofe_msg__set_invalid(m, b.data ? b.data : "", b.len, why);
        ofe_buf_fini(&b);
    }
    if (slot_take(s, ti, rm->id, rm->idlen, &rm->slot) != 0) {
        ofe_msg__free(m);
        return 0;
    }
    ofe_sub__deliver(s->sub, m);
    return sub_stopping(s) ? -1 : 0;
}

static int topic_index(struct rsub *s, const redisReply *name)
{
    for (size_t i = 0; i < s->ntopics; i++)
        if (strlen(s->topics[i]) == name->len && !memcmp(s->topics[i], name->str, name->len))
            return (int)i;
    return -1;
}

/* Sends one command on the subscription's connection. Returns the reply,
 * or NULL when the connection broke (why filled). */
static redisReply *sub_cmd(struct rsub *s, int argc, const char **argv, const size_t *argl,
                           char *why, size_t whysz)
{
    redisReply *r = redisCommandArgv(s->c, argc, argv, argl);
    if (!r)
        snprintf(why, whysz, "%s", s->c->errstr[0] ? s->c->errstr : "connection lost");
    return r;
}

/* Creates the group on every topic (an existing group is fine). Returns 0,
 * or -1 with why (then the connection is dropped). */
static int create_groups(struct rsub *s, char *why, size_t whysz, bool *io)
{
    for (size_t i = 0; i < s->ntopics; i++) {
        const char *argv[] = {"XGROUP", "CREATE", s->topics[i], s->group, s->start_id, "MKSTREAM"};
        redisReply *r = sub_cmd(s, 6, argv, NULL, why, whysz);
        if (!r) {
            *io = true;
            return -1;
        }
        if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9)) {
            snprintf(why, whysz, "%s: XGROUP CREATE %s %s failed: %s", s->x->what, s->topics[i],
                     s->group, r->str);
            *io = transient_error(r->str);
            freeReplyObject(r);
            return -1;
        }
        freeReplyObject(r);
    }
    return 0;
}

/* Delivers entries [id, fields] of topic ti taken from the PEL (claimed,
 * or our own read again), with their delivery counts from XPENDING; entries
 * this subscription still holds (slow handler, nack delay) are skipped.
 * Returns 0, -1 when the connection broke, 1 when stopping. */
static int deliver_pending(struct rsub *s, size_t ti, redisReply *ents, char *why, size_t whysz)
{
    size_t nnew = 0;
    bool *skip = calloc(ents->elements + 1, sizeof(bool));
    if (!skip)
        return 0; /* they stay pending: claimed later */
    const char *lo = NULL, *hi = NULL;
    size_t lol = 0, hil = 0;
    for (size_t i = 0; i < ents->elements; i++) {
        redisReply *e = ents->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
            e->element[0]->type != REDIS_REPLY_STRING ||
            slot_held(s, (uint32_t)ti, e->element[0]->str, e->element[0]->len)) {
            skip[i] = true;
            continue;
        }
        if (!lo) {
            lo = e->element[0]->str;
            lol = e->element[0]->len;
        }
        hi = e->element[0]->str;
        hil = e->element[0]->len;
        nnew++;
    }
    redisReply *pend = NULL;
    if (nnew) {
        char los[R_ID_MAX], his[R_ID_MAX], n[24];
        snprintf(los, sizeof(los), "%.*s", (int)lol, lo);
        snprintf(his, sizeof(his), "%.*s", (int)hil, hi);
        pthread_mutex_lock(&s->lock);
        size_t held = s->nslots;
        pthread_mutex_unlock(&s->lock);
        snprintf(n, sizeof(n), "%zu", ents->elements + held);
        const char *pv[] = {"XPENDING", s->topics[ti], s->group, los, his, n, s->consumer};
        pend = sub_cmd(s, 7, pv, NULL, why, whysz);
        if (!pend) {
            free(skip);
            return -1;
        }
    }
    int rc = 0;
    batch_begin(s->x);
    for (size_t i = 0; i < ents->elements && !rc; i++) {
        redisReply *e = ents->element[i];
        if (skip[i])
            continue;
        uint32_t red = 1;
        for (size_t j = 0; pend && pend->type == REDIS_REPLY_ARRAY && j < pend->elements; j++) {
            redisReply *pe = pend->element[j];
            if (pe->type == REDIS_REPLY_ARRAY && pe->elements >= 4 &&
                pe->element[0]->len == e->element[0]->len &&
                !memcmp(pe->element[0]->str, e->element[0]->str, pe->element[0]->len) &&
                pe->element[3]->type == REDIS_REPLY_INTEGER) {
                /* the claim or re-read counted this delivery already */
                long long c = pe->element[3]->integer;
                red = c > 1 ? (uint32_t)(c - 1) : 1;
                break;
            }
        }
        if (deliver_entry(s, (uint32_t)ti, e, red) != 0)
            rc = 1;
    }
    batch_end(s->x);
    free(skip);
    freeReplyObject(pend);
    return rc;
}

/* Runs XAUTOCLAIM over every topic: entries idle longer than
 * processingTimeout (left by a dead member) are taken over and delivered
 * with their delivery counts. Returns 0, or -1 when the connection broke. */
static int claim(struct rsub *s, char *why, size_t whysz)
{
    if (s->claim_unsupported)
        return 0;
    char idle[24];
    snprintf(idle, sizeof(idle), "%u", s->x->cf.processing_ms);
    for (size_t ti = 0; ti < s->ntopics; ti++) {
        for (int round = 0; round < 16; round++) {
            unsigned cap = ofe_sub__capacity(s->sub);
            if (!cap || sub_stopping(s))
                return 0;
            if (cap > s->x->cf.queue_depth)
                cap = s->x->cf.queue_depth;
            char count[24];
            snprintf(count, sizeof(count), "%u", cap);
            const char *argv[] = {"XAUTOCLAIM", s->topics[ti], s->group, s->consumer,
                                  idle,         s->cursor[ti], "COUNT",  count};
            redisReply *r = sub_cmd(s, 8, argv, NULL, why, whysz);
            if (!r)
                return -1;
            if (r->type == REDIS_REPLY_ERROR) {
                if (!strncmp(r->str, "NOGROUP", 7)) {
                    freeReplyObject(r);
                    break; /* the read loop recreates the group */
                }
                OFE_WARN(s->x->comp, s->group,
                         "%s: XAUTOCLAIM failed (%s): entries of dead members will not be "
                         "taken over (needs Redis >= 6.2)",
                         s->x->what, r->str);
                s->claim_unsupported = true;
                freeReplyObject(r);
                return 0;
            }
            if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
                r->element[0]->type != REDIS_REPLY_STRING ||
                r->element[1]->type != REDIS_REPLY_ARRAY) {
                freeReplyObject(r);
                break;
            }
            snprintf(s->cursor[ti], R_ID_MAX, "%.*s", (int)r->element[0]->len, r->element[0]->str);
            int rc = deliver_pending(s, ti, r->element[1], why, whysz);
            bool done = !strcmp(s->cursor[ti], "0-0");
            freeReplyObject(r);
            if (rc)
                return rc < 0 ? -1 : 0;
            if (done)
                break;
        }
    }
    return 0;
}

/* After (re)connecting: entries the server already handed to this consumer
 * but that never reached it (the reply was lost with the connection, or a
 * previous process with the same consumer name died) are read again from
 * our own PEL at once, instead of waiting for processingTimeout. Returns 0,
 * or -1 when the connection broke. */
static int recover_own(struct rsub *s, char *why, size_t whysz)
{
    for (size_t ti = 0; ti < s->ntopics; ti++) {
        char after[R_ID_MAX] = "0";
        for (int round = 0; round < 64; round++) {
            unsigned cap = ofe_sub__wait_capacity(s->sub, 1000);
            if (!cap || sub_stopping(s))
                return 0; /* the rest is claimed later */
            if (cap > s->x->cf.queue_depth)
                cap = s->x->cf.queue_depth;
            char count[24];
            snprintf(count, sizeof(count), "%u", cap);
            const char *argv[] = {"XREADGROUP", "GROUP",   s->group,      s->consumer, "COUNT",
                                  count,        "STREAMS", s->topics[ti], after};
            redisReply *r = sub_cmd(s, 9, argv, NULL, why, whysz);
            if (!r)
                return -1;
            redisReply *ents = NULL;
            if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
                r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2 &&
                r->element[0]->element[1]->type == REDIS_REPLY_ARRAY)
                ents = r->element[0]->element[1];
            if (!ents || !ents->elements) {
                freeReplyObject(r); /* none left (or NOGROUP: the read loop handles it) */
                break;
            }
            redisReply *last = ents->element[ents->elements - 1];
            if (last->type == REDIS_REPLY_ARRAY && last->elements >= 1 &&
                last->element[0]->type == REDIS_REPLY_STRING)
                snprintf(after, sizeof(after), "%.*s", (int)last->element[0]->len,
                         last->element[0]->str);
            int rc = deliver_pending(s, ti, ents, why, whysz);
            freeReplyObject(r);
            if (rc)
                return rc < 0 ? -1 : 0;
        }
    }
    return 0;
}

/* Sends XREADGROUP ... > for cap entries at most (BLOCK block_ms when
 * block_ms > 0, else none) without waiting for the reply. Returns 0 or -1. */
static int send_read(struct rsub *s, unsigned cap, uint32_t block_ms, char *why, size_t whysz)
{
    size_t argc = 0;
    const char **argv = malloc((9 + 2 * s->ntopics) * sizeof(*argv));
    if (!argv) {
        snprintf(why, whysz, "out of memory");
        return -1;
    }
    unsigned want = cap > s->x->cf.queue_depth ? s->x->cf.queue_depth : cap;
    if (!want)
        want = 1;
    /* COUNT applies per stream: split it so the total fits; with less room
     * than streams, read that many streams, taking turns */
    size_t k = want < s->ntopics ? want : s->ntopics;
    unsigned per = want / (unsigned)k;
    s->asked = per * (unsigned)k;
    size_t first = s->rr % s->ntopics;
    s->rr = (first + k) % s->ntopics;
    char count[24], block[24];
    snprintf(count, sizeof(count), "%u", per);
    snprintf(block, sizeof(block), "%u", block_ms);
    argv[argc++] = "XREADGROUP";
    argv[argc++] = "GROUP";
    argv[argc++] = s->group;
    argv[argc++] = s->consumer;
    argv[argc++] = "COUNT";
    argv[argc++] = count;
    if (block_ms) {
        argv[argc++] = "BLOCK";
        argv[argc++] = block;
    }
    argv[argc++] = "STREAMS";
    for (size_t i = 0; i < k; i++)
        argv[argc++] = s->topics[(first + i) % s->ntopics];
    for (size_t i = 0; i < k; i++)
        argv[argc++] = ">";
    int rc = redisAppendCommandArgv(s->c, (int)argc, argv, NULL);
    free(argv);
    if (rc != REDIS_OK) {
        snprintf(why, whysz, "%s", s->c->errstr[0] ? s->c->errstr : "out of memory");
        return -1;
    }
    return 0;
}

/* One XREADGROUP round: sends the read unless one is already on its way
 * (s->ahead), waits for the reply and delivers it. When the reply is full
 * (more is likely waiting), the next read goes out before the entries are
 * delivered, so the server works while this thread decodes; its COUNT is
 * the capacity left after this batch, a safe bound since only this thread
 * adds messages in flight. Returns 0, or -1 when the connection broke. */
static int read_new(struct rsub *s, unsigned cap, uint32_t block_ms, bool may_read_ahead, char *why,
                    size_t whysz, bool *nogroup)
{
    if (!s->ahead && send_read(s, cap, block_ms ? block_ms : 1, why, whysz) != 0)
        return -1;
    s->ahead = false;
    void *rp = NULL;
    redisReader *rd = s->c->reader;
    redisReplyObjectFunctions *own = rd->fn;
    ofe_arena_reset(&s->arena, R_ARENA_MAX);
    tl_arena = &s->arena;
    rd->fn = &arena_fns;
    int grc = redisGetReply(s->c, &rp);
    tl_arena = NULL;
    if (grc != REDIS_OK) {
        rd->reply = NULL; /* a partial reply, in the arena */
        rd->fn = own;
        snprintf(why, whysz, "%s", s->c->errstr[0] ? s->c->errstr : "connection lost");
        return -1;
    }
    rd->fn = own;
    redisReply *r = rp;
    int rc = 0;
    if (r->type == REDIS_REPLY_ERROR) {
        if (!strncmp(r->str, "NOGROUP", 7)) {
            *nogroup = true;
        } else {
            snprintf(why, whysz, "%s: XREADGROUP failed: %s", s->x->what, r->str);
            rc = -1;
        }
    } else if (r->type == REDIS_REPLY_ARRAY) {
        size_t n = 0;
        for (size_t i = 0; i < r->elements; i++) {
            redisReply *st = r->element[i];
            if (st->type == REDIS_REPLY_ARRAY && st->elements >= 2 &&
                st->element[1]->type == REDIS_REPLY_ARRAY)
                n += st->element[1]->elements;
        }
        if (may_read_ahead && n >= s->asked && !sub_stopping(s)) {
            unsigned now_cap = ofe_sub__capacity(s->sub);
            if (now_cap > n && send_read(s, now_cap - (unsigned)n, 0, why, whysz) == 0)
                s->ahead = true;
        }
        batch_begin(s->x);
        for (size_t i = 0; i < r->elements; i++) {
            redisReply *st = r->element[i];
            if (st->type != REDIS_REPLY_ARRAY || st->elements < 2 ||
                st->element[0]->type != REDIS_REPLY_STRING ||
                st->element[1]->type != REDIS_REPLY_ARRAY)
                continue;
            int ti = topic_index(s, st->element[0]);
            if (ti < 0)
                continue;
            for (size_t j = 0; j < st->element[1]->elements; j++)
                if (deliver_entry(s, (uint32_t)ti, st->element[1]->element[j], 0) != 0)
                    goto out;
        }
    out:
        batch_end(s->x);
    }
    /* r lives in the arena until the next read */
    return rc;
}

#define R_INFO_MS 5000

/* Sets the lag and pending gauges of each topic from XINFO GROUPS (Redis 7
 * reports `lag`; older servers and unknown lag leave that gauge as it was).
 * Returns 0, or -1 when the connection broke. */
static int update_gauges(struct rsub *s, char *why, size_t whysz)
{
    for (size_t ti = 0; ti < s->ntopics; ti++) {
        const char *argv[] = {"XINFO", "GROUPS", s->topics[ti]};
        redisReply *r = sub_cmd(s, 3, argv, NULL, why, whysz);
        if (!r)
            return -1;
        for (size_t g = 0; r->type == REDIS_REPLY_ARRAY && g < r->elements; g++) {
            redisReply *m = r->element[g];
            if (m->type != REDIS_REPLY_ARRAY)
                continue;
            bool mine = false;
            long long lag = -1, pending = -1;
            for (size_t k = 0; k + 1 < m->elements; k += 2) {
                redisReply *key = m->element[k], *v = m->element[k + 1];
                if (key->type != REDIS_REPLY_STRING && key->type != REDIS_REPLY_STATUS)
                    continue;
                if (!strcmp(key->str, "name") && v->type == REDIS_REPLY_STRING)
                    mine = !strcmp(v->str, s->group);
                else if (!strcmp(key->str, "lag") && v->type == REDIS_REPLY_INTEGER)
                    lag = v->integer;
                else if (!strcmp(key->str, "pending") && v->type == REDIS_REPLY_INTEGER)
                    pending = v->integer;
            }
            if (!mine)
                continue;
            if (lag >= 0)
                ofe_gauge_set(s->g_lag[ti], (double)lag);
            if (pending >= 0)
                ofe_gauge_set(s->g_pending[ti], (double)pending);
        }
        freeReplyObject(r);
    }
    return 0;
}

static void sub_drop_conn(struct rsub *s)
{
    s->ahead = false;
    pthread_mutex_lock(&s->lock);
    redisContext *c = s->c;
    s->c = NULL;
    pthread_mutex_unlock(&s->lock);
    redisFree(c);
}

static void *sub_run(void *arg)
{
    struct rsub *s = arg;
    block_sigpipe();
    pthread_setname_np(pthread_self(), "ofe-redis-sub");
    struct rctx *x = s->x;
    unsigned attempt = 0;
    char why[700];
    /* at once: take over what dead members left (redeliverInterval 0: never) */
    uint64_t next_claim = x->cf.redeliver_ms ? 0 : UINT64_MAX;
    uint64_t next_info = 0;
    bool groups_ok = false;
    while (!sub_stopping(s)) {
        if (!s->c) {
            int code;
            redisContext *c =
                rconnect(&x->cf, x->what, R_BLOCK_MAX_MS, NULL, &code, why, sizeof(why));
            if (c) {
                pthread_mutex_lock(&s->lock);
                if (s->stop) {
                    pthread_mutex_unlock(&s->lock);
                    redisFree(c);
                    break;
                }
                s->c = c;
                pthread_mutex_unlock(&s->lock);
                groups_ok = false;
            } else {
                sub_state(s, false, why);
                sub_sleep(s,
                          ofe_pubsub__backoff_ms(attempt++, R_BACKOFF_BASE_MS, R_BACKOFF_CAP_MS));
                continue;
            }
        }
        if (!groups_ok) {
            bool io = false;
            if (create_groups(s, why, sizeof(why), &io) != 0) {
                if (sub_stopping(s))
                    break;
                sub_state(s, false, why);
                if (io)
                    sub_drop_conn(s);
                sub_sleep(s,
                          ofe_pubsub__backoff_ms(attempt++, R_BACKOFF_BASE_MS, R_BACKOFF_CAP_MS));
                continue;
            }
            if (recover_own(s, why, sizeof(why)) != 0) {
                if (sub_stopping(s))
                    break;
                sub_state(s, false, why);
                sub_drop_conn(s);
                continue;
            }
            groups_ok = true;
            attempt = 0;
            sub_state(s, true, "");
        }
        uint64_t now = now_ns();
        if (s->ahead) {
            /* a read is on its way: take it before anything else is sent */
            bool nogroup = false;
            bool chain = now < next_claim && (!s->g_lag || now < next_info);
            if (read_new(s, 0, 0, chain, why, sizeof(why), &nogroup) != 0) {
                if (sub_stopping(s))
                    break;
                sub_state(s, false, why);
                sub_drop_conn(s);
            } else if (nogroup) {
                groups_ok = false;
            }
            continue;
        }
        if (now >= next_claim) {
            if (claim(s, why, sizeof(why)) != 0) {
                if (sub_stopping(s))
                    break;
                sub_state(s, false, why);
                sub_drop_conn(s);
                continue;
            }
            next_claim = x->cf.redeliver_ms ? now_ns() + MS(x->cf.redeliver_ms) : UINT64_MAX;
            continue;
        }
        if (s->g_lag && now >= next_info) {
            if (update_gauges(s, why, sizeof(why)) != 0) {
                if (sub_stopping(s))
                    break;
                sub_state(s, false, why);
                sub_drop_conn(s);
                continue;
            }
            next_info = now_ns() + MS(R_INFO_MS);
        }
        uint64_t until = (next_claim - now) / 1000000u;
        if (s->g_lag && next_info > now && (next_info - now) / 1000000u < until)
            until = (next_info - now) / 1000000u;
        pthread_mutex_lock(&x->lock);
        bool backlog = x->ack_backlog > R_ACK_BACKLOG_MAX;
        pthread_mutex_unlock(&x->lock);
        if (backlog) {
            sub_sleep(s, 10);
            continue;
        }
        unsigned cap = ofe_sub__wait_capacity(s->sub, (int)(until > 200 ? 200 : until));
        if (!cap)
            continue;
        uint32_t block = until > R_BLOCK_MAX_MS ? R_BLOCK_MAX_MS : (uint32_t)until;
        bool nogroup = false;
        if (read_new(s, cap, block, true, why, sizeof(why), &nogroup) != 0) {
            if (sub_stopping(s))
                break;
            sub_state(s, false, why);
            sub_drop_conn(s);
            continue;
        }
        if (nogroup)
            groups_ok = false; /* the stream or group was deleted: create it again */
    }
    sub_drop_conn(s);
    return NULL;
}

static void rsub_free(struct rsub *s)
{
    ofe_arena_fini(&s->arena);
    free(s->g_lag);
    free(s->g_pending);
    free(s->buckets);
    free(s->cursor);
    free(s->slots);
    free(s->free_slots);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s);
}

static struct bucket *bucket_get_locked(struct rctx *x, const char *topic, const char *group)
{
    for (struct bucket *b = x->buckets; b; b = b->next)
        if (!strcmp(b->topic, topic) && !strcmp(b->group, group))
            return b;
    struct bucket *b = calloc(1, sizeof(*b));
    if (!b || !(b->topic = strdup(topic)) || !(b->group = strdup(group))) {
        if (b)
            free(b->topic);
        free(b);
        return NULL;
    }
    b->next = x->buckets;
    x->buckets = b;
    return b;
}

static int r_subscribe(void *ctx, struct ofe_sub *sub, void **sctx, char *errstr,
                       size_t errstr_size)
{
    struct rctx *x = ctx;
    const struct ofe_sub_opts *o = ofe_sub__opts(sub);
    struct rsub *s = calloc(1, sizeof(*s));
    if (!s)
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    s->x = x;
    s->sub = sub;
    s->arena = (struct ofe_arena)OFE_ARENA_INIT(R_ARENA_MIN);
    s->group = x->cf.group ? x->cf.group : o->group;
    s->consumer = ofe_sub__consumer(sub);
    s->topics = o->topics;
    s->ntopics = o->ntopics;
    s->start_id = o->start == OFE_START_NEWEST ? "$" : "0";
    snprintf(s->why, sizeof(s->why), "%s: subscription of group \"%s\" connecting", x->what,
             s->group);
    s->buckets = calloc(s->ntopics, sizeof(*s->buckets));
    s->cursor = calloc(s->ntopics, sizeof(*s->cursor));
    if (!s->buckets || !s->cursor) {
        rsub_free(s);
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    }
    struct ofe_metrics *met = ofe_bus__metrics(x->bus);
    if (met) {
        s->g_lag = calloc(s->ntopics, sizeof(*s->g_lag));
        s->g_pending = calloc(s->ntopics, sizeof(*s->g_pending));
        if (!s->g_lag || !s->g_pending) {
            rsub_free(s);
            return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < s->ntopics; i++) {
            const char *lb[] = {"backend", "redis", "topic", s->topics[i], "group", s->group, NULL};
            s->g_lag[i] = ofe_metrics_gauge(
                met, "ofe_bus_consumer_lag",
                "Entries of the topic not yet delivered to the group (XINFO GROUPS lag)", lb);
            s->g_pending[i] = ofe_metrics_gauge(
                met, "ofe_bus_consumer_pending",
                "Entries delivered to the group and not yet acknowledged (its PEL)", lb);
        }
    }
    if (x->cf.group && strcmp(x->cf.group, o->group))
        OFE_INFO(x->comp, "redis",
                 "consumerID \"%s\" of the bus replaces the consumer group \"%s\"", x->cf.group,
                 o->group);
    pthread_mutex_lock(&x->lock);
    for (size_t i = 0; i < s->ntopics; i++) {
        snprintf(s->cursor[i], R_ID_MAX, "0-0");
        if (!(s->buckets[i] = bucket_get_locked(x, s->topics[i], s->group))) {
            pthread_mutex_unlock(&x->lock);
            rsub_free(s);
            return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
        }
    }
    s->next = x->subs;
    x->subs = s;
    pthread_mutex_unlock(&x->lock);
    if (pthread_create(&s->thr, NULL, sub_run, s) != 0) {
        pthread_mutex_lock(&x->lock);
        for (struct rsub **pp = &x->subs; *pp; pp = &(*pp)->next)
            if (*pp == s) {
                *pp = s->next;
                break;
            }
        pthread_mutex_unlock(&x->lock);
        rsub_free(s);
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "redis: cannot start a thread");
    }
    s->thr_started = true;
    *sctx = s;
    return 0;
}

static void r_stop(void *ctx, void *sctx)
{
    struct rsub *s = sctx;
    pthread_mutex_lock(&s->lock);
    s->stop = true;
    pthread_cond_broadcast(&s->cond);
    if (s->c)
        shutdown(s->c->fd, SHUT_RDWR); /* ends a blocking XREADGROUP at once */
    pthread_mutex_unlock(&s->lock);
    if (s->thr_started)
        pthread_join(s->thr, NULL);
    s->thr_started = false;
    struct rctx *x = s->x;
    pthread_mutex_lock(&x->lock);
    for (struct rsub **pp = &x->subs; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    pthread_mutex_unlock(&x->lock);
}

static void r_release(void *ctx, void *sctx)
{
    rsub_free(sctx);
}

static void r_ack(void *ctx, void *sctx, struct ofe_msg *m)
{
    struct rctx *x = ctx;
    struct rsub *s = sctx;
    struct rmsg *rm = (struct rmsg *)m->priv;
    slot_free(s, rm->slot);
    pthread_mutex_lock(&x->lock);
    /* when out of memory the entry stays pending: claimed and delivered
     * again later */
    bucket_add_locked(x, s->buckets[rm->topic], rm->id, rm->idlen);
    if (tl_batch == x) {
        pthread_mutex_unlock(&x->lock);
        tl_batch_wake = true; /* woken once at the end of the batch */
        return;
    }
    bool w = ack_wake_locked(x);
    pthread_mutex_unlock(&x->lock);
    if (w)
        wake(x);
}

static void r_abandon(void *ctx, void *sctx, struct ofe_msg *m)
{
    struct rmsg *rm = (struct rmsg *)m->priv;
    slot_free(sctx, rm->slot);
}

static bool r_ready(void *ctx, char *why, size_t why_size)
{
    struct rctx *x = ctx;
    pthread_mutex_lock(&x->lock);
    bool ok = x->up;
    if (!ok) {
        snprintf(why, why_size, "%s", x->why);
    } else {
        for (struct rsub *s = x->subs; s; s = s->next) {
            if (!s->up) {
                ok = false;
                snprintf(why, why_size, "%s", s->why);
                break;
            }
        }
    }
    pthread_mutex_unlock(&x->lock);
    return ok;
}

const struct ofe_pubsub_ops ofe_pubsub_redis = {
    .name = "redis",
    .open = r_open,
    .publish = r_publish,
    .subscribe = r_subscribe,
    .stop = r_stop,
    .release = r_release,
    .ack = r_ack,
    .nack = NULL, /* the core redelivers after the delay; the entry stays pending */
    .abandon = r_abandon,
    .ready = r_ready,
    .close = r_close,
    .describe = r_describe,
};
