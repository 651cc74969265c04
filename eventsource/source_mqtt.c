/* The mqtt source (libmosquitto 2.0, MQTT 5 by default or 3.1.1).
 *
 * One connection per event, client id consumerID (default
 * {namespace}-{eventsource}-{event}), with the broker keeping the session
 * (cleanSession false by default; MQTT 5 session expiry SESSION_EXPIRY_S).
 *
 * At least once for QoS 1 and 2: libmosquitto queues the PUBACK (PUBREC)
 * of a message before it calls on_message; with the client in threaded
 * mode and this source driving the socket itself (poll + loop_read /
 * loop_write / loop_misc), nothing is written while a message read on
 * the current connection has not completed, so the acknowledgements leave
 * only once every destination accepted every message read so far (the
 * behaviour of libmosquitto 2.0.11 the mqtt bus backend verified,
 * common/pubsub_mqtt.c). A crash before that leaves the messages
 * unacknowledged in the session: the broker sends them again, with their
 * packet identifiers, when the client id connects again. Reading pauses
 * while `window` messages are unresolved (the MQTT 5 Receive Maximum is
 * the same window). Holding writes longer than about the keep-alive (a
 * sink slower than that) makes the broker drop the connection; the
 * unacknowledged messages then come again (duplicates, same ids).
 *
 * A message whose event could not be delivered (the source is stopping)
 * must never be acknowledged: the connection is then dropped without
 * writing. QoS 0 messages are at most once by MQTT's definition; qos 2 is
 * subscribed at QoS 1 (at QoS 2 the PUBREC leaves before the message is
 * handed over, and a restarted client answers the broker's PUBREL without
 * having the message: it would be lost). */
#include <errno.h>
#include <mqtt_protocol.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mosquitto.h>

#include "es.h"
#include "ofe/err.h"
#include "ofe/log.h"

#define MQTT_TYPE        "dev.ofevents.mqtt.message"
#define SESSION_EXPIRY_S (7 * 24 * 3600)
#define MAX_WINDOW       1024

struct mqtt_src {
    struct es_source *s;
    const struct ofe_config_mqtt_source *c;
    char *host;
    int port;
    bool tls;
    char *user, *pass;
    char *tmpdir;
    char *cafile, *certfile, *keyfile;
    int version;
    unsigned window;
    pthread_t thr;
    bool thr_started;
    int wakefd;
    atomic_bool quit;
    pthread_mutex_t lock;
    /* under lock */
    uint32_t epoch;
    unsigned unresolved;
    bool poisoned, stopping, subscribed, up;
    char why[400];
    /* loop thread only */
    struct mosquitto *mosq;
    unsigned attempt, since_flush;
    bool drop;
    char last_log[256];
};

struct mtok {
    struct mqtt_src *m;
    uint32_t epoch;
};

static void wake(struct mqtt_src *m)
{
    uint64_t one = 1;
    if (write(m->wakefd, &one, sizeof(one)) < 0) {
        /* the counter is saturated: the loop is awake anyway */
    }
}

/* ---- options ------------------------------------------------------------------- */

static int parse_url(const char *url, char **host, int *port, bool *tls, char **user, char **pass,
                     char *err, size_t err_size)
{
    const char *p = strstr(url, "://");
    if (!p)
        return ofe_err(err, err_size, OFE_EINVAL,
                       "\"%s\" has no scheme (tcp://, mqtt://, ssl://, mqtts://, tls://)", url);
    size_t sl = (size_t)(p - url);
    if ((sl == 3 && !strncasecmp(url, "tcp", 3)) || (sl == 4 && !strncasecmp(url, "mqtt", 4)))
        *tls = false;
    else if ((sl == 3 && (!strncasecmp(url, "ssl", 3) || !strncasecmp(url, "tls", 3))) ||
             (sl == 5 && !strncasecmp(url, "mqtts", 5)))
        *tls = true;
    else
        return ofe_err(err, err_size, OFE_EINVAL,
                       "unknown scheme in \"%s\" (tcp://, mqtt://, ssl://, mqtts://, tls://)", url);
    p += 3;
    const char *end = p + strcspn(p, "/?#");
    const char *at = memchr(p, '@', (size_t)(end - p));
    *user = *pass = NULL;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        *user = strndup(p, (size_t)((colon ? colon : at) - p));
        if (colon)
            *pass = strndup(colon + 1, (size_t)(at - colon - 1));
        p = at + 1;
    }
    const char *hs = p, *he;
    const char *portp = NULL;
    if (*p == '[') {
        he = memchr(p, ']', (size_t)(end - p));
        if (!he)
            goto bad;
        hs = p + 1;
        portp = he + 1 < end && he[1] == ':' ? he + 2 : NULL;
    } else {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        he = colon ? colon : end;
        portp = colon ? colon + 1 : NULL;
    }
    if (he == hs)
        goto bad;
    *host = strndup(hs, (size_t)(he - hs));
    *port = *tls ? 8883 : 1883;
    if (portp) {
        char *pe;
        long v = strtol(portp, &pe, 10);
        if (pe == portp || pe != end || v < 1 || v > 65535) {
            free(*host);
            goto bad;
        }
        *port = (int)v;
    }
    return 0;
bad:
    free(*user);
    free(*pass);
    *user = *pass = NULL;
    return ofe_err(err, err_size, OFE_EINVAL, "\"%s\" is not a valid MQTT URL (scheme://host:port)",
                   url);
}

/* A PEM given inline: written to a private file for libmosquitto. */
static char *pem_path(struct mqtt_src *m, const char *file, const char *content, const char *name,
                      char *err, size_t err_size)
{
    if (file)
        return strdup(file);
    if (!content)
        return NULL;
    if (!m->tmpdir) {
        char t[] = "/tmp/ofe-es-mqtt-XXXXXX";
        const char *tmp = getenv("TMPDIR");
        char buf[4096];
        snprintf(buf, sizeof(buf), "%s/ofe-es-mqtt-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        m->tmpdir = strdup(mkdtemp(buf) ? buf : (mkdtemp(t) ? t : ""));
        if (!m->tmpdir || !*m->tmpdir) {
            ofe_err(err, err_size, OFE_EIO, "cannot make a temporary directory for %s", name);
            return NULL;
        }
    }
    char *path = NULL;
    if (asprintf(&path, "%s/%s.pem", m->tmpdir, name) < 0)
        return NULL;
    FILE *f = fopen(path, "w");
    if (!f || fputs(content, f) < 0) {
        if (f)
            fclose(f);
        ofe_err(err, err_size, OFE_EIO, "cannot write %s: %s", path, strerror(errno));
        free(path);
        return NULL;
    }
    fclose(f);
    return path;
}

/* ---- callbacks (loop thread) ---------------------------------------------------------- */

static void on_log(struct mosquitto *mq, void *obj, int level, const char *str)
{
    struct mqtt_src *m = obj;
    if (level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING))
        snprintf(m->last_log, sizeof(m->last_log), "%s", str);
}

static void on_connect(struct mosquitto *mq, void *obj, int rc, int flags,
                       const mosquitto_property *props)
{
    struct mqtt_src *m = obj;
    if (rc != 0) {
        const char *r = m->version == MQTT_PROTOCOL_V5 ? mosquitto_reason_string(rc)
                                                       : mosquitto_connack_string(rc);
        pthread_mutex_lock(&m->lock);
        snprintf(m->why, sizeof(m->why), "mqtt: %s refused client '%s': %s (%d)", m->c->url,
                 m->c->consumer_id, r, rc);
        pthread_mutex_unlock(&m->lock);
        OFE_WARN(ES_COMPONENT, m->s->name, "mqtt: %s refused client '%s': %s", m->c->url,
                 m->c->consumer_id, r);
        m->drop = true;
        return;
    }
    pthread_mutex_lock(&m->lock);
    m->up = true;
    pthread_mutex_unlock(&m->lock);
    int opts = 0;
    if (m->version == MQTT_PROTOCOL_V5 && !m->c->retain)
        opts |= MQTT_SUB_OPT_SEND_RETAIN_NEVER;
    /* QoS 2 would acknowledge (PUBREC) before the message is handed to us,
     * and a restarted client without its state answers the PUBREL with a
     * PUBCOMP: lost. At QoS 1 the PUBACK is ours to hold. */
    int qos = m->c->qos > 1 ? 1 : (int)m->c->qos;
    int src = mosquitto_subscribe_v5(mq, NULL, m->c->topic, qos, opts, NULL);
    if (src != MOSQ_ERR_SUCCESS) {
        OFE_ERROR(ES_COMPONENT, m->s->name, "mqtt: cannot subscribe to %s: %s", m->c->topic,
                  mosquitto_strerror(src));
        m->drop = true;
    }
    OFE_INFO(ES_COMPONENT, m->s->name, "mqtt: connected to %s as '%s'%s", m->c->url,
             m->c->consumer_id, (flags & 1) ? " (session resumed)" : "");
}

static void on_subscribe(struct mosquitto *mq, void *obj, int mid, int qos_count,
                         const int *granted, const mosquitto_property *props)
{
    struct mqtt_src *m = obj;
    if (qos_count < 1 || granted[0] >= 0x80) {
        pthread_mutex_lock(&m->lock);
        snprintf(m->why, sizeof(m->why), "mqtt: the broker refused the subscription to %s (%d)",
                 m->c->topic, qos_count ? granted[0] : -1);
        pthread_mutex_unlock(&m->lock);
        OFE_ERROR(ES_COMPONENT, m->s->name, "mqtt: the broker refused the subscription to %s",
                  m->c->topic);
        return;
    }
    pthread_mutex_lock(&m->lock);
    m->subscribed = true;
    pthread_mutex_unlock(&m->lock);
}

static void on_disconnect(struct mosquitto *mq, void *obj, int rc, const mosquitto_property *p)
{
    struct mqtt_src *m = obj;
    if (rc != 0)
        m->drop = true;
}

static void msg_done(void *token, enum es_result r, const char *why)
{
    struct mtok *t = token;
    struct mqtt_src *m = t->m;
    pthread_mutex_lock(&m->lock);
    bool wakeit = false;
    if (t->epoch == m->epoch) {
        if (r == ES_FAILED)
            m->poisoned = true; /* its PUBACK must never leave */
        m->unresolved--;
        wakeit = m->unresolved == 0;
    }
    pthread_mutex_unlock(&m->lock);
    if (r != ES_FAILED)
        es_count_acked(m->s, 1);
    if (wakeit)
        wake(m);
    free(t);
}

static bool looks_structured(const void *p, size_t n)
{
    const char *s = p;
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
        i++;
    return i < n && s[i] == '{' && memmem(s, n, "\"specversion\"", 13) != NULL;
}

static int message_event(struct mqtt_src *m, const struct mosquitto_message *msg,
                         const mosquitto_property *props, struct ofe_ce **out, char *err,
                         size_t err_size)
{
    struct ofe_hdrs up;
    ofe_hdrs_init(&up);
    char *ct = NULL;
    bool has_spec = false;
    for (const mosquitto_property *p = props; p; p = mosquitto_property_next(p)) {
        int id = mosquitto_property_identifier(p);
        if (id == MQTT_PROP_CONTENT_TYPE) {
            free(ct);
            ct = NULL;
            mosquitto_property_read_string(p, MQTT_PROP_CONTENT_TYPE, &ct, false);
        } else if (id == MQTT_PROP_USER_PROPERTY) {
            char *k = NULL, *v = NULL;
            if (mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &k, &v, false)) {
                ofe_hdrs_add_copy(&up, k, strlen(k), v, strlen(v));
                if (!strcmp(k, "specversion"))
                    has_spec = true;
            }
            free(k);
            free(v);
        }
    }
    const void *data = msg->payload;
    size_t len = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
    int rc;
    if (has_spec || (ct && !strncasecmp(ct, "application/cloudevents", 23)) ||
        (!ct && !up.n && looks_structured(data, len))) {
        rc = ofe_ce_mqtt_decode(&up, ct, data, len, OFE_CE_BIND_TYPEHINTS, out, err, err_size);
    } else {
        char id[40];
        if (msg->qos > 0) {
            /* Stable across redelivery: the broker sends an unacknowledged
             * message again with its packet identifier. */
            uint16_t mid = (uint16_t)msg->mid;
            const void *parts[] = {msg->topic, &mid, data ? data : ""};
            size_t lens[] = {strlen(msg->topic), sizeof(mid), len};
            es_sha256_hex(parts, lens, 3, id, 32);
        } else {
            es_uuid(id, sizeof(id));
        }
        rc = es_ce_native(m->s, MQTT_TYPE, id, msg->topic, -1, ct, data ? data : "", len, out, err,
                          err_size);
    }
    free(ct);
    ofe_hdrs_fini(&up);
    return rc;
}

static void on_message(struct mosquitto *mq, void *obj, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
    struct mqtt_src *m = obj;
    struct es_source *s = m->s;
    if (msg->retain && !m->c->retain && m->version != MQTT_PROTOCOL_V5)
        return; /* a retained message sent because we subscribed (3.1.1) */
    struct ofe_ce *ev = NULL;
    char err[400];
    if (message_event(m, msg, props, &ev, err, sizeof(err)) != 0) {
        es_invalid(s, "mqtt %s: %s", msg->topic, err);
        es_count_acked(s, 1);
        return; /* its PUBACK may leave */
    }
    struct mtok *t = malloc(sizeof(*t));
    pthread_mutex_lock(&m->lock);
    if (t) {
        t->m = m;
        t->epoch = m->epoch;
    }
    m->unresolved++;
    pthread_mutex_unlock(&m->lock);
    if (!t || es_emit(s, ev, ES_EMIT_FORCE, msg_done, t) != 0) {
        /* stopping: never acknowledge it */
        pthread_mutex_lock(&m->lock);
        m->poisoned = true;
        m->unresolved--;
        pthread_mutex_unlock(&m->lock);
        free(t);
    }
    ofe_ce_unref(ev);
    m->since_flush++;
}

/* ---- the loop -------------------------------------------------------------------------- */

static int conn_setup(struct mqtt_src *m, struct mosquitto *mq)
{
    mosquitto_threaded_set(mq, true);
    int rc = mosquitto_int_option(mq, MOSQ_OPT_PROTOCOL_VERSION, m->version);
    mosquitto_int_option(mq, MOSQ_OPT_TCP_NODELAY, 1);
    if (!rc && m->version == MQTT_PROTOCOL_V5)
        rc = mosquitto_int_option(mq, MOSQ_OPT_RECEIVE_MAXIMUM, (int)m->window);
    if (!rc && m->user)
        rc = mosquitto_username_pw_set(mq, m->user, m->pass);
    if (!rc && m->tls) {
        rc = mosquitto_tls_set(mq, m->cafile, m->cafile ? NULL : "/etc/ssl/certs", m->certfile,
                               m->keyfile, NULL);
        if (!rc && !m->cafile)
            rc = mosquitto_int_option(mq, MOSQ_OPT_TLS_USE_OS_CERTS, 1);
    }
    mosquitto_log_callback_set(mq, on_log);
    mosquitto_connect_v5_callback_set(mq, on_connect);
    mosquitto_subscribe_v5_callback_set(mq, on_subscribe);
    mosquitto_disconnect_v5_callback_set(mq, on_disconnect);
    mosquitto_message_v5_callback_set(mq, on_message);
    return rc;
}

static void set_why(struct mqtt_src *m, const char *why)
{
    pthread_mutex_lock(&m->lock);
    snprintf(m->why, sizeof(m->why), "%s", why);
    pthread_mutex_unlock(&m->lock);
}

static int conn_open(struct mqtt_src *m)
{
    pthread_mutex_lock(&m->lock);
    m->epoch++;
    m->unresolved = 0;
    m->poisoned = false;
    m->up = m->subscribed = false;
    pthread_mutex_unlock(&m->lock);
    m->since_flush = 0;
    m->drop = false;
    m->last_log[0] = '\0';
    struct mosquitto *mq = mosquitto_new(m->c->consumer_id, m->c->clean_session, m);
    if (!mq) {
        set_why(m, "mqtt: cannot create a client");
        return -1;
    }
    int rc = conn_setup(m, mq);
    mosquitto_property *props = NULL;
    if (!rc && m->version == MQTT_PROTOCOL_V5 && !m->c->clean_session)
        rc = mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
                                          SESSION_EXPIRY_S);
    int keep = (int)(m->c->keep_alive_ms / 1000);
    if (keep < 5)
        keep = 5;
    if (!rc) {
        errno = 0;
        rc = mosquitto_connect_bind_v5(mq, m->host, m->port, keep, NULL, props);
    }
    mosquitto_property_free_all(&props);
    if (rc != MOSQ_ERR_SUCCESS) {
        char why[400];
        snprintf(why, sizeof(why), "mqtt: cannot connect to %s: %s%s%s", m->c->url,
                 rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc),
                 m->last_log[0] ? " - " : "", m->last_log);
        if (m->attempt == 0)
            OFE_WARN(ES_COMPONENT, m->s->name, "%s; retrying with backoff", why);
        set_why(m, why);
        mosquitto_destroy(mq);
        return -1;
    }
    m->mosq = mq;
    return 0;
}

static void conn_close(struct mqtt_src *m, bool clean)
{
    if (!m->mosq)
        return;
    pthread_mutex_lock(&m->lock);
    bool can = clean && !m->poisoned && m->unresolved == 0;
    m->up = m->subscribed = false;
    pthread_mutex_unlock(&m->lock);
    if (can) {
        /* flush the acknowledgements, then leave (the session stays) */
        for (int i = 0; i < 100 && mosquitto_want_write(m->mosq); i++) {
            struct pollfd pf = {mosquitto_socket(m->mosq), POLLOUT, 0};
            poll(&pf, 1, 10);
            if (mosquitto_loop_write(m->mosq, 1) != MOSQ_ERR_SUCCESS)
                break;
        }
        mosquitto_disconnect(m->mosq);
        for (int i = 0; i < 100 && mosquitto_want_write(m->mosq); i++) {
            struct pollfd pf = {mosquitto_socket(m->mosq), POLLOUT, 0};
            poll(&pf, 1, 10);
            if (mosquitto_loop_write(m->mosq, 1) != MOSQ_ERR_SUCCESS)
                break;
        }
    } else {
        /* unacknowledged messages: write nothing, the broker keeps them */
        shutdown(mosquitto_socket(m->mosq), SHUT_RDWR);
    }
    mosquitto_destroy(m->mosq);
    m->mosq = NULL;
}

static void gate(struct mqtt_src *m, bool *can_read, bool *can_write)
{
    pthread_mutex_lock(&m->lock);
    unsigned un = m->unresolved;
    bool poison = m->poisoned, stop = m->stopping;
    pthread_mutex_unlock(&m->lock);
    *can_write = un == 0 && !poison;
    *can_read =
        !stop && !poison && un < m->window && m->since_flush < m->window && es_capacity(m->s) > 0;
}

static void conn_round(struct mqtt_src *m)
{
    bool can_read, can_write;
    pthread_mutex_lock(&m->lock);
    bool poisoned_idle = m->poisoned && m->unresolved == 0;
    pthread_mutex_unlock(&m->lock);
    if (poisoned_idle) {
        /* a message was not delivered: only a new connection brings it back */
        conn_close(m, false);
        return;
    }
    gate(m, &can_read, &can_write);
    struct pollfd pf[2] = {
        {mosquitto_socket(m->mosq),
         (short)((can_read ? POLLIN : 0) |
                 (can_write && mosquitto_want_write(m->mosq) ? POLLOUT : 0)),
         0},
        {m->wakefd, POLLIN, 0},
    };
    /* While reading is gated, wake up now and then to look at capacity. */
    if (poll(pf, 2, can_read ? 1000 : 50) < 0 && errno != EINTR) {
        m->drop = true;
        return;
    }
    if (pf[1].revents & POLLIN) {
        uint64_t v;
        if (read(m->wakefd, &v, sizeof(v)) < 0) {
            /* drained already */
        }
    }
    int rc = MOSQ_ERR_SUCCESS;
    if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
        rc = mosquitto_loop_read(m->mosq, 1);
        for (int i = 0; rc == MOSQ_ERR_SUCCESS && i < 63 && !m->drop; i++) {
            bool r, w;
            gate(m, &r, &w);
            struct pollfd p1 = {mosquitto_socket(m->mosq), POLLIN, 0};
            if (!r || poll(&p1, 1, 0) <= 0)
                break;
            rc = mosquitto_loop_read(m->mosq, 1);
        }
    }
    if (rc != MOSQ_ERR_SUCCESS || m->drop) {
        char why[400];
        snprintf(why, sizeof(why), "mqtt: connection to %s lost: %s%s%s", m->c->url,
                 rc == MOSQ_ERR_ERRNO ? strerror(errno)
                                      : mosquitto_strerror(rc ? rc : MOSQ_ERR_CONN_LOST),
                 m->last_log[0] ? " - " : "", m->last_log);
        OFE_WARN(ES_COMPONENT, m->s->name, "%s; reconnecting", why);
        set_why(m, why);
        /* the broker keeps what was not acknowledged */
        conn_close(m, false);
        return;
    }
    gate(m, &can_read, &can_write);
    if (can_write && mosquitto_want_write(m->mosq)) {
        rc = mosquitto_loop_write(m->mosq, 1);
        if (rc != MOSQ_ERR_SUCCESS) {
            set_why(m, "mqtt: write failed");
            conn_close(m, false);
            return;
        }
    }
    if (can_write)
        m->since_flush = 0;
    rc = mosquitto_loop_misc(m->mosq);
    if (rc != MOSQ_ERR_SUCCESS) {
        set_why(m, "mqtt: keep-alive failed");
        conn_close(m, false);
    }
}

static void *mqtt_run(void *arg)
{
    struct mqtt_src *m = arg;
    while (!atomic_load(&m->quit)) {
        if (!m->mosq) {
            if (m->attempt > 0) {
                uint32_t ms = 100u << (m->attempt < 7 ? m->attempt : 7);
                struct pollfd pf = {m->wakefd, POLLIN, 0};
                poll(&pf, 1, (int)(ms > 5000 ? 5000 : ms));
                if (pf.revents & POLLIN) {
                    uint64_t v;
                    if (read(m->wakefd, &v, sizeof(v)) < 0) {
                    }
                }
                if (atomic_load(&m->quit))
                    break;
            }
            if (conn_open(m) != 0) {
                m->attempt++;
                continue;
            }
            m->attempt = 0;
        }
        conn_round(m);
        if (!m->mosq)
            m->attempt++;
    }
    conn_close(m, true);
    return NULL;
}

/* ---- kind ------------------------------------------------------------------------------- */

static void mqtt_check(const struct ofe_config_eventsource *es, const struct ofe_config_event *ev,
                       const struct es_options *o, struct es_diag *d)
{
    const struct ofe_config_mqtt_source *c = (const struct ofe_config_mqtt_source *)ev->spec;
    char *host = NULL, *user = NULL, *pass = NULL;
    int port;
    bool tls;
    char err[400];
    if (parse_url(c->url ? c->url : "", &host, &port, &tls, &user, &pass, err, sizeof(err)) != 0)
        es_diag_error(d, &c->node, "url", "%s", err);
    free(host);
    free(user);
    free(pass);
    if (c->topic && mosquitto_sub_topic_check(c->topic) != MOSQ_ERR_SUCCESS)
        es_diag_error(d, &c->node, "topic", "\"%s\" is not a valid MQTT topic filter", c->topic);
    if (c->consumer_id && strlen(c->consumer_id) > 65535)
        es_diag_error(d, &c->node, "consumerID", "longer than MQTT allows");
}

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static void lib_init(void)
{
    mosquitto_lib_init();
}

static void mqtt_destroy(void *ctx);

static int mqtt_start(struct es_source *s, void **ctx, char *errstr, size_t errstr_size)
{
    pthread_once(&lib_once, lib_init);
    struct mqtt_src *m = calloc(1, sizeof(*m));
    if (!m)
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    m->s = s;
    m->c = (const struct ofe_config_mqtt_source *)s->ev->spec;
    m->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    atomic_init(&m->quit, false);
    pthread_mutex_init(&m->lock, NULL);
    m->version =
        m->c->protocol_version == OFE_CONFIG_MQTT_V311 ? MQTT_PROTOCOL_V311 : MQTT_PROTOCOL_V5;
    m->window = s->max_inflight < MAX_WINDOW ? s->max_inflight : MAX_WINDOW;
    if (!m->window)
        m->window = 1;
    snprintf(m->why, sizeof(m->why), "mqtt: connecting to %s", m->c->url);
    char *uu = NULL, *up = NULL;
    int rc = parse_url(m->c->url, &m->host, &m->port, &m->tls, &uu, &up, errstr, errstr_size);
    if (rc)
        goto fail;
    m->user = m->c->username ? strdup(m->c->username) : uu;
    m->pass = m->c->password ? strdup(m->c->password) : up;
    if (m->c->username)
        free(uu);
    if (m->c->password)
        free(up);
    if (m->tls) {
        m->cafile = pem_path(m, m->c->ca_cert_file, m->c->ca_cert, "ca", errstr, errstr_size);
        m->certfile =
            pem_path(m, m->c->client_cert_file, m->c->client_cert, "cert", errstr, errstr_size);
        m->keyfile =
            pem_path(m, m->c->client_key_file, m->c->client_key, "key", errstr, errstr_size);
    }
    if (m->wakefd < 0) {
        rc = ofe_err(errstr, errstr_size, OFE_EIO, "eventfd: %s", strerror(errno));
        goto fail;
    }
    if (pthread_create(&m->thr, NULL, mqtt_run, m) != 0) {
        rc = ofe_err(errstr, errstr_size, OFE_ENOMEM, "cannot start a thread");
        goto fail;
    }
    m->thr_started = true;
    OFE_INFO(ES_COMPONENT, s->name, "mqtt: topic %s at QoS %lld on %s as '%s' (MQTT %s)",
             m->c->topic, (long long)m->c->qos, m->c->url, m->c->consumer_id,
             m->version == MQTT_PROTOCOL_V5 ? "5" : "3.1.1");
    *ctx = m;
    return 0;
fail:
    mqtt_destroy(m);
    return rc ? rc : OFE_EINVAL;
}

static void mqtt_stop(void *ctx)
{
    struct mqtt_src *m = ctx;
    pthread_mutex_lock(&m->lock);
    m->stopping = true;
    pthread_mutex_unlock(&m->lock);
    wake(m);
}

static void mqtt_destroy(void *ctx)
{
    struct mqtt_src *m = ctx;
    atomic_store(&m->quit, true);
    if (m->wakefd >= 0)
        wake(m);
    if (m->thr_started)
        pthread_join(m->thr, NULL);
    if (m->wakefd >= 0)
        close(m->wakefd);
    if (m->tmpdir) {
        const char *names[] = {"ca", "cert", "key"};
        for (int i = 0; i < 3; i++) {
            char p[4200];
            snprintf(p, sizeof(p), "%s/%s.pem", m->tmpdir, names[i]);
            unlink(p);
        }
        rmdir(m->tmpdir);
    }
    free(m->tmpdir);
    free(m->host);
    free(m->user);
    free(m->pass);
    free(m->cafile);
    free(m->certfile);
    free(m->keyfile);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static bool mqtt_ready(void *ctx, char *why, size_t why_size)
{
    struct mqtt_src *m = ctx;
    pthread_mutex_lock(&m->lock);
    bool ok = m->subscribed;
    if (!ok)
        snprintf(why, why_size, "%s", m->up ? "mqtt: subscribing" : m->why);
    pthread_mutex_unlock(&m->lock);
    return ok;
}

const struct es_kind es_kind_mqtt = {
    .name = "mqtt",
    .kind = OFE_CONFIG_SOURCE_MQTT,
    .redrive = true,
    .default_inflight = 256,
    .check = mqtt_check,
    .start = mqtt_start,
    .stop = mqtt_stop,
    .destroy = mqtt_destroy,
    .ready = mqtt_ready,
};
