/* Delivery to HTTP sinks: the retry classification, the backoff schedule,
 * and the sender against a real local HTTP sink (our server) that fails on
 * command. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ofe/delivery.h"
#include "ofe/httpd.h"

/* ---- pure functions ----------------------------------------------------- */

static enum ofe_outcome cls(int status, int err)
{
    struct ofe_http_result r = {.status = status, .err = err, .errmsg = ""};
    return ofe_delivery_classify(&r);
}

static void test_classify(void **state)
{
    assert_int_equal(cls(200, 0), OFE_DELIVERY_OK);
    assert_int_equal(cls(202, 0), OFE_DELIVERY_OK);
    assert_int_equal(cls(204, 0), OFE_DELIVERY_OK);
    int retry[] = {404, 408, 409, 429, 500, 502, 503, 504};
    for (size_t i = 0; i < sizeof(retry) / sizeof(retry[0]); i++)
        assert_int_equal(cls(retry[i], 0), OFE_DELIVERY_RETRY);
    int fail[] = {400, 401, 403, 405, 410, 413, 415, 422};
    for (size_t i = 0; i < sizeof(fail) / sizeof(fail[0]); i++)
        assert_int_equal(cls(fail[i], 0), OFE_DELIVERY_FAIL);
    assert_int_equal(cls(0, OFE_ECONN), OFE_DELIVERY_RETRY);
    assert_int_equal(cls(0, OFE_ETIMEDOUT), OFE_DELIVERY_RETRY);
    assert_int_equal(cls(0, OFE_ECLOSED), OFE_DELIVERY_FAIL);
}

static void test_backoff_schedule(void **state)
{
    struct ofe_delivery_policy p;
    ofe_delivery_policy_default(&p);
    p.jitter = false;
    p.delay_ms = 100;
    p.cap_ms = 1000;
    p.backoff = OFE_BACKOFF_EXPONENTIAL;
    assert_int_equal(ofe_delivery_backoff_ms(&p, 1, -1, 0), 100);
    assert_int_equal(ofe_delivery_backoff_ms(&p, 2, -1, 0), 200);
    assert_int_equal(ofe_delivery_backoff_ms(&p, 3, -1, 0), 400);
    assert_int_equal(ofe_delivery_backoff_ms(&p, 4, -1, 0), 800);
    assert_int_equal(ofe_delivery_backoff_ms(&p, 5, -1, 0), 1000);  /* capped */
    assert_int_equal(ofe_delivery_backoff_ms(&p, 60, -1, 0), 1000); /* no overflow */
    p.backoff = OFE_BACKOFF_LINEAR;
    assert_int_equal(ofe_delivery_backoff_ms(&p, 1, -1, 0), 100);
    assert_int_equal(ofe_delivery_backoff_ms(&p, 3, -1, 0), 300);
    assert_int_equal(ofe_delivery_backoff_ms(&p, 30, -1, 0), 1000);
    /* Retry-After wins when longer, within the cap */
    assert_int_equal(ofe_delivery_backoff_ms(&p, 1, 700, 0), 700);
    assert_int_equal(ofe_delivery_backoff_ms(&p, 1, 50, 0), 100);
    assert_int_equal(ofe_delivery_backoff_ms(&p, 1, 60000, 0), 1000);
    /* full jitter stays within [0, wait] and is not constant */
    p.jitter = true;
    p.backoff = OFE_BACKOFF_EXPONENTIAL;
    uint32_t lo = UINT32_MAX, hi = 0;
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 1000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint32_t w = ofe_delivery_backoff_ms(&p, 3, -1, x);
        assert_true(w <= 400);
        if (w < lo)
            lo = w;
        if (w > hi)
            hi = w;
    }
    assert_true(lo < 100 && hi > 300);
}

/* ---- a sink that fails on command --------------------------------------- */

struct sink {
    pthread_mutex_t lock;
    int fail_times; /* answer fail_status this many times first */
    int fail_status;
    int delay_ms; /* sleep before answering (timeouts) */
    int attempts;
    double at[32]; /* monotonic seconds of each attempt */
    char ce_id[64], ce_type[64], ctype[128], body[256], ext[64];
    bool reply; /* answer 200 with a CloudEvent */
};

static double mono(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void copy_hdr(const struct ofe_hdrs *h, const char *name, char *out, size_t n)
{
    const struct ofe_hdr *x = ofe_hdrs_get(h, name);
    snprintf(out, n, "%.*s", x ? (int)x->value_len : 0, x ? x->value : "");
}

static void h_sink(struct ofe_http_exchange *x, const struct ofe_http_request *req, void *arg)
{
    struct sink *s = arg;
    pthread_mutex_lock(&s->lock);
    if (s->attempts < 32)
        s->at[s->attempts] = mono();
    s->attempts++;
    int n = s->attempts;
    copy_hdr(req->headers, "ce-id", s->ce_id, sizeof(s->ce_id));
    copy_hdr(req->headers, "ce-type", s->ce_type, sizeof(s->ce_type));
    copy_hdr(req->headers, "ce-myext", s->ext, sizeof(s->ext));
    copy_hdr(req->headers, "content-type", s->ctype, sizeof(s->ctype));
    snprintf(s->body, sizeof(s->body), "%.*s", (int)req->body_len, (const char *)req->body);
    int fail_times = s->fail_times, fail_status = s->fail_status, delay = s->delay_ms;
    bool reply = s->reply;
    pthread_mutex_unlock(&s->lock);
    if (delay && n <= fail_times) {
        usleep((useconds_t)delay * 1000);
        ofe_httpd_reply(x, 200, NULL, NULL, 0, NULL);
        return;
    }
    if (n <= fail_times) {
        ofe_httpd_replyf(x, fail_status, "failure number %d", n);
        return;
    }
    if (reply) {
        struct ofe_hdrs h;
        ofe_hdrs_init(&h);
        ofe_hdrs_add_copy(&h, "ce-id", 5, "reply-1", 7);
        ofe_hdrs_add_copy(&h, "ce-source", 9, "/fn", 3);
        ofe_hdrs_add_copy(&h, "ce-specversion", 14, "1.0", 3);
        ofe_hdrs_add_copy(&h, "ce-type", 7, "com.example.reply", 17);
        ofe_httpd_reply(x, 200, "text/plain", "answer", 6, &h);
        ofe_hdrs_fini(&h);
        return;
    }
    ofe_httpd_reply(x, 202, NULL, NULL, 0, NULL);
}

struct done {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    struct ofe_send_report rep;
    char error[256];
    char excerpt[256];
    char reply_type[64];
    int retries;
};

static void on_retry(void *opaque, unsigned retry_no, const char *why)
{
    struct done *d = opaque;
    pthread_mutex_lock(&d->lock);
    d->retries++;
    pthread_mutex_unlock(&d->lock);
}

static void on_done(void *opaque, const struct ofe_send_report *rep)
{
    struct done *d = opaque;
    pthread_mutex_lock(&d->lock);
    d->rep = *rep;
    snprintf(d->error, sizeof(d->error), "%s", rep->last_error ? rep->last_error : "");
    snprintf(d->excerpt, sizeof(d->excerpt), "%.*s", (int)rep->body_excerpt_len,
             (const char *)rep->body_excerpt);
    if (rep->reply)
        snprintf(d->reply_type, sizeof(d->reply_type), "%s", ofe_ce_get_str(rep->reply, "type"));
    d->done = true;
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

static struct ofe_ce *mkev(void)
{
    struct ofe_ce *ev = ofe_ce_new();
    char err[128];
    ofe_ce_set_str(ev, "id", 0, "ev-1", err, sizeof(err));
    ofe_ce_set_str(ev, "source", 0, "/src", err, sizeof(err));
    ofe_ce_set_str(ev, "specversion", 0, "1.0", err, sizeof(err));
    ofe_ce_set_str(ev, "type", 0, "com.example.t", err, sizeof(err));
    ofe_ce_set_str(ev, "datacontenttype", 0, "text/plain", err, sizeof(err));
    ofe_ce_set_str(ev, "myext", 0, "Euro € 😀", err, sizeof(err));
    ofe_ce_set_data(ev, "hello", 5);
    return ev;
}

struct fx {
    struct ofe_httpd *h;
    struct ofe_http_client *c;
    struct sink s;
    char url[128];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    pthread_mutex_init(&f->s.lock, NULL);
    char err[256];
    struct ofe_httpd_opts o = {.port = 0};
    f->h = ofe_httpd_start(&o, err, sizeof(err));
    assert_non_null(f->h);
    ofe_httpd_route(f->h, "POST", "/sink", h_sink, &f->s);
    f->c = ofe_http_client_new(NULL, err, sizeof(err));
    assert_non_null(f->c);
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%u/sink", ofe_httpd_port(f->h));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    ofe_http_client_destroy(f->c);
    ofe_httpd_stop(f->h);
    free(f);
    return 0;
}

static void send_and_wait(struct fx *f, const struct ofe_sender_opts *so, struct done *d)
{
    memset(d, 0, sizeof(*d));
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->cond, NULL);
    char err[256];
    struct ofe_sender *s = ofe_sender_new(f->c, so, err, sizeof(err));
    assert_non_null(s);
    struct ofe_ce *ev = mkev();
    assert_int_equal(ofe_sender_send(s, ev, on_done, on_retry, d, err, sizeof(err)), 0);
    ofe_ce_unref(ev);
    pthread_mutex_lock(&d->lock);
    while (!d->done)
        pthread_cond_wait(&d->cond, &d->lock);
    pthread_mutex_unlock(&d->lock);
    ofe_sender_destroy(s);
}

static struct ofe_sender_opts opts(struct fx *f, uint32_t retry, uint32_t delay)
{
    struct ofe_sender_opts so = {.url = f->url};
    ofe_delivery_policy_default(&so.policy);
    so.policy.retry = retry;
    so.policy.delay_ms = delay;
    so.policy.jitter = false;
    return so;
}

static void test_binary_ok(void **state)
{
    struct fx *f = *state;
    struct ofe_sender_opts so = opts(f, 3, 10);
    struct done d;
    send_and_wait(f, &so, &d);
    assert_int_equal(d.rep.outcome, OFE_DELIVERY_OK);
    assert_int_equal(d.rep.attempts, 1);
    assert_int_equal(d.rep.last_status, 202);
    assert_string_equal(f->s.ce_id, "ev-1");
    assert_string_equal(f->s.ce_type, "com.example.t");
    assert_string_equal(f->s.ext, "Euro%20%E2%82%AC%20%F0%9F%98%80");
    assert_string_equal(f->s.ctype, "text/plain");
    assert_string_equal(f->s.body, "hello");
}

static void test_structured(void **state)
{
    struct fx *f = *state;
    struct ofe_sender_opts so = opts(f, 0, 10);
    so.mode = OFE_CE_STRUCTURED;
    struct done d;
    send_and_wait(f, &so, &d);
    assert_int_equal(d.rep.outcome, OFE_DELIVERY_OK);
    assert_non_null(strstr(f->s.ctype, "application/cloudevents+json"));
    assert_non_null(strstr(f->s.body, "\"id\":\"ev-1\""));
    assert_string_equal(f->s.ce_id, ""); /* no ce- headers in structured mode */
}

static void test_503_then_ok(void **state)
{
    struct fx *f = *state;
    const int N = 3;
    f->s.fail_times = N;
    f->s.fail_status = 503;
    struct ofe_sender_opts so = opts(f, 5, 50);
    struct done d;
    send_and_wait(f, &so, &d);
    assert_int_equal(d.rep.outcome, OFE_DELIVERY_OK);
    assert_int_equal(f->s.attempts, N + 1); /* exactly N+1 attempts */
    assert_int_equal(d.rep.attempts, N + 1);
    assert_int_equal(d.retries, N);
    /* growing delays: each wait is at least the schedule's (50, 100, 200 ms);
     * a slow machine only makes them longer. */
    for (int i = 1; i <= N; i++) {
        double gap = f->s.at[i] - f->s.at[i - 1];
        double want = 0.050 * (1 << (i - 1));
        assert_true(gap >= want * 0.95);
    }
}

static void test_400_not_retried(void **state)
{
    struct fx *f = *state;
    f->s.fail_times = 100;
    f->s.fail_status = 400;
    struct ofe_sender_opts so = opts(f, 5, 10);
    struct done d;
    send_and_wait(f, &so, &d);
    assert_int_equal(d.rep.outcome, OFE_DELIVERY_FAIL);
    assert_int_equal(f->s.attempts, 1);
    assert_int_equal(d.rep.last_status, 400);
    assert_string_equal(d.error, "HTTP 400");
    assert_string_equal(d.excerpt, "failure number 1\n");
}

static void test_retries_exhausted(void **state)
{
    struct fx *f = *state;
    f->s.fail_times = 100;
    f->s.fail_status = 500;
    struct ofe_sender_opts so = opts(f, 2, 10);
    struct done d;
    send_and_wait(f, &so, &d);
    assert_int_equal(d.rep.outcome, OFE_DELIVERY_FAIL);
    assert_int_equal(f->s.attempts, 3);
    assert_int_equal(d.rep.last_status, 500);
}

static void test_timeout_retried(void **state)
{
    struct fx *f = *state;
    f->s.fail_times = 1;
    f->s.delay_ms = 600;
    struct ofe_sender_opts so = opts(f, 2, 10);
    so.policy.timeout_ms = 150;
    struct done d;
    send_and_wait(f, &so, &d);
    assert_int_equal(d.rep.outcome, OFE_DELIVERY_OK);
    assert_int_equal(d.rep.attempts, 2);
}

static void test_connection_refused(void **state)
{
    struct fx *f = *state;
    struct ofe_httpd_opts o = {.port = 0};
    char err[128];
    struct ofe_httpd *tmp = ofe_httpd_start(&o, err, sizeof(err));
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/", ofe_httpd_port(tmp));
    ofe_httpd_stop(tmp);
    struct ofe_sender_opts so = opts(f, 2, 10);
    so.url = url;
    struct done d;
    send_and_wait(f, &so, &d);
    assert_int_equal(d.rep.outcome, OFE_DELIVERY_FAIL);
    assert_int_equal(d.rep.attempts, 3);
    assert_int_equal(d.rep.last_status, 0);
    assert_true(strlen(d.error) > 0);
}

static void test_reply_event(void **state)
{
    struct fx *f = *state;
    f->s.reply = true;
    struct ofe_sender_opts so = opts(f, 0, 10);
    so.want_reply = true;
    struct done d;
    send_and_wait(f, &so, &d);
    assert_int_equal(d.rep.outcome, OFE_DELIVERY_OK);
    assert_string_equal(d.reply_type, "com.example.reply");
}

static void test_bad_url(void **state)
{
    struct fx *f = *state;
    char err[256];
    struct ofe_sender_opts so = opts(f, 0, 10);
    so.url = "ftp://x/";
    assert_null(ofe_sender_new(f->c, &so, err, sizeof(err)));
    assert_string_equal(err, "sink URL \"ftp://x/\" is not an http:// or https:// URL");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_backoff_schedule),
        cmocka_unit_test_setup_teardown(test_binary_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_structured, setup, teardown),
        cmocka_unit_test_setup_teardown(test_503_then_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_400_not_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retries_exhausted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reply_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_url, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
