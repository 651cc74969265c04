/* The jetstream line of bench_pubsub: the workload straight with cnats, as
 * a careful hand-written client would do it. Publisher: one connection,
 * js_PublishMsgAsync with `window` PubAcks outstanding at most (the NATS
 * binding's headers, encoded once per event, added to each message).
 * Consumer: another connection, a durable pull consumer with explicit acks,
 * natsSubscription_Fetch in batches of up to 256, natsMsg_Ack per message.
 * Both against one nats-server -js with file storage. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

#include "bench_pubsub.h"
#include "ofe/config.h"
#include "ofe/err.h"
#include "servers.h"

#define DIRECT_STREAM "BENCHDIRECT"
#define ABS_STREAM    "BENCH"
#define FETCH_BATCH   256

struct jb_state {
    struct tu_server *srv;
};

static void *jb_start(char *why, size_t why_size)
{
    struct tu_server *srv = tu_server_start(TU_NATS, NULL);
    if (!srv) {
        snprintf(why, why_size, "nats-server did not start");
        return NULL;
    }
    struct jb_state *s = calloc(1, sizeof(*s));
    s->srv = srv;
    return s;
}

static int jb_open(void *state, const struct ofe_bus_opts *o, struct ofe_bus **out, char *errstr,
                   size_t errstr_size)
{
    struct jb_state *s = state;
    struct ofe_config_jetstream_bus j;
    memset(&j, 0, sizeof(j));
    j.nats_url = s->srv->url;
    j.stream_name = ABS_STREAM;
    j.ack_wait_ms = 30000;
    struct ofe_config_busdesc d = {
        .kind = OFE_CONFIG_BUS_JETSTREAM,
        .kind_name = "jetstream",
        .options = &j.node,
        .jetstream = &j,
    };
    return ofe_bus_open(&d, o, out, errstr, errstr_size);
}

static void jb_stop(void *state)
{
    struct jb_state *s = state;
    tu_server_free(s->srv);
    free(s);
}

/* One event: its data and its headers as NUL-terminated strings. */
struct pev {
    struct ofe_ce *ev;
    const void *body;
    size_t len;
    size_t nh;
    char **keys, **vals;
};

struct direct {
    struct jb_state *s;
    const struct bench_params *p;
    char subject[256];
    char durable[160];
    struct pev *pool;
    size_t npool;
    atomic_size_t confirmed, failed;
    double t_pub_done, t_cons_done;
    size_t consumed;
    pthread_mutex_t lock;
    char err[512];
};

static void set_err(struct direct *d, const char *what, natsStatus s)
{
    pthread_mutex_lock(&d->lock);
    if (!d->err[0]) {
        natsStatus ls;
        const char *t = nats_GetLastError(&ls);
        snprintf(d->err, sizeof(d->err), "%s: %s", what, t && *t ? t : natsStatus_GetText(s));
    }
    pthread_mutex_unlock(&d->lock);
}

static void on_puback(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    struct direct *d = closure;
    if (pa) {
        if (atomic_fetch_add(&d->confirmed, 1) + 1 == d->p->n)
            d->t_pub_done = bench_now();
    } else {
        atomic_fetch_add(&d->failed, 1);
        set_err(d, "PubAck", pae ? pae->Err : NATS_ERR);
    }
    natsMsg_Destroy(msg);
}

static void *publisher(void *arg)
{
    struct direct *d = arg;
    pthread_setname_np(pthread_self(), "direct-pub"); /* cnats's threads inherit it */
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = d->p->window;
    jo.PublishAsync.StallWait = 60000;
    jo.PublishAsync.AckHandler = on_puback;
    jo.PublishAsync.AckHandlerClosure = d;
    natsStatus s = natsConnection_ConnectTo(&nc, d->s->srv->url);
    if (s == NATS_OK)
        s = natsConnection_JetStream(&js, nc, &jo);
    if (s != NATS_OK) {
        set_err(d, "publisher connect", s);
        goto out;
    }
    for (size_t i = 0; i < d->p->n; i++) {
        struct pev *e = &d->pool[i % d->npool];
        natsMsg *m = NULL;
        s = natsMsg_Create(&m, d->subject, NULL, e->body, (int)e->len);
        for (size_t k = 0; s == NATS_OK && k < e->nh; k++)
            s = natsMsgHeader_Add(m, e->keys[k], e->vals[k]);
        if (s == NATS_OK)
            s = js_PublishMsgAsync(js, &m, NULL);
        natsMsg_Destroy(m);
        if (s != NATS_OK) {
            set_err(d, "js_PublishMsgAsync", s);
            break;
        }
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 120000;
    js_PublishAsyncComplete(js, &po);
out:
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return NULL;
}

static void *consumer(void *arg)
{
    struct direct *d = arg;
    pthread_setname_np(pthread_self(), "direct-cons");
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    natsSubscription *sub = NULL;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = DIRECT_STREAM;
    so.Consumer = d->durable;
    so.ManualAck = true;
    natsStatus s = natsConnection_ConnectTo(&nc, d->s->srv->url);
    if (s == NATS_OK)
        s = natsConnection_JetStream(&js, nc, NULL);
    if (s == NATS_OK)
        s = js_PullSubscribe(&sub, js, d->subject, d->durable, NULL, &so, NULL);
    if (s != NATS_OK) {
        set_err(d, "consumer", s);
        goto out;
    }
    natsSubscription_SetPendingLimits(sub, -1, -1);
    size_t batch = d->p->window < FETCH_BATCH ? d->p->window : FETCH_BATCH;
    double until = bench_now() + 120;
    while (d->consumed < d->p->n && bench_now() < until) {
        natsMsgList list = {NULL, 0};
        s = natsSubscription_Fetch(&list, sub, (int)batch, 1000, NULL);
        if (s == NATS_TIMEOUT)
            continue;
        if (s != NATS_OK) {
            set_err(d, "fetch", s);
            break;
        }
        for (int i = 0; i < list.Count; i++) {
            natsMsg *m = list.Msgs[i];
            /* look at the message as a consumer would: its id and data */
            const char *id = NULL;
            natsMsgHeader_Get(m, "ce-id", &id);
            size_t bytes = (size_t)natsMsg_GetDataLength(m) + (id ? strlen(id) : 0);
            (void)bytes;
            natsMsg_Ack(m, NULL);
        }
        d->consumed += (size_t)list.Count;
        natsMsgList_Destroy(&list);
    }
    d->t_cons_done = bench_now();
out:
    natsSubscription_Destroy(sub);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return NULL;
}

/* Makes the stream (once) and this run's durable consumer. */
static int prepare(struct direct *d, const char *topic)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    natsStatus s = natsConnection_ConnectTo(&nc, d->s->srv->url);
    if (s == NATS_OK)
        s = natsConnection_JetStream(&js, nc, NULL);
    jsStreamInfo *si = NULL;
    if (s == NATS_OK && js_GetStreamInfo(&si, js, DIRECT_STREAM, NULL, NULL) != NATS_OK) {
        jsStreamConfig sc;
        jsStreamConfig_Init(&sc);
        const char *subs[] = {DIRECT_STREAM ".>"};
        sc.Name = DIRECT_STREAM;
        sc.Subjects = subs;
        sc.SubjectsLen = 1;
        sc.Storage = js_FileStorage;
        s = js_AddStream(&si, js, &sc, NULL, NULL);
    }
    jsStreamInfo_Destroy(si);
    if (s == NATS_OK) {
        jsConsumerConfig cc;
        jsConsumerConfig_Init(&cc);
        cc.Durable = d->durable;
        cc.AckPolicy = js_AckExplicit;
        cc.DeliverPolicy = js_DeliverAll;
        cc.FilterSubject = d->subject;
        cc.AckWait = (int64_t)30 * 1000000000;
        jsConsumerInfo *ci = NULL;
        s = js_AddConsumer(&ci, js, DIRECT_STREAM, &cc, NULL, NULL);
        jsConsumerInfo_Destroy(ci);
    }
    if (s != NATS_OK)
        set_err(d, "stream/consumer", s);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return s == NATS_OK ? 0 : -1;
}

static int jb_direct(void *state, const char *topic, const struct bench_params *p,
                     struct bench_result *res)
{
    struct direct d = {.s = state, .p = p, .lock = PTHREAD_MUTEX_INITIALIZER};
    snprintf(d.subject, sizeof(d.subject), "%s.%s", DIRECT_STREAM, topic);
    snprintf(d.durable, sizeof(d.durable), "%s-group", topic);
    d.npool = p->n < 1000 ? p->n : 1000;
    d.pool = calloc(d.npool, sizeof(*d.pool));
    int rc = -1;
    for (size_t i = 0; i < d.npool; i++) {
        struct pev *e = &d.pool[i];
        struct ofe_hdrs h;
        struct ofe_buf bb = OFE_BUF_INIT;
        ofe_hdrs_init(&h);
        e->ev = bench_event(i, p->size);
        if (ofe_ce_nats_encode(e->ev, OFE_CE_BINARY, OFE_CE_BIND_TYPEHINTS, &h, &bb, &e->body,
                               &e->len, res->err, sizeof(res->err))) {
            ofe_hdrs_fini(&h);
            goto out;
        }
        e->nh = h.n;
        e->keys = calloc(h.n, sizeof(char *));
        e->vals = calloc(h.n, sizeof(char *));
        for (size_t k = 0; k < h.n; k++) {
            e->keys[k] = strndup(h.v[k].name, h.v[k].name_len);
            e->vals[k] = strndup(h.v[k].value, h.v[k].value_len);
        }
        ofe_hdrs_fini(&h);
        ofe_buf_fini(&bb);
    }
    if (prepare(&d, topic) != 0) {
        snprintf(res->err, sizeof(res->err), "%s", d.err);
        goto out;
    }
    pthread_t tp, tc;
    double t0 = bench_now();
    pthread_create(&tc, NULL, consumer, &d);
    pthread_create(&tp, NULL, publisher, &d);
    pthread_join(tp, NULL);
    pthread_join(tc, NULL);
    if (d.err[0]) {
        snprintf(res->err, sizeof(res->err), "%s", d.err);
    } else if (d.consumed < p->n || atomic_load(&d.confirmed) < p->n) {
        snprintf(res->err, sizeof(res->err), "consumed %zu, confirmed %zu of %zu", d.consumed,
                 atomic_load(&d.confirmed), p->n);
    } else {
        res->pub_secs = d.t_pub_done - t0;
        res->secs = d.t_cons_done - t0;
        res->consumed = d.consumed;
        rc = 0;
    }
out:
    for (size_t i = 0; i < d.npool; i++) {
        struct pev *e = &d.pool[i];
        for (size_t k = 0; k < e->nh; k++) {
            free(e->keys[k]);
            free(e->vals[k]);
        }
        free(e->keys);
        free(e->vals);
        ofe_ce_unref(e->ev);
    }
    free(d.pool);
    return rc;
}

const struct bench_backend bench_jetstream = {
    .name = "jetstream",
    .start = jb_start,
    .open = jb_open,
    .direct = jb_direct,
    .stop = jb_stop,
};
