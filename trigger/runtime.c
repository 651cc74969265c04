/* The set of running triggers: apply a configuration (first start and
 * SIGHUP reloads), readiness, drain and stop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ofe/err.h"
#include "ofe/log.h"
#include "trigger.h"

/* A configuration shared by the triggers built from it: a trigger keeps
 * pointers into its document, so the config lives while one of them runs
 * (an unchanged trigger outlives reloads). */
struct trg_cfgref {
    struct ofe_config *cfg;
    int refs; /* under the runtime lock */
};

struct trg_runtime {
    struct trg_runtime_opts opts;
    char *consumer;
    pthread_mutex_t lock; /* list, cfgref counts */
    struct trg_trigger *list;
    struct trg_cfgref *current;
    char notready[512]; /* why the last apply left something not running */
};

uint64_t trg__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

const struct trg_runtime_opts *trg__opts(struct trg_runtime *rt)
{
    return &rt->opts;
}

const struct ofe_config *trg__cfg_of(const struct trg_cfgref *c)
{
    return c->cfg;
}

struct ofe_metrics *trg__metrics(struct trg_runtime *rt)
{
    return rt->opts.metrics;
}

struct trg_runtime *trg_runtime_new(const struct trg_runtime_opts *o, char *errstr,
                                    size_t errstr_size)
{
    struct trg_runtime *rt = calloc(1, sizeof(*rt));
    if (!rt) {
        ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
        return NULL;
    }
    rt->opts = *o;
    if (!rt->opts.max_inflight)
        rt->opts.max_inflight = 1024;
    if (!rt->opts.ttl_default)
        rt->opts.ttl_default = TRG_TTL_DEFAULT;
    if (!rt->opts.http_max_inflight)
        rt->opts.http_max_inflight = 1024;
    if (o->consumer) {
        rt->consumer = strdup(o->consumer);
        rt->opts.consumer = rt->consumer;
    }
    /* Not ready until the first configuration is applied (an empty list of
     * triggers would otherwise look ready). */
    snprintf(rt->notready, sizeof(rt->notready), "starting: the configuration is not applied yet");
    pthread_mutex_init(&rt->lock, NULL);
    return rt;
}

static void cfgref_put(struct trg_runtime *rt, struct trg_cfgref *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&rt->lock);
    bool last = --c->refs == 0;
    pthread_mutex_unlock(&rt->lock);
    if (last) {
        ofe_config_destroy(c->cfg);
        free(c);
    }
}

/* Same document and the same resolved bus (a changed EventBus restarts
 * the triggers on it). */
static bool unchanged(const struct trg_trigger *t, const struct ofe_config *cfg,
                      const struct ofe_config_trigger *doc)
{
    if (!ofe_config_doc_same(&t->doc->doc, &doc->doc))
        return false;
    struct ofe_config_busdesc d;
    char err[256];
    if (ofe_config_resolve_bus(cfg, doc->spec.event_bus, doc->doc.namespace, &d, NULL, 0, err,
                               sizeof(err)) != 0)
        return false;
    return d.kind == t->busdesc.kind && d.fingerprint == t->busdesc.fingerprint;
}

static void stop_and_free(struct trg_runtime *rt, struct trg_trigger *t)
{
    trg_trigger_stop(t, rt->opts.drain_ms);
    char *id = strdup(t->id);
    struct trg_cfgref *c = t->cfg;
    trg_trigger_free(t);
    cfgref_put(rt, c);
    if (id)
        trg_metrics_forget(rt->opts.metrics, id);
    free(id);
}

int trg_runtime_apply(struct trg_runtime *rt, struct ofe_config *cfg, char *errstr,
                      size_t errstr_size)
{
    struct trg_cfgref *c = calloc(1, sizeof(*c));
    if (!c) {
        ofe_config_destroy(cfg);
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    }
    c->cfg = cfg;
    c->refs = 1; /* the runtime's own, dropped at the next apply */
    int first_err = 0;
    char why[512] = "";
    bool initial = rt->current == NULL;

    /* Which old triggers stay, which are replaced, which go. */
    struct trg_trigger *old = rt->list, *keep = NULL;
    pthread_mutex_lock(&rt->lock);
    rt->list = NULL;
    pthread_mutex_unlock(&rt->lock);

    for (size_t i = 0; i < cfg->ntriggers; i++) {
        const struct ofe_config_trigger *doc = cfg->triggers[i];
        struct trg_trigger **pp = &old, *prev = NULL;
        while (*pp && !(!strcmp((*pp)->doc->doc.namespace, doc->doc.namespace) &&
                        !strcmp((*pp)->doc->doc.name, doc->doc.name)))
            pp = &(*pp)->next;
        prev = *pp;
        if (prev && unchanged(prev, cfg, doc)) {
            *pp = prev->next;
            prev->next = keep;
            keep = prev;
            OFE_DEBUG(TRG_COMPONENT, prev->id, "unchanged: keeps running");
            continue;
        }
        pthread_mutex_lock(&rt->lock);
        c->refs++;
        pthread_mutex_unlock(&rt->lock);
        struct trg_trigger *nt = NULL;
        char err[512];
        int rc = trg_trigger_build(rt, c, doc, &nt, err, sizeof(err));
        if (rc) {
            cfgref_put(rt, c);
            OFE_ERROR(TRG_COMPONENT, doc->doc.name, "trigger %s/%s cannot run: %s%s",
                      doc->doc.namespace, doc->doc.name, err,
                      prev ? " (the previous version keeps running)" : "");
            if (!first_err)
                first_err = rc;
            /* Not ready only when the trigger does not run at all. */
            if (!prev && !why[0])
                snprintf(why, sizeof(why), "trigger %s/%s: %.300s", doc->doc.namespace,
                         doc->doc.name, err);
            if (prev) {
                *pp = prev->next;
                prev->next = keep;
                keep = prev;
            }
            continue;
        }
        if (prev) {
            *pp = prev->next;
            OFE_INFO(TRG_COMPONENT, prev->id, "changed: draining the old version");
            stop_and_free(rt, prev);
        }
        rc = trg_trigger_start(nt, err, sizeof(err));
        if (rc) {
            OFE_ERROR(TRG_COMPONENT, nt->id, "cannot subscribe: %s", err);
            if (!first_err)
                first_err = rc;
            if (!why[0])
                snprintf(why, sizeof(why), "trigger %s: %.300s", nt->id, err);
            stop_and_free(rt, nt);
            continue;
        }
        OFE_INFO(TRG_COMPONENT, nt->id, "%s: %zu input(s), %zu subscriber(s) on %s bus (%s)",
                 prev ? "restarted" : "started", nt->ninputs, nt->nsubs, ofe_bus_backend(nt->bus),
                 ofe_bus_describe(nt->bus));
        nt->next = keep;
        keep = nt;
    }
    /* Whatever is left in old was removed from the configuration. */
    while (old) {
        struct trg_trigger *n = old->next;
        OFE_INFO(TRG_COMPONENT, old->id, "removed from the configuration: draining and stopping");
        stop_and_free(rt, old);
        old = n;
    }
    pthread_mutex_lock(&rt->lock);
    rt->list = keep;
    struct trg_cfgref *prev_cfg = rt->current;
    rt->current = c;
    snprintf(rt->notready, sizeof(rt->notready), "%s", why);
    pthread_mutex_unlock(&rt->lock);
    cfgref_put(rt, prev_cfg);
    if (!initial || first_err)
        OFE_INFO(TRG_COMPONENT, NULL, "%zu trigger(s) running", trg_runtime_count(rt));
    if (first_err)
        ofe_err(errstr, errstr_size, first_err, "%s",
                why[0] ? why
                       : "a changed trigger could not be rebuilt (its previous version runs)");
    return first_err;
}

bool trg_runtime_ready(struct trg_runtime *rt, char *why, size_t why_size)
{
    pthread_mutex_lock(&rt->lock);
    bool ok = true;
    if (rt->notready[0]) {
        snprintf(why, why_size, "%s", rt->notready);
        ok = false;
    }
    for (struct trg_trigger *t = rt->list; ok && t; t = t->next) {
        char w[400] = "";
        if (!ofe_bus_ready(t->bus, w, sizeof(w))) {
            snprintf(why, why_size, "trigger %s: %s bus not ready: %s", t->id,
                     ofe_bus_backend(t->bus), w);
            ok = false;
        }
    }
    pthread_mutex_unlock(&rt->lock);
    return ok;
}

size_t trg_runtime_count(struct trg_runtime *rt)
{
    pthread_mutex_lock(&rt->lock);
    size_t n = 0;
    for (struct trg_trigger *t = rt->list; t; t = t->next)
        n++;
    pthread_mutex_unlock(&rt->lock);
    return n;
}

const void *trg_runtime_instance(struct trg_runtime *rt, const char *ns, const char *name)
{
    pthread_mutex_lock(&rt->lock);
    const struct trg_trigger *t = rt->list;
    while (t && !(!strcmp(t->doc->doc.namespace, ns) && !strcmp(t->doc->doc.name, name)))
        t = t->next;
    pthread_mutex_unlock(&rt->lock);
    return t;
}

void trg_runtime_destroy(struct trg_runtime *rt)
{
    if (!rt)
        return;
    pthread_mutex_lock(&rt->lock);
    struct trg_trigger *list = rt->list;
    rt->list = NULL;
    pthread_mutex_unlock(&rt->lock);
    /* Stop every subscription first, so all triggers drain together. */
    for (struct trg_trigger *t = list; t; t = t->next) {
        ofe_sub_close(t->sub);
        t->sub = NULL;
    }
    uint64_t deadline = trg__now_ns() + (uint64_t)rt->opts.drain_ms * 1000000u;
    while (list) {
        struct trg_trigger *n = list->next;
        uint64_t now = trg__now_ns();
        uint32_t left = now < deadline ? (uint32_t)((deadline - now) / 1000000u) : 0;
        trg_trigger_stop(list, left);
        struct trg_cfgref *c = list->cfg;
        trg_trigger_free(list);
        cfgref_put(rt, c);
        list = n;
    }
    cfgref_put(rt, rt->current);
    pthread_mutex_destroy(&rt->lock);
    free(rt->consumer);
    free(rt);
}
