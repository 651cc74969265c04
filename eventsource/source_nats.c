/* The nats source (cnats).
 *
 * Core NATS (no jetstream block): a subscription (a queue subscription
 * with queueGroup) whose messages are emitted from cnats's delivery
 * thread. Core NATS has no acknowledgement: at most once. When max
 * in-flight is reached the callback waits for room, so cnats's pending
 * buffer fills and the server drops messages for this slow consumer
 * (counted in ofe_eventsource_nats_dropped_total).
 *
 * JetStream (jetstream block): a durable pull consumer (created with
 * explicit acks, ackWait, maxDeliver, maxAckPending and deliverPolicy when
 * missing; the stream is looked up by subject when not named). A thread
 * fetches batches no larger than the room under max in-flight; a message
 * is acked (natsMsg_Ack) only after every destination accepted its event,
 * so a crash leaves it unacked and the server delivers it again after
 * ackWait, with the same id ({stream}/{stream sequence}).
 *
 * A message carrying a CloudEvent (ce- headers, or a Content-Type of
 * application/cloudevents...) passes through; any other becomes the
 * event docs/sources.md describes. */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <nats/nats.h>
#include <openssl/evp.h>

#include "es.h"
#include "ofe/err.h"
#include "ofe/log.h"

#define FETCH_MAX        256
#define FETCH_TIMEOUT_MS 500
#define NATS_TYPE        "dev.ofevents.nats.message"

struct nats_src {
    struct es_source *s;
    const struct ofe_config_nats_source *c;
    natsOptions *opts;
    natsConnection *nc;
    jsCtx *js;
    natsSubscription *sub;
    pthread_t thr;
    bool thr_started;
    atomic_bool stop;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool connected, bound;
    bool closed; /* the connection's closed callback ran: no callback follows */
    char why[400];
    char *seed;   /* nkey seed for the signature callback */
    char *pubkey; /* its public key */
    struct ofe_counter *m_dropped;
};

/* ---- NKeys: the public key of a seed (NATS nkeys encoding) ---------------- */

static const char B32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

static int b32_decode(const char *s, unsigned char *out, size_t cap)
{
    size_t n = 0;
    unsigned buf = 0, bits = 0;
    for (; *s; s++) {
        const char *p = strchr(B32, toupper((unsigned char)*s));
        if (!p || !*s)
            return -1;
        buf = (buf << 5) | (unsigned)(p - B32);
        bits += 5;
        if (bits >= 8) {
            if (n == cap)
                return -1;
            out[n++] = (unsigned char)(buf >> (bits - 8));
            bits -= 8;
        }
    }
    return (int)n;
}

static void b32_encode(const unsigned char *in, size_t n, char *out)
{
    unsigned buf = 0, bits = 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        buf = (buf << 8) | in[i];
        bits += 8;
        while (bits >= 5) {
            out[k++] = B32[(buf >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits)
        out[k++] = B32[(buf << (5 - bits)) & 31];
    out[k] = '\0';
}

static uint16_t crc16(const unsigned char *p, size_t n)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

/* The user public key ("U...") of an nkey seed ("SU..."). Returns 0 or
 * OFE_EINVAL. */
static int nkey_public(const char *seed, char *out, size_t size)
{
    unsigned char raw[64];
    int n = b32_decode(seed, raw, sizeof(raw));
    if (n != 36)
        return OFE_EINVAL;
    uint16_t want = crc16(raw, 34);
    if ((raw[34] | raw[35] << 8) != want)
        return OFE_EINVAL;
    if ((raw[0] & 0xf8) != (18 << 3))
        return OFE_EINVAL; /* not a seed */
    unsigned char type = (unsigned char)(((raw[0] & 7) << 5) | ((raw[1] & 0xf8) >> 3));
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, raw + 2, 32);
    if (!k)
        return OFE_EINVAL;
    unsigned char pub[35];
    size_t plen = 32;
    pub[0] = type;
    int ok = EVP_PKEY_get_raw_public_key(k, pub + 1, &plen);
    EVP_PKEY_free(k);
    if (!ok || plen != 32)
        return OFE_EINVAL;
    uint16_t c = crc16(pub, 33);
    unsigned char full[35];
    memcpy(full, pub, 33);
    full[33] = (unsigned char)(c & 0xff);
    full[34] = (unsigned char)(c >> 8);
    if (size < 60)
        return OFE_EINVAL;
    b32_encode(full, 35, out);
    return 0;
}

static natsStatus sign_cb(char **custom_err, unsigned char **sig, int *sig_len, const char *nonce,
                          void *closure)
{
    struct nats_src *n = closure;
    return nats_Sign(n->seed, nonce, sig, sig_len);
}

/* ---- options ----------------------------------------------------------------- */

static void trim_copy(char *out, size_t size, const char *s, size_t n)
{
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    snprintf(out, size, "%.*s", (int)n, s);
}

static void on_disconnected(natsConnection *nc, void *closure);
static void on_reconnected(natsConnection *nc, void *closure);
static void on_closed(natsConnection *nc, void *closure);
static void on_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure);

/* Builds the connection options. With d, problems are reported there. */
static int build_opts(struct nats_src *n, const struct ofe_config_nats_source *c, struct es_diag *d,
                      natsOptions **out, char *errstr, size_t errstr_size)
{
    natsOptions *o = NULL;
    if (natsOptions_Create(&o) != NATS_OK)
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    int rc = 0;
    char e[512] = "";
    const char *servers[32];
    char bufs[32][512];
    int ns = 0;
    for (const char *p = c->url ? c->url : ""; *p && ns < 32;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        trim_copy(bufs[ns], sizeof(bufs[ns]), p, len);
        if (bufs[ns][0]) {
            if (strncmp(bufs[ns], "nats://", 7) && strncmp(bufs[ns], "tls://", 6) &&
                strncmp(bufs[ns], "ws://", 5) && strncmp(bufs[ns], "wss://", 6)) {
                snprintf(e, sizeof(e), "\"%s\" is not a nats:// or tls:// URL", bufs[ns]);
                rc = OFE_EINVAL;
                if (d)
                    es_diag_error(d, &c->node, "url", "%s", e);
                break;
            }
            servers[ns] = bufs[ns];
            ns++;
        }
        p = comma ? comma + 1 : p + len;
    }
    if (!rc && ns == 0) {
        snprintf(e, sizeof(e), "no server URL");
        rc = OFE_EINVAL;
        if (d)
            es_diag_error(d, &c->node, "url", "%s", e);
    }
    if (!rc && natsOptions_SetServers(o, servers, ns) != NATS_OK) {
        snprintf(e, sizeof(e), "cnats refuses the server list: %s", nats_GetLastError(NULL));
        rc = OFE_EINVAL;
        if (d)
            es_diag_error(d, &c->node, "url", "%s", e);
    }
    natsOptions_SetMaxReconnect(o, -1);
    natsOptions_SetReconnectWait(o, 250);
    natsOptions_SetReconnectJitter(o, 100, 1000);
    natsOptions_SetTimeout(o, 5000);
    char name[512];
    if (n) {
        snprintf(name, sizeof(name), "ofe-eventsource %s", n->s->name);
        natsOptions_SetName(o, name);
        natsOptions_SetDisconnectedCB(o, on_disconnected, n);
        natsOptions_SetReconnectedCB(o, on_reconnected, n);
        natsOptions_SetClosedCB(o, on_closed, n);
        natsOptions_SetErrorHandler(o, on_error, n);
    }
    if (c->credentials &&
        natsOptions_SetUserCredentialsFromFiles(o, c->credentials, NULL) != NATS_OK) {
        snprintf(e, sizeof(e), "cannot use the credentials file %s: %s", c->credentials,
                 nats_GetLastError(NULL));
        rc = OFE_EINVAL;
        if (d)
            es_diag_error(d, &c->node, "credentials", "%s", e);
    }
    if (c->token)
        natsOptions_SetToken(o, c->token);
    if (c->user)
        natsOptions_SetUserInfo(o, c->user, c->password ? c->password : "");
    if (c->nkey_seed) {
        char pub[64];
        if (nkey_public(c->nkey_seed, pub, sizeof(pub)) != 0) {
            snprintf(e, sizeof(e), "not an NKey user seed (expected SU... as nk -gen user makes)");
            rc = OFE_EINVAL;
            if (d)
                es_diag_error(d, &c->node, "nkeySeed", "%s", e);
        } else if (n) {
            n->seed = strdup(c->nkey_seed);
            n->pubkey = strdup(pub);
            natsOptions_SetNKey(o, n->pubkey, sign_cb, n);
        }
    }
    if (c->tls.node.present) {
        natsOptions_SetSecure(o, true);
        if (c->tls.ca_cert && natsOptions_SetCATrustedCertificates(o, c->tls.ca_cert) != NATS_OK) {
            snprintf(e, sizeof(e), "cannot use caCert: %s", nats_GetLastError(NULL));
            rc = OFE_EINVAL;
            if (d)
                es_diag_error(d, &c->tls.node, "caCert", "%s", e);
        }
        if (c->tls.client_cert && c->tls.client_key &&
            natsOptions_SetCertificatesChain(o, c->tls.client_cert, c->tls.client_key) != NATS_OK) {
            snprintf(e, sizeof(e), "cannot use clientCert/clientKey: %s", nats_GetLastError(NULL));
            rc = OFE_EINVAL;
            if (d)
                es_diag_error(d, &c->tls.node, "clientCert", "%s", e);
        }
        if (c->tls.insecure_skip_verify)
            natsOptions_SkipServerVerification(o, true);
        if (c->tls.server_name)
            natsOptions_SetExpectedHostname(o, c->tls.server_name);
    }
    if (rc) {
        natsOptions_Destroy(o);
        if (!d)
            ofe_err(errstr, errstr_size, rc, "nats: %s", e);
        return rc;
    }
    *out = o;
    return 0;
}

/* ---- connection state --------------------------------------------------------- */

static void set_state(struct nats_src *n, bool connected, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_state(struct nats_src *n, bool connected, const char *fmt, ...)
{
    pthread_mutex_lock(&n->lock);
    n->connected = connected;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(n->why, sizeof(n->why), fmt, ap);
        va_end(ap);
    }
    pthread_cond_broadcast(&n->cond);
    pthread_mutex_unlock(&n->lock);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
    struct nats_src *n = closure;
    set_state(n, false, "nats: disconnected from %s, reconnecting", n->c->url);
    OFE_WARN(ES_COMPONENT, n->s->name, "nats: disconnected from %s; reconnecting", n->c->url);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    struct nats_src *n = closure;
    set_state(n, true, NULL);
    OFE_INFO(ES_COMPONENT, n->s->name, "nats: reconnected");
}

/* cnats runs the callbacks on its own thread, in order, after
 * natsConnection_Close returned: this one is the last, so n may be freed
 * only once it ran. */
static void on_closed(natsConnection *nc, void *closure)
{
    struct nats_src *n = closure;
    pthread_mutex_lock(&n->lock);
    n->closed = true;
    pthread_cond_broadcast(&n->cond);
    pthread_mutex_unlock(&n->lock);
}

static void on_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
    struct nats_src *n = closure;
    if (err == NATS_SLOW_CONSUMER) {
        ofe_counter_inc(n->m_dropped);
        OFE_DEBUG(ES_COMPONENT, n->s->name, "nats: slow consumer: messages dropped");
        return;
    }
    OFE_WARN(ES_COMPONENT, n->s->name, "nats: %s", natsStatus_GetText(err));
}

/* ---- messages ------------------------------------------------------------------ */

static void collect_headers(natsMsg *m, struct ofe_hdrs *h)
{
    const char **keys = NULL;
    int nkeys = 0;
    if (natsMsgHeader_Keys(m, &keys, &nkeys) != NATS_OK)
        return;
    for (int i = 0; i < nkeys; i++) {
        const char **vals = NULL;
        int nv = 0;
        if (natsMsgHeader_Values(m, keys[i], &vals, &nv) == NATS_OK) {
            for (int k = 0; k < nv; k++)
                ofe_hdrs_add_ref(h, keys[i], strlen(keys[i]), vals[k], strlen(vals[k]));
            free((void *)vals);
        }
    }
    free((void *)keys);
}

/* Turns a message into an event. Returns 0 or an error with err. */
static int message_event(struct nats_src *n, natsMsg *m, struct ofe_ce **out, char *err,
                         size_t err_size)
{
    struct ofe_hdrs h;
    ofe_hdrs_init(&h);
    collect_headers(m, &h);
    const char *data = natsMsg_GetData(m);
    size_t len = (size_t)(natsMsg_GetDataLength(m) > 0 ? natsMsg_GetDataLength(m) : 0);
    const struct ofe_hdr *ct = ofe_hdrs_get(&h, "Content-Type");
    int rc;
    if (es_looks_like_ce(&h, "ce-", ct ? ct->value : NULL, ct ? ct->value_len : 0)) {
        rc = ofe_ce_nats_decode(&h, data, len, OFE_CE_BIND_TYPEHINTS, out, err, err_size);
        ofe_hdrs_fini(&h);
        return rc;
    }
    char id[320], ctb[256];
    int64_t ts = -1;
    const struct ofe_hdr *mid = ofe_hdrs_get(&h, "Nats-Msg-Id");
    jsMsgMetaData *meta = NULL;
    if (n->c->jetstream.node.present && natsMsg_GetMetaData(&meta, m) == NATS_OK) {
        snprintf(id, sizeof(id), "%s/%" PRIu64, meta->Stream, meta->Sequence.Stream);
        ts = meta->Timestamp / 1000000;
        jsMsgMetaData_Destroy(meta);
    } else if (mid && mid->value_len > 0 && mid->value_len < sizeof(id)) {
        snprintf(id, sizeof(id), "%.*s", (int)mid->value_len, mid->value);
    } else {
        es_uuid(id, sizeof(id));
    }
    const char *ctp = NULL;
    if (ct && ct->value_len < sizeof(ctb)) {
        snprintf(ctb, sizeof(ctb), "%.*s", (int)ct->value_len, ct->value);
        ctp = ctb;
    }
    rc = es_ce_native(n->s, NATS_TYPE, id, natsMsg_GetSubject(m), ts, ctp,
                      data ? data : (len == 0 ? NULL : ""), len, out, err, err_size);
    ofe_hdrs_fini(&h);
    return rc;
}

/* Core NATS: nothing to acknowledge. */
static void core_done(void *token, enum es_result r, const char *why)
{
    struct nats_src *n = token;
    if (r != ES_FAILED)
        es_count_acked(n->s, 1);
}

static void on_core_msg(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    struct nats_src *n = closure;
    struct es_source *s = n->s;
    char err[400];
    struct ofe_ce *ev = NULL;
    if (message_event(n, m, &ev, err, sizeof(err)) != 0) {
        es_invalid(s, "nats %s: %s", natsMsg_GetSubject(m), err);
        natsMsg_Destroy(m);
        return;
    }
    natsMsg_Destroy(m);
    /* Hold cnats's delivery while there is no room: the server-side
     * buffer fills and drops (at most once, documented). */
    while (es_capacity(s) == 0 && !atomic_load(&n->stop))
        es_wait_capacity(s, 200);
    es_emit(s, ev, ES_EMIT_FORCE, core_done, n);
    ofe_ce_unref(ev);
}

static void js_done(void *token, enum es_result r, const char *why)
{
    natsMsg *m = token;
    if (r == ES_FAILED) {
        /* the source is stopping: give it back at once */
        natsMsg_Nak(m, NULL);
    } else {
        natsMsg_Ack(m, NULL);
    }
    natsMsg_Destroy(m);
}

/* ---- the thread ------------------------------------------------------------------ */

static bool stopped(struct nats_src *n)
{
    return atomic_load(&n->stop);
}

static void nap(struct nats_src *n, int ms)
{
    pthread_mutex_lock(&n->lock);
    if (!atomic_load(&n->stop)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += ms / 1000;
        ts.tv_nsec += (long)(ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&n->cond, &n->lock, &ts);
    }
    pthread_mutex_unlock(&n->lock);
}

static int js_bind(struct nats_src *n, char *err, size_t err_size)
{
    const struct ofe_config_nats_jetstream *j = &n->c->jetstream;
    if (!n->js && natsConnection_JetStream(&n->js, n->nc, NULL) != NATS_OK)
        return ofe_err(err, err_size, OFE_EREMOTE, "cannot make a JetStream context: %s",
                       nats_GetLastError(NULL));
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = j->stream;
    so.ManualAck = true;
    so.Config.Durable = j->durable;
    so.Config.AckPolicy = js_AckExplicit;
    so.Config.FilterSubject = n->c->subject;
    if (j->ack_wait_ms > 0)
        so.Config.AckWait = j->ack_wait_ms * 1000000;
    if (j->max_deliver > 0)
        so.Config.MaxDeliver = j->max_deliver;
    if (j->max_ack_pending > 0)
        so.Config.MaxAckPending = j->max_ack_pending;
    so.Config.DeliverPolicy = j->deliver_policy == OFE_CONFIG_DELIVER_LAST  ? js_DeliverLast
                              : j->deliver_policy == OFE_CONFIG_DELIVER_NEW ? js_DeliverNew
                                                                            : js_DeliverAll;
    jsErrCode jerr = 0;
    natsSubscription *sub = NULL;
    natsStatus st = js_PullSubscribe(&sub, n->js, n->c->subject, j->durable, NULL, &so, &jerr);
    if (st != NATS_OK)
        return ofe_err(err, err_size, OFE_EREMOTE,
                       "cannot bind durable consumer %s on subject %s%s%s: %s (JetStream error "
                       "%d)",
                       j->durable, n->c->subject, j->stream ? " in stream " : "",
                       j->stream ? j->stream : "", nats_GetLastError(NULL), (int)jerr);
    natsSubscription_SetPendingLimits(sub, -1, -1);
    n->sub = sub;
    return 0;
}

static void *nats_run(void *arg)
{
    struct nats_src *n = arg;
    struct es_source *s = n->s;
    unsigned attempt = 0;
    char err[600], last[600] = "";
    bool js = n->c->jetstream.node.present;
    while (!stopped(n)) {
        if (!n->nc) {
            natsConnection *nc = NULL;
            natsStatus st = natsConnection_Connect(&nc, n->opts);
            if (st != NATS_OK) {
                snprintf(err, sizeof(err), "nats: cannot connect to %s: %s", n->c->url,
                         nats_GetLastError(NULL));
                set_state(n, false, "%s", err);
                if (strcmp(err, last))
                    OFE_WARN(ES_COMPONENT, s->name, "%s; retrying with backoff", err);
                snprintf(last, sizeof(last), "%s", err);
                uint32_t ms = 100u << (attempt < 6 ? attempt : 6);
                attempt++;
                nap(n, (int)(ms > 5000 ? 5000 : ms));
                continue;
            }
            n->nc = nc;
            attempt = 0;
            last[0] = '\0';
            set_state(n, true, NULL);
            OFE_INFO(ES_COMPONENT, s->name, "nats: connected to %s", n->c->url);
            if (!js) {
                st = n->c->queue_group
                         ? natsConnection_QueueSubscribe(&n->sub, nc, n->c->subject,
                                                         n->c->queue_group, on_core_msg, n)
                         : natsConnection_Subscribe(&n->sub, nc, n->c->subject, on_core_msg, n);
                if (st != NATS_OK) {
                    OFE_ERROR(ES_COMPONENT, s->name, "nats: cannot subscribe to %s: %s",
                              n->c->subject, nats_GetLastError(NULL));
                    set_state(n, false, "nats: cannot subscribe to %s", n->c->subject);
                } else {
                    pthread_mutex_lock(&n->lock);
                    n->bound = true;
                    pthread_mutex_unlock(&n->lock);
                }
            }
        }
        if (!js) {
            nap(n, 500);
            continue;
        }
        if (!n->sub) {
            if (js_bind(n, err, sizeof(err)) != 0) {
                set_state(n, n->connected, "nats: %s", err);
                if (strcmp(err, last))
                    OFE_WARN(ES_COMPONENT, s->name, "nats: %s; retrying", err);
                snprintf(last, sizeof(last), "%s", err);
                nap(n, 1000);
                continue;
            }
            last[0] = '\0';
            pthread_mutex_lock(&n->lock);
            n->bound = true;
            pthread_mutex_unlock(&n->lock);
            OFE_INFO(ES_COMPONENT, s->name, "nats: bound to durable consumer %s",
                     n->c->jetstream.durable);
        }
        unsigned cap = es_capacity(s);
        if (!cap) {
            es_wait_capacity(s, FETCH_TIMEOUT_MS);
            continue;
        }
        natsMsgList list = {NULL, 0};
        jsErrCode jerr = 0;
        natsStatus st = natsSubscription_Fetch(
            &list, n->sub, (int)(cap < FETCH_MAX ? cap : FETCH_MAX), FETCH_TIMEOUT_MS, &jerr);
        if (st == NATS_OK) {
            for (int i = 0; i < list.Count; i++) {
                natsMsg *m = list.Msgs[i];
                list.Msgs[i] = NULL;
                struct ofe_ce *ev = NULL;
                if (message_event(n, m, &ev, err, sizeof(err)) != 0) {
                    es_invalid(s, "nats %s: %s", natsMsg_GetSubject(m), err);
                    natsMsg_Ack(m, NULL); /* it never becomes valid */
                    natsMsg_Destroy(m);
                    es_count_acked(s, 1);
                    continue;
                }
                if (es_emit(s, ev, ES_EMIT_FORCE, js_done, m) != 0) {
                    natsMsg_Nak(m, NULL);
                    natsMsg_Destroy(m);
                }
                ofe_ce_unref(ev);
            }
            natsMsgList_Destroy(&list);
            continue;
        }
        if (st == NATS_TIMEOUT)
            continue;
        if (st != NATS_CONNECTION_DISCONNECTED && st != NATS_CONNECTION_CLOSED) {
            /* JetStream restarting, consumer or stream deleted: bind again */
            snprintf(err, sizeof(err), "fetch: %s", nats_GetLastError(NULL));
            if (strcmp(err, last))
                OFE_WARN(ES_COMPONENT, s->name, "nats: %s; binding again", err);
            snprintf(last, sizeof(last), "%s", err);
            natsSubscription_Destroy(n->sub);
            n->sub = NULL;
            pthread_mutex_lock(&n->lock);
            n->bound = false;
            pthread_mutex_unlock(&n->lock);
        }
        nap(n, 200);
    }
    return NULL;
}

/* ---- kind ---------------------------------------------------------------------- */

static void nats_check(const struct ofe_config_eventsource *es, const struct ofe_config_event *ev,
                       const struct es_options *o, struct es_diag *d)
{
    const struct ofe_config_nats_source *c = (const struct ofe_config_nats_source *)ev->spec;
    natsOptions *opts = NULL;
    if (build_opts(NULL, c, d, &opts, NULL, 0) == 0)
        natsOptions_Destroy(opts);
    if (c->jetstream.node.present && c->queue_group)
        es_diag_error(d, &c->node, "queueGroup",
                      "queueGroup is for core NATS; with jetstream the durable consumer is "
                      "shared by every replica");
}

static void nats_destroy(void *ctx);

static int nats_start(struct es_source *s, void **ctx, char *errstr, size_t errstr_size)
{
    struct nats_src *n = calloc(1, sizeof(*n));
    if (!n)
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    n->s = s;
    n->c = (const struct ofe_config_nats_source *)s->ev->spec;
    atomic_init(&n->stop, false);
    pthread_mutex_init(&n->lock, NULL);
    pthread_cond_init(&n->cond, NULL);
    snprintf(n->why, sizeof(n->why), "nats: connecting to %s", n->c->url);
    const char *l[] = {"source", s->name, NULL};
    n->m_dropped = ofe_metrics_counter(s->metrics, "ofe_eventsource_nats_dropped_total",
                                       "Slow-consumer notices of a core NATS subscription "
                                       "(messages the client dropped).",
                                       l);
    int rc = build_opts(n, n->c, NULL, &n->opts, errstr, errstr_size);
    if (rc) {
        nats_destroy(n);
        return rc;
    }
    if (pthread_create(&n->thr, NULL, nats_run, n) != 0) {
        nats_destroy(n);
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "cannot start a thread");
    }
    n->thr_started = true;
    OFE_INFO(ES_COMPONENT, s->name, "nats: subject %s on %s%s%s", n->c->subject, n->c->url,
             n->c->jetstream.node.present ? ", JetStream durable " : "",
             n->c->jetstream.node.present ? n->c->jetstream.durable : "");
    *ctx = n;
    return 0;
}

static void nats_stop(void *ctx)
{
    struct nats_src *n = ctx;
    atomic_store(&n->stop, true);
    pthread_mutex_lock(&n->lock);
    pthread_cond_broadcast(&n->cond);
    pthread_mutex_unlock(&n->lock);
    if (n->thr_started) {
        pthread_join(n->thr, NULL);
        n->thr_started = false;
    }
    /* Core NATS: no more deliveries once unsubscribed. */
    if (n->sub && !n->c->jetstream.node.present) {
        natsSubscription_Unsubscribe(n->sub);
        natsSubscription_WaitForDrainCompletion(n->sub, 100);
    }
}

static void nats_destroy(void *ctx)
{
    struct nats_src *n = ctx;
    nats_stop(n);
    if (n->sub)
        natsSubscription_Destroy(n->sub);
    if (n->nc) {
        /* acks of the last events are queued on the connection */
        natsConnection_Flush(n->nc);
        natsConnection_Close(n->nc);
        /* The disconnected and closed callbacks still run on cnats' thread
         * with n: wait for the last one (bounded) before freeing n. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 5;
        pthread_mutex_lock(&n->lock);
        while (!n->closed && pthread_cond_timedwait(&n->cond, &n->lock, &ts) == 0) {
        }
        pthread_mutex_unlock(&n->lock);
        natsConnection_Destroy(n->nc);
    }
    jsCtx_Destroy(n->js);
    natsOptions_Destroy(n->opts);
    free(n->seed);
    free(n->pubkey);
    pthread_mutex_destroy(&n->lock);
    pthread_cond_destroy(&n->cond);
    free(n);
}

static bool nats_ready(void *ctx, char *why, size_t why_size)
{
    struct nats_src *n = ctx;
    pthread_mutex_lock(&n->lock);
    bool ok = n->connected && n->bound;
    if (!ok)
        snprintf(why, why_size, "%s", n->connected ? "nats: not subscribed yet" : n->why);
    pthread_mutex_unlock(&n->lock);
    return ok;
}

const struct es_kind es_kind_nats = {
    .name = "nats",
    .kind = OFE_CONFIG_SOURCE_NATS,
    .redrive = true,
    .default_inflight = 1024,
    .check = nats_check,
    .start = nats_start,
    .stop = nats_stop,
    .destroy = nats_destroy,
    .ready = nats_ready,
};
