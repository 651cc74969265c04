/* The HTTP client's own HTTP/1.1 engine for plain http:// URLs.
 *
 * Runs on the client thread: one epoll set holds every connection and the
 * client's eventfd. Connections are kept alive in a pool per host:port
 * (at most max_host_conns open per host, most recently used first); a
 * request takes an idle connection, else opens one (non-blocking connect,
 * TCP_NODELAY, each resolved address in turn), else waits in the host's
 * FIFO queue. A request goes out with one send (head and body were built
 * at submission), its response is read with as few recv calls as it
 * takes and parsed by http_parse.c. Idle connections stay in the epoll
 * set, so a server closing one is noticed at once.
 *
 * Resending. A request that went out on a reused keep-alive connection is
 * sent again, once, when that connection fails (EOF, reset, broken pipe)
 * before any byte of a response arrived: the server closed the idle
 * connection while the request was on its way. This is libcurl's rule, so
 * callers see what they saw before. The server may, in rare cases, have
 * processed the request before dying without a word; a duplicate is then
 * possible, as it is for the delivery layer's own retries (delivery is at
 * least once). A request on a fresh connection is never resent here.
 *
 * Names are resolved with getaddrinfo in a short-lived helper thread (a
 * slow DNS server must not stall the client thread) and cached per host
 * for 60 s; an address literal needs no lookup. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http_client_int.h"
#include "ofe/err.h"
#include "ofe/log.h"

#define MAX_ADDRS          8
#define DNS_TTL_NS         (60ull * 1000000000u)
#define IDLE_MAX_NS        (118ull * 1000000000u) /* libcurl's default */
#define HOST_LINGER_NS     (60ull * 1000000000u)
#define CONNECT_TIMEOUT_MS 10000u
#define RBUF_SIZE          (64 * 1024)
#define MAX_EVENTS         256

struct h1_host {
    struct h1_host *next; /* bucket chain */
    uint32_t hash;
    char *key;  /* "host:port" */
    char *name; /* for getaddrinfo */
    uint16_t port;
    struct sockaddr_storage addrs[MAX_ADDRS];
    socklen_t alen[MAX_ADDRS];
    unsigned naddrs;
    bool numeric;
    uint64_t addrs_expire_ns;
    bool resolving;
    unsigned nconns;      /* open: connecting, busy or idle */
    struct h1_conn *idle; /* most recently used first */
    struct op *qhead, *qtail;
    uint64_t last_used_ns;
};

enum { C_CONNECTING, C_BUSY, C_IDLE, C_DEAD };

struct h1_conn {
    int fd;
    int st;
    struct h1_host *h;
    struct op *op;
    uint32_t events;
    bool registered; /* fd is in the epoll set */
    unsigned addr_i; /* the address being tried */
    unsigned nreq;   /* responses read on it */
    bool reused;     /* the current request is not its first */
    size_t woff;     /* bytes of the request sent */
    uint64_t idle_since;
    struct h1_conn *hnext, *hprev; /* the host's idle list */
    struct h1_conn *gnext, *gprev; /* every idle connection; the dead list */
    struct http__resp resp;
};

struct h1_resolve {
    struct h1_resolve *next;  /* the engine's list of running lookups */
    struct h1_resolve *rnext; /* the client's list of finished ones */
    pthread_mutex_t mu;
    struct ofe_http_client *c; /* NULL once the client is gone */
    int refs;
    char *name;
    uint16_t port;
    int gai_err;
    struct sockaddr_storage addrs[MAX_ADDRS];
    socklen_t alen[MAX_ADDRS];
    unsigned naddrs;
};

static void host_pump(struct ofe_http_client *c, struct h1_host *h);
static void conn_write(struct ofe_http_client *c, struct h1_conn *k);
static void conn_read(struct ofe_http_client *c, struct h1_conn *k);

/* ---- building a request (any thread) ------------------------------------- */

static bool is_tchar(unsigned char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
        return true;
    return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static bool is_token(const char *s, size_t n)
{
    if (!n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)s[i]))
            return false;
    return true;
}

static uint32_t fnv1a(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

static bool name_is(const struct ofe_hdr *h, const char *name)
{
    return h->name_len == strlen(name) && !strncasecmp(h->name, name, h->name_len);
}

/* Headers the engine writes itself, or that ask for what it does not do:
 * a request carrying one of them goes through libcurl. */
static bool reserved_header(const struct ofe_hdr *h)
{
    static const char *const names[] = {"content-length",  "transfer-encoding", "expect",
                                        "connection",      "upgrade",           "te",
                                        "proxy-connection"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (name_is(h, names[i]))
            return true;
    return false;
}

static char *put(char *p, const void *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

struct op *http__h1_build(const struct ofe_http_client *c, const struct ofe_http_req *req,
                          bool *nomem)
{
    *nomem = false;
    const char *url = req->url;
    if (c->curl_only || !url || strncasecmp(url, "http://", 7))
        return NULL;
    const char *a = url + 7;
    size_t alen = strcspn(a, "/?#");
    if (!alen || memchr(a, '@', alen))
        return NULL; /* no host, or user info (libcurl sends it as Basic auth) */
    const char *host, *hend, *portp = NULL;
    if (a[0] == '[') {
        hend = memchr(a, ']', alen);
        if (!hend)
            return NULL;
        host = a + 1;
        if (hend + 1 < a + alen) {
            if (hend[1] != ':')
                return NULL;
            portp = hend + 2;
        }
        for (const char *q = host; q < hend; q++)
            if (!((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f') ||
                  (*q >= 'A' && *q <= 'F') || *q == ':' || *q == '.'))
                return NULL; /* zone ids and the like: libcurl */
    } else {
        host = a;
        hend = memchr(a, ':', alen);
        if (hend) {
            portp = hend + 1;
        } else {
            hend = a + alen;
        }
        for (const char *q = host; q < hend; q++)
            if (!((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'z') ||
                  (*q >= 'A' && *q <= 'Z') || *q == '.' || *q == '-' || *q == '_'))
                return NULL;
    }
    size_t hlen = (size_t)(hend - host);
    if (!hlen || hlen > 253)
        return NULL;
    unsigned port = 80;
    if (portp && portp < a + alen) {
        port = 0;
        for (const char *q = portp; q < a + alen; q++) {
            if (*q < '0' || *q > '9' || port > 65535)
                return NULL;
            port = port * 10 + (unsigned)(*q - '0');
        }
        if (port == 0 || port > 65535)
            return NULL;
    }
    const char *path = a + alen;
    size_t plen = strcspn(path, "#");
    for (size_t i = 0; i < plen; i++)
        if ((unsigned char)path[i] <= 0x20 || (unsigned char)path[i] >= 0x7f)
            return NULL; /* libcurl decides what to do with these */
    const char *method = req->method ? req->method : "POST";
    size_t mlen = strlen(method);
    if (!is_token(method, mlen))
        return NULL;

    bool own_host = false, own_ua = false;
    size_t hdr_bytes = 0;
    for (size_t i = 0; req->headers && i < req->headers->n; i++) {
        const struct ofe_hdr *h = &req->headers->v[i];
        if (!is_token(h->name, h->name_len) || reserved_header(h))
            return NULL;
        for (size_t j = 0; j < h->value_len; j++)
            if (h->value[j] == '\r' || h->value[j] == '\n' || h->value[j] == '\0')
                return NULL;
        own_host = own_host || name_is(h, "host");
        own_ua = own_ua || name_is(h, "user-agent");
        hdr_bytes += h->name_len + 2 + h->value_len + 2;
    }

    /* "Host: h[:port]" with brackets for IPv6, the port unless 80 */
    char hosthdr[300];
    bool v6 = a[0] == '[';
    int hl = port == 80 ? snprintf(hosthdr, sizeof(hosthdr), "%s%.*s%s", v6 ? "[" : "", (int)hlen,
                                   host, v6 ? "]" : "")
                        : snprintf(hosthdr, sizeof(hosthdr), "%s%.*s%s:%u", v6 ? "[" : "",
                                   (int)hlen, host, v6 ? "]" : "", port);
    char key[300];
    int kl = snprintf(key, sizeof(key), "%.*s:%u", (int)hlen, host, port);
    for (int i = 0; i < kl; i++)
        if (key[i] >= 'A' && key[i] <= 'Z')
            key[i] = (char)(key[i] - 'A' + 'a');
    bool with_len = !strcmp(method, "POST") || req->body_len;
    char clen[48];
    int cl = with_len ? snprintf(clen, sizeof(clen), "Content-Length: %zu\r\n", req->body_len) : 0;
    size_t ua_len = strlen(c->user_agent);

    size_t rlen = mlen + 1 + (plen && path[0] == '/' ? 0 : 1) + plen + 11 + /* request line */
                  (own_host ? 0 : 6 + (size_t)hl + 2) + (own_ua ? 0 : 12 + ua_len + 2) +
                  (size_t)cl + hdr_bytes + 2 + req->body_len;
    size_t size = sizeof(struct op) + (size_t)kl + 1 + hlen + 1 + rlen;
    struct op *o = calloc(1, size);
    if (!o) {
        *nomem = true;
        return NULL;
    }
    char *s = (char *)(o + 1);
    o->key = s;
    s = put(s, key, (size_t)kl + 1);
    o->host = s;
    s = put(s, host, hlen);
    *s++ = '\0';
    o->req = s;
    s = put(s, method, mlen);
    *s++ = ' ';
    if (!(plen && path[0] == '/'))
        *s++ = '/';
    s = put(s, path, plen);
    s = put(s, " HTTP/1.1\r\n", 11);
    if (!own_host) {
        s = put(s, "Host: ", 6);
        s = put(s, hosthdr, (size_t)hl);
        s = put(s, "\r\n", 2);
    }
    if (!own_ua) {
        s = put(s, "User-Agent: ", 12);
        s = put(s, c->user_agent, ua_len);
        s = put(s, "\r\n", 2);
    }
    s = put(s, clen, (size_t)cl);
    for (size_t i = 0; req->headers && i < req->headers->n; i++) {
        const struct ofe_hdr *h = &req->headers->v[i];
        s = put(s, h->name, h->name_len);
        s = put(s, ": ", 2);
        s = put(s, h->value, h->value_len);
        s = put(s, "\r\n", 2);
    }
    s = put(s, "\r\n", 2);
    if (req->body_len)
        s = put(s, req->body, req->body_len);
    o->req_len = (size_t)(s - o->req);
    o->port = (uint16_t)port;
    o->hash = fnv1a(key, (size_t)kl);
    o->no_body = !strcmp(method, "HEAD");
    o->h1 = true;
    return o;
}

/* ---- the deadline heap ------------------------------------------------------ */

static void dl_set(struct h1 *e, size_t i, struct op *o)
{
    e->dl[i] = o;
    o->dl_idx = i;
}

static void dl_up(struct h1 *e, size_t i)
{
    struct op *o = e->dl[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (e->dl[p]->deadline_ns <= o->deadline_ns)
            break;
        dl_set(e, i, e->dl[p]);
        i = p;
    }
    dl_set(e, i, o);
}

static void dl_down(struct h1 *e, size_t i)
{
    struct op *o = e->dl[i];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = l;
        if (l >= e->ndl)
            break;
        if (r < e->ndl && e->dl[r]->deadline_ns < e->dl[l]->deadline_ns)
            m = r;
        if (e->dl[m]->deadline_ns >= o->deadline_ns)
            break;
        dl_set(e, i, e->dl[m]);
        i = m;
    }
    dl_set(e, i, o);
}

static int dl_push(struct h1 *e, struct op *o)
{
    if (e->ndl == e->dl_cap) {
        size_t cap = e->dl_cap ? e->dl_cap * 2 : 256;
        struct op **v = realloc(e->dl, cap * sizeof(*v));
        if (!v)
            return OFE_ENOMEM;
        e->dl = v;
        e->dl_cap = cap;
    }
    dl_set(e, e->ndl++, o);
    dl_up(e, e->ndl - 1);
    return 0;
}

static void dl_remove(struct h1 *e, struct op *o)
{
    size_t i = o->dl_idx;
    struct op *last = e->dl[--e->ndl];
    if (i < e->ndl) {
        dl_set(e, i, last);
        dl_down(e, i);
        dl_up(e, last->dl_idx);
    }
}

static void dl_update(struct h1 *e, struct op *o, uint64_t deadline)
{
    o->deadline_ns = deadline;
    dl_down(e, o->dl_idx);
    dl_up(e, o->dl_idx);
}

/* ---- completing a request ------------------------------------------------------ */

static uint64_t end_ns(const struct op *o)
{
    return o->start_ns + (uint64_t)(o->timeout_ms ? o->timeout_ms : 30000) * 1000000u;
}

static void queue_remove(struct op *o)
{
    struct h1_host *h = o->qhost;
    if (o->qprev)
        o->qprev->qnext = o->qnext;
    else
        h->qhead = o->qnext;
    if (o->qnext)
        o->qnext->qprev = o->qprev;
    else
        h->qtail = o->qprev;
    o->qnext = o->qprev = NULL;
    o->qhost = NULL;
}

static void queue_add(struct h1_host *h, struct op *o, bool front)
{
    o->qhost = h;
    if (front) {
        o->qprev = NULL;
        o->qnext = h->qhead;
        if (h->qhead)
            h->qhead->qprev = o;
        else
            h->qtail = o;
        h->qhead = o;
    } else {
        o->qnext = NULL;
        o->qprev = h->qtail;
        if (h->qtail)
            h->qtail->qnext = o;
        else
            h->qhead = o;
        h->qtail = o;
    }
}

/* Ends a request that failed (err != 0) or was answered (resp). */
static void finish(struct ofe_http_client *c, struct op *o, int err, const char *msg,
                   const struct http__resp *resp)
{
    if (o->qhost)
        queue_remove(o);
    dl_remove(&c->h1, o);
    http__running_remove(c, o);
    c->inflight--;
    static const struct ofe_hdrs no_hdrs = {0};
    struct ofe_http_result r = {
        .err = err,
        .errmsg = err ? msg : "",
        .headers = &no_hdrs,
        .body = (const unsigned char *)"",
        .retry_after_ms = -1,
        .elapsed_s = (double)(http__now_ns() - o->start_ns) / 1e9,
    };
    if (!err && resp) {
        r.status = resp->status;
        r.headers = &resp->hdrs;
        if (resp->body.len)
            r.body = (const unsigned char *)resp->body.data;
        r.body_len = resp->body.len;
        r.body_truncated = resp->truncated;
        r.retry_after_ms = resp->retry_after_ms;
    }
    http__complete(c, o, &r);
}

/* ---- connections --------------------------------------------------------------- */

static void set_events(struct ofe_http_client *c, struct h1_conn *k, uint32_t ev)
{
    if (k->events == ev)
        return;
    struct epoll_event e = {.events = ev, .data.ptr = k};
    if (epoll_ctl(c->h1.epfd, EPOLL_CTL_MOD, k->fd, &e) == 0)
        k->events = ev;
}

/* Leaves the epoll set explicitly: close() alone does not when a fork
 * holds a copy of the descriptor, and the set would keep naming k. */
static void close_fd(struct ofe_http_client *c, struct h1_conn *k)
{
    if (k->fd < 0)
        return;
    if (k->registered)
        epoll_ctl(c->h1.epfd, EPOLL_CTL_DEL, k->fd, NULL);
    close(k->fd);
    k->fd = -1;
    k->registered = false;
}

static void idle_unlink(struct h1 *e, struct h1_conn *k)
{
    struct h1_host *h = k->h;
    if (k->hprev)
        k->hprev->hnext = k->hnext;
    else
        h->idle = k->hnext;
    if (k->hnext)
        k->hnext->hprev = k->hprev;
    if (k->gprev)
        k->gprev->gnext = k->gnext;
    else
        e->idle_head = k->gnext;
    if (k->gnext)
        k->gnext->gprev = k->gprev;
    else
        e->idle_tail = k->gprev;
    k->hnext = k->hprev = k->gnext = k->gprev = NULL;
    e->nidle--;
}

/* Closes k (its request, if any, was detached by the caller). The memory
 * lives until the end of the event batch: later events may name it. */
static void conn_close(struct ofe_http_client *c, struct h1_conn *k)
{
    struct h1 *e = &c->h1;
    if (k->st == C_DEAD)
        return;
    if (k->st == C_IDLE)
        idle_unlink(e, k);
    close_fd(c, k);
    k->st = C_DEAD;
    k->op = NULL;
    k->h->nconns--;
    k->h->last_used_ns = http__now_ns();
    k->gnext = e->dead;
    e->dead = k;
}

static void free_dead(struct h1 *e)
{
    while (e->dead) {
        struct h1_conn *k = e->dead;
        e->dead = k->gnext;
        http__resp_fini(&k->resp);
        free(k);
    }
}

/* Detaches the request from k, closes k and fails the request, or sends it
 * again once when k was a reused connection that died before any byte of a
 * response (see the top of this file). */
static void conn_fail(struct ofe_http_client *c, struct h1_conn *k, int err, const char *msg)
{
    struct op *o = k->op;
    struct h1_host *h = k->h;
    bool resend =
        o && err == OFE_ECONN && k->reused && k->resp.nread == 0 && !o->retried && k->st == C_BUSY;
    k->op = NULL;
    if (o)
        o->conn = NULL;
    conn_close(c, k);
    if (o && resend) {
        OFE_DEBUG(c->component, h->key, "kept-alive connection lost (%s): sending again", msg);
        o->retried = true;
        queue_add(h, o, true);
    } else if (o) {
        finish(c, o, err, msg, NULL);
    }
    host_pump(c, h);
}

static void conn_idle(struct ofe_http_client *c, struct h1_conn *k)
{
    struct h1 *e = &c->h1;
    struct h1_host *h = k->h;
    k->st = C_IDLE;
    k->idle_since = http__now_ns();
    h->last_used_ns = k->idle_since;
    k->hprev = NULL;
    k->hnext = h->idle;
    if (h->idle)
        h->idle->hprev = k;
    h->idle = k;
    k->gnext = NULL;
    k->gprev = e->idle_tail;
    if (e->idle_tail)
        e->idle_tail->gnext = k;
    else
        e->idle_head = k;
    e->idle_tail = k;
    if (++e->nidle > e->max_idle)
        conn_close(c, e->idle_head); /* idle connections are bounded: the oldest goes */
}

static void conn_assign(struct ofe_http_client *c, struct h1_conn *k, struct op *o)
{
    k->op = o;
    o->conn = k;
    k->st = C_BUSY;
    k->woff = 0;
    k->reused = k->nreq > 0;
    http__resp_start(&k->resp, c->max_body, o->no_body);
    conn_write(c, k);
}

/* Starts connecting k to its host's addresses from index i on. Returns 0
 * (connecting or connected) or the errno of the last attempt. */
static int conn_connect(struct ofe_http_client *c, struct h1_conn *k, unsigned i)
{
    struct h1_host *h = k->h;
    int last = ECONNREFUSED;
    for (; i < h->naddrs; i++) {
        close_fd(c, k);
        const struct sockaddr *sa = (const struct sockaddr *)&h->addrs[i];
        int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
        if (fd < 0) {
            last = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
        k->fd = fd;
        k->addr_i = i;
        int rc = connect(fd, sa, h->alen[i]);
        if (rc != 0 && errno != EINPROGRESS) {
            last = errno;
            continue;
        }
        k->events = rc == 0 ? EPOLLIN : EPOLLIN | EPOLLOUT;
        struct epoll_event ev = {.events = k->events, .data.ptr = k};
        if (epoll_ctl(c->h1.epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            last = errno;
            continue;
        }
        k->registered = true;
        if (rc == 0) {
            k->st = C_BUSY;
            return 0;
        }
        k->st = C_CONNECTING;
        return 0;
    }
    close_fd(c, k);
    return last;
}

static void connect_error(char *buf, size_t n, const struct h1_host *h, int err)
{
    snprintf(buf, n, "Failed to connect to %s port %u: %s", h->name, h->port, strerror(err));
}

/* The connection is up: send the request. */
static void conn_connected(struct ofe_http_client *c, struct h1_conn *k)
{
    struct op *o = k->op;
    k->st = C_BUSY;
    dl_update(&c->h1, o, end_ns(o));
    conn_assign(c, k, o);
}

/* Opens a connection for o. Returns 0, or fails o and returns an error. */
static int conn_open(struct ofe_http_client *c, struct h1_host *h, struct op *o)
{
    struct h1_conn *k = calloc(1, sizeof(*k));
    if (!k) {
        finish(c, o, OFE_EIO, "out of memory", NULL);
        return OFE_ENOMEM;
    }
    k->fd = -1;
    k->h = h;
    http__resp_init(&k->resp);
    h->nconns++;
    uint32_t ct =
        o->timeout_ms && o->timeout_ms < CONNECT_TIMEOUT_MS ? o->timeout_ms : CONNECT_TIMEOUT_MS;
    uint64_t cdl = http__now_ns() + (uint64_t)ct * 1000000u;
    dl_update(&c->h1, o, cdl < end_ns(o) ? cdl : end_ns(o));
    k->op = o;
    o->conn = k;
    int err = conn_connect(c, k, 0);
    if (err) {
        char msg[256];
        connect_error(msg, sizeof(msg), h, err);
        if (!h->numeric)
            h->addrs_expire_ns = 0; /* look the name up again next time */
        k->op = NULL;
        o->conn = NULL;
        k->st = C_BUSY;
        conn_close(c, k);
        finish(c, o, OFE_ECONN, msg, NULL);
        return OFE_ECONN;
    }
    if (k->st == C_BUSY)
        conn_connected(c, k);
    return 0;
}

static void conn_write(struct ofe_http_client *c, struct h1_conn *k)
{
    struct op *o = k->op;
    while (k->woff < o->req_len) {
        ssize_t n = send(k->fd, o->req + k->woff, o->req_len - k->woff, MSG_NOSIGNAL);
        if (n > 0) {
            k->woff += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_events(c, k, EPOLLIN | EPOLLOUT);
            return;
        }
        /* The server may have answered and closed (a 413 before reading
         * the body, say): read what it sent before giving up. */
        int err = n < 0 ? errno : EPIPE;
        set_events(c, k, EPOLLIN);
        conn_read(c, k);
        if (k->st == C_BUSY && k->op == o) {
            char msg[160];
            snprintf(msg, sizeof(msg), "Send failure: %s", strerror(err));
            conn_fail(c, k, OFE_ECONN, msg);
        }
        return;
    }
    if (k->events & EPOLLOUT)
        set_events(c, k, EPOLLIN);
}

/* The response on k is complete. */
static void conn_done(struct ofe_http_client *c, struct h1_conn *k, bool more_bytes, bool eof)
{
    struct op *o = k->op;
    struct h1_host *h = k->h;
    bool reuse = k->resp.keep_alive && !more_bytes && !eof && k->woff == o->req_len;
    k->op = NULL;
    o->conn = NULL;
    k->nreq++;
    if (!reuse)
        conn_close(c, k);
    finish(c, o, 0, NULL, &k->resp); /* k's memory lives until the batch ends */
    if (reuse) {
        if (h->qhead) {
            struct op *next = h->qhead;
            queue_remove(next);
            conn_assign(c, k, next);
        } else {
            conn_idle(c, k);
        }
    } else {
        host_pump(c, h);
    }
}

static void conn_read(struct ofe_http_client *c, struct h1_conn *k)
{
    struct h1 *e = &c->h1;
    for (;;) {
        ssize_t n = recv(k->fd, e->rbuf, e->rbuf_size, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (k->st == C_IDLE) {
            /* closed by the server, or bytes nobody asked for: drop it */
            struct h1_host *h = k->h;
            conn_close(c, k);
            host_pump(c, h);
            return;
        }
        if (n < 0) {
            char msg[160];
            snprintf(msg, sizeof(msg), "Recv failure: %s", strerror(errno));
            conn_fail(c, k, OFE_ECONN, msg);
            return;
        }
        if (n == 0) {
            if (http__resp_eof(&k->resp) == HTTP__DONE)
                conn_done(c, k, false, true);
            else
                conn_fail(c, k, OFE_ECONN, k->resp.err);
            return;
        }
        size_t used = 0;
        int rc = http__resp_feed(&k->resp, e->rbuf, (size_t)n, &used);
        if (rc == HTTP__DONE) {
            conn_done(c, k, used < (size_t)n, false);
            return;
        }
        if (rc < 0) {
            char msg[200];
            snprintf(msg, sizeof(msg), "%s", k->resp.err);
            conn_fail(c, k, OFE_EIO, msg);
            return;
        }
        if ((size_t)n < e->rbuf_size)
            return; /* the socket is drained: level-triggered epoll tells when there is more */
    }
}

static void conn_event(struct ofe_http_client *c, struct h1_conn *k, uint32_t ev)
{
    if (k->st == C_DEAD)
        return;
    if (k->st == C_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (!err && !(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        if (!err && (ev & (EPOLLERR | EPOLLHUP)))
            err = ECONNREFUSED;
        if (err) {
            int rc = conn_connect(c, k, k->addr_i + 1);
            if (rc) {
                char msg[256];
                connect_error(msg, sizeof(msg), k->h, err);
                if (!k->h->numeric)
                    k->h->addrs_expire_ns = 0;
                k->reused = false;
                conn_fail(c, k, OFE_ECONN, msg);
                return;
            }
            if (k->st != C_BUSY)
                return;
        }
        conn_connected(c, k);
        return;
    }
    if ((ev & EPOLLOUT) && k->st == C_BUSY && k->woff < k->op->req_len) {
        conn_write(c, k);
        if (k->st != C_BUSY)
            return;
    }
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP))
        conn_read(c, k);
}

/* ---- hosts and names -------------------------------------------------------------- */

static struct h1_host *host_find(struct h1 *e, const char *key, uint32_t hash)
{
    for (struct h1_host *h = e->buckets[hash & (e->nbuckets - 1)]; h; h = h->next)
        if (h->hash == hash && !strcmp(h->key, key))
            return h;
    return NULL;
}

static void host_grow(struct h1 *e)
{
    size_t n = e->nbuckets * 2;
    struct h1_host **b = calloc(n, sizeof(*b));
    if (!b)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < e->nbuckets; i++) {
        struct h1_host *h = e->buckets[i];
        while (h) {
            struct h1_host *next = h->next;
            h->next = b[h->hash & (n - 1)];
            b[h->hash & (n - 1)] = h;
            h = next;
        }
    }
    free(e->buckets);
    e->buckets = b;
    e->nbuckets = n;
}

static struct h1_host *host_get(struct h1 *e, const struct op *o)
{
    struct h1_host *h = host_find(e, o->key, o->hash);
    if (h)
        return h;
    h = calloc(1, sizeof(*h));
    if (!h || !(h->key = strdup(o->key)) || !(h->name = strdup(o->host))) {
        if (h)
            free(h->key);
        free(h);
        return NULL;
    }
    h->hash = o->hash;
    h->port = o->port;
    /* an address literal needs no lookup */
    struct sockaddr_in *s4 = (struct sockaddr_in *)&h->addrs[0];
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&h->addrs[0];
    if (inet_pton(AF_INET, h->name, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons(h->port);
        h->alen[0] = sizeof(*s4);
        h->naddrs = 1;
        h->numeric = true;
    } else if (inet_pton(AF_INET6, h->name, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(h->port);
        h->alen[0] = sizeof(*s6);
        h->naddrs = 1;
        h->numeric = true;
    }
    h->last_used_ns = http__now_ns();
    h->next = e->buckets[h->hash & (e->nbuckets - 1)];
    e->buckets[h->hash & (e->nbuckets - 1)] = h;
    if (++e->nhosts > e->nbuckets * 2)
        host_grow(e);
    return h;
}

static void host_free(struct h1 *e, struct h1_host *h)
{
    struct h1_host **pp = &e->buckets[h->hash & (e->nbuckets - 1)];
    while (*pp != h)
        pp = &(*pp)->next;
    *pp = h->next;
    e->nhosts--;
    free(h->key);
    free(h->name);
    free(h);
}

static void resolve_unref(struct h1_resolve *r)
{
    pthread_mutex_lock(&r->mu);
    bool last = --r->refs == 0;
    pthread_mutex_unlock(&r->mu);
    if (!last)
        return;
    pthread_mutex_destroy(&r->mu);
    free(r->name);
    free(r);
}

static void *resolve_run(void *arg)
{
    struct h1_resolve *r = arg;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    char port[8];
    snprintf(port, sizeof(port), "%u", r->port);
    r->gai_err = getaddrinfo(r->name, port, &hints, &res);
    for (struct addrinfo *ai = res; ai && r->naddrs < MAX_ADDRS; ai = ai->ai_next) {
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            ai->ai_addrlen > sizeof(r->addrs[0]))
            continue;
        memcpy(&r->addrs[r->naddrs], ai->ai_addr, ai->ai_addrlen);
        r->alen[r->naddrs++] = ai->ai_addrlen;
    }
    if (res)
        freeaddrinfo(res);
    if (!r->gai_err && !r->naddrs)
        r->gai_err = EAI_NONAME;
    pthread_mutex_lock(&r->mu);
    struct ofe_http_client *c = r->c;
    if (c) {
        pthread_mutex_lock(&c->lock);
        r->rnext = c->resolved;
        c->resolved = r;
        pthread_mutex_unlock(&c->lock);
        http__wake(c);
    }
    pthread_mutex_unlock(&r->mu);
    resolve_unref(r);
    return NULL;
}

/* Fails every request waiting on h with err/msg. */
static void host_fail_queue(struct ofe_http_client *c, struct h1_host *h, int err, const char *msg)
{
    while (h->qhead)
        finish(c, h->qhead, err, msg, NULL);
}

static void host_resolve(struct ofe_http_client *c, struct h1_host *h)
{
    struct h1 *e = &c->h1;
    struct h1_resolve *r = calloc(1, sizeof(*r));
    if (r && !(r->name = strdup(h->name))) {
        free(r);
        r = NULL;
    }
    if (!r) {
        host_fail_queue(c, h, OFE_ECONN, "out of memory resolving a host name");
        return;
    }
    pthread_mutex_init(&r->mu, NULL);
    r->c = c;
    r->port = h->port;
    r->refs = 2; /* the helper thread and the engine */
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int rc = pthread_create(&t, &at, resolve_run, r);
    pthread_attr_destroy(&at);
    if (rc != 0) {
        pthread_mutex_destroy(&r->mu);
        free(r->name);
        free(r);
        char msg[300];
        snprintf(msg, sizeof(msg), "Could not resolve host: %s (cannot start a lookup thread)",
                 h->name);
        host_fail_queue(c, h, OFE_ECONN, msg);
        return;
    }
    h->resolving = true;
    r->next = e->resolving;
    e->resolving = r;
}

/* A lookup finished (client thread). */
static void resolved(struct ofe_http_client *c, struct h1_resolve *r)
{
    struct h1 *e = &c->h1;
    for (struct h1_resolve **pp = &e->resolving; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    char key[300];
    snprintf(key, sizeof(key), "%s:%u", r->name, r->port);
    for (char *p = key; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    struct h1_host *h = host_find(e, key, fnv1a(key, strlen(key)));
    if (h) {
        h->resolving = false;
        if (r->gai_err) {
            h->naddrs = 0;
            char msg[400];
            snprintf(msg, sizeof(msg), "Could not resolve host: %s (%s)", h->name,
                     gai_strerror(r->gai_err));
            host_fail_queue(c, h, OFE_ECONN, msg);
        } else {
            memcpy(h->addrs, r->addrs, sizeof(h->addrs));
            memcpy(h->alen, r->alen, sizeof(h->alen));
            h->naddrs = r->naddrs;
            h->addrs_expire_ns = http__now_ns() + DNS_TTL_NS;
            host_pump(c, h);
        }
    }
    resolve_unref(r);
}

/* Gives waiting requests of h a connection while there is one to give. */
static void host_pump(struct ofe_http_client *c, struct h1_host *h)
{
    while (h->qhead) {
        struct op *o = h->qhead;
        if (h->idle) {
            struct h1_conn *k = h->idle;
            idle_unlink(&c->h1, k);
            queue_remove(o);
            conn_assign(c, k, o);
            continue;
        }
        if (h->nconns >= c->h1.max_host_conns)
            return;
        if (!h->numeric && (!h->naddrs || h->addrs_expire_ns <= http__now_ns())) {
            /* a stale answer serves while a new one is looked up */
            if (!h->resolving)
                host_resolve(c, h);
            if (!h->naddrs)
                return;
        }
        queue_remove(o);
        conn_open(c, h, o);
    }
}

/* ---- the engine's entry points --------------------------------------------------- */

int http__h1_init(struct ofe_http_client *c, char *errstr, size_t errstr_size)
{
    struct h1 *e = &c->h1;
    e->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (e->epfd < 0)
        return ofe_err(errstr, errstr_size, OFE_EIO, "epoll_create1: %s", strerror(errno));
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, c->efd, &ev) != 0)
        return ofe_err(errstr, errstr_size, OFE_EIO, "epoll_ctl: %s", strerror(errno));
    e->nbuckets = 16;
    e->buckets = calloc(e->nbuckets, sizeof(*e->buckets));
    e->rbuf_size = RBUF_SIZE;
    e->rbuf = malloc(e->rbuf_size);
    if (!e->buckets || !e->rbuf)
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    return 0;
}

void http__h1_fini(struct ofe_http_client *c)
{
    struct h1 *e = &c->h1;
    /* lookups still running finish into nothing */
    while (e->resolving) {
        struct h1_resolve *r = e->resolving;
        e->resolving = r->next;
        pthread_mutex_lock(&r->mu);
        r->c = NULL;
        pthread_mutex_unlock(&r->mu);
        resolve_unref(r);
    }
    for (size_t i = 0; e->buckets && i < e->nbuckets; i++)
        while (e->buckets[i])
            host_free(e, e->buckets[i]);
    free_dead(e);
    free(e->buckets);
    free(e->dl);
    free(e->rbuf);
    if (e->epfd >= 0)
        close(e->epfd);
    memset(e, 0, sizeof(*e));
    e->epfd = -1;
}

void http__h1_start(struct ofe_http_client *c, struct op *o)
{
    struct h1 *e = &c->h1;
    o->start_ns = http__now_ns();
    o->deadline_ns = end_ns(o);
    struct h1_host *h = host_get(e, o);
    if (!h || dl_push(e, o) != 0) {
        static const struct ofe_hdrs no_hdrs = {0};
        struct ofe_http_result r = {.err = OFE_EIO,
                                    .errmsg = "out of memory",
                                    .headers = &no_hdrs,
                                    .body = (const unsigned char *)"",
                                    .retry_after_ms = -1};
        http__complete(c, o, &r);
        return;
    }
    c->inflight++;
    o->rprev = &c->running;
    o->rnext = c->running;
    if (c->running)
        c->running->rprev = &o->rnext;
    c->running = o;
    queue_add(h, o, false);
    host_pump(c, h);
}

void http__h1_poll(struct ofe_http_client *c, int timeout_ms)
{
    struct h1 *e = &c->h1;
    struct epoll_event evs[MAX_EVENTS];
    int n = epoll_wait(e->epfd, evs, MAX_EVENTS, timeout_ms);
    for (int i = 0; i < n; i++) {
        if (!evs[i].data.ptr) {
            uint64_t v;
            while (read(c->efd, &v, sizeof(v)) < 0 && errno == EINTR)
                ;
            atomic_store(&c->wake_sent, false); /* the loop takes the list after this */
            continue;
        }
        conn_event(c, evs[i].data.ptr, evs[i].events);
    }
    free_dead(e);
}

int http__h1_timers(struct ofe_http_client *c, int cap_ms)
{
    struct h1 *e = &c->h1;
    /* finished lookups */
    pthread_mutex_lock(&c->lock);
    struct h1_resolve *done = c->resolved;
    c->resolved = NULL;
    pthread_mutex_unlock(&c->lock);
    while (done) {
        struct h1_resolve *next = done->rnext;
        resolved(c, done);
        done = next;
    }

    uint64_t now = http__now_ns();
    while (e->ndl && e->dl[0]->deadline_ns <= now) {
        struct op *o = e->dl[0];
        char msg[160];
        uint64_t ms = (now - o->start_ns) / 1000000u;
        struct h1_conn *k = o->conn;
        if (k && k->st == C_CONNECTING) {
            snprintf(msg, sizeof(msg), "Connection timed out after %llu milliseconds",
                     (unsigned long long)ms);
        } else if (!k && o->qhost && o->qhost->resolving && !o->qhost->naddrs) {
            snprintf(msg, sizeof(msg), "Resolving timed out after %llu milliseconds",
                     (unsigned long long)ms);
        } else {
            snprintf(msg, sizeof(msg),
                     "Operation timed out after %llu milliseconds with %llu bytes received",
                     (unsigned long long)ms, (unsigned long long)(k ? k->resp.nread : 0));
        }
        if (k) {
            struct h1_host *h = k->h;
            k->op = NULL;
            o->conn = NULL;
            conn_close(c, k);
            finish(c, o, OFE_ETIMEDOUT, msg, NULL);
            host_pump(c, h);
        } else {
            finish(c, o, OFE_ETIMEDOUT, msg, NULL);
        }
    }

    if (now >= e->next_sweep_ns) {
        e->next_sweep_ns = now + 1000000000u;
        while (e->idle_head && e->idle_head->idle_since + IDLE_MAX_NS <= now)
            conn_close(c, e->idle_head);
        for (size_t i = 0; i < e->nbuckets; i++) {
            struct h1_host *h = e->buckets[i];
            while (h) {
                struct h1_host *next = h->next;
                if (!h->nconns && !h->qhead && !h->resolving &&
                    h->last_used_ns + HOST_LINGER_NS <= now &&
                    (h->numeric || h->addrs_expire_ns <= now))
                    host_free(e, h);
                h = next;
            }
        }
    }
    free_dead(e);

    uint64_t next = e->next_sweep_ns;
    if (e->ndl && e->dl[0]->deadline_ns < next)
        next = e->dl[0]->deadline_ns;
    uint64_t ms = next > now ? (next - now + 999999) / 1000000u : 0;
    return ms < (uint64_t)cap_ms ? (int)ms : cap_ms;
}

void http__h1_cancel_all(struct ofe_http_client *c)
{
    struct h1 *e = &c->h1;
    struct op *o = c->running;
    while (o) {
        struct op *next = o->rnext;
        if (o->h1) {
            struct h1_conn *k = o->conn;
            if (k) {
                k->op = NULL;
                o->conn = NULL;
                conn_close(c, k);
            }
            finish(c, o, OFE_ECLOSED, "HTTP client shutting down", NULL);
        }
        o = next;
    }
    while (e->idle_head)
        conn_close(c, e->idle_head);
    free_dead(e);
}
