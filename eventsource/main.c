/* ofe-eventsource: runs the events of EventSource documents (Kafka, NATS,
 * MQTT, Redis, cron, webhooks) and hands each CloudEvent to the sink and/or
 * the bus, at least once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "es.h"
#include "ofe/duration.h"
#include "ofe/err.h"
#include "ofe/log.h"

#define DEFAULT_HTTP_PORT 8092

static const char about[] =
    "Runs the events of the EventSource documents in the files: each Kafka record, NATS\n"
    "message, MQTT message, Redis stream entry or channel message, cron tick and webhook\n"
    "request becomes a CloudEvent that goes to the EventSource's sink (HTTP) and/or its\n"
    "bus topic {namespace}-{eventsource}-{event}. Inputs are acknowledged only after\n"
    "every destination accepted the event (docs/sources.md).";

static int set_state_dir(void *target, const char *v, char *errstr, size_t errstr_size)
{
    struct es_options *o = target;
    struct stat st;
    if (stat(v, &st) != 0 || !S_ISDIR(st.st_mode))
        return ofe_err(errstr, errstr_size, OFE_EINVAL, "\"%s\" is not a directory", v);
    o->state_dir = v;
    return 0;
}

static int set_inflight(void *target, const char *v, char *errstr, size_t errstr_size)
{
    struct es_options *o = target;
    char *end;
    long n = strtol(v, &end, 10);
    if (!*v || *end || n < 1 || n > 1000000)
        return ofe_err(errstr, errstr_size, OFE_EINVAL, "expected 1 to 1000000, not \"%s\"", v);
    o->max_inflight = (unsigned)n;
    return 0;
}

static int set_drain(void *target, const char *v, char *errstr, size_t errstr_size)
{
    struct es_options *o = target;
    int64_t us;
    if (ofe_duration_parse(v, &us, NULL, errstr, errstr_size) != 0)
        return OFE_EINVAL;
    if (us / 1000 > 3600 * 1000)
        return ofe_err(errstr, errstr_size, OFE_EINVAL, "at most 1h");
    o->drain_ms = (uint32_t)(us / 1000);
    return 0;
}

static size_t count_events(const struct ofe_config *cfg)
{
    size_t n = 0;
    for (size_t i = 0; i < cfg->neventsources; i++)
        n += cfg->eventsources[i]->nevents;
    return n;
}

int main(int argc, char **argv)
{
    struct es_options o = {.drain_ms = 10000};
    const char *sd = getenv("STATE_DIRECTORY"); /* systemd StateDirectory= */
    if (sd && *sd && !strchr(sd, ':'))
        o.state_dir = sd;
    const struct ofe_daemon_opt extra[] = {
        {"state-dir", "DIR",
         "where cron events with catchup: true keep their last tick (default $STATE_DIRECTORY)",
         set_state_dir, &o},
        {"max-inflight", "N",
         "events per source between input and acceptance at most (default per kind, e.g. 256)",
         set_inflight, &o},
        {"drain-timeout", "DURATION",
         "on SIGTERM or reload, wait this long for events in delivery (default 10s)", set_drain,
         &o},
        {0},
    };
    struct ofe_daemon d;
    int rc = ofe_daemon_init(&d, "ofe-eventsource", ES_COMPONENT, DEFAULT_HTTP_PORT, about, extra,
                             argc, argv);
    if (rc >= 0)
        return rc;
    o.instance = d.instance;
    struct ofe_config *cfg = ofe_daemon_load(&d);
    if (!cfg) {
        ofe_daemon_fini(&d);
        return 2;
    }
    size_t nerr = es_check_config(cfg, &o);
    if (nerr) {
        OFE_ERROR(ES_COMPONENT, "config", "%zu error(s) in the configuration", nerr);
        ofe_config_destroy(cfg);
        ofe_daemon_fini(&d);
        return 2;
    }
    if (d.validate_only) {
        printf("configuration is valid: %zu event source(s), %zu event(s)\n", cfg->neventsources,
               count_events(cfg));
        ofe_config_destroy(cfg);
        ofe_daemon_fini(&d);
        return 0;
    }
    if (cfg->neventsources == 0)
        OFE_WARN(ES_COMPONENT, NULL,
                 "the configuration has no EventSource document: nothing to do until a reload "
                 "adds one");
    char err[1024] = "";
    struct es_runtime_opts ro = {.metrics = d.metrics, .opts = o};
    struct es_runtime *rt = es_runtime_new(&ro, err, sizeof(err));
    if (!rt) {
        OFE_ERROR(ES_COMPONENT, NULL, "cannot start: %s", err);
        ofe_config_destroy(cfg);
        ofe_daemon_fini(&d);
        return 1;
    }
    if (ofe_daemon_http_start(&d, es_runtime_ready, rt) != 0) {
        ofe_config_destroy(cfg);
        es_runtime_destroy(rt);
        ofe_daemon_fini(&d);
        return 1;
    }
    if (es_runtime_apply(rt, cfg) != 0) {
        OFE_ERROR(ES_COMPONENT, NULL, "cannot start every event (see above): exiting");
        ofe_httpd_stop(d.httpd);
        d.httpd = NULL;
        es_runtime_destroy(rt);
        ofe_daemon_fini(&d);
        return 1;
    }
    OFE_INFO(ES_COMPONENT, NULL, "running %zu event(s)", es_runtime_count(rt));
    for (;;) {
        enum ofe_daemon_event ev = ofe_daemon_wait(&d, 200);
        if (ev == OFE_DAEMON_STOP)
            break;
        if (ev == OFE_DAEMON_TIMEOUT) {
            es_runtime_tick(rt);
            continue;
        }
        struct ofe_config *ncfg = ofe_daemon_load(&d);
        if (ncfg && es_check_config(ncfg, &o) != 0) {
            ofe_config_destroy(ncfg);
            ncfg = NULL;
        }
        if (!ncfg) {
            OFE_ERROR(ES_COMPONENT, NULL,
                      "reload: the configuration has errors; the running events are kept");
            continue;
        }
        es_runtime_apply(rt, ncfg);
    }
    /* Stop answering /readyz first: the runtime is going away. */
    ofe_httpd_stop(d.httpd);
    d.httpd = NULL;
    es_runtime_destroy(rt);
    OFE_INFO(ES_COMPONENT, NULL, "stopped");
    ofe_daemon_fini(&d);
    return 0;
}
