/* One Trigger document at run time: built from the configuration, started
 * (metrics and the consumer-group subscription), drained and stopped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ofe/err.h"
#include "ofe/log.h"
#include "trigger.h"

static void policy_from(const struct ofe_config_delivery *d, bool jitter,
                        struct ofe_delivery_policy *p)
{
    ofe_delivery_policy_default(p);
    if (d->retry >= 0)
        p->retry = (uint32_t)d->retry;
    p->backoff = d->backoff_policy == OFE_CONFIG_BACKOFF_LINEAR ? OFE_BACKOFF_LINEAR
                                                                : OFE_BACKOFF_EXPONENTIAL;
    if (d->backoff_delay_ms > 0)
        p->delay_ms = d->backoff_delay_ms > UINT32_MAX ? UINT32_MAX : (uint32_t)d->backoff_delay_ms;
    if (d->backoff_cap_ms > 0)
        p->cap_ms = d->backoff_cap_ms > UINT32_MAX ? UINT32_MAX : (uint32_t)d->backoff_cap_ms;
    if (d->timeout_ms > 0)
        p->timeout_ms = d->timeout_ms > UINT32_MAX ? UINT32_MAX : (uint32_t)d->timeout_ms;
    p->jitter = jitter;
}

/* One sender per HTTP client of the trigger (lane). */
static int make_sender(struct trg_trigger *t, const struct ofe_config_subscriber *sc,
                       const struct ofe_config_destination *d, bool want_reply, char **url_out,
                       struct ofe_sender ***out, char *errstr, size_t errstr_size)
{
    char url[2048];
    if (ofe_config_destination_url(d, t->doc->doc.namespace, url, sizeof(url)) != 0)
        return ofe_err(errstr, errstr_size, OFE_EINVAL, "%s: neither uri nor ref is set",
                       d->node.path);
    struct ofe_sender_opts so = {
        .url = url,
        .mode = sc->mode == OFE_CONFIG_MODE_STRUCTURED ? OFE_CE_STRUCTURED : OFE_CE_BINARY,
        .want_reply = want_reply,
    };
    policy_from(&sc->delivery, !trg__opts(t->rt)->no_jitter, &so.policy);
    char err[256];
    if (!(*out = calloc(t->nhttp, sizeof(**out))))
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    for (unsigned i = 0; i < t->nhttp; i++)
        if (!((*out)[i] = ofe_sender_new(t->http[i], &so, err, sizeof(err))))
            return ofe_err(errstr, errstr_size, OFE_EINVAL, "%s: %s", d->node.path, err);
    *url_out = strdup(url);
    return *url_out ? 0 : ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
}

static int build_subscriber(struct trg_trigger *t, struct trg_subscriber *s,
                            const struct ofe_config_subscriber *sc, char *errstr,
                            size_t errstr_size)
{
    s->t = t;
    s->cfg = sc;
    s->name = sc->name ? sc->name : "?";
    s->cond = sc->cond;
    s->ordered = sc->ordering == OFE_CONFIG_ORDERING_ORDERED;
    s->concurrency = sc->concurrency > 0 ? (unsigned)sc->concurrency : 16;
    trg_dispatch_init(s);
    if (!s->cond)
        return ofe_err(errstr, errstr_size, OFE_EINVAL, "subscriber %s: no usable condition",
                       s->name);
    char err[512];
    int rc = trg_filter_build(sc, &s->filter, err, sizeof(err));
    if (rc)
        return ofe_err(errstr, errstr_size, rc, "subscriber %s: %s", s->name, err);
    s->topic = sc->topic;
    if (sc->sink.node.present) {
        s->reply_topic = sc->reply_topic;
        s->dlt = sc->dead_letter_topic;
        rc = make_sender(t, sc, &sc->sink, s->reply_topic != NULL, &s->sink_url, &s->sink, errstr,
                         errstr_size);
        if (rc)
            return rc;
        if (sc->dead_letter_sink.node.present) {
            rc = make_sender(t, sc, &sc->dead_letter_sink, false, &s->dls_url, &s->dls, errstr,
                             errstr_size);
            if (rc)
                return rc;
        }
    }
    if (!s->sink && !s->topic)
        return ofe_err(errstr, errstr_size, OFE_EINVAL,
                       "subscriber %s has neither a sink nor a topic", s->name);
    return 0;
}

int trg_trigger_build(struct trg_runtime *rt, struct trg_cfgref *cfg,
                      const struct ofe_config_trigger *doc, struct trg_trigger **out, char *errstr,
                      size_t errstr_size)
{
    struct trg_trigger *t = calloc(1, sizeof(*t));
    if (!t)
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    t->rt = rt;
    t->cfg = cfg;
    t->doc = doc;
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->cond, NULL);
    pthread_rwlock_init(&t->http_lock, NULL);
    int rc = OFE_ENOMEM;
    size_t idlen = strlen(doc->doc.namespace) + strlen(doc->doc.name) + 2;
    if (!(t->id = malloc(idlen)))
        goto nomem;
    snprintf(t->id, idlen, "%s/%s", doc->doc.namespace, doc->doc.name);

    /* The bus (resolved as ofe-eventsource does). */
    char desc[1024], err[512];
    const struct ofe_config *c = trg__cfg_of(cfg);
    rc = ofe_config_resolve_bus(c, doc->spec.event_bus, doc->doc.namespace, &t->busdesc, desc,
                                sizeof(desc), err, sizeof(err));
    if (rc) {
        ofe_err(errstr, errstr_size, rc, "%s", err);
        goto fail;
    }
    OFE_INFO(TRG_COMPONENT, t->id, "%s", desc);

    /* Inputs and their distinct topics. */
    t->ninputs = doc->spec.inputs.n;
    t->inputs = calloc(t->ninputs ? t->ninputs : 1, sizeof(*t->inputs));
    t->topics = calloc(t->ninputs ? t->ninputs : 1, sizeof(char *));
    if (!t->inputs || !t->topics)
        goto nomem;
    for (size_t i = 0; i < t->ninputs; i++) {
        const struct ofe_config_input *in = &doc->spec.inputs.v[i];
        struct trg_input *ti = &t->inputs[i];
        ti->name = in->node.name;
        ti->topic = in->bus_topic;
        ti->index = i;
        atomic_init(&ti->last_ns, 0);
        if (!ti->topic) {
            rc = ofe_err(errstr, errstr_size, OFE_EINVAL, "input %s has no bus topic", ti->name);
            goto fail;
        }
        bool seen = false;
        for (size_t k = 0; k < t->ntopics; k++)
            seen = seen || !strcmp(t->topics[k], ti->topic);
        if (!seen)
            t->topics[t->ntopics++] = (char *)ti->topic;
    }
    if (!t->ntopics) {
        rc = ofe_err(errstr, errstr_size, OFE_EINVAL, "no inputs");
        goto fail;
    }
    int64_t w = doc->spec.condition_window_ms > 0 ? doc->spec.condition_window_ms : 60000;
    t->window_ns = (uint64_t)w * 1000000u;

    /* The trigger's own HTTP clients. */
    struct ofe_http_client_opts ho = {
        .max_inflight = trg__opts(rt)->http_max_inflight,
        .max_host_conns = 256,
        .component = TRG_COMPONENT,
    };
    unsigned nh = trg__opts(rt)->http_threads ? trg__opts(rt)->http_threads : 1;
    if (!(t->http = calloc(nh, sizeof(*t->http))))
        goto nomem;
    for (; t->nhttp < nh; t->nhttp++) {
        if (!(t->http[t->nhttp] = ofe_http_client_new(&ho, err, sizeof(err)))) {
            rc = ofe_err(errstr, errstr_size, OFE_ENOMEM, "%s", err);
            goto fail;
        }
    }

    t->nsubs = doc->spec.subscribers.n;
    t->subs = calloc(t->nsubs ? t->nsubs : 1, sizeof(*t->subs));
    if (!t->subs)
        goto nomem;
    for (size_t i = 0; i < t->nsubs; i++) {
        rc = build_subscriber(t, &t->subs[i], &doc->spec.subscribers.v[i], errstr, errstr_size);
        if (rc) {
            t->nsubs = i + 1; /* free what was built */
            goto fail;
        }
    }

    const struct trg_buses *b = &trg__opts(rt)->buses;
    rc = b->get(b->arg, &t->busdesc, &t->bus, err, sizeof(err));
    if (rc) {
        ofe_err(errstr, errstr_size, rc, "cannot open the bus: %s", err);
        goto fail;
    }
    *out = t;
    return 0;
nomem:
    rc = ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
fail:
    t->cfg = NULL; /* the caller keeps its reference on failure */
    trg_trigger_free(t);
    return rc;
}

int trg_trigger_start(struct trg_trigger *t, char *errstr, size_t errstr_size)
{
    trg_metrics_trigger(t);
    for (size_t i = 0; i < t->nsubs; i++)
        trg_metrics_subscriber(&t->subs[i]);
    struct ofe_sub_opts so = {
        .group = t->doc->consumer_group,
        .consumer = trg__opts(t->rt)->consumer,
        .topics = (const char *const *)t->topics,
        .ntopics = t->ntopics,
        .max_inflight = trg__opts(t->rt)->max_inflight,
        .start = OFE_START_DEFAULT,
        .on_msg = trg_input_on_msg,
        .opaque = t,
    };
    return ofe_bus_subscribe(t->bus, &so, &t->sub, errstr, errstr_size);
}

bool trg_trigger_wait_idle(struct trg_trigger *t, uint32_t drain_ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += drain_ms / 1000;
    dl.tv_nsec += (long)(drain_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&t->lock);
    while (t->held > 0)
        if (pthread_cond_timedwait(&t->cond, &t->lock, &dl) != 0)
            break;
    bool idle = t->held == 0;
    pthread_mutex_unlock(&t->lock);
    return idle;
}

static void set_aborting(struct trg_trigger *t)
{
    pthread_rwlock_wrlock(&t->http_lock);
    atomic_store(&t->aborting, true);
    pthread_rwlock_unlock(&t->http_lock);
}

/* Cancels every send still running (their callbacks run now). */
static void destroy_http(struct trg_trigger *t)
{
    for (unsigned i = 0; t->http && i < t->nhttp; i++) {
        ofe_http_client_destroy(t->http[i]);
        t->http[i] = NULL;
    }
}

void trg_trigger_stop(struct trg_trigger *t, uint32_t drain_ms)
{
    ofe_sub_close(t->sub);
    t->sub = NULL;
    if (!trg_trigger_wait_idle(t, drain_ms)) {
        pthread_mutex_lock(&t->lock);
        unsigned held = t->held;
        pthread_mutex_unlock(&t->lock);
        OFE_WARN(TRG_COMPONENT, t->id,
                 "%u message(s) still in flight after %u ms: giving them back to the bus "
                 "(they are delivered again later)",
                 held, drain_ms);
        /* From now on nothing new starts: queued jobs and sends in flight
         * give their message back. */
        set_aborting(t);
        for (size_t i = 0; i < t->nsubs; i++)
            trg_dispatch_flush(&t->subs[i]);
        destroy_http(t);
        /* Publishes in flight complete within the bus's publish timeout. */
        while (!trg_trigger_wait_idle(t, 5000)) {
            pthread_mutex_lock(&t->lock);
            held = t->held;
            pthread_mutex_unlock(&t->lock);
            OFE_WARN(TRG_COMPONENT, t->id, "waiting for %u publish(es) to complete", held);
        }
    }
    set_aborting(t);
    destroy_http(t);
}

void trg_trigger_free(struct trg_trigger *t)
{
    if (!t)
        return;
    ofe_sub_close(t->sub);
    destroy_http(t);
    free(t->http);
    for (size_t i = 0; t->subs && i < t->nsubs; i++) {
        struct trg_subscriber *s = &t->subs[i];
        trg_dispatch_fini(s);
        for (unsigned k = 0; k < t->nhttp; k++) {
            ofe_sender_destroy(s->sink ? s->sink[k] : NULL);
            ofe_sender_destroy(s->dls ? s->dls[k] : NULL);
        }
        free(s->sink);
        free(s->dls);
        free(s->sink_url);
        free(s->dls_url);
        trg_filter_free(s->filter);
    }
    free(t->subs);
    if (t->bus) {
        const struct trg_buses *b = &trg__opts(t->rt)->buses;
        b->put(b->arg, t->bus);
    }
    free(t->inputs);
    free(t->topics);
    free(t->id);
    pthread_mutex_destroy(&t->lock);
    pthread_cond_destroy(&t->cond);
    pthread_rwlock_destroy(&t->http_lock);
    free(t);
}
