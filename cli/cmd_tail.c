/* ofe tail: prints the events of bus topics as JSON lines as they arrive,
 * acking each one after it is written.
 *
 *   ofe tail [--bus FILE [--bus-name NAME] [--namespace NS]] --topic T...
 *            [--group G] [--from oldest|newest] [--count N] [--timeout DURATION]
 *
 * Exit status: 0 after --count events or on SIGINT/SIGTERM, 1 the bus is
 * not reachable (or --timeout passed before --count events), 2 bad usage
 * or a bad bus file. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "busarg.h"
#include "cmd.h"
#include "ofe/buf.h"
#include "ofe/ce.h"
#include "ofe/err.h"
#include "ofe/log.h"

#define PROG       "ofe tail"
#define MAX_TOPICS 64

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    g_stop = 1;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ofe tail [--bus FILE [--bus-name NAME] [--namespace NS]] --topic TOPIC...\n"
            "                [--group GROUP] [--from oldest|newest] [--count N]\n"
            "                [--timeout DURATION] [-v]\n"
            "\n"
            "Prints every event arriving on TOPIC as one JSON line (the CloudEvents JSON\n"
            "format) and acks it once written. A message that is not a valid CloudEvent is\n"
            "reported on standard error (with its raw payload) and acked.\n"
            "\n"
            "  --bus FILE         YAML with an EventBus, ClusterEventBus or Dapr Component;\n"
            "                     the first such document is used unless --bus-name is given.\n"
            "                     Without --bus: the embedded bus (ofe-eventbus) at %s\n"
            "  --bus-name NAME    the bus document to use, resolved like `eventBus: NAME`\n"
            "  --namespace NS     namespace for --bus-name (default \"default\")\n"
            "  --topic TOPIC      a topic to read (repeatable)\n"
            "  --group GROUP      consumer group: tails sharing a group share the events, and\n"
            "                     a group resumes where it stopped. Default: a new group\n"
            "                     \"ofe-tail-HOST-PID\" (it stays on the broker afterwards)\n"
            "  --from WHERE       where a new group starts: newest (default: only what is\n"
            "                     published from now on) or oldest (everything kept)\n"
            "  --count N          exit after N events\n"
            "  --timeout DURATION exit 1 if the bus is not ready by then, or when --count is\n"
            "                     given and N events did not arrive by then (default: wait\n"
            "                     10s for the bus, then forever)\n"
            "  -v, --verbose      say which bus was chosen, and log connection changes\n"
            "\n"
            "Exit status: 0 after N events or on SIGINT/SIGTERM; 1 bus not reachable or\n"
            "timeout; 2 bad usage or bus file.\n",
            OFE_CONFIG_EMBEDDED_DEFAULT_ADDRESS);
}

struct tail {
    pthread_mutex_t lock;
    unsigned long long count, limit; /* limit 0: none */
    struct ofe_buf line;
    struct ofe_msg *extra[64]; /* fetched past --count: given back at exit */
    size_t nextra;
};

static void on_msg(struct ofe_msg *m, void *opaque)
{
    struct tail *t = opaque;
    struct ofe_ce *ev = ofe_msg_event(m);
    pthread_mutex_lock(&t->lock);
    if (t->limit && t->count >= t->limit && t->nextra < 64) {
        /* more than asked for: not printed, not acked; given back at exit
         * (the broker redelivers it to the group) */
        t->extra[t->nextra++] = m;
        pthread_mutex_unlock(&t->lock);
        return;
    }
    if (ev) {
        char err[512];
        ofe_buf_reset(&t->line);
        if (ofe_ce_json_encode(ev, &t->line, err, sizeof(err)) == 0) {
            fwrite(t->line.data, 1, t->line.len, stdout);
            fputc('\n', stdout);
        } else {
            fprintf(stderr, PROG ": %s: event cannot be written as JSON: %s\n", ofe_msg_topic(m),
                    err);
        }
    } else {
        size_t len;
        const char *p = ofe_msg_payload(m, &len);
        fprintf(stderr, PROG ": %s: not a CloudEvent: %s; payload (%zu bytes): %.*s\n",
                ofe_msg_topic(m), ofe_msg_error(m), len, (int)(len > 2000 ? 2000 : len),
                p ? p : "");
    }
    fflush(stdout);
    t->count++;
    pthread_mutex_unlock(&t->lock);
    ofe_msg_ack(m);
}

int cmd_tail(int argc, char **argv)
{
    const char *file = NULL, *name = NULL, *ns = NULL, *group = NULL, *from = "newest";
    const char *topics[MAX_TOPICS];
    size_t ntopics = 0;
    uint32_t timeout_ms = 0;
    unsigned long long count = 0;
    bool verbose = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool takes = !strcmp(a, "--bus") || !strcmp(a, "--bus-name") || !strcmp(a, "--namespace") ||
                     !strcmp(a, "--topic") || !strcmp(a, "--group") || !strcmp(a, "--from") ||
                     !strcmp(a, "--count") || !strcmp(a, "--timeout");
        if (takes && i + 1 >= argc) {
            fprintf(stderr, PROG ": %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--bus")) {
            file = argv[++i];
        } else if (!strcmp(a, "--bus-name")) {
            name = argv[++i];
        } else if (!strcmp(a, "--namespace")) {
            ns = argv[++i];
        } else if (!strcmp(a, "--group")) {
            group = argv[++i];
        } else if (!strcmp(a, "--topic")) {
            if (ntopics == MAX_TOPICS) {
                fprintf(stderr, PROG ": at most %d topics\n", MAX_TOPICS);
                return 2;
            }
            topics[ntopics++] = argv[++i];
        } else if (!strcmp(a, "--from")) {
            from = argv[++i];
            if (strcmp(from, "oldest") && strcmp(from, "newest")) {
                fprintf(stderr, PROG ": --from: \"%s\" is neither oldest nor newest\n", from);
                return 2;
            }
        } else if (!strcmp(a, "--count")) {
            char *end;
            count = strtoull(argv[++i], &end, 10);
            if (*end || !count || argv[i][0] == '-') {
                fprintf(stderr, PROG ": --count: \"%s\" is not a positive number\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "--timeout")) {
            if (cli_parse_ms(argv[++i], &timeout_ms) != 0 || !timeout_ms) {
                fprintf(stderr, PROG ": --timeout: \"%s\" is not a duration (e.g. 1500, 2s)\n",
                        argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            verbose = true;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, PROG ": unknown %s '%s' (see --help)\n",
                    a[0] == '-' ? "option" : "argument", a);
            return 2;
        }
    }
    if (!ntopics) {
        fprintf(stderr, PROG ": --topic is required (see --help)\n");
        return 2;
    }
    for (size_t i = 0; i < ntopics; i++) {
        if (!*topics[i]) {
            fprintf(stderr, PROG ": --topic: empty topic name\n");
            return 2;
        }
    }
    if (group && !*group) {
        fprintf(stderr, PROG ": --group: empty group name\n");
        return 2;
    }
    if (!verbose)
        ofe_log_set_level(OFE_LOG_ERROR);
    char own_group[300];
    if (!group) {
        char host[128] = "host";
        gethostname(host, sizeof(host) - 1);
        snprintf(own_group, sizeof(own_group), "ofe-tail-%s-%d", host, (int)getpid());
        group = own_group;
    }

    struct cli_bus cb;
    int rc = cli_bus_open(PROG, file, name, ns, 0, &cb);
    if (rc) {
        cli_bus_close(&cb, 0);
        return rc;
    }
    if (verbose)
        fprintf(stderr, PROG ": %s (%s); group %s\n", cb.desc, ofe_bus_describe(cb.bus), group);

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct tail t = {.lock = PTHREAD_MUTEX_INITIALIZER, .limit = count};
    struct ofe_sub_opts so = {
        .group = group,
        .topics = topics,
        .ntopics = ntopics,
        .max_inflight = count && count < 16 ? (unsigned)count : 16,
        .start = strcmp(from, "oldest") ? OFE_START_NEWEST : OFE_START_OLDEST,
        .on_msg = on_msg,
        .opaque = &t,
    };
    struct ofe_sub *sub = NULL;
    char err[1024];
    rc = ofe_bus_subscribe(cb.bus, &so, &sub, err, sizeof(err));
    if (rc) {
        fprintf(stderr, PROG ": cannot subscribe: %s\n", err);
        cli_bus_close(&cb, 0);
        return rc == OFE_EINVAL ? 2 : 1;
    }
    if ((rc = cli_bus_wait_ready(PROG, &cb, timeout_ms ? timeout_ms : 10000)) != 0)
        goto out;
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bool was_ready = true;
    while (!g_stop) {
        pthread_mutex_lock(&t.lock);
        bool done = count && t.count >= count;
        pthread_mutex_unlock(&t.lock);
        if (done)
            break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long ms = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
        if (count && timeout_ms && ms >= (long)timeout_ms) {
            fprintf(stderr, PROG ": %llu of %llu events arrived within %u ms\n", t.count, count,
                    timeout_ms);
            rc = 1;
            break;
        }
        char why[1024];
        bool ready = ofe_bus_ready(cb.bus, why, sizeof(why));
        if (ready != was_ready)
            fprintf(stderr, PROG ": %s\n", ready ? "the bus is back" : why);
        was_ready = ready;
        struct timespec d = {0, 20 * 1000000L};
        nanosleep(&d, NULL);
    }
out:
    ofe_sub_close(sub);
    for (size_t i = 0; i < t.nextra; i++)
        ofe_msg_nack(t.extra[i], 0);
    cli_bus_close(&cb, 5000);
    ofe_buf_fini(&t.line);
    return rc;
}
