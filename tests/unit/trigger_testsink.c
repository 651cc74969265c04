/* In-process test sink (trigger_testsink.h). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ofe/httpd.h"
#include "trigger_testsink.h"

#define MAXKEYS 64

struct tsink {
    struct ofe_httpd *h;
    char url[64];
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct tsink_prog p;
    struct tsink_rec *recs;
    unsigned n, cap;
    unsigned inflight, max_inflight;
    char keys[MAXKEYS][64];
    unsigned key_inflight[MAXKEYS];
    unsigned max_key_inflight;
    unsigned threads; /* delayed answers pending */
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct answer {
    struct tsink *s;
    struct ofe_http_exchange *x;
    int status;
    uint32_t delay_ms;
    int key; /* index in keys, -1 none */
    struct ofe_ce *reply;
};

static void finish(struct answer *a)
{
    struct tsink *s = a->s;
    struct ofe_hdrs h;
    ofe_hdrs_init(&h);
    struct ofe_buf bb = OFE_BUF_INIT;
    const void *body = NULL;
    size_t blen = 0;
    pthread_mutex_lock(&s->lock);
    s->inflight--;
    if (a->key >= 0)
        s->key_inflight[a->key]--;
    int retry_after = s->p.retry_after_s;
    pthread_mutex_unlock(&s->lock);
    if (a->reply &&
        ofe_ce_http_encode(a->reply, OFE_CE_BINARY, 0, &h, &bb, &body, &blen, NULL, 0) == 0) {
        ofe_httpd_reply(a->x, 200, NULL, body, blen, &h);
    } else if (a->status >= 300) {
        char ra[16];
        int n = snprintf(ra, sizeof(ra), "%d", retry_after);
        if (retry_after > 0)
            ofe_hdrs_add_copy(&h, "Retry-After", 11, ra, (size_t)n);
        ofe_httpd_reply(a->x, a->status, "text/plain", "injected failure\n", 17, &h);
    } else {
        ofe_httpd_reply(a->x, a->status, NULL, NULL, 0, NULL);
    }
    ofe_buf_fini(&bb);
    ofe_hdrs_fini(&h);
    ofe_ce_unref(a->reply);
    free(a);
}

static void *delayed(void *arg)
{
    struct answer *a = arg;
    struct tsink *s = a->s;
    usleep(a->delay_ms * 1000u);
    finish(a);
    pthread_mutex_lock(&s->lock);
    s->threads--;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static void on_req(struct ofe_http_exchange *x, const struct ofe_http_request *req, void *arg)
{
    struct tsink *s = arg;
    struct ofe_ce_list l = {0};
    char err[256];
    if (ofe_ce_http_decode(req->headers, req->body, req->body_len, 0, &l, err, sizeof(err)) != 0 ||
        l.n != 1) {
        ofe_ce_list_fini(&l);
        ofe_httpd_replyf(x, 400, "bad event: %s", err);
        return;
    }
    struct answer *a = calloc(1, sizeof(*a));
    a->s = s;
    a->x = x;
    a->key = -1;
    pthread_mutex_lock(&s->lock);
    unsigned nth = s->n;
    int status = s->p.status ? s->p.status : 200;
    if (nth < s->p.fail_first)
        status = s->p.fail_status ? s->p.fail_status : 503;
    a->status = status;
    a->delay_ms = nth < s->p.delay_first ? s->p.delay_first_ms : s->p.delay_ms;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        s->recs = realloc(s->recs, s->cap * sizeof(*s->recs));
    }
    struct tsink_rec *r = &s->recs[s->n++];
    r->t_ns = now_ns();
    r->status = status;
    r->ev = ofe_ce_ref(l.v[0]);
    snprintf(r->path, sizeof(r->path), "%s", req->path);
    s->inflight++;
    if (s->inflight > s->max_inflight)
        s->max_inflight = s->inflight;
    const char *pk = ofe_ce_get_str(l.v[0], "partitionkey");
    if (pk) {
        int k;
        for (k = 0; k < MAXKEYS && s->keys[k][0] && strcmp(s->keys[k], pk); k++)
            ;
        if (k < MAXKEYS) {
            if (!s->keys[k][0])
                snprintf(s->keys[k], sizeof(s->keys[k]), "%s", pk);
            a->key = k;
            if (++s->key_inflight[k] > s->max_key_inflight)
                s->max_key_inflight = s->key_inflight[k];
        }
    }
    if (status == 200 && s->p.reply_type) {
        struct ofe_ce *rp = ofe_ce_new();
        char id[300];
        snprintf(id, sizeof(id), "reply-%s", ofe_ce_get_str(l.v[0], "id"));
        ofe_ce_set_str(rp, "specversion", OFE_CE_T_NONE, "1.0", NULL, 0);
        ofe_ce_set_str(rp, "id", OFE_CE_T_NONE, id, NULL, 0);
        ofe_ce_set_str(rp, "source", OFE_CE_T_NONE, "/testsink", NULL, 0);
        ofe_ce_set_str(rp, "type", OFE_CE_T_NONE, s->p.reply_type, NULL, 0);
        if (s->p.reply_ttl)
            ofe_ce_set_str(rp, "ofettl", OFE_CE_T_INTEGER, s->p.reply_ttl, NULL, 0);
        ofe_ce_set_data(rp, "pong", 4);
        a->reply = rp;
    }
    pthread_cond_broadcast(&s->cond);
    if (a->delay_ms)
        s->threads++;
    pthread_mutex_unlock(&s->lock);
    ofe_ce_list_fini(&l);
    if (a->delay_ms) {
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        pthread_create(&t, &at, delayed, a);
        pthread_attr_destroy(&at);
    } else {
        finish(a);
    }
}

struct tsink *tsink_start(const struct tsink_prog *p)
{
    struct tsink *s = calloc(1, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    if (p)
        s->p = *p;
    struct ofe_httpd_opts o = {.port = 0, .threads = 4, .component = "testsink"};
    char err[256];
    s->h = ofe_httpd_start(&o, err, sizeof(err));
    if (!s->h) {
        fprintf(stderr, "testsink: %s\n", err);
        abort();
    }
    ofe_httpd_route(s->h, "POST", "/*", on_req, s);
    snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%u", ofe_httpd_port(s->h));
    return s;
}

void tsink_stop(struct tsink *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    while (s->threads)
        pthread_cond_wait(&s->cond, &s->lock);
    pthread_mutex_unlock(&s->lock);
    ofe_httpd_stop(s->h);
    for (unsigned i = 0; i < s->n; i++)
        ofe_ce_unref(s->recs[i].ev);
    free(s->recs);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s);
}

const char *tsink_url(struct tsink *s)
{
    return s->url;
}

unsigned tsink_count(struct tsink *s)
{
    pthread_mutex_lock(&s->lock);
    unsigned n = s->n;
    pthread_mutex_unlock(&s->lock);
    return n;
}

bool tsink_get(struct tsink *s, unsigned i, struct tsink_rec *out)
{
    pthread_mutex_lock(&s->lock);
    bool ok = i < s->n;
    if (ok) {
        *out = s->recs[i];
        ofe_ce_ref(out->ev);
    }
    pthread_mutex_unlock(&s->lock);
    return ok;
}

bool tsink_wait(struct tsink *s, unsigned n, int timeout_ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->lock);
    while (s->n < n)
        if (pthread_cond_timedwait(&s->cond, &s->lock, &dl) != 0)
            break;
    bool ok = s->n >= n;
    pthread_mutex_unlock(&s->lock);
    return ok;
}

unsigned tsink_max_inflight(struct tsink *s)
{
    pthread_mutex_lock(&s->lock);
    unsigned n = s->max_inflight;
    pthread_mutex_unlock(&s->lock);
    return n;
}

unsigned tsink_max_inflight_per_key(struct tsink *s)
{
    pthread_mutex_lock(&s->lock);
    unsigned n = s->max_key_inflight;
    pthread_mutex_unlock(&s->lock);
    return n;
}

void tsink_set(struct tsink *s, const struct tsink_prog *p)
{
    pthread_mutex_lock(&s->lock);
    s->p = *p;
    pthread_mutex_unlock(&s->lock);
}
