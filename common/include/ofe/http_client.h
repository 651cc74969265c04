/* Asynchronous HTTP client on libcurl's multi interface.
 *
 * One client runs one thread that owns every transfer; requests are
 * submitted from any thread and completed by a callback on the client
 * thread. Connections are kept alive and reused per host (HTTP/1.1; HTTP/2
 * over TLS when the server offers it through ALPN). In-flight transfers are
 * bounded: a submission beyond the bound waits in a queue that is itself
 * bounded (OFE_EAGAIN when full), so callers feel back-pressure. */
#ifndef OFE_HTTP_CLIENT_H
#define OFE_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ofe/ce.h"

struct ofe_http_client;

struct ofe_http_client_opts {
    unsigned max_inflight;    /* concurrent transfers; 0 = 256 */
    unsigned max_queued;      /* submissions waiting beyond that; 0 = 65536 */
    unsigned max_host_conns;  /* connections per host; 0 = 64 */
    size_t max_response_body; /* bytes of a response body kept; 0 = 64 KiB */
    const char *user_agent;   /* NULL = "ofevents/<version>" */
    const char *component;    /* for log lines */
};

/* The outcome of one HTTP exchange, valid during the callback only. */
struct ofe_http_result {
    int status;                     /* HTTP status, 0 when no response arrived */
    int err;                        /* 0, OFE_ETIMEDOUT, OFE_ECONN, OFE_EIO, OFE_ECLOSED */
    const char *errmsg;             /* transport error text ("" when none) */
    const struct ofe_hdrs *headers; /* response headers (names as sent) */
    const unsigned char *body;      /* first max_response_body bytes of the body */
    size_t body_len;
    bool body_truncated;
    int64_t retry_after_ms; /* from Retry-After (seconds or HTTP date), -1 if absent */
    double elapsed_s;       /* request start to completion */
};

typedef void (*ofe_http_done_fn)(void *opaque, const struct ofe_http_result *r);

/* A request to submit. Everything is copied at submission. */
struct ofe_http_req {
    const char *method; /* NULL = "POST" */
    const char *url;
    const struct ofe_hdrs *headers; /* may be NULL */
    const void *body;
    size_t body_len;
    uint32_t timeout_ms; /* whole-request timeout; 0 = 30 s */
    uint32_t delay_ms;   /* start no sooner than this from now (retries) */
};

/* Starts a client and its thread. Returns NULL on failure (errstr says why). */
struct ofe_http_client *ofe_http_client_new(const struct ofe_http_client_opts *opts, char *errstr,
                                            size_t errstr_size);
/* Cancels every transfer not yet finished (their callbacks run with err
 * OFE_ECLOSED), stops the thread and frees the client. NULL is a no-op. */
void ofe_http_client_destroy(struct ofe_http_client *c);

/* Submits a request; done(opaque, result) runs exactly once on the client
 * thread when it completes, fails or is cancelled. Returns 0, OFE_EAGAIN
 * (the queue is full; done is not called), OFE_ECLOSED or OFE_ENOMEM.
 * Thread-safe. */
int ofe_http_client_submit(struct ofe_http_client *c, const struct ofe_http_req *req,
                           ofe_http_done_fn done, void *opaque);

/* Runs fn(opaque) on the client thread after delay_ms (a timer, for work
 * that must happen there). Returns 0, OFE_ECLOSED or OFE_ENOMEM. */
int ofe_http_client_later(struct ofe_http_client *c, uint32_t delay_ms, void (*fn)(void *opaque),
                          void *opaque);

/* Transfers running plus queued (for metrics and readiness). */
unsigned ofe_http_client_pending(const struct ofe_http_client *c);

#endif
