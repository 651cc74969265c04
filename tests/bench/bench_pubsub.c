/* Pub/sub benchmark: for each backend, publishes and consumes (with acks)
 * N binary-mode events through the abstraction and, in the same run, the
 * same workload written directly against the client library; prints
 * events/s of both and the ratio (goal: >= 0.8). A program, not a test: it
 * never fails on timing.
 *
 * Usage: bench_pubsub [-n EVENTS] [-s SIZE] [-w WINDOW] [-r ROUNDS] [-v] [-A|-D] [BACKEND...]
 * Each round runs both on fresh topics, direct first in even rounds and
 * the abstraction first in odd ones; the best round of each is reported
 * (less noise on a shared machine); -v prints every round on stderr.
 * -A or -D runs only the abstraction or only the direct client (for a
 * profiler; the other side's figures are then meaningless). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench_pubsub.h"
#include "ofe/err.h"
#include "ofe/log.h"

extern const struct bench_backend bench_redis;
extern const struct bench_backend bench_embedded;
extern const struct bench_backend bench_jetstream;
extern const struct bench_backend bench_mqtt;
extern const struct bench_backend bench_kafka;

/* One line per backend. */
static const struct bench_backend *const BACKENDS[] = {
    &bench_redis,
    &bench_embedded,
    &bench_jetstream,
    &bench_mqtt,
    &bench_kafka,
};
#define NBACKENDS (sizeof(BACKENDS) / sizeof(BACKENDS[0]))

/* CPU seconds this process used so far (all threads; the server is
 * another process). */
static double cpu_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct ofe_ce *bench_event(size_t i, size_t size)
{
    struct ofe_ce *ev = ofe_ce_new();
    char id[64], err[200];
    snprintf(id, sizeof(id), "bench-%zu", i);
    unsigned char *d = malloc(size ? size : 1);
    for (size_t k = 0; k < size; k++)
        d[k] = (unsigned char)(i * 31 + k * 7);
    if (ofe_ce_set_str(ev, "id", 0, id, err, sizeof(err)) ||
        ofe_ce_set_str(ev, "specversion", 0, "1.0", err, sizeof(err)) ||
        ofe_ce_set_str(ev, "source", 0, "/bench/pubsub", err, sizeof(err)) ||
        ofe_ce_set_str(ev, "type", 0, "io.ofevents.bench", err, sizeof(err)) ||
        ofe_ce_set_str(ev, "datacontenttype", 0, "application/octet-stream", err, sizeof(err)) ||
        ofe_ce_set_data(ev, d, size)) {
        fprintf(stderr, "bench_event: %s\n", err);
        abort();
    }
    free(d);
    return ev;
}

/* ---- through the abstraction ------------------------------------------- */

struct arun {
    atomic_size_t confirmed, failed, consumed;
    double t_last_confirm, t_last_ack;
    size_t n;
    pthread_mutex_t lock;
    char err[512];
};

static void a_done(void *opaque, int err, const char *msg)
{
    struct arun *a = opaque;
    if (err) {
        if (atomic_fetch_add(&a->failed, 1) == 0) {
            pthread_mutex_lock(&a->lock);
            snprintf(a->err, sizeof(a->err), "publish failed: %s", msg);
            pthread_mutex_unlock(&a->lock);
        }
        return;
    }
    if (atomic_fetch_add(&a->confirmed, 1) + 1 == a->n)
        a->t_last_confirm = bench_now();
}

static void a_msg(struct ofe_msg *m, void *opaque)
{
    struct arun *a = opaque;
    ofe_msg_ack(m);
    if (atomic_fetch_add(&a->consumed, 1) + 1 == a->n)
        a->t_last_ack = bench_now();
}

struct apub {
    struct ofe_bus *bus;
    const char *topic;
    const struct bench_params *p;
    struct ofe_ce **pool;
    size_t npool;
    struct arun *a;
    int rc;
    char err[512];
};

static void *a_publisher(void *arg)
{
    struct apub *ap = arg;
    pthread_setname_np(pthread_self(), "abs-publisher");
    for (size_t i = 0; i < ap->p->n; i++) {
        while ((ap->rc = ofe_bus_publish(ap->bus, ap->topic, ap->pool[i % ap->npool], a_done, ap->a,
                                         ap->err, sizeof(ap->err))) == OFE_EAGAIN)
            usleep(200);
        if (ap->rc)
            break;
    }
    return NULL;
}

static int run_abstraction(const struct bench_backend *be, void *st, const char *topic,
                           const struct bench_params *p, struct ofe_ce **pool, size_t npool,
                           struct bench_result *r)
{
    struct arun a = {.n = p->n, .lock = PTHREAD_MUTEX_INITIALIZER};
    struct ofe_bus_opts bo = {.component = "bench", .max_pending = p->window};
    struct ofe_bus *pb = NULL, *sb = NULL;
    struct ofe_sub *sub = NULL;
    int rc = -1;
    /* threads a client library starts take the name of the thread that
     * opens the bus: these names tell them apart in top -H and perf */
    pthread_setname_np(pthread_self(), "abs-pub-bus");
    int orc = be->open(st, &bo, &pb, r->err, sizeof(r->err));
    pthread_setname_np(pthread_self(), "abs-sub-bus");
    if (!orc)
        orc = be->open(st, &bo, &sb, r->err, sizeof(r->err));
    pthread_setname_np(pthread_self(), "bench_pubsub");
    if (orc)
        goto out;
    char group[160];
    snprintf(group, sizeof(group), "%s-group", topic);
    const char *topics[] = {topic};
    struct ofe_sub_opts so = {.group = group,
                              .topics = topics,
                              .ntopics = 1,
                              .max_inflight = p->window,
                              .start = OFE_START_OLDEST,
                              .on_msg = a_msg,
                              .opaque = &a};
    if (ofe_bus_subscribe(sb, &so, &sub, r->err, sizeof(r->err)))
        goto out;
    char why[512];
    double until = bench_now() + 15;
    while (!(ofe_bus_ready(pb, why, sizeof(why)) && ofe_bus_ready(sb, why, sizeof(why)))) {
        if (bench_now() > until) {
            snprintf(r->err, sizeof(r->err), "not ready: %.400s", why);
            goto out;
        }
        usleep(5000);
    }
    double t0 = bench_now();
    /* publish from a thread of its own, as the direct side does (the main
     * thread's malloc arena behaves differently from a thread's) */
    struct apub ap = {.bus = pb, .topic = topic, .p = p, .pool = pool, .npool = npool, .a = &a};
    pthread_t tp;
    if (pthread_create(&tp, NULL, a_publisher, &ap) != 0) {
        snprintf(r->err, sizeof(r->err), "cannot start a thread");
        goto out;
    }
    pthread_join(tp, NULL);
    if (ap.rc) {
        snprintf(r->err, sizeof(r->err), "%s", ap.err);
        goto out;
    }
    until = bench_now() + 120;
    while ((atomic_load(&a.consumed) < p->n ||
            atomic_load(&a.confirmed) + atomic_load(&a.failed) < p->n) &&
           bench_now() < until)
        usleep(1000);
    if (atomic_load(&a.failed)) {
        snprintf(r->err, sizeof(r->err), "%s", a.err);
        goto out;
    }
    r->consumed = atomic_load(&a.consumed);
    if (r->consumed < p->n) {
        snprintf(r->err, sizeof(r->err), "consumed %zu of %zu in 120 s", r->consumed, p->n);
        goto out;
    }
    r->pub_secs = a.t_last_confirm - t0;
    r->secs = a.t_last_ack - t0;
    rc = 0;
out:
    ofe_sub_close(sub);
    ofe_bus_close(sb, 5000);
    ofe_bus_close(pb, 5000);
    return rc;
}

/* ---- driver ------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_pubsub [-n EVENTS] [-s SIZE] [-w WINDOW] [-r ROUNDS] [-v] [-A|-D] "
            "[BACKEND...]\nbackends:");
    for (size_t i = 0; i < NBACKENDS; i++)
        fprintf(stderr, " %s", BACKENDS[i]->name);
    fprintf(stderr, "\n");
}

int main(int argc, char **argv)
{
    struct bench_params p = {.n = 50000, .size = 512, .window = 1000};
    int rounds = 5, opt;
    bool verbose = false;
    int only = 0; /* -A: the abstraction only, -D: the direct client only (profiling) */
    while ((opt = getopt(argc, argv, "n:s:w:r:vADh")) != -1) {
        switch (opt) {
        case 'A':
            only = 'A';
            break;
        case 'D':
            only = 'D';
            break;
        case 'v':
            verbose = true;
            break;
        case 'n':
            p.n = strtoul(optarg, NULL, 10);
            break;
        case 's':
            p.size = strtoul(optarg, NULL, 10);
            break;
        case 'w':
            p.window = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'r':
            rounds = atoi(optarg);
            break;
        default:
            usage();
            return opt == 'h' ? 0 : 2;
        }
    }
    if (!p.n || !p.window || rounds < 1) {
        usage();
        return 2;
    }
    ofe_log_set_level(OFE_LOG_ERROR);
    size_t npool = p.n < 1000 ? p.n : 1000;
    struct ofe_ce **pool = calloc(npool, sizeof(*pool));
    for (size_t i = 0; i < npool; i++)
        pool[i] = bench_event(i, p.size);
    printf("pub/sub: %zu events of %zu data bytes, binary mode, one publisher and one "
           "consumer (acks), window %u, best of %d\n",
           p.n, p.size, p.window, rounds);
    printf("%-10s %14s %14s %7s %14s %14s %13s %13s\n", "backend", "abstraction/s", "direct/s",
           "ratio", "abs publish/s", "dir publish/s", "abs cpu us/ev", "dir cpu us/ev");
    for (size_t b = 0; b < NBACKENDS; b++) {
        const struct bench_backend *be = BACKENDS[b];
        bool wanted = optind >= argc;
        for (int a = optind; a < argc; a++)
            wanted |= !strcmp(argv[a], be->name);
        if (!wanted)
            continue;
        char why[512];
        void *st = be->start(why, sizeof(why));
        if (!st) {
            printf("%-10s skipped: %s\n", be->name, why);
            continue;
        }
        double best_a = 0, best_d = 0, best_ap = 0, best_dp = 0, cpu_a = 1e9, cpu_d = 1e9;
        char err[1200] = "";
        for (int r = 0; r < rounds && !err[0]; r++) {
            char dtopic[128], atopic[128];
            struct bench_result rd = {0}, ra = {0};
            snprintf(dtopic, sizeof(dtopic), "bench-direct-%d-%d", (int)getpid(), r);
            snprintf(atopic, sizeof(atopic), "bench-abs-%d-%d", (int)getpid(), r);
            /* odd rounds run the abstraction first: whatever the server does
             * as its data grows falls on both sides alike */
            double cd = 0, ca = 0;
            for (int side = 0; side < 2 && !err[0]; side++) {
                bool direct = (side == 0) == (r % 2 == 0);
                if ((only == 'A' && direct) || (only == 'D' && !direct)) {
                    /* a stand-in so the figures print: ratio meaningless */
                    (direct ? &rd : &ra)->secs = (direct ? &rd : &ra)->pub_secs = 1;
                    continue;
                }
                double c0 = cpu_now();
                if (direct && be->direct(st, dtopic, &p, &rd) != 0)
                    snprintf(err, sizeof(err), "direct: %s", rd.err);
                else if (!direct && run_abstraction(be, st, atopic, &p, pool, npool, &ra) != 0)
                    snprintf(err, sizeof(err), "abstraction: %s", ra.err);
                *(direct ? &cd : &ca) = cpu_now() - c0;
            }
            if (err[0])
                break;
            if (cd * 1e6 / (double)p.n < cpu_d)
                cpu_d = cd * 1e6 / (double)p.n;
            if (ca * 1e6 / (double)p.n < cpu_a)
                cpu_a = ca * 1e6 / (double)p.n;
            double a = (double)p.n / ra.secs, d = (double)p.n / rd.secs;
            if (verbose)
                fprintf(stderr,
                        "%s round %d: abstraction %.0f/s (publish %.0f/s), direct %.0f/s "
                        "(publish %.0f/s)\n",
                        be->name, r + 1, a, (double)p.n / ra.pub_secs, d,
                        (double)p.n / rd.pub_secs);
            if (a > best_a) {
                best_a = a;
                best_ap = (double)p.n / ra.pub_secs;
            }
            if (d > best_d) {
                best_d = d;
                best_dp = (double)p.n / rd.pub_secs;
            }
        }
        if (err[0])
            printf("%-10s failed: %s\n", be->name, err);
        else
            printf("%-10s %14.0f %14.0f %7.2f %14.0f %14.0f %13.1f %13.1f\n", be->name, best_a,
                   best_d, best_a / best_d, best_ap, best_dp, cpu_a, cpu_d);
        be->stop(st);
    }
    for (size_t i = 0; i < npool; i++)
        ofe_ce_unref(pool[i]);
    free(pool);
    return 0;
}
