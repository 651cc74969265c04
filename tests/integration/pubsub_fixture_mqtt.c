/* Conformance fixture: the mqtt backend (MQTT 5, QoS 1, persistent
 * sessions) against a real mosquitto with persistence and a 2 MiB
 * max_packet_size, so the size limit is testable (MQTT 5 announces it in
 * CONNACK and the backend refuses bigger events itself). */
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ofe/config.h"
#include "ofe/err.h"
#include "pubsub_fixture.h"
#include "servers.h"

#define MAX_PACKET (2 * 1024 * 1024)

struct mstate {
    struct tu_server *srv; /* NULL in a child */
    char url[128];
    int port;
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

static int m_start(void **state, int *missing, char *why, size_t why_size)
{
    if (!in_path("mosquitto") && access("/usr/sbin/mosquitto", X_OK) != 0) {
        *missing = 1;
        snprintf(why, why_size, "mosquitto is not installed");
        return -1;
    }
    const char *extra[] = {"max_packet_size 2097152", NULL};
    struct tu_server *srv = tu_server_start(TU_MOSQUITTO, extra);
    if (!srv) {
        snprintf(why, why_size, "mosquitto did not start");
        return -1;
    }
    struct mstate *s = calloc(1, sizeof(*s));
    s->srv = srv;
    s->port = srv->port;
    snprintf(s->url, sizeof(s->url), "%s", srv->url);
    *state = s;
    mosquitto_lib_init();
    return 0;
}

static const char *m_export(void *state)
{
    return ((struct mstate *)state)->url;
}

static int m_attach(const char *exported, void **state)
{
    struct mstate *s = calloc(1, sizeof(*s));
    snprintf(s->url, sizeof(s->url), "%s", exported);
    const char *colon = strrchr(exported, ':');
    s->port = colon ? atoi(colon + 1) : 0;
    *state = s;
    mosquitto_lib_init();
    return 0;
}

static int m_open(void *state, const struct pf_open_opts *o, struct ofe_bus **out, char *errstr,
                  size_t errstr_size)
{
    struct mstate *s = state;
    struct ofe_config_mqtt_bus m = {
        .url = s->url,
        .qos = 1,
        .session_expiry_ms = 3600 * 1000,
        .keep_alive_ms = 60 * 1000,
        .protocol_version = OFE_CONFIG_MQTT_V5,
    };
    struct ofe_config_busdesc d = {
        .kind = OFE_CONFIG_BUS_MQTT,
        .kind_name = "mqtt",
        .options = &m.node,
        .mqtt = &m,
    };
    struct ofe_bus_opts bo = {
        .component = "conformance",
        .client_id = o->client_id,
        .publish_timeout_ms = o->publish_timeout_ms,
        .max_pending = o->max_pending,
    };
    return ofe_bus_open(&d, &bo, out, errstr, errstr_size);
}

static void m_server_stop(void *state)
{
    tu_server_stop(((struct mstate *)state)->srv); /* SIGTERM: mosquitto saves its state */
}

static int m_server_restart(void *state)
{
    return tu_server_restart(((struct mstate *)state)->srv);
}

struct inject {
    atomic_int done;
    atomic_int rc;
};

static void inj_publish(struct mosquitto *m, void *obj, int mid, int rc,
                        const mosquitto_property *props)
{
    struct inject *in = obj;
    atomic_store(&in->rc, rc);
    atomic_store(&in->done, 1);
}

/* A plain MQTT 5 message (no user properties, no content type, bytes that
 * are not JSON): not a CloudEvent in any mode. */
static int m_inject_raw(void *state, const char *topic, char *errstr, size_t errstr_size)
{
    struct mstate *s = state;
    struct inject in;
    atomic_init(&in.done, 0);
    atomic_init(&in.rc, 0);
    struct mosquitto *m = mosquitto_new(NULL, true, &in);
    if (!m) {
        snprintf(errstr, errstr_size, "mosquitto_new failed");
        return -1;
    }
    mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_publish_v5_callback_set(m, inj_publish);
    int rc = mosquitto_connect(m, "127.0.0.1", s->port, 10);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_loop_start(m);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_publish_v5(m, NULL, topic, 6, "\x00\xffraw\n", 1, false, NULL);
    for (int i = 0; rc == MOSQ_ERR_SUCCESS && !atomic_load(&in.done) && i < 1000; i++) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (rc == MOSQ_ERR_SUCCESS && !atomic_load(&in.done))
        rc = MOSQ_ERR_TIMEOUT;
    mosquitto_disconnect(m);
    mosquitto_loop_stop(m, false);
    mosquitto_destroy(m);
    if (rc != MOSQ_ERR_SUCCESS || atomic_load(&in.rc) >= 0x80) {
        snprintf(errstr, errstr_size, "raw publish: %s",
                 rc ? mosquitto_strerror(rc) : mosquitto_reason_string(atomic_load(&in.rc)));
        return -1;
    }
    return 0;
}

static void m_stop(void *state)
{
    struct mstate *s = state;
    if (!s)
        return;
    tu_server_free(s->srv);
    free(s);
}

const struct pubsub_fixture pubsub_fixture = {
    .name = "mqtt",
    .lacks =
        {
            [PF_CAP_KILL_MEMBER] =
                "mosquitto keeps a dead member's unacked messages (and the share of the group "
                "routed to it meanwhile) in that member's session until a client with the same "
                "id reconnects (test_pubsub_mqtt covers that); it never hands them to another "
                "member, and drops them when the session expires",
            [PF_CAP_ORDER_KEY] =
                "MQTT has no partition keys: order holds per topic within one session only, and a "
                "shared subscription spreads one key over its members",
            [PF_CAP_REDELIVERY_COUNT] =
                "libmosquitto does not pass the DUP flag to the application, so a redelivery by "
                "the broker is not counted (local nack redeliveries are)",
        },
    .max_event_size = MAX_PACKET - 16 * 1024,
    .settle_ms = 0, /* ready means SUBACK received: the group exists at the broker */
    .start = m_start,
    .export_state = m_export,
    .attach = m_attach,
    .open = m_open,
    .server_stop = m_server_stop,
    .server_restart = m_server_restart,
    .inject_raw = m_inject_raw,
    .stop = m_stop,
};
