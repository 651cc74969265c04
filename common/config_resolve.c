/* Bus resolution (`eventBus: NAME` -> backend and options), destination
 * URLs, and the cross-document reference checks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"
#include "ofe/err.h"

static const char *const bus_kind_names[] = {[OFE_CONFIG_BUS_EMBEDDED] = "embedded",
                                             [OFE_CONFIG_BUS_KAFKA] = "kafka",
                                             [OFE_CONFIG_BUS_JETSTREAM] = "jetstream",
                                             [OFE_CONFIG_BUS_MQTT] = "mqtt",
                                             [OFE_CONFIG_BUS_REDIS] = "redis"};

static void fill(struct ofe_config_busdesc *out, enum ofe_config_bus_kind kind,
                 const struct ofe_config_bus *doc, const struct ofe_config_bus_spec *s,
                 const struct ofe_config_embedded_bus *deflt)
{
    memset(out, 0, sizeof(*out));
    out->kind = kind;
    out->kind_name = bus_kind_names[kind];
    out->doc = doc;
    out->fingerprint = doc ? doc->doc.fingerprint : 0;
    switch (kind) {
    case OFE_CONFIG_BUS_EMBEDDED:
        out->embedded = s ? &s->embedded : deflt;
        out->options = &out->embedded->node;
        break;
    case OFE_CONFIG_BUS_KAFKA:
        out->kafka = &s->kafka;
        out->options = &s->kafka.node;
        break;
    case OFE_CONFIG_BUS_JETSTREAM:
        out->jetstream = &s->jetstream;
        out->options = &s->jetstream.node;
        break;
    case OFE_CONFIG_BUS_MQTT:
        out->mqtt = &s->mqtt;
        out->options = &s->mqtt.node;
        break;
    case OFE_CONFIG_BUS_REDIS:
        out->redis = &s->redis;
        out->options = &s->redis.node;
        break;
    }
}

static void summary(const struct ofe_config_busdesc *b, char *buf, size_t size)
{
    switch (b->kind) {
    case OFE_CONFIG_BUS_EMBEDDED:
        snprintf(buf, size, "the embedded bus (ofe-eventbus) at %s", b->embedded->address);
        break;
    case OFE_CONFIG_BUS_KAFKA:
        snprintf(buf, size, "kafka, brokers %s", b->kafka->brokers ? b->kafka->brokers : "?");
        break;
    case OFE_CONFIG_BUS_JETSTREAM:
        snprintf(buf, size, "jetstream at %s%s",
                 b->jetstream->nats_url ? b->jetstream->nats_url : "?",
                 b->jetstream->from_nats_streaming ? " (converted from natsStreaming)" : "");
        break;
    case OFE_CONFIG_BUS_MQTT:
        snprintf(buf, size, "mqtt at %s", b->mqtt->url ? b->mqtt->url : "?");
        break;
    case OFE_CONFIG_BUS_REDIS:
        snprintf(buf, size, "redis at %s", b->redis->redis_host ? b->redis->redis_host : "?");
        break;
    }
}

static const char *kind_word(enum ofe_config_kind k)
{
    switch (k) {
    case OFE_CONFIG_EVENTBUS:
        return "EventBus";
    case OFE_CONFIG_CLUSTEREVENTBUS:
        return "ClusterEventBus";
    case OFE_CONFIG_COMPONENT:
        return "Component";
    default:
        return "document";
    }
}

int ofe_config_resolve_bus(const struct ofe_config *cfg, const char *name, const char *ns,
                           struct ofe_config_busdesc *out, char *desc, size_t desc_size,
                           char *errstr, size_t errstr_size)
{
    if (!name || !*name)
        name = OFE_CONFIG_DEFAULT_BUS;
    if (!ns || !*ns)
        ns = OFE_CONFIG_DEFAULT_NAMESPACE;
    static const enum ofe_config_kind order[] = {OFE_CONFIG_EVENTBUS, OFE_CONFIG_CLUSTEREVENTBUS,
                                                 OFE_CONFIG_COMPONENT};
    for (size_t o = 0; o < 3; o++) {
        for (size_t i = 0; i < cfg->nbuses; i++) {
            const struct ofe_config_bus *b = cfg->buses[i];
            if (b->doc.kind != order[o] || strcmp(b->doc.name, name))
                continue;
            if (order[o] != OFE_CONFIG_CLUSTEREVENTBUS && strcmp(b->doc.namespace, ns))
                continue;
            if (b->doc.nerrors || !b->valid)
                return ofe_err(errstr, errstr_size, OFE_EINVAL,
                               "eventBus \"%s\" names %s %s/%s (%s:%d:%d), which has errors", name,
                               kind_word(b->doc.kind), b->doc.namespace, b->doc.name,
                               b->doc.node.pos.file, b->doc.node.pos.line, b->doc.node.pos.col);
            fill(out, b->backend, b, &b->spec, NULL);
            if (desc && desc_size) {
                char sum[512];
                summary(out, sum, sizeof(sum));
                const char *why = order[o] == OFE_CONFIG_EVENTBUS ? ""
                                  : order[o] == OFE_CONFIG_CLUSTEREVENTBUS
                                      ? " (no EventBus of that name in the namespace)"
                                      : " (no EventBus or ClusterEventBus of that name)";
                if (order[o] == OFE_CONFIG_COMPONENT)
                    snprintf(desc, desc_size,
                             "eventBus \"%s\" (namespace \"%s\") is Dapr Component %s/%s of type "
                             "%s from %s:%d:%d%s: %s",
                             name, ns, b->doc.namespace, b->doc.name,
                             b->spec.type ? b->spec.type : "?", b->doc.node.pos.file,
                             b->doc.node.pos.line, b->doc.node.pos.col, why, sum);
                else if (order[o] == OFE_CONFIG_CLUSTEREVENTBUS)
                    snprintf(desc, desc_size,
                             "eventBus \"%s\" (namespace \"%s\") is ClusterEventBus %s from "
                             "%s:%d:%d%s: %s",
                             name, ns, b->doc.name, b->doc.node.pos.file, b->doc.node.pos.line,
                             b->doc.node.pos.col, why, sum);
                else
                    snprintf(desc, desc_size,
                             "eventBus \"%s\" (namespace \"%s\") is EventBus %s/%s from "
                             "%s:%d:%d: %s",
                             name, ns, b->doc.namespace, b->doc.name, b->doc.node.pos.file,
                             b->doc.node.pos.line, b->doc.node.pos.col, sum);
            }
            return 0;
        }
    }
    if (!strcmp(name, OFE_CONFIG_DEFAULT_BUS)) {
        fill(out, OFE_CONFIG_BUS_EMBEDDED, NULL, NULL, &cfg->priv->default_embedded);
        if (desc && desc_size)
            snprintf(desc, desc_size,
                     "eventBus \"default\" (namespace \"%s\"): no EventBus, ClusterEventBus or "
                     "Component named \"default\" is loaded, so the embedded bus (ofe-eventbus) "
                     "at %s is used",
                     ns, cfg->priv->default_embedded.address);
        return 0;
    }
    return ofe_err(errstr, errstr_size, OFE_ENOENT,
                   "eventBus \"%s\": no EventBus \"%s\" in namespace \"%s\", no ClusterEventBus "
                   "\"%s\" and no Component \"%s\" in namespace \"%s\" is loaded",
                   name, name, ns, name, name, ns);
}

int ofe_config_destination_url(const struct ofe_config_destination *d, const char *ns, char *buf,
                               size_t size)
{
    if (d->uri) {
        snprintf(buf, size, "%s", d->uri);
        return 0;
    }
    if (d->ref.node.present && d->ref.name) {
        const char *rns =
            d->ref.namespace ? d->ref.namespace : (ns ? ns : OFE_CONFIG_DEFAULT_NAMESPACE);
        snprintf(buf, size, "http://%s.%s.svc.cluster.local/", d->ref.name, rns);
        return 0;
    }
    if (size)
        buf[0] = '\0';
    return OFE_EINVAL;
}

static void ref_diag(struct ofe_config *cfg, enum ofe_config_severity sev,
                     const struct ofe_config_node *n, const char *key, const char *msg)
{
    const struct ofe_config_pos *pos = ofe_config_field_pos(n, key);
    struct pctx p;
    memset(&p, 0, sizeof(p));
    p.cfg = cfg;
    cfg__diag(&p, sev, pos, n->path, key, "%s", msg);
}

size_t ofe_config_check_refs(struct ofe_config *cfg, enum ofe_config_severity severity)
{
    size_t problems = 0;
    char err[512];
    struct ofe_config_busdesc bd;
    for (size_t i = 0; i < cfg->neventsources; i++) {
        const struct ofe_config_eventsource *es = cfg->eventsources[i];
        if (!es->spec.event_bus)
            continue;
        if (ofe_config_resolve_bus(cfg, es->spec.event_bus, es->doc.namespace, &bd, NULL, 0, err,
                                   sizeof(err)) != 0) {
            ref_diag(cfg, severity, &es->spec.node, "eventBus", err);
            problems++;
        }
    }
    for (size_t i = 0; i < cfg->ntriggers; i++) {
        const struct ofe_config_trigger *t = cfg->triggers[i];
        if (t->spec.event_bus && ofe_config_resolve_bus(cfg, t->spec.event_bus, t->doc.namespace,
                                                        &bd, NULL, 0, err, sizeof(err)) != 0) {
            ref_diag(cfg, severity, &t->spec.node, "eventBus", err);
            problems++;
        }
        for (size_t j = 0; j < t->spec.inputs.n; j++) {
            const struct ofe_config_input *in = &t->spec.inputs.v[j];
            if (!in->event_source || !in->event)
                continue;
            const struct ofe_config_eventsource *es =
                ofe_config_find_eventsource(cfg, in->namespace, in->event_source);
            if (!es)
                continue;
            bool found = false;
            struct ofe_buf names = OFE_BUF_INIT;
            for (size_t k = 0; k < es->nevents; k++) {
                if (!strcmp(es->events[k].name, in->event))
                    found = true;
                ofe_buf_printf(&names, "%s%s", names.len ? ", " : "", es->events[k].name);
            }
            if (!found) {
                snprintf(err, sizeof(err),
                         "EventSource %s/%s (%s:%d) has no event '%s' (events: %s)",
                         es->doc.namespace, es->doc.name, es->doc.node.pos.file,
                         es->doc.node.pos.line, in->event, names.data ? names.data : "none");
                ref_diag(cfg, severity, &in->node, "event", err);
                problems++;
            }
            ofe_buf_fini(&names);
        }
    }
    return problems;
}
