/* The HTTP client's own HTTP/1.1 engine (http:// URLs), against a scripted
 * server on loopback that answers with exact bytes: framing (Content-Length,
 * chunked, close-delimited, 1xx, HEAD, 204), keep-alive reuse counted at
 * the server, servers closing connections, timeouts, refused connections,
 * truncated bodies, malformed and oversized responses, the request as
 * sent, the queue bound, cancellation, and what still goes through
 * libcurl (https://, a proxy from the environment). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ofe/err.h"
#include "ofe/http_client.h"

/* ---- the scripted server ------------------------------------------------- */

#define SRV_CONNS 128
#define SRV_BUF   (256 * 1024)

struct sconn {
    int fd;
    char *buf;
    size_t len;
    unsigned served; /* requests answered on this connection */
    bool held;       /* never answered: closed at stop */
    uint64_t last_ms;
};

struct srv {
    int lfd;
    unsigned port;
    pthread_t thr;
    atomic_bool stop;
    atomic_int accepted, requests, closed_idle, tls_hellos;
    int idle_close_ms; /* close connections idle this long (0: never) */
    struct sconn c[SRV_CONNS];
    pthread_mutex_t lock;
    char last_head[8192]; /* the head of the last request */
    char last_body[1024];
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void write_all(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n) {
        ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
        if (k <= 0) {
            if (k < 0 && errno == EINTR)
                continue;
            return;
        }
        s += k;
        n -= (size_t)k;
    }
}

static void say(int fd, const char *s)
{
    write_all(fd, s, strlen(s));
}

static void sclose(struct sconn *k)
{
    close(k->fd);
    free(k->buf);
    memset(k, 0, sizeof(*k));
    k->fd = -1;
}

enum { KEEP, CLOSE, HOLD };

/* Answers one request; returns KEEP, CLOSE or HOLD. */
static int answer(struct srv *s, struct sconn *k, const char *method, const char *target)
{
    int fd = k->fd;
    const char *path = target;
    if (!strcmp(path, "/ok") || !strncmp(path, "/ok?", 4)) {
        say(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Test: yes\r\nContent-Length: "
                "2\r\n\r\nok");
    } else if (!strcmp(path, "/echo") || !strncmp(path, "/echo?", 6)) {
        char out[10000];
        pthread_mutex_lock(&s->lock);
        int n = snprintf(out, sizeof(out), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s",
                         strlen(s->last_head), s->last_head);
        pthread_mutex_unlock(&s->lock);
        write_all(fd, out, (size_t)n);
    } else if (!strcmp(path, "/chunked")) {
        /* in pieces, with an extension, a split size line and a trailer */
        say(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Test: "
                "chunky\r\n\r\n5;ext=1\r\nhel");
        usleep(5000);
        say(fd, "lo\r\n");
        usleep(5000);
        say(fd, "6\r\n world\r\n1");
        usleep(5000);
        say(fd, "0\r\n, and more bytes\r\n0\r\nX-Trailer: t\r\n\r\n");
    } else if (!strcmp(path, "/close-delimited")) {
        say(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the ");
        usleep(5000);
        say(fd, "end");
        return CLOSE;
    } else if (!strcmp(path, "/http10")) {
        say(fd, "HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\nold!");
        return CLOSE;
    } else if (!strcmp(path, "/1xx")) {
        say(fd, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n");
        usleep(5000);
        say(fd, "HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone");
    } else if (!strcmp(path, "/conn-close")) {
        say(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
        return CLOSE;
    } else if (!strcmp(path, "/hold")) {
        return HOLD;
    } else if (!strncmp(path, "/big?n=", 7)) {
        size_t n = strtoul(path + 7, NULL, 10);
        char head[128];
        snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", n);
        say(fd, head);
        char *body = malloc(n ? n : 1);
        memset(body, 'b', n);
        write_all(fd, body, n);
        free(body);
    } else if (!strcmp(path, "/huge-head")) {
        say(fd, "HTTP/1.1 200 OK\r\n");
        char line[1024];
        memset(line, 'v', sizeof(line));
        memcpy(line, "X-Big: ", 7);
        memcpy(line + sizeof(line) - 2, "\r\n", 2);
        for (int i = 0; i < 70; i++)
            write_all(fd, line, sizeof(line));
        say(fd, "Content-Length: 0\r\n\r\n");
        return CLOSE;
    } else if (!strcmp(path, "/bad-status")) {
        say(fd, "HTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        return CLOSE;
    } else if (!strcmp(path, "/bad-chunk")) {
        say(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n");
        return CLOSE;
    } else if (!strcmp(path, "/bad-length")) {
        say(fd, "HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\n");
        return CLOSE;
    } else if (!strcmp(path, "/bad-header")) {
        say(fd, "HTTP/1.1 200 OK\r\nNo colon here\r\nContent-Length: 0\r\n\r\n");
        return CLOSE;
    } else if (!strcmp(path, "/empty")) {
        return CLOSE;
    } else if (!strcmp(path, "/partial")) {
        say(fd, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
        return CLOSE;
    } else if (!strcmp(path, "/head")) {
        /* the length of the body a GET would have, and no body */
        say(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
    } else if (!strcmp(path, "/204")) {
        say(fd, "HTTP/1.1 204 No Content\r\nX-Test: none\r\n\r\n");
    } else if (!strcmp(path, "/retry-after")) {
        say(fd,
            "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 3\r\nContent-Length: 4\r\n\r\nbusy");
    } else if (!strcmp(path, "/fold")) {
        say(fd, "HTTP/1.1 200 OK\r\nX-Fold: one\r\n  two\r\n\tthree\r\nContent-Length: 0\r\n\r\n");
    } else if (!strcmp(path, "/lf-only")) {
        say(fd, "HTTP/1.1 200 OK\nX-Test: lf\nContent-Length: 2\n\nok");
    } else if (!strcmp(path, "/drop-if-reused")) {
        /* as if the server had closed the idle connection just before */
        if (k->served > 0)
            return CLOSE;
        say(fd, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh");
    } else if (!strcmp(path, "/drop")) {
        return CLOSE;
    } else if (!strcmp(path, "/slow")) {
        usleep(20000);
        say(fd, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow");
    } else {
        (void)method;
        say(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    }
    return KEEP;
}

/* Handles complete requests in k's buffer. Returns false when k closed. */
static bool serve(struct srv *s, struct sconn *k)
{
    for (;;) {
        if (k->len && k->served == 0 && (unsigned char)k->buf[0] == 0x16) {
            atomic_fetch_add(&s->tls_hellos, 1); /* a TLS ClientHello */
            sclose(k);
            return false;
        }
        char *end = memmem(k->buf, k->len, "\r\n\r\n", 4);
        if (!end)
            return true;
        size_t hlen = (size_t)(end - k->buf) + 4;
        size_t blen = 0;
        for (char *p = k->buf; p < end; p++)
            if ((p == k->buf || p[-1] == '\n') && !strncasecmp(p, "Content-Length:", 15))
                blen = strtoul(p + 15, NULL, 10);
        if (k->len < hlen + blen)
            return true;
        char method[16] = "", target[2048] = "";
        sscanf(k->buf, "%15s %2047s", method, target);
        pthread_mutex_lock(&s->lock);
        snprintf(s->last_head, sizeof(s->last_head), "%.*s", (int)hlen, k->buf);
        snprintf(s->last_body, sizeof(s->last_body), "%.*s", (int)blen, k->buf + hlen);
        pthread_mutex_unlock(&s->lock);
        atomic_fetch_add(&s->requests, 1);
        int rc = answer(s, k, method, target);
        memmove(k->buf, k->buf + hlen + blen, k->len - hlen - blen);
        k->len -= hlen + blen;
        k->served++;
        k->last_ms = now_ms();
        if (rc == CLOSE) {
            sclose(k);
            return false;
        }
        if (rc == HOLD) {
            k->held = true;
            return true;
        }
    }
}

static void *srv_run(void *arg)
{
    struct srv *s = arg;
    while (!atomic_load(&s->stop)) {
        struct pollfd p[SRV_CONNS + 1];
        int map[SRV_CONNS + 1];
        int n = 0;
        p[n].fd = s->lfd;
        p[n].events = POLLIN;
        map[n++] = -1;
        for (int i = 0; i < SRV_CONNS; i++)
            if (s->c[i].fd >= 0 && !s->c[i].held) {
                p[n].fd = s->c[i].fd;
                p[n].events = POLLIN;
                map[n++] = i;
            }
        if (poll(p, (nfds_t)n, 10) < 0)
            continue;
        if (p[0].revents & POLLIN) {
            int fd = accept(s->lfd, NULL, NULL);
            if (fd >= 0) {
                atomic_fetch_add(&s->accepted, 1);
                int i = 0;
                while (i < SRV_CONNS && s->c[i].fd >= 0)
                    i++;
                if (i == SRV_CONNS) {
                    close(fd);
                } else {
                    s->c[i].fd = fd;
                    s->c[i].buf = malloc(SRV_BUF);
                    s->c[i].len = 0;
                    s->c[i].served = 0;
                    s->c[i].last_ms = now_ms();
                }
            }
        }
        for (int j = 1; j < n; j++) {
            struct sconn *k = &s->c[map[j]];
            if (!(p[j].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t r = recv(k->fd, k->buf + k->len, SRV_BUF - k->len, 0);
            if (r <= 0) {
                sclose(k);
                continue;
            }
            k->len += (size_t)r;
            k->last_ms = now_ms();
            serve(s, k);
        }
        if (s->idle_close_ms) {
            uint64_t t = now_ms();
            for (int i = 0; i < SRV_CONNS; i++)
                if (s->c[i].fd >= 0 && !s->c[i].held && s->c[i].len == 0 &&
                    t - s->c[i].last_ms >= (uint64_t)s->idle_close_ms) {
                    sclose(&s->c[i]);
                    atomic_fetch_add(&s->closed_idle, 1);
                }
        }
    }
    for (int i = 0; i < SRV_CONNS; i++)
        if (s->c[i].fd >= 0)
            sclose(&s->c[i]);
    return NULL;
}

/* Listens on 127.0.0.1, port chosen by the kernel; backlog as given. */
static int listen_any(int backlog, unsigned *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, backlog), 0);
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}

static struct srv *srv_start(int idle_close_ms)
{
    struct srv *s = calloc(1, sizeof(*s));
    for (int i = 0; i < SRV_CONNS; i++)
        s->c[i].fd = -1;
    pthread_mutex_init(&s->lock, NULL);
    s->idle_close_ms = idle_close_ms;
    s->lfd = listen_any(64, &s->port);
    pthread_create(&s->thr, NULL, srv_run, s);
    return s;
}

static void srv_stop(struct srv *s)
{
    atomic_store(&s->stop, true);
    pthread_join(s->thr, NULL);
    close(s->lfd);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* ---- the client side ------------------------------------------------------ */

struct got {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int calls;
    int status, err;
    char errmsg[256];
    char *body;
    size_t body_len;
    bool truncated;
    int64_t retry_after;
    char ctype[128], xtest[128], link[128], xfold[128];
    size_t nhdrs;
    pthread_t thread;
};

static void got_init(struct got *g)
{
    memset(g, 0, sizeof(*g));
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
}

static void got_fini(struct got *g)
{
    free(g->body);
    pthread_mutex_destroy(&g->lock);
    pthread_cond_destroy(&g->cond);
}

static void hdr(const struct ofe_http_result *r, const char *name, char *out, size_t n)
{
    const struct ofe_hdr *h = ofe_hdrs_get(r->headers, name);
    out[0] = '\0';
    if (h)
        snprintf(out, n, "%.*s", (int)h->value_len, h->value);
}

static void on_done(void *opaque, const struct ofe_http_result *r)
{
    struct got *g = opaque;
    pthread_mutex_lock(&g->lock);
    g->calls++;
    g->status = r->status;
    g->err = r->err;
    snprintf(g->errmsg, sizeof(g->errmsg), "%s", r->errmsg ? r->errmsg : "(null)");
    free(g->body);
    g->body = malloc(r->body_len + 1);
    memcpy(g->body, r->body, r->body_len);
    g->body[r->body_len] = '\0';
    g->body_len = r->body_len;
    g->truncated = r->body_truncated;
    g->retry_after = r->retry_after_ms;
    hdr(r, "content-type", g->ctype, sizeof(g->ctype));
    hdr(r, "x-test", g->xtest, sizeof(g->xtest));
    hdr(r, "link", g->link, sizeof(g->link));
    hdr(r, "x-fold", g->xfold, sizeof(g->xfold));
    g->nhdrs = r->headers ? r->headers->n : 0;
    g->thread = pthread_self();
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

static void got_wait(struct got *g)
{
    pthread_mutex_lock(&g->lock);
    while (!g->calls)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
}

struct req_opts {
    const char *method;
    const char *body;
    const struct ofe_hdrs *headers;
    uint32_t timeout_ms;
};

static void submit(struct ofe_http_client *c, const char *url, const struct req_opts *o,
                   struct got *g)
{
    got_init(g);
    struct ofe_http_req req = {.method = o ? o->method : NULL,
                               .url = url,
                               .headers = o ? o->headers : NULL,
                               .body = o && o->body ? o->body : NULL,
                               .body_len = o && o->body ? strlen(o->body) : 0,
                               .timeout_ms = o ? o->timeout_ms : 0};
    assert_int_equal(ofe_http_client_submit(c, &req, on_done, g), 0);
}

static void request(struct ofe_http_client *c, const char *url, const struct req_opts *o,
                    struct got *g)
{
    submit(c, url, o, g);
    got_wait(g);
    assert_int_equal(g->calls, 1);
}

struct fx {
    struct srv *s;
    struct ofe_http_client *c;
    char base[64];
};

static struct fx *fx_new(int idle_close_ms, const struct ofe_http_client_opts *co)
{
    struct fx *f = calloc(1, sizeof(*f));
    f->s = srv_start(idle_close_ms);
    char err[256];
    f->c = ofe_http_client_new(co, err, sizeof(err));
    assert_non_null(f->c);
    snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%u", f->s->port);
    return f;
}

static void fx_free(struct fx *f)
{
    ofe_http_client_destroy(f->c);
    srv_stop(f->s);
    free(f);
}

static const char *url_of(struct fx *f, const char *path, char *buf, size_t n)
{
    snprintf(buf, n, "%s%s", f->base, path);
    return buf;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_keepalive_reuse(void **state)
{
    struct fx *f = fx_new(0, NULL);
    char u[128];
    for (int i = 0; i < 20; i++) {
        struct got g;
        request(f->c, url_of(f, "/ok", u, sizeof(u)), NULL, &g);
        assert_int_equal(g.err, 0);
        assert_int_equal(g.status, 200);
        assert_string_equal(g.body, "ok");
        assert_string_equal(g.xtest, "yes");
        assert_string_equal(g.errmsg, "");
        assert_int_equal(g.retry_after, -1);
        assert_false(pthread_equal(g.thread, pthread_self()));
        got_fini(&g);
    }
    /* twenty requests, one connection */
    assert_int_equal(atomic_load(&f->s->accepted), 1);
    assert_int_equal(atomic_load(&f->s->requests), 20);
    fx_free(f);
}

static void test_request_as_sent(void **state)
{
    struct fx *f = fx_new(0, NULL);
    char u[128], expect[128];
    struct ofe_hdrs h;
    ofe_hdrs_init(&h);
    ofe_hdrs_add_copy(&h, "X-Custom", 8, "v 1", 3);
    ofe_hdrs_add_copy(&h, "ce-id", 5, "42", 2);
    struct got g;
    request(f->c, url_of(f, "/echo?x=1&y=%20#frag", u, sizeof(u)),
            &(struct req_opts){.body = "payload", .headers = &h}, &g);
    assert_int_equal(g.status, 200);
    assert_non_null(strstr(g.body, "POST /echo?x=1&y=%20 HTTP/1.1\r\n"));
    snprintf(expect, sizeof(expect), "\r\nHost: 127.0.0.1:%u\r\n", f->s->port);
    assert_non_null(strstr(g.body, expect));
    assert_non_null(strstr(g.body, "\r\nUser-Agent: ofevents/"));
    assert_non_null(strstr(g.body, "\r\nContent-Length: 7\r\n"));
    assert_non_null(strstr(g.body, "\r\nX-Custom: v 1\r\n"));
    assert_non_null(strstr(g.body, "\r\nce-id: 42\r\n"));
    /* no Content-Type unless given (a CloudEvents receiver reads it), no Expect */
    assert_null(strcasestr(g.body, "content-type"));
    assert_null(strcasestr(g.body, "expect"));
    pthread_mutex_lock(&f->s->lock);
    assert_string_equal(f->s->last_body, "payload");
    pthread_mutex_unlock(&f->s->lock);
    got_fini(&g);

    /* GET: no body, no Content-Length; a Host and User-Agent of the caller win */
    ofe_hdrs_reset(&h);
    ofe_hdrs_add_copy(&h, "Host", 4, "example.org", 11);
    ofe_hdrs_add_copy(&h, "User-Agent", 10, "mine/1", 6);
    ofe_hdrs_add_copy(&h, "Content-Type", 12, "text/plain", 10);
    request(f->c, url_of(f, "/echo", u, sizeof(u)),
            &(struct req_opts){.method = "GET", .headers = &h}, &g);
    assert_int_equal(g.status, 200);
    assert_non_null(strstr(g.body, "GET /echo HTTP/1.1\r\n"));
    assert_non_null(strstr(g.body, "\r\nHost: example.org\r\n"));
    assert_non_null(strstr(g.body, "\r\nUser-Agent: mine/1\r\n"));
    assert_non_null(strstr(g.body, "\r\nContent-Type: text/plain\r\n"));
    assert_null(strstr(g.body, "Content-Length"));
    assert_null(strstr(g.body, "ofevents/"));
    got_fini(&g);

    /* an empty POST still says its length; a path-less URL asks for / */
    snprintf(u, sizeof(u), "%s?q", f->base);
    request(f->c, u, NULL, &g);
    assert_int_equal(g.status, 404);
    pthread_mutex_lock(&f->s->lock);
    assert_non_null(strstr(f->s->last_head, "POST /?q HTTP/1.1\r\n"));
    assert_non_null(strstr(f->s->last_head, "\r\nContent-Length: 0\r\n"));
    pthread_mutex_unlock(&f->s->lock);
    got_fini(&g);
    ofe_hdrs_fini(&h);
    assert_int_equal(atomic_load(&f->s->accepted), 1);
    fx_free(f);
}

static void test_chunked(void **state)
{
    struct fx *f = fx_new(0, NULL);
    char u[128];
    struct got g;
    request(f->c, url_of(f, "/chunked", u, sizeof(u)), NULL, &g);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.body, "hello world, and more bytes");
    assert_string_equal(g.xtest, "chunky");
    got_fini(&g);
    /* the connection carries the next request: the trailer was read in full */
    request(f->c, url_of(f, "/ok", u, sizeof(u)), NULL, &g);
    assert_int_equal(g.status, 200);
    got_fini(&g);
    assert_int_equal(atomic_load(&f->s->accepted), 1);
    fx_free(f);
}

static void test_close_delimited_and_http10(void **state)
{
    struct fx *f = fx_new(0, NULL);
    char u[128];
    struct got g;
    request(f->c, url_of(f, "/close-delimited", u, sizeof(u)), NULL, &g);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.body, "until the end");
    assert_string_equal(g.ctype, "text/plain");
    got_fini(&g);
    request(f->c, url_of(f, "/http10", u, sizeof(u)), NULL, &g);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.body, "old!");
    got_fini(&g);
    /* Connection: close is honoured: each of these needs its own connection */
    for (int i = 0; i < 3; i++) {
        request(f->c, url_of(f, "/conn-close", u, sizeof(u)), NULL, &g);
        assert_int_equal(g.status, 200);
        assert_string_equal(g.body, "ok");
        got_fini(&g);
    }
    request(f->c, url_of(f, "/ok", u, sizeof(u)), NULL, &g);
    assert_int_equal(g.status, 200);
    got_fini(&g);
    assert_int_equal(atomic_load(&f->s->accepted), 6);
    fx_free(f);
}

static void test_informational_skipped(void **state)
{
    struct fx *f = fx_new(0, NULL);
    char u[128];
    struct got g;
    request(f->c, url_of(f, "/1xx", u, sizeof(u)), NULL, &g);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.status, 201);
    assert_string_equal(g.body, "done");
    assert_string_equal(g.link, ""); /* headers of the 103 are not the response's */
    got_fini(&g);
    fx_free(f);
}

static void test_head_204_fold_lf(void **state)
{
    struct fx *f = fx_new(0, NULL);
    char u[128];
    struct got g;
    request(f->c, url_of(f, "/head", u, sizeof(u)), &(struct req_opts){.method = "HEAD"}, &g);
    assert_int_equal(g.status, 200);
    assert_int_equal(g.body_len, 0);
    got_fini(&g);
    request(f->c, url_of(f, "/204", u, sizeof(u)), &(struct req_opts){.method = "DELETE"}, &g);
    assert_int_equal(g.status, 204);
    assert_string_equal(g.xtest, "none");
    got_fini(&g);
    request(f->c, url_of(f, "/fold", u, sizeof(u)), NULL, &g);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.xfold, "one two three");
    got_fini(&g);
    request(f->c, url_of(f, "/lf-only", u, sizeof(u)), NULL, &g);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.xtest, "lf");
    assert_string_equal(g.body, "ok");
    got_fini(&g);
    request(f->c, url_of(f, "/retry-after", u, sizeof(u)), NULL, &g);
    assert_int_equal(g.status, 503);
    assert_int_equal(g.retry_after, 3000);
    assert_string_equal(g.body, "busy");
    got_fini(&g);
    /* none of these closed the connection */
    assert_int_equal(atomic_load(&f->s->accepted), 1);
    fx_free(f);
}

static void test_truncated_body(void **state)
{
    struct fx *f = fx_new(0, &(struct ofe_http_client_opts){.max_response_body = 1000});
    char u[128];
    struct got g;
    request(f->c, url_of(f, "/big?n=200000", u, sizeof(u)), NULL, &g);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.status, 200);
    assert_true(g.truncated);
    assert_int_equal(g.body_len, 1000);
    assert_int_equal(g.body[999], 'b');
    got_fini(&g);
    request(f->c, url_of(f, "/big?n=1000", u, sizeof(u)), NULL, &g);
    assert_false(g.truncated);
    assert_int_equal(g.body_len, 1000);
    got_fini(&g);
    /* the rest of the long body was read: the connection was reused */
    assert_int_equal(atomic_load(&f->s->accepted), 1);
    fx_free(f);
}

static void test_malformed(void **state)
{
    struct fx *f = fx_new(0, NULL);
    char u[128];
    static const struct {
        const char *path, *words;
    } cases[] = {
        {"/huge-head", "response head larger than 65536 bytes"},
        {"/bad-status", "bad status line \"HTP/1.1 200 OK\""},
        {"/bad-chunk", "bad chunk size"},
        {"/bad-length", "invalid Content-Length \"12abc\""},
        {"/bad-header", "bad header line \"No colon here\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct got g;
        request(f->c, url_of(f, cases[i].path, u, sizeof(u)), NULL, &g);
        assert_int_equal(g.status, 0);
        assert_int_equal(g.err, OFE_EIO);
        if (!strstr(g.errmsg, "malformed HTTP response: ") || !strstr(g.errmsg, cases[i].words))
            fail_msg("%s: \"%s\" lacks \"%s\"", cases[i].path, g.errmsg, cases[i].words);
        got_fini(&g);
    }
    fx_free(f);
}

static void test_cut_short(void **state)
{
    struct fx *f = fx_new(0, NULL);
    char u[128];
    struct got g;
    request(f->c, url_of(f, "/empty", u, sizeof(u)), NULL, &g);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.err, OFE_ECONN);
    assert_string_equal(g.errmsg, "Empty reply from server");
    got_fini(&g);
    request(f->c, url_of(f, "/partial", u, sizeof(u)), NULL, &g);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.err, OFE_ECONN);
    assert_string_equal(g.errmsg, "transfer closed with 7 bytes remaining to read");
    got_fini(&g);
    fx_free(f);
}

static void test_server_closes_idle(void **state)
{
    struct fx *f = fx_new(30, NULL);
    char u[128];
    struct got g;
    request(f->c, url_of(f, "/ok", u, sizeof(u)), NULL, &g);
    assert_int_equal(g.status, 200);
    got_fini(&g);
    for (int i = 0; i < 500 && atomic_load(&f->s->closed_idle) < 1; i++)
        usleep(10000);
    assert_int_equal(atomic_load(&f->s->closed_idle), 1);
    request(f->c, url_of(f, "/ok", u, sizeof(u)), NULL, &g);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.status, 200);
    got_fini(&g);
    assert_int_equal(atomic_load(&f->s->accepted), 2);
    fx_free(f);
}

static void test_resend_on_reused_only(void **state)
{
    struct fx *f = fx_new(0, NULL);
    char u[128];
    struct got g;
    request(f->c, url_of(f, "/ok", u, sizeof(u)), NULL, &g);
    assert_int_equal(g.status, 200);
    got_fini(&g);
    /* the kept-alive connection dies under the request before any answer:
     * sent again, once, on a fresh connection, which answers */
    request(f->c, url_of(f, "/drop-if-reused", u, sizeof(u)), NULL, &g);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.body, "fresh");
    got_fini(&g);
    assert_int_equal(atomic_load(&f->s->accepted), 2);
    assert_int_equal(atomic_load(&f->s->requests), 3);
    /* a server that drops every request: once more on the reused
     * connection, then an error (never a loop) */
    request(f->c, url_of(f, "/drop", u, sizeof(u)), NULL, &g);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.err, OFE_ECONN);
    assert_string_equal(g.errmsg, "Empty reply from server");
    got_fini(&g);
    assert_int_equal(atomic_load(&f->s->requests), 5);
    /* on a fresh connection: no second try */
    request(f->c, url_of(f, "/drop", u, sizeof(u)), NULL, &g);
    assert_int_equal(g.err, OFE_ECONN);
    got_fini(&g);
    assert_int_equal(atomic_load(&f->s->requests), 6);
    fx_free(f);
}

static void test_timeouts_and_refused(void **state)
{
    struct fx *f = fx_new(0, NULL);
    char u[128];
    struct got g;
    request(f->c, url_of(f, "/hold", u, sizeof(u)), &(struct req_opts){.timeout_ms = 100}, &g);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.err, OFE_ETIMEDOUT);
    assert_non_null(strstr(g.errmsg, "timed out"));
    got_fini(&g);
    /* the connection that timed out is not reused: the next one works */
    request(f->c, url_of(f, "/ok", u, sizeof(u)), NULL, &g);
    assert_int_equal(g.status, 200);
    got_fini(&g);

    /* refused: a port bound then closed */
    unsigned port;
    close(listen_any(1, &port));
    snprintf(u, sizeof(u), "http://127.0.0.1:%u/", port);
    request(f->c, u, &(struct req_opts){.timeout_ms = 2000}, &g);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.err, OFE_ECONN);
    assert_non_null(strstr(g.errmsg, "Connection refused"));
    got_fini(&g);

    /* connect timeout: a listener whose accept queue is full drops SYNs */
    int lfd = listen_any(0, &port);
    int fill[4];
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons((uint16_t)port)};
    for (int i = 0; i < 4; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fill[i], (struct sockaddr *)&a, sizeof(a));
    }
    usleep(50000);
    snprintf(u, sizeof(u), "http://127.0.0.1:%u/", port);
    request(f->c, u, &(struct req_opts){.timeout_ms = 200}, &g);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.err, OFE_ETIMEDOUT);
    if (!strstr(g.errmsg, "Connection timed out after"))
        fail_msg("not a connect timeout: %s", g.errmsg);
    got_fini(&g);
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(lfd);
    fx_free(f);
}

static void test_names(void **state)
{
    struct fx *f = fx_new(0, NULL);
    char u[128];
    struct got g;
    /* a name: looked up (localhost may give ::1 first; the server is on
     * 127.0.0.1: the next address is tried) */
    snprintf(u, sizeof(u), "http://LocalHost:%u/ok", f->s->port);
    for (int i = 0; i < 3; i++) {
        request(f->c, u, NULL, &g);
        assert_int_equal(g.err, 0);
        assert_int_equal(g.status, 200);
        got_fini(&g);
    }
    /* a name that does not exist */
    request(f->c, "http://no-such-host.invalid/", &(struct req_opts){.timeout_ms = 5000}, &g);
    assert_int_equal(g.status, 0);
    if (g.err == OFE_ECONN)
        assert_non_null(strstr(g.errmsg, "Could not resolve host: no-such-host.invalid"));
    else
        assert_int_equal(g.err, OFE_ETIMEDOUT); /* a slow resolver */
    got_fini(&g);
    fx_free(f);
}

static void test_host_conns_bound(void **state)
{
    struct fx *f =
        fx_new(0, &(struct ofe_http_client_opts){.max_host_conns = 2, .max_inflight = 64});
    char u[128];
    enum { N = 12 };
    struct got g[N];
    for (int i = 0; i < N; i++)
        submit(f->c, url_of(f, "/slow", u, sizeof(u)), NULL, &g[i]);
    for (int i = 0; i < N; i++) {
        got_wait(&g[i]);
        assert_int_equal(g[i].status, 200);
        assert_string_equal(g[i].body, "slow");
        got_fini(&g[i]);
    }
    assert_true(atomic_load(&f->s->accepted) <= 2);
    assert_int_equal(atomic_load(&f->s->requests), N);
    fx_free(f);
}

static void test_queue_bound_and_destroy(void **state)
{
    struct fx *f = fx_new(0, &(struct ofe_http_client_opts){.max_inflight = 1, .max_queued = 2});
    char u[128];
    struct got g[4];
    url_of(f, "/hold", u, sizeof(u));
    for (int i = 0; i < 3; i++)
        submit(f->c, u, NULL, &g[i]);
    got_init(&g[3]);
    struct ofe_http_req req = {.url = u};
    assert_int_equal(ofe_http_client_submit(f->c, &req, on_done, &g[3]), OFE_EAGAIN);
    assert_int_equal(ofe_http_client_pending(f->c), 3);
    for (int i = 0; i < 500 && atomic_load(&f->s->requests) < 1; i++)
        usleep(10000);
    assert_int_equal(atomic_load(&f->s->requests), 1); /* one in flight, two waiting */
    ofe_http_client_destroy(f->c);
    f->c = NULL;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(g[i].calls, 1);
        assert_int_equal(g[i].err, OFE_ECLOSED);
        assert_int_equal(g[i].status, 0);
        got_fini(&g[i]);
    }
    assert_int_equal(g[3].calls, 0);
    got_fini(&g[3]);
    srv_stop(f->s);
    free(f);
}

/* Many requests from several threads over two clients (the trigger's
 * lanes), with a later() timer per request on the client thread. */
struct load {
    struct ofe_http_client *c;
    const char *url;
    atomic_int done, ok, timers;
    atomic_int later_failed;
};

struct load_arg {
    struct load *l;
    int lane;
};

static void load_timer(void *opaque)
{
    struct load_arg *a = opaque;
    atomic_fetch_add(&a->l->timers, 1);
    free(a);
}

static void load_done(void *opaque, const struct ofe_http_result *r)
{
    struct load_arg *a = opaque;
    if (r->status == 200 && r->body_len == 2)
        atomic_fetch_add(&a->l->ok, 1);
    atomic_fetch_add(&a->l->done, 1);
    free(a);
}

struct feeder {
    struct ofe_http_client *c[2];
    struct load *l;
    int n;
};

static void *feed(void *arg)
{
    struct feeder *fd = arg;
    for (int i = 0; i < fd->n; i++) {
        int lane = i % 2;
        struct load_arg *a = malloc(sizeof(*a));
        a->l = fd->l;
        a->lane = lane;
        struct ofe_http_req req = {.url = fd->l->url, .body = "0123456789", .body_len = 10};
        while (ofe_http_client_submit(fd->c[lane], &req, load_done, a) == OFE_EAGAIN)
            usleep(1000);
        struct load_arg *t = malloc(sizeof(*t));
        t->l = fd->l;
        t->lane = lane;
        if (ofe_http_client_later(fd->c[lane], (uint32_t)(i % 3), load_timer, t) != 0) {
            free(t);
            atomic_fetch_add(&fd->l->later_failed, 1);
        }
    }
    return NULL;
}

static void test_lanes_under_load(void **state)
{
    struct srv *s = srv_start(0);
    char err[256], u[128];
    struct ofe_http_client_opts co = {.max_inflight = 32, .max_queued = 64, .max_host_conns = 8};
    struct ofe_http_client *c[2] = {ofe_http_client_new(&co, err, sizeof(err)),
                                    ofe_http_client_new(&co, err, sizeof(err))};
    assert_non_null(c[0]);
    assert_non_null(c[1]);
    snprintf(u, sizeof(u), "http://127.0.0.1:%u/ok", s->port);
    struct load l = {.url = u};
    enum { PER = 2000 };
    struct feeder fd = {.c = {c[0], c[1]}, .l = &l, .n = PER};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, feed, &fd);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    for (int i = 0;
         i < 3000 && (atomic_load(&l.done) < 2 * PER || atomic_load(&l.timers) < 2 * PER); i++)
        usleep(10000);
    assert_int_equal(atomic_load(&l.later_failed), 0);
    assert_int_equal(atomic_load(&l.done), 2 * PER);
    assert_int_equal(atomic_load(&l.ok), 2 * PER);
    assert_int_equal(atomic_load(&l.timers), 2 * PER);
    assert_int_equal(ofe_http_client_pending(c[0]), 0);
    assert_int_equal(ofe_http_client_pending(c[1]), 0);
    /* connections stay within max_host_conns per client */
    assert_true(atomic_load(&s->accepted) <= 16);
    assert_int_equal(atomic_load(&s->requests), 2 * PER);
    ofe_http_client_destroy(c[0]);
    ofe_http_client_destroy(c[1]);
    srv_stop(s);
}

/* https:// still goes through libcurl: the server sees a TLS ClientHello. */
static void test_https_via_curl(void **state)
{
    struct fx *f = fx_new(0, NULL);
    char u[128];
    struct got g;
    snprintf(u, sizeof(u), "https://127.0.0.1:%u/ok", f->s->port);
    request(f->c, u, &(struct req_opts){.timeout_ms = 5000}, &g);
    assert_int_equal(g.status, 0);
    assert_true(g.err == OFE_ECONN || g.err == OFE_EIO);
    assert_true(strlen(g.errmsg) > 0);
    got_fini(&g);
    assert_int_equal(atomic_load(&f->s->tls_hellos), 1);
    /* and plain http:// on the same client still works */
    request(f->c, url_of(f, "/ok", u, sizeof(u)), NULL, &g);
    assert_int_equal(g.status, 200);
    got_fini(&g);
    fx_free(f);
}

/* A proxy in the environment: requests go through libcurl, which applies
 * it (the "proxy" here is the scripted server, which sees the full URL). */
static void test_env_proxy_uses_curl(void **state)
{
    struct srv *s = srv_start(0);
    char proxy[64], err[256];
    snprintf(proxy, sizeof(proxy), "http://127.0.0.1:%u", s->port);
    setenv("http_proxy", proxy, 1);
    struct ofe_http_client *c = ofe_http_client_new(NULL, err, sizeof(err));
    assert_non_null(c);
    struct got g;
    request(c, "http://upstream.invalid/ok", &(struct req_opts){.timeout_ms = 5000}, &g);
    unsetenv("http_proxy"); /* libcurl reads it for each transfer */
    if (g.status != 404)
        fail_msg("status %d err %d: %s", g.status, g.err, g.errmsg);
    assert_int_equal(g.status, 404); /* the server knows no "http://upstream.invalid/ok" */
    pthread_mutex_lock(&s->lock);
    assert_non_null(strstr(s->last_head, "POST http://upstream.invalid/ok HTTP/1.1\r\n"));
    pthread_mutex_unlock(&s->lock);
    got_fini(&g);
    ofe_http_client_destroy(c);
    srv_stop(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keepalive_reuse),
        cmocka_unit_test(test_request_as_sent),
        cmocka_unit_test(test_chunked),
        cmocka_unit_test(test_close_delimited_and_http10),
        cmocka_unit_test(test_informational_skipped),
        cmocka_unit_test(test_head_204_fold_lf),
        cmocka_unit_test(test_truncated_body),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_cut_short),
        cmocka_unit_test(test_server_closes_idle),
        cmocka_unit_test(test_resend_on_reused_only),
        cmocka_unit_test(test_timeouts_and_refused),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_host_conns_bound),
        cmocka_unit_test(test_queue_bound_and_destroy),
        cmocka_unit_test(test_lanes_under_load),
        cmocka_unit_test(test_https_via_curl),
        cmocka_unit_test(test_env_proxy_uses_curl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
