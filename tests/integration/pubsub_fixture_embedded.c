/* Conformance fixture: the embedded bus, ofe-eventbus (fsync always, a
 * password, max event size 2 MiB), through the redis backend as
 * `kind: embedded`.
 *
 * The embedded block of the configuration has no client tunables
 * (processingTimeout, redeliverInterval), so a bus opened for a check that
 * asks for a short redelivery time (the kill-member check) is described as
 * a redis bus pointing at the same ofe-eventbus: the same backend code, with
 * those two options set. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "ofe/config.h"
#include "ofe/err.h"
#include "pubsub_fixture.h"
#include "servers.h"

#define PASSWORD  "embedded-secret"
#define MAX_EVENT (2 * 1024 * 1024)

struct estate {
    struct tu_server *srv; /* NULL in a child */
    char addr[64];
};

static int e_start(void **state, int *missing, char *why, size_t why_size)
{
    char *bin = tu_build_path("eventbus/ofe-eventbus");
    bool there = access(bin, X_OK) == 0;
    if (!there) {
        *missing = 1;
        snprintf(why, why_size, "%s is not built", bin);
        free(bin);
        return -1;
    }
    free(bin);
    const char *extra[] = {"--requirepass", PASSWORD, "--max-event-size", "2097152", NULL};
    struct tu_server *srv = tu_server_start(TU_EVENTBUS, extra);
    if (!srv) {
        snprintf(why, why_size, "ofe-eventbus did not start");
        return -1;
    }
    struct estate *s = calloc(1, sizeof(*s));
    s->srv = srv;
    snprintf(s->addr, sizeof(s->addr), "%s", srv->addr);
    *state = s;
    return 0;
}

static const char *e_export(void *state)
{
    return ((struct estate *)state)->addr;
}

static int e_attach(const char *exported, void **state)
{
    struct estate *s = calloc(1, sizeof(*s));
    snprintf(s->addr, sizeof(s->addr), "%s", exported);
    *state = s;
    return 0;
}

static int e_open(void *state, const struct pf_open_opts *o, struct ofe_bus **out, char *errstr,
                  size_t errstr_size)
{
    struct estate *s = state;
    struct ofe_bus_opts bo = {
        .component = "conformance",
        .client_id = o->client_id,
        .publish_timeout_ms = o->publish_timeout_ms,
        .max_pending = o->max_pending,
    };
    if (o->redeliver_ms) {
        struct ofe_config_redis_bus r = {
            .redis_host = s->addr,
            .redis_password = PASSWORD,
            .processing_timeout_ms = o->redeliver_ms,
            .redeliver_interval_ms = o->redeliver_ms / 4 ? o->redeliver_ms / 4 : 1,
        };
        struct ofe_config_busdesc d = {
            .kind = OFE_CONFIG_BUS_REDIS, .kind_name = "redis", .options = &r.node, .redis = &r};
        return ofe_bus_open(&d, &bo, out, errstr, errstr_size);
    }
    struct ofe_config_embedded_bus e = {.address = s->addr, .requirepass = PASSWORD};
    e.limits.max_event_size = MAX_EVENT;
    struct ofe_config_busdesc d = {.kind = OFE_CONFIG_BUS_EMBEDDED,
                                   .kind_name = "embedded",
                                   .options = &e.node,
                                   .embedded = &e};
    return ofe_bus_open(&d, &bo, out, errstr, errstr_size);
}

static void e_server_stop(void *state)
{
    /* fsync always: a confirmed XADD is on disk, kill -9 loses nothing */
    tu_server_kill(((struct estate *)state)->srv);
}

static int e_server_restart(void *state)
{
    return tu_server_restart(((struct estate *)state)->srv);
}

static int e_inject_raw(void *state, const char *topic, char *errstr, size_t errstr_size)
{
    struct estate *s = state;
    int port = atoi(strrchr(s->addr, ':') + 1);
    redisContext *c = redisConnect("127.0.0.1", port);
    if (!c || c->err) {
        snprintf(errstr, errstr_size, "connect: %s", c ? c->errstr : "out of memory");
        redisFree(c);
        return -1;
    }
    redisReply *r = redisCommand(c, "AUTH %s", PASSWORD);
    freeReplyObject(r);
    r = redisCommand(c, "XADD %s * hello world bin %b", topic, "\x00\xff\n", (size_t)3);
    int rc = r && r->type == REDIS_REPLY_STRING ? 0 : -1;
    if (rc)
        snprintf(errstr, errstr_size, "XADD: %s", r && r->str ? r->str : c->errstr);
    freeReplyObject(r);
    redisFree(c);
    return rc;
}

static void e_stop(void *state)
{
    struct estate *s = state;
    if (!s)
        return;
    tu_server_free(s->srv);
    free(s);
}

const struct pubsub_fixture pubsub_fixture = {
    .name = "embedded",
    .lacks = {NULL},
    .max_event_size = MAX_EVENT,
    .settle_ms = 0,
    .start = e_start,
    .export_state = e_export,
    .attach = e_attach,
    .open = e_open,
    .server_stop = e_server_stop,
    .server_restart = e_server_restart,
    .inject_raw = e_inject_raw,
    .stop = e_stop,
};
