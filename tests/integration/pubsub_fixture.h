/* The backend side of the pub/sub conformance suite
 * (tests/integration/pubsub_conformance.c).
 *
 * One suite, every backend: each backend supplies one fixture file
 * tests/integration/pubsub_fixture_<backend>.c that defines
 *
 *     const struct pubsub_fixture pubsub_fixture = { .name = "<backend>", ... };
 *
 * and one line in tests/integration/pubsub.cmake:
 *
 *     ofe_pubsub_conformance(<backend>)
 *
 * which builds pubsub_conformance_<backend> (the suite + that fixture) and
 * registers the ctest of the same name. The fixture starts the real server
 * on free loopback ports (tests/lib/servers.h), opens buses on it, stops and
 * restarts it, and says what the backend cannot do: a check that needs a
 * missing capability is skipped and prints the fixture's reason (never a
 * silent pass).
 *
 * Stability: this interface is shared by every backend. Add members at the
 * end (a fixture that does not set them gets zero/NULL, which must mean
 * "not needed" or "not capable"); never rename or reorder. */
#ifndef OFE_TEST_PUBSUB_FIXTURE_H
#define OFE_TEST_PUBSUB_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "ofe/pubsub.h"

/* What a backend can do. A fixture sets lacks[cap] to a sentence saying
 * why it cannot (e.g. "MQTT shared subscriptions give a dead member's
 * in-flight messages back only to the same session"); NULL = capable. */
enum pf_cap {
    /* The server can be stopped and restarted with its data, and no
     * publish it confirmed is lost (server_stop / server_restart). */
    PF_CAP_RESTART = 0,
    /* A message taken by a member that is killed (kill -9) without acking
     * is redelivered to another live member of the group. */
    PF_CAP_KILL_MEMBER,
    /* Events with the same partitionkey arrive in publish order. */
    PF_CAP_ORDER_KEY,
    /* An event with 1 MiB of data passes. */
    PF_CAP_LARGE_EVENT,
    /* An event over max_event_size is refused with an error. */
    PF_CAP_SIZE_LIMIT,
    /* ofe_msg_redeliveries() is >= 1 for a message the broker redelivers
     * after its member died (the broker counts deliveries). */
    PF_CAP_REDELIVERY_COUNT,
    /* inject_raw can put a message that is not a CloudEvent on a topic. */
    PF_CAP_RAW_INJECT,
    PF_CAP__COUNT
};

/* Per-bus settings a check asks for; the fixture maps them to its
 * backend's options. Zero means "the fixture's default". */
struct pf_open_opts {
    const char *client_id;       /* stable client / member name; NULL: the default */
    uint32_t publish_timeout_ms; /* ofe_bus_opts.publish_timeout_ms */
    /* How long a member's unacked message stays with it before another
     * member may get it (redis: processingTimeout, with redeliverInterval a
     * quarter of it; jetstream: AckWait; ...). Fixtures default to a short
     * time (about 1 s) so the kill-member check stays quick. */
    uint32_t redeliver_ms;
    uint32_t max_pending; /* ofe_bus_opts.max_pending */
};

struct pubsub_fixture {
    const char *name; /* backend name: "redis", "embedded", "kafka", ... */
    /* Why a capability is missing (printed when a check is skipped), or
     * NULL when the backend has it. */
    const char *lacks[PF_CAP__COUNT];
    /* With PF_CAP_SIZE_LIMIT: the largest event data (bytes) the fixture's
     * configuration lets through; the check publishes more than that. */
    size_t max_event_size;
    /* After a subscription is made and ofe_bus_ready() says true, how long
     * until it surely receives events published from then on (0 for
     * brokers that keep events for a group before its first fetch). */
    uint32_t settle_ms;

    /* Starts the server(s) on free loopback ports. Returns 0 and sets
     * *state, or -1 with why: the suite then exits 77 (ctest: skipped)
     * when the server binary does not exist, else 1. *missing says which. */
    int (*start)(void **state, int *missing, char *why, size_t why_size);
    /* A short string describing the running server (addresses, secrets),
     * for a child process of the suite; owned by state. */
    const char *(*export_state)(void *state);
    /* In a child process: a state on which open() works, from the string
     * export_state gave in the parent. Returns 0 or -1. */
    int (*attach)(const char *exported, void **state);
    /* Opens a bus on the server. Returns 0 or the ofe_bus_open error. */
    int (*open)(void *state, const struct pf_open_opts *o, struct ofe_bus **out, char *errstr,
                size_t errstr_size);
    /* Optional: makes a topic usable before the first publish or subscribe
     * (e.g. creates it with enough partitions). NULL: nothing to do. */
    int (*topic_prepare)(void *state, const char *topic, char *errstr, size_t errstr_size);
    /* PF_CAP_RESTART: stops the server in the hardest way under which it
     * still keeps every write it confirmed (redis-server with appendfsync
     * always: kill -9; mosquitto: SIGTERM, it saves on exit). */
    void (*server_stop)(void *state);
    /* PF_CAP_RESTART: starts it again on the same address with the same
     * data; returns 0 once it accepts connections, else -1. */
    int (*server_restart)(void *state);
    /* PF_CAP_RAW_INJECT: writes one message that is not a CloudEvent to
     * topic with the native client. Returns 0 or -1 with errstr. */
    int (*inject_raw)(void *state, const char *topic, char *errstr, size_t errstr_size);
    /* Stops what start() started, removes its data and frees state (in a
     * child: frees what attach() made). NULL state is a no-op. */
    void (*stop)(void *state);
};

/* Defined by the one fixture file linked into each suite binary. */
extern const struct pubsub_fixture pubsub_fixture;

#endif
