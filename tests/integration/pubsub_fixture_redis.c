/* Conformance fixture: the redis backend against a real redis-server
 * (AOF with appendfsync always, a password, proto-max-bulk-len 2mb so the
 * size limit is testable). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "ofe/config.h"
#include "ofe/err.h"
#include "pubsub_fixture.h"
#include "servers.h"

#define PASSWORD "conformance-secret"
#define MAX_BULK (2 * 1024 * 1024)

struct rstate {
    struct tu_server *srv; /* NULL in a child */
    char addr[64];
    char exported[128];
};

static bool in_path(const char *prog)
{
    const char *path = getenv("PATH");
    char buf[4096];
    while (path && *path) {
        const char *e = strchr(path, ':');
        size_t n = e ? (size_t)(e - path) : strlen(path);
        snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, prog);
        if (access(buf, X_OK) == 0)
            return true;
        path = e ? e + 1 : NULL;
    }
    return false;
}

static int r_start(void **state, int *missing, char *why, size_t why_size)
{
    if (!in_path("redis-server")) {
        *missing = 1;
        snprintf(why, why_size, "redis-server is not installed (not in PATH)");
        return -1;
    }
    const char *extra[] = {"--requirepass", PASSWORD, "--proto-max-bulk-len", "2mb", NULL};
    struct tu_server *srv = tu_server_start(TU_REDIS, extra);
    if (!srv) {
        snprintf(why, why_size, "redis-server did not start");
        return -1;
    }
    struct rstate *s = calloc(1, sizeof(*s));
    s->srv = srv;
    snprintf(s->addr, sizeof(s->addr), "%s", srv->addr);
    snprintf(s->exported, sizeof(s->exported), "%s", srv->addr);
    *state = s;
    return 0;
}

static const char *r_export(void *state)
{
    return ((struct rstate *)state)->exported;
}

static int r_attach(const char *exported, void **state)
{
    struct rstate *s = calloc(1, sizeof(*s));
    snprintf(s->addr, sizeof(s->addr), "%s", exported);
    *state = s;
    return 0;
}

static int r_open(void *state, const struct pf_open_opts *o, struct ofe_bus **out, char *errstr,
                  size_t errstr_size)
{
    struct rstate *s = state;
    uint32_t redeliver = o->redeliver_ms ? o->redeliver_ms : 1000;
    struct ofe_config_redis_bus r = {
        .redis_host = s->addr,
        .redis_password = PASSWORD,
        .processing_timeout_ms = redeliver,
        .redeliver_interval_ms = redeliver / 4 ? redeliver / 4 : 1,
        .queue_depth = 100,
        .read_timeout_ms = 3000,
    };
    struct ofe_config_busdesc d = {
        .kind = OFE_CONFIG_BUS_REDIS,
        .kind_name = "redis",
        .options = &r.node,
        .redis = &r,
    };
    struct ofe_bus_opts bo = {
        .component = "conformance",
        .client_id = o->client_id,
        .publish_timeout_ms = o->publish_timeout_ms,
        .max_pending = o->max_pending,
    };
    return ofe_bus_open(&d, &bo, out, errstr, errstr_size);
}

static void r_server_stop(void *state)
{
    tu_server_kill(((struct rstate *)state)->srv); /* appendfsync always keeps what was confirmed */
}

static int r_server_restart(void *state)
{
    return tu_server_restart(((struct rstate *)state)->srv);
}

static int r_inject_raw(void *state, const char *topic, char *errstr, size_t errstr_size)
{
    struct rstate *s = state;
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

static void r_stop(void *state)
{
    struct rstate *s = state;
    if (!s)
        return;
    tu_server_free(s->srv);
    free(s);
}

const struct pubsub_fixture pubsub_fixture = {
    .name = "redis",
    .lacks = {NULL},
    .max_event_size = MAX_BULK,
    .settle_ms = 0,
    .start = r_start,
    .export_state = r_export,
    .attach = r_attach,
    .open = r_open,
    .server_stop = r_server_stop,
    .server_restart = r_server_restart,
    .inject_raw = r_inject_raw,
    .stop = r_stop,
};
