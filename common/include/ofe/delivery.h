/* Delivering CloudEvents to HTTP sinks: retry policy, backoff with full
 * jitter, and a sender that runs the attempts of one event to one sink.
 *
 * Rules (DESIGN.md "Delivery semantics", Knative's delivery spec):
 * 2xx delivered; connect errors, timeouts, 404, 408, 409, 429 and 5xx are
 * retried; other statuses (400, 401, 403, 413, ...) fail at once. The wait
 * before retry n (1-based) is delay*n (linear) or delay*2^(n-1)
 * (exponential), capped, then drawn uniformly from [0, wait] (full
 * jitter); a Retry-After from a 429 or 503 is honoured up to the cap. */
#ifndef OFE_DELIVERY_H
#define OFE_DELIVERY_H

#include <stdbool.h>
#include <stdint.h>

#include "ofe/ce.h"
#include "ofe/err.h"
#include "ofe/http_client.h"

enum ofe_backoff { OFE_BACKOFF_EXPONENTIAL = 0, OFE_BACKOFF_LINEAR };

struct ofe_delivery_policy {
    uint32_t retry; /* retries after the first attempt */
    enum ofe_backoff backoff;
    uint32_t delay_ms;   /* base delay */
    uint32_t cap_ms;     /* largest wait between attempts */
    uint32_t timeout_ms; /* per attempt */
    bool jitter;         /* full jitter (default true); off for tests of the schedule */
};

/* Defaults: 3 retries, exponential, 200 ms, cap 30 s, timeout 30 s, jitter. */
void ofe_delivery_policy_default(struct ofe_delivery_policy *p);

/* Outcome class of an attempt: OK, RETRY or FAIL. */
enum ofe_outcome ofe_delivery_classify(const struct ofe_http_result *r);

/* Wait before retry number `retry_no` (1 = the first retry). rnd is a
 * uniformly random 64-bit value (for jitter); retry_after_ms < 0 when
 * absent. */
uint32_t ofe_delivery_backoff_ms(const struct ofe_delivery_policy *p, unsigned retry_no,
                                 int64_t retry_after_ms, uint64_t rnd);

struct ofe_sender;

struct ofe_sender_opts {
    const char *url;       /* http:// or https:// */
    enum ofe_ce_mode mode; /* OFE_CE_BINARY (default) or OFE_CE_STRUCTURED */
    struct ofe_delivery_policy policy;
    const struct ofe_hdrs *extra_headers; /* added to every request; may be NULL */
    bool want_reply;                      /* keep the response body to decode a reply event */
};

/* What happened to one event, given to the completion callback. */
struct ofe_send_report {
    enum ofe_outcome outcome; /* OK or FAIL (RETRY never reaches the callback) */
    unsigned attempts;
    int last_status;                   /* 0 when no response arrived */
    const char *last_error;            /* transport error or "HTTP 503", for logs */
    const unsigned char *body_excerpt; /* start of the last response body */
    size_t body_excerpt_len;
    struct ofe_ce *reply; /* a CloudEvent in a 200 response (want_reply), borrowed */
    double latency_s;     /* first attempt to completion */
};

typedef void (*ofe_send_done_fn)(void *opaque, const struct ofe_send_report *rep);
/* Called before every retry (for metrics); may be NULL. */
typedef void (*ofe_send_retry_fn)(void *opaque, unsigned retry_no, const char *why);

/* Creates a sender for one sink; it uses client c (not owned). Returns NULL
 * with errstr on a bad URL or allocation failure. */
struct ofe_sender *ofe_sender_new(struct ofe_http_client *c, const struct ofe_sender_opts *opts,
                                  char *errstr, size_t errstr_size);
/* Frees the sender; sends in progress must have completed (their callbacks
 * run before ofe_http_client_destroy returns). NULL is a no-op. */
void ofe_sender_destroy(struct ofe_sender *s);

/* Starts delivering ev (a reference is taken) with retries per the policy;
 * done runs once with the final outcome, on the client thread. Returns 0,
 * or OFE_EINVAL (the event cannot be encoded: errstr says why),
 * OFE_EAGAIN (client queue full), OFE_ECLOSED, OFE_ENOMEM; done is not
 * called then. */
int ofe_sender_send(struct ofe_sender *s, struct ofe_ce *ev, ofe_send_done_fn done,
                    ofe_send_retry_fn on_retry, void *opaque, char *errstr, size_t errstr_size);

const char *ofe_sender_url(const struct ofe_sender *s);

#endif
