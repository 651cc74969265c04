/* Helpers of the ofe-eventsource tests (es_testlib.h). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "es_testlib.h"
#include "ofe/config.h"
#include "ofe/httpd.h"
#include "ofe/pubsub.h"
#include "testutil.h"

uint64_t es_now_ms_test(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void es_msleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- sink ------------------------------------------------------------------- */

struct rec {
    struct ofe_ce *ev;
    struct ofe_hdrs hdrs; /* copies of the request headers */
};

struct es_sink {
    struct ofe_httpd *h;
    int port;
    char url[128];
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct rec *v;
    size_t n, cap;
    size_t requests;
    int fail_status, fail_count;
    int delay_ms;
};

static void on_post(struct ofe_http_exchange *x, const struct ofe_http_request *req, void *arg)
{
    struct es_sink *k = arg;
    pthread_mutex_lock(&k->lock);
    k->requests++;
    int status = 0;
    if (k->fail_count != 0 && k->fail_status) {
        status = k->fail_status;
        if (k->fail_count > 0)
            k->fail_count--;
    }
    int delay = k->delay_ms;
    pthread_mutex_unlock(&k->lock);
    if (delay)
        es_msleep(delay);
    if (status) {
        ofe_httpd_replyf(x, status, "injected failure\n");
        return;
    }
    struct ofe_ce_list l = {0};
    char err[256];
    if (ofe_ce_http_decode(req->headers, req->body, req->body_len, 0, &l, err, sizeof(err)) != 0) {
        fprintf(stderr, "sink: bad CloudEvent: %s\n", err);
        ofe_httpd_replyf(x, 400, "%s\n", err);
        return;
    }
    pthread_mutex_lock(&k->lock);
    for (size_t i = 0; i < l.n; i++) {
        if (k->n == k->cap) {
            k->cap = k->cap ? k->cap * 2 : 1024;
            k->v = realloc(k->v, k->cap * sizeof(*k->v));
        }
        struct rec *r = &k->v[k->n++];
        r->ev = ofe_ce_ref(l.v[i]);
        ofe_hdrs_init(&r->hdrs);
        for (size_t j = 0; j < req->headers->n; j++)
            ofe_hdrs_add_copy(&r->hdrs, req->headers->v[j].name, req->headers->v[j].name_len,
                              req->headers->v[j].value, req->headers->v[j].value_len);
    }
    pthread_cond_broadcast(&k->cond);
    pthread_mutex_unlock(&k->lock);
    ofe_ce_list_fini(&l);
    ofe_httpd_replyf(x, 200, "ok\n");
}

struct es_sink *es_sink_start(int port)
{
    struct es_sink *k = calloc(1, sizeof(*k));
    pthread_mutex_init(&k->lock, NULL);
    pthread_cond_init(&k->cond, NULL);
    char err[256];
    struct ofe_httpd_opts o = {
        .port = (uint16_t)port, .max_body = 64 * 1024 * 1024, .threads = 4, .component = "sink"};
    k->h = ofe_httpd_start(&o, err, sizeof(err));
    if (!k->h) {
        fprintf(stderr, "sink: %s\n", err);
        free(k);
        return NULL;
    }
    ofe_httpd_route(k->h, "POST", "/*", on_post, k);
    k->port = ofe_httpd_port(k->h);
    snprintf(k->url, sizeof(k->url), "http://127.0.0.1:%d/events", k->port);
    return k;
}

void es_sink_stop(struct es_sink *k)
{
    if (!k)
        return;
    ofe_httpd_stop(k->h);
    for (size_t i = 0; i < k->n; i++) {
        ofe_ce_unref(k->v[i].ev);
        ofe_hdrs_fini(&k->v[i].hdrs);
    }
    free(k->v);
    pthread_mutex_destroy(&k->lock);
    pthread_cond_destroy(&k->cond);
    free(k);
}

const char *es_sink_url(const struct es_sink *k)
{
    return k->url;
}

int es_sink_port(const struct es_sink *k)
{
    return k->port;
}

void es_sink_fail(struct es_sink *k, int status, int count)
{
    pthread_mutex_lock(&k->lock);
    k->fail_status = status;
    k->fail_count = count;
    pthread_mutex_unlock(&k->lock);
}

void es_sink_delay(struct es_sink *k, int delay_ms)
{
    pthread_mutex_lock(&k->lock);
    k->delay_ms = delay_ms;
    pthread_mutex_unlock(&k->lock);
}

size_t es_sink_count(struct es_sink *k)
{
    pthread_mutex_lock(&k->lock);
    size_t n = k->n;
    pthread_mutex_unlock(&k->lock);
    return n;
}

size_t es_sink_requests(struct es_sink *k)
{
    pthread_mutex_lock(&k->lock);
    size_t n = k->requests;
    pthread_mutex_unlock(&k->lock);
    return n;
}

size_t es_sink_wait(struct es_sink *k, size_t n, int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&k->lock);
    while (k->n < n)
        if (pthread_cond_timedwait(&k->cond, &k->lock, &ts) != 0)
            break;
    size_t got = k->n;
    pthread_mutex_unlock(&k->lock);
    return got;
}

struct ofe_ce *es_sink_event(struct es_sink *k, size_t i)
{
    pthread_mutex_lock(&k->lock);
    struct ofe_ce *ev = i < k->n ? ofe_ce_ref(k->v[i].ev) : NULL;
    pthread_mutex_unlock(&k->lock);
    return ev;
}

void es_sink_header(struct es_sink *k, size_t i, const char *name, char *out, size_t size)
{
    out[0] = '\0';
    pthread_mutex_lock(&k->lock);
    if (i < k->n) {
        const struct ofe_hdr *h = ofe_hdrs_get(&k->v[i].hdrs, name);
        if (h)
            snprintf(out, size, "%.*s", (int)h->value_len, h->value);
    }
    pthread_mutex_unlock(&k->lock);
}

struct ofe_ce *es_sink_find_data(struct es_sink *k, const void *data, size_t len)
{
    struct ofe_ce *ev = NULL;
    pthread_mutex_lock(&k->lock);
    for (size_t i = 0; i < k->n && !ev; i++)
        if (k->v[i].ev->has_data && k->v[i].ev->data_len == len &&
            (len == 0 || !memcmp(k->v[i].ev->data, data, len)))
            ev = ofe_ce_ref(k->v[i].ev);
    pthread_mutex_unlock(&k->lock);
    return ev;
}

void es_sink_clear(struct es_sink *k)
{
    pthread_mutex_lock(&k->lock);
    for (size_t i = 0; i < k->n; i++) {
        ofe_ce_unref(k->v[i].ev);
        ofe_hdrs_fini(&k->v[i].hdrs);
    }
    k->n = 0;
    k->requests = 0;
    pthread_mutex_unlock(&k->lock);
}

/* ---- daemon ------------------------------------------------------------------- */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

struct es_daemon *es_daemon_start(const char *yaml, const char *const *extra)
{
    struct es_daemon *d = calloc(1, sizeof(*d));
    d->dir = tu_mkdtemp("ofe-es-test");
    snprintf(d->config, sizeof(d->config), "%s/config.yaml", d->dir);
    snprintf(d->log, sizeof(d->log), "%s/daemon.log", d->dir);
    write_file(d->config, yaml);
    d->http_port = tu_free_port();
    char *bin = tu_build_path("eventsource/ofe-eventsource");
    char port[16];
    snprintf(port, sizeof(port), "%d", d->http_port);
    const char *av[64] = {bin, "--config", d->config, "--http-port", port};
    size_t n = 5;
    for (size_t i = 0; extra && extra[i] && n < 62; i++)
        av[n++] = extra[i];
    av[n] = NULL;
    d->proc = tu_proc_start(av, d->log);
    free(bin);
    if (!d->proc) {
        tu_rmrf(d->dir);
        free(d->dir);
        free(d);
        return NULL;
    }
    return d;
}

void es_daemon_write_config(struct es_daemon *d, const char *yaml)
{
    char tmp[4300];
    snprintf(tmp, sizeof(tmp), "%s.tmp", d->config);
    write_file(tmp, yaml);
    rename(tmp, d->config);
}

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    struct ofe_buf *b = ud;
    ofe_buf_append(b, p, size * n);
    return size * n;
}

int es_daemon_get(struct es_daemon *d, const char *path, char *out, size_t size)
{
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", d->http_port, path);
    CURL *c = curl_easy_init();
    struct ofe_buf b = OFE_BUF_INIT;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 3000L);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    if (out && size) {
        snprintf(out, size, "%s", b.data ? b.data : "");
    }
    ofe_buf_fini(&b);
    return (int)status;
}

bool es_daemon_wait_ready(struct es_daemon *d, int timeout_ms)
{
    uint64_t end = es_now_ms_test() + (uint64_t)timeout_ms;
    char body[512];
    while (es_now_ms_test() < end) {
        if (es_daemon_get(d, "/readyz", body, sizeof(body)) == 200)
            return true;
        if (!tu_proc_alive(d->proc))
            return false;
        es_msleep(50);
    }
    fprintf(stderr, "not ready: %s\n", body);
    return false;
}

static char *metrics_text(struct es_daemon *d)
{
    size_t cap = 4 * 1024 * 1024;
    char *buf = malloc(cap);
    if (es_daemon_get(d, "/metrics", buf, cap) != 200) {
        free(buf);
        return NULL;
    }
    return buf;
}

double es_daemon_metric(struct es_daemon *d, const char *series)
{
    char *t = metrics_text(d);
    if (!t)
        return -1;
    double v = -1;
    size_t sl = strlen(series);
    for (char *line = t; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (line[0] != '#' && !strncmp(line, series, sl) && line[sl] == ' ') {
            v = strtod(line + sl + 1, NULL);
            break;
        }
        line = nl ? nl + 1 : NULL;
    }
    free(t);
    return v;
}

double es_daemon_metric_sum(struct es_daemon *d, const char *name, const char *match)
{
    char *t = metrics_text(d);
    if (!t)
        return -1;
    double sum = 0;
    size_t nl_ = strlen(name);
    for (char *line = t; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (line[0] != '#' && !strncmp(line, name, nl_) && (line[nl_] == '{' || line[nl_] == ' ') &&
            (!match || strstr(line, match))) {
            char *sp = strrchr(line, ' ');
            if (sp)
                sum += strtod(sp + 1, NULL);
        }
        line = nl ? nl + 1 : NULL;
    }
    free(t);
    return sum;
}

void es_daemon_kill(struct es_daemon *d)
{
    tu_proc_stop(d->proc, SIGKILL, 5000);
}

int es_daemon_stop(struct es_daemon *d)
{
    int st = tu_proc_stop(d->proc, SIGTERM, 30000);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int es_daemon_restart(struct es_daemon *d)
{
    return tu_proc_restart(d->proc);
}

bool es_daemon_log_has(struct es_daemon *d, const char *s)
{
    char *t = tu_read_file(d->log, NULL);
    bool has = t && strstr(t, s);
    free(t);
    return has;
}

void es_daemon_free(struct es_daemon *d, bool print_log)
{
    if (!d)
        return;
    tu_proc_free(d->proc);
    if (print_log) {
        char *t = tu_read_file(d->log, NULL);
        if (t) {
            size_t n = strlen(t);
            fprintf(stderr, "---- ofe-eventsource log (last 6000 bytes) ----\n%s\n----\n",
                    n > 6000 ? t + n - 6000 : t);
            free(t);
        }
    }
    tu_rmrf(d->dir);
    free(d->dir);
    free(d);
}

int es_validate(const char *yaml, char *out, size_t size)
{
    char *dir = tu_mkdtemp("ofe-es-val");
    char cfg[4200], log[4200];
    snprintf(cfg, sizeof(cfg), "%s/config.yaml", dir);
    snprintf(log, sizeof(log), "%s/out.log", dir);
    write_file(cfg, yaml);
    char *bin = tu_build_path("eventsource/ofe-eventsource");
    const char *av[] = {bin, "--config", cfg, "--validate", NULL};
    struct tu_proc *p = tu_proc_start(av, log);
    free(bin);
    int st = p ? tu_proc_stop(p, 0, 20000) : -1;
    /* tu_proc_stop with signal 0 only waits */
    tu_proc_free(p);
    char *t = tu_read_file(log, NULL);
    snprintf(out, size, "%s", t ? t : "");
    free(t);
    tu_rmrf(dir);
    free(dir);
    return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- checking events ---------------------------------------------------------- */

struct ofe_ce *es_sink_find_id(struct es_sink *k, const char *id)
{
    for (size_t i = 0;; i++) {
        struct ofe_ce *ev = es_sink_event(k, i);
        if (!ev)
            return NULL;
        const char *v = ofe_ce_get_str(ev, "id");
        if (v && !strcmp(v, id))
            return ev;
        ofe_ce_unref(ev);
    }
}

struct es_got {
    struct ofe_bus *b;
    struct ofe_sub *sub;
    pthread_mutex_t lock;
    struct ofe_ce **v;
    size_t n, cap;
};

static void got_msg(struct ofe_msg *m, void *opaque)
{
    struct es_got *g = opaque;
    pthread_mutex_lock(&g->lock);
    if (ofe_msg_event(m)) {
        if (g->n == g->cap) {
            g->cap = g->cap ? g->cap * 2 : 256;
            g->v = realloc(g->v, g->cap * sizeof(*g->v));
        }
        g->v[g->n++] = ofe_ce_ref(ofe_msg_event(m));
    }
    pthread_mutex_unlock(&g->lock);
    ofe_msg_ack(m);
}

struct es_got *es_got_subscribe(const char *yaml, const char *topic, const char *group)
{
    struct ofe_config *cfg = ofe_config_new();
    ofe_config_load_buffer(cfg, "test.yaml", yaml, strlen(yaml));
    struct ofe_config_busdesc d;
    char err[512];
    if (ofe_config_nerrors(cfg) ||
        ofe_config_resolve_bus(cfg, "default", NULL, &d, NULL, 0, err, sizeof(err)) != 0) {
        ofe_config_destroy(cfg);
        return NULL;
    }
    struct es_got *g = calloc(1, sizeof(*g));
    pthread_mutex_init(&g->lock, NULL);
    struct ofe_bus_opts o = {.component = "test"};
    if (ofe_bus_open(&d, &o, &g->b, err, sizeof(err)) != 0) {
        fprintf(stderr, "bus: %s\n", err);
        ofe_config_destroy(cfg);
        free(g);
        return NULL;
    }
    ofe_config_destroy(cfg);
    const char *topics[] = {topic};
    struct ofe_sub_opts so = {.group = group,
                              .topics = topics,
                              .ntopics = 1,
                              .start = OFE_START_OLDEST,
                              .on_msg = got_msg,
                              .opaque = g};
    if (ofe_bus_subscribe(g->b, &so, &g->sub, err, sizeof(err)) != 0) {
        fprintf(stderr, "subscribe: %s\n", err);
        ofe_bus_close(g->b, 0);
        free(g);
        return NULL;
    }
    return g;
}

size_t es_got_count(struct es_got *g)
{
    pthread_mutex_lock(&g->lock);
    size_t n = g->n;
    pthread_mutex_unlock(&g->lock);
    return n;
}

size_t es_got_wait(struct es_got *g, size_t n, int timeout_ms)
{
    uint64_t end = es_now_ms_test() + (uint64_t)timeout_ms;
    size_t have;
    while ((have = es_got_count(g)) < n && es_now_ms_test() < end)
        es_msleep(20);
    return have;
}

struct ofe_ce *es_got_find(struct es_got *g, const char *id)
{
    struct ofe_ce *ev = NULL;
    pthread_mutex_lock(&g->lock);
    for (size_t i = 0; i < g->n && !ev; i++) {
        const char *v = ofe_ce_get_str(g->v[i], "id");
        if (v && !strcmp(v, id))
            ev = g->v[i];
    }
    pthread_mutex_unlock(&g->lock);
    return ev;
}

void es_got_free(struct es_got *g)
{
    if (!g)
        return;
    ofe_sub_close(g->sub);
    ofe_bus_close(g->b, 1000);
    for (size_t i = 0; i < g->n; i++)
        ofe_ce_unref(g->v[i]);
    free(g->v);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

void es_assert_attr(const struct ofe_ce *ev, const char *name, const char *want)
{
    const char *v = ofe_ce_get_str(ev, name);
    if (!want) {
        if (v)
            fail_msg("attribute %s: expected none, got \"%s\"", name, v);
        return;
    }
    if (!v || strcmp(v, want))
        fail_msg("attribute %s: expected \"%s\", got \"%s\"", name, want, v ? v : "(unset)");
}
