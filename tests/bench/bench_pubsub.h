/* The pub/sub benchmark (bench_pubsub.c): the same workload through the
 * abstraction and straight against each backend's client library.
 *
 * Workload: publish N binary-mode events with size bytes of data to a
 * fresh topic while one consumer group member consumes and acks them;
 * the figure is N divided by the time from the first publish to the last
 * ack. Publishing and consuming run at once (brokers with little memory,
 * like the Kafka mock, need that).
 *
 * A backend adds one file tests/bench/bench_direct_<backend>.c (globbed by
 * tests/bench/pubsub.cmake) defining a `const struct bench_backend
 * bench_<backend>` and one line in the table in bench_pubsub.c. */
#ifndef OFE_BENCH_PUBSUB_H
#define OFE_BENCH_PUBSUB_H

#include <stddef.h>
#include <stdint.h>

#include "ofe/pubsub.h"

struct bench_params {
    size_t n;        /* events */
    size_t size;     /* data bytes per event */
    unsigned window; /* publishes in flight / messages in flight at most */
};

struct bench_result {
    double pub_secs; /* first publish to last publish confirmation */
    double secs;     /* first publish to last ack */
    size_t consumed;
    char err[512]; /* set when the run failed */
};

struct bench_backend {
    const char *name;
    /* Starts the server on a free loopback port; returns a state, or NULL
     * with why (e.g. the binary is missing: the line is skipped). */
    void *(*start)(char *why, size_t why_size);
    /* Opens a bus through the abstraction on that server. */
    int (*open)(void *state, const struct ofe_bus_opts *o, struct ofe_bus **out, char *errstr,
                size_t errstr_size);
    /* Runs the workload directly with the client library on topic (the
     * group name is free to choose). Returns 0, or -1 with r->err. The
     * events it writes must carry what the abstraction writes for the same
     * event (the binding's attributes and the data). */
    int (*direct)(void *state, const char *topic, const struct bench_params *p,
                  struct bench_result *r);
    void (*stop)(void *state);
};

/* The event bench_pubsub publishes (i-th; id differs per i), with p->size
 * bytes of binary data. A new reference. */
struct ofe_ce *bench_event(size_t i, size_t size);

double bench_now(void); /* seconds, monotonic */

#endif
