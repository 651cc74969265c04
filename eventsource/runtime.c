/* The running events of ofe-eventsource (es.h): start, stop, reload with
 * only what changed restarted, readiness, and the shutdown order that
 * lets every event either complete or stay unacknowledged. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "es.h"
#include "ofe/err.h"
#include "ofe/log.h"

/* A loaded config shared by the sources started from it. */
struct es_cfgref {
    struct ofe_config *cfg;
    int refs; /* main thread only */
};

struct es_runtime {
    struct es_runtime_opts o;
    struct es_options opts;
    struct ofe_http_client *http;
    struct ofe_busset *buses;
    struct es_source *running; /* list */
    struct es_source *retired; /* stopped, events still in flight */
    struct es_cfgref *current;
    pthread_mutex_t list_lock; /* readiness reads the list from HTTP threads */
    bool applied;              /* a configuration was applied (under list_lock) */
};

struct ofe_http_client *es_runtime__http(struct es_runtime *rt)
{
    return rt->http;
}

static void cfg_unref(struct es_cfgref *c)
{
    if (c && --c->refs == 0) {
        ofe_config_destroy(c->cfg);
        free(c);
    }
}

struct es_runtime *es_runtime_new(const struct es_runtime_opts *o, char *errstr, size_t errstr_size)
{
    struct es_runtime *rt = calloc(1, sizeof(*rt));
    if (!rt) {
        ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
        return NULL;
    }
    rt->o = *o;
    rt->opts = o->opts;
    if (!rt->opts.drain_ms)
        rt->opts.drain_ms = 10000;
    pthread_mutex_init(&rt->list_lock, NULL);
    struct ofe_http_client_opts ho = {.component = ES_COMPONENT};
    rt->http = ofe_http_client_new(&ho, errstr, errstr_size);
    rt->buses = ofe_busset_new(o->metrics, ES_COMPONENT);
    if (!rt->http || !rt->buses) {
        ofe_http_client_destroy(rt->http);
        ofe_busset_destroy(rt->buses, 0);
        pthread_mutex_destroy(&rt->list_lock);
        free(rt);
        if (errstr && !errstr[0])
            ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
        return NULL;
    }
    return rt;
}

/* ---- one source ---------------------------------------------------------- */

static bool name_in_use(struct es_runtime *rt, const char *name, const struct es_source *except)
{
    for (struct es_source *s = rt->running; s; s = s->next)
        if (s != except && !strcmp(s->name, name))
            return true;
    for (struct es_source *s = rt->retired; s; s = s->next)
        if (s != except && !strcmp(s->name, name))
            return true;
    return false;
}

/* Frees a source whose events all completed. */
static void source_free(struct es_runtime *rt, struct es_source *s, bool buses_closed)
{
    if (s->started && s->kind->destroy)
        s->kind->destroy(s->kctx);
    s->kctx = NULL;
    if (s->bus && !rt->o.bus_override && !buses_closed)
        ofe_busset_put(rt->buses, s->bus, rt->opts.drain_ms);
    es_dispatch_fini(s);
    if (!name_in_use(rt, s->name, s))
        ofe_metrics_remove_by_label(rt->o.metrics, "source", s->name);
    cfg_unref(s->cfg);
    free(s->name_buf);
    free(s->ce_source_buf);
    free(s);
}

static int resolve_bus(struct es_runtime *rt, const struct ofe_config *cfg,
                       const struct ofe_config_eventsource *es, struct ofe_config_busdesc *d,
                       char *errstr, size_t errstr_size)
{
    char desc[512];
    return ofe_config_resolve_bus(cfg, es->spec.event_bus, es->doc.namespace, d, desc, sizeof(desc),
                                  errstr, errstr_size);
}

static struct es_source *source_start(struct es_runtime *rt, struct es_cfgref *cref,
                                      const struct ofe_config_eventsource *es,
                                      const struct ofe_config_event *ev, char *errstr,
                                      size_t errstr_size)
{
    const struct es_kind *k = es_kind_find(ev->kind);
    if (!k) {
        ofe_err(errstr, errstr_size, OFE_EUNSUPP, "source kind %s is not built in", ev->kind_name);
        return NULL;
    }
    struct es_source *s = calloc(1, sizeof(*s));
    if (!s) {
        ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
        return NULL;
    }
    s->kind = k;
    s->es = es;
    s->ev = ev;
    s->rt = rt;
    s->cfg = cref;
    s->config = cref->cfg;
    cref->refs++;
    s->opts = &rt->opts;
    s->metrics = rt->o.metrics;
    if (asprintf(&s->name_buf, "%s/%s/%s", es->doc.namespace, es->doc.name, ev->name) < 0 ||
        asprintf(&s->ce_source_buf, "/namespaces/%s/eventsources/%s/%s", es->doc.namespace,
                 es->doc.name, ev->name) < 0) {
        s->name_buf = s->ce_source_buf = NULL;
        cfg_unref(s->cfg);
        free(s->name_buf);
        free(s);
        ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
        return NULL;
    }
    s->name = s->name_buf;
    s->ce_source = s->ce_source_buf;
    struct ofe_bus *bus = NULL;
    int rc = 0;
    if (rt->o.bus_override) {
        bus = rt->o.bus_override;
    } else if (es->spec.event_bus) {
        struct ofe_config_busdesc d;
        char err[512];
        rc = resolve_bus(rt, cref->cfg, es, &d, err, sizeof(err));
        if (!rc) {
            rc = ofe_busset_get(rt->buses, &d, &bus, err, sizeof(err));
            s->bus_fp = d.fingerprint;
            s->bus_kind = (int)d.kind;
        }
        if (rc) {
            ofe_err(errstr, errstr_size, rc, "eventBus %s: %s", es->spec.event_bus, err);
            goto fail_early;
        }
    }
    rc = es_dispatch_init(s, rt->http, bus, errstr, errstr_size);
    if (rc) {
        s->bus = bus; /* released by source_free */
        goto fail;
    }
    rc = k->start(s, &s->kctx, errstr, errstr_size);
    if (rc)
        goto fail;
    s->started = true;
    OFE_INFO(ES_COMPONENT, s->name, "started %s source%s%s%s%s", k->name,
             s->sender ? ", sink " : "", s->sender ? s->sink_url : "", s->bus ? ", bus topic " : "",
             s->bus ? s->topic : "");
    return s;
fail:
    source_free(rt, s, false);
    return NULL;
fail_early:
    cfg_unref(s->cfg);
    free(s->name_buf);
    free(s->ce_source_buf);
    free(s);
    return NULL;
}

static void source_stop(struct es_source *s)
{
    pthread_mutex_lock(&s->lock);
    s->stopped = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    if (s->started && s->kind->stop)
        s->kind->stop(s->kctx);
}

/* ---- apply --------------------------------------------------------------- */

static const struct ofe_config_event *find_event(const struct ofe_config *cfg,
                                                 const struct es_source *s,
                                                 const struct ofe_config_eventsource **es_out)
{
    const struct ofe_config_eventsource *es =
        ofe_config_find_eventsource(cfg, s->es->doc.namespace, s->es->doc.name);
    if (!es)
        return NULL;
    for (size_t i = 0; i < es->nevents; i++)
        if (!strcmp(es->events[i].name, s->ev->name)) {
            *es_out = es;
            return &es->events[i];
        }
    return NULL;
}

static bool unchanged(struct es_runtime *rt, const struct ofe_config *cfg,
                      const struct es_source *s, const struct ofe_config_eventsource *nes,
                      const struct ofe_config_event *nev)
{
    /* Per event: a change to another event of the same EventSource leaves
     * this one running (the fingerprint covers its own block and the
     * document's shared settings). */
    if (nev->kind != s->ev->kind || nev->fingerprint != s->ev->fingerprint)
        return false;
    if (rt->o.bus_override || !nes->spec.event_bus)
        return true;
    struct ofe_config_busdesc d;
    char err[256];
    if (resolve_bus(rt, cfg, nes, &d, err, sizeof(err)) != 0)
        return false;
    return d.fingerprint == s->bus_fp && (int)d.kind == s->bus_kind;
}

/* Stops sources (already unlinked), waits for their events up to the
 * drain time, frees the idle ones and retires the rest. */
static void stop_sources(struct es_runtime *rt, struct es_source *list)
{
    for (struct es_source *s = list; s; s = s->next)
        source_stop(s);
    uint64_t deadline = es_mono_ms() + rt->opts.drain_ms;
    for (struct es_source *s = list, *n; s; s = n) {
        n = s->next;
        unsigned left = es_dispatch_wait_idle(s, deadline);
        if (left == 0) {
            OFE_INFO(ES_COMPONENT, s->name, "stopped");
            source_free(rt, s, false);
            continue;
        }
        OFE_WARN(ES_COMPONENT, s->name,
                 "stopped with %u event(s) still in delivery after %u ms: they stay "
                 "unacknowledged at the input and come again",
                 left, rt->opts.drain_ms);
        atomic_store(&s->abandon, true);
        pthread_mutex_lock(&rt->list_lock);
        s->next = rt->retired;
        rt->retired = s;
        pthread_mutex_unlock(&rt->list_lock);
    }
}

size_t es_runtime_apply(struct es_runtime *rt, struct ofe_config *cfg)
{
    struct es_cfgref *cref = calloc(1, sizeof(*cref));
    if (!cref) {
        ofe_config_destroy(cfg);
        OFE_ERROR(ES_COMPONENT, NULL, "out of memory");
        return 1;
    }
    cref->cfg = cfg;
    cref->refs = 1;
    /* Which running sources stay. */
    struct es_source *keep = NULL, *stop = NULL;
    size_t kept = 0, stopped = 0;
    pthread_mutex_lock(&rt->list_lock);
    struct es_source *list = rt->running;
    rt->running = NULL;
    pthread_mutex_unlock(&rt->list_lock);
    for (struct es_source *s = list, *n; s; s = n) {
        n = s->next;
        const struct ofe_config_eventsource *nes = NULL;
        const struct ofe_config_event *nev = find_event(cfg, s, &nes);
        if (nev && unchanged(rt, cfg, s, nes, nev)) {
            s->next = keep;
            keep = s;
            kept++;
        } else {
            OFE_INFO(ES_COMPONENT, s->name, "%s: stopping it",
                     nev ? "changed in the configuration" : "gone from the configuration");
            s->next = stop;
            stop = s;
            stopped++;
        }
    }
    pthread_mutex_lock(&rt->list_lock);
    rt->running = keep;
    pthread_mutex_unlock(&rt->list_lock);
    stop_sources(rt, stop);
    /* Start what is new or changed. */
    size_t failed = 0, started = 0;
    for (size_t i = 0; i < cfg->neventsources; i++) {
        const struct ofe_config_eventsource *es = cfg->eventsources[i];
        for (size_t k = 0; k < es->nevents; k++) {
            const struct ofe_config_event *ev = &es->events[k];
            bool running = false;
            for (struct es_source *s = keep; s && !running; s = s->next)
                running = !strcmp(s->es->doc.namespace, es->doc.namespace) &&
                          !strcmp(s->es->doc.name, es->doc.name) && !strcmp(s->ev->name, ev->name);
            if (running)
                continue;
            char err[1024] = "";
            struct es_source *s = source_start(rt, cref, es, ev, err, sizeof(err));
            if (!s) {
                OFE_ERROR(ES_COMPONENT, NULL, "event %s/%s/%s (%s): cannot start: %s",
                          es->doc.namespace, es->doc.name, ev->name, ev->kind_name, err);
                failed++;
                continue;
            }
            pthread_mutex_lock(&rt->list_lock);
            s->next = rt->running;
            rt->running = s;
            pthread_mutex_unlock(&rt->list_lock);
            started++;
        }
    }
    cfg_unref(rt->current);
    rt->current = cref;
    pthread_mutex_lock(&rt->list_lock);
    rt->applied = true;
    pthread_mutex_unlock(&rt->list_lock);
    OFE_INFO(ES_COMPONENT, NULL,
             "configuration applied: %zu event(s) started, %zu kept, %zu "
             "stopped, %zu failed",
             started, kept, stopped, failed);
    return failed;
}

void es_runtime_tick(struct es_runtime *rt)
{
    struct es_source **pp = &rt->retired;
    while (*pp) {
        struct es_source *s = *pp;
        if (es_inflight(s) == 0) {
            pthread_mutex_lock(&rt->list_lock);
            *pp = s->next;
            pthread_mutex_unlock(&rt->list_lock);
            OFE_INFO(ES_COMPONENT, s->name, "last event of the stopped source completed");
            source_free(rt, s, false);
        } else {
            pp = &s->next;
        }
    }
}

bool es_runtime_ready(void *arg, char *why, size_t why_size)
{
    struct es_runtime *rt = arg;
    bool ok = true;
    pthread_mutex_lock(&rt->list_lock);
    if (!rt->applied) {
        /* /readyz is served before the sources start: an empty list of
         * sources must not look ready */
        snprintf(why, why_size, "starting: the configuration is not applied yet");
        ok = false;
    }
    for (struct es_source *s = rt->running; s && ok; s = s->next) {
        char w[384] = "";
        if (s->kind->ready && !s->kind->ready(s->kctx, w, sizeof(w))) {
            snprintf(why, why_size, "%s: %s", s->name, w);
            ok = false;
        } else if (s->sender && atomic_load(&s->sink_down)) {
            pthread_mutex_lock(&s->lock);
            snprintf(why, why_size, "%s: sink %s unreachable: %s", s->name, s->sink_url,
                     s->sink_why);
            pthread_mutex_unlock(&s->lock);
            ok = false;
        }
    }
    pthread_mutex_unlock(&rt->list_lock);
    if (!ok)
        return false;
    if (rt->o.bus_override) {
        char w[256] = "";
        if (!ofe_bus_ready(rt->o.bus_override, w, sizeof(w))) {
            snprintf(why, why_size, "bus not ready: %s", w);
            return false;
        }
        return true;
    }
    return ofe_busset_ready(rt->buses, why, why_size);
}

size_t es_runtime_count(struct es_runtime *rt)
{
    size_t n = 0;
    pthread_mutex_lock(&rt->list_lock);
    for (struct es_source *s = rt->running; s; s = s->next)
        n++;
    pthread_mutex_unlock(&rt->list_lock);
    return n;
}

struct es_source *es_runtime_find(struct es_runtime *rt, const char *name)
{
    pthread_mutex_lock(&rt->list_lock);
    struct es_source *s = rt->running;
    while (s && strcmp(s->name, name))
        s = s->next;
    pthread_mutex_unlock(&rt->list_lock);
    return s;
}

void es_runtime_destroy(struct es_runtime *rt)
{
    if (!rt)
        return;
    pthread_mutex_lock(&rt->list_lock);
    struct es_source *list = rt->running;
    rt->running = NULL;
    pthread_mutex_unlock(&rt->list_lock);
    for (struct es_source *s = list; s; s = s->next)
        source_stop(s);
    uint64_t deadline = es_mono_ms() + rt->opts.drain_ms;
    unsigned left = 0;
    for (struct es_source *s = list; s; s = s->next)
        left += es_dispatch_wait_idle(s, deadline);
    for (struct es_source *s = rt->retired; s; s = s->next)
        left += es_dispatch_wait_idle(s, deadline);
    if (left)
        OFE_WARN(ES_COMPONENT, NULL,
                 "%u event(s) still in delivery after the drain time (%u ms): they stay "
                 "unacknowledged at their input and come again after a restart",
                 left, rt->opts.drain_ms);
    /* Fail what is left: no more redrives, close the buses (pending
     * publishes fail), then the HTTP client (sends and timers end). */
    for (struct es_source *s = list; s; s = s->next)
        atomic_store(&s->abandon, true);
    for (struct es_source *s = rt->retired; s; s = s->next)
        atomic_store(&s->abandon, true);
    ofe_busset_destroy(rt->buses, left ? 1000 : rt->opts.drain_ms);
    rt->buses = NULL;
    ofe_http_client_destroy(rt->http);
    rt->http = NULL;
    uint64_t d2 = es_mono_ms() + 2000;
    for (struct es_source *s = list, *n; s; s = n) {
        n = s->next;
        if (es_dispatch_wait_idle(s, d2))
            OFE_ERROR(ES_COMPONENT, s->name, "events still in flight after shutdown");
        source_free(rt, s, true);
    }
    for (struct es_source *s = rt->retired, *n; s; s = n) {
        n = s->next;
        es_dispatch_wait_idle(s, d2);
        source_free(rt, s, true);
    }
    rt->retired = NULL;
    cfg_unref(rt->current);
    pthread_mutex_destroy(&rt->list_lock);
    free(rt);
}

/* ---- checks ------------------------------------------------------------- */

size_t es_check_config(const struct ofe_config *cfg, const struct es_options *o)
{
    struct es_diag d = {.component = ES_COMPONENT};
    for (size_t i = 0; i < cfg->neventsources; i++) {
        const struct ofe_config_eventsource *es = cfg->eventsources[i];
        for (size_t k = 0; k < es->nevents; k++) {
            const struct ofe_config_event *ev = &es->events[k];
            const struct es_kind *kind = es_kind_find(ev->kind);
            if (!kind) {
                es_diag_error(&d, ev->spec, NULL, "source kind %s is not built in", ev->kind_name);
                continue;
            }
            if (kind->check)
                kind->check(es, ev, o, &d);
        }
    }
    return d.nerrors;
}
