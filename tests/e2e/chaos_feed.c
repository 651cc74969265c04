/* The webhook caller of the chaos suite: what a well-behaved webhook client
 * does. Each request carries one event (binary mode) or, every 10th, a
 * batch of 4 (application/cloudevents-batch+json); it is sent again, with
 * the same ids, until the source answers 202. Requests go out at a steady
 * rate: a caller blocked by a slow source does not make the others catch
 * up afterwards. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "chaos.h"

#define BATCH 4

struct feeder {
    struct ch_feed *f;
    pthread_t thread;
    atomic_bool busy;   /* a request is in progress */
    atomic_ulong ended; /* requests ended (answered or failed) */
};

struct ch_feed {
    char url[256];
    double rate;
    long nmax;
    int nthreads;
    struct feeder *threads;

    pthread_mutex_t lock; /* next_id, nreq, next_due */
    long next_id, nreq;
    double next_due;

    atomic_bool stop_new, paused, give_up;
    atomic_long requests, attempted, acked, refused, unanswered, issued, acked_unique;
    _Atomic unsigned char *state; /* per event: 0 not issued, 1 issued, 2 acknowledged */
};

void ch_event_data(long n, char *buf, size_t size)
{
    /* 64 bytes that name the event, so a mixed-up payload is noticed. */
    int k = snprintf(buf, size, "chaos-%ld:", n);
    for (size_t i = (size_t)k; i + 1 < size && i < 64; i++)
        buf[i] = (char)('a' + (int)((i + (size_t)n) % 26));
    buf[size - 1 < 64 ? size - 1 : 64] = '\0';
}

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

/* POSTs events first..first+k-1; returns the HTTP status, 0 without answer. */
static int post(CURL *c, const char *url, long first, int k)
{
    struct curl_slist *h = NULL;
    char body[2048], line[256], data[80];
    if (k == 1) {
        ch_event_data(first, data, sizeof(data));
        snprintf(line, sizeof(line), "ce-id: chaos-%ld", first);
        h = curl_slist_append(h, line);
        h = curl_slist_append(h, "ce-specversion: 1.0");
        h = curl_slist_append(h, "ce-source: /chaos");
        h = curl_slist_append(h, "ce-type: dev.ofevents.chaos");
        h = curl_slist_append(h, "Content-Type: text/plain");
        snprintf(body, sizeof(body), "%s", data);
    } else {
        size_t n = 0;
        n += (size_t)snprintf(body + n, sizeof(body) - n, "[");
        for (int i = 0; i < k; i++) {
            ch_event_data(first + i, data, sizeof(data));
            n += (size_t)snprintf(body + n, sizeof(body) - n,
                                  "%s{\"specversion\":\"1.0\",\"id\":\"chaos-%ld\",\"source\":"
                                  "\"/chaos\",\"type\":\"dev.ofevents.chaos\","
                                  "\"datacontenttype\":\"text/plain\",\"data\":\"%s\"}",
                                  i ? "," : "", first + i, data);
        }
        snprintf(body + n, sizeof(body) - n, "]");
        h = curl_slist_append(h, "Content-Type: application/cloudevents-batch+json");
    }
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    /* Longer than the bus's publish timeout (30 s): the source answers. */
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 45000L);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    return (int)status;
}

/* Sleeps ms, in slices, returning early on give_up. */
static void nap(struct ch_feed *f, int ms)
{
    while (ms > 0 && !atomic_load(&f->give_up)) {
        int s = ms < 20 ? ms : 20;
        ch_msleep(s);
        ms -= s;
    }
}

static void *feeder_main(void *arg)
{
    struct feeder *t = arg;
    struct ch_feed *f = t->f;
    CURL *c = curl_easy_init();
    long first = -1;
    int k = 0, tries = 0;
    for (;;) {
        if (first < 0) {
            if (atomic_load(&f->stop_new))
                break;
            while (atomic_load(&f->paused) && !atomic_load(&f->stop_new))
                ch_msleep(5);
            if (atomic_load(&f->stop_new))
                break;
            pthread_mutex_lock(&f->lock);
            k = f->nreq % 10 == 9 ? BATCH : 1;
            if (f->next_id + k > f->nmax) {
                pthread_mutex_unlock(&f->lock);
                break;
            }
            first = f->next_id;
            f->next_id += k;
            f->nreq++;
            double now = (double)ch_now_ms();
            double due = f->next_due > now ? f->next_due : now;
            f->next_due = due + (double)k * 1000.0 / f->rate;
            pthread_mutex_unlock(&f->lock);
            for (int i = 0; i < k; i++)
                atomic_store(&f->state[first + i], 1);
            atomic_fetch_add(&f->issued, k);
            double wait = due - (double)ch_now_ms();
            if (wait > 0)
                nap(f, (int)wait);
        }
        while (atomic_load(&f->paused) && !atomic_load(&f->give_up))
            ch_msleep(5);
        if (atomic_load(&f->give_up))
            break;
        atomic_store(&t->busy, true);
        int status = post(c, f->url, first, k);
        atomic_fetch_add(&f->requests, 1);
        atomic_fetch_add(&f->attempted, k);
        if (status == 202) {
            atomic_fetch_add(&f->acked, k);
            for (int i = 0; i < k; i++)
                if (atomic_exchange(&f->state[first + i], 2) != 2)
                    atomic_fetch_add(&f->acked_unique, 1);
        } else if (status > 0) {
            atomic_fetch_add(&f->refused, k);
        } else {
            atomic_fetch_add(&f->unanswered, k);
        }
        atomic_fetch_add(&t->ended, 1);
        atomic_store(&t->busy, false);
        if (status == 202) {
            first = -1;
            tries = 0;
        } else {
            /* Like a webhook caller: try again a little later. */
            tries++;
            nap(f, tries < 10 ? 20 * tries : 200);
        }
    }
    curl_easy_cleanup(c);
    return NULL;
}

struct ch_feed *ch_feed_start(const char *url, int nthreads, double rate, long nmax)
{
    struct ch_feed *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    snprintf(f->url, sizeof(f->url), "%s", url);
    f->rate = rate;
    f->nmax = nmax;
    f->nthreads = nthreads;
    f->state = calloc((size_t)nmax, sizeof(*f->state));
    f->threads = calloc((size_t)nthreads, sizeof(*f->threads));
    pthread_mutex_init(&f->lock, NULL);
    f->next_due = (double)ch_now_ms();
    for (int i = 0; i < nthreads; i++) {
        f->threads[i].f = f;
        pthread_create(&f->threads[i].thread, NULL, feeder_main, &f->threads[i]);
    }
    return f;
}

void ch_feed_counts(struct ch_feed *f, struct ch_feed_counts *c)
{
    c->requests = atomic_load(&f->requests);
    c->attempted = atomic_load(&f->attempted);
    c->acked = atomic_load(&f->acked);
    c->refused = atomic_load(&f->refused);
    c->unanswered = atomic_load(&f->unanswered);
    c->issued = atomic_load(&f->issued);
    c->acked_unique = atomic_load(&f->acked_unique);
}

void ch_feed_pause(struct ch_feed *f, bool paused, int timeout_ms)
{
    atomic_store(&f->paused, paused);
    if (!paused)
        return;
    uint64_t t0 = ch_now_ms();
    for (;;) {
        bool busy = false;
        for (int i = 0; i < f->nthreads; i++)
            busy |= atomic_load(&f->threads[i].busy);
        if (!busy || ch_now_ms() - t0 > (uint64_t)timeout_ms)
            return;
        ch_msleep(5);
    }
}

void ch_feed_quiesce(struct ch_feed *f, int timeout_ms)
{
    unsigned long snap[64];
    bool was[64];
    int n = f->nthreads < 64 ? f->nthreads : 64;
    for (int i = 0; i < n; i++) {
        was[i] = atomic_load(&f->threads[i].busy);
        snap[i] = atomic_load(&f->threads[i].ended);
    }
    uint64_t t0 = ch_now_ms();
    for (;;) {
        bool waiting = false;
        for (int i = 0; i < n; i++)
            if (was[i] && atomic_load(&f->threads[i].ended) == snap[i])
                waiting = true;
        if (!waiting || ch_now_ms() - t0 > (uint64_t)timeout_ms)
            return;
        ch_msleep(5);
    }
}

long ch_feed_finish(struct ch_feed *f, int timeout_ms)
{
    atomic_store(&f->stop_new, true);
    atomic_store(&f->paused, false);
    uint64_t t0 = ch_now_ms();
    for (;;) {
        long issued = atomic_load(&f->issued), acked = atomic_load(&f->acked_unique);
        if (acked >= issued || ch_now_ms() - t0 > (uint64_t)timeout_ms)
            break;
        ch_msleep(20);
    }
    atomic_store(&f->give_up, true);
    for (int i = 0; i < f->nthreads; i++)
        pthread_join(f->threads[i].thread, NULL);
    f->nthreads = 0;
    return atomic_load(&f->issued) - atomic_load(&f->acked_unique);
}

int ch_feed_acked(struct ch_feed *f, long n)
{
    if (n < 0 || n >= f->nmax)
        return -1;
    unsigned char s = atomic_load(&f->state[n]);
    return s == 2 ? 1 : s == 1 ? 0 : -1;
}

void ch_feed_free(struct ch_feed *f)
{
    if (!f)
        return;
    if (f->nthreads)
        ch_feed_finish(f, 0);
    pthread_mutex_destroy(&f->lock);
    free((void *)f->state);
    free(f->threads);
    free(f);
}
