/* The redis source (hiredis): a Redis stream read as a consumer group, or
 * a pub/sub channel.
 *
 * Stream (at least once): XGROUP CREATE ... MKSTREAM at `$` (newest) or
 * `0` (oldest) for a new group; a thread reads XREADGROUP ... COUNT <room
 * under max in-flight> BLOCK 100 and emits one event per entry; an entry
 * is XACKed (batched, pipelined with the next read) only after every
 * destination accepted its event. After every (re)connect the consumer's
 * own pending entries are read again (an XREADGROUP reply lost with the
 * connection), and every redeliverInterval XAUTOCLAIM takes entries idle
 * longer than processingTimeout from consumers that died (a kill -9'd
 * daemon restarts as a new consumer unless --instance names it: its entries
 * come back that way).
 * Entries still in delivery here are never emitted twice by this process.
 *
 * Channel (at most once, as Redis pub/sub itself): SUBSCRIBE, or
 * PSUBSCRIBE when the name has glob characters (* ? [). Nothing is
 * acknowledged; when max in-flight is reached reading stops, and Redis
 * drops the client once its output buffer limit for pub/sub clients is
 * reached: messages are lost then, and in any case while the daemon is
 * down. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "es.h"
#include "ofe/err.h"
#include "ofe/log.h"

#define STREAM_TYPE  "dev.ofevents.redis.stream.entry"
#define CHANNEL_TYPE "dev.ofevents.redis.channel.message"
#define BLOCK_MS     100
#define READ_MAX     256

struct inflight_id {
    struct inflight_id *next;
    char id[48];
};

struct redis_src {
    struct es_source *s;
    const struct ofe_config_redis_source *c;
    char *host;
    int port;
    char consumer[300];
    bool pattern;
    pthread_t thr;
    bool thr_started;
    atomic_bool stop;     /* quit the thread (destroy) */
    atomic_bool stopping; /* no new input (stop); acks still go out */
    redisContext *rc;
    pthread_mutex_t lock;
    /* under lock */
    struct inflight_id *held; /* entries in delivery (not to emit twice) */
    char **acks;              /* entry ids to XACK */
    size_t nacks, cap_acks;
    bool connected, subscribed;
    char why[400];
    uint64_t last_claim;
};

static void nap(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Queues an entry id for XACK. Lock held. */
static void push_ack(struct redis_src *r, char *id)
{
    if (!id)
        return;
    if (r->nacks == r->cap_acks) {
        size_t cap = r->cap_acks ? r->cap_acks * 2 : 64;
        char **a = realloc(r->acks, cap * sizeof(*a));
        if (!a) {
            free(id); /* not acked: redelivered later, never lost */
            return;
        }
        r->acks = a;
        r->cap_acks = cap;
    }
    r->acks[r->nacks++] = id;
}

/* ---- connection --------------------------------------------------------------- */

static int split_hostport(const char *hp, char **host, int *port)
{
    const char *colon = strrchr(hp, ':');
    if (hp[0] == '[') {
        const char *rb = strchr(hp, ']');
        if (!rb)
            return -1;
        *host = strndup(hp + 1, (size_t)(rb - hp - 1));
        colon = rb[1] == ':' ? rb + 1 : NULL;
    } else {
        *host = colon ? strndup(hp, (size_t)(colon - hp)) : strdup(hp);
    }
    *port = 6379;
    if (colon) {
        char *end;
        long v = strtol(colon + 1, &end, 10);
        if (*end || v < 1 || v > 65535) {
            free(*host);
            return -1;
        }
        *port = (int)v;
    }
    return 0;
}

static void set_state(struct redis_src *r, bool connected, const char *why)
{
    pthread_mutex_lock(&r->lock);
    r->connected = connected;
    if (!connected)
        r->subscribed = false;
    if (why)
        snprintf(r->why, sizeof(r->why), "%s", why);
    pthread_mutex_unlock(&r->lock);
}

static redisReply *cmd(struct redis_src *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(r->rc, fmt, ap);
    va_end(ap);
    return rep;
}

static void drop_conn(struct redis_src *r, const char *what)
{
    char why[400];
    snprintf(why, sizeof(why), "redis: %s %s: %s", what, r->c->redis_host,
             r->rc && r->rc->errstr[0] ? r->rc->errstr : "connection lost");
    set_state(r, false, why);
    OFE_WARN(ES_COMPONENT, r->s->name, "%s; reconnecting", why);
    if (r->rc)
        redisFree(r->rc);
    r->rc = NULL;
}

static int conn_open(struct redis_src *r)
{
    const struct ofe_config_redis_source *c = r->c;
    int64_t dial = c->dial_timeout_ms > 0 ? c->dial_timeout_ms : 5000;
    struct timeval tv = {(time_t)(dial / 1000), (suseconds_t)(dial % 1000) * 1000};
    redisContext *rc = redisConnectWithTimeout(r->host, r->port, tv);
    char why[400];
    if (!rc || rc->err) {
        snprintf(why, sizeof(why), "redis: cannot connect to %s: %s", c->redis_host,
                 rc ? rc->errstr : "out of memory");
        set_state(r, false, why);
        if (rc)
            redisFree(rc);
        return -1;
    }
    redisEnableKeepAlive(rc);
    int64_t rt = (c->read_timeout_ms > 0 ? c->read_timeout_ms : 3000) + BLOCK_MS;
    struct timeval rtv = {(time_t)(rt / 1000), (suseconds_t)(rt % 1000) * 1000};
    redisSetTimeout(rc, rtv);
    r->rc = rc;
    redisReply *rep = NULL;
    if (c->redis_password && *c->redis_password) {
        rep = c->redis_username ? cmd(r, "AUTH %s %s", c->redis_username, c->redis_password)
                                : cmd(r, "AUTH %s", c->redis_password);
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            snprintf(why, sizeof(why), "redis: %s refused AUTH%s%s: %s", c->redis_host,
                     c->redis_username ? " of " : "", c->redis_username ? c->redis_username : "",
                     rep ? rep->str : rc->errstr);
            goto fail;
        }
        freeReplyObject(rep);
    }
    if (c->redis_db > 0) {
        rep = cmd(r, "SELECT %lld", (long long)c->redis_db);
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            snprintf(why, sizeof(why), "redis: SELECT %lld: %s", (long long)c->redis_db,
                     rep ? rep->str : rc->errstr);
            goto fail;
        }
        freeReplyObject(rep);
    }
    set_state(r, true, NULL);
    return 0;
fail:
    if (rep)
        freeReplyObject(rep);
    set_state(r, false, why);
    OFE_WARN(ES_COMPONENT, r->s->name, "%s", why);
    redisFree(r->rc);
    r->rc = NULL;
    return -1;
}

/* ---- entries ---------------------------------------------------------------------- */

struct rtok {
    struct redis_src *r;
    struct inflight_id *h;
};

static bool held(struct redis_src *r, const char *id)
{
    for (struct inflight_id *h = r->held; h; h = h->next)
        if (!strcmp(h->id, id))
            return true;
    return false;
}

static void entry_done(void *token, enum es_result res, const char *why)
{
    struct rtok *t = token;
    struct redis_src *r = t->r;
    pthread_mutex_lock(&r->lock);
    for (struct inflight_id **pp = &r->held; *pp; pp = &(*pp)->next)
        if (*pp == t->h) {
            *pp = t->h->next;
            break;
        }
    if (res != ES_FAILED)
        push_ack(r, strdup(t->h->id));
    pthread_mutex_unlock(&r->lock);
    free(t->h);
    free(t);
}

static bool field_is(const redisReply *f, const char *name)
{
    return f->type == REDIS_REPLY_STRING && f->len == strlen(name) && !memcmp(f->str, name, f->len);
}

/* The data of a native entry: one field "data" gives its value; else a
 * JSON object of every field (values not valid UTF-8 in base64, their
 * names in *b64). */
static int entry_data(const redisReply *fv, size_t nf, struct ofe_buf *out, bool *raw,
                      struct ofe_buf *b64)
{
    if (nf == 1 && field_is(fv->element[0], "data")) {
        *raw = true;
        return ofe_buf_append(out, fv->element[1]->str, fv->element[1]->len);
    }
    *raw = false;
    json_t *o = json_object();
    for (size_t i = 0; i < nf; i++) {
        const redisReply *k = fv->element[2 * i], *v = fv->element[2 * i + 1];
        char key[512];
        snprintf(key, sizeof(key), "%.*s", (int)(k->len < 511 ? k->len : 511), k->str);
        if (!es_utf8_valid(key, strlen(key)))
            continue;
        if (es_utf8_valid(v->str, v->len)) {
            json_object_set_new(o, key, json_stringn(v->str, v->len));
        } else {
            unsigned char *enc = malloc(4 * ((v->len + 2) / 3) + 1);
            if (!enc)
                continue;
            EVP_EncodeBlock(enc, (const unsigned char *)v->str, (int)v->len);
            json_object_set_new(o, key, json_string((const char *)enc));
            free(enc);
            if (b64->len)
                ofe_buf_putc(b64, ',');
            ofe_buf_puts(b64, key);
        }
    }
    char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    if (!text)
        return OFE_ENOMEM;
    int rc = ofe_buf_puts(out, text);
    free(text);
    return rc;
}

static int entry_event(struct redis_src *r, const char *eid, const redisReply *fv,
                       struct ofe_ce **out, char *err, size_t err_size)
{
    size_t nf = fv->elements / 2;
    bool ce = false;
    for (size_t i = 0; i < nf && !ce; i++)
        ce = field_is(fv->element[2 * i], "ofe-ce");
    if (!ce && nf == 1 && field_is(fv->element[0], "data")) {
        const redisReply *v = fv->element[1];
        ce = memmem(v->str, v->len, "\"specversion\"", 13) != NULL && v->len && v->str[0] == '{';
    }
    if (ce) {
        struct ofe_hdrs f;
        ofe_hdrs_init(&f);
        for (size_t i = 0; i < nf; i++)
            ofe_hdrs_add_ref(&f, fv->element[2 * i]->str, fv->element[2 * i]->len,
                             fv->element[2 * i + 1]->str, fv->element[2 * i + 1]->len);
        int rc = ofe_ce_redis_decode(&f, OFE_CE_BIND_TYPEHINTS, out, err, err_size);
        ofe_hdrs_fini(&f);
        return rc;
    }
    struct ofe_buf data = OFE_BUF_INIT, b64 = OFE_BUF_INIT;
    bool raw = false;
    int rc = entry_data(fv, nf, &data, &raw, &b64);
    if (rc) {
        ofe_buf_fini(&data);
        ofe_buf_fini(&b64);
        return ofe_err(err, err_size, rc, "out of memory");
    }
    char id[400];
    snprintf(id, sizeof(id), "%s/%s", r->c->stream, eid);
    int64_t ms = strtoll(eid, NULL, 10);
    rc = es_ce_native(r->s, STREAM_TYPE, id, r->c->stream, ms > 0 ? ms : -1,
                      raw ? NULL : "application/json", data.data ? data.data : "", data.len, out,
                      err, err_size);
    if (!rc && b64.len)
        rc = ofe_ce_set_str(*out, "base64fields", OFE_CE_T_STRING, b64.data, err, err_size);
    if (rc && *out) {
        ofe_ce_unref(*out);
        *out = NULL;
    }
    ofe_buf_fini(&data);
    ofe_buf_fini(&b64);
    return rc;
}

/* Emits the entries of an XREADGROUP/XAUTOCLAIM entry list. Returns the
 * count seen. */
static size_t emit_entries(struct redis_src *r, const redisReply *list)
{
    struct es_source *s = r->s;
    size_t n = 0;
    for (size_t i = 0; list && list->type == REDIS_REPLY_ARRAY && i < list->elements; i++) {
        const redisReply *e = list->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
            e->element[0]->type != REDIS_REPLY_STRING)
            continue;
        n++;
        const char *eid = e->element[0]->str;
        const redisReply *fv = e->element[1];
        pthread_mutex_lock(&r->lock);
        bool dup = held(r, eid);
        pthread_mutex_unlock(&r->lock);
        if (dup)
            continue;
        if (fv->type != REDIS_REPLY_ARRAY) {
            /* deleted entry (XCLAIM of a trimmed id): nothing to deliver */
            pthread_mutex_lock(&r->lock);
            push_ack(r, strdup(eid));
            pthread_mutex_unlock(&r->lock);
            continue;
        }
        struct ofe_ce *ev = NULL;
        char err[400];
        struct inflight_id *h = calloc(1, sizeof(*h));
        struct rtok *t = malloc(sizeof(*t));
        if (!h || !t) {
            free(h);
            free(t);
            continue;
        }
        snprintf(h->id, sizeof(h->id), "%s", eid);
        t->r = r;
        t->h = h;
        pthread_mutex_lock(&r->lock);
        h->next = r->held;
        r->held = h;
        pthread_mutex_unlock(&r->lock);
        if (entry_event(r, eid, fv, &ev, err, sizeof(err)) != 0) {
            es_invalid(s, "redis stream %s entry %s: %s", r->c->stream, eid, err);
            entry_done(t, ES_REJECTED, NULL);
            es_count_acked(s, 1);
            continue;
        }
        if (es_emit(s, ev, ES_EMIT_FORCE, entry_done, t) != 0)
            entry_done(t, ES_FAILED, NULL);
        ofe_ce_unref(ev);
    }
    return n;
}

/* XACKs what completed. Returns -1 on a connection error. */
static int flush_acks(struct redis_src *r)
{
    pthread_mutex_lock(&r->lock);
    char **ids = r->acks;
    size_t n = r->nacks;
    r->acks = NULL;
    r->nacks = r->cap_acks = 0;
    pthread_mutex_unlock(&r->lock);
    if (!n)
        return 0;
    const char **argv = malloc((n + 3) * sizeof(*argv));
    size_t *lens = malloc((n + 3) * sizeof(*lens));
    int rc = 0;
    if (argv && lens) {
        argv[0] = "XACK";
        argv[1] = r->c->stream;
        argv[2] = r->c->consumer_group;
        for (size_t i = 0; i < n; i++)
            argv[3 + i] = ids[i];
        for (size_t i = 0; i < n + 3; i++)
            lens[i] = strlen(argv[i]);
        redisReply *rep = redisCommandArgv(r->rc, (int)(n + 3), argv, lens);
        if (!rep) {
            rc = -1;
            /* give them back: acked again after reconnecting */
            pthread_mutex_lock(&r->lock);
            for (size_t i = 0; i < n; i++) {
                push_ack(r, ids[i]);
                ids[i] = NULL;
            }
            pthread_mutex_unlock(&r->lock);
        } else {
            if (rep->type == REDIS_REPLY_INTEGER)
                es_count_acked(r->s, (unsigned)rep->integer);
            freeReplyObject(rep);
        }
    }
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    free(argv);
    free(lens);
    return rc;
}

static int ensure_group(struct redis_src *r)
{
    const char *start = r->c->initial_offset == OFE_CONFIG_OFFSET_OLDEST ? "0" : "$";
    redisReply *rep =
        cmd(r, "XGROUP CREATE %s %s %s MKSTREAM", r->c->stream, r->c->consumer_group, start);
    if (!rep)
        return -1;
    int rc = 0;
    if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "BUSYGROUP", 9)) {
        char why[400];
        snprintf(why, sizeof(why), "redis: XGROUP CREATE %s %s: %s", r->c->stream,
                 r->c->consumer_group, rep->str);
        set_state(r, true, why);
        OFE_WARN(ES_COMPONENT, r->s->name, "%s", why);
        rc = -2;
    } else if (rep->type != REDIS_REPLY_ERROR) {
        OFE_INFO(ES_COMPONENT, r->s->name, "redis: created consumer group %s on %s at %s",
                 r->c->consumer_group, r->c->stream, start);
    }
    freeReplyObject(rep);
    return rc;
}

/* Reads this consumer's own pending entries (after a (re)connect). */
static int read_own_pending(struct redis_src *r)
{
    char last[64] = "0";
    for (int page = 0; page < 10000 && !atomic_load(&r->stop); page++) {
        redisReply *rep = cmd(r, "XREADGROUP GROUP %s %s COUNT %d STREAMS %s %s",
                              r->c->consumer_group, r->consumer, READ_MAX, r->c->stream, last);
        if (!rep)
            return -1;
        size_t n = 0;
        if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
            rep->element[0]->elements == 2) {
            const redisReply *list = rep->element[0]->element[1];
            n = emit_entries(r, list);
            if (n)
                snprintf(last, sizeof(last), "%s",
                         list->element[list->elements - 1]->element[0]->str);
        }
        freeReplyObject(rep);
        if (n < READ_MAX)
            break;
    }
    return 0;
}

/* XAUTOCLAIM entries idle longer than processingTimeout. */
static int autoclaim(struct redis_src *r)
{
    uint64_t now = es_mono_ms();
    int64_t every = r->c->redeliver_interval_ms;
    if (every <= 0 || now - r->last_claim < (uint64_t)every)
        return 0;
    r->last_claim = now;
    char cursor[64] = "0-0";
    for (int round = 0; round < 100 && !atomic_load(&r->stop); round++) {
        unsigned cap = es_capacity(r->s);
        if (!cap)
            return 0;
        redisReply *rep =
            cmd(r, "XAUTOCLAIM %s %s %s %lld %s COUNT %u", r->c->stream, r->c->consumer_group,
                r->consumer, (long long)r->c->processing_timeout_ms, cursor,
                cap < READ_MAX ? cap : READ_MAX);
        if (!rep)
            return -1;
        if (rep->type == REDIS_REPLY_ERROR) {
            OFE_WARN(ES_COMPONENT, r->s->name, "redis: XAUTOCLAIM: %s", rep->str);
            freeReplyObject(rep);
            return 0;
        }
        size_t n = 0;
        bool more = false;
        if (rep->type == REDIS_REPLY_ARRAY && rep->elements >= 2) {
            n = emit_entries(r, rep->element[1]);
            if (n)
                OFE_INFO(ES_COMPONENT, r->s->name,
                         "redis: claimed %zu entr%s idle longer than %lld ms", n,
                         n == 1 ? "y" : "ies", (long long)r->c->processing_timeout_ms);
            if (rep->element[0]->type == REDIS_REPLY_STRING) {
                snprintf(cursor, sizeof(cursor), "%s", rep->element[0]->str);
                more = strcmp(cursor, "0-0") != 0;
            }
        }
        freeReplyObject(rep);
        if (!more)
            break;
    }
    return 0;
}

static void stream_loop(struct redis_src *r)
{
    struct es_source *s = r->s;
    bool fresh = true;
    while (!atomic_load(&r->stop)) {
        if (!r->rc) {
            if (conn_open(r) != 0) {
                for (int i = 0; i < 10 && !atomic_load(&r->stop); i++)
                    nap(100);
                continue;
            }
            fresh = true;
        }
        if (fresh) {
            int g = ensure_group(r);
            if (g == -1) {
                drop_conn(r, "lost the connection to");
                continue;
            }
            if (g == -2) {
                for (int i = 0; i < 10 && !atomic_load(&r->stop); i++)
                    nap(100);
                continue;
            }
            if (read_own_pending(r) != 0) {
                drop_conn(r, "lost the connection to");
                continue;
            }
            pthread_mutex_lock(&r->lock);
            r->subscribed = true;
            pthread_mutex_unlock(&r->lock);
            fresh = false;
        }
        if (flush_acks(r) != 0 || (!atomic_load(&r->stopping) && autoclaim(r) != 0)) {
            drop_conn(r, "lost the connection to");
            continue;
        }
        if (atomic_load(&r->stopping)) {
            nap(20); /* only acks of events still in delivery go out now */
            continue;
        }
        unsigned cap = es_capacity(s);
        if (!cap) {
            es_wait_capacity(s, BLOCK_MS);
            continue;
        }
        redisReply *rep =
            cmd(r, "XREADGROUP GROUP %s %s COUNT %u BLOCK %d STREAMS %s >", r->c->consumer_group,
                r->consumer, cap < READ_MAX ? cap : READ_MAX, BLOCK_MS, r->c->stream);
        if (!rep) {
            drop_conn(r, "lost the connection to");
            continue;
        }
        if (rep->type == REDIS_REPLY_ERROR) {
            /* NOGROUP: the stream or group was deleted: make it again */
            OFE_WARN(ES_COMPONENT, s->name, "redis: XREADGROUP: %s", rep->str);
            fresh = !strncmp(rep->str, "NOGROUP", 7);
            freeReplyObject(rep);
            if (!fresh)
                nap(500);
            continue;
        }
        if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 && rep->element[0]->elements == 2)
            emit_entries(r, rep->element[0]->element[1]);
        freeReplyObject(rep);
    }
    if (r->rc)
        flush_acks(r);
}

/* ---- channels --------------------------------------------------------------------- */

static void channel_done(void *token, enum es_result res, const char *why)
{
    struct redis_src *r = token;
    if (res != ES_FAILED)
        es_count_acked(r->s, 1);
}

/* Waits for a reply up to ms. Returns 1 with *out, 0 on timeout, -1 on
 * a connection error. */
static int get_reply(struct redis_src *r, redisReply **out, int ms)
{
    void *rep = NULL;
    if (redisGetReplyFromReader(r->rc, &rep) != REDIS_OK)
        return -1;
    if (rep) {
        *out = rep;
        return 1;
    }
    struct pollfd pf = {r->rc->fd, POLLIN, 0};
    int n = poll(&pf, 1, ms);
    if (n < 0)
        return errno == EINTR ? 0 : -1;
    if (n == 0)
        return 0;
    if (redisBufferRead(r->rc) != REDIS_OK)
        return -1;
    if (redisGetReplyFromReader(r->rc, &rep) != REDIS_OK)
        return -1;
    if (rep) {
        *out = rep;
        return 1;
    }
    return 0;
}

static void channel_message(struct redis_src *r, const redisReply *rep)
{
    struct es_source *s = r->s;
    /* ["message", channel, payload] or ["pmessage", pattern, channel, payload] */
    size_t base = r->pattern ? 1 : 0;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 + base ||
        rep->element[0]->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(rep->element[0]->str, r->pattern ? "pmessage" : "message"))
        return;
    const redisReply *ch = rep->element[1 + base], *pl = rep->element[2 + base];
    char id[40], chan[512];
    snprintf(chan, sizeof(chan), "%.*s", (int)(ch->len < 511 ? ch->len : 511), ch->str);
    struct ofe_ce *ev = NULL;
    char err[400];
    int rc;
    if (pl->len && pl->str[0] == '{' && memmem(pl->str, pl->len, "\"specversion\"", 13))
        rc = ofe_ce_json_decode(pl->str, pl->len, &ev, err, sizeof(err));
    else
        rc = es_ce_native(s, CHANNEL_TYPE, es_uuid(id, sizeof(id)), chan, -1, NULL,
                          pl->str ? pl->str : "", pl->len, &ev, err, sizeof(err));
    if (rc) {
        es_invalid(s, "redis channel %s: %s", chan, err);
        return;
    }
    while (es_capacity(s) == 0 && !atomic_load(&r->stop))
        es_wait_capacity(s, 200);
    es_emit(s, ev, ES_EMIT_FORCE, channel_done, r);
    ofe_ce_unref(ev);
}

static void channel_loop(struct redis_src *r)
{
    while (!atomic_load(&r->stop)) {
        if (!r->rc) {
            if (conn_open(r) != 0) {
                for (int i = 0; i < 10 && !atomic_load(&r->stop); i++)
                    nap(100);
                continue;
            }
            redisAppendCommand(r->rc, r->pattern ? "PSUBSCRIBE %s" : "SUBSCRIBE %s", r->c->channel);
            int done = 0;
            while (!done)
                if (redisBufferWrite(r->rc, &done) != REDIS_OK)
                    break;
            if (!done) {
                drop_conn(r, "lost the connection to");
                continue;
            }
        }
        redisReply *rep = NULL;
        int g = get_reply(r, &rep, 200);
        if (g < 0) {
            drop_conn(r, "lost the connection to");
            continue;
        }
        if (g == 0)
            continue;
        if (rep->type == REDIS_REPLY_ARRAY && rep->elements >= 3 &&
            rep->element[0]->type == REDIS_REPLY_STRING &&
            (!strcmp(rep->element[0]->str, "subscribe") ||
             !strcmp(rep->element[0]->str, "psubscribe"))) {
            pthread_mutex_lock(&r->lock);
            r->subscribed = true;
            pthread_mutex_unlock(&r->lock);
            OFE_INFO(ES_COMPONENT, r->s->name, "redis: subscribed to %s%s", r->c->channel,
                     r->pattern ? " (pattern)" : "");
        } else if (rep->type == REDIS_REPLY_ERROR) {
            OFE_WARN(ES_COMPONENT, r->s->name, "redis: %s", rep->str);
        } else {
            channel_message(r, rep);
        }
        freeReplyObject(rep);
    }
}

static void *redis_run(void *arg)
{
    struct redis_src *r = arg;
    if (r->c->stream)
        stream_loop(r);
    else
        channel_loop(r);
    if (r->rc)
        redisFree(r->rc);
    r->rc = NULL;
    return NULL;
}

/* ---- kind ------------------------------------------------------------------------- */

static void redis_check(const struct ofe_config_eventsource *es, const struct ofe_config_event *ev,
                        const struct es_options *o, struct es_diag *d)
{
    const struct ofe_config_redis_source *c = (const struct ofe_config_redis_source *)ev->spec;
    if (c->enable_tls)
        es_diag_error(d, &c->node, "enableTLS",
                      "TLS to Redis is not available: this build uses hiredis %d.%d without its "
                      "TLS module (use a TLS proxy such as stunnel, or a plain connection on a "
                      "trusted network)",
                      HIREDIS_MAJOR, HIREDIS_MINOR);
    if (c->failover)
        es_diag_error(d, &c->node, "failover",
                      "Redis Sentinel is not supported: give the master's address in redisHost");
    if (c->redis_type == OFE_CONFIG_REDIS_CLUSTER)
        es_diag_error(d, &c->node, "redisType",
                      "Redis Cluster is not supported: a stream lives on one node; give that "
                      "node's address and redisType: node");
    char *host = NULL;
    int port;
    if (c->redis_host && split_hostport(c->redis_host, &host, &port) != 0)
        es_diag_error(d, &c->node, "redisHost", "\"%s\" is not host:port", c->redis_host);
    free(host);
}

static void redis_destroy(void *ctx);

static int redis_start(struct es_source *s, void **ctx, char *errstr, size_t errstr_size)
{
    struct redis_src *r = calloc(1, sizeof(*r));
    if (!r)
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    r->s = s;
    r->c = (const struct ofe_config_redis_source *)s->ev->spec;
    atomic_init(&r->stop, false);
    atomic_init(&r->stopping, false);
    pthread_mutex_init(&r->lock, NULL);
    snprintf(r->why, sizeof(r->why), "redis: connecting to %s", r->c->redis_host);
    if (split_hostport(r->c->redis_host, &r->host, &r->port) != 0) {
        redis_destroy(r);
        return ofe_err(errstr, errstr_size, OFE_EINVAL, "redisHost \"%s\" is not host:port",
                       r->c->redis_host);
    }
    if (r->c->consumer_name) {
        snprintf(r->consumer, sizeof(r->consumer), "%s", r->c->consumer_name);
    } else if (s->opts->instance) {
        /* a stable name: after a restart the own pending entries come
         * back at once instead of after processingTimeout */
        snprintf(r->consumer, sizeof(r->consumer), "%s", s->opts->instance);
    } else {
        char host[200] = "host";
        gethostname(host, sizeof(host) - 1);
        snprintf(r->consumer, sizeof(r->consumer), "%s-%d", host, (int)getpid());
    }
    if (r->c->channel)
        r->pattern = strpbrk(r->c->channel, "*?[") != NULL;
    if (pthread_create(&r->thr, NULL, redis_run, r) != 0) {
        redis_destroy(r);
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "cannot start a thread");
    }
    r->thr_started = true;
    if (r->c->stream)
        OFE_INFO(ES_COMPONENT, s->name, "redis: stream %s, group %s, consumer %s on %s",
                 r->c->stream, r->c->consumer_group, r->consumer, r->c->redis_host);
    else
        OFE_INFO(ES_COMPONENT, s->name, "redis: channel %s on %s (at most once)", r->c->channel,
                 r->c->redis_host);
    *ctx = r;
    return 0;
}

static void redis_stop(void *ctx)
{
    struct redis_src *r = ctx;
    atomic_store(&r->stopping, true);
    if (r->c->channel) {
        atomic_store(&r->stop, true);
        if (r->thr_started) {
            pthread_join(r->thr, NULL);
            r->thr_started = false;
        }
    }
}

static void redis_destroy(void *ctx)
{
    struct redis_src *r = ctx;
    atomic_store(&r->stopping, true);
    atomic_store(&r->stop, true);
    if (r->thr_started)
        pthread_join(r->thr, NULL);
    for (size_t i = 0; i < r->nacks; i++)
        free(r->acks[i]);
    free(r->acks);
    while (r->held) {
        struct inflight_id *h = r->held;
        r->held = h->next;
        free(h);
    }
    free(r->host);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static bool redis_ready(void *ctx, char *why, size_t why_size)
{
    struct redis_src *r = ctx;
    pthread_mutex_lock(&r->lock);
    bool ok = r->connected && r->subscribed;
    if (!ok)
        snprintf(why, why_size, "%s", r->connected ? "redis: joining the group" : r->why);
    pthread_mutex_unlock(&r->lock);
    return ok;
}

const struct es_kind es_kind_redis = {
    .name = "redis",
    .kind = OFE_CONFIG_SOURCE_REDIS,
    .redrive = true,
    .default_inflight = 1024,
    .check = redis_check,
    .start = redis_start,
    .stop = redis_stop,
    .destroy = redis_destroy,
    .ready = redis_ready,
};
