/* HTTP client benchmark (a program, not a test: it prints figures and never
 * fails on timing). The client alone, without the trigger around it, so
 * its share of a delivery can be told apart:
 *
 *  1. wrk posts a CloudEvent (binary mode, 512 bytes of data) to a local
 *     nginx answering 202, with C connections: the HTTP limit here.
 *  2. The client posts the same request to the same nginx from a feeder
 *     thread keeping C requests in flight: requests/s, the ratio to wrk,
 *     CPU microseconds per request (the whole process).
 *  3. The feeder submits at a fixed rate (default 10,000/s): latency from
 *     submission to the done callback, p50/p99/max.
 *
 * Each phase runs with our HTTP/1.1 engine and with libcurl (OFE_HTTP_CURL=1),
 * one after the other, in the same process and conditions.
 *
 * Usage: bench_http_client [-n REQUESTS] [-c CONCURRENCY] [-r RATE] [-s SECONDS]
 *                          [-d WRK_SECONDS]
 * Needs nginx in PATH (wrk optional); without nginx the embedded HTTP
 * server of libofe is the sink. */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "ofe/ce.h"
#include "ofe/err.h"
#include "ofe/http_client.h"
#include "ofe/httpd.h"
#include "bench_http.h"
#include "servers.h"
#include "testutil.h"

static char *g_dir;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double cpu_s(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec / 1e6 +
           (double)u.ru_stime.tv_sec + (double)u.ru_stime.tv_usec / 1e6;
}

/* The request: what the trigger sends for a 512-byte binary-mode event. */
static struct ofe_hdrs g_hdrs;
static struct ofe_buf g_bodybuf = OFE_BUF_INIT;
static const void *g_body;
static size_t g_body_len;
static struct ofe_ce *g_ev;

static void make_request(void)
{
    static char data[512];
    memset(data, 'x', sizeof(data));
    g_ev = ofe_ce_new();
    ofe_ce_set_str(g_ev, "specversion", OFE_CE_T_NONE, "1.0", NULL, 0);
    ofe_ce_set_str(g_ev, "id", OFE_CE_T_NONE, "bench-1", NULL, 0);
    ofe_ce_set_str(g_ev, "source", OFE_CE_T_NONE, "/bench", NULL, 0);
    ofe_ce_set_str(g_ev, "type", OFE_CE_T_NONE, "bench.event", NULL, 0);
    ofe_ce_set_str(g_ev, "datacontenttype", OFE_CE_T_NONE, "text/plain", NULL, 0);
    ofe_ce_set_data(g_ev, data, sizeof(data));
    ofe_hdrs_init(&g_hdrs);
    ofe_ce_http_encode(g_ev, OFE_CE_BINARY, 0, &g_hdrs, &g_bodybuf, &g_body, &g_body_len, NULL, 0);
}

/* ---- the client side ------------------------------------------------------ */

struct run {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned inflight;
    atomic_uint done, ok;
    double *lat; /* ms, per request in the fixed-rate phase */
    atomic_size_t nlat;
    size_t cap;
};

struct req_ctx {
    struct run *r;
    uint64_t t0;
};

static void on_done(void *opaque, const struct ofe_http_result *res)
{
    struct req_ctx *x = opaque;
    struct run *r = x->r;
    if (res->status == 202)
        atomic_fetch_add(&r->ok, 1);
    if (r->lat) {
        size_t i = atomic_fetch_add(&r->nlat, 1);
        if (i < r->cap)
            r->lat[i] = (double)(now_ns() - x->t0) / 1e6;
    }
    free(x);
    pthread_mutex_lock(&r->lock);
    r->inflight--;
    atomic_fetch_add(&r->done, 1);
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

static void submit(struct ofe_http_client *c, struct run *r, const char *url)
{
    struct req_ctx *x = malloc(sizeof(*x));
    x->r = r;
    x->t0 = now_ns();
    struct ofe_http_req req = {
        .url = url, .headers = &g_hdrs, .body = g_body, .body_len = g_body_len};
    while (ofe_http_client_submit(c, &req, on_done, x) == OFE_EAGAIN)
        usleep(100);
}

static void wait_all(struct run *r)
{
    pthread_mutex_lock(&r->lock);
    while (r->inflight)
        pthread_cond_wait(&r->cond, &r->lock);
    pthread_mutex_unlock(&r->lock);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void phase(const char *engine, bool curl, const char *url, int n, int conc, int rate,
                  int seconds, double wrk_rps)
{
    if (curl)
        setenv("OFE_HTTP_CURL", "1", 1);
    else
        unsetenv("OFE_HTTP_CURL");
    char err[256];
    struct ofe_http_client_opts co = {.max_inflight = 1024, .max_host_conns = 256};
    struct ofe_http_client *c = ofe_http_client_new(&co, err, sizeof(err));
    if (!c) {
        fprintf(stderr, "client: %s\n", err);
        exit(1);
    }
    struct run r = {.inflight = 0};
    pthread_mutex_init(&r.lock, NULL);
    pthread_cond_init(&r.cond, NULL);

    /* throughput with conc in flight */
    double c0 = cpu_s();
    uint64_t t0 = now_ns();
    for (int i = 0; i < n; i++) {
        pthread_mutex_lock(&r.lock);
        while (r.inflight >= (unsigned)conc)
            pthread_cond_wait(&r.cond, &r.lock);
        r.inflight++;
        pthread_mutex_unlock(&r.lock);
        submit(c, &r, url);
    }
    wait_all(&r);
    double secs = (double)(now_ns() - t0) / 1e9, cpu = cpu_s() - c0;
    double rps = n / secs;
    printf("  %-8s %d in flight: %8.0f requests/s (%u/%d answered 202), %.1f us CPU/request",
           engine, conc, rps, atomic_load(&r.ok), n, cpu * 1e6 / n);
    if (wrk_rps > 0)
        printf(", ratio to wrk %.2f", rps / wrk_rps);
    printf("\n");

    /* fixed rate */
    int total = rate * seconds;
    r.cap = (size_t)total;
    r.lat = calloc(r.cap, sizeof(double));
    atomic_store(&r.nlat, 0);
    t0 = now_ns();
    for (int i = 0; i < total; i++) {
        uint64_t due = t0 + (uint64_t)i * 1000000000u / (uint64_t)rate;
        uint64_t t = now_ns();
        if (due > t + 500000)
            usleep((useconds_t)((due - t) / 1000));
        pthread_mutex_lock(&r.lock);
        r.inflight++;
        pthread_mutex_unlock(&r.lock);
        submit(c, &r, url);
    }
    wait_all(&r);
    size_t m = atomic_load(&r.nlat);
    if (m > r.cap)
        m = r.cap;
    qsort(r.lat, m, sizeof(double), cmp_double);
    printf("  %-8s %d/s for %d s: submit -> done p50 %.3f ms, p99 %.3f ms, max %.3f ms\n", engine,
           rate, seconds, m ? r.lat[m / 2] : -1, m ? r.lat[(size_t)(m * 0.99)] : -1,
           m ? r.lat[m - 1] : -1);
    free(r.lat);
    ofe_http_client_destroy(c);
    pthread_mutex_destroy(&r.lock);
    pthread_cond_destroy(&r.cond);
}

static void h_sink(struct ofe_http_exchange *x, const struct ofe_http_request *req, void *arg)
{
    ofe_httpd_reply(x, 202, NULL, NULL, 0, NULL);
}

int main(int argc, char **argv)
{
    int n = 100000, conc = 64, rate = 10000, seconds = 3, wrk_s = 3;
    int opt;
    while ((opt = getopt(argc, argv, "n:c:r:s:d:")) != -1) {
        switch (opt) {
        case 'n':
            n = atoi(optarg);
            break;
        case 'c':
            conc = atoi(optarg);
            break;
        case 'r':
            rate = atoi(optarg);
            break;
        case 's':
            seconds = atoi(optarg);
            break;
        case 'd':
            wrk_s = atoi(optarg);
            break;
        default:
            fprintf(stderr, "usage: bench_http_client [-n REQUESTS] [-c CONCURRENCY] [-r RATE] "
                            "[-s SECONDS] [-d WRK_SECONDS]\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    g_dir = tu_mkdtemp("bench-http");
    make_request();
    int port = 0;
    struct tu_proc *nginx = system("command -v nginx > /dev/null") == 0 ? tu_nginx_start(g_dir, &port) : NULL;
    struct ofe_httpd *own = NULL;
    if (!nginx) {
        char err[256];
        struct ofe_httpd_opts ho = {.port = 0, .threads = 2, .component = "bench-sink"};
        own = ofe_httpd_start(&ho, err, sizeof(err));
        if (!own) {
            fprintf(stderr, "sink: %s\n", err);
            return 1;
        }
        ofe_httpd_route(own, "POST", "/*", h_sink, NULL);
        port = (int)ofe_httpd_port(own);
    }
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    printf("bench_http_client: POST of a 512-byte binary-mode CloudEvent (%zu-byte body, %zu "
           "headers) to %s answering 202, %ld CPU(s)\n",
           g_body_len, g_hdrs.n, nginx ? "nginx" : "the embedded HTTP server",
           sysconf(_SC_NPROCESSORS_ONLN));
    double wrk_rps = -1;
    if (nginx && system("command -v wrk > /dev/null") == 0) {
        wrk_rps = tu_wrk_post(g_dir, port, wrk_s, conc, &g_hdrs, g_body, g_body_len);
        printf("  wrk      %d connections: %8.0f requests/s\n", conc, wrk_rps);
    }
    phase("engine", false, url, n, conc, rate, seconds, wrk_rps);
    phase("libcurl", true, url, n, conc, rate, seconds, wrk_rps);
    unsetenv("OFE_HTTP_CURL");
    tu_proc_free(nginx);
    ofe_httpd_stop(own);
    ofe_hdrs_fini(&g_hdrs);
    ofe_buf_fini(&g_bodybuf);
    ofe_ce_unref(g_ev);
    tu_rmrf(g_dir);
    free(g_dir);
    return 0;
}
