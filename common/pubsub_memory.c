/* The memory backend: an in-process broker for the daemons' unit tests.
 *
 * Brokers are named and process-wide: every bus opened on the same name
 * sees the same topics. A topic is an append-only array of events; a
 * consumer group keeps a cursor and a queue of entries to hand out again
 * (nacked, or left unacked when a member stopped). Each subscription has a
 * thread that hands entries to the consumer while it has capacity.
 * Publishing completes at once: the event is "on the broker" when it is in
 * the array. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ofe/err.h"
#include "pubsub_int.h"

struct mgroup {
    struct mgroup *next;
    char *name;
    size_t cursor; /* next never-delivered entry */
    size_t *again; /* entries to deliver again (FIFO) */
    size_t nagain, cap_again, head_again;
    unsigned char *pending; /* per entry: delivered and not acked */
    size_t npending_cap;
};

struct mtopic {
    struct mtopic *next;
    char *name;
    struct ofe_ce **ev;
    size_t n, cap;
    struct mgroup *groups;
};

struct mbroker {
    struct mbroker *next;
    char *name;
    int refs;
    struct mtopic *topics;
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER; /* new entries or entries given back */
static struct mbroker *g_brokers;

struct mctx {
    struct mbroker *br;
    char desc[160];
};

struct msub {
    struct mctx *ctx;
    struct ofe_sub *sub;
    pthread_t thr;
    bool stop;
};

struct mpriv {
    struct mtopic *t;
    struct mgroup *g;
    size_t idx;
};

static struct mtopic *topic_get(struct mbroker *br, const char *name)
{
    for (struct mtopic *t = br->topics; t; t = t->next)
        if (!strcmp(t->name, name))
            return t;
    struct mtopic *t = calloc(1, sizeof(*t));
    if (!t || !(t->name = strdup(name))) {
        free(t);
        return NULL;
    }
    t->next = br->topics;
    br->topics = t;
    return t;
}

static struct mgroup *group_get(struct mtopic *t, const char *name, enum ofe_start start)
{
    for (struct mgroup *g = t->groups; g; g = g->next)
        if (!strcmp(g->name, name))
            return g;
    struct mgroup *g = calloc(1, sizeof(*g));
    if (!g || !(g->name = strdup(name))) {
        free(g);
        return NULL;
    }
    g->cursor = start == OFE_START_NEWEST ? t->n : 0;
    g->next = t->groups;
    t->groups = g;
    return g;
}

static int set_pending(struct mgroup *g, size_t idx, bool on)
{
    if (idx >= g->npending_cap) {
        size_t cap = g->npending_cap ? g->npending_cap : 1024;
        while (cap <= idx)
            cap *= 2;
        unsigned char *p = realloc(g->pending, cap);
        if (!p)
            return OFE_ENOMEM;
        memset(p + g->npending_cap, 0, cap - g->npending_cap);
        g->pending = p;
        g->npending_cap = cap;
    }
    g->pending[idx] = on;
    return 0;
}

static int push_again(struct mgroup *g, size_t idx)
{
    if (g->nagain == g->cap_again) {
        size_t cap = g->cap_again ? g->cap_again * 2 : 64;
        size_t *a = malloc(cap * sizeof(*a));
        if (!a)
            return OFE_ENOMEM;
        for (size_t i = 0; i < g->nagain; i++)
            a[i] = g->again[(g->head_again + i) % g->cap_again];
        free(g->again);
        g->again = a;
        g->cap_again = cap;
        g->head_again = 0;
    }
    g->again[(g->head_again + g->nagain++) % g->cap_again] = idx;
    return 0;
}

static int m_open(struct ofe_bus *bus, const void *def, void **ctx, char *errstr,
                  size_t errstr_size)
{
    const char *name = def;
    struct mctx *c = calloc(1, sizeof(*c));
    if (!c)
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    pthread_mutex_lock(&g_lock);
    struct mbroker *br;
    for (br = g_brokers; br; br = br->next)
        if (!strcmp(br->name, name ? name : "default"))
            break;
    if (!br) {
        br = calloc(1, sizeof(*br));
        if (!br || !(br->name = strdup(name ? name : "default"))) {
            free(br);
            pthread_mutex_unlock(&g_lock);
            free(c);
            return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
        }
        br->next = g_brokers;
        g_brokers = br;
    }
    br->refs++;
    pthread_mutex_unlock(&g_lock);
    c->br = br;
    snprintf(c->desc, sizeof(c->desc), "memory broker \"%s\"", br->name);
    *ctx = c;
    return 0;
}

static int m_publish(void *ctx, const char *topic, struct ofe_pub *p, char *errstr,
                     size_t errstr_size)
{
    struct mctx *c = ctx;
    pthread_mutex_lock(&g_lock);
    struct mtopic *t = topic_get(c->br, topic);
    if (t && t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        struct ofe_ce **ev = realloc(t->ev, cap * sizeof(*ev));
        if (ev) {
            t->ev = ev;
            t->cap = cap;
        }
    }
    if (!t || t->n == t->cap) {
        pthread_mutex_unlock(&g_lock);
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    }
    t->ev[t->n++] = ofe_ce_ref(ofe_pub__event(p));
    pthread_cond_broadcast(&g_cond);
    pthread_mutex_unlock(&g_lock);
    ofe_pub__done(p, 0, NULL);
    return 0;
}

/* Finds the next entry for the subscription; called with g_lock held. */
static bool next_entry(struct msub *ms, struct mtopic **tt, struct mgroup **gg, size_t *idx)
{
    const struct ofe_sub_opts *o = ofe_sub__opts(ms->sub);
    for (size_t i = 0; i < o->ntopics; i++) {
        struct mtopic *t = topic_get(ms->ctx->br, o->topics[i]);
        struct mgroup *g = t ? group_get(t, o->group, o->start) : NULL;
        if (!g)
            continue;
        if (g->nagain) {
            *idx = g->again[g->head_again];
            g->head_again = (g->head_again + 1) % g->cap_again;
            g->nagain--;
        } else if (g->cursor < t->n) {
            *idx = g->cursor++;
        } else {
            continue;
        }
        if (set_pending(g, *idx, true) != 0) {
            push_again(g, *idx);
            return false;
        }
        *tt = t;
        *gg = g;
        return true;
    }
    return false;
}

static void *sub_thread(void *arg)
{
    struct msub *ms = arg;
    for (;;) {
        if (!ofe_sub__wait_capacity(ms->sub, 100)) {
            pthread_mutex_lock(&g_lock);
            bool stop = ms->stop;
            pthread_mutex_unlock(&g_lock);
            if (stop)
                break;
            continue;
        }
        pthread_mutex_lock(&g_lock);
        struct mtopic *t;
        struct mgroup *g;
        size_t idx;
        while (!ms->stop && !next_entry(ms, &t, &g, &idx)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 100 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&g_cond, &g_lock, &ts);
        }
        if (ms->stop) {
            pthread_mutex_unlock(&g_lock);
            break;
        }
        struct ofe_ce *ev = ofe_ce_ref(t->ev[idx]);
        pthread_mutex_unlock(&g_lock);
        struct ofe_msg *m = ofe_msg__new(ms->sub, t->name, sizeof(struct mpriv));
        if (!m) {
            ofe_ce_unref(ev);
            pthread_mutex_lock(&g_lock);
            set_pending(g, idx, false);
            push_again(g, idx);
            pthread_mutex_unlock(&g_lock);
            continue;
        }
        m->ev = ev;
        struct mpriv *pv = (struct mpriv *)m->priv;
        pv->t = t;
        pv->g = g;
        pv->idx = idx;
        ofe_sub__deliver(ms->sub, m);
    }
    return NULL;
}

static int m_subscribe(void *ctx, struct ofe_sub *sub, void **sctx, char *errstr,
                       size_t errstr_size)
{
    struct msub *ms = calloc(1, sizeof(*ms));
    if (!ms)
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    ms->ctx = ctx;
    ms->sub = sub;
    /* Create the groups now, so events published from here on are kept
     * for them even before the thread first looks. */
    const struct ofe_sub_opts *o = ofe_sub__opts(sub);
    pthread_mutex_lock(&g_lock);
    for (size_t i = 0; i < o->ntopics; i++) {
        struct mtopic *t = topic_get(ms->ctx->br, o->topics[i]);
        if (t)
            group_get(t, o->group, o->start);
    }
    pthread_mutex_unlock(&g_lock);
    if (pthread_create(&ms->thr, NULL, sub_thread, ms) != 0) {
        free(ms);
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "cannot start a thread");
    }
    *sctx = ms;
    return 0;
}

static void m_stop(void *ctx, void *sctx)
{
    struct msub *ms = sctx;
    pthread_mutex_lock(&g_lock);
    ms->stop = true;
    pthread_cond_broadcast(&g_cond);
    pthread_mutex_unlock(&g_lock);
    pthread_join(ms->thr, NULL);
}

static void m_release(void *ctx, void *sctx)
{
    free(sctx);
}

static void m_ack(void *ctx, void *sctx, struct ofe_msg *m)
{
    struct mpriv *pv = (struct mpriv *)m->priv;
    pthread_mutex_lock(&g_lock);
    set_pending(pv->g, pv->idx, false);
    pthread_mutex_unlock(&g_lock);
}

static void m_abandon(void *ctx, void *sctx, struct ofe_msg *m)
{
    struct mpriv *pv = (struct mpriv *)m->priv;
    pthread_mutex_lock(&g_lock);
    if (pv->g->pending[pv->idx]) {
        set_pending(pv->g, pv->idx, false);
        push_again(pv->g, pv->idx);
        pthread_cond_broadcast(&g_cond);
    }
    pthread_mutex_unlock(&g_lock);
}

static bool m_ready(void *ctx, char *why, size_t why_size)
{
    return true;
}

static void broker_free(struct mbroker *br)
{
    struct mtopic *t = br->topics;
    while (t) {
        struct mtopic *tn = t->next;
        for (size_t i = 0; i < t->n; i++)
            ofe_ce_unref(t->ev[i]);
        free(t->ev);
        struct mgroup *g = t->groups;
        while (g) {
            struct mgroup *gn = g->next;
            free(g->name);
            free(g->again);
            free(g->pending);
            free(g);
            g = gn;
        }
        free(t->name);
        free(t);
        t = tn;
    }
    free(br->name);
    free(br);
}

static void m_close(void *ctx, uint32_t drain_ms)
{
    struct mctx *c = ctx;
    pthread_mutex_lock(&g_lock);
    if (--c->br->refs == 0) {
        /* the last bus on this broker: forget it (tests start clean) */
        for (struct mbroker **pp = &g_brokers; *pp; pp = &(*pp)->next)
            if (*pp == c->br) {
                *pp = c->br->next;
                break;
            }
        broker_free(c->br);
    }
    pthread_mutex_unlock(&g_lock);
    free(c);
}

static const char *m_describe(void *ctx)
{
    return ((struct mctx *)ctx)->desc;
}

const struct ofe_pubsub_ops ofe_pubsub_memory = {
    .name = "memory",
    .open = m_open,
    .publish = m_publish,
    .subscribe = m_subscribe,
    .stop = m_stop,
    .release = m_release,
    .ack = m_ack,
    .nack = NULL, /* the core redelivers after the delay */
    .abandon = m_abandon,
    .ready = m_ready,
    .close = m_close,
    .describe = m_describe,
};

int ofe_bus_open_memory(const char *name, const struct ofe_bus_opts *opts, struct ofe_bus **out,
                        char *errstr, size_t errstr_size)
{
    return ofe_bus__open_ops(&ofe_pubsub_memory, name, opts, out, errstr, errstr_size);
}
