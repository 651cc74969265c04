/* Crash test of ofe-eventbus with fsync always: writers pipeline XADDs and
 * a consumer reads and acknowledges through a consumer group while the
 * broker is killed with SIGKILL, several times. After each restart:
 * every XADD whose reply arrived is stored, in order; every entry whose
 * XREADGROUP reply arrived is pending unless its XACK reply arrived; every
 * confirmed XACK stays acknowledged. Uses hiredis as a client would. */
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "servers.h"
#include "testutil.h"

#define WRITERS 4
#define ROUNDS  3
#define WINDOW  16
#define MAXIDS  400000

struct idlist {
    char **v;
    size_t n, cap;
    pthread_mutex_t mu;
};

static void push(struct idlist *l, const char *id)
{
    pthread_mutex_lock(&l->mu);
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 1024;
        l->v = realloc(l->v, l->cap * sizeof(*l->v));
    }
    l->v[l->n++] = strdup(id);
    pthread_mutex_unlock(&l->mu);
}

static struct idlist acked_writes[WRITERS]; /* per writer, in order */
static struct idlist delivered, ack_confirmed, ack_unsure;
static atomic_bool stop;
static int port;
static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static redisContext *connect_ctx(void)
{
    struct timeval tv = {.tv_sec = 5};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (!c || c->err) {
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    return c;
}

struct wargs {
    int w;
    int round;
    long seq;
};

static void *writer(void *arg)
{
    struct wargs *wa = arg;
    redisContext *c = connect_ctx();
    if (!c)
        return NULL;
    char payload[200];
    memset(payload, 'p', sizeof(payload) - 1);
    payload[sizeof(payload) - 1] = '\0';
    long inflight = 0;
    while (!atomic_load(&stop) || inflight) {
        while (!atomic_load(&stop) && inflight < WINDOW) {
            char seq[64];
            snprintf(seq, sizeof(seq), "%d:%d:%ld", wa->w, wa->round, wa->seq++);
            redisAppendCommand(c, "XADD crash * w %s p %s", seq, payload);
            inflight++;
        }
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK || !r)
            break; /* the broker died */
        inflight--;
        if (r->type == REDIS_REPLY_STRING)
            push(&acked_writes[wa->w], r->str);
        else
            CHECK(0, "XADD replied type %d: %s", r->type, r->str ? r->str : "");
        freeReplyObject(r);
    }
    redisFree(c);
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    redisContext *c = connect_ctx();
    if (!c)
        return NULL;
    unsigned k = 0;
    while (!atomic_load(&stop)) {
        redisReply *r = redisCommand(c, "XREADGROUP GROUP g c COUNT 50 BLOCK 50 STREAMS crash >");
        if (!r)
            break;
        char *ids[64];
        size_t n = 0;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
            redisReply *entries = r->element[0]->element[1];
            for (size_t i = 0; i < entries->elements && n < 64; i++) {
                const char *id = entries->element[i]->element[0]->str;
                push(&delivered, id);
                ids[n++] = strdup(id);
            }
        }
        freeReplyObject(r);
        /* Acknowledge every other batch, keep the rest pending. */
        if (n && (k++ % 2 == 0)) {
            const char *argv[70];
            size_t argl[70];
            argv[0] = "XACK";
            argv[1] = "crash";
            argv[2] = "g";
            for (size_t i = 0; i < n; i++)
                argv[3 + i] = ids[i];
            for (size_t i = 0; i < n + 3; i++)
                argl[i] = strlen(argv[i]);
            redisReply *a = redisCommandArgv(c, (int)n + 3, argv, argl);
            for (size_t i = 0; i < n; i++)
                push(a ? &ack_confirmed : &ack_unsure, ids[i]);
            if (a) {
                CHECK(a->type == REDIS_REPLY_INTEGER && a->integer == (long long)n,
                      "XACK acknowledged %lld of %zu", a->integer, n);
                freeReplyObject(a);
            }
            if (!a) {
                for (size_t i = 0; i < n; i++)
                    free(ids[i]);
                break;
            }
        }
        for (size_t i = 0; i < n; i++)
            free(ids[i]);
    }
    redisFree(c);
    return NULL;
}

static int cmp_id(const char *a, const char *b)
{
    unsigned long long am, as, bm, bs;
    sscanf(a, "%llu-%llu", &am, &as);
    sscanf(b, "%llu-%llu", &bm, &bs);
    if (am != bm)
        return am < bm ? -1 : 1;
    return as < bs ? -1 : as > bs;
}

static int cmp_idp(const void *a, const void *b)
{
    return cmp_id(*(char *const *)a, *(char *const *)b);
}

static bool contains(char **sorted, size_t n, const char *id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = cmp_id(sorted[mid], id);
        if (c == 0)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* Reads every id of an XRANGE / XPENDING listing. */
static char **all_ids(redisContext *c, const char *cmd, size_t *n)
{
    redisReply *r = redisCommand(c, cmd);
    *n = 0;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        if (r)
            freeReplyObject(r);
        return NULL;
    }
    char **v = malloc((r->elements + 1) * sizeof(*v));
    for (size_t i = 0; i < r->elements; i++)
        v[(*n)++] = strdup(r->element[i]->element[0]->str);
    freeReplyObject(r);
    return v;
}

static void verify(redisContext *c, int round)
{
    size_t nstored, npending;
    char **stored = all_ids(c, "XRANGE crash - +", &nstored);
    char **pending = all_ids(c, "XPENDING crash g - + 100000000", &npending);
    CHECK(stored != NULL, "round %d: XRANGE failed", round);
    CHECK(pending != NULL, "round %d: XPENDING failed", round);
    if (!stored || !pending)
        return;
    /* Stored ids are increasing. */
    for (size_t i = 1; i < nstored; i++)
        CHECK(cmp_id(stored[i - 1], stored[i]) < 0, "round %d: XRANGE out of order at %zu", round,
              i);
    size_t total = 0, missing = 0;
    for (int w = 0; w < WRITERS; w++) {
        for (size_t i = 0; i < acked_writes[w].n; i++) {
            total++;
            if (!contains(stored, nstored, acked_writes[w].v[i]))
                missing++;
            if (i)
                CHECK(cmp_id(acked_writes[w].v[i - 1], acked_writes[w].v[i]) < 0,
                      "writer %d: acknowledged ids not increasing", w);
        }
    }
    CHECK(missing == 0, "round %d: %zu of %zu acknowledged XADDs lost after kill -9", round,
          missing, total);
    /* Group state. */
    if (ack_confirmed.n)
        qsort(ack_confirmed.v, ack_confirmed.n, sizeof(char *), cmp_idp);
    if (ack_unsure.n)
        qsort(ack_unsure.v, ack_unsure.n, sizeof(char *), cmp_idp);
    size_t lost_pending = 0, resurrected = 0;
    for (size_t i = 0; i < delivered.n; i++) {
        const char *id = delivered.v[i];
        bool in_pel = contains(pending, npending, id);
        if (contains(ack_confirmed.v, ack_confirmed.n, id)) {
            if (in_pel)
                resurrected++;
        } else if (!contains(ack_unsure.v, ack_unsure.n, id)) {
            if (!in_pel)
                lost_pending++;
        }
    }
    CHECK(lost_pending == 0, "round %d: %zu delivered, unacknowledged entries left the PEL", round,
          lost_pending);
    CHECK(resurrected == 0, "round %d: %zu acknowledged entries came back as pending", round,
          resurrected);
    printf("round %d: %zu acknowledged XADDs, %zu missing (%zu stored), %zu delivered, %zu "
           "acknowledged, %zu pending\n",
           round, total, missing, nstored, delivered.n, ack_confirmed.n, npending);
    for (size_t i = 0; i < nstored; i++)
        free(stored[i]);
    for (size_t i = 0; i < npending; i++)
        free(pending[i]);
    free(stored);
    free(pending);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* the broker may close a connection first */
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int w = 0; w < WRITERS; w++)
        pthread_mutex_init(&acked_writes[w].mu, NULL);
    pthread_mutex_init(&delivered.mu, NULL);
    pthread_mutex_init(&ack_confirmed.mu, NULL);
    pthread_mutex_init(&ack_unsure.mu, NULL);
    /* Small segments so the load crosses segment boundaries. */
    const char *extra[] = {"--segment-size", "262144", NULL};
    struct tu_server *srv = tu_server_start(TU_EVENTBUS, extra);
    if (!srv)
        return 1;
    port = srv->port;
    redisContext *c = connect_ctx();
    redisReply *r = redisCommand(c, "XGROUP CREATE crash g $ MKSTREAM");
    CHECK(r && r->type == REDIS_REPLY_STATUS, "XGROUP CREATE failed");
    freeReplyObject(r);
    redisFree(c);
    struct wargs wa[WRITERS];
    for (int w = 0; w < WRITERS; w++)
        wa[w] = (struct wargs){.w = w};
    for (int round = 1; round <= ROUNDS && !failures; round++) {
        atomic_store(&stop, false);
        pthread_t th[WRITERS + 1];
        for (int w = 0; w < WRITERS; w++) {
            wa[w].round = round;
            pthread_create(&th[w], NULL, writer, &wa[w]);
        }
        pthread_create(&th[WRITERS], NULL, consumer, NULL);
        usleep(400 * 1000 + (useconds_t)(rand() % 200) * 1000);
        tu_server_kill(srv); /* kill -9 under load */
        atomic_store(&stop, true);
        for (int i = 0; i <= WRITERS; i++)
            pthread_join(th[i], NULL);
        if (tu_server_restart(srv) != 0) {
            CHECK(0, "the broker did not restart after kill -9");
            break;
        }
        c = connect_ctx();
        CHECK(c != NULL, "cannot connect after restart");
        if (c) {
            verify(c, round);
            redisFree(c);
        }
    }
    char *log = tu_read_file(srv->proc->log, NULL);
    if (failures && log)
        fprintf(stderr, "broker log:\n%s\n", log);
    free(log);
    tu_server_free(srv);
    printf("%s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
