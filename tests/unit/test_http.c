/* The embedded HTTP server and the asynchronous HTTP client, against each
 * other over loopback. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ofe/err.h"
#include "ofe/http_client.h"
#include "ofe/httpd.h"

/* A result captured by the client callback. */
struct got {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    int status, err;
    char body[4096];
    size_t body_len;
    bool truncated;
    int64_t retry_after;
    char ctype[128];
    char xhdr[128];
};

static void got_init(struct got *g)
{
    memset(g, 0, sizeof(*g));
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
}

static void on_done(void *opaque, const struct ofe_http_result *r)
{
    struct got *g = opaque;
    pthread_mutex_lock(&g->lock);
    g->status = r->status;
    g->err = r->err;
    g->body_len = r->body_len < sizeof(g->body) - 1 ? r->body_len : sizeof(g->body) - 1;
    memcpy(g->body, r->body, g->body_len);
    g->body[g->body_len] = '\0';
    g->truncated = r->body_truncated;
    g->retry_after = r->retry_after_ms;
    const struct ofe_hdr *h = ofe_hdrs_get(r->headers, "content-type");
    if (h)
        snprintf(g->ctype, sizeof(g->ctype), "%.*s", (int)h->value_len, h->value);
    h = ofe_hdrs_get(r->headers, "x-test");
    if (h)
        snprintf(g->xhdr, sizeof(g->xhdr), "%.*s", (int)h->value_len, h->value);
    g->done = true;
    pthread_cond_signal(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

static void got_wait(struct got *g)
{
    pthread_mutex_lock(&g->lock);
    while (!g->done)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
}

static void request(struct ofe_http_client *c, const char *method, const char *url,
                    const char *body, const struct ofe_hdrs *h, uint32_t timeout_ms, struct got *g)
{
    got_init(g);
    struct ofe_http_req req = {.method = method,
                               .url = url,
                               .headers = h,
                               .body = body,
                               .body_len = body ? strlen(body) : 0,
                               .timeout_ms = timeout_ms};
    assert_int_equal(ofe_http_client_submit(c, &req, on_done, g), 0);
    got_wait(g);
}

/* Echo: replies with method, path, query, the X-Echo header and the body. */
static void h_echo(struct ofe_http_exchange *x, const struct ofe_http_request *req, void *arg)
{
    const struct ofe_hdr *e = ofe_hdrs_get(req->headers, "X-ECHO");
    struct ofe_hdrs out;
    ofe_hdrs_init(&out);
    ofe_hdrs_add_copy(&out, "X-Test", 6, "yes", 3);
    char buf[8192];
    int n = snprintf(buf, sizeof(buf), "%s %s ?%s echo=%.*s body=%.*s", req->method, req->path,
                     req->query, e ? (int)e->value_len : 0, e ? e->value : "", (int)req->body_len,
                     (const char *)req->body);
    ofe_httpd_reply(x, 200, "text/plain", buf, (size_t)n, &out);
    ofe_hdrs_fini(&out);
}

/* Deferred: replies from another thread after a short wait. */
static void *later(void *arg)
{
    usleep(50 * 1000);
    ofe_httpd_reply(arg, 202, "text/plain", "later", 5, NULL);
    return NULL;
}

static void h_deferred(struct ofe_http_exchange *x, const struct ofe_http_request *req, void *arg)
{
    pthread_t t;
    pthread_create(&t, NULL, later, x);
    pthread_detach(t);
}

/* Never answers until the server stops. */
static struct ofe_http_exchange *g_held;
static void h_hold(struct ofe_http_exchange *x, const struct ofe_http_request *req, void *arg)
{
    g_held = x;
}

static void h_retry_after(struct ofe_http_exchange *x, const struct ofe_http_request *req,
                          void *arg)
{
    struct ofe_hdrs out;
    ofe_hdrs_init(&out);
    ofe_hdrs_add_copy(&out, "Retry-After", 11, "7", 1);
    ofe_httpd_reply(x, 429, "text/plain", "slow down", 9, &out);
    ofe_hdrs_fini(&out);
}

static void h_big(struct ofe_http_exchange *x, const struct ofe_http_request *req, void *arg)
{
    static char big[200 * 1024];
    memset(big, 'b', sizeof(big));
    ofe_httpd_reply(x, 200, "text/plain", big, sizeof(big), NULL);
}

static void h_slow(struct ofe_http_exchange *x, const struct ofe_http_request *req, void *arg)
{
    usleep(400 * 1000);
    ofe_httpd_reply(x, 200, "text/plain", "late", 4, NULL);
}

static bool not_ready(void *arg, char *why, size_t n)
{
    snprintf(why, n, "bus not connected");
    return *(bool *)arg;
}

struct fixture {
    struct ofe_httpd *h;
    struct ofe_http_client *c;
    struct ofe_metrics *m;
    bool ready;
    char base[64];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char err[256];
    struct ofe_httpd_opts o = {.port = 0, .max_body = 1000, .component = "test"};
    f->h = ofe_httpd_start(&o, err, sizeof(err));
    assert_non_null(f->h);
    f->m = ofe_metrics_new();
    ofe_counter_add(ofe_metrics_counter(f->m, "ofe_test_total", "t", NULL), 5);
    ofe_httpd_route_std(f->h, f->m, not_ready, &f->ready);
    ofe_httpd_route(f->h, NULL, "/echo/*", h_echo, NULL);
    ofe_httpd_route(f->h, "POST", "/deferred", h_deferred, NULL);
    ofe_httpd_route(f->h, "POST", "/hold", h_hold, NULL);
    ofe_httpd_route(f->h, "POST", "/retry-after", h_retry_after, NULL);
    ofe_httpd_route(f->h, "GET", "/big", h_big, NULL);
    ofe_httpd_route(f->h, "GET", "/slow", h_slow, NULL);
    struct ofe_http_client_opts co = {.max_response_body = 100 * 1024};
    f->c = ofe_http_client_new(&co, err, sizeof(err));
    assert_non_null(f->c);
    snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%u", ofe_httpd_port(f->h));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    ofe_http_client_destroy(f->c);
    ofe_httpd_stop(f->h);
    ofe_metrics_destroy(f->m);
    free(f);
    return 0;
}

static void test_echo(void **state)
{
    struct fixture *f = *state;
    char url[128];
    snprintf(url, sizeof(url), "%s/echo/a?x=1", f->base);
    struct ofe_hdrs h;
    ofe_hdrs_init(&h);
    ofe_hdrs_add_copy(&h, "X-Echo", 6, "hello", 5);
    struct got g;
    request(f->c, "POST", url, "payload", &h, 0, &g);
    ofe_hdrs_fini(&h);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.body, "POST /echo/a ?x=1 echo=hello body=payload");
    assert_string_equal(g.ctype, "text/plain");
    assert_string_equal(g.xhdr, "yes");
    assert_int_equal(g.retry_after, -1);
}

static void test_std_routes(void **state)
{
    struct fixture *f = *state;
    char url[128];
    struct got g;
    snprintf(url, sizeof(url), "%s/healthz", f->base);
    request(f->c, "GET", url, NULL, NULL, 0, &g);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.body, "ok\n");
    snprintf(url, sizeof(url), "%s/readyz", f->base);
    f->ready = false;
    request(f->c, "GET", url, NULL, NULL, 0, &g);
    assert_int_equal(g.status, 503);
    assert_string_equal(g.body, "bus not connected\n");
    f->ready = true;
    request(f->c, "GET", url, NULL, NULL, 0, &g);
    assert_int_equal(g.status, 200);
    snprintf(url, sizeof(url), "%s/metrics", f->base);
    request(f->c, "GET", url, NULL, NULL, 0, &g);
    assert_int_equal(g.status, 200);
    assert_non_null(strstr(g.body, "ofe_test_total 5\n"));
    assert_non_null(strstr(g.ctype, "text/plain; version=0.0.4"));
}

static void test_404_405_413(void **state)
{
    struct fixture *f = *state;
    char url[128];
    struct got g;
    snprintf(url, sizeof(url), "%s/nope", f->base);
    request(f->c, "GET", url, NULL, NULL, 0, &g);
    assert_int_equal(g.status, 404);
    snprintf(url, sizeof(url), "%s/deferred", f->base);
    request(f->c, "GET", url, NULL, NULL, 0, &g);
    assert_int_equal(g.status, 405);
    char big[2001];
    memset(big, 'x', 2000);
    big[2000] = '\0';
    snprintf(url, sizeof(url), "%s/echo/x", f->base);
    request(f->c, "POST", url, big, NULL, 0, &g);
    assert_int_equal(g.status, 413);
    assert_non_null(strstr(g.body, "1000 bytes"));
    /* the server still serves after a refused body */
    request(f->c, "POST", url, "ok", NULL, 0, &g);
    assert_int_equal(g.status, 200);
}

static void test_deferred(void **state)
{
    struct fixture *f = *state;
    char url[128];
    snprintf(url, sizeof(url), "%s/deferred", f->base);
    struct got g[8];
    for (int i = 0; i < 8; i++) {
        got_init(&g[i]);
        struct ofe_http_req req = {.url = url, .body = "x", .body_len = 1};
        assert_int_equal(ofe_http_client_submit(f->c, &req, on_done, &g[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        got_wait(&g[i]);
        assert_int_equal(g[i].status, 202);
        assert_string_equal(g[i].body, "later");
    }
}

static void test_retry_after_and_truncation(void **state)
{
    struct fixture *f = *state;
    char url[128];
    struct got g;
    snprintf(url, sizeof(url), "%s/retry-after", f->base);
    request(f->c, "POST", url, "x", NULL, 0, &g);
    assert_int_equal(g.status, 429);
    assert_int_equal(g.retry_after, 7000);
    snprintf(url, sizeof(url), "%s/big", f->base);
    request(f->c, "GET", url, NULL, NULL, 0, &g);
    assert_int_equal(g.status, 200);
    assert_true(g.truncated);
}

static void test_timeout_and_refused(void **state)
{
    struct fixture *f = *state;
    char url[128];
    struct got g;
    snprintf(url, sizeof(url), "%s/slow", f->base);
    request(f->c, "GET", url, NULL, NULL, 100, &g);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.err, OFE_ETIMEDOUT);
    /* a port nobody listens on: bind one, close it, use it */
    struct ofe_httpd_opts o = {.port = 0};
    char err[128];
    struct ofe_httpd *tmp = ofe_httpd_start(&o, err, sizeof(err));
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/", ofe_httpd_port(tmp));
    ofe_httpd_stop(tmp);
    request(f->c, "POST", url, "x", NULL, 1000, &g);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.err, OFE_ECONN);
}

static void test_stop_answers_held(void **state)
{
    char err[256];
    struct ofe_httpd_opts o = {.port = 0};
    struct ofe_httpd *h = ofe_httpd_start(&o, err, sizeof(err));
    ofe_httpd_route(h, "POST", "/hold", h_hold, NULL);
    struct ofe_http_client *c = ofe_http_client_new(NULL, err, sizeof(err));
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/hold", ofe_httpd_port(h));
    struct got g;
    got_init(&g);
    g_held = NULL;
    struct ofe_http_req req = {.url = url, .body = "x", .body_len = 1};
    assert_int_equal(ofe_http_client_submit(c, &req, on_done, &g), 0);
    for (int i = 0; i < 500 && !g_held; i++)
        usleep(10000);
    assert_non_null(g_held);
    ofe_httpd_stop(h);
    got_wait(&g);
    assert_int_equal(g.status, 503);
    /* the handler's late reply after the stop is harmless */
    ofe_httpd_reply(g_held, 200, NULL, NULL, 0, NULL);
    ofe_http_client_destroy(c);
}

static void test_bind_error(void **state)
{
    struct fixture *f = *state;
    char err[256];
    struct ofe_httpd_opts o = {.port = ofe_httpd_port(f->h)};
    assert_null(ofe_httpd_start(&o, err, sizeof(err)));
    assert_non_null(strstr(err, "Address already in use"));
}

static void test_client_destroy_cancels(void **state)
{
    char err[256];
    struct ofe_http_client *c = ofe_http_client_new(NULL, err, sizeof(err));
    struct got g;
    got_init(&g);
    /* a request due in an hour is cancelled by destroy, with its callback */
    struct ofe_http_req req = {.url = "http://127.0.0.1:9/", .delay_ms = 3600000};
    assert_int_equal(ofe_http_client_submit(c, &req, on_done, &g), 0);
    assert_int_equal(ofe_http_client_pending(c), 1);
    ofe_http_client_destroy(c);
    assert_true(g.done);
    assert_int_equal(g.err, OFE_ECLOSED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_echo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_std_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_404_405_413, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deferred, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_after_and_truncation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_and_refused, setup, teardown),
        cmocka_unit_test(test_stop_answers_held),
        cmocka_unit_test_setup_teardown(test_bind_error, setup, teardown),
        cmocka_unit_test(test_client_destroy_cancels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
