/* Trigger benchmark (a program, not a test: it prints figures and never
 * fails on timing). In one run:
 *
 *  1. wrk posts the request the trigger sends (binary-mode CloudEvent,
 *     512 bytes of data) to a local nginx answering 202: the HTTP limit of
 *     this machine.
 *  2. ofe-trigger consumes N events pre-published on the embedded bus
 *     (ofe-eventbus) and delivers them to the same nginx, acking each: its
 *     events/s, and the ratio to wrk (goal >= 0.5).
 *  3. A publisher puts events on the bus at a fixed rate (default 10,000/s)
 *     while ofe-trigger delivers them to a sink in this program: the
 *     trigger's delivery latency p50/p99 (bus arrival to 2xx, from its
 *     histogram; goal p99 < 5 ms), the end-to-end latency publish -> sink,
 *     and the trigger's resident memory (goal < 32 MiB).
 *
 * Usage: bench_trigger [-n EVENTS] [-r RATE] [-s SECONDS] [-c CONCURRENCY]
 *                      [-d WRK_SECONDS]
 * Needs nginx and wrk in PATH (else step 1 and the nginx sink are replaced
 * by the sink of this program, and the ratio is not printed). */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "ofe/ce.h"
#include "ofe/config.h"
#include "ofe/err.h"
#include "ofe/httpd.h"
#include "ofe/log.h"
#include "ofe/pubsub.h"
#include "bench_http.h"
#include "servers.h"
#include "testutil.h"

static char *g_dir;
static struct tu_server *g_bus_srv;
static struct ofe_bus *g_bus;
static struct ofe_config *g_cfg;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static size_t sink_body(char *p, size_t size, size_t n, void *ud)
{
    ofe_buf_append(ud, p, size * n);
    return size * n;
}

static char *http_get(const char *url)
{
    CURL *c = curl_easy_init();
    struct ofe_buf b = OFE_BUF_INIT;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    CURLcode cc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    if (cc != CURLE_OK) {
        ofe_buf_fini(&b);
        return NULL;
    }
    return b.data ? ofe_buf_detach(&b, NULL) : strdup("");
}

/* Sum of the samples of a metric (lines starting with name{ or name ). */
static double metric(int port, const char *name)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", port);
    char *body = http_get(url);
    if (!body)
        return -1;
    double sum = 0;
    size_t nl = strlen(name);
    for (char *l = strtok(body, "\n"); l; l = strtok(NULL, "\n"))
        if (!strncmp(l, name, nl) && (l[nl] == '{' || l[nl] == ' ')) {
            const char *sp = strrchr(l, ' ');
            sum += sp ? strtod(sp + 1, NULL) : 0;
        }
    free(body);
    return sum;
}

/* p-quantile of the trigger's latency histogram (linear within a bucket). */
static double hist_quantile(int port, double q)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", port);
    char *body = http_get(url);
    if (!body)
        return -1;
    double le[64], cnt[64];
    int n = 0;
    const char *key = "ofe_trigger_delivery_latency_seconds_bucket{";
    for (char *l = strtok(body, "\n"); l && n < 64; l = strtok(NULL, "\n")) {
        if (strncmp(l, key, strlen(key)))
            continue;
        const char *p = strstr(l, "le=\"");
        const char *sp = strrchr(l, ' ');
        if (!p || !sp)
            continue;
        le[n] = strncmp(p + 4, "+Inf", 4) ? strtod(p + 4, NULL) : INFINITY;
        cnt[n] = strtod(sp + 1, NULL);
        n++;
    }
    free(body);
    if (!n || cnt[n - 1] <= 0)
        return -1;
    double target = q * cnt[n - 1];
    for (int i = 0; i < n; i++) {
        if (cnt[i] >= target) {
            double lo = i ? le[i - 1] : 0, clo = i ? cnt[i - 1] : 0;
            if (isinf(le[i]))
                return lo;
            return lo + (le[i] - lo) * (cnt[i] > clo ? (target - clo) / (cnt[i] - clo) : 1);
        }
    }
    return le[n - 1];
}

/* Reads a small /proc file (its size says 0: read until EOF). */
static char *read_proc(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    struct ofe_buf b = OFE_BUF_INIT;
    char chunk[4096];
    size_t k;
    while ((k = fread(chunk, 1, sizeof(chunk), f)) > 0)
        ofe_buf_append(&b, chunk, k);
    fclose(f);
    return b.data ? ofe_buf_detach(&b, NULL) : NULL;
}

static long rss_kib(pid_t pid, const char *field)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    char *t = read_proc(path);
    if (!t)
        return -1;
    char *p = strstr(t, field);
    long v = p ? strtol(p + strlen(field), NULL, 10) : -1;
    free(t);
    return v;
}

/* CPU seconds (user + system) a process used so far. */
static double cpu_s(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    char *t = read_proc(path);
    if (!t)
        return -1;
    /* fields after the command name "(...)": state is field 3; utime 14, stime 15 */
    char *p = strrchr(t, ')');
    unsigned long ut = 0, st = 0;
    if (p)
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st);
    free(t);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* ---- the request the trigger sends --------------------------------------- */

static struct ofe_ce *bench_event(const char *prefix, int i, bool stamp)
{
    static char data[512];
    if (!data[0])
        memset(data, 'x', sizeof(data));
    struct ofe_ce *ev = ofe_ce_new();
    char id[64], ts[32];
    snprintf(id, sizeof(id), "%s-%d", prefix, i);
    ofe_ce_set_str(ev, "specversion", OFE_CE_T_NONE, "1.0", NULL, 0);
    ofe_ce_set_str(ev, "id", OFE_CE_T_NONE, id, NULL, 0);
    ofe_ce_set_str(ev, "source", OFE_CE_T_NONE, "/bench", NULL, 0);
    ofe_ce_set_str(ev, "type", OFE_CE_T_NONE, "bench.event", NULL, 0);
    ofe_ce_set_str(ev, "datacontenttype", OFE_CE_T_NONE, "text/plain", NULL, 0);
    if (stamp) {
        snprintf(ts, sizeof(ts), "%llu", (unsigned long long)now_ns());
        ofe_ce_set_str(ev, "sentns", OFE_CE_T_STRING, ts, NULL, 0);
    }
    ofe_ce_set_data(ev, data, sizeof(data));
    return ev;
}

/* ---- publishing ------------------------------------------------------------ */

struct pubwin {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned pending, failed;
};

static void pub_done(void *opaque, int err, const char *msg)
{
    struct pubwin *w = opaque;
    pthread_mutex_lock(&w->lock);
    w->pending--;
    if (err)
        w->failed++;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* Publishes n events; rate > 0 paces them (per second). */
static int publish(const char *topic, const char *prefix, int n, int rate)
{
    struct pubwin w = {.pending = 0};
    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.cond, NULL);
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        if (rate > 0) {
            double due = t0 + (double)i / rate;
            double d = due - now_s();
            if (d > 0.0005)
                usleep((useconds_t)(d * 1e6));
        }
        struct ofe_ce *ev = bench_event(prefix, i, rate > 0);
        pthread_mutex_lock(&w.lock);
        while (w.pending >= 1000)
            pthread_cond_wait(&w.cond, &w.lock);
        w.pending++;
        pthread_mutex_unlock(&w.lock);
        char err[256];
        int rc;
        while ((rc = ofe_bus_publish(g_bus, topic, ev, pub_done, &w, err, sizeof(err))) ==
               OFE_EAGAIN)
            usleep(500);
        ofe_ce_unref(ev);
        if (rc) {
            fprintf(stderr, "publish: %s\n", err);
            return -1;
        }
    }
    pthread_mutex_lock(&w.lock);
    while (w.pending)
        pthread_cond_wait(&w.cond, &w.lock);
    pthread_mutex_unlock(&w.lock);
    return w.failed ? -1 : 0;
}

struct pubarg {
    const char *topic, *prefix;
    int n, rate, rc;
};

static void *pub_thread(void *arg)
{
    struct pubarg *a = arg;
    a->rc = publish(a->topic, a->prefix, a->n, a->rate);
    return NULL;
}

/* ---- our own sink: 202, records publish -> arrival latency ------------------- */

static struct {
    pthread_mutex_t lock;
    double *lat;
    size_t n, cap;
} S = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};

static void on_sink(struct ofe_http_exchange *x, const struct ofe_http_request *req, void *arg)
{
    const struct ofe_hdr *h = ofe_hdrs_get(req->headers, "ce-sentns");
    uint64_t now = now_ns();
    if (h) {
        char tmp[32];
        size_t l = h->value_len < sizeof(tmp) - 1 ? h->value_len : sizeof(tmp) - 1;
        memcpy(tmp, h->value, l);
        tmp[l] = '\0';
        uint64_t sent = strtoull(tmp, NULL, 10);
        pthread_mutex_lock(&S.lock);
        if (S.n < S.cap)
            S.lat[S.n++] = (double)(now - sent) / 1e6;
        pthread_mutex_unlock(&S.lock);
    }
    ofe_httpd_reply(x, 202, NULL, NULL, 0, NULL);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---- processes ------------------------------------------------------------ */

static struct tu_proc *start_trigger(const char *name, const char *sink_url, int concurrency,
                                     int topic_no, int *port)
{
    char cfg[4200], text[4096], log[4200], ports[16];
    snprintf(cfg, sizeof(cfg), "%s/%s.yaml", g_dir, name);
    snprintf(text, sizeof(text),
             "apiVersion: events.openfunction.io/v1alpha1\nkind: EventBus\n"
             "metadata: {name: default}\nspec:\n  embedded:\n    address: %s\n---\n"
             "apiVersion: events.openfunction.io/v1alpha1\nkind: Trigger\n"
             "metadata: {name: %s}\nspec:\n  eventBus: default\n"
             "  inputs:\n    in: {eventSource: bench, event: e%d}\n"
             "  subscribers:\n  - {name: s, condition: in, concurrency: %d, sink: {uri: '%s'}}\n",
             g_bus_srv->addr, name, topic_no, concurrency, sink_url);
    tu_write_text(cfg, text);
    snprintf(log, sizeof(log), "%s/%s.log", g_dir, name);
    *port = tu_free_port();
    snprintf(ports, sizeof(ports), "%d", *port);
    char *bin = tu_build_path("trigger/ofe-trigger");
    const char *threads = getenv("BENCH_HTTP_THREADS");
    const char *av[] = {bin,     "--config",    cfg,    "--http-port",
                        ports,   "--log-level", "warn", threads ? "--http-threads" : NULL,
                        threads, NULL};
    struct tu_proc *p = tu_proc_start(av, log);
    free(bin);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/readyz", *port);
    for (int i = 0; i < 500; i++) {
        char *b = http_get(url);
        bool ok = b && !strncmp(b, "ready", 5);
        free(b);
        if (ok)
            return p;
        usleep(20000);
    }
    fprintf(stderr, "ofe-trigger did not become ready (%s)\n", log);
    tu_proc_free(p);
    return NULL;
}

/* wrk with the trigger's request; returns requests/s or -1. */
static double run_wrk(int port, int seconds, int conns)
{
    struct ofe_ce *ev = bench_event("wrk", 0, false);
    struct ofe_hdrs h;
    ofe_hdrs_init(&h);
    struct ofe_buf bb = OFE_BUF_INIT;
    const void *body;
    size_t blen;
    ofe_ce_http_encode(ev, OFE_CE_BINARY, 0, &h, &bb, &body, &blen, NULL, 0);
    double r = tu_wrk_post(g_dir, port, seconds, conns, &h, body, blen);
    ofe_buf_fini(&bb);
    ofe_hdrs_fini(&h);
    ofe_ce_unref(ev);
    return r;
}

int main(int argc, char **argv)
{
    int n = 100000, rate = 10000, seconds = 5, conc = 64, wrk_s = 5;
    int opt;
    while ((opt = getopt(argc, argv, "n:r:s:c:d:")) != -1) {
        switch (opt) {
        case 'n':
            n = atoi(optarg);
            break;
        case 'r':
            rate = atoi(optarg);
            break;
        case 's':
            seconds = atoi(optarg);
            break;
        case 'c':
            conc = atoi(optarg);
            break;
        case 'd':
            wrk_s = atoi(optarg);
            break;
        default:
            fprintf(stderr,
                    "usage: bench_trigger [-n EVENTS] [-r RATE] [-s SECONDS] [-c CONCURRENCY] "
                    "[-d WRK_SECONDS]\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    ofe_log_set_level(OFE_LOG_WARN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    g_dir = tu_mkdtemp("bench-trigger");
    g_bus_srv = tu_server_start(TU_EVENTBUS, NULL);
    if (!g_bus_srv)
        return 1;
    char yaml[512], err[512];
    snprintf(yaml, sizeof(yaml),
             "apiVersion: events.openfunction.io/v1alpha1\nkind: EventBus\n"
             "metadata: {name: default}\nspec:\n  embedded:\n    address: %s\n",
             g_bus_srv->addr);
    g_cfg = ofe_config_new();
    ofe_config_load_buffer(g_cfg, "bus.yaml", yaml, strlen(yaml));
    struct ofe_config_busdesc d;
    if (ofe_config_resolve_bus(g_cfg, "default", "default", &d, NULL, 0, err, sizeof(err)) ||
        ofe_bus_open(&d, &(struct ofe_bus_opts){.component = "bench", .max_pending = 20000}, &g_bus,
                     err, sizeof(err))) {
        fprintf(stderr, "bus: %s\n", err);
        return 1;
    }
    while (!ofe_bus_ready(g_bus, err, sizeof(err)))
        usleep(10000);

    bool have_tools = system("command -v nginx > /dev/null && command -v wrk > /dev/null") == 0;
    int nginx_port = 0;
    struct tu_proc *nginx = have_tools ? tu_nginx_start(g_dir, &nginx_port) : NULL;
    double wrk_rps = -1;
    printf("bench_trigger: %d events of 512 bytes (binary mode), concurrency %d, embedded bus "
           "(ofe-eventbus, fsync always), %ld CPU(s)\n",
           n, conc, sysconf(_SC_NPROCESSORS_ONLN));
    if (nginx) {
        wrk_rps = run_wrk(nginx_port, wrk_s, conc);
        printf("  wrk -> nginx (202), the same request, %d connections:  %10.0f requests/s\n", conc,
               wrk_rps);
    } else {
        printf("  nginx or wrk missing: no wrk baseline\n");
    }

    /* Our sink, used for latency (and for throughput without nginx). */
    S.cap = (size_t)rate * (size_t)seconds + 1000;
    S.lat = calloc(S.cap, sizeof(double));
    struct ofe_httpd_opts ho = {.port = 0, .threads = 2, .component = "bench-sink"};
    struct ofe_httpd *own = ofe_httpd_start(&ho, err, sizeof(err));
    if (!own) {
        fprintf(stderr, "sink: %s\n", err);
        return 1;
    }
    ofe_httpd_route(own, "POST", "/*", on_sink, NULL);
    char own_url[64], nginx_url[64];
    snprintf(own_url, sizeof(own_url), "http://127.0.0.1:%u/", ofe_httpd_port(own));
    snprintf(nginx_url, sizeof(nginx_url), "http://127.0.0.1:%d/", nginx_port);

    /* 2. Throughput: pre-published events, then the trigger drains them. */
    double t0 = now_s();
    if (publish("default-bench-e1", "t", n, 0) != 0)
        return 1;
    printf("  (pre-published %d events in %.2f s)\n", n, now_s() - t0);
    int tport;
    struct tu_proc *trig = start_trigger("tput", nginx ? nginx_url : own_url, conc, 1, &tport);
    if (!trig)
        return 1;
    double cpu_t0 = cpu_s(trig->pid), cpu_b0 = cpu_s(g_bus_srv->proc->pid),
           cpu_n0 = nginx ? cpu_s(nginx->pid) : 0;
    double first = 0, last = 0, acked = 0, t_start = now_s();
    while (now_s() - t_start < 300) {
        acked = metric(tport, "ofe_trigger_acked_total");
        double t = now_s();
        if (acked > 0 && !first)
            first = t;
        if (acked >= n) {
            last = t;
            break;
        }
        usleep(20000);
    }
    long tput_rss = rss_kib(trig->pid, "VmHWM:");
    double cpu_t = cpu_s(trig->pid) - cpu_t0, cpu_b = cpu_s(g_bus_srv->proc->pid) - cpu_b0,
           cpu_n = nginx ? cpu_s(nginx->pid) - cpu_n0 : 0;
    double trig_rate = last > first ? (double)n / (last - t_start) : 0;
    printf("  ofe-trigger -> %s, acks on:              %10.0f events/s  (%.0f acked in "
           "%.2f s; peak RSS %.1f MiB)\n",
           nginx ? "nginx (202)" : "own sink (202)", trig_rate, acked, last - t_start,
           (double)tput_rss / 1024.0);
    printf("    CPU seconds: ofe-trigger %.2f (%.1f us/event), ofe-eventbus %.2f, nginx %.2f\n",
           cpu_t, cpu_t * 1e6 / n, cpu_b, cpu_n);
    if (wrk_rps > 0)
        printf("  ratio trigger / wrk:                                 %10.2f   (goal >= 0.5)\n",
               trig_rate / wrk_rps);
    tu_proc_stop(trig, SIGTERM, 30000);
    tu_proc_free(trig);

    /* 3. Fixed rate: latency and memory. */
    trig = start_trigger("lat", own_url, conc, 2, &tport);
    if (!trig)
        return 1;
    int total = rate * seconds;
    struct pubarg pa = {.topic = "default-bench-e2", .prefix = "l", .n = total, .rate = rate};
    pthread_t pt;
    pthread_create(&pt, NULL, pub_thread, &pa);
    long max_rss = 0;
    t_start = now_s();
    for (;;) {
        long r = rss_kib(trig->pid, "VmRSS:");
        if (r > max_rss)
            max_rss = r;
        pthread_mutex_lock(&S.lock);
        size_t got = S.n;
        pthread_mutex_unlock(&S.lock);
        if ((int)got >= total || now_s() - t_start > seconds + 60)
            break;
        usleep(100000);
    }
    pthread_join(pt, NULL);
    double pub_s = now_s() - t_start;
    double p50 = hist_quantile(tport, 0.50) * 1000, p99 = hist_quantile(tport, 0.99) * 1000;
    long hwm = rss_kib(trig->pid, "VmHWM:");
    pthread_mutex_lock(&S.lock);
    qsort(S.lat, S.n, sizeof(double), cmp_double);
    double e50 = S.n ? S.lat[S.n / 2] : -1, e99 = S.n ? S.lat[(size_t)(S.n * 0.99)] : -1;
    double emax = S.n ? S.lat[S.n - 1] : -1;
    size_t got = S.n;
    pthread_mutex_unlock(&S.lock);
    printf("  fixed rate %d events/s for %d s (%zu of %d delivered, published in %.2f s):\n", rate,
           seconds, got, total, pub_s);
    printf("    trigger delivery latency (bus arrival -> 2xx): p50 %.2f ms, p99 %.2f ms  "
           "(goal p99 < 5 ms)\n",
           p50, p99);
    printf("    end to end (publish -> sink):                  p50 %.2f ms, p99 %.2f ms, max "
           "%.2f ms\n",
           e50, e99, emax);
    printf("    trigger resident memory: max %.1f MiB sampled, %.1f MiB peak (VmHWM)  (goal < 32 "
           "MiB)\n",
           (double)max_rss / 1024.0, (double)hwm / 1024.0);
    tu_proc_stop(trig, SIGTERM, 30000);
    tu_proc_free(trig);
    ofe_httpd_stop(own);
    tu_proc_free(nginx);
    ofe_bus_close(g_bus, 2000);
    ofe_config_destroy(g_cfg);
    tu_server_free(g_bus_srv);
    tu_rmrf(g_dir);
    free(g_dir);
    free(S.lat);
    return 0;
}
