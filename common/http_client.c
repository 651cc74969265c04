/* Asynchronous HTTP client: one thread driving a libcurl multi handle.
 *
 * Submissions arrive on a locked list and wake the thread with
 * curl_multi_wakeup(). Everything else (the delay heap, the ready queue,
 * running transfers, the pool of easy handles) belongs to the client
 * thread alone and needs no lock. */
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "ofe/err.h"
#include "ofe/http_client.h"
#include "ofe/log.h"

struct op {
    struct op *next;
    uint64_t due_ns;
    uint64_t seq; /* FIFO order among equal due times */
    /* a timer */
    void (*fn)(void *opaque);
    /* a request */
    char *method, *url;
    unsigned char *body;
    size_t body_len;
    struct curl_slist *hdrs;
    uint32_t timeout_ms;
    ofe_http_done_fn done;
    void *opaque;
    /* while running */
    struct op *rnext, **rprev; /* the client's list of running transfers */
    CURL *easy;
    struct ofe_buf rbody;
    size_t limit; /* bytes of the response body to keep */
    bool truncated;
    struct ofe_hdrs rhdrs;
    int64_t retry_after_ms;
    char errbuf[CURL_ERROR_SIZE];
};

struct ofe_http_client {
    pthread_t thr;
    CURLM *multi;
    char *component;
    char *user_agent;
    unsigned max_inflight, max_queued;
    size_t max_body;

    pthread_mutex_t lock; /* guards incoming and stopping */
    struct op *incoming, **in_tail;
    bool stopping;
    atomic_uint pending; /* every request not yet completed */

    /* client thread only */
    struct op **heap; /* delayed ops, min-heap on (due_ns, seq) */
    size_t nheap, heap_cap;
    struct op *ready, **ready_tail;
    unsigned inflight;
    struct op *running;
    uint64_t seq;
    CURL **pool;
    size_t npool;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void op_free(struct op *o)
{
    if (!o)
        return;
    free(o->method);
    free(o->url);
    free(o->body);
    curl_slist_free_all(o->hdrs);
    ofe_buf_fini(&o->rbody);
    ofe_hdrs_fini(&o->rhdrs);
    free(o);
}

/* ---- heap ------------------------------------------------------------- */

static bool op_before(const struct op *a, const struct op *b)
{
    return a->due_ns < b->due_ns || (a->due_ns == b->due_ns && a->seq < b->seq);
}

static int heap_push(struct ofe_http_client *c, struct op *o)
{
    if (c->nheap == c->heap_cap) {
        size_t cap = c->heap_cap ? c->heap_cap * 2 : 64;
        struct op **h = realloc(c->heap, cap * sizeof(*h));
        if (!h)
            return OFE_ENOMEM;
        c->heap = h;
        c->heap_cap = cap;
    }
    size_t i = c->nheap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!op_before(o, c->heap[p]))
            break;
        c->heap[i] = c->heap[p];
        i = p;
    }
    c->heap[i] = o;
    return 0;
}

static struct op *heap_pop(struct ofe_http_client *c)
{
    struct op *top = c->heap[0];
    struct op *last = c->heap[--c->nheap];
    size_t i = 0, n = c->nheap;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const struct op *mo = last;
        if (l < n && op_before(c->heap[l], mo)) {
            m = l;
            mo = c->heap[l];
        }
        if (r < n && op_before(c->heap[r], mo))
            m = r;
        if (m == i)
            break;
        c->heap[i] = c->heap[m];
        i = m;
    }
    if (n)
        c->heap[i] = last;
    return top;
}

/* ---- curl callbacks --------------------------------------------------- */

static int64_t parse_retry_after(const char *v, size_t len)
{
    char tmp[128];
    if (len == 0 || len >= sizeof(tmp))
        return -1;
    memcpy(tmp, v, len);
    tmp[len] = '\0';
    char *end;
    long long secs = strtoll(tmp, &end, 10);
    if (end != tmp && *end == '\0' && secs >= 0)
        return secs > 86400 ? 86400000 : secs * 1000;
    time_t when = curl_getdate(tmp, NULL);
    if (when < 0)
        return -1;
    time_t now = time(NULL);
    return when > now ? (int64_t)(when - now) * 1000 : 0;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    struct op *o = ud;
    size_t n = size * nmemb;
    if (n >= 5 && !strncmp(p, "HTTP/", 5)) {
        /* a new response (after 100-continue or similar): start over */
        ofe_hdrs_reset(&o->rhdrs);
        o->retry_after_ms = -1;
        return n;
    }
    const char *colon = memchr(p, ':', n);
    if (!colon)
        return n;
    size_t nl = (size_t)(colon - p);
    const char *v = colon + 1;
    size_t vl = n - nl - 1;
    while (vl && (*v == ' ' || *v == '\t')) {
        v++;
        vl--;
    }
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
        vl--;
    ofe_hdrs_add_copy(&o->rhdrs, p, nl, v, vl);
    if (nl == 11 && !strncasecmp(p, "Retry-After", 11))
        o->retry_after_ms = parse_retry_after(v, vl);
    return n;
}

/* ---- the thread ------------------------------------------------------- */

static void complete(struct ofe_http_client *c, struct op *o, CURLcode cc)
{
    struct ofe_http_result r = {0};
    long status = 0;
    double total = 0;
    if (o->easy) {
        curl_easy_getinfo(o->easy, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(o->easy, CURLINFO_TOTAL_TIME, &total);
    }
    r.status = (int)status;
    r.elapsed_s = total;
    r.headers = &o->rhdrs;
    r.body = (const unsigned char *)(o->rbody.data ? o->rbody.data : "");
    r.body_len = o->rbody.len;
    r.body_truncated = o->truncated;
    r.retry_after_ms = o->retry_after_ms;
    r.errmsg = "";
    switch (cc) {
    case CURLE_OK:
        break;
    case CURLE_OPERATION_TIMEDOUT:
        r.err = OFE_ETIMEDOUT;
        break;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        r.err = OFE_ECONN;
        break;
    case CURLE_ABORTED_BY_CALLBACK:
        r.err = OFE_ECLOSED;
        break;
    default:
        r.err = OFE_EIO;
        break;
    }
    if (cc != CURLE_OK) {
        r.status = 0; /* a partial response is not an answer */
        r.errmsg = o->errbuf[0] ? o->errbuf : curl_easy_strerror(cc);
    }
    o->done(o->opaque, &r);
    atomic_fetch_sub(&c->pending, 1);
}

static void cancel(struct ofe_http_client *c, struct op *o)
{
    if (o->fn) {
        o->fn(o->opaque);
    } else {
        snprintf(o->errbuf, sizeof(o->errbuf), "HTTP client shutting down");
        complete(c, o, CURLE_ABORTED_BY_CALLBACK);
    }
    op_free(o);
}

static size_t write_body(char *p, size_t size, size_t nmemb, void *ud)
{
    struct op *o = ud;
    size_t n = size * nmemb;
    if (o->truncated)
        return n;
    size_t keep = n;
    if (o->rbody.len + keep > o->limit) {
        keep = o->limit - o->rbody.len;
        o->truncated = true;
    }
    if (keep && ofe_buf_append(&o->rbody, p, keep))
        o->truncated = true;
    return n;
}

static void start(struct ofe_http_client *c, struct op *o)
{
    CURL *e = c->npool ? c->pool[--c->npool] : curl_easy_init();
    if (!e) {
        snprintf(o->errbuf, sizeof(o->errbuf), "out of memory");
        complete(c, o, CURLE_OUT_OF_MEMORY);
        op_free(o);
        return;
    }
    curl_easy_reset(e);
    o->easy = e;
    o->retry_after_ms = -1;
    curl_easy_setopt(e, CURLOPT_URL, o->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, o);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, o->errbuf);
    curl_easy_setopt(e, CURLOPT_USERAGENT, c->user_agent);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(o->timeout_ms ? o->timeout_ms : 30000));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(o->timeout_ms && o->timeout_ms < 10000 ? o->timeout_ms : 10000));
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, o->hdrs);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, o);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, o);
    if (!strcmp(o->method, "POST") || o->body_len) {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, o->body ? (char *)o->body : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
    }
    if (strcmp(o->method, "POST") && strcmp(o->method, "GET"))
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, o->method);
    else if (!strcmp(o->method, "GET"))
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
        snprintf(o->errbuf, sizeof(o->errbuf), "cannot start transfer");
        complete(c, o, CURLE_FAILED_INIT);
        o->easy = NULL;
        c->pool[c->npool++] = e;
        op_free(o);
        return;
    }
    c->inflight++;
    o->rnext = c->running;
    if (c->running)
        c->running->rprev = &o->rnext;
    o->rprev = &c->running;
    c->running = o;
}

static void running_remove(struct op *o)
{
    *o->rprev = o->rnext;
    if (o->rnext)
        o->rnext->rprev = o->rprev;
}

static void *run(void *arg)
{
    struct ofe_http_client *c = arg;
    for (;;) {
        pthread_mutex_lock(&c->lock);
        struct op *in = c->incoming;
        c->incoming = NULL;
        c->in_tail = &c->incoming;
        bool stopping = c->stopping;
        pthread_mutex_unlock(&c->lock);
        if (stopping) {
            /* Cancel everything: incoming, delayed, ready, running. */
            while (in) {
                struct op *n = in->next;
                cancel(c, in);
                in = n;
            }
            while (c->nheap)
                cancel(c, heap_pop(c));
            while (c->ready) {
                struct op *o = c->ready;
                c->ready = o->next;
                cancel(c, o);
            }
            while (c->running) {
                struct op *o = c->running;
                CURL *e = o->easy;
                running_remove(o);
                curl_multi_remove_handle(c->multi, e);
                snprintf(o->errbuf, sizeof(o->errbuf), "HTTP client shutting down");
                complete(c, o, CURLE_ABORTED_BY_CALLBACK);
                o->easy = NULL;
                curl_easy_cleanup(e);
                op_free(o);
            }
            break;
        }
        uint64_t now = now_ns();
        while (in) {
            struct op *n = in->next;
            in->next = NULL;
            in->seq = c->seq++;
            if (heap_push(c, in)) {
                cancel(c, in); /* out of memory: complete it rather than lose it */
            }
            in = n;
        }
        while (c->nheap && c->heap[0]->due_ns <= now) {
            struct op *o = heap_pop(c);
            if (o->fn) {
                o->fn(o->opaque);
                op_free(o);
                continue;
            }
            o->next = NULL;
            *c->ready_tail = o;
            c->ready_tail = &o->next;
        }
        while (c->ready && c->inflight < c->max_inflight) {
            struct op *o = c->ready;
            c->ready = o->next;
            if (!c->ready)
                c->ready_tail = &c->ready;
            start(c, o);
        }
        int running = 0;
        curl_multi_perform(c->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(c->multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            CURL *e = m->easy_handle;
            CURLcode cc = m->data.result;
            struct op *o;
            curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&o);
            curl_multi_remove_handle(c->multi, e);
            running_remove(o);
            c->inflight--;
            complete(c, o, cc);
            o->easy = NULL;
            if (c->npool < c->max_inflight)
                c->pool[c->npool++] = e;
            else
                curl_easy_cleanup(e);
            op_free(o);
        }
        int timeout_ms = 1000;
        if (c->nheap) {
            uint64_t due = c->heap[0]->due_ns, t = now_ns();
            uint64_t ms = due > t ? (due - t + 999999) / 1000000 : 0;
            if (ms < (uint64_t)timeout_ms)
                timeout_ms = (int)ms;
        }
        if (c->ready && c->inflight < c->max_inflight)
            timeout_ms = 0;
        curl_multi_poll(c->multi, NULL, 0, timeout_ms, NULL);
    }
    return NULL;
}

/* ---- public ----------------------------------------------------------- */

static void global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct ofe_http_client *ofe_http_client_new(const struct ofe_http_client_opts *opts, char *errstr,
                                            size_t errstr_size)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, global_init);

    struct ofe_http_client *c = calloc(1, sizeof(*c));
    if (!c) {
        ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
        return NULL;
    }
    c->max_inflight = opts && opts->max_inflight ? opts->max_inflight : 256;
    c->max_queued = opts && opts->max_queued ? opts->max_queued : 65536;
    c->max_body = opts && opts->max_response_body ? opts->max_response_body : 64 * 1024;
    c->component = strdup(opts && opts->component ? opts->component : "http-client");
    char ua[64];
    snprintf(ua, sizeof(ua), "ofevents/%s", OFE_VERSION);
    c->user_agent = strdup(opts && opts->user_agent ? opts->user_agent : ua);
    c->pool = calloc(c->max_inflight, sizeof(*c->pool));
    c->in_tail = &c->incoming;
    c->ready_tail = &c->ready;
    pthread_mutex_init(&c->lock, NULL);
    c->multi = curl_multi_init();
    if (!c->component || !c->user_agent || !c->pool || !c->multi) {
        ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
        goto fail;
    }
    curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                      (long)(opts && opts->max_host_conns ? opts->max_host_conns : 64));
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)c->max_inflight);
    curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    if (pthread_create(&c->thr, NULL, run, c) != 0) {
        ofe_err(errstr, errstr_size, OFE_ENOMEM, "cannot start the HTTP client thread");
        goto fail;
    }
    return c;
fail:
    if (c->multi)
        curl_multi_cleanup(c->multi);
    free(c->pool);
    free(c->component);
    free(c->user_agent);
    pthread_mutex_destroy(&c->lock);
    free(c);
    return NULL;
}

void ofe_http_client_destroy(struct ofe_http_client *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    c->stopping = true;
    pthread_mutex_unlock(&c->lock);
    curl_multi_wakeup(c->multi);
    pthread_join(c->thr, NULL);
    for (size_t i = 0; i < c->npool; i++)
        curl_easy_cleanup(c->pool[i]);
    curl_multi_cleanup(c->multi);
    free(c->pool);
    free(c->heap);
    free(c->component);
    free(c->user_agent);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static int enqueue(struct ofe_http_client *c, struct op *o, uint32_t delay_ms, bool counted)
{
    o->due_ns = now_ns() + (uint64_t)delay_ms * 1000000u;
    pthread_mutex_lock(&c->lock);
    if (c->stopping) {
        pthread_mutex_unlock(&c->lock);
        return OFE_ECLOSED;
    }
    if (counted) {
        if (atomic_load(&c->pending) >= c->max_inflight + c->max_queued) {
            pthread_mutex_unlock(&c->lock);
            return OFE_EAGAIN;
        }
        atomic_fetch_add(&c->pending, 1);
    }
    o->next = NULL;
    *c->in_tail = o;
    c->in_tail = &o->next;
    pthread_mutex_unlock(&c->lock);
    curl_multi_wakeup(c->multi);
    return 0;
}

int ofe_http_client_submit(struct ofe_http_client *c, const struct ofe_http_req *req,
                           ofe_http_done_fn done, void *opaque)
{
    struct op *o = calloc(1, sizeof(*o));
    if (!o)
        return OFE_ENOMEM;
    o->method = strdup(req->method ? req->method : "POST");
    o->url = strdup(req->url);
    o->timeout_ms = req->timeout_ms;
    o->done = done;
    o->opaque = opaque;
    ofe_hdrs_init(&o->rhdrs);
    o->body_len = req->body_len;
    o->body = malloc(req->body_len ? req->body_len : 1);
    if (!o->method || !o->url || !o->body)
        goto nomem;
    if (req->body_len)
        memcpy(o->body, req->body, req->body_len);
    /* libcurl adds "Expect: 100-continue" for large bodies: one more round trip. */
    o->hdrs = curl_slist_append(NULL, "Expect:");
    if (!o->hdrs)
        goto nomem;
    /* Without a Content-Type of ours, libcurl would send its POST default
     * (application/x-www-form-urlencoded), which a CloudEvents receiver
     * reads as the datacontenttype: send none instead. */
    if (!req->headers || !ofe_hdrs_get(req->headers, "content-type")) {
        struct curl_slist *n = curl_slist_append(o->hdrs, "Content-Type:");
        if (!n)
            goto nomem;
        o->hdrs = n;
    }
    for (size_t i = 0; req->headers && i < req->headers->n; i++) {
        const struct ofe_hdr *h = &req->headers->v[i];
        struct ofe_buf line = OFE_BUF_INIT;
        ofe_buf_append(&line, h->name, h->name_len);
        if (h->value_len) {
            ofe_buf_puts(&line, ": ");
            ofe_buf_append(&line, h->value, h->value_len);
        } else {
            ofe_buf_puts(&line, ";"); /* curl's way of sending an empty header */
        }
        struct curl_slist *n = line.data ? curl_slist_append(o->hdrs, line.data) : NULL;
        ofe_buf_fini(&line);
        if (!n)
            goto nomem;
        o->hdrs = n;
    }
    o->limit = c->max_body;
    int rc = enqueue(c, o, req->delay_ms, true);
    if (rc)
        op_free(o);
    return rc;
nomem:
    op_free(o);
    return OFE_ENOMEM;
}

int ofe_http_client_later(struct ofe_http_client *c, uint32_t delay_ms, void (*fn)(void *opaque),
                          void *opaque)
{
    struct op *o = calloc(1, sizeof(*o));
    if (!o)
        return OFE_ENOMEM;
    o->fn = fn;
    o->opaque = opaque;
    int rc = enqueue(c, o, delay_ms, false);
    if (rc)
        free(o);
    return rc;
}

unsigned ofe_http_client_pending(const struct ofe_http_client *c)
{
    return atomic_load(&((struct ofe_http_client *)c)->pending);
}
