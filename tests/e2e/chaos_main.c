/* The chaos suite (docs/chaos.md). For one bus backend:
 *
 *   this program --POST--> ofe-eventsource (webhook) --> bus --> ofe-trigger --> ofe sink
 *
 * runs at a steady rate while ofe-eventsource, ofe-trigger and the broker
 * are killed with SIGKILL at random moments (seeded) and restarted. At the
 * end every event the webhook acknowledged (202) must be at the sink
 * (duplicates counted, none lost), and the daemons' counters, scraped
 * before each kill and at the end and summed over their lives, must agree
 * with what the webhook caller and the sink saw, within what the kills
 * explain.
 *
 *   test_chaos BACKEND [--seconds N] [--seed S] [--rate EVENTS_PER_S]
 *
 * BACKEND: embedded | redis | jetstream | mqtt | kafka. Environment:
 * OFE_CHAOS_SECONDS (default 60; 30 under OFE_TEST_SANITIZED),
 * OFE_CHAOS_SEED, OFE_CHAOS_RATE (default 200). OFE_KEEP_TEST_DIRS=1 keeps
 * the logs. Exit status 0 passed, 1 failed, 77 skipped (server missing). */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "chaos.h"
#include "servers.h"
#include "testutil.h"

#define CONCURRENCY  16 /* the subscriber's concurrency */
#define ES_INFLIGHT  64 /* ofe-eventsource --max-inflight */
#define FEED_THREADS 4
#define MAX_INC      1024
#define READY_MS     60000

enum { T_ES = 1, T_TRIG = 2, T_BROKER = 4 };

struct backend {
    const char *name;
    enum tu_server_kind kind;
    const char *bin;     /* a server binary that must be in PATH, or NULL */
    bool broker_restart; /* the broker can be killed and restarted */
    int quiet_ms;        /* feed paused this long before a broker kill (0: none) */
};

static const struct backend BACKENDS[] = {
    {"embedded", TU_EVENTBUS, NULL, true, 0},
    {"redis", TU_REDIS, "redis-server", true, 0},
    {"jetstream", TU_NATS, "nats-server", true, 0},
    /* mosquitto confirms a publish before it saves it (autosave_interval
     * 1 s): a kill -9 in that window loses confirmed messages by design
     * (docs/backends.md "Broker restarts"), so its kills come after a
     * quiet period in which it saved everything. */
    {"mqtt", TU_MOSQUITTO, "mosquitto", true, 2500},
    /* The Kafka mock keeps nothing across a restart. */
    {"kafka", TU_KAFKA, NULL, false, 0},
};

static const struct backend *B;
static char *g_dir;
static struct tu_server *g_srv;
static struct ch_sink g_sink;
static struct ch_daemon g_es, g_trig;
static struct ch_feed *g_feed;
static int g_failed;
static uint64_t g_rng;

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                       \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fprintf(stderr, "\n");                                                                     \
        g_failed = 1;                                                                              \
        return -1;                                                                                 \
    } while (0)
#define CHECK(c, ...)                                                                              \
    do {                                                                                           \
        if (!(c))                                                                                  \
            FAIL(__VA_ARGS__);                                                                     \
    } while (0)
/* A check that does not stop the run (the others still tell something). */
#define EXPECT(c, ...)                                                                             \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            g_failed = 1;                                                                          \
        }                                                                                          \
    } while (0)

/* splitmix64: the whole schedule follows from the seed. */
static uint64_t rnd(void)
{
    uint64_t z = (g_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int rnd_range(int lo, int hi)
{
    return lo + (int)(rnd() % (uint64_t)(hi - lo + 1));
}

static void write_file(const char *path, const char *fmt, ...)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        exit(1);
    }
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fclose(f);
}

/* ---- accounting records ----------------------------------------------------- */

/* One life of ofe-trigger. Sink counts: at its start (trigger down), before
 * the scrape that preceded its kill, after the kill once the sink settled. */
struct trig_life {
    double delivered, retried, dropped, deadlettered, invalid;
    long start_events, start_failed;
    long pre_events, pre_failed;
    long end_events, end_failed;
    bool killed, scraped;
};

/* One life of ofe-eventsource. Webhook caller's acked count before the
 * scrape and after the kill (every answer of the dead process counted). */
struct es_life {
    double received, delivered, failed, rejected, dropped, invalid;
    long pre_acked, post_acked;
    bool killed, scraped;
};

/* One life of ofe-eventbus: its appends, and the events the caller started
 * between the scrape and the kill. */
struct eb_life {
    double appends;
    long pre_attempted, post_attempted;
    bool killed, scraped;
};

static struct trig_life T[MAX_INC];
static struct es_life E[MAX_INC];
static struct eb_life EB[MAX_INC];
static int nT = 1, nE = 1, nEB = 1;
static int kills_es, kills_trig, kills_broker;

static int scrape_trigger(struct trig_life *l)
{
    char *m = ch_scrape(g_trig.http_port);
    CHECK(m, "ofe-trigger (port %d) did not answer /metrics", g_trig.http_port);
    l->delivered = ch_metric(m, "ofe_trigger_delivered_total", NULL);
    l->retried = ch_metric(m, "ofe_trigger_retried_total", NULL);
    l->dropped = ch_metric(m, "ofe_trigger_dropped_total", NULL);
    l->deadlettered = ch_metric(m, "ofe_trigger_deadlettered_total", NULL);
    l->invalid = ch_metric(m, "ofe_trigger_invalid_total", NULL);
    free(m);
    CHECK(l->delivered >= 0 && l->retried >= 0, "ofe-trigger /metrics lacks the delivery counters");
    if (l->dropped < 0)
        l->dropped = 0;
    if (l->deadlettered < 0)
        l->deadlettered = 0;
    if (l->invalid < 0)
        l->invalid = 0;
    l->scraped = true;
    return 0;
}

static int scrape_es(struct es_life *l)
{
    char *m = ch_scrape(g_es.http_port);
    CHECK(m, "ofe-eventsource (port %d) did not answer /metrics", g_es.http_port);
    l->received = ch_metric(m, "ofe_eventsource_events_received_total", NULL);
    l->delivered = ch_metric(m, "ofe_eventsource_events_delivered_total", "destination=\"bus\"");
    l->failed = ch_metric(m, "ofe_eventsource_events_failed_total", "destination=\"bus\"");
    l->rejected = ch_metric(m, "ofe_eventsource_events_rejected_total", NULL);
    l->dropped = ch_metric(m, "ofe_eventsource_events_dropped_total", NULL);
    l->invalid = ch_metric(m, "ofe_eventsource_events_invalid_total", NULL);
    free(m);
    CHECK(l->received >= 0 && l->delivered >= 0,
          "ofe-eventsource /metrics lacks the received/delivered counters");
    if (l->failed < 0)
        l->failed = 0;
    if (l->rejected < 0)
        l->rejected = 0;
    if (l->dropped < 0)
        l->dropped = 0;
    if (l->invalid < 0)
        l->invalid = 0;
    l->scraped = true;
    return 0;
}

static int scrape_eventbus(struct eb_life *l)
{
    char *m = ch_scrape(g_srv->http_port);
    CHECK(m, "ofe-eventbus (port %d) did not answer /metrics", g_srv->http_port);
    l->appends = ch_metric(m, "ofe_eventbus_appends_total", NULL);
    free(m);
    CHECK(l->appends >= 0, "ofe-eventbus /metrics lacks ofe_eventbus_appends_total");
    l->scraped = true;
    return 0;
}

/* ---- set-up -------------------------------------------------------------------- */

static char g_bus_yaml[4200], g_es_yaml[4200], g_trig_yaml[4200];
static int g_hook_port;

static void write_configs(void)
{
    snprintf(g_bus_yaml, sizeof(g_bus_yaml), "%s/bus.yaml", g_dir);
    const char *h = "apiVersion: events.openfunction.io/v1alpha1\nkind: EventBus\n"
                    "metadata: {name: default}\nspec:\n";
    switch (B->kind) {
    case TU_EVENTBUS:
        write_file(g_bus_yaml, "%s  embedded:\n    address: %s\n", h, g_srv->addr);
        break;
    case TU_REDIS:
        write_file(g_bus_yaml,
                   "%s  redis:\n    redisHost: %s\n    processingTimeout: 2s\n"
                   "    redeliverInterval: 1s\n",
                   h, g_srv->addr);
        break;
    case TU_NATS:
        write_file(g_bus_yaml,
                   "%s  jetstream:\n    natsURL: %s\n    ackWait: 2s\n    maxAckPending: 20000\n",
                   h, g_srv->url);
        break;
    case TU_KAFKA:
        write_file(g_bus_yaml,
                   "%s  kafka:\n    brokers: %s\n    initialOffset: oldest\n"
                   "    rdkafka.session.timeout.ms: 4000\n    rdkafka.heartbeat.interval.ms: 1000\n"
                   "    rdkafka.fetch.wait.max.ms: 50\n",
                   h, g_srv->url);
        break;
    case TU_MOSQUITTO:
        write_file(g_bus_yaml, "%s  mqtt:\n    url: %s\n    qos: 1\n    sessionExpiry: 1h\n", h,
                   g_srv->url);
        break;
    }
    g_hook_port = tu_free_port();
    snprintf(g_es_yaml, sizeof(g_es_yaml), "%s/es.yaml", g_dir);
    write_file(g_es_yaml,
               "apiVersion: events.openfunction.io/v1alpha1\nkind: EventSource\n"
               "metadata: {name: chaos}\nspec:\n  eventBus: default\n"
               "  webhook:\n    hook: {address: 127.0.0.1, port: %d, endpoint: /hook}\n",
               g_hook_port);
    snprintf(g_trig_yaml, sizeof(g_trig_yaml), "%s/trigger.yaml", g_dir);
    write_file(g_trig_yaml,
               "apiVersion: events.openfunction.io/v1alpha1\nkind: Trigger\n"
               "metadata: {name: chaos}\nspec:\n  eventBus: default\n"
               "  inputs:\n    hook: {eventSource: chaos, event: hook}\n"
               "  subscribers:\n"
               "  - name: fn\n    condition: hook\n    concurrency: %d\n"
               "    sink: {uri: '%s/fn'}\n"
               "    delivery: {retry: 10000, backoffPolicy: exponential, backoffDelay: PT0.01S, "
               "backoffCap: 500ms}\n",
               CONCURRENCY, g_sink.url);
}

static int start_daemons(void)
{
    char log[4200], port[16], inflight[16];
    char *bin = tu_build_path("trigger/ofe-trigger");
    int tport = tu_free_port();
    snprintf(port, sizeof(port), "%d", tport);
    snprintf(log, sizeof(log), "%s/trigger.log", g_dir);
    const char *tav[] = {bin,         "--config",        g_bus_yaml, "--config",
                         g_trig_yaml, "--http-port",     port,       "--consumer",
                         "chaos-1",   "--drain-timeout", "20s",      NULL};
    struct ch_sink_stats st;
    CHECK(ch_sink_stats(&g_sink, &st) == 0, "sink /stats");
    T[0].start_events = st.events;
    T[0].start_failed = st.failed;
    CHECK(ch_daemon_start(&g_trig, "ofe-trigger", tav, log, tport) == 0, "cannot start %s", bin);
    free(bin);
    CHECK(ch_daemon_ready(&g_trig, READY_MS) == 0, "ofe-trigger is not ready");

    bin = tu_build_path("eventsource/ofe-eventsource");
    int eport = tu_free_port();
    snprintf(port, sizeof(port), "%d", eport);
    snprintf(inflight, sizeof(inflight), "%d", ES_INFLIGHT);
    snprintf(log, sizeof(log), "%s/eventsource.log", g_dir);
    const char *eav[] = {
        bin,           "--config",   g_bus_yaml,       "--config", g_es_yaml,
        "--http-port", port,         "--max-inflight", inflight,   "--drain-timeout",
        "20s",         "--instance", "chaos-es",       NULL};
    CHECK(ch_daemon_start(&g_es, "ofe-eventsource", eav, log, eport) == 0, "cannot start %s", bin);
    free(bin);
    CHECK(ch_daemon_ready(&g_es, READY_MS) == 0, "ofe-eventsource is not ready");
    return 0;
}

/* A daemon that exited without being killed is a failure: say how. */
static int check_alive(struct ch_daemon *d)
{
    if (ch_daemon_alive(d))
        return 0;
    int st = d->last_status;
    ch_show_log(d->p->log, 8000);
    FAIL("%s exited by itself (%s %d)", d->name, WIFSIGNALED(st) ? "signal" : "exit status",
         WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
}

static int check_all_alive(void)
{
    CHECK(check_alive(&g_es) == 0 && check_alive(&g_trig) == 0, "a daemon died");
    CHECK(tu_proc_alive(g_srv->proc), "the broker exited by itself (see %s)", g_srv->proc->log);
    CHECK(tu_proc_alive(g_sink.p), "ofe sink exited (see %s)", g_sink.log);
    return 0;
}

/* ---- one round of chaos ------------------------------------------------------------ */

static const char *target_names(int t, char *buf, size_t size)
{
    snprintf(buf, size, "%s%s%s%s%s", t & T_ES ? "ofe-eventsource" : "",
             (t & T_ES) && (t & (T_TRIG | T_BROKER)) ? " + " : "", t & T_TRIG ? "ofe-trigger" : "",
             (t & T_TRIG) && (t & T_BROKER) ? " + " : "", t & T_BROKER ? "broker" : "");
    return buf;
}

static int choose_targets(void)
{
    int r = rnd_range(0, 99);
    if (!B->broker_restart)
        return r < 45 ? T_ES : r < 90 ? T_TRIG : T_ES | T_TRIG;
    if (r < 30)
        return T_ES;
    if (r < 60)
        return T_TRIG;
    if (r < 85)
        return T_BROKER;
    if (r < 92)
        return T_BROKER | T_ES | T_TRIG;
    return r < 96 ? T_ES | T_TRIG : T_BROKER | T_TRIG;
}

static int chaos_round(int targets, int down_ms)
{
    char names[128];
    bool paused = false;
    if ((targets & T_BROKER) && B->quiet_ms) {
        ch_feed_pause(g_feed, true, 50000);
        paused = true;
        ch_msleep(B->quiet_ms);
    }
    struct ch_feed_counts f1;
    struct ch_sink_stats s1;
    ch_feed_counts(g_feed, &f1);
    CHECK(ch_sink_stats(&g_sink, &s1) == 0, "sink /stats");
    /* Scrape everything that is about to die, then kill it at once. */
    if (targets & T_TRIG) {
        T[nT - 1].pre_events = s1.events;
        T[nT - 1].pre_failed = s1.failed;
        CHECK(scrape_trigger(&T[nT - 1]) == 0, "scrape");
    }
    if (targets & T_ES) {
        E[nE - 1].pre_acked = f1.acked;
        CHECK(scrape_es(&E[nE - 1]) == 0, "scrape");
    }
    bool eb = (targets & T_BROKER) && B->kind == TU_EVENTBUS;
    if (eb) {
        EB[nEB - 1].pre_attempted = f1.attempted;
        CHECK(scrape_eventbus(&EB[nEB - 1]) == 0, "scrape");
    }
    pid_t pes = g_es.p->pid, ptr = g_trig.p->pid, pbr = g_srv->proc->pid;
    if (targets & T_ES)
        tu_proc_stop(g_es.p, SIGKILL, 5000);
    if (targets & T_TRIG)
        tu_proc_stop(g_trig.p, SIGKILL, 5000);
    if (targets & T_BROKER)
        tu_server_kill(g_srv);
    uint64_t t_kill = ch_now_ms();
    ch_log("kill -9 %s (pid%s%.0d%s%.0d%s%.0d)", target_names(targets, names, sizeof(names)),
           targets & T_ES ? " " : "", targets & T_ES ? pes : 0, targets & T_TRIG ? " " : "",
           targets & T_TRIG ? ptr : 0, targets & T_BROKER ? " " : "", targets & T_BROKER ? pbr : 0);
    if (targets & T_ES) {
        /* Every answer the dead process gave is counted once the requests
         * in progress ended (they fail fast now). */
        ch_feed_quiesce(g_feed, 50000);
        struct ch_feed_counts f2;
        ch_feed_counts(g_feed, &f2);
        E[nE - 1].post_acked = f2.acked;
        E[nE - 1].killed = true;
        kills_es++;
    }
    if (targets & T_TRIG) {
        struct ch_sink_stats s2;
        CHECK(ch_sink_settle(&g_sink, &s2, 3000) == 0, "sink /stats");
        T[nT - 1].end_events = s2.events;
        T[nT - 1].end_failed = s2.failed;
        T[nT - 1].killed = true;
        kills_trig++;
    }
    if (eb) {
        struct ch_feed_counts f2;
        ch_feed_counts(g_feed, &f2);
        EB[nEB - 1].post_attempted = f2.attempted;
        EB[nEB - 1].killed = true;
    }
    if (targets & T_BROKER)
        kills_broker++;
    uint64_t since = ch_now_ms() - t_kill;
    if ((int)since < down_ms)
        ch_msleep(down_ms - (int)since);

    /* Back up: the broker first, then the daemons. */
    if (targets & T_BROKER) {
        CHECK(tu_server_restart(g_srv) == 0, "the broker did not restart (see %s)",
              g_srv->proc->log);
        if (eb) {
            CHECK(nEB < MAX_INC, "too many restarts");
            nEB++;
        }
    }
    if (targets & T_ES) {
        CHECK(nE < MAX_INC, "too many restarts");
        nE++;
        CHECK(tu_proc_restart(g_es.p) == 0, "ofe-eventsource did not start again");
        g_es.restarts++;
    }
    if (targets & T_TRIG) {
        CHECK(nT < MAX_INC, "too many restarts");
        struct ch_sink_stats s;
        CHECK(ch_sink_stats(&g_sink, &s) == 0, "sink /stats");
        T[nT].start_events = s.events;
        T[nT].start_failed = s.failed;
        nT++;
        CHECK(tu_proc_restart(g_trig.p) == 0, "ofe-trigger did not start again");
        g_trig.restarts++;
    }
    uint64_t t0 = ch_now_ms();
    CHECK(ch_daemon_ready(&g_trig, READY_MS) == 0, "ofe-trigger not ready after the restart");
    CHECK(ch_daemon_ready(&g_es, READY_MS) == 0, "ofe-eventsource not ready after the restart");
    ch_log("  down %d ms; restarted, every daemon ready %.2f s later", down_ms,
           (double)(ch_now_ms() - t0) / 1000.0);
    if (paused)
        ch_feed_pause(g_feed, false, 0);
    return 0;
}

/* ---- the end --------------------------------------------------------------------- */

static int wait_quiet(void)
{
    /* Redeliveries of what the killed trigger held may still come (after
     * ackWait, processingTimeout, a Kafka rebalance): wait until nothing
     * moves for 4 s (at most 60 s; the checks below hold either way). */
    struct ch_sink_stats prev, st;
    CHECK(ch_sink_stats(&g_sink, &prev) == 0, "sink /stats");
    uint64_t t0 = ch_now_ms(), still = ch_now_ms();
    while (ch_now_ms() - t0 < 60000) {
        ch_msleep(250);
        CHECK(ch_sink_stats(&g_sink, &st) == 0, "sink /stats");
        char *m = ch_scrape(g_trig.http_port);
        double held = ch_metric(m, "ofe_trigger_messages_inflight", NULL);
        free(m);
        if (st.requests != prev.requests || held > 0)
            still = ch_now_ms();
        prev = st;
        if (ch_now_ms() - still >= 4000)
            return 0;
    }
    ch_log("the pipeline did not come to rest within 60 s (redeliveries still arriving)");
    return 0;
}

static long xlen(void)
{
    if (B->kind != TU_EVENTBUS && B->kind != TU_REDIS)
        return -1;
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "redis-cli -p %d XLEN default-chaos-hook 2>/dev/null", g_srv->port);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    long n = -1;
    if (fscanf(p, "%ld", &n) != 1)
        n = -1;
    pclose(p);
    return n;
}

static int stop_daemon(struct ch_daemon *d)
{
    if (!ch_daemon_alive(d))
        return check_alive(d);
    int st = tu_proc_stop(d->p, SIGTERM, 40000);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        ch_show_log(d->p->log, 6000);
        FAIL("%s did not drain and exit 0 on SIGTERM (%s %d)", d->name,
             WIFSIGNALED(st) ? "signal" : "exit status",
             WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
    }
    return 0;
}

static int finish(long nmax, uint64_t seed)
{
    CHECK(check_all_alive() == 0, "a process died");
    ch_log("chaos over: the webhook caller sends no new events and retries what is not "
           "acknowledged yet");
    long unacked = ch_feed_finish(g_feed, 120000);
    struct ch_feed_counts fc;
    ch_feed_counts(g_feed, &fc);
    CHECK(unacked == 0,
          "%ld of %ld events were never acknowledged (202) by the webhook in 120 s after the "
          "chaos ended",
          unacked, fc.issued);
    ch_log("all %ld events acknowledged by the webhook (%ld requests: %ld events answered 202, "
           "%ld refused, %ld unanswered)",
           fc.issued, fc.requests, fc.acked, fc.refused, fc.unanswered);

    /* Every acknowledged event reaches the sink. */
    struct ch_sink_stats st;
    uint64_t t0 = ch_now_ms();
    do {
        CHECK(ch_sink_stats(&g_sink, &st) == 0, "sink /stats");
        if (st.unique >= fc.issued)
            break;
        ch_msleep(200);
    } while (ch_now_ms() - t0 < 120000);
    wait_quiet();
    CHECK(check_all_alive() == 0, "a process died");

    /* Final scrapes, with the sink read before and after. */
    struct ch_sink_stats sa, sb;
    CHECK(ch_sink_stats(&g_sink, &sa) == 0, "sink /stats");
    CHECK(scrape_trigger(&T[nT - 1]) == 0, "final scrape");
    CHECK(scrape_es(&E[nE - 1]) == 0, "final scrape");
    if (B->kind == TU_EVENTBUS)
        CHECK(scrape_eventbus(&EB[nEB - 1]) == 0, "final scrape");
    CHECK(ch_sink_stats(&g_sink, &sb) == 0, "sink /stats");
    long stream_len = xlen();

    struct ch_sink_view v;
    CHECK(ch_sink_view(&g_sink, nmax, &v) == 0, "cannot read the sink's output %s", g_sink.out);

    /* 1. None lost: every acknowledged event at the sink, intact. */
    long missing = 0, dups = 0, delivered_unacked = 0;
    for (long n = 0; n < nmax; n++) {
        int a = ch_feed_acked(g_feed, n);
        if (a == 1 && v.accepted[n] == 0 && missing++ < 20)
            fprintf(stderr,
                    "event chaos-%ld was acknowledged by the webhook and never reached "
                    "the sink\n",
                    n);
        if (a != 1 && v.accepted[n] > 0)
            delivered_unacked++;
        if (v.accepted[n] > 1)
            dups += v.accepted[n] - 1;
    }
    EXPECT(missing == 0, "%ld acknowledged event(s) lost", missing);
    EXPECT(delivered_unacked == 0, "%ld event(s) at the sink were never sent", delivered_unacked);
    EXPECT(v.foreign == 0 && v.bad_data == 0 && sb.invalid == 0,
           "the sink got %ld foreign event(s), %ld with wrong data, %ld invalid request(s)",
           v.foreign, v.bad_data, sb.invalid);
    EXPECT(v.accepted_total == sb.events && v.failed_total == sb.failed,
           "the sink's output (%ld accepted, %ld failed) disagrees with its /stats (%ld, %ld)",
           v.accepted_total, v.failed_total, sb.events, sb.failed);
    EXPECT(dups == sb.duplicates, "duplicates: %ld in the output, %ld in /stats", dups,
           sb.duplicates);

    /* 2. ofe-trigger's counters, life by life, against the sink. */
    printf("\nofe-trigger, %d li%s (sink accepted / delivered counter / window / failed / "
           "retried):\n",
           nT, nT == 1 ? "fe" : "ves");
    double sum_del = 0, sum_ret = 0, sum_drop = 0, sum_dl = 0, sum_inv = 0;
    long slack_total = 0;
    for (int i = 0; i < nT; i++) {
        struct trig_life *l = &T[i];
        bool last = i == nT - 1;
        if (last) {
            l->pre_events = sa.events;
            l->pre_failed = sa.failed;
            l->end_events = sb.events;
            l->end_failed = sb.failed;
        }
        long acc = l->end_events - l->start_events, fail = l->end_failed - l->start_failed;
        /* Accepted after the scrape, in flight at it, and stragglers of the
         * previous life (docs/chaos.md). */
        long window = l->end_events - l->pre_events;
        long slack = (last ? 0 : window) + CONCURRENCY + (i > 0 ? CONCURRENCY : 0);
        long fslack = (l->end_failed - l->pre_failed) + CONCURRENCY + (i > 0 ? CONCURRENCY : 0);
        long acc_upto_scrape = l->pre_events - l->start_events;
        printf("  life %d: %ld / %.0f / %ld / %ld / %.0f%s\n", i + 1, acc, l->delivered, window,
               fail, l->retried, l->killed ? " (killed)" : "");
        EXPECT(l->delivered <= (double)acc,
               "trigger life %d counted %.0f deliveries, the sink accepted %ld", i + 1,
               l->delivered, acc);
        if (last)
            EXPECT((double)acc_upto_scrape <= l->delivered + (double)slack,
                   "trigger life %d: the sink accepted %ld before the final scrape, the counter "
                   "says %.0f (slack %ld)",
                   i + 1, acc_upto_scrape, l->delivered, slack);
        else
            EXPECT((double)acc <= l->delivered + (double)slack,
                   "trigger life %d: the sink accepted %ld, the counter says %.0f, the kill "
                   "explains %ld",
                   i + 1, acc, l->delivered, slack);
        EXPECT((double)fail <= l->retried + (double)fslack,
               "trigger life %d: %ld failed attempts at the sink, %.0f retries counted (slack %ld)",
               i + 1, fail, l->retried, fslack);
        sum_del += l->delivered;
        sum_ret += l->retried;
        sum_drop += l->dropped;
        sum_dl += l->deadlettered;
        sum_inv += l->invalid;
        slack_total += slack;
    }
    EXPECT(sum_drop == 0 && sum_dl == 0 && sum_inv == 0,
           "ofe-trigger dropped %.0f, dead-lettered %.0f, saw %.0f invalid", sum_drop, sum_dl,
           sum_inv);

    /* 3. ofe-eventsource's counters against the webhook caller. */
    double es_recv = 0, es_del = 0, es_failed = 0, es_bad = 0;
    long es_window = 0;
    for (int i = 0; i < nE; i++) {
        es_recv += E[i].received;
        es_del += E[i].delivered;
        es_failed += E[i].failed;
        es_bad += E[i].rejected + E[i].dropped + E[i].invalid;
        if (E[i].killed)
            es_window += E[i].post_acked - E[i].pre_acked;
    }
    EXPECT((double)fc.acked <= es_del + (double)es_window,
           "the webhook acknowledged %ld events, ofe-eventsource counted %.0f delivered to the bus "
           "(+%ld answered between a scrape and a kill)",
           fc.acked, es_del, es_window);
    EXPECT(es_del <= es_recv && es_recv <= (double)fc.attempted,
           "ofe-eventsource: %.0f delivered, %.0f received, the caller sent %ld", es_del, es_recv,
           fc.attempted);
    /* Delivered without a 202: requests answered otherwise (a batch with a
     * failed event), and what a killed process had published and not
     * answered yet (its in-flight events, the requests being answered). */
    long es_extra = fc.refused + (long)kills_es * (ES_INFLIGHT + FEED_THREADS * 4);
    EXPECT(es_del <= (double)(fc.acked + es_extra),
           "ofe-eventsource counted %.0f delivered; the webhook acknowledged %ld (+%ld explained "
           "by refusals and kills)",
           es_del, fc.acked, es_extra);
    EXPECT(es_bad == 0, "ofe-eventsource rejected, dropped or found invalid %.0f event(s)", es_bad);

    /* 4. The stream on the broker. */
    double eb_appends = 0;
    long eb_lo = 0, eb_hi = 0;
    if (B->kind == TU_EVENTBUS) {
        for (int i = 0; i < nEB; i++) {
            eb_appends += EB[i].appends;
            if (EB[i].killed) {
                eb_lo += ES_INFLIGHT;
                eb_hi +=
                    ES_INFLIGHT + (EB[i].post_attempted - EB[i].pre_attempted) + FEED_THREADS * 4;
            }
        }
        EXPECT((double)stream_len >= eb_appends - (double)eb_lo &&
                   (double)stream_len <= eb_appends + (double)eb_hi,
               "ofe-eventbus: %ld entries in the stream, %.0f appends counted (-%ld..+%ld)",
               stream_len, eb_appends, eb_lo, eb_hi);
    }
    if (stream_len >= 0)
        EXPECT(stream_len >= fc.issued,
               "the stream holds %ld entries, %ld events were acknowledged", stream_len, fc.issued);

    printf("\nchaos %s: seed %llu, %d kill(s) of ofe-eventsource, %d of ofe-trigger, %d of the "
           "broker\n",
           B->name, (unsigned long long)seed, kills_es, kills_trig, kills_broker);
    printf("  webhook: %ld events acknowledged (202) in %ld requests; %ld event-attempts refused "
           "(503), %ld unanswered\n",
           fc.issued, fc.requests, fc.refused, fc.unanswered);
    printf("  ofe-eventsource (%d lives): received %.0f, delivered to the bus %.0f, bus "
           "failures %.0f\n",
           nE, es_recv, es_del, es_failed);
    if (stream_len >= 0 && B->kind == TU_EVENTBUS)
        printf(
            "  stream default-chaos-hook: %ld entries (ofe-eventbus counted %.0f appends over its "
            "lives)\n",
            stream_len, eb_appends);
    else if (stream_len >= 0)
        printf("  stream default-chaos-hook: %ld entries\n", stream_len);
    printf("  ofe-trigger (%d lives): delivered %.0f, retried %.0f\n", nT, sum_del, sum_ret);
    printf("  sink: %ld accepted, %ld unique, %ld duplicate(s), %ld failed on purpose; lost: "
           "%ld\n",
           sb.events, sb.unique, sb.duplicates, sb.failed, missing);
    printf("  counters vs sink: trigger delivered %.0f <= sink accepted %ld <= %.0f + %ld "
           "(kill windows and in-flight)\n",
           sum_del, sb.events, sum_del, slack_total);
    ch_sink_view_free(&v);

    /* SIGTERM drains and exits 0, after all that. */
    EXPECT(stop_daemon(&g_es) == 0, "ofe-eventsource stop");
    EXPECT(stop_daemon(&g_trig) == 0, "ofe-trigger stop");
    return g_failed ? -1 : 0;
}

/* ---- main --------------------------------------------------------------------------- */

static long env_long(const char *name, long def)
{
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : def;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s BACKEND [--seconds N] [--seed S] [--rate R]\n", argv[0]);
        return 2;
    }
    for (size_t i = 0; i < sizeof(BACKENDS) / sizeof(BACKENDS[0]); i++)
        if (!strcmp(argv[1], BACKENDS[i].name))
            B = &BACKENDS[i];
    if (!B) {
        fprintf(stderr, "unknown backend %s\n", argv[1]);
        return 2;
    }
    long seconds = env_long("OFE_CHAOS_SECONDS", getenv("OFE_TEST_SANITIZED") ? 30 : 60);
    long rate = env_long("OFE_CHAOS_RATE", 200);
    uint64_t seed = (uint64_t)env_long("OFE_CHAOS_SEED", 0);
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--seconds"))
            seconds = strtol(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--seed"))
            seed = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--rate"))
            rate = strtol(argv[i + 1], NULL, 10);
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (seconds < 5 || rate < 1 || rate > 100000) {
        fprintf(stderr, "--seconds must be >= 5 and --rate 1..100000\n");
        return 2;
    }
    if (!seed) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = ((uint64_t)ts.tv_sec * 1000003u) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid();
        seed %= 1000000000000ull;
        if (!seed)
            seed = 1;
    }
    g_rng = seed;
    if (B->bin) {
        char cmd[256];
        snprintf(cmd, sizeof(cmd), "command -v %s > /dev/null 2>&1", B->bin);
        if (system(cmd) != 0) {
            printf("SKIPPED: %s is not installed\n", B->bin);
            return 77;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    ch_now_ms();
    printf("chaos %s: seed %llu, %ld s, %ld events/s (replay: OFE_CHAOS_SEED=%llu "
           "OFE_CHAOS_SECONDS=%ld OFE_CHAOS_RATE=%ld test_chaos %s)\n",
           B->name, (unsigned long long)seed, seconds, rate, (unsigned long long)seed, seconds,
           rate, B->name);
    if (!B->broker_restart)
        printf("  the %s broker is not killed: ofe-kafka-mock keeps nothing across a restart\n",
               B->name);
    if (B->quiet_ms)
        printf("  broker kills come after a %d ms pause of the feed (mosquitto saves its "
               "persistence every second and confirms before it saves)\n",
               B->quiet_ms);
    fflush(stdout);

    g_dir = tu_mkdtemp("chaos");
    /* MQTT: a save per change shrinks the window; the pause covers it. */
    g_srv = tu_server_start(B->kind, NULL);
    int rc = -1;
    long nmax = rate * (seconds + 30) + 10000;
    if (!g_srv) {
        fprintf(stderr, "FAIL: cannot start the %s server\n", B->name);
        g_failed = 1;
        goto out;
    }
    const char *sink_extra[] = {"--fail-rate", "0.01", "--delay", "20", "--threads", "4", NULL};
    if (ch_sink_start(&g_sink, g_dir, sink_extra) != 0) {
        fprintf(stderr, "FAIL: ofe sink did not start\n");
        g_failed = 1;
        goto out;
    }
    write_configs();
    if (start_daemons() != 0)
        goto out;
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", g_hook_port);
    g_feed = ch_feed_start(url, FEED_THREADS, (double)rate, nmax);
    ch_log("pipeline up: webhook %s -> %s bus -> ofe-trigger -> ofe sink %s", url, B->name,
           g_sink.url);
    uint64_t t_end = ch_now_ms() + (uint64_t)seconds * 1000u;
    for (;;) {
        int gap = rnd_range(1500, 5000);
        int targets = choose_targets();
        int down = rnd_range(0, 1500);
        uint64_t wake = ch_now_ms() + (uint64_t)gap;
        if (wake >= t_end)
            break;
        while (ch_now_ms() < wake) {
            ch_msleep(100);
            if (check_all_alive() != 0)
                goto out;
        }
        if (chaos_round(targets, down) != 0)
            goto out;
    }
    while (ch_now_ms() < t_end) {
        ch_msleep(100);
        if (check_all_alive() != 0)
            goto out;
    }
    rc = finish(nmax, seed);
out:
    if (rc || g_failed) {
        fprintf(stderr, "chaos %s FAILED with seed %llu (replay: OFE_CHAOS_SEED=%llu)\n", B->name,
                (unsigned long long)seed, (unsigned long long)seed);
        char cmd[4400];
        snprintf(cmd, sizeof(cmd), "tail -n 30 %s/*.log 1>&2", g_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "(no logs)\n");
    }
    ch_feed_free(g_feed);
    tu_proc_free(g_es.p);
    tu_proc_free(g_trig.p);
    if (g_sink.p)
        tu_proc_stop(g_sink.p, SIGTERM, 5000);
    tu_proc_free(g_sink.p);
    tu_server_free(g_srv);
    if (!getenv("OFE_KEEP_TEST_DIRS"))
        tu_rmrf(g_dir);
    else
        fprintf(stderr, "kept %s\n", g_dir);
    free(g_dir);
    curl_global_cleanup();
    return rc || g_failed ? 1 : 0;
}
