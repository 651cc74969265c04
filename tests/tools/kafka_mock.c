/* ofe-kafka-mock: a standalone Kafka test broker on librdkafka's mock
 * cluster API (<librdkafka/rdkafka_mock.h>).
 *
 *   ofe-kafka-mock [--brokers N] [--topic NAME:PARTITIONS]...
 *                  [--bootstrap-file FILE] [--debug CONTEXTS]
 *
 * The mock cluster listens on 127.0.0.1 with one port per broker, chosen
 * by librdkafka (its API cannot bind a given port). Once every broker
 * listens, the bootstrap servers ("127.0.0.1:P1,127.0.0.1:P2,...") are
 * printed on stdout as `bootstrap.servers=...` and, with --bootstrap-file,
 * written to FILE (atomically: a reader sees the whole line or no file).
 *
 * Topics named with --topic are created with that many partitions;
 * others are created on first use with the mock's default (4 partitions).
 *
 * Fault injection, by signal:
 *   SIGUSR1  every broker goes down (connections closed, new ones refused)
 *   SIGUSR2  every broker comes back up
 *   SIGRTMIN+1  every OffsetCommit is refused with REBALANCE_IN_PROGRESS
 *               (as the mock does while a group rebalances), until
 *   SIGRTMIN+2  commits are accepted again
 * SIGTERM or SIGINT stops the cluster and exits 0.
 *
 * What the mock is not: it keeps its log in memory (about 5 MB or 100,000
 * message sets per partition, oldest dropped first), so a restart loses
 * everything; keep test volumes small and consume while producing. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define MAX_TOPICS 64

static void usage(FILE *f)
{
    fprintf(f, "usage: ofe-kafka-mock [--brokers N] [--topic NAME:PARTITIONS]...\n"
               "                      [--bootstrap-file FILE] [--debug CONTEXTS]\n"
               "A Kafka test broker (librdkafka mock cluster) on 127.0.0.1.\n"
               "  --brokers N            brokers in the cluster (1..16, default 1)\n"
               "  --topic NAME:N         create topic NAME with N partitions (repeatable);\n"
               "                         other topics are created on first use (4 partitions)\n"
               "  --bootstrap-file FILE  write the bootstrap servers to FILE\n"
               "  --debug CONTEXTS       librdkafka debug contexts (e.g. mock,cgrp)\n"
               "Signals: SIGUSR1 takes every broker down, SIGUSR2 brings them back,\n"
               "SIGRTMIN+1 refuses every offset commit (REBALANCE_IN_PROGRESS),\n"
               "SIGRTMIN+2 accepts them again, SIGTERM/SIGINT exit.\n");
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int write_bootstrap(const char *path, const char *servers)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    int ok = fprintf(f, "%s\n", servers) > 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

struct create {
    rd_kafka_mock_cluster_t *mc;
    const char *topic;
    int partitions, replication;
    rd_kafka_resp_err_t err;
};

static void *create_topic(void *arg)
{
    struct create *c = arg;
    c->err = rd_kafka_mock_topic_create(c->mc, c->topic, c->partitions, c->replication);
    return NULL;
}

static void set_all(rd_kafka_mock_cluster_t *mc, int nbrokers, int up)
{
    /* Mock broker ids are 1..N. */
    for (int id = 1; id <= nbrokers; id++) {
        rd_kafka_resp_err_t e =
            up ? rd_kafka_mock_broker_set_up(mc, id) : rd_kafka_mock_broker_set_down(mc, id);
        if (e)
            fprintf(stderr, "ofe-kafka-mock: broker %d: %s\n", id, rd_kafka_err2str(e));
    }
    fprintf(stderr, "ofe-kafka-mock: every broker is %s\n", up ? "up" : "down");
}

int main(int argc, char **argv)
{
    int nbrokers = 1;
    const char *bootstrap_file = NULL, *debug = NULL;
    char *topics[MAX_TOPICS];
    int parts[MAX_TOPICS], ntopics = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "ofe-kafka-mock: %s: missing value or unknown option\n", a);
            usage(stderr);
            return 2;
        }
        i++;
        if (!strcmp(a, "--brokers")) {
            if (parse_int(v, 1, 16, &nbrokers)) {
                fprintf(stderr, "ofe-kafka-mock: --brokers: \"%s\" is not 1..16\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--topic")) {
            const char *colon = strrchr(v, ':');
            int n;
            if (!colon || colon == v || parse_int(colon + 1, 1, 10000, &n)) {
                fprintf(stderr,
                        "ofe-kafka-mock: --topic: \"%s\" is not NAME:PARTITIONS "
                        "(1..10000 partitions)\n",
                        v);
                return 2;
            }
            if (ntopics == MAX_TOPICS) {
                fprintf(stderr, "ofe-kafka-mock: at most %d --topic options\n", MAX_TOPICS);
                return 2;
            }
            topics[ntopics] = strndup(v, (size_t)(colon - v));
            parts[ntopics++] = n;
        } else if (!strcmp(a, "--bootstrap-file")) {
            bootstrap_file = v;
        } else if (!strcmp(a, "--debug")) {
            debug = v;
        } else {
            fprintf(stderr, "ofe-kafka-mock: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
    }

    /* Block the signals before librdkafka starts its threads, so they all
     * inherit the mask and only sigwait below sees them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    sigaddset(&set, SIGRTMIN + 1);
    sigaddset(&set, SIGRTMIN + 2);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* Quiet unless debugging (the hosting handle warns that it has no
     * bootstrap servers, which is true and beside the point). */
    rd_kafka_conf_set(conf, "log_level", debug ? "7" : "4", errstr, sizeof(errstr));
    if (debug && rd_kafka_conf_set(conf, "debug", debug, errstr, sizeof(errstr))) {
        fprintf(stderr, "ofe-kafka-mock: --debug: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 2;
    }
    /* The handle only hosts the mock cluster; it never connects anywhere. */
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "ofe-kafka-mock: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, nbrokers);
    if (!mc) {
        fprintf(stderr, "ofe-kafka-mock: cannot create the mock cluster\n");
        rd_kafka_destroy(rk);
        return 1;
    }
    /* One thread per topic: librdkafka 2.0's mock thread sometimes sleeps
     * its full 1 s poll timeout before it takes a command, so commands
     * made one after the other can take a second each; made at once, they
     * are all taken at the next wakeup. */
    struct create cr[MAX_TOPICS];
    pthread_t thr[MAX_TOPICS];
    int rc = 0;
    for (int i = 0; i < ntopics; i++) {
        cr[i] = (struct create){mc, topics[i], parts[i], nbrokers < 3 ? nbrokers : 3, 0};
        if (pthread_create(&thr[i], NULL, create_topic, &cr[i]) != 0)
            create_topic(&cr[i]), thr[i] = 0;
    }
    for (int i = 0; i < ntopics; i++) {
        if (thr[i])
            pthread_join(thr[i], NULL);
        if (cr[i].err) {
            fprintf(stderr, "ofe-kafka-mock: topic %s: %s\n", topics[i],
                    rd_kafka_err2str(cr[i].err));
            rc = 1;
        }
    }
    if (rc)
        goto out;
    const char *servers = rd_kafka_mock_cluster_bootstraps(mc);
    printf("bootstrap.servers=%s\n", servers);
    fflush(stdout);
    if (bootstrap_file && write_bootstrap(bootstrap_file, servers) != 0) {
        fprintf(stderr, "ofe-kafka-mock: cannot write %s: %s\n", bootstrap_file, strerror(errno));
        rc = 1;
        goto out;
    }
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGUSR1) {
            set_all(mc, nbrokers, 0);
        } else if (sig == SIGUSR2) {
            set_all(mc, nbrokers, 1);
        } else if (sig == SIGRTMIN + 1) {
            /* OffsetCommit is Kafka API key 8; the stack is consumed one
             * error per request, so push more than any test sends */
            rd_kafka_resp_err_t errs[256];
            for (int i = 0; i < 256; i++)
                errs[i] = RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS;
            for (int i = 0; i < 64; i++)
                rd_kafka_mock_push_request_errors_array(mc, 8, 256, errs);
        } else if (sig == SIGRTMIN + 2) {
            rd_kafka_mock_clear_request_errors(mc, 8);
        } else {
            fprintf(stderr, "ofe-kafka-mock: signal %d, stopping\n", sig);
            break;
        }
    }
out:
    if (bootstrap_file)
        unlink(bootstrap_file);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    for (int i = 0; i < ntopics; i++)
        free(topics[i]);
    return rc;
}
