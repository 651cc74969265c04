/* An in-process CloudEvents HTTP sink for the trigger's unit tests: records
 * every request (time, decoded event, status answered) and answers as
 * programmed (failures first, a fixed status, delays, reply events). It
 * also tracks requests in flight, overall and per partition key. */
#ifndef TRIGGER_TESTSINK_H
#define TRIGGER_TESTSINK_H

#include <stdbool.h>
#include <stdint.h>

#include "ofe/ce.h"

struct tsink_rec {
    uint64_t t_ns; /* arrival, CLOCK_MONOTONIC */
    int status;    /* answered */
    struct ofe_ce *ev;
    char path[128];
};

struct tsink_prog {
    int status;           /* default answer (0 = 200) */
    unsigned fail_first;  /* the first N requests get fail_status */
    int fail_status;      /* 0 = 503 */
    int retry_after_s;    /* > 0: Retry-After with failures */
    uint32_t delay_ms;    /* every answer waits this long */
    unsigned delay_first; /* only the first N requests wait delay_first_ms */
    uint32_t delay_first_ms;
    const char *reply_type; /* answer 200 with a reply event */
    const char *reply_ttl;  /* reply carries ofettl (Integer text), or NULL */
};

struct tsink;

struct tsink *tsink_start(const struct tsink_prog *p);
void tsink_stop(struct tsink *s);
const char *tsink_url(struct tsink *s); /* "http://127.0.0.1:PORT" */
/* Requests recorded so far. */
unsigned tsink_count(struct tsink *s);
/* Copy of record i (event referenced; unref it). Returns false past the end. */
bool tsink_get(struct tsink *s, unsigned i, struct tsink_rec *out);
/* Waits until at least n requests were recorded; false after timeout_ms. */
bool tsink_wait(struct tsink *s, unsigned n, int timeout_ms);
/* Most requests in flight at once, overall and for one partition key. */
unsigned tsink_max_inflight(struct tsink *s);
unsigned tsink_max_inflight_per_key(struct tsink *s);
/* Changes the program (affects later requests). */
void tsink_set(struct tsink *s, const struct tsink_prog *p);

#endif
