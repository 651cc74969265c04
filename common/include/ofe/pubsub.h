/* The pub/sub abstraction: one interface over many brokers (Dapr's idea).
 *
 * A bus is one open backend instance (connections to one broker or
 * cluster). Publishing is asynchronous: the completion callback fires once
 * the broker has confirmed the event (Kafka delivery report with acks=all,
 * JetStream PubAck, MQTT PUBACK, Redis XADD reply), or with an error — a
 * publish never vanishes. Subscribing joins a named consumer group on one
 * or more topics: members of one group share the events, distinct groups
 * each get all of them. Every delivered message must be acked or nacked;
 * at most max_inflight are outstanding per subscription, so a slow
 * consumer holds back fetching instead of buffering.
 *
 * Threads: callbacks run on backend threads. ofe_msg_ack / ofe_msg_nack,
 * ofe_bus_publish and the accessors are safe from any thread. */
#ifndef OFE_PUBSUB_H
#define OFE_PUBSUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ofe/ce.h"
#include "ofe/metrics.h"

struct ofe_bus;
struct ofe_sub;
struct ofe_msg;
struct ofe_config_busdesc; /* a resolved bus (config.h: ofe_config_resolve_bus) */

/* Completion of a publish: err 0 when the broker confirmed the event, else
 * an OFE_E* code and a sentence. Runs once per accepted publish, on any
 * thread (possibly inside ofe_bus_publish itself). */
typedef void (*ofe_pub_done_fn)(void *opaque, int err, const char *errmsg);

/* Delivery of one message. The handler owns m and must eventually call
 * ofe_msg_ack or ofe_msg_nack exactly once (from any thread). */
typedef void (*ofe_msg_fn)(struct ofe_msg *m, void *opaque);

struct ofe_bus_opts {
    const char *component;       /* log prefix, e.g. "eventsource" */
    const char *client_id;       /* stable client name; NULL = "ofe-<host>-<pid>" */
    struct ofe_metrics *metrics; /* may be NULL */
    unsigned max_pending;        /* unconfirmed publishes at most; 0 = 10000 */
    uint32_t publish_timeout_ms; /* a publish not confirmed by then fails; 0 = 30 s */
};

/* Opens a bus for a resolved description (the embedded bus is the redis
 * backend pointed at ofe-eventbus). Connecting happens in the
 * background (a broker that is down at start is retried with capped
 * backoff and jitter; ofe_bus_ready says so). Returns 0, or OFE_EINVAL with
 * errstr naming the bad option (e.g. "kafka: rdkafka.foo: No such
 * configuration property"), OFE_EUNSUPP (backend not built), OFE_ENOMEM. */
int ofe_bus_open(const struct ofe_config_busdesc *def, const struct ofe_bus_opts *opts,
                 struct ofe_bus **out, char *errstr, size_t errstr_size);

/* Opens the in-process memory broker called name (created on first use,
 * shared by every bus opened on that name in this process, forgotten when
 * the last one closes). For unit tests of the daemons. */
int ofe_bus_open_memory(const char *name, const struct ofe_bus_opts *opts, struct ofe_bus **out,
                        char *errstr, size_t errstr_size);

/* Publishes ev (a reference is taken) to topic. Returns 0 when accepted
 * (done will run exactly once), else done is not called and: OFE_EINVAL
 * (invalid event or over the size limit: errstr says why), OFE_EAGAIN
 * (max_pending reached: wait for completions and try again), OFE_ECLOSED.
 * While the broker is unreachable, accepted publishes wait, bounded by
 * publish_timeout_ms, and then fail with OFE_ETIMEDOUT / OFE_ECONN. */
int ofe_bus_publish(struct ofe_bus *b, const char *topic, struct ofe_ce *ev, ofe_pub_done_fn done,
                    void *opaque, char *errstr, size_t errstr_size);

/* Publishes and waits for the confirmation. Returns 0 or the error; errstr
 * has the sentence. */
int ofe_bus_publish_sync(struct ofe_bus *b, const char *topic, struct ofe_ce *ev, char *errstr,
                         size_t errstr_size);

/* Where a new group starts reading (an existing group resumes where it
 * was). */
enum ofe_start { OFE_START_DEFAULT = 0, OFE_START_OLDEST, OFE_START_NEWEST };

struct ofe_sub_opts {
    const char *group;         /* consumer group (required) */
    const char *consumer;      /* member name, unique per process; NULL = client id */
    const char *const *topics; /* topics to read */
    size_t ntopics;
    unsigned max_inflight; /* delivered but not yet acked; 0 = 64 */
    enum ofe_start start;  /* DEFAULT: the backend's configured initial position */
    ofe_msg_fn on_msg;
    void *opaque;
};

/* Joins group on the topics and starts delivering. Returns 0, or
 * OFE_EINVAL with errstr, OFE_ENOMEM. Delivery starts once connected. */
int ofe_bus_subscribe(struct ofe_bus *b, const struct ofe_sub_opts *o, struct ofe_sub **out,
                      char *errstr, size_t errstr_size);

/* Stops delivering and waits until no handler call for this subscription
 * runs. Messages the caller still holds may be acked or nacked afterwards;
 * unacked messages are redelivered later (to another member, or after a
 * restart). NULL is a no-op. */
void ofe_sub_close(struct ofe_sub *s);

/* Delivered and not yet acked, for metrics and tests. */
unsigned ofe_sub_inflight(const struct ofe_sub *s);

/* The event of a message, or NULL when the bus message is not a valid
 * CloudEvent (then ofe_msg_error says why and ofe_msg_payload gives the raw
 * bytes, for dead-lettering). Borrowed: valid until ack/nack; take a
 * reference to keep it. */
struct ofe_ce *ofe_msg_event(const struct ofe_msg *m);
const char *ofe_msg_error(const struct ofe_msg *m);
const void *ofe_msg_payload(const struct ofe_msg *m, size_t *len);
const char *ofe_msg_topic(const struct ofe_msg *m);
/* How many times this message was delivered before (0 the first time), as
 * far as the backend or this process knows. */
uint32_t ofe_msg_redeliveries(const struct ofe_msg *m);

/* Acknowledges: the message will not be delivered to this group again.
 * Frees m. */
void ofe_msg_ack(struct ofe_msg *m);
/* Gives the message back: it is delivered again after delay_ms (to this
 * subscription, or another member). Frees m. */
void ofe_msg_nack(struct ofe_msg *m, uint32_t delay_ms);

/* True when connected and usable; else why says what is wrong. */
bool ofe_bus_ready(struct ofe_bus *b, char *why, size_t why_size);
/* The backend's name ("kafka", "redis", ...) and a one-line description of
 * where it points, for logs. */
const char *ofe_bus_backend(const struct ofe_bus *b);
const char *ofe_bus_describe(const struct ofe_bus *b);

/* Closes every subscription still open, waits up to drain_ms for
 * unconfirmed publishes (their callbacks then run with OFE_ECLOSED), and
 * frees the bus. NULL is a no-op. */
void ofe_bus_close(struct ofe_bus *b, uint32_t drain_ms);

#endif
