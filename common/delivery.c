/* Delivery of CloudEvents to HTTP sinks with retries (delivery.h). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "ofe/delivery.h"
#include "ofe/log.h"

void ofe_delivery_policy_default(struct ofe_delivery_policy *p)
{
    p->retry = 3;
    p->backoff = OFE_BACKOFF_EXPONENTIAL;
    p->delay_ms = 200;
    p->cap_ms = 30000;
    p->timeout_ms = 30000;
    p->jitter = true;
}

enum ofe_outcome ofe_delivery_classify(const struct ofe_http_result *r)
{
    if (r->err == OFE_ECLOSED)
        return OFE_DELIVERY_FAIL;
    if (r->err || r->status == 0)
        return OFE_DELIVERY_RETRY; /* connect errors, timeouts, resets */
    int s = r->status;
    if (s >= 200 && s < 300)
        return OFE_DELIVERY_OK;
    if (s == 404 || s == 408 || s == 409 || s == 429 || s >= 500)
        return OFE_DELIVERY_RETRY;
    return OFE_DELIVERY_FAIL;
}

uint32_t ofe_delivery_backoff_ms(const struct ofe_delivery_policy *p, unsigned retry_no,
                                 int64_t retry_after_ms, uint64_t rnd)
{
    uint64_t cap = p->cap_ms ? p->cap_ms : UINT32_MAX;
    uint64_t wait;
    if (retry_no == 0)
        retry_no = 1;
    if (p->backoff == OFE_BACKOFF_LINEAR) {
        wait = (uint64_t)p->delay_ms * retry_no;
    } else {
        unsigned shift = retry_no - 1 > 40 ? 40 : retry_no - 1;
        wait = (uint64_t)p->delay_ms << shift;
    }
    if (wait > cap)
        wait = cap;
    if (p->jitter && wait > 0)
        wait = rnd % (wait + 1);
    /* The server said when: never earlier than that, within the cap. */
    if (retry_after_ms >= 0) {
        uint64_t ra = (uint64_t)retry_after_ms > cap ? cap : (uint64_t)retry_after_ms;
        if (ra > wait)
            wait = ra;
    }
    return (uint32_t)wait;
}

struct ofe_sender {
    struct ofe_http_client *c;
    char *url;
    enum ofe_ce_mode mode;
    struct ofe_delivery_policy policy;
    struct ofe_hdrs extra;
    bool want_reply;
};

struct send_op {
    struct ofe_sender *s;
    struct ofe_ce *ev;
    struct ofe_hdrs hdrs;
    struct ofe_buf body_buf;
    const void *body;
    size_t body_len;
    unsigned attempts;
    ofe_send_done_fn done;
    ofe_send_retry_fn on_retry;
    void *opaque;
    struct timespec t0;
    int last_status;
    char last_error[256];
};

static uint64_t rnd64(void)
{
    static __thread uint64_t x;
    if (!x) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        x = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)&x;
        if (!x)
            x = 0x9e3779b97f4a7c15ull;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
}

static double since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static void op_free(struct send_op *o)
{
    ofe_ce_unref(o->ev);
    ofe_hdrs_fini(&o->hdrs);
    ofe_buf_fini(&o->body_buf);
    free(o);
}

static int attempt(struct send_op *o, uint32_t delay_ms);

static void finish(struct send_op *o, enum ofe_outcome out, const struct ofe_http_result *r)
{
    struct ofe_send_report rep = {
        .outcome = out,
        .attempts = o->attempts,
        .last_status = o->last_status,
        .last_error = o->last_error,
        .latency_s = since(&o->t0),
    };
    struct ofe_ce_list replies = {0};
    if (r) {
        rep.body_excerpt = r->body;
        rep.body_excerpt_len = r->body_len > 1024 ? 1024 : r->body_len;
        /* A 200 carrying a CloudEvent is a reply; 202 and others never are. */
        if (o->s->want_reply && out == OFE_DELIVERY_OK && r->status == 200 && !r->body_truncated &&
            r->headers) {
            char err[256];
            bool has_ce = ofe_hdrs_get(r->headers, "ce-specversion") != NULL;
            const struct ofe_hdr *ct = ofe_hdrs_get(r->headers, "content-type");
            if (ct && ct->value_len >= 23 && !strncasecmp(ct->value, "application/cloudevents", 23))
                has_ce = true;
            if (has_ce) {
                if (ofe_ce_http_decode(r->headers, r->body, r->body_len, 0, &replies, err,
                                       sizeof(err)) == 0 &&
                    replies.n == 1)
                    rep.reply = replies.v[0];
                else
                    OFE_WARN("delivery", o->s->url, "ignoring the reply of %s: %s", o->s->url,
                             replies.n > 1 ? "a batch is not a reply" : err);
            }
        }
    }
    o->done(o->opaque, &rep);
    ofe_ce_list_fini(&replies);
    op_free(o);
}

static void retry_timer(void *opaque)
{
    struct send_op *o = opaque;
    if (attempt(o, 0) != 0) {
        snprintf(o->last_error, sizeof(o->last_error), "cannot resubmit: HTTP client closed");
        finish(o, OFE_DELIVERY_FAIL, NULL);
    }
}

static void on_done(void *opaque, const struct ofe_http_result *r)
{
    struct send_op *o = opaque;
    enum ofe_outcome out = ofe_delivery_classify(r);
    o->last_status = r->status;
    if (r->status)
        snprintf(o->last_error, sizeof(o->last_error), "HTTP %d", r->status);
    else
        snprintf(o->last_error, sizeof(o->last_error), "%s", r->errmsg);

    if (out == OFE_DELIVERY_RETRY && o->attempts <= o->s->policy.retry) {
        uint32_t wait =
            ofe_delivery_backoff_ms(&o->s->policy, o->attempts, r->retry_after_ms, rnd64());
        if (o->on_retry)
            o->on_retry(o->opaque, o->attempts, o->last_error);
        OFE_DEBUG("delivery", o->s->url, "attempt %u failed (%s), retrying in %u ms", o->attempts,
                  o->last_error, wait);
        int rc = attempt(o, wait);
        if (rc == OFE_EAGAIN)
            rc = ofe_http_client_later(o->s->c, wait ? wait : 10, retry_timer, o);
        if (rc == 0)
            return;
        out = OFE_DELIVERY_FAIL;
    } else if (out == OFE_DELIVERY_RETRY) {
        out = OFE_DELIVERY_FAIL; /* out of retries */
    }
    finish(o, out, r);
}

static int attempt(struct send_op *o, uint32_t delay_ms)
{
    struct ofe_http_req req = {
        .method = "POST",
        .url = o->s->url,
        .headers = &o->hdrs,
        .body = o->body,
        .body_len = o->body_len,
        .timeout_ms = o->s->policy.timeout_ms,
        .delay_ms = delay_ms,
    };
    o->attempts++;
    int rc = ofe_http_client_submit(o->s->c, &req, on_done, o);
    if (rc)
        o->attempts--;
    return rc;
}

struct ofe_sender *ofe_sender_new(struct ofe_http_client *c, const struct ofe_sender_opts *opts,
                                  char *errstr, size_t errstr_size)
{
    if (!opts->url ||
        (strncasecmp(opts->url, "http://", 7) && strncasecmp(opts->url, "https://", 8))) {
        ofe_err(errstr, errstr_size, OFE_EINVAL,
                "sink URL \"%s\" is not an http:// or https:// URL", opts->url ? opts->url : "");
        return NULL;
    }
    struct ofe_sender *s = calloc(1, sizeof(*s));
    if (!s || !(s->url = strdup(opts->url))) {
        free(s);
        ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
        return NULL;
    }
    s->c = c;
    s->mode = opts->mode == OFE_CE_STRUCTURED ? OFE_CE_STRUCTURED : OFE_CE_BINARY;
    s->policy = opts->policy;
    s->want_reply = opts->want_reply;
    ofe_hdrs_init(&s->extra);
    for (size_t i = 0; opts->extra_headers && i < opts->extra_headers->n; i++) {
        const struct ofe_hdr *h = &opts->extra_headers->v[i];
        if (ofe_hdrs_add_copy(&s->extra, h->name, h->name_len, h->value, h->value_len)) {
            ofe_sender_destroy(s);
            ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
            return NULL;
        }
    }
    return s;
}

void ofe_sender_destroy(struct ofe_sender *s)
{
    if (!s)
        return;
    ofe_hdrs_fini(&s->extra);
    free(s->url);
    free(s);
}

const char *ofe_sender_url(const struct ofe_sender *s)
{
    return s->url;
}

int ofe_sender_send(struct ofe_sender *s, struct ofe_ce *ev, ofe_send_done_fn done,
                    ofe_send_retry_fn on_retry, void *opaque, char *errstr, size_t errstr_size)
{
    struct send_op *o = calloc(1, sizeof(*o));
    if (!o)
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    o->s = s;
    o->ev = ofe_ce_ref(ev);
    o->done = done;
    o->on_retry = on_retry;
    o->opaque = opaque;
    ofe_hdrs_init(&o->hdrs);
    clock_gettime(CLOCK_MONOTONIC, &o->t0);
    int rc = ofe_ce_http_encode(ev, s->mode, 0, &o->hdrs, &o->body_buf, &o->body, &o->body_len,
                                errstr, errstr_size);
    for (size_t i = 0; !rc && i < s->extra.n; i++)
        rc = ofe_hdrs_add_ref(&o->hdrs, s->extra.v[i].name, s->extra.v[i].name_len,
                              s->extra.v[i].value, s->extra.v[i].value_len);
    if (!rc)
        rc = attempt(o, 0);
    if (rc) {
        if (rc == OFE_EAGAIN)
            ofe_err(errstr, errstr_size, rc, "HTTP client queue full");
        else if (rc == OFE_ECLOSED)
            ofe_err(errstr, errstr_size, rc, "HTTP client closed");
        op_free(o);
    }
    return rc;
}
