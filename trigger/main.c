/* ofe-trigger: runs Trigger documents. Subscribes to the bus topics of the
 * inputs as the consumer group {namespace}-{trigger}, evaluates filters and
 * conditions, delivers to HTTP sinks with retries and dead letters, and
 * re-publishes to bus topics. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ofe/daemon.h"
#include "ofe/duration.h"
#include "ofe/err.h"
#include "trigger.h"

#define DEFAULT_HTTP_PORT 8091

static const char about[] =
    "Runs the Trigger documents of the configuration: subscribes to each input's bus\n"
    "topic {namespace}-{eventSource}-{event} as the consumer group {namespace}-{trigger},\n"
    "and delivers each arriving event to every subscriber whose filters match while\n"
    "its condition holds (HTTP sink with retries and dead letters, or a bus topic).\n"
    "A bus message is acknowledged once every matching subscriber is done with it.";

struct opts {
    unsigned max_inflight;
    uint32_t drain_ms;
    int ttl;
    const char *consumer;
    unsigned http_threads;
};

static int set_consumer(void *target, const char *v, char *errstr, size_t errstr_size)
{
    if (!*v)
        return ofe_err(errstr, errstr_size, OFE_EINVAL, "wants a name");
    ((struct opts *)target)->consumer = v;
    return 0;
}

static int set_uint(void *target, const char *v, char *errstr, size_t errstr_size, long lo, long hi)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || !*v || *end || n < lo || n > hi)
        return ofe_err(errstr, errstr_size, OFE_EINVAL,
                       "wants a number from %ld to %ld, not \"%s\"", lo, hi, v);
    *(long *)target = n;
    return 0;
}

static int set_http_threads(void *target, const char *v, char *errstr, size_t errstr_size)
{
    long n;
    int rc = set_uint(&n, v, errstr, errstr_size, 1, 64);
    if (!rc)
        ((struct opts *)target)->http_threads = (unsigned)n;
    return rc;
}

static int set_inflight(void *target, const char *v, char *errstr, size_t errstr_size)
{
    long n;
    int rc = set_uint(&n, v, errstr, errstr_size, 1, 1000000);
    if (!rc)
        ((struct opts *)target)->max_inflight = (unsigned)n;
    return rc;
}

static int set_ttl(void *target, const char *v, char *errstr, size_t errstr_size)
{
    long n;
    int rc = set_uint(&n, v, errstr, errstr_size, 1, INT_MAX);
    if (!rc)
        ((struct opts *)target)->ttl = (int)n;
    return rc;
}

static int set_drain(void *target, const char *v, char *errstr, size_t errstr_size)
{
    int64_t us;
    if (ofe_duration_parse(v, &us, NULL, errstr, errstr_size) != 0)
        return OFE_EINVAL;
    if (us / 1000 > UINT32_MAX)
        return ofe_err(errstr, errstr_size, OFE_EINVAL, "%s is too long", v);
    ((struct opts *)target)->drain_ms = (uint32_t)(us / 1000);
    return 0;
}

static int bus_get(void *arg, const struct ofe_config_busdesc *d, struct ofe_bus **out,
                   char *errstr, size_t errstr_size)
{
    return ofe_busset_get(arg, d, out, errstr, errstr_size);
}

static void bus_put(void *arg, struct ofe_bus *b)
{
    ofe_busset_put(arg, b, 5000);
}

struct readyctx {
    struct trg_runtime *rt;
    struct ofe_busset *buses;
};

static bool ready(void *arg, char *why, size_t why_size)
{
    struct readyctx *r = arg;
    return ofe_busset_ready(r->buses, why, why_size) && trg_runtime_ready(r->rt, why, why_size);
}

/* --validate: what the loader checks, plus what a trigger needs to run
 * (its bus resolves, its filters compile). */
static int validate(struct ofe_config *cfg)
{
    int bad = 0;
    for (size_t i = 0; i < cfg->ntriggers; i++) {
        const struct ofe_config_trigger *t = cfg->triggers[i];
        struct ofe_config_busdesc d;
        char err[512];
        if (ofe_config_resolve_bus(cfg, t->spec.event_bus, t->doc.namespace, &d, NULL, 0, err,
                                   sizeof(err)) != 0) {
            fprintf(stderr, "ofe-trigger: trigger %s/%s: %s\n", t->doc.namespace, t->doc.name, err);
            bad = 1;
        }
        for (size_t k = 0; k < t->spec.subscribers.n; k++) {
            struct trg_filter *f = NULL;
            if (trg_filter_build(&t->spec.subscribers.v[k], &f, err, sizeof(err)) != 0) {
                fprintf(stderr, "ofe-trigger: trigger %s/%s: subscriber %s: %s\n", t->doc.namespace,
                        t->doc.name, t->spec.subscribers.v[k].name, err);
                bad = 1;
            }
            trg_filter_free(f);
        }
    }
    if (!bad)
        printf("configuration is valid: %zu trigger(s)\n", cfg->ntriggers);
    return bad ? 2 : 0;
}

int main(int argc, char **argv)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    struct opts o = {.max_inflight = 1024,
                     .drain_ms = 30000,
                     .ttl = TRG_TTL_DEFAULT,
                     /* one HTTP thread per 2 CPUs (1 to 4): one thread does
                      * tens of thousands of requests/s, and on a small
                      * machine shared with the bus and the functions more
                      * threads cost CPU in switches (bench_trigger on 2
                      * CPUs: 17 us/event with 1 thread, 21 us with 2) */
                     .http_threads = ncpu < 2   ? 1
                                     : ncpu > 8 ? 4
                                                : (unsigned)ncpu / 2};
    const struct ofe_daemon_opt extra[] = {
        {"max-inflight", "N", "bus messages held per trigger (default 1024)", set_inflight, &o},
        {"drain-timeout", "DURATION", "stop/reload: wait for work in flight (default 30s)",
         set_drain, &o},
        {"consumer", "NAME", "member name in consumer groups (default --instance, else ofe-HOST-PID)", set_consumer,
         &o},
        {"http-threads", "N", "HTTP client threads per trigger (default: half the CPUs, 1 to 4)",
         set_http_threads, &o},
        {"reply-ttl", "N", "loop guard of events without ofettl (default 16)", set_ttl, &o},
        {0},
    };
    struct ofe_daemon d;
    int rc = ofe_daemon_init(&d, "ofe-trigger", TRG_COMPONENT, DEFAULT_HTTP_PORT, about, extra,
                             argc, argv);
    if (rc >= 0)
        return rc;
    struct ofe_config *cfg = ofe_daemon_load(&d);
    if (!cfg) {
        ofe_daemon_fini(&d);
        return 2;
    }
    if (d.validate_only) {
        rc = validate(cfg);
        ofe_config_destroy(cfg);
        ofe_daemon_fini(&d);
        return rc;
    }
    if (cfg->ntriggers == 0)
        OFE_WARN(TRG_COMPONENT, NULL,
                 "the configuration has no Trigger document: nothing to do until a reload "
                 "adds one");

    struct ofe_busset *buses = ofe_busset_new(d.metrics, TRG_COMPONENT);
    char err[1024];
    struct trg_runtime_opts ro = {
        .metrics = d.metrics,
        .buses = {bus_get, bus_put, buses},
        .max_inflight = o.max_inflight,
        .drain_ms = o.drain_ms,
        .ttl_default = o.ttl,
        .consumer = o.consumer ? o.consumer : d.instance, /* --consumer, else --instance */
        .http_threads = o.http_threads,
    };
    struct trg_runtime *rt = buses ? trg_runtime_new(&ro, err, sizeof(err)) : NULL;
    if (!rt) {
        OFE_ERROR(TRG_COMPONENT, NULL, "cannot start: %s", buses ? err : "out of memory");
        ofe_config_destroy(cfg);
        ofe_busset_destroy(buses, 0);
        ofe_daemon_fini(&d);
        return 1;
    }
    struct readyctx rc_ready = {rt, buses};
    if (ofe_daemon_http_start(&d, ready, &rc_ready) != 0) {
        ofe_config_destroy(cfg);
        trg_runtime_destroy(rt);
        ofe_busset_destroy(buses, 0);
        ofe_daemon_fini(&d);
        return 1;
    }
    if (trg_runtime_apply(rt, cfg, err, sizeof(err)) != 0) {
        OFE_ERROR(TRG_COMPONENT, NULL, "cannot start: %s", err);
        trg_runtime_destroy(rt);
        ofe_busset_destroy(buses, 0);
        ofe_daemon_fini(&d);
        return 1;
    }
    for (;;) {
        enum ofe_daemon_event ev = ofe_daemon_wait(&d, -1);
        if (ev == OFE_DAEMON_STOP)
            break;
        if (ev != OFE_DAEMON_RELOAD)
            continue;
        struct ofe_config *ncfg = ofe_daemon_load(&d);
        if (!ncfg) {
            OFE_ERROR(TRG_COMPONENT, NULL,
                      "reload: the configuration has errors; the running triggers are kept");
            continue;
        }
        trg_runtime_apply(rt, ncfg, err, sizeof(err));
    }
    trg_runtime_destroy(rt);
    ofe_busset_destroy(buses, 5000);
    OFE_INFO(TRG_COMPONENT, NULL, "stopped");
    ofe_daemon_fini(&d);
    return 0;
}
