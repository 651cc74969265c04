/* The jetstream backend (cnats): the connection, the stream, publishing.
 *
 * One bus is one NATS connection and one JetStream stream. Events go to
 * subject "<stream>.<topic>" in binary mode (ce- headers, OFE_CE_BIND_
 * TYPEHINTS) with js_PublishMsgAsync; a publish completes on its PubAck.
 *
 * Publishing never loses a publish silently. An attempt whose answer can no
 * longer come is sent again until publish_timeout_ms has passed:
 *   - 503 no responders (JetStream still starting after a server restart,
 *     or the stream gone: it is looked at and made again), reconnect buffer
 *     full, not sent at all: again after a backoff with jitter;
 *   - sent on a connection that broke before the PubAck came: again right
 *     after the reconnect (the event may then be stored twice: at least
 *     once).
 * Publishes made while disconnected wait in cnats's reconnect buffer. At the
 * deadline the publish fails with OFE_ECONN (not connected) or
 * OFE_ETIMEDOUT (connected, no PubAck); a refusal by the server (e.g. a
 * stream limit with discard new) fails at once with OFE_EREMOTE and the
 * server's words.
 *
 * Threads: cnats's reply dispatcher runs ack_handler; its callback thread
 * runs the connection callbacks; one management thread per bus makes the
 * stream, sends retries and resends after a reconnect. */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ofe/config.h"
#include "ofe/err.h"
#include "ofe/log.h"
#include "pubsub_jetstream_int.h"

#define RECONNECT_BUF   (8 * 1024 * 1024)
#define RETRY_BASE_MS   50
#define RETRY_CAP_MS    2000
#define STREAM_BASE_MS  100
#define STREAM_CAP_MS   5000
#define CLOSE_CB_WAIT_S 5

/* One publish until it completes. */
struct jpub {
    struct ofe_pub *p;
    natsMsg *msg;         /* the attempt in flight (key in the map), or NULL */
    uint64_t sent_epoch;  /* b->epoch when the attempt was handed to cnats */
    uint64_t deadline_ns; /* publish_timeout_ms after the publish */
    uint64_t due_ns;      /* in the retry list: when to send again */
    unsigned attempts;
    bool linked;   /* in b->pubs */
    bool retrying; /* in the retry list */
    char last_err[200];
    struct jpub *prev, *next; /* b->pubs */
    struct jpub *rnext;       /* b->retry */
    char subject[];           /* "<stream>.<topic>" */
};

void js__copy(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    if (n >= size)
        n = size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

uint64_t js__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

const char *js__errtext(natsStatus s, char *buf, size_t size)
{
    natsStatus ls;
    const char *t = nats_GetLastError(&ls);
    if (t && *t && (s == NATS_OK || ls == s)) {
        /* drop cnats's "(conn.c:1905): " source position */
        const char *e = t[0] == '(' ? strstr(t, "): ") : NULL;
        snprintf(buf, size, "%s", e ? e + 3 : t);
    } else
        snprintf(buf, size, "%s", natsStatus_GetText(s));
    return buf;
}

/* ---- natsMsg* -> jpub map ------------------------------------------------ */

static size_t pmap_slot(uintptr_t k, size_t cap)
{
    uint64_t h = (uint64_t)k * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 17) & (cap - 1);
}

static int pmap_grow(struct js_pmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 256;
    uintptr_t *keys = calloc(cap, sizeof(*keys));
    struct jpub **vals = calloc(cap, sizeof(*vals));
    if (!keys || !vals) {
        free(keys);
        free(vals);
        return OFE_ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i])
            continue;
        size_t j = pmap_slot(m->keys[i], cap);
        while (keys[j])
            j = (j + 1) & (cap - 1);
        keys[j] = m->keys[i];
        vals[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    return 0;
}

static int pmap_put(struct js_pmap *m, const natsMsg *msg, struct jpub *v)
{
    if ((m->n + 1) * 2 > m->cap && pmap_grow(m) != 0)
        return OFE_ENOMEM;
    uintptr_t k = (uintptr_t)msg;
    size_t i = pmap_slot(k, m->cap);
    while (m->keys[i] && m->keys[i] != k)
        i = (i + 1) & (m->cap - 1);
    if (!m->keys[i])
        m->n++;
    m->keys[i] = k;
    m->vals[i] = v;
    return 0;
}

/* Removes msg and returns its publish, or NULL when unknown (an attempt
 * that was replaced). Backward-shift deletion keeps probes short. */
static struct jpub *pmap_del(struct js_pmap *m, const natsMsg *msg)
{
    if (!m->cap || !msg)
        return NULL;
    uintptr_t k = (uintptr_t)msg;
    size_t i = pmap_slot(k, m->cap);
    while (m->keys[i] && m->keys[i] != k)
        i = (i + 1) & (m->cap - 1);
    if (!m->keys[i])
        return NULL;
    struct jpub *v = m->vals[i];
    m->n--;
    size_t j = i;
    for (;;) {
        j = (j + 1) & (m->cap - 1);
        if (!m->keys[j])
            break;
        size_t want = pmap_slot(m->keys[j], m->cap);
        /* move j back to i when its home slot is not in (i, j] */
        if ((j > i && (want <= i || want > j)) || (j < i && (want <= i && want > j))) {
            m->keys[i] = m->keys[j];
            m->vals[i] = m->vals[j];
            i = j;
        }
    }
    m->keys[i] = 0;
    m->vals[i] = NULL;
    return v;
}

static void pmap_fini(struct js_pmap *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof(*m));
}

/* ---- names ---------------------------------------------------------------- */

int js__subject(const struct js_bus *b, const char *topic, char *out, size_t out_size, char *errstr,
                size_t errstr_size)
{
    size_t len = strlen(topic);
    if (!len || topic[0] == '.' || topic[len - 1] == '.' || strstr(topic, ".."))
        return ofe_err(errstr, errstr_size, OFE_EINVAL,
                       "jetstream: topic \"%s\" cannot be a NATS subject (empty token)", topic);
    for (const char *p = topic; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= ' ' || c == 0x7f || c == '*' || c == '>')
            return ofe_err(errstr, errstr_size, OFE_EINVAL,
                           "jetstream: topic \"%s\" cannot be a NATS subject (it has %s)", topic,
                           c == '*' || c == '>' ? "a wildcard" : "white space or a control byte");
    }
    if ((size_t)snprintf(out, out_size, "%s%s", b->prefix, topic) >= out_size)
        return ofe_err(errstr, errstr_size, OFE_EINVAL, "jetstream: topic \"%.60s...\" is too long",
                       topic);
    return 0;
}

static bool valid_stream_name(const char *s)
{
    size_t n = strlen(s);
    if (!n || n > OFE_JS_NAME_MAX)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_')
            return false;
    return true;
}

/* ---- connection callbacks --------------------------------------------------- */

static void on_connected(natsConnection *nc, void *closure)
{
    struct js_bus *b = closure;
    __atomic_store_n(&b->max_payload, natsConnection_GetMaxPayload(nc), __ATOMIC_RELAXED);
    pthread_mutex_lock(&b->lock);
    b->connected = true;
    b->ever_connected = true;
    b->async_err[0] = '\0';
    b->stream_check = true;
    b->stream_attempt = 0;
    b->stream_next_ns = 0;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
    OFE_INFO(b->comp, "jetstream", "connected to %s", b->urls);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    struct js_bus *b = closure;
    __atomic_store_n(&b->max_payload, natsConnection_GetMaxPayload(nc), __ATOMIC_RELAXED);
    pthread_mutex_lock(&b->lock);
    b->connected = true;
    b->async_err[0] = '\0';
    b->resend = true;
    b->stream_check = true; /* a memory stream is gone after a restart */
    b->stream_attempt = 0;
    b->stream_next_ns = 0;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
    OFE_INFO(b->comp, "jetstream", "reconnected to %s", b->urls);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
    struct js_bus *b = closure;
    pthread_mutex_lock(&b->lock);
    bool was = b->connected, closing = b->closing;
    b->connected = false;
    b->epoch++;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
    if (was && !closing)
        OFE_WARN(b->comp, "jetstream", "disconnected from %s; reconnecting", b->urls);
}

static void on_closed(natsConnection *nc, void *closure)
{
    struct js_bus *b = closure;
    pthread_mutex_lock(&b->lock);
    b->connected = false;
    b->closed_cb = true;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

static void on_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
    struct js_bus *b = closure;
    const char *txt = NULL;
    natsConnection_GetLastError(nc, &txt);
    pthread_mutex_lock(&b->lock);
    snprintf(b->async_err, sizeof(b->async_err), "%s", txt && *txt ? txt : natsStatus_GetText(err));
    pthread_mutex_unlock(&b->lock);
    OFE_WARN(b->comp, "jetstream", "%s", txt && *txt ? txt : natsStatus_GetText(err));
}

static int64_t reconnect_delay(natsConnection *nc, int attempts, void *closure)
{
    return ofe_pubsub__backoff_ms(attempts > 0 ? (unsigned)attempts - 1 : 0, 100, 5000);
}

static natsStatus jwt_cb(char **user_jwt, char **custom_err, void *closure)
{
    struct js_bus *b = closure;
    *user_jwt = strdup(b->jwt);
    return *user_jwt ? NATS_OK : NATS_NO_MEMORY;
}

static natsStatus sig_cb(char **custom_err, unsigned char **sig, int *sig_len, const char *nonce,
                         void *closure)
{
    struct js_bus *b = closure;
    return nats_Sign(b->seed, nonce, sig, sig_len);
}

/* ---- the stream ---------------------------------------------------------- */

static bool subjects_cover(const char *const *subjects, int n, const char *want)
{
    for (int i = 0; i < n; i++)
        if (subjects[i] && (!strcmp(subjects[i], want) || !strcmp(subjects[i], ">")))
            return true;
    return false;
}

/* Makes the stream, or adds our subjects to an existing one. Runs on the
 * management thread with no lock held. Returns 0 or an error with errstr. */
static int ensure_stream(struct js_bus *b, char *errstr, size_t errstr_size)
{
    char wild[OFE_JS_NAME_MAX + 8], txt[256];
    snprintf(wild, sizeof(wild), "%s>", b->prefix);
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, b->js, b->stream, NULL, &jerr);
    if (s == NATS_OK) {
        jsStreamConfig *c = si->Config;
        int rc = 0;
        if (!subjects_cover(c->Subjects, c->SubjectsLen, wild)) {
            const char **subs = calloc((size_t)c->SubjectsLen + 1, sizeof(char *));
            if (!subs) {
                jsStreamInfo_Destroy(si);
                return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
            }
            for (int i = 0; i < c->SubjectsLen; i++)
                subs[i] = c->Subjects[i];
            subs[c->SubjectsLen] = wild;
            const char **old = c->Subjects;
            int oldn = c->SubjectsLen;
            c->Subjects = subs;
            c->SubjectsLen = oldn + 1;
            jsStreamInfo *nsi = NULL;
            s = js_UpdateStream(&nsi, b->js, c, NULL, &jerr);
            c->Subjects = old;
            c->SubjectsLen = oldn;
            free(subs);
            if (s != NATS_OK)
                rc = ofe_err(errstr, errstr_size, OFE_EREMOTE,
                             "stream %s exists without subjects %s, and adding them failed: %s",
                             b->stream, wild, js__errtext(s, txt, sizeof(txt)));
            else
                OFE_INFO(b->comp, "jetstream", "added subjects %s to the existing stream %s", wild,
                         b->stream);
            jsStreamInfo_Destroy(nsi);
        }
        if (!rc && (c->Storage == js_MemoryStorage) != b->memory_storage)
            OFE_WARN(b->comp, "jetstream",
                     "stream %s exists with %s storage; memoryStorage=%s is not applied (a "
                     "stream's storage cannot change)",
                     b->stream, c->Storage == js_MemoryStorage ? "memory" : "file",
                     b->memory_storage ? "true" : "false");
        jsStreamInfo_Destroy(si);
        return rc;
    }
    if (jerr != JSStreamNotFoundErr) {
        if (s == NATS_NO_RESPONDERS || jerr == JSNotEnabledErr || jerr == JSNotEnabledForAccountErr)
            return ofe_err(errstr, errstr_size, OFE_EUNSUPP,
                           "JetStream is not available on this server or account (%s); start "
                           "nats-server with -js",
                           js__errtext(s, txt, sizeof(txt)));
        return ofe_err(errstr, errstr_size, OFE_EREMOTE, "cannot look up stream %s: %s", b->stream,
                       js__errtext(s, txt, sizeof(txt)));
    }
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const char *subs[1] = {wild};
    cfg.Name = b->stream;
    cfg.Description = "ofevents bus";
    cfg.Subjects = subs;
    cfg.SubjectsLen = 1;
    cfg.Storage = b->memory_storage ? js_MemoryStorage : js_FileStorage;
    cfg.Retention = js_LimitsPolicy;
    cfg.Discard = js_DiscardOld;
    if (b->replicas > 0)
        cfg.Replicas = b->replicas;
    if (b->max_age_ms > 0)
        cfg.MaxAge = b->max_age_ms * 1000000;
    if (b->max_bytes > 0)
        cfg.MaxBytes = b->max_bytes;
    if (b->max_msgs > 0)
        cfg.MaxMsgs = b->max_msgs;
    s = js_AddStream(&si, b->js, &cfg, NULL, &jerr);
    if (s != NATS_OK) {
        if (jerr == JSStreamSubjectOverlapErr)
            return ofe_err(errstr, errstr_size, OFE_EREMOTE,
                           "cannot create stream %s: its subjects %s overlap another stream's "
                           "(%s); choose another streamName",
                           b->stream, wild, js__errtext(s, txt, sizeof(txt)));
        return ofe_err(errstr, errstr_size, OFE_EREMOTE, "cannot create stream %s: %s", b->stream,
                       js__errtext(s, txt, sizeof(txt)));
    }
    OFE_INFO(b->comp, "jetstream", "created stream %s (subjects %s, %s storage)", b->stream, wild,
             b->memory_storage ? "memory" : "file");
    jsStreamInfo_Destroy(si);
    return 0;
}

void js__stream_suspect(struct js_bus *b)
{
    pthread_mutex_lock(&b->lock);
    b->stream_check = true;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

bool js__usable(struct js_bus *b)
{
    pthread_mutex_lock(&b->lock);
    bool ok = b->connected && b->stream_ok && !b->closing;
    pthread_mutex_unlock(&b->lock);
    return ok;
}

/* ---- publishing ---------------------------------------------------------- */

static void list_del(struct js_bus *b, struct jpub *jp)
{
    if (!jp->linked)
        return;
    jp->linked = false;
    if (jp->prev)
        jp->prev->next = jp->next;
    else
        b->pubs = jp->next;
    if (jp->next)
        jp->next->prev = jp->prev;
    jp->prev = jp->next = NULL;
    b->npubs--;
    if (b->closing) /* only close() waits for this (a wakeup per PubAck costs) */
        pthread_cond_broadcast(&b->cond);
}

static void retry_del(struct js_bus *b, struct jpub *jp)
{
    for (struct jpub **pp = &b->retry; *pp; pp = &(*pp)->rnext)
        if (*pp == jp) {
            *pp = jp->rnext;
            break;
        }
    jp->rnext = NULL;
    jp->retrying = false;
}

/* Takes jp out of every structure; called with the lock held. The caller
 * then calls finish() without the lock. */
static void unlink_pub(struct js_bus *b, struct jpub *jp)
{
    if (jp->msg)
        pmap_del(&b->map, jp->msg);
    jp->msg = NULL;
    if (jp->retrying)
        retry_del(b, jp);
    list_del(b, jp);
}

static void finish(struct jpub *jp, int err, const char *msg)
{
    ofe_pub__done(jp->p, err, msg);
    free(jp);
}

/* Puts jp in the retry list after a backoff (lock held). */
static void schedule_retry(struct js_bus *b, struct jpub *jp, uint64_t now)
{
    uint64_t due = now + (uint64_t)ofe_pubsub__backoff_ms(jp->attempts ? jp->attempts - 1 : 0,
                                                          RETRY_BASE_MS, RETRY_CAP_MS) *
                             1000000u;
    if (due > jp->deadline_ns)
        due = jp->deadline_ns;
    jp->due_ns = due;
    if (!jp->retrying) {
        jp->retrying = true;
        jp->rnext = b->retry;
        b->retry = jp;
    }
    pthread_cond_broadcast(&b->cond);
}

/* The error a publish fails with at its deadline, connected or not. */
static int deadline_text(const struct js_bus *b, const struct jpub *jp, bool connected, char *buf,
                         size_t size)
{
    uint32_t ms = ofe_bus__opts(b->bus)->publish_timeout_ms;
    if (!connected) {
        snprintf(buf, size,
                 "jetstream: not confirmed within %" PRIu32 " ms: not connected to %s (%s)", ms,
                 b->urls, jp->last_err[0] ? jp->last_err : "reconnecting");
        return OFE_ECONN;
    }
    snprintf(buf, size, "jetstream: no PubAck from stream %s within %" PRIu32 " ms%s%s%s",
             b->stream, ms, jp->last_err[0] ? " (last error: " : "", jp->last_err,
             jp->last_err[0] ? ")" : "");
    return OFE_ETIMEDOUT;
}

/* The same, lock held. */
static int deadline_error(struct js_bus *b, struct jpub *jp, char *buf, size_t size)
{
    return deadline_text(b, jp, b->connected, buf, size);
}

/* Builds the NATS message of an event. Returns 0, OFE_EINVAL (invalid
 * event, errstr says why) or OFE_ENOMEM. */
/* Per-thread encoding buffers, kept between publishes (no allocation per
 * event once warm); freed when the thread exits. */
struct scratch {
    struct ofe_hdrs h;
    struct ofe_buf body;
};
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p)
{
    struct scratch *sc = p;
    ofe_hdrs_fini(&sc->h);
    ofe_buf_fini(&sc->body);
    free(sc);
}

static void scratch_init(void)
{
    pthread_key_create(&scratch_key, scratch_free);
}

static struct scratch *scratch_get(void)
{
    pthread_once(&scratch_once, scratch_init);
    struct scratch *sc = pthread_getspecific(scratch_key);
    if (!sc && (sc = calloc(1, sizeof(*sc))) != NULL) {
        ofe_hdrs_init(&sc->h);
        ofe_buf_init(&sc->body);
        if (pthread_setspecific(scratch_key, sc) != 0) {
            scratch_free(sc);
            sc = NULL;
        }
    }
    if (sc) {
        ofe_hdrs_reset(&sc->h);
        ofe_buf_reset(&sc->body);
    }
    return sc;
}

static int build_msg(struct js_bus *b, const char *subject, const struct ofe_ce *ev, natsMsg **out,
                     size_t *wire_size, char *errstr, size_t errstr_size)
{
    struct scratch *sc = scratch_get();
    if (!sc)
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    struct ofe_hdrs *hp = &sc->h;
    const void *body = NULL;
    size_t blen = 0;
    char txt[256];
    natsMsg *m = NULL;
    int rc = ofe_ce_nats_encode(ev, OFE_CE_BINARY, OFE_CE_BIND_TYPEHINTS, hp, &sc->body, &body,
                                &blen, errstr, errstr_size);
    if (rc)
        goto out;
    if (blen > (size_t)INT32_MAX) {
        rc = ofe_err(errstr, errstr_size, OFE_EINVAL,
                     "jetstream: event data of %zu bytes is too big", blen);
        goto out;
    }
    natsStatus s = natsMsg_Create(&m, subject, NULL, body, (int)blen);
    if (s != NATS_OK) {
        rc = ofe_err(errstr, errstr_size, s == NATS_NO_MEMORY ? OFE_ENOMEM : OFE_EINVAL,
                     "jetstream: %s", js__errtext(s, txt, sizeof(txt)));
        goto out;
    }
    size_t wire = blen + 12; /* "NATS/1.0\r\n" ... "\r\n" */
    char stackbuf[512];
    for (size_t i = 0; i < hp->n; i++) {
        const struct ofe_hdr *e = &hp->v[i];
        size_t need = e->name_len + e->value_len + 2;
        char *kv = need <= sizeof(stackbuf) ? stackbuf : malloc(need);
        if (!kv) {
            rc = OFE_ENOMEM;
            goto out;
        }
        memcpy(kv, e->name, e->name_len);
        kv[e->name_len] = '\0';
        memcpy(kv + e->name_len + 1, e->value, e->value_len);
        kv[e->name_len + 1 + e->value_len] = '\0';
        s = natsMsgHeader_Add(m, kv, kv + e->name_len + 1);
        if (kv != stackbuf)
            free(kv);
        if (s != NATS_OK) {
            rc = ofe_err(errstr, errstr_size, s == NATS_NO_MEMORY ? OFE_ENOMEM : OFE_EINVAL,
                         "jetstream: header %.*s: %s", (int)e->name_len, e->name,
                         js__errtext(s, txt, sizeof(txt)));
            goto out;
        }
        wire += e->name_len + e->value_len + 4;
    }
    *wire_size = wire;
    *out = m;
    m = NULL;
out:
    natsMsg_Destroy(m);
    return rc;
}

enum submit_result { SUBMITTED, SUBMIT_RETRY, SUBMIT_FAIL };

/* Hands one attempt of jp to cnats; the first one (jp not linked yet)
 * also puts jp in b->pubs, in the same lock section (one lock per publish
 * on the hot path: the PubAck thread takes it too). On SUBMIT_FAIL,
 * *err/errmsg say why and the caller unlinks (if linked) and finishes jp.
 * Runs without the lock. */
static enum submit_result submit(struct js_bus *b, struct jpub *jp, int *err, char *errmsg,
                                 size_t errmsg_size)
{
    natsMsg *m = NULL;
    size_t wire = 0;
    int rc = build_msg(b, jp->subject, ofe_pub__event(jp->p), &m, &wire, errmsg, errmsg_size);
    if (rc) {
        *err = rc;
        return SUBMIT_FAIL;
    }
    int64_t maxp = __atomic_load_n(&b->max_payload, __ATOMIC_RELAXED);
    if (maxp > 0 && (int64_t)wire > maxp) {
        natsMsg_Destroy(m);
        *err = ofe_err(errmsg, errmsg_size, OFE_EINVAL,
                       "jetstream: the event is %zu bytes as a NATS message (data and ce- "
                       "headers); the server accepts at most %" PRId64 " bytes (max_payload)",
                       wire, maxp);
        return SUBMIT_FAIL;
    }
    pthread_mutex_lock(&b->lock);
    if (!jp->linked) {
        if (b->closing) {
            pthread_mutex_unlock(&b->lock);
            natsMsg_Destroy(m);
            *err = ofe_err(errmsg, errmsg_size, OFE_ECLOSED, "publish: the bus is closing");
            return SUBMIT_FAIL;
        }
        jp->linked = true;
        jp->next = b->pubs;
        if (b->pubs)
            b->pubs->prev = jp;
        b->pubs = jp;
        b->npubs++;
    }
    uint64_t now = js__now_ns();
    if (now >= jp->deadline_ns) {
        *err = deadline_error(b, jp, errmsg, errmsg_size);
        pthread_mutex_unlock(&b->lock);
        natsMsg_Destroy(m);
        return SUBMIT_FAIL;
    }
    if (pmap_put(&b->map, m, jp) != 0) {
        pthread_mutex_unlock(&b->lock);
        natsMsg_Destroy(m);
        *err = ofe_err(errmsg, errmsg_size, OFE_ENOMEM, "out of memory");
        return SUBMIT_FAIL;
    }
    jp->msg = m;
    b->published = true;
    jp->sent_epoch = b->epoch;
    jp->attempts++;
    /* The management thread fails it at its deadline if no PubAck came
     * (not cnats's MaxWait: that keeps a record per publish for the whole
     * timeout even after its PubAck, and sends a timeout through the
     * dispatcher for each one when it ends). */
    if (jp->deadline_ns < b->expiry_ns) {
        b->expiry_ns = jp->deadline_ns;
        if (b->expiry_ns < b->mgmt_wake_ns)
            pthread_cond_broadcast(&b->cond);
    }
    pthread_mutex_unlock(&b->lock);

    natsMsg *tmp = m;
    natsStatus s = js_PublishMsgAsync(b->js, &tmp, NULL);
    if (s == NATS_OK)
        return SUBMITTED;
    char txt[256];
    js__errtext(s, txt, sizeof(txt));
    pthread_mutex_lock(&b->lock);
    bool mine = jp->msg == m; /* else a reconnect sweep took the publish over */
    if (mine) {
        pmap_del(&b->map, m);
        jp->msg = NULL;
    }
    natsMsg_Destroy(m);
    if (!mine) {
        pthread_mutex_unlock(&b->lock);
        return SUBMITTED;
    }
    if (s == NATS_MAX_PAYLOAD) {
        pthread_mutex_unlock(&b->lock);
        *err = ofe_err(errmsg, errmsg_size, OFE_EINVAL,
                       "jetstream: the event is %zu bytes as a NATS message; the server refuses "
                       "it: %s",
                       wire, txt);
        return SUBMIT_FAIL;
    }
    if (s == NATS_CONNECTION_CLOSED && b->closing) {
        pthread_mutex_unlock(&b->lock);
        *err = ofe_err(errmsg, errmsg_size, OFE_ECLOSED, "jetstream: the bus is closing");
        return SUBMIT_FAIL;
    }
    if (s == NATS_NO_SERVER_SUPPORT && !b->ever_connected) /* headers need the server's INFO */
        js__copy(jp->last_err, sizeof(jp->last_err), "never connected yet");
    else
        js__copy(jp->last_err, sizeof(jp->last_err), txt);
    schedule_retry(b, jp, js__now_ns());
    pthread_mutex_unlock(&b->lock);
    return SUBMIT_RETRY;
}

static void ack_handler(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    struct js_bus *b = closure;
    char buf[512];
    pthread_mutex_lock(&b->lock);
    struct jpub *jp = pmap_del(&b->map, msg);
    if (!jp) {
        pthread_mutex_unlock(&b->lock);
        natsMsg_Destroy(msg);
        return;
    }
    jp->msg = NULL;
    int err = 0;
    const char *why = NULL;
    if (pa) {
        list_del(b, jp);
    } else {
        natsStatus s = pae ? pae->Err : NATS_ERR;
        const char *txt = pae && pae->ErrText ? pae->ErrText : natsStatus_GetText(s);
        uint64_t now = js__now_ns();
        if (s == NATS_TIMEOUT || now >= jp->deadline_ns) {
            err = deadline_error(b, jp, buf, sizeof(buf));
            why = buf;
            list_del(b, jp);
        } else if (s == NATS_ERR && pae && pae->ErrCode) {
            /* the stream refused it: sending it again changes nothing */
            snprintf(buf, sizeof(buf), "jetstream: stream %s refused the event: %s (error %d)",
                     b->stream, txt, (int)pae->ErrCode);
            err = OFE_EREMOTE;
            why = buf;
            list_del(b, jp);
        } else {
            if (s == NATS_NO_RESPONDERS) {
                snprintf(jp->last_err, sizeof(jp->last_err),
                         "no responders on %s: JetStream not ready or stream %s missing",
                         jp->subject, b->stream);
                b->stream_check = true;
            } else {
                snprintf(jp->last_err, sizeof(jp->last_err), "%s", txt);
            }
            schedule_retry(b, jp, now);
            jp = NULL;
        }
    }
    pthread_mutex_unlock(&b->lock);
    natsMsg_Destroy(msg);
    if (jp)
        finish(jp, err, why);
}

static int js_publish(void *ctx, const char *topic, struct ofe_pub *p, char *errstr,
                      size_t errstr_size)
{
    struct js_bus *b = ctx;
    char subject[1024];
    int rc = js__subject(b, topic, subject, sizeof(subject), errstr, errstr_size);
    if (rc)
        return rc;
    size_t slen = strlen(subject);
    struct jpub *jp = malloc(sizeof(*jp) + slen + 1);
    if (!jp)
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    memset(jp, 0, sizeof(*jp));
    memcpy(jp->subject, subject, slen + 1);
    jp->p = p;
    jp->deadline_ns = js__now_ns() + (uint64_t)ofe_bus__opts(b->bus)->publish_timeout_ms * 1000000u;
    if (b->closing) {
        free(jp);
        return ofe_err(errstr, errstr_size, OFE_ECLOSED, "publish: the bus is closing");
    }
    atomic_fetch_add(&b->publishers, 1);
    int err = 0;
    enum submit_result r = submit(b, jp, &err, errstr, errstr_size);
    if (r == SUBMIT_FAIL) {
        pthread_mutex_lock(&b->lock);
        unlink_pub(b, jp);
        pthread_mutex_unlock(&b->lock);
    }
    /* the last one out wakes close(), which waits under the lock */
    if (atomic_fetch_sub(&b->publishers, 1) == 1 && b->closing) {
        pthread_mutex_lock(&b->lock);
        pthread_cond_broadcast(&b->cond);
        pthread_mutex_unlock(&b->lock);
    }
    if (r == SUBMIT_FAIL) {
        /* a bad event fails the call; the core then forgets p */
        free(jp);
        return err;
    }
    return 0;
}

/* ---- the management thread ------------------------------------------------ */

static void *mgmt_run(void *arg)
{
    struct js_bus *b = arg;
    pthread_setname_np(pthread_self(), "ofe-js-mgmt");
    char err[512];
    pthread_mutex_lock(&b->lock);
    while (!b->mgmt_stop) {
        uint64_t now = js__now_ns();
        /* After a reconnect, no PubAck comes for what went out on the old
         * connection: send it again. */
        if (b->resend) {
            b->resend = false;
            unsigned n = 0;
            for (struct jpub *jp = b->pubs; jp; jp = jp->next) {
                if (!jp->msg || jp->sent_epoch >= b->epoch)
                    continue;
                pmap_del(&b->map, jp->msg); /* cnats still holds it; its answer is ignored */
                jp->msg = NULL;
                snprintf(jp->last_err, sizeof(jp->last_err), "connection lost before the PubAck");
                jp->due_ns = now;
                if (!jp->retrying) {
                    jp->retrying = true;
                    jp->rnext = b->retry;
                    b->retry = jp;
                }
                n++;
            }
            if (n)
                OFE_INFO(b->comp, "jetstream",
                         "sending %u publishes again: the connection broke before their PubAck", n);
        }
        if (b->connected && (!b->stream_ok || b->stream_check) && now >= b->stream_next_ns) {
            b->stream_check = false;
            pthread_mutex_unlock(&b->lock);
            int rc = ensure_stream(b, err, sizeof(err));
            pthread_mutex_lock(&b->lock);
            if (rc == 0) {
                b->stream_ok = true;
                b->stream_err[0] = '\0';
                b->stream_attempt = 0;
            } else {
                if (strcmp(b->stream_err, err) != 0)
                    OFE_WARN(b->comp, "jetstream", "%s", err);
                js__copy(b->stream_err, sizeof(b->stream_err), err);
                b->stream_ok = false;
                b->stream_next_ns =
                    js__now_ns() +
                    (uint64_t)(ofe_pubsub__backoff_ms(b->stream_attempt++, STREAM_BASE_MS,
                                                      STREAM_CAP_MS) +
                               STREAM_BASE_MS) *
                        1000000u;
            }
            pthread_cond_broadcast(&b->cond);
            continue;
        }
        /* Fail what was sent and got no PubAck by its deadline. cnats keeps
         * the message (its PubAck, if it comes, is ignored; close takes it
         * back). */
        now = js__now_ns();
        if (now >= b->expiry_ns) {
            struct jpub *expired = NULL;
            uint64_t next = UINT64_MAX;
            bool connected = b->connected;
            for (struct jpub *jp = b->pubs, *jn; jp; jp = jn) {
                jn = jp->next;
                if (!jp->msg)
                    continue; /* waiting to be sent again, or being sent */
                if (jp->deadline_ns > now) {
                    if (jp->deadline_ns < next)
                        next = jp->deadline_ns;
                    continue;
                }
                unlink_pub(b, jp);
                jp->next = expired;
                expired = jp;
            }
            b->expiry_ns = next;
            if (expired) {
                pthread_mutex_unlock(&b->lock);
                while (expired) {
                    struct jpub *n = expired->next;
                    char txt[512];
                    int code = deadline_text(b, expired, connected, txt, sizeof(txt));
                    finish(expired, code, txt);
                    expired = n;
                }
                pthread_mutex_lock(&b->lock);
                continue;
            }
        }
        /* Send what is due again, one at a time (submit takes the lock). */
        now = js__now_ns();
        struct jpub *due = NULL;
        for (struct jpub *jp = b->retry; jp; jp = jp->rnext)
            if (jp->due_ns <= now) {
                due = jp;
                break;
            }
        if (due) {
            retry_del(b, due);
            pthread_mutex_unlock(&b->lock);
            int e = 0;
            enum submit_result r = submit(b, due, &e, err, sizeof(err));
            if (r == SUBMIT_FAIL) {
                pthread_mutex_lock(&b->lock);
                unlink_pub(b, due);
                pthread_mutex_unlock(&b->lock);
                finish(due, e, err);
            }
            pthread_mutex_lock(&b->lock);
            continue;
        }
        uint64_t wake = now + 1000000000u;
        for (struct jpub *jp = b->retry; jp; jp = jp->rnext)
            if (jp->due_ns < wake)
                wake = jp->due_ns;
        if (b->connected && (!b->stream_ok || b->stream_check) && b->stream_next_ns < wake)
            wake = b->stream_next_ns;
        if (b->expiry_ns < wake)
            wake = b->expiry_ns;
        b->mgmt_wake_ns = wake;
        if (wake > now) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t t = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + (wake - now);
            ts.tv_sec = (time_t)(t / 1000000000u);
            ts.tv_nsec = (long)(t % 1000000000u);
            pthread_cond_timedwait(&b->cond, &b->lock, &ts);
        }
    }
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

/* ---- open / close ---------------------------------------------------------- */

static void bus_free(struct js_bus *b)
{
    if (b->js)
        jsCtx_Destroy(b->js);
    if (b->nc)
        natsConnection_Destroy(b->nc);
    natsOptions_Destroy(b->nopts);
    pmap_fini(&b->map);
    free(b->urls);
    free(b->stream);
    free(b->prefix);
    free(b->durable_prefix);
    free(b->backoff_ns);
    free(b->jwt);
    free(b->seed);
    pthread_mutex_destroy(&b->lock);
    pthread_cond_destroy(&b->cond);
    free(b);
}

static bool readable(const char *path)
{
    return access(path, R_OK) == 0;
}

/* Copies and checks the options. Returns 0 or OFE_EINVAL with errstr. */
static int take_options(struct js_bus *b, const struct ofe_config_jetstream_bus *c, char *errstr,
                        size_t errstr_size)
{
    if (!c->nats_url || !*c->nats_url)
        return ofe_err(errstr, errstr_size, OFE_EINVAL,
                       "jetstream: natsURL is required (e.g. nats://127.0.0.1:4222)");
    b->urls = strdup(c->nats_url);
    b->stream = strdup(c->stream_name && *c->stream_name ? c->stream_name : OFE_JS_DEFAULT_STREAM);
    if (!b->urls || !b->stream)
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    if (!valid_stream_name(b->stream))
        return ofe_err(errstr, errstr_size, OFE_EINVAL,
                       "jetstream: streamName \"%s\" is not a valid stream name (1 to %d of "
                       "A-Z a-z 0-9 - _)",
                       b->stream, OFE_JS_NAME_MAX);
    if (asprintf(&b->prefix, "%s.", b->stream) < 0) {
        b->prefix = NULL;
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    }
    if (c->durable_name && *c->durable_name) {
        b->durable_prefix = strdup(c->durable_name);
        for (char *p = b->durable_prefix; p && *p; p++)
            if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
                *p = '_';
        if (strlen(c->durable_name) > 64)
            return ofe_err(errstr, errstr_size, OFE_EINVAL,
                           "jetstream: durableName is longer than 64 characters");
    }
    b->deliver_policy = c->deliver_policy;
    b->start_sequence = c->start_sequence;
    b->start_time_s = c->start_time;
    b->start_time_delta_ms = c->start_time_delta_ms;
    if (b->deliver_policy == OFE_CONFIG_DELIVER_SEQUENCE && b->start_sequence <= 0)
        return ofe_err(errstr, errstr_size, OFE_EINVAL,
                       "jetstream: deliverPolicy sequence needs startSequence (1 or more)");
    if (b->deliver_policy == OFE_CONFIG_DELIVER_TIME && b->start_time_s <= 0 &&
        b->start_time_delta_ms <= 0)
        return ofe_err(errstr, errstr_size, OFE_EINVAL,
                       "jetstream: deliverPolicy time needs startTime (unix seconds)");
    if (c->ack_wait_ms < 0 || c->max_deliver < -1 || c->max_ack_pending < -1 || c->replicas < 0)
        return ofe_err(errstr, errstr_size, OFE_EINVAL,
                       "jetstream: ackWait, maxDeliver, maxAckPending and replicas cannot be "
                       "negative");
    b->ack_wait_ms = c->ack_wait_ms;
    b->max_deliver = c->max_deliver;
    b->max_ack_pending = c->max_ack_pending;
    b->replicas = c->replicas;
    b->memory_storage = c->memory_storage;
    if (c->back_off.n) {
        if (c->back_off.n > 1000)
            return ofe_err(errstr, errstr_size, OFE_EINVAL,
                           "jetstream: backOff has too many values");
        b->backoff_ns = calloc(c->back_off.n, sizeof(int64_t));
        if (!b->backoff_ns)
            return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
        for (size_t i = 0; i < c->back_off.n; i++) {
            if (c->back_off.v[i] <= 0)
                return ofe_err(errstr, errstr_size, OFE_EINVAL,
                               "jetstream: backOff value %zu is not a positive duration", i + 1);
            b->backoff_ns[i] = c->back_off.v[i] * 1000000;
        }
        b->nbackoff = (int)c->back_off.n;
        if (b->max_deliver > 0 && b->max_deliver <= b->nbackoff)
            return ofe_err(errstr, errstr_size, OFE_EINVAL,
                           "jetstream: maxDeliver (%" PRId64 ") must be greater than the number "
                           "of backOff values (%d)",
                           b->max_deliver, b->nbackoff);
    }
    b->max_age_ms = c->stream_max_age_ms;
    b->max_bytes = c->stream_max_bytes;
    b->max_msgs = c->stream_max_msgs;
    if ((c->jwt && *c->jwt) != (c->seed_key && *c->seed_key))
        return ofe_err(errstr, errstr_size, OFE_EINVAL,
                       "jetstream: jwt and seedKey go together (NATS decentralized auth); one of "
                       "them is missing");
    if (c->jwt && *c->jwt) {
        unsigned char *sig = NULL;
        int siglen = 0;
        char txt[256];
        natsStatus s = nats_Sign(c->seed_key, "ofevents", &sig, &siglen);
        free(sig);
        if (s != NATS_OK)
            return ofe_err(errstr, errstr_size, OFE_EINVAL,
                           "jetstream: seedKey is not a usable NKey seed: %s",
                           js__errtext(s, txt, sizeof(txt)));
        b->jwt = strdup(c->jwt);
        b->seed = strdup(c->seed_key);
        if (!b->jwt || !b->seed)
            return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    }
    if ((c->tls_client_cert && *c->tls_client_cert) != (c->tls_client_key && *c->tls_client_key))
        return ofe_err(errstr, errstr_size, OFE_EINVAL,
                       "jetstream: tls_client_cert and tls_client_key go together; one of them is "
                       "missing");
    const char *files[][2] = {{"tls_client_cert", c->tls_client_cert},
                              {"tls_client_key", c->tls_client_key},
                              {"tls_ca_cert", c->tls_ca_cert},
                              {"credentials", c->credentials}};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        if (files[i][1] && *files[i][1] && !readable(files[i][1]))
            return ofe_err(errstr, errstr_size, OFE_EINVAL, "jetstream: %s: cannot read %s: %m",
                           files[i][0], files[i][1]);
    if ((c->user && *c->user) && (c->credentials && *c->credentials))
        return ofe_err(errstr, errstr_size, OFE_EINVAL,
                       "jetstream: user/password and credentials are two ways to log in; give "
                       "one");
    return 0;
}

/* Splits the comma-separated natsURL into natsOptions_SetServers. */
static int set_servers(struct js_bus *b, bool *tls, char *errstr, size_t errstr_size)
{
    char *copy = strdup(b->urls);
    const char *list[64];
    int n = 0;
    if (!copy)
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    int rc = 0;
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ' || *tok == '\t')
            tok++;
        char *e = tok + strlen(tok);
        while (e > tok && (e[-1] == ' ' || e[-1] == '\t'))
            *--e = '\0';
        if (!*tok)
            continue;
        const char *sep = strstr(tok, "://");
        if (sep && strncmp(tok, "nats://", 7) != 0 && strncmp(tok, "tls://", 6) != 0) {
            rc = ofe_err(errstr, errstr_size, OFE_EINVAL,
                         "jetstream: natsURL \"%s\": the scheme must be nats:// or tls://", tok);
            break;
        }
        if (!strncmp(tok, "tls://", 6))
            *tls = true;
        if (n == 64) {
            rc = ofe_err(errstr, errstr_size, OFE_EINVAL,
                         "jetstream: natsURL lists too many servers");
            break;
        }
        list[n++] = tok;
    }
    if (!rc && n == 0)
        rc = ofe_err(errstr, errstr_size, OFE_EINVAL, "jetstream: natsURL names no server");
    if (!rc) {
        natsStatus s = natsOptions_SetServers(b->nopts, list, n);
        char txt[256];
        if (s != NATS_OK)
            rc = ofe_err(errstr, errstr_size, OFE_EINVAL, "jetstream: natsURL \"%s\": %s", b->urls,
                         js__errtext(s, txt, sizeof(txt)));
    }
    free(copy);
    return rc;
}

static int js_open(struct ofe_bus *bus, const void *def, void **ctx, char *errstr,
                   size_t errstr_size)
{
    const struct ofe_config_busdesc *d = def;
    const struct ofe_config_jetstream_bus *c = d ? d->jetstream : NULL;
    if (!c)
        return ofe_err(errstr, errstr_size, OFE_EINVAL, "jetstream: no jetstream options given");
    struct js_bus *b = calloc(1, sizeof(*b));
    if (!b)
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    b->bus = bus;
    b->comp = ofe_bus__opts(bus)->component;
    b->expiry_ns = b->mgmt_wake_ns = UINT64_MAX;
    /* held briefly by publishers and the PubAck thread at once: spin a
     * little before sleeping */
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&b->lock, &ma);
    pthread_mutexattr_destroy(&ma);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cond, &ca);
    pthread_condattr_destroy(&ca);
    char txt[256];
    natsStatus s = NATS_OK;
    int rc = take_options(b, c, errstr, errstr_size);
    if (rc)
        goto fail;
    if (c->from_nats_streaming)
        OFE_WARN(b->comp, "jetstream",
                 "natsStreaming is end-of-life: this bus runs on NATS JetStream at %s (stream %s)",
                 b->urls, b->stream);
    if (c->queue_group_name && *c->queue_group_name)
        OFE_INFO(b->comp, "jetstream",
                 "queueGroupName \"%s\" is not needed: members of one consumer group share one "
                 "durable pull consumer",
                 c->queue_group_name);
    if ((s = natsOptions_Create(&b->nopts)) != NATS_OK) {
        rc = ofe_err(errstr, errstr_size, OFE_ENOMEM, "jetstream: %s",
                     js__errtext(s, txt, sizeof(txt)));
        goto fail;
    }
    bool tls = false;
    if ((rc = set_servers(b, &tls, errstr, errstr_size)))
        goto fail;
    const char *name = c->name && *c->name ? c->name : ofe_bus__client_id(bus);
    natsOptions *o = b->nopts;
    const char *what = "connection options";
    if ((s = natsOptions_SetName(o, name)) != NATS_OK ||
        (s = natsOptions_SetMaxReconnect(o, -1)) != NATS_OK ||
        (s = natsOptions_SetCustomReconnectDelay(o, reconnect_delay, b)) != NATS_OK ||
        (s = natsOptions_SetReconnectBufSize(o, RECONNECT_BUF)) != NATS_OK ||
        (s = natsOptions_SetDisconnectedCB(o, on_disconnected, b)) != NATS_OK ||
        (s = natsOptions_SetReconnectedCB(o, on_reconnected, b)) != NATS_OK ||
        (s = natsOptions_SetClosedCB(o, on_closed, b)) != NATS_OK ||
        (s = natsOptions_SetErrorHandler(o, on_error, b)) != NATS_OK ||
        (s = natsOptions_SetPingInterval(o, 10000)) != NATS_OK ||
        (s = natsOptions_SetMaxPingsOut(o, 3)) != NATS_OK ||
        (s = natsOptions_SetTimeout(o, 2000)) != NATS_OK ||
        (s = natsOptions_SetFailRequestsOnDisconnect(o, true)) != NATS_OK)
        goto nats_fail;
    what = "token";
    if (c->token && *c->token && (s = natsOptions_SetToken(o, c->token)) != NATS_OK)
        goto nats_fail;
    what = "user/password";
    if (c->user && *c->user &&
        (s = natsOptions_SetUserInfo(o, c->user, c->password ? c->password : "")) != NATS_OK)
        goto nats_fail;
    what = "credentials";
    if (c->credentials && *c->credentials &&
        (s = natsOptions_SetUserCredentialsFromFiles(o, c->credentials, NULL)) != NATS_OK)
        goto nats_fail;
    what = "jwt/seedKey";
    if (b->jwt && (s = natsOptions_SetUserCredentialsCallbacks(o, jwt_cb, b, sig_cb, b)) != NATS_OK)
        goto nats_fail;
    if (tls || (c->tls_client_cert && *c->tls_client_cert) || (c->tls_ca_cert && *c->tls_ca_cert)) {
        what = "TLS";
        if ((s = natsOptions_SetSecure(o, true)) != NATS_OK)
            goto nats_fail;
        what = "tls_ca_cert";
        if (c->tls_ca_cert && *c->tls_ca_cert &&
            (s = natsOptions_LoadCATrustedCertificates(o, c->tls_ca_cert)) != NATS_OK)
            goto nats_fail;
        what = "tls_client_cert/tls_client_key";
        if (c->tls_client_cert && *c->tls_client_cert &&
            (s = natsOptions_LoadCertificatesChain(o, c->tls_client_cert, c->tls_client_key)) !=
                NATS_OK)
            goto nats_fail;
    }
    snprintf(b->desc, sizeof(b->desc), "jetstream %s stream %s", b->urls, b->stream);
    /* One plain attempt first: when it fails, its error (connection
     * refused, authorization violation, TLS handshake) is the reason shown
     * by ofe_bus_ready while the background attempts go on. */
    if ((s = natsOptions_SetRetryOnFailedConnect(o, false, NULL, NULL)) != NATS_OK)
        goto nats_fail;
    s = natsConnection_Connect(&b->nc, o);
    if (s != NATS_OK) {
        js__errtext(s, txt, sizeof(txt));
        if (s == NATS_INVALID_ARG || s == NATS_NO_MEMORY) {
            what = "natsURL";
            goto nats_fail;
        }
        snprintf(b->async_err, sizeof(b->async_err), "%s", txt);
        OFE_WARN(b->comp, "jetstream", "cannot connect to %s yet: %s; retrying in the background",
                 b->urls, txt);
        b->nc = NULL;
        if ((s = natsOptions_SetRetryOnFailedConnect(o, true, on_connected, b)) != NATS_OK)
            goto nats_fail;
        s = natsConnection_Connect(&b->nc, o);
        if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) {
            what = "natsURL";
            goto nats_fail;
        }
    }
    if (s == NATS_OK) {
        __atomic_store_n(&b->max_payload, natsConnection_GetMaxPayload(b->nc), __ATOMIC_RELAXED);
        pthread_mutex_lock(&b->lock);
        b->connected = true;
        b->ever_connected = true;
        b->stream_check = true;
        pthread_mutex_unlock(&b->lock);
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.AckHandler = ack_handler;
    jo.PublishAsync.AckHandlerClosure = b;
    if ((s = natsConnection_JetStream(&b->js, b->nc, &jo)) != NATS_OK) {
        what = "JetStream context";
        goto nats_fail;
    }
    if (pthread_create(&b->mgmt, NULL, mgmt_run, b) != 0) {
        rc = ofe_err(errstr, errstr_size, OFE_ENOMEM, "jetstream: cannot start a thread");
        goto fail;
    }
    b->mgmt_started = true;
    *ctx = b;
    return 0;
nats_fail:
    rc = ofe_err(errstr, errstr_size,
                 s == NATS_NO_MEMORY                               ? OFE_ENOMEM
                 : s == NATS_ILLEGAL_STATE && !strcmp(what, "TLS") ? OFE_EUNSUPP
                                                                   : OFE_EINVAL,
                 "jetstream: %s: %s", what, js__errtext(s, txt, sizeof(txt)));
fail:
    if (b->nc) {
        /* the connection may run callbacks on b until its closed callback */
        natsConnection_Close(b->nc);
        pthread_mutex_lock(&b->lock);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += CLOSE_CB_WAIT_S;
        while (!b->closed_cb && pthread_cond_timedwait(&b->cond, &b->lock, &ts) == 0)
            ;
        pthread_mutex_unlock(&b->lock);
    }
    bus_free(b);
    return rc;
}

static void js_close(void *ctx, uint32_t drain_ms)
{
    struct js_bus *b = ctx;
    char msg[256];
    pthread_mutex_lock(&b->lock);
    b->closing = true;
    while (b->publishers > 0)
        pthread_cond_wait(&b->cond, &b->lock);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t t =
        (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + (uint64_t)drain_ms * 1000000u;
    ts.tv_sec = (time_t)(t / 1000000000u);
    ts.tv_nsec = (long)(t % 1000000000u);
    while (b->npubs > 0 && pthread_cond_timedwait(&b->cond, &b->lock, &ts) == 0)
        ;
    b->mgmt_stop = true;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
    if (b->mgmt_started)
        pthread_join(b->mgmt, NULL);
    /* Fail what is left; late PubAcks find nothing in the map. */
    pthread_mutex_lock(&b->lock);
    struct jpub *left = NULL;
    unsigned nleft = 0;
    while (b->pubs) {
        struct jpub *jp = b->pubs;
        unlink_pub(b, jp);
        jp->next = left;
        left = jp;
        nleft++;
    }
    pthread_mutex_unlock(&b->lock);
    if (nleft)
        OFE_WARN(b->comp, "jetstream", "closing with %u publishes not confirmed by JetStream",
                 nleft);
    snprintf(msg, sizeof(msg), "jetstream: the bus closed before stream %s confirmed the event",
             b->stream);
    while (left) {
        struct jpub *n = left->next;
        finish(left, OFE_ECLOSED, msg);
        left = n;
    }
    if (b->js && b->published) { /* cnats 3.4 crashes on a context that never published */
        natsMsgList l = {NULL, 0};
        if (js_PublishAsyncGetPendingList(&l, b->js) == NATS_OK)
            natsMsgList_Destroy(&l);
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MaxWait = 2000;
        js_PublishAsyncComplete(b->js, &po); /* ack_handler calls in progress return */
    }
    if (b->nc) {
        natsConnection_Close(b->nc);
        pthread_mutex_lock(&b->lock);
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += CLOSE_CB_WAIT_S;
        while (!b->closed_cb && pthread_cond_timedwait(&b->cond, &b->lock, &ts) == 0)
            ;
        bool done = b->closed_cb;
        pthread_mutex_unlock(&b->lock);
        if (!done) {
            /* cnats may still call back into b: keep it rather than crash */
            OFE_ERROR(b->comp, "jetstream", "the NATS connection did not close in time");
            return;
        }
    }
    bus_free(b);
}

static bool js_ready(void *ctx, char *why, size_t why_size)
{
    struct js_bus *b = ctx;
    natsConnStatus st = b->nc ? natsConnection_Status(b->nc) : NATS_CONN_STATUS_CLOSED;
    const char *last = NULL;
    if (st != NATS_CONN_STATUS_CONNECTED && b->nc)
        natsConnection_GetLastError(b->nc, &last);
    pthread_mutex_lock(&b->lock);
    bool ok = false;
    if (b->closing) {
        snprintf(why, why_size, "closing");
    } else if (st != NATS_CONN_STATUS_CONNECTED) {
        const char *state = !b->ever_connected && st != NATS_CONN_STATUS_CLOSED ? "connecting"
                            : st == NATS_CONN_STATUS_RECONNECTING               ? "reconnecting"
                            : st == NATS_CONN_STATUS_CONNECTING                 ? "connecting"
                            : st == NATS_CONN_STATUS_CLOSED ? "connection closed"
                                                            : "disconnected";
        snprintf(why, why_size, "not connected to %s: %s%s%s%s%s%s", b->urls, state,
                 last && *last ? ": " : "", last && *last ? last : "", b->async_err[0] ? " (" : "",
                 b->async_err, b->async_err[0] ? ")" : "");
    } else if (!b->stream_ok) {
        snprintf(why, why_size, "connected to %s, stream %s not ready%s%s", b->urls, b->stream,
                 b->stream_err[0] ? ": " : "", b->stream_err);
    } else {
        ok = true;
        if (why_size)
            why[0] = '\0';
    }
    pthread_mutex_unlock(&b->lock);
    return ok;
}

static const char *js_describe(void *ctx)
{
    return ((struct js_bus *)ctx)->desc;
}

const struct ofe_pubsub_ops ofe_pubsub_jetstream = {
    .name = "jetstream",
    .open = js_open,
    .publish = js_publish,
    .subscribe = js__subscribe,
    .stop = js__stop,
    .release = js__release,
    .ack = js__ack,
    .nack = js__nack,
    .abandon = js__abandon,
    .ready = js_ready,
    .close = js_close,
    .describe = js_describe,
};
