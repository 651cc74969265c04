/* Conformance fixture: the kafka backend against ofe-kafka-mock, the
 * project's Kafka test broker on librdkafka's mock cluster (topics are
 * created on first use with 4 partitions; maxMessageBytes 1.5 MiB so both
 * the 1 MiB event and the size limit are testable).
 *
 * Stop and restart: the mock keeps its log in memory, so its process
 * cannot restart with its data. server_stop takes every broker down
 * instead (SIGUSR1: connections closed, the ports refuse new ones) and
 * server_restart brings them back on the same ports with the same data
 * (SIGUSR2): a broker outage, which is what the restart and outage checks
 * exercise on the client side (publishes wait or fail clearly, nothing
 * confirmed is lost, clients reconnect by themselves). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "ofe/config.h"
#include "ofe/err.h"
#include "pubsub_fixture.h"
#include "servers.h"

#define MAX_BYTES (1536 * 1024)

struct kstate {
    struct tu_server *srv; /* NULL in a child */
    char brokers[256];
};

static int k_start(void **state, int *missing, char *why, size_t why_size)
{
    char *mock = tu_build_path("tests/ofe-kafka-mock");
    bool have = access(mock, X_OK) == 0;
    free(mock);
    if (!have) {
        *missing = 1;
        snprintf(why, why_size, "ofe-kafka-mock is not built (tests/tools/kafka.cmake)");
        return -1;
    }
    struct tu_server *srv = tu_server_start(TU_KAFKA, NULL);
    if (!srv) {
        snprintf(why, why_size, "ofe-kafka-mock did not start");
        return -1;
    }
    struct kstate *s = calloc(1, sizeof(*s));
    s->srv = srv;
    snprintf(s->brokers, sizeof(s->brokers), "%s", srv->url);
    *state = s;
    return 0;
}

static const char *k_export(void *state)
{
    return ((struct kstate *)state)->brokers;
}

static int k_attach(const char *exported, void **state)
{
    struct kstate *s = calloc(1, sizeof(*s));
    snprintf(s->brokers, sizeof(s->brokers), "%s", exported);
    *state = s;
    return 0;
}

static int k_open(void *state, const struct pf_open_opts *o, struct ofe_bus **out, char *errstr,
                  size_t errstr_size)
{
    struct kstate *s = state;
    /* A member that dies keeps its partitions until its session times out:
     * that is the redelivery time. The mock (librdkafka 2.0) makes a new
     * group's first member wait 3 s for others without counting that wait
     * as activity: a session shorter than about 4 s expires during the
     * first join and the member never gets in. */
    uint32_t session = o->redeliver_ms > 4000 ? o->redeliver_ms : 4000;
    char sess[16], hb[16];
    snprintf(sess, sizeof(sess), "%u", session);
    snprintf(hb, sizeof(hb), "%u", session / 4);
    struct ofe_config_kv kv[] = {
        {.key = "session.timeout.ms", .value = sess},
        {.key = "heartbeat.interval.ms", .value = hb},
        {.key = "fetch.wait.max.ms", .value = "50"},
    };
    struct ofe_config_kafka_bus kb = {
        .brokers = s->brokers,
        .initial_offset = OFE_CONFIG_OFFSET_OLDEST,
        .max_message_bytes = MAX_BYTES,
        .rdkafka = {.v = kv, .n = sizeof(kv) / sizeof(kv[0])},
    };
    struct ofe_config_busdesc d = {
        .kind = OFE_CONFIG_BUS_KAFKA,
        .kind_name = "kafka",
        .options = &kb.node,
        .kafka = &kb,
    };
    struct ofe_bus_opts bo = {
        .component = "conformance",
        .client_id = o->client_id,
        .publish_timeout_ms = o->publish_timeout_ms,
        .max_pending = o->max_pending,
    };
    return ofe_bus_open(&d, &bo, out, errstr, errstr_size);
}

/* A record without CloudEvents headers, written with a plain producer. */
static int k_inject_raw(void *state, const char *topic, char *errstr, size_t errstr_size)
{
    struct kstate *s = state;
    char e[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    if (rd_kafka_conf_set(c, "bootstrap.servers", s->brokers, e, sizeof(e)) ||
        rd_kafka_conf_set(c, "acks", "all", e, sizeof(e))) {
        snprintf(errstr, errstr_size, "%s", e);
        rd_kafka_conf_destroy(c);
        return -1;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, e, sizeof(e));
    if (!rk) {
        snprintf(errstr, errstr_size, "%s", e);
        rd_kafka_conf_destroy(c);
        return -1;
    }
    static const char value[] = "hello \x00\xff world";
    rd_kafka_resp_err_t err =
        rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_VALUE((void *)value, sizeof(value) - 1),
                          RD_KAFKA_V_HEADER("source", "not-a-cloudevent", -1), RD_KAFKA_V_END);
    if (!err)
        err = rd_kafka_flush(rk, 10000);
    if (err)
        snprintf(errstr, errstr_size, "produce: %s", rd_kafka_err2str(err));
    rd_kafka_destroy(rk);
    return err ? -1 : 0;
}

static void k_server_stop(void *state)
{
    struct kstate *s = state;
    kill(s->srv->proc->pid, SIGUSR1);
    /* Down once the first broker's port refuses connections. */
    for (int i = 0; i < 500 && tu_wait_port(s->srv->port, 0) == 0; i++)
        usleep(10000);
}

static int k_server_restart(void *state)
{
    struct kstate *s = state;
    if (!tu_proc_alive(s->srv->proc))
        return -1;
    kill(s->srv->proc->pid, SIGUSR2);
    return tu_wait_port(s->srv->port, 10000);
}

static void k_stop(void *state)
{
    struct kstate *s = state;
    if (!s)
        return;
    tu_server_free(s->srv);
    free(s);
}

const struct pubsub_fixture pubsub_fixture = {
    .name = "kafka",
    .lacks =
        {
            [PF_CAP_REDELIVERY_COUNT] = "Kafka does not count deliveries: an event redelivered "
                                        "after its member died comes with "
                                        "ofe_msg_redeliveries() 0",
        },
    .max_event_size = MAX_BYTES,
    .settle_ms = 0,
    .start = k_start,
    .export_state = k_export,
    .attach = k_attach,
    .open = k_open,
    .server_stop = k_server_stop,
    .server_restart = k_server_restart,
    .inject_raw = k_inject_raw,
    .stop = k_stop,
};
