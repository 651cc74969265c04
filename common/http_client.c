/* Asynchronous HTTP client: one thread, two engines.
 *
 * Plain http:// requests run on our own HTTP/1.1 engine
 * (http_client_h1.c); https:// and whatever that engine does not take run
 * on a libcurl multi handle. Submissions arrive on a locked list and wake
 * the thread through an eventfd that sits in the engine's epoll set (which
 * is itself polled next to libcurl's sockets while libcurl has transfers).
 * Everything else (the delay heap, the ready queue, running transfers,
 * connections, the pool of easy handles) belongs to the client thread
 * alone and needs no lock. */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "http_client_int.h"
#include "ofe/err.h"
#include "ofe/http_client.h"
#include "ofe/log.h"

uint64_t http__now_ns(void)
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

void http__complete(struct ofe_http_client *c, struct op *o, struct ofe_http_result *r)
{
    o->done(o->opaque, r);
    atomic_fetch_sub(&c->pending, 1);
    op_free(o);
}

void http__running_remove(struct ofe_http_client *c, struct op *o)
{
    (void)c;
    *o->rprev = o->rnext;
    if (o->rnext)
        o->rnext->rprev = o->rprev;
    o->rnext = NULL;
    o->rprev = NULL;
}

static void running_add(struct ofe_http_client *c, struct op *o)
{
    o->rnext = c->running;
    if (c->running)
        c->running->rprev = &o->rnext;
    o->rprev = &c->running;
    c->running = o;
}

void http__wake(struct ofe_http_client *c)
{
    uint64_t one = 1;
    while (write(c->efd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
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

/* ---- libcurl transfers ---------------------------------------------------- */

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
        o->retry_after_ms = http__retry_after(v, vl);
    return n;
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

/* Completes a libcurl request (or one that never reached libcurl). */
static void curl_complete(struct ofe_http_client *c, struct op *o, CURLcode cc)
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
    http__complete(c, o, &r);
}

static void curl_start(struct ofe_http_client *c, struct op *o)
{
    CURL *e = c->npool ? c->pool[--c->npool] : curl_easy_init();
    if (!e) {
        snprintf(o->errbuf, sizeof(o->errbuf), "out of memory");
        curl_complete(c, o, CURLE_OUT_OF_MEMORY);
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
        o->easy = NULL;
        c->pool[c->npool++] = e;
        curl_complete(c, o, CURLE_FAILED_INIT);
        return;
    }
    c->inflight++;
    c->curl_running++;
    running_add(c, o);
}

/* Lets libcurl work and completes what it finished. */
static void curl_perform(struct ofe_http_client *c)
{
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
        http__running_remove(c, o);
        c->inflight--;
        c->curl_running--;
        curl_complete(c, o, cc); /* reads o->easy: recycle it after */
        if (c->npool < c->max_inflight)
            c->pool[c->npool++] = e;
        else
            curl_easy_cleanup(e);
    }
}

/* ---- the thread ------------------------------------------------------- */

static void cancel(struct ofe_http_client *c, struct op *o)
{
    if (o->fn) {
        o->fn(o->opaque);
        op_free(o);
    } else {
        snprintf(o->errbuf, sizeof(o->errbuf), "HTTP client shutting down");
        curl_complete(c, o, CURLE_ABORTED_BY_CALLBACK);
    }
}

static void start(struct ofe_http_client *c, struct op *o)
{
    if (o->h1)
        http__h1_start(c, o);
    else
        curl_start(c, o);
}

/* A due op: a timer runs, a request becomes ready. */
static void due(struct ofe_http_client *c, struct op *o)
{
    if (o->fn) {
        o->fn(o->opaque);
        op_free(o);
        return;
    }
    o->next = NULL;
    *c->ready_tail = o;
    c->ready_tail = &o->next;
}

static void stop_all(struct ofe_http_client *c, struct op *in)
{
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
    http__h1_cancel_all(c);
    while (c->running) {
        struct op *o = c->running;
        CURL *e = o->easy;
        http__running_remove(c, o);
        curl_multi_remove_handle(c->multi, e);
        snprintf(o->errbuf, sizeof(o->errbuf), "HTTP client shutting down");
        o->easy = NULL;
        curl_complete(c, o, CURLE_ABORTED_BY_CALLBACK);
        curl_easy_cleanup(e);
    }
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
            stop_all(c, in);
            break;
        }
        c->kick = false;
        uint64_t now = http__now_ns();
        /* due delayed ops first: they were submitted before */
        while (c->nheap && c->heap[0]->due_ns <= now)
            due(c, heap_pop(c));
        while (in) {
            struct op *n = in->next;
            in->next = NULL;
            in->seq = c->seq++;
            if (in->due_ns <= now) /* the heap holds only later ones now */
                due(c, in);
            else if (heap_push(c, in))
                cancel(c, in); /* out of memory: complete it rather than lose it */
            in = n;
        }
        while (c->ready && c->inflight < c->max_inflight) {
            struct op *o = c->ready;
            c->ready = o->next;
            if (!c->ready)
                c->ready_tail = &c->ready;
            start(c, o);
        }
        int timeout_ms = 1000;
        if (c->nheap) {
            uint64_t d = c->heap[0]->due_ns, t = http__now_ns();
            uint64_t ms = d > t ? (d - t + 999999) / 1000000 : 0;
            if (ms < (uint64_t)timeout_ms)
                timeout_ms = (int)ms;
        }
        timeout_ms = http__h1_timers(c, timeout_ms);
        if (c->kick || (c->ready && c->inflight < c->max_inflight))
            timeout_ms = 0;
        if (c->curl_running) {
            struct curl_waitfd w = {.fd = c->h1.epfd, .events = CURL_WAIT_POLLIN};
            curl_multi_poll(c->multi, &w, 1, timeout_ms, NULL);
            curl_perform(c);
            http__h1_poll(c, 0);
        } else {
            http__h1_poll(c, timeout_ms);
        }
    }
    return NULL;
}

/* ---- public ----------------------------------------------------------- */

static void global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static bool env_set(const char *name)
{
    const char *v = getenv(name);
    return v && *v;
}

static void client_free(struct ofe_http_client *c)
{
    for (size_t i = 0; i < c->npool; i++)
        curl_easy_cleanup(c->pool[i]);
    if (c->multi)
        curl_multi_cleanup(c->multi);
    http__h1_fini(c);
    if (c->efd >= 0)
        close(c->efd);
    free(c->pool);
    free(c->heap);
    free(c->component);
    free(c->user_agent);
    pthread_mutex_destroy(&c->lock);
    free(c);
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
    c->efd = -1;
    c->h1.epfd = -1;
    pthread_mutex_init(&c->lock, NULL);
    c->max_inflight = opts && opts->max_inflight ? opts->max_inflight : 256;
    c->max_queued = opts && opts->max_queued ? opts->max_queued : 65536;
    c->max_body = opts && opts->max_response_body ? opts->max_response_body : 64 * 1024;
    unsigned host_conns = opts && opts->max_host_conns ? opts->max_host_conns : 64;
    c->h1.max_host_conns = host_conns;
    c->h1.max_idle = c->max_inflight;
    /* libcurl applies proxies from the environment; our engine does not.
     * OFE_HTTP_CURL=1 sends everything through libcurl (a way out should a
     * server not get along with our engine, and for comparisons). */
    const char *force = getenv("OFE_HTTP_CURL");
    c->curl_only = env_set("http_proxy") || env_set("all_proxy") || env_set("ALL_PROXY") ||
                   (force && strcmp(force, "0") && *force);
    c->component = strdup(opts && opts->component ? opts->component : "http-client");
    char ua[64];
    snprintf(ua, sizeof(ua), "ofevents/%s", OFE_VERSION);
    c->user_agent = strdup(opts && opts->user_agent ? opts->user_agent : ua);
    c->pool = calloc(c->max_inflight, sizeof(*c->pool));
    c->in_tail = &c->incoming;
    c->ready_tail = &c->ready;
    c->multi = curl_multi_init();
    if (!c->component || !c->user_agent || !c->pool || !c->multi) {
        ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
        goto fail;
    }
    c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (c->efd < 0) {
        ofe_err(errstr, errstr_size, OFE_EIO, "eventfd: %s", strerror(errno));
        goto fail;
    }
    if (http__h1_init(c, errstr, errstr_size))
        goto fail;
    curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)host_conns);
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)c->max_inflight);
    curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    if (pthread_create(&c->thr, NULL, run, c) != 0) {
        ofe_err(errstr, errstr_size, OFE_ENOMEM, "cannot start the HTTP client thread");
        goto fail;
    }
    return c;
fail:
    client_free(c);
    return NULL;
}

void ofe_http_client_destroy(struct ofe_http_client *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    c->stopping = true;
    pthread_mutex_unlock(&c->lock);
    http__wake(c);
    pthread_join(c->thr, NULL);
    client_free(c);
}

static int enqueue(struct ofe_http_client *c, struct op *o, uint32_t delay_ms, bool counted)
{
    o->due_ns = http__now_ns() + (uint64_t)delay_ms * 1000000u;
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
    /* One wake-up per round of the thread: it clears wake_sent when it
     * reads the eventfd, before it takes the list again. A submission
     * from the thread itself (a callback) only keeps it from sleeping. */
    if (pthread_equal(pthread_self(), c->thr))
        c->kick = true;
    else if (!atomic_exchange(&c->wake_sent, true))
        http__wake(c);
    return 0;
}

/* A request for libcurl: its own copies and header list. */
static struct op *curl_build(const struct ofe_http_req *req)
{
    struct op *o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    o->method = strdup(req->method ? req->method : "POST");
    o->url = strdup(req->url);
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
    return o;
nomem:
    op_free(o);
    return NULL;
}

int ofe_http_client_submit(struct ofe_http_client *c, const struct ofe_http_req *req,
                           ofe_http_done_fn done, void *opaque)
{
    bool nomem = false;
    struct op *o = http__h1_build(c, req, &nomem);
    if (!o && !nomem)
        o = curl_build(req);
    if (!o)
        return OFE_ENOMEM;
    o->timeout_ms = req->timeout_ms;
    o->done = done;
    o->opaque = opaque;
    o->retry_after_ms = -1;
    o->limit = c->max_body;
    int rc = enqueue(c, o, req->delay_ms, true);
    if (rc)
        op_free(o);
    return rc;
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
