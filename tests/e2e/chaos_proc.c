/* Daemons, readiness, metrics and the sink's output for the chaos suite. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "chaos.h"
#include "ofe/buf.h"
#include "testutil.h"

static uint64_t t_start;

uint64_t ch_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    if (!t_start)
        t_start = now;
    return now;
}

void ch_msleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

double ch_elapsed(void)
{
    uint64_t now = ch_now_ms();
    return (double)(now - t_start) / 1000.0;
}

void ch_log(const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    printf("[%7.2fs] %s\n", ch_elapsed(), msg);
    fflush(stdout);
}

/* ---- HTTP ------------------------------------------------------------------ */

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    ofe_buf_append(ud, p, size * n);
    return size * n;
}

int ch_http_get(const char *url, int timeout_ms, char **out)
{
    CURL *c = curl_easy_init();
    struct ofe_buf b = OFE_BUF_INIT;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    if (out)
        *out = ofe_buf_detach(&b, NULL);
    ofe_buf_fini(&b);
    return (int)status;
}

/* ---- daemons ----------------------------------------------------------------- */

int ch_daemon_start(struct ch_daemon *d, const char *name, const char *const *argv, const char *log,
                    int http_port)
{
    memset(d, 0, sizeof(*d));
    d->name = name;
    d->http_port = http_port;
    d->p = tu_proc_start(argv, log);
    return d->p ? 0 : -1;
}

bool ch_daemon_alive(struct ch_daemon *d)
{
    if (!d->p || d->p->pid <= 0)
        return false;
    int st;
    pid_t r = waitpid(d->p->pid, &st, WNOHANG);
    if (r == d->p->pid) {
        d->last_status = st;
        d->p->pid = 0;
        return false;
    }
    return true;
}

void ch_show_log(const char *path, size_t tail)
{
    char *t = tu_read_file(path, NULL);
    if (!t)
        return;
    size_t n = strlen(t);
    fprintf(stderr, "---- %s (last %zu bytes)\n%s\n----\n", path, tail,
            n > tail ? t + n - tail : t);
    free(t);
}

int ch_daemon_ready(struct ch_daemon *d, int timeout_ms)
{
    char url[128], *body = NULL;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/readyz", d->http_port);
    uint64_t t0 = ch_now_ms();
    while (ch_now_ms() - t0 < (uint64_t)timeout_ms) {
        free(body);
        body = NULL;
        if (ch_http_get(url, 2000, &body) == 200) {
            free(body);
            return 0;
        }
        if (!ch_daemon_alive(d))
            break;
        ch_msleep(50);
    }
    fprintf(stderr, "%s (port %d) not ready after %d ms%s: %s\n", d->name, d->http_port, timeout_ms,
            ch_daemon_alive(d) ? "" : " (it exited)", body ? body : "(no answer)");
    free(body);
    ch_show_log(d->p->log, 6000);
    return -1;
}

double ch_metric(const char *text, const char *name, const char *filter)
{
    if (!text)
        return -1;
    size_t nl = strlen(name);
    double sum = 0;
    bool found = false;
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len > nl && !strncmp(line, name, nl) && (line[nl] == '{' || line[nl] == ' ')) {
            char buf[1024];
            size_t l = len < sizeof(buf) - 1 ? len : sizeof(buf) - 1;
            memcpy(buf, line, l);
            buf[l] = '\0';
            if (!filter || strstr(buf, filter)) {
                const char *sp = strrchr(buf, ' ');
                if (sp) {
                    sum += strtod(sp + 1, NULL);
                    found = true;
                }
            }
        }
        line += len + (end ? 1 : 0);
    }
    return found ? sum : -1;
}

char *ch_scrape(int http_port)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", http_port);
    for (int i = 0; i < 3; i++) {
        char *body = NULL;
        if (ch_http_get(url, 5000, &body) == 200 && body)
            return body;
        free(body);
        ch_msleep(100);
    }
    return NULL;
}

/* ---- the sink -------------------------------------------------------------------- */

int ch_sink_start(struct ch_sink *s, const char *dir, const char *const *extra)
{
    char pf[4200];
    snprintf(pf, sizeof(pf), "%s/sink.port", dir);
    snprintf(s->out, sizeof(s->out), "%s/sink.jsonl", dir);
    snprintf(s->log, sizeof(s->log), "%s/sink.log", dir);
    char *ofe = tu_build_path("cli/ofe");
    const char *av[32] = {ofe,        "sink", "--port",      "0", "--json",
                          "--output", s->out, "--port-file", pf};
    int n = 9;
    for (int i = 0; extra && extra[i] && n < 30; i++)
        av[n++] = extra[i];
    av[n] = NULL;
    s->p = tu_proc_start(av, s->log);
    free(ofe);
    for (int i = 0; s->p && i < 1000; i++) {
        char *t = tu_read_file(pf, NULL);
        if (t && atoi(t) > 0) {
            s->port = atoi(t);
            free(t);
            snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%d", s->port);
            return 0;
        }
        free(t);
        ch_msleep(10);
    }
    ch_show_log(s->log, 4000);
    return -1;
}

int ch_sink_stats(struct ch_sink *s, struct ch_sink_stats *st)
{
    char url[160], *body = NULL;
    snprintf(url, sizeof(url), "%s/stats", s->url);
    memset(st, 0, sizeof(*st));
    int code = ch_http_get(url, 5000, &body);
    json_t *j = code == 200 && body ? json_loads(body, 0, NULL) : NULL;
    free(body);
    if (!j)
        return -1;
    st->requests = (long)json_integer_value(json_object_get(j, "requests"));
    st->events = (long)json_integer_value(json_object_get(j, "events"));
    st->unique = (long)json_integer_value(json_object_get(j, "unique"));
    st->duplicates = (long)json_integer_value(json_object_get(j, "duplicates"));
    st->failed = (long)json_integer_value(json_object_get(j, "failed"));
    st->invalid = (long)json_integer_value(json_object_get(j, "invalid"));
    json_decref(j);
    return 0;
}

int ch_sink_settle(struct ch_sink *s, struct ch_sink_stats *st, int timeout_ms)
{
    struct ch_sink_stats prev;
    if (ch_sink_stats(s, &prev) != 0)
        return -1;
    uint64_t t0 = ch_now_ms();
    for (;;) {
        ch_msleep(150);
        if (ch_sink_stats(s, st) != 0)
            return -1;
        if ((st->events == prev.events && st->failed == prev.failed &&
             st->requests == prev.requests) ||
            ch_now_ms() - t0 > (uint64_t)timeout_ms)
            return 0;
        prev = *st;
    }
}

int ch_sink_view(struct ch_sink *s, long nmax, struct ch_sink_view *v)
{
    memset(v, 0, sizeof(*v));
    v->accepted = calloc((size_t)nmax, sizeof(*v->accepted));
    char *text = tu_read_lines(s->out, NULL);
    if (!text || !v->accepted) {
        free(text);
        return -1;
    }
    int rc = 0;
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        json_t *j = json_loads(l, 0, NULL);
        if (!j) {
            fprintf(stderr, "sink line is not JSON: %.200s\n", l);
            rc = -1;
            break;
        }
        v->lines++;
        long status = (long)json_integer_value(json_object_get(j, "status"));
        json_t *ev = json_object_get(j, "event");
        const char *id = json_string_value(json_object_get(ev, "id"));
        const char *src = json_string_value(json_object_get(ev, "source"));
        const char *data = json_string_value(json_object_get(ev, "data"));
        long n = -1;
        char tail;
        if (!id || !src || strcmp(src, "/chaos") || sscanf(id, "chaos-%ld%c", &n, &tail) != 1 ||
            n < 0 || n >= nmax) {
            v->foreign++;
        } else if (status >= 200 && status < 300) {
            char want[80];
            ch_event_data(n, want, sizeof(want));
            if (!data || strcmp(data, want)) {
                if (v->bad_data++ < 5)
                    fprintf(stderr, "event chaos-%ld arrived with data \"%s\", sent \"%s\"\n", n,
                            data ? data : "(none)", want);
            }
            v->accepted[n]++;
            v->accepted_total++;
        } else {
            v->failed_total++;
        }
        json_decref(j);
    }
    free(text);
    return rc;
}

void ch_sink_view_free(struct ch_sink_view *v)
{
    free(v->accepted);
    v->accepted = NULL;
}
