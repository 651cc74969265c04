/* Internals of the HTTP client (http_client.c, http_client_h1.c) and its
 * HTTP/1.1 response parser (http_parse.c).
 *
 * Plain http:// requests go through our own HTTP/1.1 engine
 * (http_client_h1.c): epoll, non-blocking sockets, a keep-alive pool per
 * host:port. Everything else (https://, proxies from the environment,
 * requests the engine does not handle) goes through libcurl's multi
 * interface, as before. Both run on the client's one thread. */
#ifndef OFE_HTTP_CLIENT_INT_H
#define OFE_HTTP_CLIENT_INT_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "ofe/buf.h"
#include "ofe/ce.h"
#include "ofe/http_client.h"

/* ---- the response parser (http_parse.c) -------------------------------- */

#define HTTP__MAX_HEAD          (64 * 1024) /* bytes of one response head (status line + headers) */
#define HTTP__MAX_INFORMATIONAL 32          /* 1xx responses skipped before the final one */

enum { HTTP__MORE = 0, HTTP__DONE = 1 };

/* One response being read. Reusable: http__resp_start() readies it for the
 * next response of a connection and keeps its storage. */
struct http__resp {
    /* results (valid once HTTP__DONE was returned; headers once the head was read) */
    int status;             /* final status (1xx responses are skipped) */
    bool keep_alive;        /* the connection may carry another request */
    bool truncated;         /* the body was longer than max_body */
    int64_t retry_after_ms; /* Retry-After, -1 when absent or unreadable */
    uint64_t nread;         /* bytes fed since start (0: nothing arrived) */
    struct ofe_hdrs hdrs;   /* headers of the final response, names as sent */
    struct ofe_buf body;    /* the first max_body bytes of the decoded body */
    char err[160];          /* why feed/eof failed */

    /* private */
    size_t max_body;
    bool no_body; /* the response to a HEAD request */
    int state, kind;
    struct ofe_buf head; /* the head read so far */
    size_t line_start, scan;
    unsigned informational;
    uint64_t left;   /* body bytes left (Content-Length, or of the current chunk) */
    size_t line_len; /* bytes of the current chunk-size or trailer line */
    size_t trailer_len;
    unsigned digits;
    struct ofe_buf fold; /* a header value joined from folded lines */
};

void http__resp_init(struct http__resp *r);
void http__resp_fini(struct http__resp *r);
/* Readies r for a new response: keeps at most max_body bytes of the body;
 * no_body for the response to a HEAD request. */
void http__resp_start(struct http__resp *r, size_t max_body, bool no_body);
/* Feeds the next n bytes from the connection. Returns HTTP__MORE (all
 * consumed, the response is not complete), HTTP__DONE (*used bytes were
 * consumed and the response is complete; bytes after those are not part of
 * it) or OFE_EIO (malformed response or over a limit; r->err says what).
 * After DONE or an error, only http__resp_start() may follow. */
int http__resp_feed(struct http__resp *r, const char *p, size_t n, size_t *used);
/* The connection was closed by the server. Returns HTTP__DONE when that
 * ends the response (a body delimited by the close), else OFE_ECONN with
 * r->err saying what was missing. */
int http__resp_eof(struct http__resp *r);

/* Retry-After value (delta seconds or HTTP date) in ms, capped at a day; -1
 * when it cannot be read. */
int64_t http__retry_after(const char *v, size_t len);

/* ---- the client -------------------------------------------------------- */

struct h1_conn;
struct h1_host;
struct h1_resolve;

/* One submitted request, or a timer (fn != NULL). */
struct op {
    struct op *next;
    uint64_t due_ns;
    uint64_t seq; /* FIFO order among equal due times */
    /* a timer */
    void (*fn)(void *opaque);
    /* a request */
    ofe_http_done_fn done;
    void *opaque;
    uint32_t timeout_ms;
    bool h1;                   /* our engine, else libcurl */
    struct op *rnext, **rprev; /* the client's list of running requests */
    uint64_t start_ns;

    /* libcurl requests */
    char *method, *url;
    unsigned char *body;
    size_t body_len;
    struct curl_slist *hdrs;
    CURL *easy;
    struct ofe_buf rbody;
    size_t limit; /* bytes of the response body to keep */
    bool truncated;
    struct ofe_hdrs rhdrs;
    int64_t retry_after_ms;
    char errbuf[CURL_ERROR_SIZE];

    /* engine requests: one allocation holds the op and these strings */
    const char *key;  /* "host:port", lower-case: the pool */
    const char *host; /* for getaddrinfo (no brackets) */
    uint16_t port;
    uint32_t hash;   /* of key */
    const char *req; /* the request as sent: head and body */
    size_t req_len;
    bool no_body;          /* HEAD: the response has no body */
    bool retried;          /* already resent once on a fresh connection */
    uint64_t deadline_ns;  /* whole request */
    size_t dl_idx;         /* in the deadline heap */
    struct h1_conn *conn;  /* the connection it owns, NULL while queued */
    struct h1_host *qhost; /* the host it waits on, NULL when not queued */
    struct op *qnext, *qprev;
};

/* The engine's state, client thread only. */
struct h1 {
    int epfd;
    unsigned max_host_conns, max_idle;
    struct h1_host **buckets;
    size_t nbuckets, nhosts;
    struct op **dl; /* running requests, min-heap on deadline_ns */
    size_t ndl, dl_cap;
    struct h1_conn *idle_head, *idle_tail; /* every idle connection, oldest first */
    size_t nidle;
    struct h1_conn *dead; /* closed during an event batch, freed after it */
    char *rbuf;           /* receive scratch */
    size_t rbuf_size;
    uint64_t next_sweep_ns;
    struct h1_resolve *resolving; /* lookups running in helper threads */
};

struct ofe_http_client {
    pthread_t thr;
    CURLM *multi;
    char *component;
    char *user_agent;
    unsigned max_inflight, max_queued;
    size_t max_body;
    bool curl_only; /* a proxy from the environment: let libcurl apply it */
    int efd;        /* eventfd: wakes the thread */

    pthread_mutex_t lock; /* guards incoming, resolved, stopping */
    struct op *incoming, **in_tail;
    struct h1_resolve *resolved; /* finished lookups for the thread */
    bool stopping;
    atomic_uint pending;   /* every request not yet completed */
    atomic_bool wake_sent; /* efd written since the thread last looked */

    /* client thread only */
    bool kick;        /* work queued from the thread itself: do not sleep */
    struct op **heap; /* delayed ops, min-heap on (due_ns, seq) */
    size_t nheap, heap_cap;
    struct op *ready, **ready_tail;
    unsigned inflight;
    unsigned curl_running;
    struct op *running;
    uint64_t seq;
    CURL **pool;
    size_t npool;
    struct h1 h1;
};

uint64_t http__now_ns(void);
/* Calls done with r, then frees o and counts it as completed. */
void http__complete(struct ofe_http_client *c, struct op *o, struct ofe_http_result *r);
void http__running_remove(struct ofe_http_client *c, struct op *o);
/* Wakes the client thread (from any thread). */
void http__wake(struct ofe_http_client *c);

/* The engine (http_client_h1.c), client thread only unless said. */
int http__h1_init(struct ofe_http_client *c, char *errstr, size_t errstr_size);
/* Frees what is left after http__h1_cancel_all (any thread, after the
 * client thread ended). */
void http__h1_fini(struct ofe_http_client *c);
/* Starts a request: counted in flight until it completes. */
void http__h1_start(struct ofe_http_client *c, struct op *o);
/* Handles epoll events; waits up to timeout_ms when wait is set. */
void http__h1_poll(struct ofe_http_client *c, int timeout_ms);
/* Times out overdue requests, closes stale idle connections, applies
 * finished DNS lookups. Returns ms until the next deadline (capped). */
int http__h1_timers(struct ofe_http_client *c, int cap_ms);
/* Completes every request with OFE_ECLOSED and closes every connection. */
void http__h1_cancel_all(struct ofe_http_client *c);
/* Parses an http:// URL and builds the request. Returns NULL when the
 * engine does not take this request (libcurl will), with *nomem set when
 * that was for lack of memory. Any thread. */
struct op *http__h1_build(const struct ofe_http_client *c, const struct ofe_http_req *req,
                          bool *nomem);

#endif
