/* CESQL evaluation speed on one core. Prints evaluations per second of a
 * typical trigger filter and of a function-heavy one over a set of events,
 * through ofe_cesql_match (the trigger's path) and ofe_cesql_eval with a
 * reused context. Rates are per second of the thread's CPU time (so a busy
 * machine skews them less); the wall-clock rate is shown too. A program,
 * not a test: it never fails on timing.
 *
 *   bench_cesql [SECONDS]     time per figure (default 1, at most 60) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ofe/ce.h"
#include "ofe/cesql.h"

#define NEVENTS 64
#define GOAL    5000000.0

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU time of this thread: the rates hold on a loaded machine too. */
static double cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Events that vary in every attribute the filters look at. */
static void make_events(struct ofe_ce **evs)
{
    static const char *const subjects[] = {"a", "B", "order-4711", "c", "Ünïcode subject"};
    for (int i = 0; i < NEVENTS; i++) {
        struct ofe_ce *ev = ofe_ce_new();
        char err[256], id[32], src[64];
        snprintf(id, sizeof(id), "evt-%06d", i);
        snprintf(src, sizeof(src), i % 3 ? "/orders/%d" : "/shipments/%d", i);
        if (!ev || ofe_ce_set_str(ev, "specversion", OFE_CE_T_NONE, "1.0", err, sizeof(err)) ||
            ofe_ce_set_str(ev, "id", OFE_CE_T_NONE, id, err, sizeof(err)) ||
            ofe_ce_set_str(ev, "source", OFE_CE_T_NONE, src, err, sizeof(err)) ||
            ofe_ce_set_str(ev, "type", OFE_CE_T_NONE,
                           i % 2 ? "com.example.order" : "com.example.invoice", err, sizeof(err)) ||
            (i % 8 != 7 &&
             ofe_ce_set_str(ev, "subject", OFE_CE_T_NONE, subjects[i % 5], err, sizeof(err))) ||
            ofe_ce_set_str(ev, "region", OFE_CE_T_STRING, i % 4 ? "eu" : "us", err, sizeof(err)) ||
            ofe_ce_set_int(ev, "priority", i % 10, err, sizeof(err))) {
            fprintf(stderr, "bench_cesql: cannot build events\n");
            exit(1);
        }
        evs[i] = ev;
    }
}

static void bench(const char *label, const char *text, struct ofe_ce **evs, double secs)
{
    struct ofe_cesql *expr;
    char err[256];
    if (ofe_cesql_compile(NULL, text, &expr, err, sizeof(err))) {
        fprintf(stderr, "bench_cesql: %s\n", err);
        exit(1);
    }
    /* Compile cost. */
    double t0 = now();
    int ncomp = 0;
    while (now() - t0 < secs / 10) {
        for (int k = 0; k < 100; k++) {
            struct ofe_cesql *e2;
            if (ofe_cesql_compile(NULL, text, &e2, err, sizeof(err)) == 0)
                ofe_cesql_destroy(e2);
        }
        ncomp += 100;
    }
    double comp_us = (now() - t0) / ncomp * 1e6;

    /* The trigger's path: ofe_cesql_match. */
    unsigned long n = 0, matched = 0, errors = 0;
    t0 = now();
    double c0 = cpu(), t1;
    for (;;) {
        for (int k = 0; k < 4096; k++, n++) {
            enum ofe_cesql_err e;
            matched += ofe_cesql_match(expr, evs[n % NEVENTS], &e);
            errors += e != OFE_CESQL_OK;
        }
        t1 = now();
        if (t1 - t0 >= secs)
            break;
    }
    double match_rate = (double)n / (cpu() - c0);
    double match_wall = (double)n / (t1 - t0);

    /* Complete evaluation with a reused context. */
    struct ofe_cesql_ctx ctx;
    ofe_cesql_ctx_init(&ctx);
    unsigned long m = 0;
    struct ofe_cesql_result r;
    t0 = now();
    c0 = cpu();
    for (;;) {
        for (int k = 0; k < 4096; k++, m++)
            ofe_cesql_eval(expr, evs[m % NEVENTS], &ctx, &r);
        t1 = now();
        if (t1 - t0 >= secs)
            break;
    }
    double eval_rate = (double)m / (cpu() - c0);
    ofe_cesql_ctx_fini(&ctx);
    ofe_cesql_destroy(expr);

    printf("%s\n  %s\n", label, text);
    printf("  ofe_cesql_match: %12.0f evaluations/s of CPU time (%.1f ns each; %.0f/s by the "
           "wall clock)\n"
           "                   %lu of %lu matched, %lu with an error\n",
           match_rate, 1e9 / match_rate, match_wall, matched, n, errors);
    printf("  ofe_cesql_eval:  %12.0f evaluations/s of CPU time (%.1f ns each, reused context)\n",
           eval_rate, 1e9 / eval_rate);
    printf("  compile:         %12.2f us per expression\n", comp_us);
    printf("  vs goal of %.0f/s on one core: %.2fx\n\n", GOAL, match_rate / GOAL);
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    if (secs <= 0 || secs > 60) {
        fprintf(stderr, "usage: bench_cesql [SECONDS] (0 < SECONDS <= 60)\n");
        return 2;
    }
    struct ofe_ce *evs[NEVENTS];
    make_events(evs);
    printf("bench_cesql: %d events, %.1f s per figure, one thread\n\n", NEVENTS, secs);
    bench("typical filter:",
          "type = 'com.example.order' AND source LIKE '/orders/%' AND EXISTS subject", evs, secs);
    bench("function-heavy filter:",
          "LOWER(subject) IN ('a','b','c') OR LENGTH(CONCAT(type, source)) > 20", evs, secs);
    for (int i = 0; i < NEVENTS; i++)
        ofe_ce_unref(evs[i]);
    return 0;
}
