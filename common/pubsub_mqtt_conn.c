/* mqtt backend: one MQTT connection run by one thread.
 *
 * The thread drives libmosquitto itself (poll + mosquitto_loop_read /
 * mosquitto_loop_write / mosquitto_loop_misc) with the client in threaded
 * mode (mosquitto_threaded_set), where libmosquitto only queues outgoing
 * packets and writes them when this loop calls mosquitto_loop_write.
 * Every libmosquitto call on a client happens on its thread; other threads
 * talk to it through the lists below and an eventfd.
 *
 * Publisher: publishes wait in q (not yet handed to libmosquitto) while
 * disconnected, move to f (handed over, keyed by message id) when sent,
 * and complete on the PUBACK (on_publish_v5 with its reason code). A
 * connection that drops puts f back in front of q: the next connection
 * sends them again (a fresh libmosquitto client each time, so nothing
 * stale is resent behind our back). Each publish has a deadline
 * (publish_timeout_ms) after which it fails.
 *
 * Subscriber: libmosquitto queues the PUBACK of a QoS 1 message before it
 * calls on_message. This loop writes nothing while a message delivered on
 * the current connection is unacknowledged (unresolved > 0), so PUBACKs
 * leave only once every message read so far was acked; a crash before
 * that leaves them unacknowledged at the broker, which sends them again
 * to the same session. Reading stops while `window` messages are
 * unresolved or `window` were read since the last flush. A message given
 * up without an ack (abandon) poisons the connection: its PUBACK must never
 * leave, so the connection is dropped without writing and the broker
 * redelivers (with the acked ones of that connection: duplicates). */
#include <errno.h>
#include <mqtt_protocol.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ofe/err.h"
#include "ofe/log.h"
#include "pubsub_mqtt_int.h"

/* How many connection losses a publish may live through while handed
 * over before it fails (a broker that drops the connection each time it
 * gets one particular message: too large for MQTT 3.1.1, refused...). */
#define MAX_DROPS_IN_FLIGHT 3

/* Publishes in flight per connection at most. */
#define SEND_WINDOW 256

/* Mosquitto 2.0.11 does not put the shared subscriptions of persisted
 * sessions back after a restart until a member reconnects: until then a
 * publish gets PUBACK 0x10 "no matching subscribers" and is dropped. For
 * GRACE_MS after each (re)connect of the publisher such a publish is sent
 * again every RETRY_MS (within its publish timeout) instead of completing,
 * so a group whose member comes back meanwhile still gets it. */
#define GRACE_MS 10000
#define RETRY_MS 250

uint64_t mqtt__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void deadline_ts(struct timespec *ts, uint64_t at_ns)
{
    ts->tv_sec = (time_t)(at_ns / 1000000000u);
    ts->tv_nsec = (long)(at_ns % 1000000000u);
}

void mqtt__pub_free(struct mqtt_pub *mp)
{
    if (!mp)
        return;
    free(mp->topic);
    free(mp->own_payload);
    mosquitto_property_free_all(&mp->props);
    free(mp);
}

/* Completes a publish (never with c->lock held: the callback may publish). */
static void pub_complete(struct mqtt_pub *mp, int err, const char *msg)
{
    ofe_pub__done(mp->p, err, msg);
    mqtt__pub_free(mp);
}

static void fail_list(struct mqtt_pub *list, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail_list(struct mqtt_pub *list, int err, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    while (list) {
        struct mqtt_pub *n = list->next;
        char full[800];
        snprintf(full, sizeof(full), "mqtt: publish to '%s': %s", list->topic, msg);
        pub_complete(list, err, full);
        list = n;
    }
}

void mqtt__conn_wake(struct mqtt_conn *c)
{
    uint64_t one = 1;
    if (write(c->wakefd, &one, sizeof(one)) < 0) {
        /* the counter cannot overflow in practice; nothing to do */
    }
}

struct mqtt_conn *mqtt__conn_new(struct mqtt_opts *o, enum mqtt_role role, const char *client_id)
{
    struct mqtt_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->client_id = strdup(client_id);
    c->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (role == MQTT_PUB)
        c->bymid = calloc(65536, sizeof(*c->bymid));
    if (!c->client_id || c->wakefd < 0 || (role == MQTT_PUB && !c->bymid)) {
        if (c->wakefd >= 0)
            close(c->wakefd);
        free(c->client_id);
        free(c->bymid);
        free(c);
        return NULL;
    }
    c->o = mqtt__opts_ref(o);
    c->role = role;
    c->window = 64;
    c->publish_timeout_ms = 30000;
    pthread_mutex_init(&c->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cond, &ca);
    pthread_condattr_destroy(&ca);
    snprintf(c->why, sizeof(c->why), "connecting to %s", o->url);
    return c;
}

static void conn_free(struct mqtt_conn *c)
{
    for (int i = 0; i < c->nfilters; i++)
        free(c->filters[i]);
    free(c->filters);
    free(c->client_id);
    free(c->bymid);
    close(c->wakefd);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
    mqtt__opts_unref(c->o);
    free(c);
}

void mqtt__conn_discard(struct mqtt_conn *c)
{
    if (c)
        conn_free(c);
}

/* ---- libmosquitto callbacks (all on the loop thread) -------------------- */

static void on_log(struct mosquitto *m, void *obj, int level, const char *str)
{
    struct mqtt_conn *c = obj;
    if (level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING))
        snprintf(c->last_log, sizeof(c->last_log), "%s", str);
}

static void on_connect(struct mosquitto *m, void *obj, int rc, int flags,
                       const mosquitto_property *props)
{
    struct mqtt_conn *c = obj;
    struct mqtt_opts *o = c->o;
    if (rc != 0) {
        const char *r = o->version == MQTT_PROTOCOL_V5 ? mosquitto_reason_string(rc)
                                                       : mosquitto_connack_string(rc);
        pthread_mutex_lock(&c->lock);
        snprintf(c->why, sizeof(c->why), "%s refused the connection of client '%s': %s (%d)",
                 o->url, c->client_id, r, rc);
        c->tried = true;
        pthread_cond_broadcast(&c->cond);
        pthread_mutex_unlock(&c->lock);
        c->refused = true;
        c->drop = true;
        return;
    }
    uint32_t maxp = 0;
    uint16_t recv_max = 0;
    if (props) {
        mosquitto_property_read_int32(props, MQTT_PROP_MAXIMUM_PACKET_SIZE, &maxp, false);
        mosquitto_property_read_int16(props, MQTT_PROP_RECEIVE_MAXIMUM, &recv_max, false);
    }
    pthread_mutex_lock(&c->lock);
    /* Hand libmosquitto no more than the broker takes in flight, and at
     * most SEND_WINDOW: libmosquitto walks its whole outgoing list on
     * every PUBACK. */
    c->send_cap = recv_max ? recv_max : SEND_WINDOW;
    if (c->send_cap > SEND_WINDOW)
        c->send_cap = SEND_WINDOW;
    bool again = c->ever_up;
    c->up = true;
    c->ever_up = true;
    c->tried = true;
    c->why[0] = '\0';
    c->broker_max_packet = maxp;
    c->grace_until_ns = mqtt__now_ns() + (uint64_t)GRACE_MS * 1000000u;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    unsigned attempts = c->attempt;
    c->attempt = 0;
    if (again || attempts > 0)
        OFE_INFO(o->component, "mqtt", "%s to %s as '%s' (%s)", again ? "reconnected" : "connected",
                 o->url, c->client_id, (flags & 1) ? "session resumed" : "new session");
    else
        OFE_DEBUG(o->component, "mqtt", "connected to %s as '%s' (%s)", o->url, c->client_id,
                  (flags & 1) ? "session resumed" : "new session");
    if (c->role == MQTT_SUB) {
        /* Subscribing again on a resumed session is harmless and covers a
         * broker that lost its state. */
        int src =
            mosquitto_subscribe_multiple(m, NULL, c->nfilters, c->filters, c->sub_qos, 0, NULL);
        if (src != MOSQ_ERR_SUCCESS) {
            pthread_mutex_lock(&c->lock);
            snprintf(c->why, sizeof(c->why), "cannot subscribe to %s: %s", c->filters[0],
                     mosquitto_strerror(src));
            pthread_mutex_unlock(&c->lock);
            c->refused = true;
            c->drop = true;
        }
    }
}

static void on_disconnect(struct mosquitto *m, void *obj, int rc, const mosquitto_property *props)
{
    struct mqtt_conn *c = obj;
    if (rc >= 0x80) /* an MQTT 5 DISCONNECT from the broker, with its reason */
        c->server_reason = rc;
}

static void on_subscribe(struct mosquitto *m, void *obj, int mid, int n, const int *granted,
                         const mosquitto_property *props)
{
    struct mqtt_conn *c = obj;
    for (int i = 0; i < n; i++) {
        if (granted[i] >= 0x80) {
            pthread_mutex_lock(&c->lock);
            snprintf(c->why, sizeof(c->why), "the broker refused the subscription %s: %s (0x%02x)",
                     i < c->nfilters ? c->filters[i] : "?", mosquitto_reason_string(granted[i]),
                     granted[i]);
            c->tried = true;
            pthread_cond_broadcast(&c->cond);
            pthread_mutex_unlock(&c->lock);
            c->refused = true;
            c->drop = true;
            return;
        }
    }
    pthread_mutex_lock(&c->lock);
    c->subscribed = true;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

static void on_publish(struct mosquitto *m, void *obj, int mid, int rc,
                       const mosquitto_property *props)
{
    struct mqtt_conn *c = obj;
    if (c->role != MQTT_PUB)
        return;
    uint64_t now = mqtt__now_ns();
    pthread_mutex_lock(&c->lock);
    struct mqtt_pub *mp = c->bymid[mid & 0xffff];
    bool again = false;
    if (mp) {
        c->bymid[mid & 0xffff] = NULL;
        struct mqtt_pub *prev = NULL;
        for (struct mqtt_pub *x = c->f_head; x; prev = x, x = x->next)
            if (x == mp) {
                if (prev)
                    prev->next = x->next;
                else
                    c->f_head = x->next;
                if (c->f_tail == x)
                    c->f_tail = prev;
                c->nf--;
                break;
            }
        mp->next = NULL;
        again = rc == MQTT_RC_NO_MATCHING_SUBSCRIBERS && now < c->grace_until_ns &&
                mp->deadline_ns > now + 2ull * RETRY_MS * 1000000u;
        if (again) {
            mp->not_before_ns = now + (uint64_t)RETRY_MS * 1000000u;
            if (c->r_tail)
                c->r_tail->next = mp;
            else
                c->r_head = mp;
            c->r_tail = mp;
        } else {
            c->npending--;
        }
        pthread_cond_broadcast(&c->cond);
    }
    pthread_mutex_unlock(&c->lock);
    if (!mp || again)
        return; /* timed out or failed already; or to be sent again */
    if (rc < 0x80) {
        pub_complete(mp, 0, NULL); /* 0x10 "no matching subscribers" is a success */
        return;
    }
    char *reason = NULL;
    if (props)
        mosquitto_property_read_string(props, MQTT_PROP_REASON_STRING, &reason, false);
    char msg[700];
    snprintf(msg, sizeof(msg), "mqtt: the broker refused the publish to '%s': %s (0x%02x)%s%s",
             mp->topic, mosquitto_reason_string(rc), rc, reason ? ": " : "", reason ? reason : "");
    free(reason);
    int err = rc == MQTT_RC_NOT_AUTHORIZED ? OFE_EAUTH
              : rc == MQTT_RC_PACKET_TOO_LARGE || rc == MQTT_RC_TOPIC_NAME_INVALID ||
                      rc == MQTT_RC_PAYLOAD_FORMAT_INVALID
                  ? OFE_EINVAL
                  : OFE_EREMOTE;
    pub_complete(mp, err, msg);
}

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
    struct mqtt_conn *c = obj;
    if (c->role == MQTT_SUB)
        mqtt__deliver(c, msg, props);
}

/* ---- connecting --------------------------------------------------------- */

static void rc_text(struct mqtt_conn *c, int rc, int err, char *buf, size_t size)
{
    if (rc == MOSQ_ERR_ERRNO)
        snprintf(buf, size, "%s", strerror(err));
    else if (rc == MOSQ_ERR_KEEPALIVE)
        snprintf(buf, size, "no answer within the keep-alive interval (%d s)%s", c->o->keepalive_s,
                 c->role == MQTT_SUB ? "; a message left unacknowledged that long stalls the "
                                       "connection (its PUBACK and PINGREQ wait)"
                                     : "");
    else if (rc == MOSQ_ERR_EAI || rc == MOSQ_ERR_LOOKUP)
        snprintf(buf, size, "cannot resolve host '%s'", c->o->host);
    else if ((rc == MOSQ_ERR_TLS || rc == MOSQ_ERR_TLS_HANDSHAKE || rc == MOSQ_ERR_CONN_LOST ||
              rc == MOSQ_ERR_PROTOCOL) &&
             c->last_log[0])
        snprintf(buf, size, "%s (%s)", mosquitto_strerror(rc), c->last_log);
    else
        snprintf(buf, size, "%s", mosquitto_strerror(rc));
}

/* Applies the options to a new client. Returns 0 or a MOSQ_ERR_*. */
static int setup_client(struct mqtt_conn *c, struct mosquitto *m)
{
    struct mqtt_opts *o = c->o;
    mosquitto_threaded_set(m, true);
    int rc = mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, o->version);
    mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1);
    if (!rc && o->version == MQTT_PROTOCOL_V5) {
        unsigned w = c->role == MQTT_SUB ? c->window : 65535;
        rc = mosquitto_int_option(m, MOSQ_OPT_RECEIVE_MAXIMUM, (int)(w > 65535 ? 65535 : w));
    }
    if (!rc)
        rc = mosquitto_int_option(m, MOSQ_OPT_SEND_MAXIMUM, 65535);
    if (!rc && o->username)
        rc = mosquitto_username_pw_set(m, o->username, o->password);
    if (!rc && o->tls) {
        /* Without caCert: the operating system's CA certificates. */
        rc = mosquitto_tls_set(m, o->cafile, o->cafile ? NULL : "/etc/ssl/certs", o->certfile,
                               o->keyfile, NULL);
        if (!rc && !o->cafile)
            rc = mosquitto_int_option(m, MOSQ_OPT_TLS_USE_OS_CERTS, 1);
        if (!rc)
            rc = mosquitto_tls_opts_set(m, 1, NULL, NULL);
    }
    mosquitto_log_callback_set(m, on_log);
    mosquitto_connect_v5_callback_set(m, on_connect);
    mosquitto_disconnect_v5_callback_set(m, on_disconnect);
    mosquitto_subscribe_v5_callback_set(m, on_subscribe);
    mosquitto_publish_v5_callback_set(m, on_publish);
    mosquitto_message_v5_callback_set(m, on_message);
    return rc;
}

int mqtt__probe_options(struct mqtt_opts *o, char *errstr, size_t errstr_size)
{
    struct mqtt_conn probe = {.o = o, .role = MQTT_PUB, .window = 64};
    struct mosquitto *m = mosquitto_new(NULL, true, &probe);
    if (!m)
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "mqtt: cannot create a client");
    int rc = setup_client(&probe, m);
    mosquitto_destroy(m);
    if (rc == MOSQ_ERR_SUCCESS)
        return 0;
    if (o->tls)
        return ofe_err(errstr, errstr_size, OFE_EINVAL,
                       "mqtt: TLS options refused by libmosquitto: %s (caCert %s, clientCert %s, "
                       "clientKey %s)",
                       mosquitto_strerror(rc), o->cafile ? o->cafile : "-",
                       o->certfile ? o->certfile : "-", o->keyfile ? o->keyfile : "-");
    return ofe_err(errstr, errstr_size, OFE_EINVAL, "mqtt: options refused by libmosquitto: %s",
                   mosquitto_strerror(rc));
}

static void set_why(struct mqtt_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_why(struct mqtt_conn *c, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&c->lock);
    va_start(ap, fmt);
    vsnprintf(c->why, sizeof(c->why), fmt, ap);
    va_end(ap);
    c->tried = true;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

/* Logs a failure to connect: the first one and every change of reason at
 * warning level, repeats at debug level. */
static void log_failure(struct mqtt_conn *c, bool was_up, const char *what)
{
    static __thread char last[384];
    if (was_up)
        OFE_WARN(c->o->component, "mqtt", "connection of '%s' to %s lost: %s; reconnecting",
                 c->client_id, c->o->url, what);
    else if (c->attempt == 0 || strcmp(last, what) != 0)
        OFE_WARN(c->o->component, "mqtt", "'%s': %s; retrying with backoff", c->client_id, what);
    else
        OFE_DEBUG(c->o->component, "mqtt", "'%s': %s (attempt %u)", c->client_id, what,
                  c->attempt + 1);
    snprintf(last, sizeof(last), "%s", what);
}

static int conn_connect(struct mqtt_conn *c)
{
    struct mqtt_opts *o = c->o;
    pthread_mutex_lock(&c->lock);
    c->epoch++;
    c->unresolved = 0;
    c->poisoned = false;
    c->up = false;
    c->subscribed = false;
    pthread_mutex_unlock(&c->lock);
    c->since_flush = 0;
    c->drop = c->refused = false;
    c->server_reason = 0;
    c->last_log[0] = '\0';
    struct mosquitto *m = mosquitto_new(c->client_id, c->clean_start, c);
    if (!m) {
        set_why(c, "cannot create a libmosquitto client: %s", strerror(errno));
        log_failure(c, false, c->why);
        return -1;
    }
    int rc = setup_client(c, m);
    mosquitto_property *props = NULL;
    if (!rc && o->version == MQTT_PROTOCOL_V5 && c->session_expiry_s)
        rc = mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
                                          c->session_expiry_s);
    int err = 0;
    if (!rc) {
        errno = 0;
        rc = mosquitto_connect_bind_v5(m, o->host, o->port, o->keepalive_s, NULL, props);
        err = errno;
    }
    mosquitto_property_free_all(&props);
    if (rc != MOSQ_ERR_SUCCESS) {
        char t[300];
        rc_text(c, rc, err, t, sizeof(t));
        set_why(c, "cannot connect to %s: %s", o->url, t);
        mosquitto_destroy(m);
        char what[400];
        pthread_mutex_lock(&c->lock);
        snprintf(what, sizeof(what), "%s", c->why);
        pthread_mutex_unlock(&c->lock);
        log_failure(c, false, what);
        return -1;
    }
    c->mosq = m;
    return 0;
}

/* The connection is gone (or must go): frees the client, puts handed-over
 * publishes back in front of the queue, records why. */
static void conn_lost(struct mqtt_conn *c, int rc, int err, const char *what)
{
    struct mqtt_opts *o = c->o;
    char detail[400];
    if (what)
        snprintf(detail, sizeof(detail), "%s", what);
    else if (c->server_reason == MQTT_RC_SESSION_TAKEN_OVER)
        snprintf(detail, sizeof(detail),
                 "another client connected with the same client id '%s' and took the session "
                 "over: every member needs its own id (consumerID, or the consumer name)",
                 c->client_id);
    else if (c->server_reason)
        snprintf(detail, sizeof(detail), "the broker closed the connection: %s (0x%02x)",
                 mosquitto_reason_string(c->server_reason), c->server_reason);
    else
        rc_text(c, rc, err, detail, sizeof(detail));
    struct mqtt_pub *failed = NULL;
    pthread_mutex_lock(&c->lock);
    bool was_up = c->up;
    if (!c->refused)
        snprintf(c->why, sizeof(c->why), "%s %s: %.250s",
                 was_up ? "lost the connection to" : "cannot connect to", o->url, detail);
    snprintf(detail, sizeof(detail), "%s", c->why);
    c->up = false;
    c->subscribed = false;
    c->tried = true;
    if (c->role == MQTT_PUB && c->f_head) {
        /* Send them again on the next connection, in order; give up on the
         * ones that lived through too many drops. */
        struct mqtt_pub *keep = NULL, *keep_tail = NULL, **kt = &keep, **ft = &failed;
        for (struct mqtt_pub *x = c->f_head, *n; x; x = n) {
            n = x->next;
            c->bymid[x->mid & 0xffff] = NULL;
            x->next = NULL;
            if (++x->drops >= MAX_DROPS_IN_FLIGHT) {
                *ft = x;
                ft = &x->next;
                c->npending--;
            } else {
                *kt = x;
                kt = &x->next;
                keep_tail = x;
            }
        }
        if (keep) {
            keep_tail->next = c->q_head;
            if (!c->q_head)
                c->q_tail = keep_tail;
            c->q_head = keep;
        }
        c->f_head = c->f_tail = NULL;
        c->nf = 0;
    }
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    log_failure(c, was_up, detail);
    if (c->mosq) {
        mosquitto_destroy(c->mosq);
        c->mosq = NULL;
    }
    c->attempt++;
    if (was_up)
        ofe_counter_inc(c->m_reconnects);
    if (failed)
        fail_list(failed, OFE_EREMOTE,
                  "the connection to %s dropped %d times while it was in flight (%s); the "
                  "broker may refuse this message (too large for its limit, not authorized)",
                  o->url, MAX_DROPS_IN_FLIGHT, detail);
}

/* ---- the loop ----------------------------------------------------------- */

/* Hands queued publishes to libmosquitto (connected only). */
static void hand_over(struct mqtt_conn *c)
{
    uint64_t now = mqtt__now_ns();
    pthread_mutex_lock(&c->lock);
    struct mqtt_pub *list = NULL, **lt = &list;
    unsigned room = c->up && c->nf < c->send_cap ? c->send_cap - c->nf : 0;
    while (room && c->r_head && c->r_head->not_before_ns <= now) {
        struct mqtt_pub *x = c->r_head;
        c->r_head = x->next;
        if (!c->r_head)
            c->r_tail = NULL;
        x->next = NULL;
        *lt = x;
        lt = &x->next;
        room--;
    }
    while (room && c->q_head) {
        struct mqtt_pub *x = c->q_head;
        c->q_head = x->next;
        x->next = NULL;
        *lt = x;
        lt = &x->next;
        room--;
    }
    if (!c->q_head)
        c->q_tail = NULL;
    pthread_mutex_unlock(&c->lock);
    while (list) {
        struct mqtt_pub *mp = list;
        list = mp->next;
        mp->next = NULL;
        int mid = 0;
        int rc = mosquitto_publish_v5(c->mosq, &mid, mp->topic, mp->len, mp->payload, c->o->qos,
                                      c->o->retain, mp->props);
        if (rc == MOSQ_ERR_SUCCESS || rc == MOSQ_ERR_NO_CONN) {
            /* NO_CONN: queued by libmosquitto all the same (the connection
             * just dropped); the next round notices. */
            pthread_mutex_lock(&c->lock);
            mp->mid = mid;
            c->bymid[mid & 0xffff] = mp;
            if (c->f_tail)
                c->f_tail->next = mp;
            else
                c->f_head = mp;
            c->f_tail = mp;
            c->nf++;
            pthread_mutex_unlock(&c->lock);
            continue;
        }
        pthread_mutex_lock(&c->lock);
        c->npending--;
        uint32_t maxp = c->broker_max_packet;
        pthread_cond_broadcast(&c->cond);
        pthread_mutex_unlock(&c->lock);
        char msg[600];
        int err = OFE_EINVAL;
        if (rc == MOSQ_ERR_OVERSIZE_PACKET)
            snprintf(msg, sizeof(msg),
                     "mqtt: publish to '%s': the event (%d bytes of payload) is over the broker's "
                     "maximum packet size of %u bytes",
                     mp->topic, mp->len, maxp);
        else if (rc == MOSQ_ERR_QOS_NOT_SUPPORTED || rc == MOSQ_ERR_RETAIN_NOT_SUPPORTED)
            snprintf(msg, sizeof(msg), "mqtt: publish to '%s': the broker does not support %s",
                     mp->topic, rc == MOSQ_ERR_QOS_NOT_SUPPORTED ? "this QoS" : "retain");
        else {
            snprintf(msg, sizeof(msg), "mqtt: publish to '%s': %s", mp->topic,
                     mosquitto_strerror(rc));
            err = rc == MOSQ_ERR_NOMEM ? OFE_ENOMEM : OFE_EINVAL;
        }
        pub_complete(mp, err, msg);
    }
}

/* Fails publishes whose deadline passed. Returns ms until the next
 * deadline (capped at cap_ms). */
static int expire_pubs(struct mqtt_conn *c, int cap_ms)
{
    uint64_t now = mqtt__now_ns();
    struct mqtt_pub *old = NULL, **ot = &old;
    pthread_mutex_lock(&c->lock);
    while (c->q_head && c->q_head->deadline_ns <= now) {
        struct mqtt_pub *x = c->q_head;
        c->q_head = x->next;
        if (!c->q_head)
            c->q_tail = NULL;
        x->next = NULL;
        *ot = x;
        ot = &x->next;
        c->npending--;
    }
    while (c->f_head && c->f_head->deadline_ns <= now) {
        struct mqtt_pub *x = c->f_head;
        c->f_head = x->next;
        if (!c->f_head)
            c->f_tail = NULL;
        if (c->bymid[x->mid & 0xffff] == x)
            c->bymid[x->mid & 0xffff] = NULL;
        c->nf--;
        x->next = NULL;
        *ot = x;
        ot = &x->next;
        c->npending--;
    }
    for (struct mqtt_pub **pp = &c->r_head, *prev = NULL; *pp;) {
        struct mqtt_pub *x = *pp;
        if (x->deadline_ns > now) {
            prev = x;
            pp = &x->next;
            continue;
        }
        *pp = x->next;
        if (c->r_tail == x)
            c->r_tail = prev;
        x->next = NULL;
        *ot = x;
        ot = &x->next;
        c->npending--;
    }
    uint64_t next = UINT64_MAX;
    if (c->r_head)
        next = c->r_head->not_before_ns;
    if (c->q_head && c->q_head->deadline_ns < next)
        next = c->q_head->deadline_ns;
    if (c->f_head && c->f_head->deadline_ns < next)
        next = c->f_head->deadline_ns;
    bool up = c->up;
    char why[400];
    snprintf(why, sizeof(why), "%s", c->why);
    if (old)
        pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    if (old) {
        if (up)
            fail_list(old, OFE_ETIMEDOUT, "not confirmed by the broker at %s within %u ms",
                      c->o->url, c->publish_timeout_ms);
        else
            fail_list(old, OFE_ECONN, "no connection to the broker within %u ms: %s",
                      c->publish_timeout_ms, why);
    }
    if (next == UINT64_MAX)
        return cap_ms;
    uint64_t ms = next > now ? (next - now + 999999) / 1000000 : 0;
    return ms < (uint64_t)cap_ms ? (int)ms : cap_ms;
}

/* Whether the subscriber may read and write now. */
static void gate(struct mqtt_conn *c, bool *can_read, bool *can_write)
{
    if (c->role == MQTT_PUB) {
        *can_read = *can_write = true;
        return;
    }
    pthread_mutex_lock(&c->lock);
    unsigned un = c->unresolved;
    bool poison = c->poisoned, stop = c->stopping;
    pthread_mutex_unlock(&c->lock);
    *can_write = un == 0 && !poison;
    *can_read = !stop && !poison && un < c->window && c->since_flush < c->window &&
                ofe_sub__capacity(c->sub) > 0;
}

/* Reads what is there (up to a batch), delivering messages. Returns a
 * MOSQ_ERR_* (0 when fine). */
static int read_some(struct mqtt_conn *c)
{
    pthread_mutex_lock(&c->lock);
    if (c->stopping) {
        pthread_mutex_unlock(&c->lock);
        return 0;
    }
    c->reading = true;
    pthread_mutex_unlock(&c->lock);
    int rc = mosquitto_loop_read(c->mosq, 1);
    for (int i = 0; rc == MOSQ_ERR_SUCCESS && i < 63 && !c->drop; i++) {
        bool r, w;
        gate(c, &r, &w);
        struct pollfd pf = {mosquitto_socket(c->mosq), POLLIN, 0};
        if (!r || poll(&pf, 1, 0) <= 0)
            break;
        rc = mosquitto_loop_read(c->mosq, 1);
    }
    pthread_mutex_lock(&c->lock);
    c->reading = false;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    return rc;
}

static void conn_round(struct mqtt_conn *c)
{
    struct mosquitto *m = c->mosq;
    bool pub = c->role == MQTT_PUB, can_read, can_write;
    if (pub)
        hand_over(c);
    gate(c, &can_read, &can_write);
    int timeout = pub ? expire_pubs(c, 1000) : 1000;
    if (!pub) {
        pthread_mutex_lock(&c->lock);
        bool drop_now = c->poisoned && c->unresolved == 0 && !c->stopping;
        pthread_mutex_unlock(&c->lock);
        if (drop_now) {
            /* A message was given back: only a new connection makes the
             * broker send it again, and this one must write nothing. */
            shutdown(mosquitto_socket(m), SHUT_RDWR);
            conn_lost(c, MOSQ_ERR_CONN_LOST, 0,
                      "dropped on purpose: a message was given back unacknowledged, only a new "
                      "connection makes the broker send it again");
            return;
        }
    }
    struct pollfd pf[2] = {
        {mosquitto_socket(m),
         (short)((can_read ? POLLIN : 0) | (can_write && mosquitto_want_write(m) ? POLLOUT : 0)),
         0},
        {c->wakefd, POLLIN, 0},
    };
    if (poll(pf, 2, timeout) < 0 && errno != EINTR) {
        conn_lost(c, MOSQ_ERR_ERRNO, errno, NULL);
        return;
    }
    if (pf[1].revents & POLLIN) {
        uint64_t v;
        if (read(c->wakefd, &v, sizeof(v)) < 0) {
            /* EAGAIN: another round drained it */
        }
        pthread_mutex_lock(&c->lock);
        c->wake_pending = false;
        pthread_mutex_unlock(&c->lock);
    }
    int rc = MOSQ_ERR_SUCCESS;
    if (pf[0].revents & POLLIN)
        rc = read_some(c);
    else if (pf[0].revents & (POLLHUP | POLLERR))
        rc = can_read ? read_some(c) : MOSQ_ERR_CONN_LOST;
    if (rc != MOSQ_ERR_SUCCESS || c->drop) {
        conn_lost(c, rc ? rc : MOSQ_ERR_CONN_LOST, errno, NULL);
        return;
    }
    if (pub)
        hand_over(c);
    gate(c, &can_read, &can_write);
    if (can_write && mosquitto_want_write(m)) {
        rc = mosquitto_loop_write(m, 1);
        if (rc != MOSQ_ERR_SUCCESS) {
            conn_lost(c, rc, errno, NULL);
            return;
        }
    }
    if (can_write)
        c->since_flush = 0;
    rc = mosquitto_loop_misc(m);
    if (rc != MOSQ_ERR_SUCCESS) {
        conn_lost(c, rc == MOSQ_ERR_NO_CONN ? MOSQ_ERR_KEEPALIVE : rc, errno, NULL);
        return;
    }
}

/* Waits ms (or until woken to quit), expiring publishes meanwhile. */
static void backoff_wait(struct mqtt_conn *c, uint32_t ms)
{
    uint64_t until = mqtt__now_ns() + (uint64_t)ms * 1000000u;
    for (;;) {
        pthread_mutex_lock(&c->lock);
        bool quit = c->quit;
        pthread_mutex_unlock(&c->lock);
        uint64_t now = mqtt__now_ns();
        if (quit || now >= until)
            return;
        int left = (int)((until - now + 999999) / 1000000);
        int t = c->role == MQTT_PUB ? expire_pubs(c, left) : left;
        struct pollfd pf = {c->wakefd, POLLIN, 0};
        if (poll(&pf, 1, t > 0 ? t : 1) > 0) {
            uint64_t v;
            if (read(c->wakefd, &v, sizeof(v)) < 0) {
                /* drained elsewhere */
            }
            pthread_mutex_lock(&c->lock);
            c->wake_pending = false;
            pthread_mutex_unlock(&c->lock);
        }
    }
}

/* Writes what is queued, for at most ms. */
static void flush_for(struct mqtt_conn *c, int ms)
{
    uint64_t until = mqtt__now_ns() + (uint64_t)ms * 1000000u;
    while (c->mosq && mosquitto_want_write(c->mosq) && mqtt__now_ns() < until) {
        struct pollfd pf = {mosquitto_socket(c->mosq), POLLOUT, 0};
        if (poll(&pf, 1, 50) < 0 && errno != EINTR)
            return;
        if (mosquitto_loop_write(c->mosq, 1) != MOSQ_ERR_SUCCESS)
            return;
    }
}

/* Takes every publish out of the lists (lock held). */
static struct mqtt_pub *take_all(struct mqtt_conn *c)
{
    struct mqtt_pub *list = NULL, **lt = &list;
    struct mqtt_pub *heads[3] = {c->f_head, c->r_head, c->q_head};
    for (int i = 0; i < 3; i++)
        for (struct mqtt_pub *x = heads[i], *n; x; x = n) {
            n = x->next;
            x->next = NULL;
            *lt = x;
            lt = &x->next;
        }
    c->f_head = c->f_tail = c->r_head = c->r_tail = c->q_head = c->q_tail = NULL;
    return list;
}

static void conn_finish(struct mqtt_conn *c)
{
    if (c->mosq) {
        pthread_mutex_lock(&c->lock);
        bool clean = c->role == MQTT_PUB || (!c->poisoned && c->unresolved == 0);
        pthread_mutex_unlock(&c->lock);
        if (clean) {
            /* The session stays on the broker for sessionExpiry. */
            flush_for(c, 1000);
            if (mosquitto_disconnect(c->mosq) == MOSQ_ERR_SUCCESS)
                flush_for(c, 1000);
        } else {
            /* PUBACKs of unacked messages are queued: leave without
             * writing, so the broker keeps and redelivers them. */
            shutdown(mosquitto_socket(c->mosq), SHUT_RDWR);
        }
        mosquitto_destroy(c->mosq);
        c->mosq = NULL;
    }
    if (c->role == MQTT_PUB) {
        pthread_mutex_lock(&c->lock);
        struct mqtt_pub *list = take_all(c);
        memset(c->bymid, 0, 65536 * sizeof(*c->bymid));
        c->npending = 0;
        c->nf = 0;
        c->closed = true;
        pthread_cond_broadcast(&c->cond);
        pthread_mutex_unlock(&c->lock);
        fail_list(list, OFE_ECLOSED, "the bus was closed before the broker confirmed it");
    }
}

static void *conn_run(void *arg)
{
    struct mqtt_conn *c = arg;
    for (;;) {
        pthread_mutex_lock(&c->lock);
        bool quit = c->quit;
        pthread_mutex_unlock(&c->lock);
        if (quit)
            break;
        if (!c->mosq) {
            if (c->attempt > 0) {
                uint32_t ms = ofe_pubsub__backoff_ms(c->attempt - 1, 250, 30000);
                backoff_wait(c, ms < 20 ? 20 : ms);
                pthread_mutex_lock(&c->lock);
                quit = c->quit;
                pthread_mutex_unlock(&c->lock);
                if (quit)
                    break;
            }
            if (conn_connect(c) != 0)
                c->attempt++;
            continue;
        }
        conn_round(c);
    }
    conn_finish(c);
    pthread_mutex_lock(&c->lock);
    c->exited = true;
    bool orphan = c->orphan;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    if (orphan)
        conn_free(c);
    return NULL;
}

int mqtt__conn_start(struct mqtt_conn *c)
{
    if (pthread_create(&c->thr, NULL, conn_run, c) != 0)
        return OFE_ENOMEM;
    return 0;
}

bool mqtt__conn_wait(struct mqtt_conn *c, uint32_t ms)
{
    struct timespec ts;
    deadline_ts(&ts, mqtt__now_ns() + (uint64_t)ms * 1000000u);
    pthread_mutex_lock(&c->lock);
    for (;;) {
        bool ok = c->role == MQTT_SUB ? c->subscribed : c->up;
        if (ok || (c->tried && !c->up) || c->exited) {
            pthread_mutex_unlock(&c->lock);
            return ok;
        }
        if (pthread_cond_timedwait(&c->cond, &c->lock, &ts) != 0) {
            pthread_mutex_unlock(&c->lock);
            return false;
        }
    }
}

void mqtt__conn_stop_reading(struct mqtt_conn *c)
{
    pthread_mutex_lock(&c->lock);
    c->stopping = true;
    pthread_mutex_unlock(&c->lock);
    mqtt__conn_wake(c);
    pthread_mutex_lock(&c->lock);
    while (c->reading)
        pthread_cond_wait(&c->cond, &c->lock);
    pthread_mutex_unlock(&c->lock);
}

int mqtt__conn_publish(struct mqtt_conn *c, struct mqtt_pub *mp)
{
    pthread_mutex_lock(&c->lock);
    if (c->closed) {
        pthread_mutex_unlock(&c->lock);
        return OFE_ECLOSED;
    }
    mp->next = NULL;
    if (c->q_tail)
        c->q_tail->next = mp;
    else
        c->q_head = mp;
    c->q_tail = mp;
    c->npending++;
    bool wake = !c->wake_pending;
    c->wake_pending = true;
    pthread_mutex_unlock(&c->lock);
    if (wake)
        mqtt__conn_wake(c);
    return 0;
}

void mqtt__conn_drain(struct mqtt_conn *c, uint32_t wait_ms)
{
    struct timespec ts;
    deadline_ts(&ts, mqtt__now_ns() + (uint64_t)wait_ms * 1000000u);
    pthread_mutex_lock(&c->lock);
    while (c->npending > 0 && !c->exited)
        if (pthread_cond_timedwait(&c->cond, &c->lock, &ts) != 0)
            break;
    pthread_mutex_unlock(&c->lock);
}

bool mqtt__conn_ready(struct mqtt_conn *c, char *why, size_t why_size)
{
    pthread_mutex_lock(&c->lock);
    bool ok = c->up && (c->role == MQTT_PUB || c->subscribed);
    if (!ok && why && why_size)
        snprintf(why, why_size, "%s", c->why[0] ? c->why : "subscribing");
    pthread_mutex_unlock(&c->lock);
    return ok;
}

void mqtt__conn_destroy(struct mqtt_conn *c, uint32_t wait_ms)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    c->quit = true;
    pthread_mutex_unlock(&c->lock);
    mqtt__conn_wake(c);
    struct timespec ts;
    deadline_ts(&ts, mqtt__now_ns() + (uint64_t)wait_ms * 1000000u);
    pthread_mutex_lock(&c->lock);
    while (!c->exited)
        if (pthread_cond_timedwait(&c->cond, &c->lock, &ts) != 0)
            break;
    if (!c->exited) {
        /* Stuck in a blocking connect (an address that drops packets):
         * the thread frees c when the connect returns. */
        c->orphan = true;
        c->closed = true;
        struct mqtt_pub *list = take_all(c);
        if (c->bymid)
            memset(c->bymid, 0, 65536 * sizeof(*c->bymid));
        c->npending = 0;
        c->nf = 0;
        pthread_mutex_unlock(&c->lock);
        OFE_WARN(c->o->component, "mqtt",
                 "'%s': the connection thread is still in a blocking connect to %s; leaving it "
                 "to finish on its own",
                 c->client_id, c->o->url);
        pthread_detach(c->thr);
        fail_list(list, OFE_ECLOSED, "the bus was closed before the broker confirmed it");
        return;
    }
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->thr, NULL);
    conn_free(c);
}
