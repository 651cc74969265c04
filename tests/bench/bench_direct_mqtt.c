/* The mqtt line of bench_pubsub: the workload straight with libmosquitto,
 * as a careful hand-written client would do it. Publisher: one MQTT 5
 * client run by mosquitto_loop_start, QoS 1, the binding's properties
 * (Content Type and one User Property per attribute) built once per pool
 * event and reused, at most min(window, 256) publishes waiting for their
 * PUBACK (libmosquitto walks its whole outgoing queue on every PUBACK, so
 * a deeper queue only costs). Consumer: another client with a persistent
 * session (clean start off, session expiry) in the shared subscription
 * $share/{group}/{topic} at QoS 1, Receive Maximum = window; it reads each
 * message's id property and lets libmosquitto send the PUBACK when
 * on_message returns. Both against one mosquitto with persistence. */
#include <mqtt_protocol.h>
#include <mosquitto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_pubsub.h"
#include "ofe/config.h"
#include "ofe/err.h"
#include "servers.h"

#define SEND_WINDOW 256

struct mb_state {
    struct tu_server *srv;
};

static void *mb_start(char *why, size_t why_size)
{
    struct tu_server *srv = tu_server_start(TU_MOSQUITTO, NULL);
    if (!srv) {
        snprintf(why, why_size, "mosquitto did not start");
        return NULL;
    }
    mosquitto_lib_init();
    struct mb_state *s = calloc(1, sizeof(*s));
    s->srv = srv;
    return s;
}

static int mb_open(void *state, const struct ofe_bus_opts *o, struct ofe_bus **out, char *errstr,
                   size_t errstr_size)
{
    struct mb_state *s = state;
    struct ofe_config_mqtt_bus m;
    memset(&m, 0, sizeof(m));
    m.url = s->srv->url;
    m.qos = 1;
    m.session_expiry_ms = 3600 * 1000;
    m.keep_alive_ms = 60 * 1000;
    struct ofe_config_busdesc d = {
        .kind = OFE_CONFIG_BUS_MQTT, .kind_name = "mqtt", .options = &m.node, .mqtt = &m};
    return ofe_bus_open(&d, o, out, errstr, errstr_size);
}

static void mb_stop(void *state)
{
    struct mb_state *s = state;
    tu_server_free(s->srv);
    free(s);
    mosquitto_lib_cleanup();
}

struct direct {
    const struct bench_params *p;
    const char *topic;
    mosquitto_property **props; /* per pool event */
    const void **body;
    int *len;
    size_t npool;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    size_t inflight;
    atomic_size_t confirmed, failed, consumed;
    atomic_int sub_ready, pub_ready;
    double t_pub_done, t_cons_done;
    char err[512];
};

static void set_err(struct direct *d, const char *what, int rc)
{
    pthread_mutex_lock(&d->lock);
    if (!d->err[0])
        snprintf(d->err, sizeof(d->err), "%s: %s", what, mosquitto_strerror(rc));
    pthread_mutex_unlock(&d->lock);
}

static void on_pub_connect(struct mosquitto *m, void *obj, int rc, int flags,
                           const mosquitto_property *props)
{
    struct direct *d = obj;
    atomic_store(&d->pub_ready, rc == 0 ? 1 : -1);
}

static void on_publish(struct mosquitto *m, void *obj, int mid, int rc,
                       const mosquitto_property *props)
{
    struct direct *d = obj;
    if (rc >= 0x80)
        atomic_fetch_add(&d->failed, 1);
    else if (atomic_fetch_add(&d->confirmed, 1) + 1 == d->p->n)
        d->t_pub_done = bench_now();
    pthread_mutex_lock(&d->lock);
    d->inflight--;
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

static void on_sub_connect(struct mosquitto *m, void *obj, int rc, int flags,
                           const mosquitto_property *props)
{
    struct direct *d = obj;
    if (rc != 0) {
        atomic_store(&d->sub_ready, -1);
        return;
    }
    char filter[400];
    snprintf(filter, sizeof(filter), "$share/%s-g/%s", d->topic, d->topic);
    mosquitto_subscribe_v5(m, NULL, filter, 1, 0, NULL);
}

static void on_subscribe(struct mosquitto *m, void *obj, int mid, int n, const int *granted,
                         const mosquitto_property *props)
{
    struct direct *d = obj;
    atomic_store(&d->sub_ready, n == 1 && granted[0] < 0x80 ? 1 : -1);
}

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
    struct direct *d = obj;
    /* look at the message as a consumer would: its id and data */
    char *name = NULL, *id = NULL;
    mosquitto_property_read_string_pair(props, MQTT_PROP_USER_PROPERTY, &name, &id, false);
    size_t bytes = (size_t)msg->payloadlen + (id ? strlen(id) : 0);
    (void)bytes;
    free(name);
    free(id);
    if (atomic_fetch_add(&d->consumed, 1) + 1 == d->p->n)
        d->t_cons_done = bench_now();
}

static struct mosquitto *client(struct direct *d, const char *id, bool clean, int port,
                                bool consumer)
{
    struct mosquitto *m = mosquitto_new(id, clean, d);
    if (!m)
        return NULL;
    mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1);
    unsigned rm = d->p->window > 65535 ? 65535 : d->p->window;
    mosquitto_int_option(m, MOSQ_OPT_RECEIVE_MAXIMUM, consumer ? (int)rm : 65535);
    mosquitto_int_option(m, MOSQ_OPT_SEND_MAXIMUM, 65535);
    if (consumer) {
        mosquitto_connect_v5_callback_set(m, on_sub_connect);
        mosquitto_subscribe_v5_callback_set(m, on_subscribe);
        mosquitto_message_v5_callback_set(m, on_message);
    } else {
        mosquitto_connect_v5_callback_set(m, on_pub_connect);
        mosquitto_publish_v5_callback_set(m, on_publish);
    }
    mosquitto_property *props = NULL;
    if (!clean)
        mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 3600);
    int rc = mosquitto_connect_bind_v5(m, "127.0.0.1", port, 60, NULL, props);
    mosquitto_property_free_all(&props);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_loop_start(m);
    if (rc != MOSQ_ERR_SUCCESS) {
        set_err(d, consumer ? "consumer connect" : "publisher connect", rc);
        mosquitto_destroy(m);
        return NULL;
    }
    return m;
}

static bool wait_flag(atomic_int *f, double secs)
{
    double until = bench_now() + secs;
    while (atomic_load(f) == 0 && bench_now() < until)
        usleep(1000);
    return atomic_load(f) == 1;
}

/* The binding's properties of each pool event, built once. */
static int build_pool(struct direct *d, char *err, size_t errsz)
{
    d->npool = d->p->n < 1000 ? d->p->n : 1000;
    d->props = calloc(d->npool, sizeof(*d->props));
    d->body = calloc(d->npool, sizeof(*d->body));
    d->len = calloc(d->npool, sizeof(*d->len));
    for (size_t i = 0; i < d->npool; i++) {
        struct ofe_ce *ev = bench_event(i, d->p->size);
        struct ofe_hdrs h;
        ofe_hdrs_init(&h);
        struct ofe_buf buf = OFE_BUF_INIT;
        const char *ct = NULL;
        const void *pl = NULL;
        size_t plen = 0;
        if (ofe_ce_mqtt_encode(ev, OFE_CE_BINARY, OFE_CE_BIND_TYPEHINTS, &h, &ct, &buf, &pl, &plen,
                               err, errsz)) {
            ofe_ce_unref(ev);
            return -1;
        }
        if (ct)
            mosquitto_property_add_string(&d->props[i], MQTT_PROP_CONTENT_TYPE, ct);
        for (size_t k = 0; k < h.n; k++) {
            char n[128], v[512];
            snprintf(n, sizeof(n), "%.*s", (int)h.v[k].name_len, h.v[k].name);
            snprintf(v, sizeof(v), "%.*s", (int)h.v[k].value_len, h.v[k].value);
            mosquitto_property_add_string_pair(&d->props[i], MQTT_PROP_USER_PROPERTY, n, v);
        }
        void *copy = malloc(plen ? plen : 1);
        memcpy(copy, pl, plen);
        d->body[i] = copy;
        d->len[i] = (int)plen;
        ofe_hdrs_fini(&h);
        ofe_buf_fini(&buf);
        ofe_ce_unref(ev);
    }
    return 0;
}

static void free_pool(struct direct *d)
{
    for (size_t i = 0; i < d->npool; i++) {
        mosquitto_property_free_all(&d->props[i]);
        free((void *)d->body[i]);
    }
    free(d->props);
    free(d->body);
    free(d->len);
}

static int mb_direct(void *state, const char *topic, const struct bench_params *p,
                     struct bench_result *r)
{
    struct mb_state *s = state;
    struct direct d = {.p = p, .topic = topic};
    pthread_mutex_init(&d.lock, NULL);
    pthread_cond_init(&d.cond, NULL);
    struct mosquitto *pub = NULL, *sub = NULL;
    int rc = -1;
    char cid[300];
    if (build_pool(&d, r->err, sizeof(r->err)))
        goto out;
    snprintf(cid, sizeof(cid), "%s-consumer", topic);
    sub = client(&d, cid, false, s->srv->port, true);
    if (!sub || !wait_flag(&d.sub_ready, 15)) {
        if (!d.err[0])
            snprintf(d.err, sizeof(d.err), "the consumer did not subscribe");
        goto out;
    }
    pub = client(&d, NULL, true, s->srv->port, false);
    if (!pub || !wait_flag(&d.pub_ready, 15)) {
        if (!d.err[0])
            snprintf(d.err, sizeof(d.err), "the publisher did not connect");
        goto out;
    }
    size_t window = p->window < SEND_WINDOW ? p->window : SEND_WINDOW;
    double t0 = bench_now();
    for (size_t i = 0; i < p->n; i++) {
        pthread_mutex_lock(&d.lock);
        while (d.inflight >= window)
            pthread_cond_wait(&d.cond, &d.lock);
        d.inflight++;
        pthread_mutex_unlock(&d.lock);
        size_t k = i % d.npool;
        int prc = mosquitto_publish_v5(pub, NULL, topic, d.len[k], d.body[k], 1, false, d.props[k]);
        if (prc != MOSQ_ERR_SUCCESS) {
            set_err(&d, "mosquitto_publish_v5", prc);
            goto out;
        }
    }
    double until = bench_now() + 120;
    while ((atomic_load(&d.consumed) < p->n ||
            atomic_load(&d.confirmed) + atomic_load(&d.failed) < p->n) &&
           bench_now() < until)
        usleep(1000);
    if (atomic_load(&d.failed)) {
        snprintf(d.err, sizeof(d.err), "%zu publishes refused", atomic_load(&d.failed));
        goto out;
    }
    r->consumed = atomic_load(&d.consumed);
    if (r->consumed < p->n) {
        snprintf(d.err, sizeof(d.err), "consumed %zu of %zu in 120 s", r->consumed, p->n);
        goto out;
    }
    r->pub_secs = d.t_pub_done - t0;
    r->secs = d.t_cons_done - t0;
    rc = 0;
out:
    if (rc && d.err[0])
        snprintf(r->err, sizeof(r->err), "%s", d.err);
    if (pub) {
        mosquitto_disconnect(pub);
        mosquitto_loop_stop(pub, false);
        mosquitto_destroy(pub);
    }
    if (sub) {
        mosquitto_disconnect(sub);
        mosquitto_loop_stop(sub, false);
        mosquitto_destroy(sub);
    }
    free_pool(&d);
    pthread_mutex_destroy(&d.lock);
    pthread_cond_destroy(&d.cond);
    return rc;
}

const struct bench_backend bench_mqtt = {
    .name = "mqtt",
    .start = mb_start,
    .open = mb_open,
    .direct = mb_direct,
    .stop = mb_stop,
};
