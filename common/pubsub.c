/* The pub/sub core: publish accounting, subscriptions with bounded in-flight
 * messages, ack/nack routing and local delayed redelivery. Backends plug in
 * through struct ofe_pubsub_ops (pubsub_int.h).
 *
 * Lifetimes: a subscription is referenced by its owner (until
 * ofe_sub_close) and by every message in flight; the backend's sctx is
 * released when the last reference goes. Lock order: bus lock, then
 * subscription lock, then the redelivery timer lock. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ofe/err.h"
#include "ofe/log.h"
#include "pubsub_int.h"

struct ofe_bus {
    const struct ofe_pubsub_ops *ops;
    void *ctx;
    struct ofe_bus_opts opts;
    char *component;
    char *client_id;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct ofe_sub *subs;
    atomic_uint pending; /* publishes not yet completed (lock-free: hot path) */
    atomic_bool closing; /* set under lock; read without it by publish */
    struct ofe_counter *m_pub_ok, *m_pub_err, *m_delivered, *m_acked, *m_nacked, *m_invalid;
    struct ofe_histogram *m_pub_latency;
};

struct ofe_sub {
    struct ofe_bus *bus;
    void *sctx;
    struct ofe_sub_opts opts; /* strings and topics owned */
    char *consumer;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned inflight, max;
    unsigned handlers; /* on_msg calls running */
    unsigned calls;    /* ack/nack/abandon calls into the backend running */
    int refs;
    bool stopping, stopped, dead;
    struct ofe_sub *next;
};

struct ofe_pub {
    struct ofe_bus *bus;
    struct ofe_ce *ev;
    ofe_pub_done_fn done;
    void *opaque;
    struct timespec t0;
    void *priv;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- local redelivery timer --------------------------------------------- */

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool started;
    struct ofe_msg **heap;
    size_t n, cap;
} T = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, NULL, 0, 0};

static void heap_sift_up(size_t i)
{
    struct ofe_msg *m = T.heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (T.heap[p]->due_ns <= m->due_ns)
            break;
        T.heap[i] = T.heap[p];
        i = p;
    }
    T.heap[i] = m;
}

static void heap_sift_down(size_t i)
{
    struct ofe_msg *m = T.heap[i];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, s = i;
        uint64_t best = m->due_ns;
        if (l < T.n && T.heap[l]->due_ns < best) {
            s = l;
            best = T.heap[l]->due_ns;
        }
        if (r < T.n && T.heap[r]->due_ns < best)
            s = r;
        if (s == i)
            break;
        T.heap[i] = T.heap[s];
        i = s;
    }
    T.heap[i] = m;
}

static void redeliver(struct ofe_msg *m);

static void *timer_run(void *arg)
{
    pthread_mutex_lock(&T.lock);
    for (;;) {
        if (T.n == 0) {
            pthread_cond_wait(&T.cond, &T.lock);
            continue;
        }
        uint64_t now = now_ns(), due = T.heap[0]->due_ns;
        if (due > now) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t wake = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + (due - now);
            ts.tv_sec = (time_t)(wake / 1000000000u);
            ts.tv_nsec = (long)(wake % 1000000000u);
            pthread_cond_timedwait(&T.cond, &T.lock, &ts);
            continue;
        }
        struct ofe_msg *m = T.heap[0];
        T.heap[0] = T.heap[--T.n];
        if (T.n)
            heap_sift_down(0);
        pthread_mutex_unlock(&T.lock);
        redeliver(m);
        pthread_mutex_lock(&T.lock);
    }
    return NULL;
}

static int timer_add(struct ofe_msg *m, uint32_t delay_ms)
{
    pthread_mutex_lock(&T.lock);
    if (!T.started) {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_destroy(&T.cond);
        pthread_cond_init(&T.cond, &ca);
        pthread_condattr_destroy(&ca);
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &a, timer_run, NULL) != 0) {
            pthread_attr_destroy(&a);
            pthread_mutex_unlock(&T.lock);
            return OFE_ENOMEM;
        }
        pthread_attr_destroy(&a);
        T.started = true;
    }
    if (T.n == T.cap) {
        size_t cap = T.cap ? T.cap * 2 : 256;
        struct ofe_msg **h = realloc(T.heap, cap * sizeof(*h));
        if (!h) {
            pthread_mutex_unlock(&T.lock);
            return OFE_ENOMEM;
        }
        T.heap = h;
        T.cap = cap;
    }
    m->due_ns = now_ns() + (uint64_t)delay_ms * 1000000u;
    T.heap[T.n] = m;
    heap_sift_up(T.n++);
    pthread_cond_signal(&T.cond);
    pthread_mutex_unlock(&T.lock);
    return 0;
}

/* Takes every message of sub out of the timer heap into a list. */
static struct ofe_msg *timer_take_sub(struct ofe_sub *s)
{
    struct ofe_msg *list = NULL;
    pthread_mutex_lock(&T.lock);
    size_t w = 0;
    for (size_t i = 0; i < T.n; i++) {
        if (T.heap[i]->sub == s) {
            T.heap[i]->next = list;
            list = T.heap[i];
        } else {
            T.heap[w++] = T.heap[i];
        }
    }
    T.n = w;
    for (size_t i = T.n / 2 + 1; i-- > 0;)
        if (i < T.n)
            heap_sift_down(i);
    pthread_mutex_unlock(&T.lock);
    return list;
}

/* ---- subscriptions ------------------------------------------------------ */

static void sub_free(struct ofe_sub *s)
{
    for (size_t i = 0; i < s->opts.ntopics; i++)
        free((char *)s->opts.topics[i]);
    free((void *)s->opts.topics);
    free((char *)s->opts.group);
    free(s->consumer);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s);
}

/* Drops one reference; called with s->lock held, which it releases. */
static void sub_unref_unlock(struct ofe_sub *s)
{
    int left = --s->refs;
    bool release = left == 0;
    pthread_mutex_unlock(&s->lock);
    if (!release)
        return;
    if (!s->dead && s->bus->ops->release)
        s->bus->ops->release(s->bus->ctx, s->sctx);
    sub_free(s);
}

/* A message is resolved (acked, nacked to the backend, or abandoned). */
static void resolve(struct ofe_msg *m)
{
    struct ofe_sub *s = m->sub;
    ofe_msg__free(m);
    pthread_mutex_lock(&s->lock);
    s->inflight--;
    pthread_cond_broadcast(&s->cond);
    sub_unref_unlock(s);
}

/* Brackets a call into the backend for a message of s: returns false when
 * the bus closed under the subscription (the backend side is gone). A bus
 * closing waits for calls in progress before it releases the backend. */
static bool backend_enter(struct ofe_sub *s)
{
    pthread_mutex_lock(&s->lock);
    bool ok = !s->dead;
    if (ok)
        s->calls++;
    pthread_mutex_unlock(&s->lock);
    return ok;
}

static void backend_leave(struct ofe_sub *s)
{
    pthread_mutex_lock(&s->lock);
    s->calls--;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static void abandon(struct ofe_msg *m)
{
    struct ofe_sub *s = m->sub;
    if (backend_enter(s)) {
        if (s->bus->ops->abandon)
            s->bus->ops->abandon(s->bus->ctx, s->sctx, m);
        backend_leave(s);
    }
    resolve(m);
}

static void call_handler(struct ofe_sub *s, struct ofe_msg *m)
{
    if (!m->ev && s->bus->m_invalid)
        ofe_counter_inc(s->bus->m_invalid);
    ofe_counter_inc(s->bus->m_delivered);
    s->opts.on_msg(m, s->opts.opaque);
    pthread_mutex_lock(&s->lock);
    s->handlers--;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static void redeliver(struct ofe_msg *m)
{
    struct ofe_sub *s = m->sub;
    pthread_mutex_lock(&s->lock);
    if (s->stopping) {
        pthread_mutex_unlock(&s->lock);
        abandon(m);
        return;
    }
    s->handlers++;
    pthread_mutex_unlock(&s->lock);
    call_handler(s, m);
}

void ofe_sub__deliver(struct ofe_sub *s, struct ofe_msg *m)
{
    pthread_mutex_lock(&s->lock);
    if (s->stopping) {
        pthread_mutex_unlock(&s->lock);
        if (backend_enter(s)) {
            if (s->bus->ops->abandon)
                s->bus->ops->abandon(s->bus->ctx, s->sctx, m);
            backend_leave(s);
        }
        ofe_msg__free(m);
        return;
    }
    s->inflight++;
    s->refs++;
    s->handlers++;
    pthread_mutex_unlock(&s->lock);
    call_handler(s, m);
}

struct ofe_msg *ofe_msg__new(struct ofe_sub *sub, const char *topic, size_t priv_size)
{
    struct ofe_msg *m = calloc(1, sizeof(*m) + priv_size);
    if (!m)
        return NULL;
    m->sub = sub;
    m->topic = strdup(topic ? topic : "");
    if (!m->topic) {
        free(m);
        return NULL;
    }
    return m;
}

void ofe_msg__set_invalid(struct ofe_msg *m, const void *payload, size_t len, const char *why)
{
    free(m->error);
    free(m->payload);
    m->error = strdup(why ? why : "invalid event");
    m->payload = malloc(len ? len : 1);
    m->payload_len = m->payload ? len : 0;
    if (m->payload && len)
        memcpy(m->payload, payload, len);
}

void ofe_msg__free(struct ofe_msg *m)
{
    if (!m)
        return;
    ofe_ce_unref(m->ev);
    free(m->error);
    free(m->payload);
    free(m->topic);
    free(m);
}

struct ofe_ce *ofe_msg_event(const struct ofe_msg *m)
{
    return m->ev;
}

const char *ofe_msg_error(const struct ofe_msg *m)
{
    return m->error;
}

const void *ofe_msg_payload(const struct ofe_msg *m, size_t *len)
{
    if (len)
        *len = m->payload_len;
    return m->payload;
}

const char *ofe_msg_topic(const struct ofe_msg *m)
{
    return m->topic;
}

uint32_t ofe_msg_redeliveries(const struct ofe_msg *m)
{
    return m->redeliveries;
}

void ofe_msg_ack(struct ofe_msg *m)
{
    struct ofe_sub *s = m->sub;
    if (backend_enter(s)) {
        s->bus->ops->ack(s->bus->ctx, s->sctx, m);
        ofe_counter_inc(s->bus->m_acked);
        backend_leave(s);
    }
    resolve(m);
}

void ofe_msg_nack(struct ofe_msg *m, uint32_t delay_ms)
{
    struct ofe_sub *s = m->sub;
    if (!backend_enter(s)) {
        resolve(m);
        return;
    }
    ofe_counter_inc(s->bus->m_nacked);
    if (s->bus->ops->nack) {
        s->bus->ops->nack(s->bus->ctx, s->sctx, m, delay_ms);
        backend_leave(s);
        resolve(m);
        return;
    }
    backend_leave(s);
    pthread_mutex_lock(&s->lock);
    bool stopping = s->stopping;
    pthread_mutex_unlock(&s->lock);
    if (stopping) {
        abandon(m);
        return;
    }
    m->redeliveries++;
    if (timer_add(m, delay_ms) != 0)
        abandon(m); /* the broker redelivers it later */
}

const struct ofe_sub_opts *ofe_sub__opts(const struct ofe_sub *s)
{
    return &s->opts;
}

const char *ofe_sub__consumer(const struct ofe_sub *s)
{
    return s->consumer;
}

unsigned ofe_sub__capacity(const struct ofe_sub *s)
{
    struct ofe_sub *w = (struct ofe_sub *)s;
    pthread_mutex_lock(&w->lock);
    unsigned c = w->stopping || w->inflight >= w->max ? 0 : w->max - w->inflight;
    pthread_mutex_unlock(&w->lock);
    return c;
}

unsigned ofe_sub__wait_capacity(struct ofe_sub *s, int timeout_ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->lock);
    while (!s->stopping && s->inflight >= s->max) {
        if (pthread_cond_timedwait(&s->cond, &s->lock, &dl) != 0)
            break;
    }
    unsigned c = s->stopping || s->inflight >= s->max ? 0 : s->max - s->inflight;
    pthread_mutex_unlock(&s->lock);
    return c;
}

bool ofe_sub__stopping(const struct ofe_sub *s)
{
    struct ofe_sub *w = (struct ofe_sub *)s;
    pthread_mutex_lock(&w->lock);
    bool st = w->stopping;
    pthread_mutex_unlock(&w->lock);
    return st;
}

unsigned ofe_sub_inflight(const struct ofe_sub *s)
{
    struct ofe_sub *w = (struct ofe_sub *)s;
    pthread_mutex_lock(&w->lock);
    unsigned n = w->inflight;
    pthread_mutex_unlock(&w->lock);
    return n;
}

int ofe_bus_subscribe(struct ofe_bus *b, const struct ofe_sub_opts *o, struct ofe_sub **out,
                      char *errstr, size_t errstr_size)
{
    if (!o->group || !*o->group)
        return ofe_err(errstr, errstr_size, OFE_EINVAL, "subscribe: a consumer group is required");
    if (!o->ntopics || !o->topics)
        return ofe_err(errstr, errstr_size, OFE_EINVAL, "subscribe: no topic given");
    if (!o->on_msg)
        return ofe_err(errstr, errstr_size, OFE_EINVAL, "subscribe: no message handler");
    for (size_t i = 0; i < o->ntopics; i++)
        if (!o->topics[i] || !*o->topics[i])
            return ofe_err(errstr, errstr_size, OFE_EINVAL, "subscribe: empty topic name");
    struct ofe_sub *s = calloc(1, sizeof(*s));
    if (!s)
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    s->bus = b;
    s->opts = *o;
    s->max = o->max_inflight ? o->max_inflight : 64;
    s->opts.max_inflight = s->max;
    s->refs = 1;
    s->opts.group = strdup(o->group);
    s->consumer = strdup(o->consumer && *o->consumer ? o->consumer : b->client_id);
    char **topics = calloc(o->ntopics, sizeof(char *));
    s->opts.topics = (const char *const *)topics;
    s->opts.consumer = s->consumer;
    bool ok = s->opts.group && s->consumer && topics;
    for (size_t i = 0; ok && i < o->ntopics; i++)
        ok = (topics[i] = strdup(o->topics[i])) != NULL;
    if (!ok) {
        s->opts.ntopics = topics ? o->ntopics : 0;
        sub_free(s);
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    }
    pthread_mutex_lock(&b->lock);
    if (b->closing) {
        pthread_mutex_unlock(&b->lock);
        sub_free(s);
        return ofe_err(errstr, errstr_size, OFE_ECLOSED, "subscribe: the bus is closing");
    }
    s->next = b->subs;
    b->subs = s;
    pthread_mutex_unlock(&b->lock);
    int rc = b->ops->subscribe(b->ctx, s, &s->sctx, errstr, errstr_size);
    if (rc) {
        pthread_mutex_lock(&b->lock);
        for (struct ofe_sub **pp = &b->subs; *pp; pp = &(*pp)->next)
            if (*pp == s) {
                *pp = s->next;
                break;
            }
        pthread_mutex_unlock(&b->lock);
        sub_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* Stops s: no more deliveries, handlers finished, timer-held messages
 * abandoned. Idempotent. */
static void sub_stop(struct ofe_sub *s)
{
    pthread_mutex_lock(&s->lock);
    if (s->stopped) {
        pthread_mutex_unlock(&s->lock);
        return;
    }
    s->stopping = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    s->bus->ops->stop(s->bus->ctx, s->sctx);
    pthread_mutex_lock(&s->lock);
    while (s->handlers > 0)
        pthread_cond_wait(&s->cond, &s->lock);
    s->stopped = true;
    pthread_mutex_unlock(&s->lock);
    struct ofe_msg *m = timer_take_sub(s);
    while (m) {
        struct ofe_msg *n = m->next;
        abandon(m);
        m = n;
    }
}

void ofe_sub_close(struct ofe_sub *s)
{
    if (!s)
        return;
    struct ofe_bus *b = s->bus;
    sub_stop(s);
    pthread_mutex_lock(&b->lock);
    for (struct ofe_sub **pp = &b->subs; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    pthread_mutex_unlock(&b->lock);
    pthread_mutex_lock(&s->lock);
    sub_unref_unlock(s);
}

/* ---- publishing --------------------------------------------------------- */

struct ofe_ce *ofe_pub__event(const struct ofe_pub *p)
{
    return p->ev;
}

void **ofe_pub__priv(struct ofe_pub *p)
{
    return &p->priv;
}

/* One publish fewer in flight; the last one wakes ofe_bus_close, which
 * waits under the lock for none. */
static void pending_put(struct ofe_bus *b)
{
    if (atomic_fetch_sub(&b->pending, 1) == 1) {
        pthread_mutex_lock(&b->lock);
        pthread_cond_broadcast(&b->cond);
        pthread_mutex_unlock(&b->lock);
    }
}

void ofe_pub__done(struct ofe_pub *p, int err, const char *errmsg)
{
    struct ofe_bus *b = p->bus;
    if (err == 0) {
        ofe_counter_inc(b->m_pub_ok);
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        ofe_histogram_observe(b->m_pub_latency, (double)(t.tv_sec - p->t0.tv_sec) +
                                                    (double)(t.tv_nsec - p->t0.tv_nsec) / 1e9);
    } else {
        ofe_counter_inc(b->m_pub_err);
    }
    if (p->done)
        p->done(p->opaque, err, errmsg ? errmsg : (err ? ofe_strerror(err) : ""));
    ofe_ce_unref(p->ev);
    free(p);
    pending_put(b);
}

int ofe_bus_publish(struct ofe_bus *b, const char *topic, struct ofe_ce *ev, ofe_pub_done_fn done,
                    void *opaque, char *errstr, size_t errstr_size)
{
    if (!topic || !*topic)
        return ofe_err(errstr, errstr_size, OFE_EINVAL, "publish: empty topic name");
    if (atomic_load(&b->closing))
        return ofe_err(errstr, errstr_size, OFE_ECLOSED, "publish: the bus is closing");
    unsigned cur = atomic_load(&b->pending);
    do {
        if (cur >= b->opts.max_pending)
            return ofe_err(errstr, errstr_size, OFE_EAGAIN,
                           "publish: %u publishes are waiting for confirmation",
                           b->opts.max_pending);
    } while (!atomic_compare_exchange_weak(&b->pending, &cur, cur + 1));
    struct ofe_pub *p = calloc(1, sizeof(*p));
    if (!p) {
        pending_put(b);
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    }
    p->bus = b;
    p->ev = ofe_ce_ref(ev);
    p->done = done;
    p->opaque = opaque;
    clock_gettime(CLOCK_MONOTONIC, &p->t0);
    int rc = b->ops->publish(b->ctx, topic, p, errstr, errstr_size);
    if (rc) {
        ofe_ce_unref(p->ev);
        free(p);
        pending_put(b);
    }
    return rc;
}

struct sync_pub {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    int err;
    char msg[512];
};

static void sync_done(void *opaque, int err, const char *errmsg)
{
    struct sync_pub *sp = opaque;
    pthread_mutex_lock(&sp->lock);
    sp->done = true;
    sp->err = err;
    snprintf(sp->msg, sizeof(sp->msg), "%s", errmsg ? errmsg : "");
    pthread_cond_signal(&sp->cond);
    pthread_mutex_unlock(&sp->lock);
}

int ofe_bus_publish_sync(struct ofe_bus *b, const char *topic, struct ofe_ce *ev, char *errstr,
                         size_t errstr_size)
{
    struct sync_pub sp = {.done = false};
    pthread_mutex_init(&sp.lock, NULL);
    pthread_cond_init(&sp.cond, NULL);
    int rc;
    for (;;) {
        rc = ofe_bus_publish(b, topic, ev, sync_done, &sp, errstr, errstr_size);
        if (rc != OFE_EAGAIN)
            break;
        usleep(1000);
    }
    if (rc == 0) {
        pthread_mutex_lock(&sp.lock);
        while (!sp.done)
            pthread_cond_wait(&sp.cond, &sp.lock);
        pthread_mutex_unlock(&sp.lock);
        rc = sp.err;
        if (rc)
            ofe_err(errstr, errstr_size, rc, "%s", sp.msg);
    }
    pthread_mutex_destroy(&sp.lock);
    pthread_cond_destroy(&sp.cond);
    return rc;
}

/* ---- the bus ------------------------------------------------------------ */

int ofe_bus__open_ops(const struct ofe_pubsub_ops *ops, const void *def,
                      const struct ofe_bus_opts *opts, struct ofe_bus **out, char *errstr,
                      size_t errstr_size)
{
    struct ofe_bus *b = calloc(1, sizeof(*b));
    if (!b)
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    b->ops = ops;
    if (opts)
        b->opts = *opts;
    if (!b->opts.max_pending)
        b->opts.max_pending = 10000;
    if (!b->opts.publish_timeout_ms)
        b->opts.publish_timeout_ms = 30000;
    b->component = strdup(b->opts.component ? b->opts.component : "pubsub");
    if (b->opts.client_id && *b->opts.client_id) {
        b->client_id = strdup(b->opts.client_id);
    } else {
        char host[128] = "host", id[200];
        gethostname(host, sizeof(host) - 1);
        snprintf(id, sizeof(id), "ofe-%s-%d", host, (int)getpid());
        b->client_id = strdup(id);
    }
    b->opts.component = b->component;
    b->opts.client_id = b->client_id;
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->cond, NULL);
    if (!b->component || !b->client_id) {
        free(b->component);
        free(b->client_id);
        free(b);
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    }
    struct ofe_metrics *m = b->opts.metrics;
    const char *lb[] = {"backend", ops->name, NULL};
    const char *lok[] = {"backend", ops->name, "result", "ok", NULL};
    const char *lerr[] = {"backend", ops->name, "result", "error", NULL};
    b->m_pub_ok =
        ofe_metrics_counter(m, "ofe_bus_publish_total", "Publishes completed, by result", lok);
    b->m_pub_err =
        ofe_metrics_counter(m, "ofe_bus_publish_total", "Publishes completed, by result", lerr);
    b->m_pub_latency =
        ofe_metrics_histogram(m, "ofe_bus_publish_latency_seconds",
                              "Time from publish to broker confirmation", lb, NULL, 0);
    b->m_delivered = ofe_metrics_counter(m, "ofe_bus_delivered_total",
                                         "Messages handed to consumers (incl. redeliveries)", lb);
    b->m_acked = ofe_metrics_counter(m, "ofe_bus_acked_total", "Messages acknowledged", lb);
    b->m_nacked = ofe_metrics_counter(m, "ofe_bus_nacked_total", "Messages given back", lb);
    b->m_invalid = ofe_metrics_counter(m, "ofe_bus_invalid_total",
                                       "Bus messages that were not valid CloudEvents", lb);
    int rc = ops->open(b, def, &b->ctx, errstr, errstr_size);
    if (rc) {
        pthread_mutex_destroy(&b->lock);
        pthread_cond_destroy(&b->cond);
        free(b->component);
        free(b->client_id);
        free(b);
        return rc;
    }
    *out = b;
    return 0;
}

const struct ofe_bus_opts *ofe_bus__opts(const struct ofe_bus *b)
{
    return &b->opts;
}

const char *ofe_bus__client_id(const struct ofe_bus *b)
{
    return b->client_id;
}

struct ofe_metrics *ofe_bus__metrics(const struct ofe_bus *b)
{
    return b->opts.metrics;
}

bool ofe_bus_ready(struct ofe_bus *b, char *why, size_t why_size)
{
    if (!b->ops->ready)
        return true;
    return b->ops->ready(b->ctx, why, why_size);
}

const char *ofe_bus_backend(const struct ofe_bus *b)
{
    return b->ops->name;
}

const char *ofe_bus_describe(const struct ofe_bus *b)
{
    return b->ops->describe ? b->ops->describe(b->ctx) : b->ops->name;
}

void ofe_bus_close(struct ofe_bus *b, uint32_t drain_ms)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->lock);
    b->closing = true;
    pthread_mutex_unlock(&b->lock);
    /* Stop every subscription, then give consumers until the deadline to
     * resolve what they hold. */
    for (;;) {
        pthread_mutex_lock(&b->lock);
        struct ofe_sub *s = b->subs;
        if (s)
            b->subs = s->next;
        pthread_mutex_unlock(&b->lock);
        if (!s)
            break;
        sub_stop(s);
        uint64_t deadline = now_ns() + (uint64_t)drain_ms * 1000000u;
        pthread_mutex_lock(&s->lock);
        while (s->inflight > 0 && now_ns() < deadline) {
            pthread_mutex_unlock(&s->lock);
            usleep(2000);
            pthread_mutex_lock(&s->lock);
        }
        if (s->inflight > 0) {
            OFE_WARN(b->component, b->ops->name,
                     "closing with %u unresolved messages; "
                     "the broker will redeliver them",
                     s->inflight);
        }
        /* Release the backend's side now; late acks/nacks only free memory. */
        s->dead = true;
        while (s->calls > 0)
            pthread_cond_wait(&s->cond, &s->lock);
        pthread_mutex_unlock(&s->lock);
        if (b->ops->release)
            b->ops->release(b->ctx, s->sctx);
        pthread_mutex_lock(&s->lock);
        sub_unref_unlock(s); /* the owner's reference: ofe_sub_close must not follow */
    }
    b->ops->close(b->ctx, drain_ms);
    pthread_mutex_lock(&b->lock);
    /* close() completed them all; wait for the last callbacks */
    while (atomic_load(&b->pending) > 0)
        pthread_cond_wait(&b->cond, &b->lock);
    pthread_mutex_unlock(&b->lock);
    pthread_mutex_destroy(&b->lock);
    pthread_cond_destroy(&b->cond);
    free(b->component);
    free(b->client_id);
    free(b);
}

uint32_t ofe_pubsub__backoff_ms(unsigned attempt, uint32_t base_ms, uint32_t cap_ms)
{
    static __thread uint64_t x;
    if (!x)
        x = now_ns() ^ (uint64_t)(uintptr_t)&x;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    uint64_t w = (uint64_t)base_ms << (attempt > 30 ? 30 : attempt);
    if (w > cap_ms)
        w = cap_ms;
    return (uint32_t)(x % (w + 1));
}
