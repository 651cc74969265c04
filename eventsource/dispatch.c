/* Dispatch of one source's events to its sink and bus (es.h): bounded in
 * flight, completion once every destination accepted, redrive of failed
 * destinations with a capped backoff, metrics per destination. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "es.h"
#include "ofe/err.h"
#include "ofe/log.h"

/* Waits between redrives of one destination: from the policy's delay,
 * doubling, up to REDRIVE_CAP_MS (or the policy's cap when smaller). */
#define REDRIVE_CAP_MS 10000
#define AGAIN_MS       20 /* a full local queue (HTTP client, bus pending) */

enum { D_SINK = 0, D_BUS = 1 };

struct job {
    struct es_source *s;
    struct ofe_ce *ev;
    es_done_fn done;
    void *token;
    atomic_int pending; /* destinations not finished */
    atomic_int result;  /* worst of the destinations */
    unsigned redrives[2];
    uint64_t t0_ms;
    struct timespec t0;
    char why[200]; /* first failure or rejection */
    pthread_mutex_t why_lock;
};

static double since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static uint64_t rnd(void)
{
    static __thread uint64_t x;
    if (!x)
        x = es_mono_ms() ^ (uint64_t)(uintptr_t)&x ^ 0x9e3779b97f4a7c15ull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
}

struct ofe_http_client *es_runtime__http(struct es_runtime *rt);

struct ofe_http_client *es_http_client(struct es_source *s)
{
    return es_runtime__http(s->rt);
}

static void set_why(struct job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_why(struct job *j, const char *fmt, ...)
{
    pthread_mutex_lock(&j->why_lock);
    if (!j->why[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(j->why, sizeof(j->why), fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&j->why_lock);
}

static void job_finish(struct job *j)
{
    struct es_source *s = j->s;
    enum es_result r = (enum es_result)atomic_load(&j->result);
    j->done(j->token, r, j->why[0] ? j->why : NULL);
    if (r == ES_REJECTED)
        ofe_counter_inc(s->m_dropped);
    ofe_ce_unref(j->ev);
    pthread_mutex_destroy(&j->why_lock);
    free(j);
    /* The runtime may free s as soon as inflight reaches 0 and the lock
     * is released: touch nothing of it afterwards. */
    pthread_mutex_lock(&s->lock);
    s->inflight--;
    ofe_gauge_set(s->g_inflight, s->inflight);
    if (s->inflight < s->max_inflight)
        ofe_gauge_set(s->g_paused, 0);
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static void dest_done(struct job *j, enum es_result r)
{
    int cur = atomic_load(&j->result);
    while ((int)r > cur && !atomic_compare_exchange_weak(&j->result, &cur, (int)r)) {
    }
    if (atomic_fetch_sub(&j->pending, 1) == 1)
        job_finish(j);
}

/* True when a delivery warning may be logged now (one per 5 s per source;
 * *suppressed gets how many were held back since the last one). */
static bool warn_ok(struct es_source *s, unsigned *suppressed)
{
    uint64_t now = es_mono_ms();
    bool ok = false;
    pthread_mutex_lock(&s->lock);
    if (s->warn_at_ms == 0 || now - s->warn_at_ms >= 5000) {
        ok = true;
        *suppressed = s->warn_suppressed;
        s->warn_suppressed = 0;
        s->warn_at_ms = now;
    } else {
        s->warn_suppressed++;
    }
    pthread_mutex_unlock(&s->lock);
    return ok;
}

static uint32_t redrive_wait(const struct es_source *s, unsigned n)
{
    struct ofe_delivery_policy p = s->policy;
    p.backoff = OFE_BACKOFF_EXPONENTIAL;
    if (p.delay_ms == 0)
        p.delay_ms = 200;
    if (!p.cap_ms || p.cap_ms > REDRIVE_CAP_MS)
        p.cap_ms = REDRIVE_CAP_MS;
    p.jitter = true;
    uint32_t w = ofe_delivery_backoff_ms(&p, n, -1, rnd());
    return w < AGAIN_MS ? AGAIN_MS : w;
}

/* ---- sink --------------------------------------------------------------- */

static void sink_start(struct job *j);

static void sink_timer(void *opaque)
{
    sink_start(opaque);
}

static void sink_retry(void *opaque, unsigned retry_no, const char *why)
{
    struct job *j = opaque;
    ofe_counter_inc(j->s->d_sink.retried);
}

static void sink_later(struct job *j, uint32_t ms)
{
    if (ofe_http_client_later(es_http_client(j->s), ms, sink_timer, j) != 0) {
        set_why(j, "sink: the HTTP client is closed");
        dest_done(j, ES_FAILED);
    }
}

static void sink_done(void *opaque, const struct ofe_send_report *rep)
{
    struct job *j = opaque;
    struct es_source *s = j->s;
    if (rep->outcome == OFE_DELIVERY_OK) {
        ofe_counter_inc(s->d_sink.delivered);
        ofe_histogram_observe(s->d_sink.latency, since(&j->t0));
        atomic_store(&s->sink_down, false);
        dest_done(j, ES_OK);
        return;
    }
    /* Gave up: for good (a status that is not retried) or out of retries. */
    struct ofe_http_result cls = {.status = rep->last_status,
                                  .err = rep->last_status ? 0 : OFE_ECONN};
    bool retryable = ofe_delivery_classify(&cls) == OFE_DELIVERY_RETRY;
    if (!retryable) {
        ofe_counter_inc(s->d_sink.rejected);
        char body[160] = "";
        if (rep->body_excerpt_len) {
            size_t n =
                rep->body_excerpt_len < sizeof(body) - 1 ? rep->body_excerpt_len : sizeof(body) - 1;
            memcpy(body, rep->body_excerpt, n);
            body[n] = '\0';
            for (char *c = body; *c; c++)
                if ((unsigned char)*c < 0x20)
                    *c = ' ';
        }
        OFE_ERROR(ES_COMPONENT, s->name,
                  "sink %s refused event %s for good (%s%s%s): not retried, input acknowledged",
                  s->sink_url, ofe_ce_get_str(j->ev, "id"), rep->last_error, body[0] ? ": " : "",
                  body);
        set_why(j, "the sink refused the event: %s", rep->last_error);
        dest_done(j, ES_REJECTED);
        return;
    }
    ofe_counter_inc(s->d_sink.failed);
    if (rep->last_status == 0) {
        atomic_store(&s->sink_down, true);
        pthread_mutex_lock(&s->lock);
        snprintf(s->sink_why, sizeof(s->sink_why), "%s", rep->last_error);
        pthread_mutex_unlock(&s->lock);
    }
    if (!s->kind->redrive || atomic_load(&s->abandon)) {
        set_why(j, "the sink did not accept the event after %u attempts: %s", rep->attempts,
                rep->last_error);
        dest_done(j, ES_FAILED);
        return;
    }
    unsigned n = ++j->redrives[D_SINK];
    uint32_t wait = redrive_wait(s, n);
    unsigned supp = 0;
    if (warn_ok(s, &supp))
        OFE_WARN(ES_COMPONENT, s->name,
                 "sink %s: event %s not delivered after %u attempts (%s); trying again in %u ms "
                 "(the input stays unacknowledged; %u similar warnings in the last 5 s not "
                 "logged)",
                 s->sink_url, ofe_ce_get_str(j->ev, "id"), rep->attempts, rep->last_error, wait,
                 supp);
    ofe_counter_inc(s->d_sink.retried);
    sink_later(j, wait);
}

static void sink_start(struct job *j)
{
    struct es_source *s = j->s;
    if (atomic_load(&s->abandon)) {
        set_why(j, "the source stopped before the sink accepted the event");
        dest_done(j, ES_FAILED);
        return;
    }
    char err[256];
    int rc = ofe_sender_send(s->sender, j->ev, sink_done, sink_retry, j, err, sizeof(err));
    if (rc == 0)
        return;
    if (rc == OFE_EAGAIN || rc == OFE_ENOMEM) {
        sink_later(j, AGAIN_MS);
        return;
    }
    if (rc == OFE_EINVAL) {
        ofe_counter_inc(s->d_sink.rejected);
        OFE_ERROR(ES_COMPONENT, s->name, "event %s cannot be sent to the sink: %s",
                  ofe_ce_get_str(j->ev, "id"), err);
        set_why(j, "cannot encode the event for the sink: %s", err);
        dest_done(j, ES_REJECTED);
        return;
    }
    set_why(j, "sink: %s", err);
    dest_done(j, ES_FAILED);
}

/* ---- bus ---------------------------------------------------------------- */

static void bus_start(struct job *j);

static void bus_timer(void *opaque)
{
    bus_start(opaque);
}

static void bus_later(struct job *j, uint32_t ms)
{
    if (ofe_http_client_later(es_http_client(j->s), ms, bus_timer, j) != 0) {
        set_why(j, "bus: the daemon is stopping");
        dest_done(j, ES_FAILED);
    }
}

static void bus_done(void *opaque, int err, const char *errmsg)
{
    struct job *j = opaque;
    struct es_source *s = j->s;
    if (err == 0) {
        ofe_counter_inc(s->d_bus.delivered);
        ofe_histogram_observe(s->d_bus.latency, since(&j->t0));
        dest_done(j, ES_OK);
        return;
    }
    if (err == OFE_EINVAL || err == OFE_ETOOBIG) {
        ofe_counter_inc(s->d_bus.rejected);
        OFE_ERROR(ES_COMPONENT, s->name,
                  "bus topic %s refused event %s for good: %s; input acknowledged", s->topic,
                  ofe_ce_get_str(j->ev, "id"), errmsg ? errmsg : ofe_strerror(err));
        set_why(j, "the bus refused the event: %s", errmsg ? errmsg : ofe_strerror(err));
        dest_done(j, ES_REJECTED);
        return;
    }
    ofe_counter_inc(s->d_bus.failed);
    if (!s->kind->redrive || atomic_load(&s->abandon)) {
        set_why(j, "the bus did not confirm the event: %s", errmsg ? errmsg : ofe_strerror(err));
        dest_done(j, ES_FAILED);
        return;
    }
    unsigned n = ++j->redrives[D_BUS];
    uint32_t wait = redrive_wait(s, n);
    unsigned supp = 0;
    if (warn_ok(s, &supp))
        OFE_WARN(ES_COMPONENT, s->name,
                 "bus topic %s: event %s not confirmed (%s); publishing again in %u ms (the "
                 "input stays unacknowledged; %u similar warnings in the last 5 s not logged)",
                 s->topic, ofe_ce_get_str(j->ev, "id"), errmsg ? errmsg : ofe_strerror(err), wait,
                 supp);
    ofe_counter_inc(s->d_bus.retried);
    bus_later(j, wait);
}

static void bus_start(struct job *j)
{
    struct es_source *s = j->s;
    if (atomic_load(&s->abandon)) {
        set_why(j, "the source stopped before the bus confirmed the event");
        dest_done(j, ES_FAILED);
        return;
    }
    char err[256];
    int rc = ofe_bus_publish(s->bus, s->topic, j->ev, bus_done, j, err, sizeof(err));
    if (rc == 0)
        return;
    if (rc == OFE_EAGAIN || rc == OFE_ENOMEM) {
        bus_later(j, AGAIN_MS);
        return;
    }
    if (rc == OFE_EINVAL || rc == OFE_ETOOBIG) {
        bus_done(j, rc, err);
        return;
    }
    set_why(j, "bus: %s", err);
    dest_done(j, ES_FAILED);
}

/* ---- emit --------------------------------------------------------------- */

int es_emit(struct es_source *s, struct ofe_ce *ev, unsigned flags, es_done_fn done, void *token)
{
    pthread_mutex_lock(&s->lock);
    if (s->stopped) {
        pthread_mutex_unlock(&s->lock);
        return OFE_ECLOSED;
    }
    if (s->inflight >= s->max_inflight && !(flags & ES_EMIT_FORCE)) {
        pthread_mutex_unlock(&s->lock);
        ofe_gauge_set(s->g_paused, 1);
        return OFE_EAGAIN;
    }
    struct job *j = calloc(1, sizeof(*j));
    if (!j) {
        pthread_mutex_unlock(&s->lock);
        return OFE_EAGAIN;
    }
    s->inflight++;
    unsigned now_in = s->inflight;
    pthread_mutex_unlock(&s->lock);
    ofe_gauge_set(s->g_inflight, now_in);
    if (now_in >= s->max_inflight)
        ofe_gauge_set(s->g_paused, 1);
    ofe_counter_inc(s->m_received);
    j->s = s;
    j->ev = ofe_ce_ref(ev);
    j->done = done;
    j->token = token;
    pthread_mutex_init(&j->why_lock, NULL);
    clock_gettime(CLOCK_MONOTONIC, &j->t0);
    int n = (s->sender ? 1 : 0) + (s->bus ? 1 : 0);
    atomic_init(&j->result, ES_OK);
    /* One extra count held while starting, so a destination finishing at
     * once cannot complete the job under us. */
    atomic_init(&j->pending, n + 1);
    if (s->sender)
        sink_start(j);
    if (s->bus)
        bus_start(j);
    dest_done(j, ES_OK);
    return 0;
}

unsigned es_capacity(struct es_source *s)
{
    pthread_mutex_lock(&s->lock);
    unsigned c = s->stopped || s->inflight >= s->max_inflight ? 0 : s->max_inflight - s->inflight;
    pthread_mutex_unlock(&s->lock);
    if (!c)
        ofe_gauge_set(s->g_paused, 1);
    return c;
}

unsigned es_wait_capacity(struct es_source *s, int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->lock);
    while (!s->stopped && s->inflight >= s->max_inflight)
        if (pthread_cond_timedwait(&s->cond, &s->lock, &ts) != 0)
            break;
    unsigned c = s->stopped || s->inflight >= s->max_inflight ? 0 : s->max_inflight - s->inflight;
    pthread_mutex_unlock(&s->lock);
    if (!c)
        ofe_gauge_set(s->g_paused, 1);
    return c;
}

unsigned es_inflight(struct es_source *s)
{
    pthread_mutex_lock(&s->lock);
    unsigned n = s->inflight;
    pthread_mutex_unlock(&s->lock);
    return n;
}

unsigned es_dispatch_wait_idle(struct es_source *s, uint64_t deadline_ms)
{
    pthread_mutex_lock(&s->lock);
    while (s->inflight > 0) {
        uint64_t now = es_mono_ms();
        if (now >= deadline_ms)
            break;
        uint64_t left = deadline_ms - now;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += (time_t)(left / 1000);
        ts.tv_nsec += (long)(left % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->cond, &s->lock, &ts);
    }
    unsigned n = s->inflight;
    pthread_mutex_unlock(&s->lock);
    return n;
}

void es_invalid(struct es_source *s, const char *fmt, ...)
{
    ofe_counter_inc(s->m_invalid);
    uint64_t now = es_mono_ms();
    pthread_mutex_lock(&s->lock);
    if (now - s->invalid_window_ms >= 10000) {
        if (s->invalid_suppressed)
            OFE_WARN(ES_COMPONENT, s->name,
                     "%u more messages that are not valid CloudEvents were skipped in the last "
                     "10 s (not logged)",
                     s->invalid_suppressed);
        s->invalid_window_ms = now;
        s->invalid_logged = 0;
        s->invalid_suppressed = 0;
    }
    bool log = s->invalid_logged < 10;
    if (log)
        s->invalid_logged++;
    else
        s->invalid_suppressed++;
    pthread_mutex_unlock(&s->lock);
    if (log) {
        char msg[600];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        OFE_WARN(ES_COMPONENT, s->name,
                 "skipping a message that is not a valid CloudEvent: %s "
                 "(acknowledged, counted in ofe_eventsource_events_invalid_total)",
                 msg);
    }
}

void es_count_acked(struct es_source *s, unsigned n)
{
    ofe_counter_add(s->m_acked, n);
}

/* ---- set-up ------------------------------------------------------------- */

static void dest_metrics(struct es_source *s, struct es_dest *d, const char *label)
{
    const char *l[] = {"source", s->name, "destination", label, NULL};
    d->label = label;
    d->delivered = ofe_metrics_counter(s->metrics, "ofe_eventsource_events_delivered_total",
                                       "Events accepted by a destination (sink 2xx, bus "
                                       "confirmation).",
                                       l);
    d->failed = ofe_metrics_counter(s->metrics, "ofe_eventsource_events_failed_total",
                                    "Delivery attempt sequences that ended without acceptance "
                                    "(sink out of retries, bus publish failed); redriven while "
                                    "the source runs.",
                                    l);
    d->retried = ofe_metrics_counter(s->metrics, "ofe_eventsource_events_retried_total",
                                     "Retries of a delivery (sink attempts after the first, "
                                     "redrives).",
                                     l);
    d->rejected = ofe_metrics_counter(s->metrics, "ofe_eventsource_events_rejected_total",
                                      "Events a destination refused for good (sink 4xx not "
                                      "retried, bus: too large); the input is acknowledged.",
                                      l);
    d->latency =
        ofe_metrics_histogram(s->metrics, "ofe_eventsource_delivery_latency_seconds",
                              "Time from emission to acceptance by the destination.", l, NULL, 0);
}

int es_dispatch_init(struct es_source *s, struct ofe_http_client *hc, struct ofe_bus *bus,
                     char *errstr, size_t errstr_size)
{
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    atomic_init(&s->abandon, false);
    atomic_init(&s->sink_down, false);
    const struct ofe_config_eventsource_spec *sp = &s->es->spec;
    ofe_delivery_policy_default(&s->policy);
    if (sp->delivery.node.present || sp->delivery.retry || sp->delivery.timeout_ms) {
        s->policy.retry = (uint32_t)sp->delivery.retry;
        s->policy.backoff = sp->delivery.backoff_policy == OFE_CONFIG_BACKOFF_LINEAR
                                ? OFE_BACKOFF_LINEAR
                                : OFE_BACKOFF_EXPONENTIAL;
        if (sp->delivery.backoff_delay_ms > 0)
            s->policy.delay_ms = (uint32_t)sp->delivery.backoff_delay_ms;
        if (sp->delivery.backoff_cap_ms > 0)
            s->policy.cap_ms = (uint32_t)sp->delivery.backoff_cap_ms;
        if (sp->delivery.timeout_ms > 0)
            s->policy.timeout_ms = (uint32_t)sp->delivery.timeout_ms;
    }
    if (sp->sink.node.present) {
        char url[2048];
        int rc = ofe_config_destination_url(&sp->sink, s->es->doc.namespace, url, sizeof(url));
        if (rc)
            return ofe_err(errstr, errstr_size, rc, "the sink has neither uri nor ref");
        struct ofe_sender_opts so = {
            .url = url,
            .mode = sp->mode == OFE_CONFIG_MODE_STRUCTURED ? OFE_CE_STRUCTURED : OFE_CE_BINARY,
            .policy = s->policy,
        };
        s->sender = ofe_sender_new(hc, &so, errstr, errstr_size);
        if (!s->sender)
            return OFE_EINVAL;
        s->sink_url = strdup(url);
        if (!s->sink_url)
            return OFE_ENOMEM;
    }
    s->bus = bus;
    s->topic = s->ev->bus_topic;
    unsigned mi = s->opts->max_inflight ? s->opts->max_inflight : s->kind->default_inflight;
    s->max_inflight = mi ? mi : 256;
    const char *l[] = {"source", s->name, "kind", s->kind->name, NULL};
    s->m_received = ofe_metrics_counter(s->metrics, "ofe_eventsource_events_received_total",
                                        "Events taken from the input and handed to dispatch.", l);
    s->m_invalid = ofe_metrics_counter(s->metrics, "ofe_eventsource_events_invalid_total",
                                       "Input messages that could not become a valid "
                                       "CloudEvent (logged, acknowledged).",
                                       l);
    s->m_acked = ofe_metrics_counter(s->metrics, "ofe_eventsource_inputs_acked_total",
                                     "Input messages acknowledged to their broker (offset "
                                     "committed, ack, PUBACK, XACK) after delivery.",
                                     l);
    s->m_dropped = ofe_metrics_counter(s->metrics, "ofe_eventsource_events_dropped_total",
                                       "Events acknowledged without every destination accepting "
                                       "them (refused for good).",
                                       l);
    const char *l1[] = {"source", s->name, NULL};
    s->g_inflight = ofe_metrics_gauge(s->metrics, "ofe_eventsource_events_inflight",
                                      "Events emitted and not yet accepted everywhere.", l1);
    s->g_paused = ofe_metrics_gauge(s->metrics, "ofe_eventsource_source_paused",
                                    "1 while the source does not fetch because max in-flight is "
                                    "reached.",
                                    l1);
    if (s->sender)
        dest_metrics(s, &s->d_sink, "sink");
    if (s->bus)
        dest_metrics(s, &s->d_bus, "bus");
    return 0;
}

void es_dispatch_fini(struct es_source *s)
{
    ofe_sender_destroy(s->sender);
    s->sender = NULL;
    free(s->sink_url);
    s->sink_url = NULL;
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
}
