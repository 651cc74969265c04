/* Dead letters: an event the sink did not take after every attempt goes to
 * the subscriber's deadLetterSink and deadLetterTopic, with extensions
 * saying where it was going and why it failed (Knative's
 * knativeerrordest/code/data, named ofeerror*). Without either it is
 * logged and counted as dropped. Also the wrapper event of an invalid bus
 * message. Formats: docs/trigger.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ofe/err.h"
#include "ofe/log.h"
#include "trigger.h"

/* Length of the UTF-8 sequence starting at p (max n bytes), or 0 when it
 * is not valid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    size_t len;
    unsigned min;
    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0) {
        len = 2;
        min = 0x80;
        c &= 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3;
        min = 0x800;
        c &= 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4;
        min = 0x10000;
        c &= 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (p[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    if (c >= 0x80 && c <= 0x9f) /* C1 controls: not allowed in a String */
        return 0;
    return len;
}

char *trg_excerpt(const void *data, size_t len)
{
    const unsigned char *p = data;
    struct ofe_buf b = OFE_BUF_INIT;
    if (ofe_buf_reserve(&b, TRG_ERR_DATA_MAX + 1) != 0)
        return NULL;
    size_t i = 0;
    while (i < len && b.len < TRG_ERR_DATA_MAX) {
        size_t n = utf8_len(p + i, len - i);
        if (n == 0) {
            ofe_buf_putc(&b, '?'); /* not text: one mark per byte */
            i++;
        } else if (n == 1) {
            unsigned char c = p[i++];
            ofe_buf_putc(&b, c < 0x20 || c == 0x7f ? ' ' : (char)c);
        } else {
            if (b.len + n > TRG_ERR_DATA_MAX)
                break;
            ofe_buf_append(&b, p + i, n);
            i += n;
        }
    }
    while (b.len && b.data[b.len - 1] == ' ')
        b.data[--b.len] = '\0';
    char *s = ofe_buf_detach(&b, NULL);
    return s;
}

static int set_error_ext(struct ofe_ce *ev, const char *dest, int code, const char *data,
                         size_t data_len, char *errstr, size_t errstr_size)
{
    char *x = trg_excerpt(data ? data : "", data ? data_len : 0);
    if (!x)
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    int rc = ofe_ce_set_str(ev, TRG_ERR_DEST, OFE_CE_T_STRING, dest, errstr, errstr_size);
    if (!rc)
        rc = ofe_ce_set_int(ev, TRG_ERR_CODE, code, errstr, errstr_size);
    if (!rc && *x)
        rc = ofe_ce_set_str(ev, TRG_ERR_DATA, OFE_CE_T_STRING, x, errstr, errstr_size);
    free(x);
    return rc;
}

/* ---- to the dead-letter sink --------------------------------------------- */

struct dlsop {
    struct trg_job *j;
    struct ofe_ce *ev;
};

static void dls_try(struct dlsop *op);

static void on_dls_done(void *opaque, const struct ofe_send_report *r)
{
    struct dlsop *op = opaque;
    struct trg_job *j = op->j;
    struct trg_subscriber *s = j->s;
    if (r->outcome == OFE_DELIVERY_OK) {
        atomic_fetch_add(&j->dl_ok, 1);
    } else if (atomic_load(&s->t->aborting)) {
        atomic_store(&j->give_back, true);
    } else {
        struct ofe_http_result hr = {.status = r->last_status,
                                     .err = r->last_status ? 0 : OFE_ECONN};
        bool transient = ofe_delivery_classify(&hr) == OFE_DELIVERY_RETRY;
        OFE_ERROR(TRG_COMPONENT, s->t->id,
                  "subscriber %s: event id=%s not taken by the deadLetterSink %s after %u "
                  "attempt(s): %s%s",
                  s->name, ofe_ce_get_str(j->ev, "id"), s->dls_url, r->attempts,
                  r->last_error ? r->last_error : "",
                  transient ? " (the bus message comes again later)" : "");
        if (transient)
            atomic_store(&j->again, true);
        else
            atomic_fetch_add(&j->dl_perm, 1);
    }
    ofe_ce_unref(op->ev);
    free(op);
    trg_job_part_done(j);
}

static void dls_later(void *opaque)
{
    dls_try(opaque);
}

static void dls_try(struct dlsop *op)
{
    struct trg_job *j = op->j;
    struct trg_subscriber *s = j->s;
    char err[256] = "";
    int rc = trg_http_send(s->t, s->dls[j->lane], op->ev, on_dls_done, NULL, op, err, sizeof(err));
    if (rc == 0)
        return;
    if (rc == OFE_EAGAIN && trg_http_later(s->t, j->lane, 5, dls_later, op) == 0)
        return;
    if (rc == OFE_EAGAIN || rc == OFE_ECLOSED) {
        atomic_store(&j->give_back, true);
    } else {
        OFE_ERROR(TRG_COMPONENT, s->t->id, "subscriber %s: dead letter of event id=%s: %s", s->name,
                  ofe_ce_get_str(j->ev, "id"), err);
        atomic_fetch_add(&j->dl_perm, 1);
    }
    ofe_ce_unref(op->ev);
    free(op);
    trg_job_part_done(j);
}

void trg_deadletter(struct trg_job *j, int code, const char *data, size_t data_len,
                    const char *reason)
{
    struct trg_subscriber *s = j->s;
    struct trg_trigger *t = s->t;
    if (!s->dls && !s->dlt) {
        ofe_counter_inc(s->m.dropped);
        OFE_ERROR(TRG_COMPONENT, t->id,
                  "subscriber %s: event id=%s source=%s type=%s dropped: %s failed (%s) and the "
                  "subscriber has no deadLetterSink or deadLetterTopic",
                  s->name, ofe_ce_get_str(j->ev, "id"), ofe_ce_get_str(j->ev, "source"),
                  ofe_ce_get_str(j->ev, "type"), s->sink_url ? s->sink_url : "delivery",
                  reason ? reason : "");
        return;
    }
    struct ofe_ce *dl;
    if (j->kind == TRG_JOB_INVALID) {
        dl = ofe_ce_ref(j->ev); /* the wrapper carries its extensions */
    } else {
        char err[256];
        dl = ofe_ce_dup(j->ev);
        if (!dl || set_error_ext(dl, s->sink_url ? s->sink_url : "", code, data, data_len, err,
                                 sizeof(err)) != 0) {
            ofe_ce_unref(dl);
            atomic_store(&j->again, true);
            return;
        }
    }
    j->dl_started = true;
    if (s->dls) {
        struct dlsop *op = calloc(1, sizeof(*op));
        if (!op) {
            atomic_store(&j->again, true);
        } else {
            op->j = j;
            op->ev = ofe_ce_ref(dl);
            atomic_fetch_add(&j->pending, 1);
            dls_try(op);
        }
    }
    if (s->dlt)
        trg_publish(j, s->dlt, dl, TRG_PUB_DLT);
    ofe_ce_unref(dl);
}

/* ---- invalid bus messages -------------------------------------------------- */

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

struct ofe_ce *trg_invalid_wrapper(const struct trg_trigger *t, const struct ofe_msg *msg)
{
    size_t plen = 0;
    const void *payload = ofe_msg_payload(msg, &plen);
    const char *topic = ofe_msg_topic(msg);
    const char *why = ofe_msg_error(msg);
    struct ofe_ce *ev = ofe_ce_new();
    if (!ev)
        return NULL;
    /* The id is a hash of topic and payload: a message delivered again
     * gets the same id, so receivers can tell duplicates. */
    uint64_t h = fnv1a(0xcbf29ce484222325ull, topic, strlen(topic) + 1);
    h = fnv1a(h, payload ? payload : "", payload ? plen : 0);
    char id[64], source[600], now[64], dest[600];
    snprintf(id, sizeof(id), "invalid-%016llx", (unsigned long long)h);
    snprintf(source, sizeof(source), "/ofe-trigger/%s", t->id);
    snprintf(dest, sizeof(dest), "topic:%s", topic);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(now + n, sizeof(now) - n, ".%06ldZ", ts.tv_nsec / 1000);
    int rc = ofe_ce_set_str(ev, "specversion", OFE_CE_T_NONE, "1.0", NULL, 0);
    rc = rc ? rc : ofe_ce_set_str(ev, "id", OFE_CE_T_NONE, id, NULL, 0);
    rc = rc ? rc : ofe_ce_set_str(ev, "source", OFE_CE_T_NONE, source, NULL, 0);
    rc = rc ? rc : ofe_ce_set_str(ev, "type", OFE_CE_T_NONE, TRG_INVALID_TYPE, NULL, 0);
    rc = rc ? rc : ofe_ce_set_str(ev, "time", OFE_CE_T_NONE, now, NULL, 0);
    rc = rc ? rc
            : ofe_ce_set_str(ev, "datacontenttype", OFE_CE_T_NONE, "application/octet-stream", NULL,
                             0);
    rc = rc ? rc : ofe_ce_set_data(ev, payload ? payload : "", payload ? plen : 0);
    const char *reason = why ? why : "not a CloudEvent";
    rc = rc ? rc : set_error_ext(ev, dest, 0, reason, strlen(reason), NULL, 0);
    if (rc) {
        OFE_ERROR(TRG_COMPONENT, t->id, "cannot build the wrapper of an invalid message: %s",
                  ofe_strerror(rc));
        ofe_ce_unref(ev);
        return NULL;
    }
    return ev;
}
