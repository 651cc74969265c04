/* ofe sink: a CloudEvents HTTP receiver for debugging and tests.
 *
 *   ofe sink [--port P] [--bind A] [--status CODE] [--fail-rate R]
 *            [--fail-first N] [--fail-status CODE] [--retry-after S]
 *            [--delay MS] [--reply-type TYPE] [--count N] [--quiet] [--json]
 *            [--output FILE] [--port-file FILE] [--threads N]
 *
 * Accepts binary, structured and batch requests on any path, prints each
 * event, and answers per the options. It keeps counts and remembers every
 * event by (source, id) to report duplicates: GET /stats returns them as
 * JSON, and SIGTERM / SIGINT print them to stderr before exiting.
 *
 * --json prints one line per event:
 *   {"seq":N,"mono":S,"time":"RFC3339","status":CODE,"mode":"binary",
 *    "attempt":A,"dup":false,"path":"/","event":{...JSON format...}}
 * seq counts events, mono is CLOCK_MONOTONIC seconds (comparable between
 * processes of one machine), attempt the number of requests that carried
 * this (source, id) so far, dup true when it was already accepted (2xx)
 * before. A request that is not a CloudEvent prints
 *   {"seq":N,"mono":S,"status":400,"path":"/","error":"..."}
 *
 * Exit status: 0 after --count events or a signal, 1 when the port cannot
 * be bound, 2 on bad usage. */
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

#include "cmd.h"
#include "ofe/buf.h"
#include "ofe/ce.h"
#include "ofe/err.h"
#include "ofe/httpd.h"
#include "ofe/log.h"

struct seen {
    char *key; /* source \0 id, NULL when the slot is free */
    size_t klen;
    uint32_t attempts;
    uint32_t accepted;
};

struct delayed {
    struct delayed *next;
    uint64_t due_ns;
    struct ofe_http_exchange *x;
    int status;
    char *ctype;
    struct ofe_buf body;
    struct ofe_hdrs hdrs;
};

static struct {
    /* options */
    int status, fail_status;
    double fail_rate;
    long fail_first;
    long retry_after;
    long delay_ms;
    long count;
    bool quiet, json;
    const char *reply_type;
    FILE *out;

    /* state */
    pthread_mutex_t lock; /* everything below, and output */
    pthread_cond_t cond;
    uint64_t seq, requests, accepted, unique, dups, failed, invalid;
    struct seen *tab;
    size_t tab_cap, tab_n;
    uint64_t rnd;
    bool done;

    /* delayed replies, in due order */
    pthread_mutex_t dlock;
    pthread_cond_t dcond;
    struct delayed *dhead;
    bool dstop;
} S;

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ofe sink [options]\n"
            "\n"
            "A CloudEvents HTTP receiver: accepts binary, structured and batch requests on any\n"
            "path, prints each event (attributes and data), and answers as told. Remembers\n"
            "every event by (source, id) to count duplicates: GET /stats returns the counts\n"
            "as JSON; SIGTERM or SIGINT print them to stderr and exit.\n"
            "\n"
            "options:\n"
            "  --port P            port to listen on (default 8080; 0 picks a free one)\n"
            "  --bind ADDR         address to listen on (default 127.0.0.1)\n"
            "  --status CODE       answer to accepted requests (default 200)\n"
            "  --fail-rate R       answer this fraction (0..1) of requests with the failure\n"
            "                      status, at random\n"
            "  --fail-first N      answer the first N requests with the failure status\n"
            "  --fail-status CODE  the failure status (default 503)\n"
            "  --retry-after S     send Retry-After: S with failures\n"
            "  --delay MS          wait MS milliseconds before every answer\n"
            "  --reply-type TYPE   answer 200 with a reply CloudEvent of this type (binary\n"
            "                      mode; id reply-<id>, source ofe-sink, the event's data)\n"
            "  --count N           exit after N distinct events were accepted\n"
            "  --quiet             print nothing per event\n"
            "  --json              print one JSON line per event (see docs/trigger.md)\n"
            "  --output FILE       print to FILE (appended) instead of stdout\n"
            "  --port-file FILE    write the port number to FILE once listening\n"
            "  --threads N         HTTP worker threads (default 2)\n");
}

/* ---- duplicates ---------------------------------------------------------- */

static uint64_t hash(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static struct seen *seen_get(const char *key, size_t klen)
{
    if ((S.tab_n + 1) * 2 > S.tab_cap) {
        size_t cap = S.tab_cap ? S.tab_cap * 2 : 4096;
        struct seen *t = calloc(cap, sizeof(*t));
        if (!t)
            return NULL;
        for (size_t i = 0; i < S.tab_cap; i++) {
            if (!S.tab[i].key)
                continue;
            size_t k = hash(S.tab[i].key, S.tab[i].klen) & (cap - 1);
            while (t[k].key)
                k = (k + 1) & (cap - 1);
            t[k] = S.tab[i];
        }
        free(S.tab);
        S.tab = t;
        S.tab_cap = cap;
    }
    size_t k = hash(key, klen) & (S.tab_cap - 1);
    while (S.tab[k].key) {
        if (S.tab[k].klen == klen && !memcmp(S.tab[k].key, key, klen))
            return &S.tab[k];
        k = (k + 1) & (S.tab_cap - 1);
    }
    S.tab[k].key = malloc(klen);
    if (!S.tab[k].key)
        return NULL;
    memcpy(S.tab[k].key, key, klen);
    S.tab[k].klen = klen;
    S.tab_n++;
    return &S.tab[k];
}

/* ---- printing -------------------------------------------------------------- */

static void print_text_event(const struct ofe_ce *ev, struct ofe_buf *b)
{
    const struct ofe_ce_attr *a;
    for (size_t i = 0; (a = ofe_ce_attr_at(ev, i)); i++) {
        if (a->type == OFE_CE_T_STRING || i < OFE_CE_NSPEC)
            ofe_buf_printf(b, "  %s: %s\n", a->name, a->value);
        else
            ofe_buf_printf(b, "  %s: %s (%s)\n", a->name, a->value,
                           ofe_ce_type_name((enum ofe_ce_type)a->type));
    }
    if (!ev->has_data) {
        ofe_buf_puts(b, "  (no data)\n");
        return;
    }
    bool text = true;
    for (size_t i = 0; i < ev->data_len && text; i++) {
        unsigned char c = ev->data[i];
        text = c >= 0x20 || c == '\n' || c == '\r' || c == '\t';
    }
    if (text) {
        size_t shown = ev->data_len > 4096 ? 4096 : ev->data_len;
        ofe_buf_printf(b, "  data (%zu bytes): %.*s%s\n", ev->data_len, (int)shown,
                       (const char *)ev->data, shown < ev->data_len ? "..." : "");
    } else {
        ofe_buf_printf(b, "  data (%zu bytes, binary)\n", ev->data_len);
    }
}

static void rfc3339_now(char *buf, size_t size)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%06ldZ", ts.tv_nsec / 1000);
}

static const char *mode_name(enum ofe_ce_mode m)
{
    return m == OFE_CE_STRUCTURED ? "structured" : m == OFE_CE_BATCH ? "batch" : "binary";
}

static void json_str(struct ofe_buf *b, const char *s)
{
    ofe_buf_putc(b, '"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            ofe_buf_printf(b, "\\%c", c);
        else if (c < 0x20)
            ofe_buf_printf(b, "\\u%04x", c);
        else
            ofe_buf_putc(b, (char)c);
    }
    ofe_buf_putc(b, '"');
}

/* ---- delayed replies --------------------------------------------------------- */

static void *delay_run(void *arg)
{
    pthread_mutex_lock(&S.dlock);
    while (!S.dstop || S.dhead) {
        if (!S.dhead) {
            pthread_cond_wait(&S.dcond, &S.dlock);
            continue;
        }
        uint64_t now = mono_ns();
        if (S.dhead->due_ns > now && !S.dstop) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            uint64_t w =
                (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + (S.dhead->due_ns - now);
            ts.tv_sec = (time_t)(w / 1000000000u);
            ts.tv_nsec = (long)(w % 1000000000u);
            pthread_cond_timedwait(&S.dcond, &S.dlock, &ts);
            continue;
        }
        struct delayed *d = S.dhead;
        S.dhead = d->next;
        pthread_mutex_unlock(&S.dlock);
        ofe_httpd_reply(d->x, d->status, d->ctype, d->body.data, d->body.len, &d->hdrs);
        free(d->ctype);
        ofe_buf_fini(&d->body);
        ofe_hdrs_fini(&d->hdrs);
        free(d);
        pthread_mutex_lock(&S.dlock);
    }
    pthread_mutex_unlock(&S.dlock);
    return NULL;
}

static void answer(struct ofe_http_exchange *x, int status, const char *ctype, const void *body,
                   size_t len, const struct ofe_hdrs *hdrs)
{
    if (S.delay_ms <= 0) {
        ofe_httpd_reply(x, status, ctype, body, len, hdrs);
        return;
    }
    struct delayed *d = calloc(1, sizeof(*d));
    if (!d) {
        ofe_httpd_reply(x, status, ctype, body, len, hdrs);
        return;
    }
    d->x = x;
    d->status = status;
    d->ctype = ctype ? strdup(ctype) : NULL;
    d->due_ns = mono_ns() + (uint64_t)S.delay_ms * 1000000u;
    ofe_hdrs_init(&d->hdrs);
    if (len)
        ofe_buf_append(&d->body, body, len);
    for (size_t i = 0; hdrs && i < hdrs->n; i++)
        ofe_hdrs_add_copy(&d->hdrs, hdrs->v[i].name, hdrs->v[i].name_len, hdrs->v[i].value,
                          hdrs->v[i].value_len);
    pthread_mutex_lock(&S.dlock);
    /* The delay is fixed, so due times only grow: append. */
    struct delayed **pp = &S.dhead;
    while (*pp)
        pp = &(*pp)->next;
    *pp = d;
    pthread_cond_signal(&S.dcond);
    pthread_mutex_unlock(&S.dlock);
}

/* ---- the handler ---------------------------------------------------------- */

static uint64_t rnd(void)
{
    S.rnd ^= S.rnd << 13;
    S.rnd ^= S.rnd >> 7;
    S.rnd ^= S.rnd << 17;
    return S.rnd;
}

static void on_stats(struct ofe_http_exchange *x, const struct ofe_http_request *req, void *arg)
{
    char body[512];
    pthread_mutex_lock(&S.lock);
    int n = snprintf(body, sizeof(body),
                     "{\"requests\":%llu,\"events\":%llu,\"unique\":%llu,\"duplicates\":%llu,"
                     "\"failed\":%llu,\"invalid\":%llu}\n",
                     (unsigned long long)S.requests, (unsigned long long)S.accepted,
                     (unsigned long long)S.unique, (unsigned long long)S.dups,
                     (unsigned long long)S.failed, (unsigned long long)S.invalid);
    pthread_mutex_unlock(&S.lock);
    ofe_httpd_reply(x, 200, "application/json", body, (size_t)n, NULL);
}

static void on_health(struct ofe_http_exchange *x, const struct ofe_http_request *req, void *arg)
{
    ofe_httpd_reply(x, 200, "text/plain", "ok\n", 3, NULL);
}

static void on_event(struct ofe_http_exchange *x, const struct ofe_http_request *req, void *arg)
{
    uint64_t t = mono_ns();
    char err[512] = "";
    struct ofe_ce_list evs = {0};
    const struct ofe_hdr *ct = ofe_hdrs_get(req->headers, "content-type");
    enum ofe_ce_mode mode = ct ? ofe_ce_http_mode(ct->value, ct->value_len) : OFE_CE_BINARY;
    int rc = ofe_ce_http_decode(req->headers, req->body, req->body_len, OFE_CE_BIND_TYPEHINTS, &evs,
                                err, sizeof(err));
    struct ofe_buf out = OFE_BUF_INIT;
    char now[64];
    rfc3339_now(now, sizeof(now));
    pthread_mutex_lock(&S.lock);
    S.requests++;
    if (rc != 0) {
        S.invalid++;
        uint64_t seq = ++S.seq;
        if (S.json) {
            ofe_buf_printf(&out, "{\"seq\":%llu,\"mono\":%.6f,\"status\":400,\"path\":",
                           (unsigned long long)seq, (double)t / 1e9);
            json_str(&out, req->path);
            ofe_buf_puts(&out, ",\"error\":");
            json_str(&out, err);
            ofe_buf_puts(&out, "}\n");
        } else if (!S.quiet) {
            ofe_buf_printf(&out, "--- #%llu %s %s: not a CloudEvent (400): %s\n",
                           (unsigned long long)seq, req->method, req->path, err);
        }
        if (out.len) {
            fwrite(out.data, 1, out.len, S.out);
            fflush(S.out);
        }
        pthread_mutex_unlock(&S.lock);
        ofe_buf_fini(&out);
        ofe_httpd_replyf(x, 400, "not a CloudEvent: %s", err);
        return;
    }
    int status = S.status;
    bool fail = false;
    if (S.fail_first > 0) {
        S.fail_first--;
        fail = true;
    } else if (S.fail_rate > 0 && (double)(rnd() >> 11) / 9007199254740992.0 < S.fail_rate) {
        fail = true;
    }
    if (fail)
        status = S.fail_status;
    bool ok = status >= 200 && status < 300;
    for (size_t i = 0; i < evs.n; i++) {
        const struct ofe_ce *ev = evs.v[i];
        const char *src = ofe_ce_get_str(ev, "source"), *id = ofe_ce_get_str(ev, "id");
        struct ofe_buf key = OFE_BUF_INIT;
        ofe_buf_puts(&key, src ? src : "");
        ofe_buf_putc(&key, '\0');
        ofe_buf_puts(&key, id ? id : "");
        struct seen *sn = key.data ? seen_get(key.data, key.len) : NULL;
        ofe_buf_fini(&key);
        bool dup = false;
        uint32_t attempt = 1;
        if (sn) {
            attempt = ++sn->attempts;
            if (ok) {
                dup = sn->accepted > 0;
                if (!dup)
                    S.unique++;
                sn->accepted++;
            }
        }
        if (ok) {
            S.accepted++;
            if (dup)
                S.dups++;
        } else {
            S.failed++;
        }
        uint64_t seq = ++S.seq;
        if (S.json) {
            ofe_buf_printf(
                &out,
                "{\"seq\":%llu,\"mono\":%.6f,\"time\":\"%s\",\"status\":%d,\"mode\":\"%s\","
                "\"attempt\":%u,\"dup\":%s,\"path\":",
                (unsigned long long)seq, (double)t / 1e9, now, status, mode_name(mode), attempt,
                dup ? "true" : "false");
            json_str(&out, req->path);
            ofe_buf_puts(&out, ",\"event\":");
            if (ofe_ce_json_encode(ev, &out, err, sizeof(err)) != 0)
                ofe_buf_puts(&out, "null");
            ofe_buf_puts(&out, "}\n");
        } else if (!S.quiet) {
            ofe_buf_printf(&out, "--- #%llu %s %s %s %s -> %d%s%s\n", (unsigned long long)seq, now,
                           req->method, req->path, mode_name(mode), status,
                           dup ? " (duplicate)" : "", attempt > 1 ? " (again)" : "");
            print_text_event(ev, &out);
        }
    }
    if (out.len) {
        fwrite(out.data, 1, out.len, S.out);
        fflush(S.out);
    }
    if (S.count > 0 && S.unique >= (uint64_t)S.count && !S.done) {
        S.done = true;
        pthread_cond_broadcast(&S.cond);
    }
    pthread_mutex_unlock(&S.lock);
    ofe_buf_fini(&out);

    struct ofe_hdrs hdrs;
    ofe_hdrs_init(&hdrs);
    if (fail && S.retry_after >= 0) {
        char ra[32];
        int n = snprintf(ra, sizeof(ra), "%ld", S.retry_after);
        ofe_hdrs_add_copy(&hdrs, "Retry-After", 11, ra, (size_t)n);
    }
    if (ok && S.reply_type && evs.n == 1 && mode != OFE_CE_BATCH) {
        /* A reply event: id reply-<id>, the event's data. */
        const struct ofe_ce *in = evs.v[0];
        struct ofe_ce *r = ofe_ce_new();
        char rid[600];
        snprintf(rid, sizeof(rid), "reply-%s", ofe_ce_get_str(in, "id"));
        int e = r ? 0 : OFE_ENOMEM;
        e = e ? e : ofe_ce_set_str(r, "specversion", OFE_CE_T_NONE, "1.0", NULL, 0);
        e = e ? e : ofe_ce_set_str(r, "id", OFE_CE_T_NONE, rid, NULL, 0);
        e = e ? e : ofe_ce_set_str(r, "source", OFE_CE_T_NONE, "ofe-sink", NULL, 0);
        e = e ? e : ofe_ce_set_str(r, "type", OFE_CE_T_NONE, S.reply_type, NULL, 0);
        const char *dct = ofe_ce_get_str(in, "datacontenttype");
        if (!e && dct)
            e = ofe_ce_set_str(r, "datacontenttype", OFE_CE_T_NONE, dct, NULL, 0);
        if (!e && in->has_data)
            e = ofe_ce_set_data(r, in->data, in->data_len);
        struct ofe_buf bb = OFE_BUF_INIT;
        const void *body = NULL;
        size_t blen = 0;
        if (!e)
            e = ofe_ce_http_encode(r, OFE_CE_BINARY, 0, &hdrs, &bb, &body, &blen, err, sizeof(err));
        if (!e)
            answer(x, 200, NULL, body, blen, &hdrs);
        else
            answer(x, 500, "text/plain", "cannot build the reply\n", 23, NULL);
        ofe_buf_fini(&bb);
        ofe_ce_unref(r);
    } else if (ok) {
        answer(x, status, NULL, NULL, 0, hdrs.n ? &hdrs : NULL);
    } else {
        char msg[64];
        int n = snprintf(msg, sizeof(msg), "ofe sink: injected failure %d\n", status);
        answer(x, status, "text/plain; charset=utf-8", msg, (size_t)n, hdrs.n ? &hdrs : NULL);
    }
    ofe_hdrs_fini(&hdrs);
    ofe_ce_list_fini(&evs);
}

/* ---- main ---------------------------------------------------------------- */

static int num(const char *opt, const char *v, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || !*v || *end || isnan(d) || d < lo || d > hi) {
        fprintf(stderr, "ofe sink: %s wants a number from %g to %g, not \"%s\"\n", opt, lo, hi, v);
        return -1;
    }
    *out = d;
    return 0;
}

int cmd_sink(int argc, char **argv)
{
    memset(&S, 0, sizeof(S));
    S.status = 200;
    S.fail_status = 503;
    S.retry_after = -1;
    S.out = stdout;
    S.rnd = mono_ns() | 1;
    pthread_mutex_init(&S.lock, NULL);
    pthread_cond_init(&S.cond, NULL);
    pthread_mutex_init(&S.dlock, NULL);
    pthread_cond_init(&S.dcond, NULL);
    double port = 8080, threads = 2;
    const char *bind_addr = "127.0.0.1", *output = NULL, *port_file = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        double d;
#define NEEDV                                                                                      \
    do {                                                                                           \
        if (!v) {                                                                                  \
            fprintf(stderr, "ofe sink: %s needs a value (see ofe sink --help)\n", a);              \
            return 2;                                                                              \
        }                                                                                          \
        i++;                                                                                       \
    } while (0)
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--port")) {
            NEEDV;
            if (num(a, v, 0, 65535, &port))
                return 2;
        } else if (!strcmp(a, "--bind")) {
            NEEDV;
            bind_addr = v;
        } else if (!strcmp(a, "--status")) {
            NEEDV;
            if (num(a, v, 100, 599, &d))
                return 2;
            S.status = (int)d;
        } else if (!strcmp(a, "--fail-status")) {
            NEEDV;
            if (num(a, v, 100, 599, &d))
                return 2;
            S.fail_status = (int)d;
        } else if (!strcmp(a, "--fail-rate")) {
            NEEDV;
            if (num(a, v, 0, 1, &S.fail_rate))
                return 2;
        } else if (!strcmp(a, "--fail-first")) {
            NEEDV;
            if (num(a, v, 0, 1e12, &d))
                return 2;
            S.fail_first = (long)d;
        } else if (!strcmp(a, "--retry-after")) {
            NEEDV;
            if (num(a, v, 0, 86400, &d))
                return 2;
            S.retry_after = (long)d;
        } else if (!strcmp(a, "--delay")) {
            NEEDV;
            if (num(a, v, 0, 3600000, &d))
                return 2;
            S.delay_ms = (long)d;
        } else if (!strcmp(a, "--count")) {
            NEEDV;
            if (num(a, v, 1, 1e15, &d))
                return 2;
            S.count = (long)d;
        } else if (!strcmp(a, "--reply-type")) {
            NEEDV;
            S.reply_type = v;
        } else if (!strcmp(a, "--output")) {
            NEEDV;
            output = v;
        } else if (!strcmp(a, "--port-file")) {
            NEEDV;
            port_file = v;
        } else if (!strcmp(a, "--threads")) {
            NEEDV;
            if (num(a, v, 1, 64, &threads))
                return 2;
        } else if (!strcmp(a, "--quiet")) {
            S.quiet = true;
        } else if (!strcmp(a, "--json")) {
            S.json = true;
        } else {
            fprintf(stderr, "ofe sink: unknown option %s (see ofe sink --help)\n", a);
            return 2;
        }
#undef NEEDV
    }
    if (S.json && S.quiet) {
        fprintf(stderr, "ofe sink: --json and --quiet exclude each other\n");
        return 2;
    }
    if (output && !(S.out = fopen(output, "a"))) {
        fprintf(stderr, "ofe sink: %s: %s\n", output, strerror(errno));
        return 1;
    }
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[256] = "";
    struct ofe_httpd_opts ho = {
        .bind = bind_addr,
        .port = (uint16_t)port,
        .threads = (unsigned)threads,
        .max_body = 64 * 1024 * 1024,
        .component = "sink",
    };
    struct ofe_httpd *h = ofe_httpd_open(&ho, err, sizeof(err));
    if (!h) {
        fprintf(stderr, "ofe sink: %s\n", err);
        return 1;
    }
    if (ofe_httpd_route(h, "GET", "/stats", on_stats, NULL) ||
        ofe_httpd_route(h, "GET", "/healthz", on_health, NULL) ||
        ofe_httpd_route(h, "POST", "/*", on_event, NULL) ||
        ofe_httpd_route(h, "PUT", "/*", on_event, NULL) || ofe_httpd_serve(h, err, sizeof(err))) {
        fprintf(stderr, "ofe sink: %s\n", err[0] ? err : "out of memory");
        ofe_httpd_stop(h);
        return 1;
    }
    pthread_t dthr;
    bool dthr_on = pthread_create(&dthr, NULL, delay_run, NULL) == 0;
    unsigned p = ofe_httpd_port(h);
    fprintf(stderr, "ofe sink: listening on %s:%u\n", bind_addr, p);
    if (port_file) {
        char tmp[4200];
        snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
        FILE *f = fopen(tmp, "w");
        if (f) {
            fprintf(f, "%u\n", p);
            fclose(f);
            rename(tmp, port_file);
        }
    }

    /* Wait for a signal, or for --count events. */
    for (;;) {
        struct timespec ts = {0, 50 * 1000000L};
        int sig = sigtimedwait(&sigs, NULL, &ts);
        if (sig > 0)
            break;
        pthread_mutex_lock(&S.lock);
        bool done = S.done;
        pthread_mutex_unlock(&S.lock);
        if (done) {
            usleep(200 * 1000); /* let the last answers go out */
            break;
        }
    }
    pthread_mutex_lock(&S.dlock);
    S.dstop = true;
    pthread_cond_signal(&S.dcond);
    pthread_mutex_unlock(&S.dlock);
    if (dthr_on)
        pthread_join(dthr, NULL);
    ofe_httpd_stop(h);
    fprintf(stderr,
            "ofe sink: %llu request(s), %llu event(s) accepted, %llu unique, %llu duplicate(s), "
            "%llu failed on purpose, %llu invalid\n",
            (unsigned long long)S.requests, (unsigned long long)S.accepted,
            (unsigned long long)S.unique, (unsigned long long)S.dups, (unsigned long long)S.failed,
            (unsigned long long)S.invalid);
    if (S.out != stdout)
        fclose(S.out);
    else
        fflush(stdout);
    for (size_t i = 0; i < S.tab_cap; i++)
        free(S.tab[i].key);
    free(S.tab);
    return 0;
}
