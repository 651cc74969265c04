/* Embedded HTTP server (libmicrohttpd): routes, bounded request bodies,
 * replies given inline or later from any thread, and the standard
 * /metrics, /healthz and /readyz endpoints every daemon serves.
 *
 * Threads: handlers run on libmicrohttpd's threads (a small pool). A handler
 * that cannot answer at once (waiting for a broker confirmation) keeps the
 * exchange and calls ofe_httpd_reply() later from any thread; the connection
 * is suspended meanwhile and costs no thread. */
#ifndef OFE_HTTPD_H
#define OFE_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ofe/ce.h"
#include "ofe/metrics.h"

struct ofe_httpd;
struct ofe_http_exchange; /* one request and, later, its reply */

/* The request as the handler sees it. Valid until the reply is given. */
struct ofe_http_request {
    const char *method;             /* "GET", "POST", ... */
    const char *path;               /* decoded path without the query, e.g. "/topics/orders" */
    const char *query;              /* raw query string after '?', or "" */
    const struct ofe_hdrs *headers; /* as received; look up with ofe_hdrs_get (any case) */
    const unsigned char *body;
    size_t body_len;
    const char *remote; /* peer address as text */
};

/* Handler: must eventually call ofe_httpd_reply() exactly once for x, on
 * this thread before returning or on any thread later. */
typedef void (*ofe_httpd_handler)(struct ofe_http_exchange *x, const struct ofe_http_request *req,
                                  void *arg);

struct ofe_httpd_opts {
    const char *bind;      /* address to bind; NULL means "127.0.0.1" */
    uint16_t port;         /* 0 picks a free port (see ofe_httpd_port) */
    size_t max_body;       /* larger bodies get 413 without calling a handler; 0 = 1 MiB */
    unsigned threads;      /* worker threads; 0 = 2 */
    unsigned max_conns;    /* connection limit; 0 = 1024 */
    unsigned timeout_s;    /* idle connection timeout; 0 = 60 */
    const char *component; /* for log lines, e.g. "eventbus" */
};

/* Starts a server listening at once: ofe_httpd_open, then ofe_httpd_serve.
 * Returns NULL with errstr filled when the address cannot be bound (e.g.
 * "127.0.0.1:8080: address already in use"). */
struct ofe_httpd *ofe_httpd_start(const struct ofe_httpd_opts *opts, char *errstr,
                                  size_t errstr_size);
/* Binds and listens (the port is known) without answering yet: connections
 * wait in the listen backlog until ofe_httpd_serve, so routes added in
 * between are all there for the first request. */
struct ofe_httpd *ofe_httpd_open(const struct ofe_httpd_opts *opts, char *errstr,
                                 size_t errstr_size);
/* Starts answering. Returns 0, or OFE_EIO with errstr. */
int ofe_httpd_serve(struct ofe_httpd *h, char *errstr, size_t errstr_size);
/* Stops accepting, answers suspended exchanges with 503 and frees the
 * server. ofe_httpd_stop(NULL) is a no-op. */
void ofe_httpd_stop(struct ofe_httpd *h);
/* The port the server listens on. */
uint16_t ofe_httpd_port(const struct ofe_httpd *h);

/* Routes a method and a path to a handler. path is exact ("/healthz") or a
 * prefix when it ends with '*' ("/topics/ *" without the space). method NULL
 * matches any method. Routes are tried in the order added; no route gives
 * 404, a path routed only for other methods gives 405. Add routes between
 * ofe_httpd_open and ofe_httpd_serve (not thread-safe against requests,
 * and a request before its route gets 404). Returns 0 or
 * OFE_ENOMEM. */
int ofe_httpd_route(struct ofe_httpd *h, const char *method, const char *path, ofe_httpd_handler fn,
                    void *arg);

/* Adds GET /metrics (rendering m), GET /healthz (200 "ok" while the process
 * runs) and GET /readyz (200 "ready" when ready_fn(arg) returns true, else
 * 503 with the reason ready_fn wrote). ready_fn may be NULL (always ready). */
int ofe_httpd_route_std(struct ofe_httpd *h, struct ofe_metrics *m,
                        bool (*ready_fn)(void *arg, char *why, size_t why_size), void *arg);

/* Replies. headers may be NULL; body is copied. Safe from any thread, once
 * per exchange; the exchange is freed by it. */
void ofe_httpd_reply(struct ofe_http_exchange *x, int status, const char *content_type,
                     const void *body, size_t body_len, const struct ofe_hdrs *headers);
/* Shorthand: a text/plain body from a format. */
void ofe_httpd_replyf(struct ofe_http_exchange *x, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
