/* The redis and embedded lines of bench_pubsub: the workload straight with
 * hiredis, as a careful hand-written client would do it. Publisher: one
 * connection, XADDs pipelined with `window` in flight (the fields of the
 * Redis binding, encoded once per event). Consumer: another connection,
 * XREADGROUP COUNT 100 BLOCK, with the XACK of each batch pipelined in
 * front of the next read. ofe-eventbus speaks the same commands, so the
 * embedded line runs the same code against it. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "bench_pubsub.h"
#include "ofe/config.h"
#include "ofe/err.h"
#include "servers.h"

struct rb_state {
    struct tu_server *srv;
    bool embedded;
};

/* Redis with AOF fsync every second (its recommended setting; the test
 * harness's "always" would measure the disk, not the client), and no
 * automatic AOF rewrite: with the default (at 64 MB, then at each doubling)
 * the forked rewrite fell in the middle of particular rounds of a run and
 * took CPU from whichever side was running then. */
static void *start_kind(enum tu_server_kind kind, char *why, size_t why_size)
{
    const char *redis_extra[] = {"--appendfsync", "everysec", "--auto-aof-rewrite-percentage", "0",
                                 NULL};
    struct tu_server *srv = tu_server_start(kind, kind == TU_REDIS ? redis_extra : NULL);
    if (!srv) {
        snprintf(why, why_size, "%s did not start",
                 kind == TU_REDIS ? "redis-server" : "ofe-eventbus");
        return NULL;
    }
    struct rb_state *s = calloc(1, sizeof(*s));
    s->srv = srv;
    s->embedded = kind == TU_EVENTBUS;
    return s;
}

static void *redis_start(char *why, size_t why_size)
{
    return start_kind(TU_REDIS, why, why_size);
}

static void *embedded_start(char *why, size_t why_size)
{
    char *bin = tu_build_path("eventbus/ofe-eventbus");
    FILE *f = fopen(bin, "rb");
    free(bin);
    if (!f) {
        snprintf(why, why_size, "ofe-eventbus is not built");
        return NULL;
    }
    fclose(f);
    return start_kind(TU_EVENTBUS, why, why_size);
}

static int rb_open(void *state, const struct ofe_bus_opts *o, struct ofe_bus **out, char *errstr,
                   size_t errstr_size)
{
    struct rb_state *s = state;
    struct ofe_config_redis_bus r = {.redis_host = s->srv->addr};
    struct ofe_config_embedded_bus e = {.address = s->srv->addr};
    struct ofe_config_busdesc d = {
        .kind = s->embedded ? OFE_CONFIG_BUS_EMBEDDED : OFE_CONFIG_BUS_REDIS,
        .kind_name = s->embedded ? "embedded" : "redis",
        .options = s->embedded ? &e.node : &r.node,
        .embedded = s->embedded ? &e : NULL,
        .redis = s->embedded ? NULL : &r,
    };
    return ofe_bus_open(&d, o, out, errstr, errstr_size);
}

static void rb_stop(void *state)
{
    struct rb_state *s = state;
    tu_server_free(s->srv);
    free(s);
}

/* One event's XADD arguments. */
struct xadd {
    int argc;
    const char **argv;
    size_t *argl;
    struct ofe_hdrs f;
    struct ofe_ce *ev;
};

struct direct {
    struct rb_state *s;
    const char *topic;
    const struct bench_params *p;
    struct xadd *pool;
    size_t npool;
    double t_pub_done, t_cons_done;
    size_t consumed;
    char err[512];
};

static redisContext *dial(struct rb_state *s, char *err, size_t errsz)
{
    redisContext *c = redisConnect("127.0.0.1", s->srv->port);
    if (!c || c->err) {
        snprintf(err, errsz, "connect: %s", c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    /* a server that stops answering ends the run instead of hanging it */
    struct timeval tv = {15, 0};
    redisSetTimeout(c, tv);
    return c;
}

static void *publisher(void *arg)
{
    struct direct *d = arg;
    pthread_setname_np(pthread_self(), "direct-pub");
    redisContext *c = dial(d->s, d->err, sizeof(d->err));
    if (!c)
        return NULL;
    size_t n = d->p->n, sent = 0, got = 0;
    while (sent < n && sent < d->p->window) {
        struct xadd *x = &d->pool[sent % d->npool];
        redisAppendCommandArgv(c, x->argc, x->argv, x->argl);
        sent++;
    }
    while (got < n) {
        void *rp;
        if (redisGetReply(c, &rp) != REDIS_OK) {
            snprintf(d->err, sizeof(d->err), "XADD: %s", c->errstr);
            break;
        }
        redisReply *r = rp;
        if (r->type == REDIS_REPLY_ERROR)
            snprintf(d->err, sizeof(d->err), "XADD: %s", r->str);
        freeReplyObject(r);
        got++;
        if (sent < n) {
            struct xadd *x = &d->pool[sent % d->npool];
            redisAppendCommandArgv(c, x->argc, x->argv, x->argl);
            sent++;
        }
    }
    d->t_pub_done = bench_now();
    redisFree(c);
    return NULL;
}

static void *consumer(void *arg)
{
    struct direct *d = arg;
    pthread_setname_np(pthread_self(), "direct-cons");
    redisContext *c = dial(d->s, d->err, sizeof(d->err));
    if (!c)
        return NULL;
    char idbuf[100][48];
    size_t nack = 0;
    double until = bench_now() + 120;
    while (d->consumed < d->p->n && bench_now() < until) {
        /* the XACK of the last batch goes out with the next read */
        if (nack) {
            const char *head[] = {"XACK", d->topic, "bench-group"};
            const char *argv[103];
            size_t argl[103];
            for (int i = 0; i < 3; i++) {
                argv[i] = head[i];
                argl[i] = strlen(head[i]);
            }
            for (size_t i = 0; i < nack; i++) {
                argv[3 + i] = idbuf[i];
                argl[3 + i] = strlen(idbuf[i]);
            }
            redisAppendCommandArgv(c, (int)(3 + nack), argv, argl);
        }
        /* no read after the last batch: its XACK alone ends the run */
        bool last = d->consumed + nack >= d->p->n;
        if (!last)
            redisAppendCommand(
                c, "XREADGROUP GROUP bench-group c1 COUNT 100 BLOCK 1000 STREAMS %s >", d->topic);
        void *rp;
        if (nack) {
            if (redisGetReply(c, &rp) != REDIS_OK) {
                snprintf(d->err, sizeof(d->err), "XACK: %s", c->errstr);
                break;
            }
            freeReplyObject(rp);
            d->consumed += nack;
            nack = 0;
        }
        if (last)
            break;
        if (redisGetReply(c, &rp) != REDIS_OK) {
            snprintf(d->err, sizeof(d->err), "XREADGROUP (%zu consumed): %s", d->consumed,
                     c->errstr);
            break;
        }
        redisReply *r = rp;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
            redisReply *ents = r->element[0]->element[1];
            for (size_t i = 0; i < ents->elements; i++) {
                redisReply *e = ents->element[i];
                /* look at the entry as a consumer would: find the data */
                redisReply *fv = e->element[1];
                size_t bytes = 0;
                for (size_t k = 0; k + 1 < fv->elements; k += 2)
                    if (!strcmp(fv->element[k]->str, "data"))
                        bytes += fv->element[k + 1]->len;
                (void)bytes;
                snprintf(idbuf[nack], sizeof(idbuf[nack]), "%s", e->element[0]->str);
                nack++;
            }
        }
        freeReplyObject(r);
    }
    d->t_cons_done = bench_now();
    redisFree(c);
    return NULL;
}

static int rb_direct(void *state, const char *topic, const struct bench_params *p,
                     struct bench_result *res)
{
    struct direct d = {.s = state, .topic = topic, .p = p};
    d.npool = p->n < 1000 ? p->n : 1000;
    d.pool = calloc(d.npool, sizeof(*d.pool));
    for (size_t i = 0; i < d.npool; i++) {
        struct xadd *x = &d.pool[i];
        x->ev = bench_event(i, p->size);
        ofe_hdrs_init(&x->f);
        if (ofe_ce_redis_encode(x->ev, OFE_CE_BIND_TYPEHINTS, &x->f, res->err, sizeof(res->err)))
            return -1;
        x->argc = (int)(3 + 2 * x->f.n);
        x->argv = calloc((size_t)x->argc, sizeof(char *));
        x->argl = calloc((size_t)x->argc, sizeof(size_t));
        x->argv[0] = "XADD";
        x->argl[0] = 4;
        x->argv[1] = topic;
        x->argl[1] = strlen(topic);
        x->argv[2] = "*";
        x->argl[2] = 1;
        for (size_t k = 0; k < x->f.n; k++) {
            x->argv[3 + 2 * k] = x->f.v[k].name;
            x->argl[3 + 2 * k] = x->f.v[k].name_len;
            x->argv[4 + 2 * k] = x->f.v[k].value;
            x->argl[4 + 2 * k] = x->f.v[k].value_len;
        }
    }
    redisContext *c = dial(d.s, res->err, sizeof(res->err));
    int rc = -1;
    if (c) {
        redisReply *r = redisCommand(c, "XGROUP CREATE %s bench-group 0 MKSTREAM", topic);
        freeReplyObject(r);
        redisFree(c);
        pthread_t tp, tc;
        double t0 = bench_now();
        pthread_create(&tc, NULL, consumer, &d);
        pthread_create(&tp, NULL, publisher, &d);
        pthread_join(tp, NULL);
        pthread_join(tc, NULL);
        if (d.err[0])
            snprintf(res->err, sizeof(res->err), "%s", d.err);
        else if (d.consumed < p->n)
            snprintf(res->err, sizeof(res->err), "consumed %zu of %zu", d.consumed, p->n);
        else {
            res->pub_secs = d.t_pub_done - t0;
            res->secs = d.t_cons_done - t0;
            res->consumed = d.consumed;
            rc = 0;
        }
    }
    for (size_t i = 0; i < d.npool; i++) {
        free(d.pool[i].argv);
        free(d.pool[i].argl);
        ofe_hdrs_fini(&d.pool[i].f);
        ofe_ce_unref(d.pool[i].ev);
    }
    free(d.pool);
    return rc;
}

const struct bench_backend bench_redis = {
    .name = "redis",
    .start = redis_start,
    .open = rb_open,
    .direct = rb_direct,
    .stop = rb_stop,
};

const struct bench_backend bench_embedded = {
    .name = "embedded",
    .start = embedded_start,
    .open = rb_open,
    .direct = rb_direct,
    .stop = rb_stop,
};
