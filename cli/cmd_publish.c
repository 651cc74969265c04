/* ofe publish: publishes one CloudEvent, or a batch, to a bus topic and
 * waits until the broker confirmed each one.
 *
 *   ofe publish [--bus FILE [--bus-name NAME] [--namespace NS]] --topic T
 *               [--timeout DURATION] [-v] [EVENT.json|-]
 *
 * Prints the id of every confirmed event, one per line, in input order.
 * Exit status: 0 every event confirmed, 1 a publish failed (unreachable
 * broker, authentication, refused by the broker, timeout), 2 bad usage,
 * bad bus file or option, or an invalid event (nothing is published
 * then). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "busarg.h"
#include "cmd.h"
#include "ofe/buf.h"
#include "ofe/ce.h"
#include "ofe/err.h"
#include "ofe/log.h"

#define PROG      "ofe publish"
#define MAX_INPUT (64 * 1024 * 1024)

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ofe publish [--bus FILE [--bus-name NAME] [--namespace NS]] --topic TOPIC\n"
            "                   [--timeout DURATION] [-v] [EVENT.json|-]\n"
            "\n"
            "Publishes a CloudEvent in JSON format, or a batch (a JSON array of events), read\n"
            "from EVENT.json or standard input, to TOPIC, waits until the broker confirmed\n"
            "every event, and prints their ids, one per line.\n"
            "\n"
            "  --bus FILE         YAML with an EventBus, ClusterEventBus or Dapr Component;\n"
            "                     the first such document is used unless --bus-name is given.\n"
            "                     Without --bus: the embedded bus (ofe-eventbus) at %s\n"
            "  --bus-name NAME    the bus document to use, resolved like `eventBus: NAME`\n"
            "  --namespace NS     namespace for --bus-name (default \"default\")\n"
            "  --topic TOPIC      the bus topic, e.g. default-my-source-my-event\n"
            "  --timeout DURATION how long to wait for the bus and for each confirmation\n"
            "                     (ms, or with s/m; default 10s)\n"
            "  -v, --verbose      say which bus was chosen and how (on standard error)\n"
            "\n"
            "Exit status: 0 all confirmed; 1 a publish failed (broker unreachable,\n"
            "authentication, refused, timeout); 2 bad usage, bus file or event.\n",
            OFE_CONFIG_EMBEDDED_DEFAULT_ADDRESS);
}

static int read_input(const char *path, struct ofe_buf *b)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
        return 2;
    }
    char chunk[65536];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (b->len + n > MAX_INPUT) {
            fprintf(stderr, PROG ": %s: more than %d bytes of input\n", path, MAX_INPUT);
            rc = 2;
            break;
        }
        if (ofe_buf_append(b, chunk, n) != 0) {
            fprintf(stderr, PROG ": out of memory\n");
            rc = 1;
            break;
        }
    }
    if (!rc && ferror(f)) {
        fprintf(stderr, PROG ": %s: read error\n", path);
        rc = 1;
    }
    if (f != stdin)
        fclose(f);
    return rc;
}

struct pubwait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    size_t done;
    int *err;
    char **msg;
};

struct pubslot {
    struct pubwait *w;
    size_t i;
};

static void on_done(void *opaque, int err, const char *msg)
{
    struct pubslot *s = opaque;
    struct pubwait *w = s->w;
    pthread_mutex_lock(&w->lock);
    w->err[s->i] = err;
    if (err)
        w->msg[s->i] = strdup(msg ? msg : ofe_strerror(err));
    w->done++;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static void bad_event(void *arg, size_t index, int err, const char *msg)
{
    fprintf(stderr, PROG ": %s: event [%zu]: %s\n", (const char *)arg, index, msg);
}

int cmd_publish(int argc, char **argv)
{
    const char *file = NULL, *name = NULL, *ns = NULL, *topic = NULL, *input = NULL;
    uint32_t timeout_ms = 10000;
    bool verbose = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **dst = !strcmp(a, "--bus")         ? &file
                           : !strcmp(a, "--bus-name")  ? &name
                           : !strcmp(a, "--namespace") ? &ns
                           : !strcmp(a, "--topic")     ? &topic
                                                       : NULL;
        if (dst || !strcmp(a, "--timeout")) {
            if (i + 1 >= argc) {
                fprintf(stderr, PROG ": %s needs a value\n", a);
                return 2;
            }
            if (dst) {
                *dst = argv[++i];
            } else if (cli_parse_ms(argv[++i], &timeout_ms) != 0 || !timeout_ms) {
                fprintf(stderr, PROG ": --timeout: \"%s\" is not a duration (e.g. 1500, 2s)\n",
                        argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            verbose = true;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, PROG ": unknown option '%s' (see --help)\n", a);
            return 2;
        } else if (input) {
            fprintf(stderr, PROG ": more than one input file ('%s', '%s')\n", input, a);
            return 2;
        } else {
            input = a;
        }
    }
    if (!topic || !*topic) {
        fprintf(stderr, PROG ": --topic is required (see --help)\n");
        return 2;
    }
    if (!input)
        input = "-";
    if (!verbose)
        ofe_log_set_level(OFE_LOG_ERROR);

    /* Read and check every event before touching the bus. */
    struct ofe_buf in = OFE_BUF_INIT;
    int rc = read_input(input, &in);
    if (rc) {
        ofe_buf_fini(&in);
        return rc;
    }
    struct ofe_ce_list evs = {0};
    char err[1024];
    size_t k = 0;
    while (k < in.len &&
           (in.data[k] == ' ' || in.data[k] == '\t' || in.data[k] == '\r' || in.data[k] == '\n'))
        k++;
    if (k < in.len && in.data[k] == '[') {
        int drc = ofe_ce_json_decode_batch_each(in.data, in.len, &evs, bad_event, (void *)input,
                                                err, sizeof(err));
        if (drc == OFE_EPARSE)
            fprintf(stderr, PROG ": %s: %s\n", input, err);
        if (drc) {
            ofe_ce_list_fini(&evs);
            ofe_buf_fini(&in);
            return drc == OFE_ENOMEM ? 1 : 2;
        }
        if (!evs.n) {
            fprintf(stderr, PROG ": %s: the batch is empty\n", input);
            ofe_buf_fini(&in);
            return 2;
        }
    } else {
        struct ofe_ce *ev;
        int drc = ofe_ce_json_decode(in.data ? in.data : "", in.len, &ev, err, sizeof(err));
        if (drc) {
            fprintf(stderr, PROG ": %s: %s\n", input, err);
            ofe_buf_fini(&in);
            return drc == OFE_ENOMEM ? 1 : 2;
        }
        ofe_ce_list_push(&evs, ev);
    }
    ofe_buf_fini(&in);

    struct cli_bus cb;
    rc = cli_bus_open(PROG, file, name, ns, timeout_ms, &cb);
    if (rc) {
        cli_bus_close(&cb, 0);
        ofe_ce_list_fini(&evs);
        return rc;
    }
    if (verbose)
        fprintf(stderr, PROG ": %s (%s)\n", cb.desc, ofe_bus_describe(cb.bus));
    if ((rc = cli_bus_wait_ready(PROG, &cb, timeout_ms)) != 0) {
        cli_bus_close(&cb, 0);
        ofe_ce_list_fini(&evs);
        return rc;
    }

    struct pubwait w = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    w.err = calloc(evs.n, sizeof(int));
    w.msg = calloc(evs.n, sizeof(char *));
    struct pubslot *slots = calloc(evs.n, sizeof(*slots));
    size_t accepted = 0;
    int refused = 0;
    for (size_t i = 0; i < evs.n && w.err && w.msg && slots; i++) {
        slots[i] = (struct pubslot){&w, i};
        int prc;
        while ((prc = ofe_bus_publish(cb.bus, topic, evs.v[i], on_done, &slots[i], err,
                                      sizeof(err))) == OFE_EAGAIN) {
            struct timespec d = {0, 1000000L};
            nanosleep(&d, NULL);
        }
        if (prc) {
            fprintf(stderr, PROG ": event %s: %s\n", ofe_ce_get_str(evs.v[i], "id"), err);
            refused = prc == OFE_EINVAL ? 2 : 1;
            break;
        }
        accepted++;
    }
    pthread_mutex_lock(&w.lock);
    while (w.done < accepted)
        pthread_cond_wait(&w.cond, &w.lock);
    pthread_mutex_unlock(&w.lock);
    size_t failed = 0;
    for (size_t i = 0; i < accepted; i++) {
        if (w.err[i]) {
            failed++;
            fprintf(stderr, PROG ": event %s not published: %s\n", ofe_ce_get_str(evs.v[i], "id"),
                    w.msg[i]);
        } else {
            printf("%s\n", ofe_ce_get_str(evs.v[i], "id"));
        }
        free(w.msg[i]);
    }
    fflush(stdout);
    cli_bus_close(&cb, timeout_ms);
    free(w.err);
    free(w.msg);
    free(slots);
    ofe_ce_list_fini(&evs);
    if (refused)
        return refused;
    return failed ? 1 : 0;
}
