/* Conformance fixture: the jetstream backend against a real nats-server
 * with JetStream (-js -sd DIR, file storage), max_payload raised to 2 MiB
 * from a config file so that a 1 MiB event passes and the size limit is
 * testable. The server is stopped with kill -9: nats-server writes each
 * stored message to its block file before it sends the PubAck (file
 * streams flush synchronously by default), so a killed process loses
 * nothing it confirmed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nats/nats.h>

#include "ofe/config.h"
#include "ofe/err.h"
#include "pubsub_fixture.h"
#include "servers.h"

#define MAX_PAYLOAD (2 * 1024 * 1024)
#define STREAM      "CONFORMANCE"

struct jstate {
    struct tu_server *srv; /* NULL in a child */
    char *confdir;
    char url[128];
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

static int j_start(void **state, int *missing, char *why, size_t why_size)
{
    if (!in_path("nats-server")) {
        *missing = 1;
        snprintf(why, why_size, "nats-server is not installed (not in PATH)");
        return -1;
    }
    struct jstate *s = calloc(1, sizeof(*s));
    s->confdir = tu_mkdtemp("nats-conf");
    char conf[4200];
    snprintf(conf, sizeof(conf), "%s/nats.conf", s->confdir);
    FILE *f = fopen(conf, "w");
    if (!f) {
        snprintf(why, why_size, "cannot write %s", conf);
        tu_rmrf(s->confdir);
        free(s->confdir);
        free(s);
        return -1;
    }
    fprintf(f, "max_payload: %d\n", MAX_PAYLOAD);
    fclose(f);
    const char *extra[] = {"-c", conf, NULL};
    s->srv = tu_server_start(TU_NATS, extra);
    if (!s->srv) {
        snprintf(why, why_size, "nats-server did not start");
        tu_rmrf(s->confdir);
        free(s->confdir);
        free(s);
        return -1;
    }
    snprintf(s->url, sizeof(s->url), "%s", s->srv->url);
    *state = s;
    return 0;
}

static const char *j_export(void *state)
{
    return ((struct jstate *)state)->url;
}

static int j_attach(const char *exported, void **state)
{
    struct jstate *s = calloc(1, sizeof(*s));
    snprintf(s->url, sizeof(s->url), "%s", exported);
    *state = s;
    return 0;
}

static int j_open(void *state, const struct pf_open_opts *o, struct ofe_bus **out, char *errstr,
                  size_t errstr_size)
{
    struct jstate *s = state;
    struct ofe_config_jetstream_bus j;
    memset(&j, 0, sizeof(j));
    j.nats_url = s->url;
    j.stream_name = STREAM;
    j.ack_wait_ms = o->redeliver_ms ? o->redeliver_ms : 1000;
    j.max_ack_pending = 10000;
    j.replicas = 1;
    struct ofe_config_busdesc d = {
        .kind = OFE_CONFIG_BUS_JETSTREAM,
        .kind_name = "jetstream",
        .options = &j.node,
        .jetstream = &j,
    };
    struct ofe_bus_opts bo = {
        .component = "conformance",
        .client_id = o->client_id,
        .publish_timeout_ms = o->publish_timeout_ms,
        .max_pending = o->max_pending,
    };
    return ofe_bus_open(&d, &bo, out, errstr, errstr_size);
}

static void j_server_stop(void *state)
{
    tu_server_kill(((struct jstate *)state)->srv);
}

static int j_server_restart(void *state)
{
    return tu_server_restart(((struct jstate *)state)->srv);
}

static int j_inject_raw(void *state, const char *topic, char *errstr, size_t errstr_size)
{
    struct jstate *s = state;
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    char subject[1024];
    snprintf(subject, sizeof(subject), "%s.%s", STREAM, topic);
    natsStatus st = natsConnection_ConnectTo(&nc, s->url);
    if (st == NATS_OK)
        st = natsConnection_JetStream(&js, nc, NULL);
    if (st == NATS_OK) {
        /* raw bytes with a header that is not a CloudEvents one */
        natsMsg *m = NULL;
        st = natsMsg_Create(&m, subject, NULL, "hello\0\xff\n", 8);
        if (st == NATS_OK)
            st = natsMsgHeader_Set(m, "X-Not-Cloudevents", "1");
        if (st == NATS_OK)
            st = js_PublishMsg(NULL, js, m, NULL, NULL);
        natsMsg_Destroy(m);
    }
    if (st != NATS_OK)
        snprintf(errstr, errstr_size, "publish to %s: %s", subject, natsStatus_GetText(st));
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return st == NATS_OK ? 0 : -1;
}

static void j_stop(void *state)
{
    struct jstate *s = state;
    if (!s)
        return;
    tu_server_free(s->srv);
    if (s->confdir)
        tu_rmrf(s->confdir);
    free(s->confdir);
    free(s);
}

const struct pubsub_fixture pubsub_fixture = {
    .name = "jetstream",
    .lacks = {NULL},
    .max_event_size = MAX_PAYLOAD,
    .settle_ms = 0,
    .start = j_start,
    .export_state = j_export,
    .attach = j_attach,
    .open = j_open,
    .server_stop = j_server_stop,
    .server_restart = j_server_restart,
    .inject_raw = j_inject_raw,
    .stop = j_stop,
};
