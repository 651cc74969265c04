/* The mqtt pub/sub backend (libmosquitto, MQTT 5 by default, 3.1.1 as an
 * option).
 *
 * Mapping:
 *   - publish: QoS `qos` (default 1) PUBLISH; MQTT 5 binary content mode
 *     (Content Type = datacontenttype, one User Property per other
 *     attribute, type hints in `ofe-cetypes`), or structured JSON with
 *     MQTT 3.1.1. Completes on the PUBACK; a reason code >= 0x80 fails with
 *     its name.
 *   - consumer group G on topic T: shared subscription `$share/G/T`, one
 *     MQTT connection (one session) per subscription, at QoS min(qos, 1).
 *   - member client id: "{consumerID|ofe}-{group}-{consumer}" (the
 *     consumer name is left out when consumerID is set and no consumer
 *     name was given): the same process restarted with the same names
 *     resumes its session (clean start off, session expiry `sessionExpiry`)
 *     and gets what arrived meanwhile.
 *
 * At-least-once, and what libmosquitto 2.0.11 does: on a QoS 1 PUBLISH it
 * queues the PUBACK *before* calling on_message. Without threads (no
 * mosquitto_threaded_set, no loop_start) the PUBACK is written at once,
 * before the application saw the message; in threaded mode it is only
 * written by the next mosquitto_loop_write, after the callback returned
 * (checked with mosquitto -v; tests/integration/test_pubsub_mqtt.c keeps
 * checking it). This backend runs its own loop in threaded mode and does
 * not write while a message of the connection is unacknowledged (see
 * pubsub_mqtt_conn.c): a process that dies before acking leaves the
 * message unacknowledged at the broker. Mosquitto then keeps it (and every
 * message the shared subscription assigns to that member meanwhile) in the
 * member's session until a client with the same id comes back; it does not
 * hand it to another member, and drops it when the session expires.
 * Nack: the core redelivers locally after the delay (ops->nack NULL); the
 * message stays unacknowledged at the broker meanwhile. Holding a message
 * longer than about keepAlive stalls the connection's writes (no PINGREQ)
 * and the broker drops it: its unflushed messages come again (duplicates).
 * docs/backends.md has the full story. */
#include <mqtt_protocol.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ofe/config.h"
#include "ofe/err.h"
#include "ofe/log.h"
#include "pubsub_mqtt_int.h"

struct msub {
    struct mctx *ctx;
    struct mqtt_conn *c;
    char *id;
    char *group;
    struct msub *next;
};

struct mctx {
    struct ofe_bus *bus;
    struct mqtt_opts *o;
    struct mqtt_conn *pub;
    pthread_mutex_t lock;
    struct msub *subs;
    struct ofe_counter *m_reconnects;
};

/* Per message: the connection epoch it came on (its PUBACK belongs to
 * that connection only). */
struct mpriv {
    uint32_t epoch;
};

/* ---- open / close ------------------------------------------------------- */

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;

/* libmosquitto's process-wide set-up (sockets, OpenSSL indexes); kept for
 * the life of the process (cleanup would race other buses). */
static void lib_init(void)
{
    mosquitto_lib_init();
}

static int mq_open(struct ofe_bus *bus, const void *def, void **out, char *errstr,
                   size_t errstr_size)
{
    const struct ofe_config_busdesc *d = def;
    if (!d || !d->mqtt)
        return ofe_err(errstr, errstr_size, OFE_EINVAL, "mqtt: the bus has no mqtt options");
    pthread_once(&lib_once, lib_init);
    const struct ofe_bus_opts *bo = ofe_bus__opts(bus);
    struct mctx *x = calloc(1, sizeof(*x));
    if (!x)
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    x->bus = bus;
    pthread_mutex_init(&x->lock, NULL);
    int rc = mqtt__opts_new(d->mqtt, bo->component, &x->o, errstr, errstr_size);
    if (rc)
        goto fail;
    if ((rc = mqtt__probe_options(x->o, errstr, errstr_size)))
        goto fail;
    const char *lb[] = {"backend", "mqtt", NULL};
    x->m_reconnects = ofe_metrics_counter(ofe_bus__metrics(bus), "ofe_bus_reconnects_total",
                                          "Connections to the broker lost and made again", lb);
    /* The publisher's session is clean: it holds nothing worth resuming,
     * and a random suffix keeps two processes from taking each other's
     * connection over. */
    char id[200];
    unsigned r = (unsigned)(mqtt__now_ns() ^ ((uint64_t)getpid() << 16) ^ (uintptr_t)x);
    snprintf(id, sizeof(id), "%.150s-pub-%08x",
             x->o->consumer_id ? x->o->consumer_id : ofe_bus__client_id(bus), r);
    x->pub = mqtt__conn_new(x->o, MQTT_PUB, id);
    if (!x->pub) {
        rc = ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
        goto fail;
    }
    x->pub->clean_start = true;
    x->pub->publish_timeout_ms = bo->publish_timeout_ms;
    x->pub->m_reconnects = x->m_reconnects;
    if (mqtt__conn_start(x->pub) != 0) {
        rc = ofe_err(errstr, errstr_size, OFE_ENOMEM, "mqtt: cannot start a thread");
        goto fail;
    }
    *out = x;
    return 0;
fail:
    mqtt__conn_discard(x->pub);
    mqtt__opts_unref(x->o);
    pthread_mutex_destroy(&x->lock);
    free(x);
    return rc;
}

static void mq_close(void *ctx, uint32_t drain_ms)
{
    struct mctx *x = ctx;
    mqtt__conn_drain(x->pub, drain_ms);
    mqtt__conn_destroy(x->pub, 3000);
    mqtt__opts_unref(x->o);
    pthread_mutex_destroy(&x->lock);
    free(x);
}

static const char *mq_describe(void *ctx)
{
    return ((struct mctx *)ctx)->o->desc;
}

static bool mq_ready(void *ctx, char *why, size_t why_size)
{
    struct mctx *x = ctx;
    char w[400];
    if (!mqtt__conn_ready(x->pub, w, sizeof(w))) {
        ofe_err(why, why_size, 0, "publisher: %s", w);
        return false;
    }
    bool ok = true;
    pthread_mutex_lock(&x->lock);
    for (struct msub *s = x->subs; s && ok; s = s->next)
        if (!mqtt__conn_ready(s->c, w, sizeof(w))) {
            ofe_err(why, why_size, 0, "group '%s' (client '%s'): %s", s->group, s->id, w);
            ok = false;
        }
    pthread_mutex_unlock(&x->lock);
    return ok;
}

/* ---- publishing --------------------------------------------------------- */

static size_t varint_len(size_t v)
{
    return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4;
}

static int mq_publish(void *ctx, const char *topic, struct ofe_pub *p, char *errstr,
                      size_t errstr_size)
{
    struct mctx *x = ctx;
    struct mqtt_opts *o = x->o;
    size_t tlen = strlen(topic);
    if (tlen > 65535)
        return ofe_err(errstr, errstr_size, OFE_EINVAL, "mqtt: topic name longer than 65535 bytes");
    int trc = mosquitto_pub_topic_check2(topic, tlen);
    if (trc == MOSQ_ERR_SUCCESS)
        trc = mosquitto_validate_utf8(topic, (int)tlen);
    if (trc != MOSQ_ERR_SUCCESS)
        return ofe_err(errstr, errstr_size, OFE_EINVAL, "mqtt: cannot publish to topic '%s': %s",
                       topic,
                       trc == MOSQ_ERR_MALFORMED_UTF8 ? "not valid UTF-8"
                                                      : "wildcards '+' and '#' are for "
                                                        "subscriptions only");
    bool v5 = o->version == MQTT_PROTOCOL_V5;
    struct ofe_hdrs h;
    ofe_hdrs_init(&h);
    struct ofe_buf body = OFE_BUF_INIT;
    const char *ct = NULL;
    const void *payload = NULL;
    size_t plen = 0;
    char err[512];
    int rc = ofe_ce_mqtt_encode(ofe_pub__event(p), v5 ? OFE_CE_BINARY : OFE_CE_STRUCTURED,
                                OFE_CE_BIND_TYPEHINTS, &h, &ct, &body, &payload, &plen, err,
                                sizeof(err));
    if (rc) {
        ofe_hdrs_fini(&h);
        ofe_buf_fini(&body);
        return ofe_err(errstr, errstr_size, rc, "mqtt: cannot encode the event: %s", err);
    }
    struct mqtt_pub *mp = calloc(1, sizeof(*mp));
    mosquitto_property *props = NULL;
    size_t props_len = 0;
    struct ofe_buf scratch = OFE_BUF_INIT;
    if (!mp || !(mp->topic = strdup(topic))) {
        rc = ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
        goto fail;
    }
    if (v5) {
        if (ct) {
            size_t ctl = strlen(ct);
            if (ctl > 65535 || mosquitto_property_add_string(&props, MQTT_PROP_CONTENT_TYPE, ct)) {
                rc = ofe_err(errstr, errstr_size, OFE_EINVAL,
                             "mqtt: datacontenttype is not a valid MQTT string (UTF-8, at most "
                             "65535 bytes)");
                goto fail;
            }
            props_len += 3 + ctl;
        }
        for (size_t i = 0; i < h.n; i++) {
            const struct ofe_hdr *hd = &h.v[i];
            if (hd->name_len > 65535 || hd->value_len > 65535) {
                rc = ofe_err(errstr, errstr_size, OFE_EINVAL,
                             "mqtt: attribute '%.*s' is longer than an MQTT string (65535 bytes)",
                             (int)(hd->name_len > 64 ? 64 : hd->name_len), hd->name);
                goto fail;
            }
            ofe_buf_reset(&scratch);
            if (ofe_buf_append(&scratch, hd->name, hd->name_len) || ofe_buf_putc(&scratch, '\0') ||
                ofe_buf_append(&scratch, hd->value, hd->value_len) ||
                ofe_buf_putc(&scratch, '\0')) {
                rc = ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
                goto fail;
            }
            const char *name = scratch.data, *value = scratch.data + hd->name_len + 1;
            int prc = memchr(hd->value, 0, hd->value_len) || memchr(hd->name, 0, hd->name_len)
                          ? MOSQ_ERR_MALFORMED_UTF8
                          : mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY,
                                                               name, value);
            if (prc) {
                rc = ofe_err(errstr, errstr_size, prc == MOSQ_ERR_NOMEM ? OFE_ENOMEM : OFE_EINVAL,
                             "mqtt: attribute '%s' cannot be an MQTT user property: %s", name,
                             mosquitto_strerror(prc));
                goto fail;
            }
            props_len += 5 + hd->name_len + hd->value_len;
        }
    }
    /* The packet the broker will see: fixed header, topic, message id,
     * properties, payload. */
    size_t rem =
        2 + tlen + (o->qos > 0 ? 2 : 0) + plen + (v5 ? varint_len(props_len) + props_len : 0);
    size_t total = 1 + varint_len(rem) + rem;
    pthread_mutex_lock(&x->pub->lock);
    uint32_t bmax = x->pub->broker_max_packet;
    pthread_mutex_unlock(&x->pub->lock);
    uint32_t limit = bmax && bmax < o->max_packet ? bmax : o->max_packet;
    if (total > limit || plen > INT32_MAX) {
        rc = ofe_err(errstr, errstr_size, OFE_EINVAL,
                     "mqtt: the event is too large: its MQTT packet would be %zu bytes, over %s of "
                     "%u bytes",
                     total,
                     bmax && bmax < o->max_packet ? "the broker's maximum packet size"
                                                  : "MQTT's packet size limit",
                     limit);
        goto fail;
    }
    if (body.len) { /* structured: the JSON is ours to keep */
        mp->own_payload = ofe_buf_detach(&body, NULL);
        payload = mp->own_payload;
    }
    /* Binary mode points into the event's data: the core holds the event
     * until the publish completes. */
    mp->payload = payload;
    mp->len = (int)plen;
    mp->props = props;
    mp->p = p;
    mp->deadline_ns = mqtt__now_ns() + (uint64_t)x->pub->publish_timeout_ms * 1000000u;
    props = NULL;
    *ofe_pub__priv(p) = mp;
    ofe_hdrs_fini(&h);
    ofe_buf_fini(&body);
    ofe_buf_fini(&scratch);
    if ((rc = mqtt__conn_publish(x->pub, mp))) {
        mp->props = NULL;
        mqtt__pub_free(mp);
        return ofe_err(errstr, errstr_size, rc, "mqtt: the bus is closing");
    }
    return 0;
fail:
    mosquitto_property_free_all(&props);
    mqtt__pub_free(mp);
    ofe_hdrs_fini(&h);
    ofe_buf_fini(&body);
    ofe_buf_fini(&scratch);
    return rc;
}

/* ---- subscribing -------------------------------------------------------- */

void mqtt__deliver(struct mqtt_conn *c, const struct mosquitto_message *msg,
                   const mosquitto_property *props)
{
    struct ofe_sub *sub = c->sub;
    struct ofe_msg *m = ofe_msg__new(sub, msg->topic, sizeof(struct mpriv));
    if (!m) {
        /* Its PUBACK is queued: never let it out. */
        pthread_mutex_lock(&c->lock);
        c->poisoned = true;
        pthread_mutex_unlock(&c->lock);
        OFE_ERROR(c->o->component, "mqtt", "'%s': out of memory for a message on '%s'",
                  c->client_id, msg->topic);
        return;
    }
    struct ofe_hdrs h;
    ofe_hdrs_init(&h);
    char *ct = NULL;
    int rc = 0;
    for (const mosquitto_property *pr = props; pr && !rc; pr = mosquitto_property_next(pr)) {
        int id = mosquitto_property_identifier(pr);
        if (id == MQTT_PROP_USER_PROPERTY) {
            char *n = NULL, *v = NULL;
            if (mosquitto_property_read_string_pair(pr, id, &n, &v, false) && n && v)
                rc = ofe_hdrs_add_copy(&h, n, strlen(n), v, strlen(v));
            free(n);
            free(v);
        } else if (id == MQTT_PROP_CONTENT_TYPE && !ct) {
            mosquitto_property_read_string(pr, id, &ct, false);
        }
    }
    char err[512];
    struct ofe_ce *ev = NULL;
    if (!rc)
        rc = ofe_ce_mqtt_decode(&h, ct, msg->payload, (size_t)msg->payloadlen,
                                OFE_CE_BIND_TYPEHINTS, &ev, err, sizeof(err));
    else
        snprintf(err, sizeof(err), "out of memory");
    if (rc) {
        char why[600];
        snprintf(why, sizeof(why), "mqtt: the message on '%s' is not a CloudEvent: %s", msg->topic,
                 err);
        ofe_msg__set_invalid(m, msg->payload, (size_t)msg->payloadlen, why);
    } else {
        m->ev = ev;
    }
    free(ct);
    ofe_hdrs_fini(&h);
    struct mpriv *pv = (struct mpriv *)m->priv;
    pthread_mutex_lock(&c->lock);
    pv->epoch = c->epoch;
    c->unresolved++;
    pthread_mutex_unlock(&c->lock);
    c->since_flush++;
    ofe_sub__deliver(sub, m);
}

static void resolve(struct msub *s, struct ofe_msg *m, bool abandoned)
{
    struct mqtt_conn *c = s->c;
    const struct mpriv *pv = (const struct mpriv *)m->priv;
    bool wake = false;
    pthread_mutex_lock(&c->lock);
    if (pv->epoch == c->epoch) {
        if (c->unresolved)
            c->unresolved--;
        if (abandoned)
            c->poisoned = true;
    }
    /* Acks from the loop thread itself (a consumer acking inside its
     * handler) need no wake-up: the loop looks again before it waits. */
    if (!c->wake_pending && !pthread_equal(pthread_self(), c->thr)) {
        c->wake_pending = true;
        wake = true;
    }
    pthread_mutex_unlock(&c->lock);
    if (wake)
        mqtt__conn_wake(c);
}

static void mq_ack(void *ctx, void *sctx, struct ofe_msg *m)
{
    resolve(sctx, m, false);
}

static void mq_abandon(void *ctx, void *sctx, struct ofe_msg *m)
{
    resolve(sctx, m, true);
}

/* The pid-derived default client id of the core ("ofe-<host>-<pid>"). */
static bool default_client_id(const char *id)
{
    char host[128] = "host", def[200];
    gethostname(host, sizeof(host) - 1);
    snprintf(def, sizeof(def), "ofe-%s-%d", host, (int)getpid());
    return !strcmp(id, def);
}

static int mq_subscribe(void *ctx, struct ofe_sub *sub, void **sctx, char *errstr,
                        size_t errstr_size)
{
    struct mctx *x = ctx;
    struct mqtt_opts *o = x->o;
    const struct ofe_sub_opts *so = ofe_sub__opts(sub);
    if (strpbrk(so->group, "/+#"))
        return ofe_err(errstr, errstr_size, OFE_EINVAL,
                       "mqtt: consumer group '%s' cannot name a shared subscription: it contains "
                       "'/', '+' or '#'",
                       so->group);
    if (mosquitto_validate_utf8(so->group, (int)strlen(so->group)) != MOSQ_ERR_SUCCESS)
        return ofe_err(errstr, errstr_size, OFE_EINVAL,
                       "mqtt: consumer group '%s' is not valid UTF-8", so->group);
    for (size_t i = 0; i < so->ntopics; i++) {
        const char *t = so->topics[i];
        size_t tl = strlen(t);
        int trc = mosquitto_sub_topic_check2(t, tl);
        if (trc == MOSQ_ERR_SUCCESS)
            trc = mosquitto_validate_utf8(t, (int)tl);
        if (trc != MOSQ_ERR_SUCCESS || t[0] == '$')
            return ofe_err(errstr, errstr_size, OFE_EINVAL,
                           "mqtt: '%s' is not a valid topic filter for a shared subscription "
                           "(%s)",
                           t,
                           t[0] == '$' ? "topics starting with '$' are the broker's"
                           : trc == MOSQ_ERR_MALFORMED_UTF8
                               ? "not valid UTF-8"
                               : "'+' and '#' must fill a whole level, '#' only last");
    }
    const char *consumer = ofe_sub__consumer(sub);
    const char *bus_id = ofe_bus__client_id(x->bus);
    bool named = consumer && strcmp(consumer, bus_id) != 0;
    const char *member = named ? consumer : o->consumer_id ? NULL : bus_id;
    struct msub *s = calloc(1, sizeof(*s));
    if (!s || !(s->id = mqtt__member_id(o->consumer_id, so->group, member)) ||
        !(s->group = strdup(so->group))) {
        if (s) {
            free(s->id);
            free(s);
        }
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    }
    if (!mqtt__id_claim(s->id)) {
        int rc = ofe_err(errstr, errstr_size, OFE_EEXIST,
                         "mqtt: client id '%s' is already used by another subscription of this "
                         "process: give each member of group '%s' its own consumer name",
                         s->id, so->group);
        free(s->id);
        free(s->group);
        free(s);
        return rc;
    }
    if (!o->clean_session && !o->consumer_id && !named && default_client_id(bus_id))
        OFE_WARN(o->component, "mqtt",
                 "group '%s': member client id '%s' comes from the process id, so a restarted "
                 "process starts a new session and what the old one held waits there until it "
                 "expires (sessionExpiry); set consumerID or a stable consumer name",
                 so->group, s->id);
    s->ctx = x;
    struct mqtt_conn *c = s->c = mqtt__conn_new(o, MQTT_SUB, s->id);
    int rc = OFE_ENOMEM;
    if (!c)
        goto fail;
    c->sub = sub;
    c->m_reconnects = x->m_reconnects;
    c->clean_start = o->clean_session;
    c->session_expiry_s = o->clean_session ? 0 : o->session_expiry_s;
    c->window = so->max_inflight ? so->max_inflight : 64;
    if (c->window > 65535)
        c->window = 65535;
    /* QoS 2 would hand the message over at PUBREL, after the broker let go
     * of it: subscribe at QoS 1 at most so an unacked message stays. */
    c->sub_qos = o->qos > 1 ? 1 : o->qos;
    c->filters = calloc(so->ntopics, sizeof(char *));
    if (!c->filters)
        goto fail;
    for (size_t i = 0; i < so->ntopics; i++) {
        size_t n = strlen(so->group) + strlen(so->topics[i]) + 9;
        if (!(c->filters[i] = malloc(n)))
            goto fail;
        c->nfilters++;
        snprintf(c->filters[i], n, "$share/%s/%s", so->group, so->topics[i]);
    }
    /* The thread may deliver (a resumed session) before this returns: the
     * core must know sctx first. */
    *sctx = s;
    if (mqtt__conn_start(c) != 0) {
        *sctx = NULL;
        goto fail;
    }
    pthread_mutex_lock(&x->lock);
    s->next = x->subs;
    x->subs = s;
    pthread_mutex_unlock(&x->lock);
    /* A group exists at the broker from its first subscription on: wait
     * for the SUBACK (or a failure), so that what is published once this
     * returns reaches the group. */
    char why[400];
    if (mqtt__conn_wait(c, 5000))
        OFE_DEBUG(o->component, "mqtt", "'%s' subscribed to %s%s", s->id, c->filters[0],
                  c->nfilters > 1 ? " and more" : "");
    else if (!mqtt__conn_ready(c, why, sizeof(why)))
        OFE_WARN(o->component, "mqtt",
                 "group '%s': not subscribed yet (%s); retrying in the background", so->group, why);
    return 0;
fail:
    mqtt__conn_discard(c);
    mqtt__id_release(s->id);
    free(s->id);
    free(s->group);
    free(s);
    return ofe_err(errstr, errstr_size, rc, "out of memory");
}

static void mq_stop(void *ctx, void *sctx)
{
    struct msub *s = sctx;
    mqtt__conn_stop_reading(s->c);
}

static void mq_release(void *ctx, void *sctx)
{
    struct mctx *x = ctx;
    struct msub *s = sctx;
    pthread_mutex_lock(&x->lock);
    for (struct msub **pp = &x->subs; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    pthread_mutex_unlock(&x->lock);
    mqtt__conn_destroy(s->c, 5000);
    mqtt__id_release(s->id);
    free(s->id);
    free(s->group);
    free(s);
}

const struct ofe_pubsub_ops ofe_pubsub_mqtt = {
    .name = "mqtt",
    .open = mq_open,
    .publish = mq_publish,
    .subscribe = mq_subscribe,
    .stop = mq_stop,
    .release = mq_release,
    .ack = mq_ack,
    .nack = NULL, /* the core redelivers after the delay; the broker still holds it */
    .abandon = mq_abandon,
    .ready = mq_ready,
    .close = mq_close,
    .describe = mq_describe,
};
