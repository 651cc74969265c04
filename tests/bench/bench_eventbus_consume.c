/* Consume phase of bench_eventbus.sh: one hiredis client drains a stream
 * through a consumer group, XREADGROUP COUNT <batch> followed by XACK of
 * what it got (the XACK is pipelined with the next XREADGROUP, as a
 * consumer that acknowledges while fetching does). Prints entries per
 * second. The same program runs against redis-server and ofe-eventbus.
 *
 * Usage: bench_eventbus_consume PORT STREAM TOTAL [BATCH]   */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s PORT STREAM TOTAL [BATCH]\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    const char *stream = argv[2];
    long total = atol(argv[3]);
    int batch = argc > 4 ? atoi(argv[4]) : 100;
    redisContext *c = redisConnect("127.0.0.1", port);
    if (!c || c->err) {
        fprintf(stderr, "cannot connect to port %d\n", port);
        return 1;
    }
    redisReply *r = redisCommand(c, "XGROUP CREATE %s bench 0", stream);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "XGROUP CREATE: %s\n", r ? r->str : c->errstr);
        return 1;
    }
    freeReplyObject(r);
    const char **argv_ack = malloc(sizeof(char *) * (size_t)(batch + 3));
    size_t *argl_ack = malloc(sizeof(size_t) * (size_t)(batch + 3));
    char(*ids)[48] = malloc(48 * (size_t)batch);
    long got = 0;
    int pending_ack = 0;
    double t0 = now();
    redisAppendCommand(c, "XREADGROUP GROUP bench c COUNT %d STREAMS %s >", batch, stream);
    while (got < total) {
        if (pending_ack) {
            if (redisGetReply(c, (void **)&r) != REDIS_OK)
                break;
            if (r->type != REDIS_REPLY_INTEGER || r->integer != pending_ack) {
                fprintf(stderr, "XACK replied unexpectedly\n");
                return 1;
            }
            freeReplyObject(r);
            pending_ack = 0;
        }
        if (redisGetReply(c, (void **)&r) != REDIS_OK)
            break;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 1) {
            fprintf(stderr, "stream drained early at %ld entries\n", got);
            freeReplyObject(r);
            break;
        }
        redisReply *entries = r->element[0]->element[1];
        int n = (int)entries->elements;
        for (int i = 0; i < n; i++)
            snprintf(ids[i], 48, "%s", entries->element[i]->element[0]->str);
        freeReplyObject(r);
        got += n;
        argv_ack[0] = "XACK";
        argv_ack[1] = stream;
        argv_ack[2] = "bench";
        for (int i = 0; i < n; i++)
            argv_ack[3 + i] = ids[i];
        for (int i = 0; i < n + 3; i++)
            argl_ack[i] = strlen(argv_ack[i]);
        redisAppendCommandArgv(c, n + 3, argv_ack, argl_ack);
        pending_ack = n;
        if (got < total)
            redisAppendCommand(c, "XREADGROUP GROUP bench c COUNT %d STREAMS %s >", batch, stream);
    }
    if (pending_ack && redisGetReply(c, (void **)&r) == REDIS_OK)
        freeReplyObject(r);
    double dt = now() - t0;
    printf("%.0f\n", (double)got / dt);
    fprintf(stderr, "consumed %ld entries in %.2f s\n", got, dt);
    redisFree(c);
    free(argv_ack);
    free(argl_ack);
    free(ids);
    return got == total ? 0 : 1;
}
