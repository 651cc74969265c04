/* Between the pub/sub core (pubsub.c) and the backends (pubsub_<name>.c).
 *
 * A backend is one `const struct ofe_pubsub_ops` listed in the registry
 * table (pubsub_registry.c). It keeps its state behind ctx (per bus) and
 * sctx (per subscription); the core never looks inside.
 *
 * Messages: the backend allocates one with ofe_msg__new (with room for its
 * own per-message data), sets the event (or the decode error and raw
 * payload), and hands it to ofe_sub__deliver. The core counts it in flight
 * until the consumer acks or nacks; it then calls ops->ack / ops->nack
 * (which release the backend's per-message data) and frees the message.
 * A backend fetches only while ofe_sub__capacity() > 0 (or waits in
 * ofe_sub__wait_capacity), which bounds memory. */
#ifndef OFE_PUBSUB_INT_H
#define OFE_PUBSUB_INT_H

#include <pthread.h>

#include "ofe/pubsub.h"

struct ofe_pub; /* one publish in progress (owned by the core) */

struct ofe_pubsub_ops {
    const char *name;
    /* Opens the backend; connects in the background. def is the backend's
     * description: a struct ofe_config_busdesc for brokers, the broker name
     * (const char *) for the memory backend. COPY every option you need:
     * def and the config it points into are freed after open returns (a
     * daemon reloading on SIGHUP keeps the bus and frees the old config). */
    int (*open)(struct ofe_bus *bus, const void *def, void **ctx, char *errstr, size_t errstr_size);
    /* Starts a publish; the backend calls ofe_pub__done(p, ...) exactly once
     * when the broker confirmed or failed it (any thread), unless it
     * returns an error here. ev stays valid until then (the core holds a
     * reference: ofe_pub__event(p)). */
    int (*publish)(void *ctx, const char *topic, struct ofe_pub *p, char *errstr,
                   size_t errstr_size);
    /* Joins the group and starts fetching/delivering (its own thread or the
     * client library's). */
    int (*subscribe)(void *ctx, struct ofe_sub *sub, void **sctx, char *errstr, size_t errstr_size);
    /* Stops delivering: when it returns, no ofe_sub__deliver call for sub
     * runs or will run. Messages already delivered may still be acked or
     * nacked (then ack/nack are called with this sctx). */
    void (*stop)(void *ctx, void *sctx);
    /* Frees sctx, once stop has run and every message is resolved. */
    void (*release)(void *ctx, void *sctx);
    /* Acknowledges m to the broker and releases its per-message data. */
    void (*ack)(void *ctx, void *sctx, struct ofe_msg *m);
    /* Gives m back for redelivery after delay_ms. NULL: the core keeps the
     * message and delivers it again itself after the delay (it stays
     * unacked at the broker, so a crash still redelivers it). When the
     * subscription stops first, the core calls abandon. */
    void (*nack)(void *ctx, void *sctx, struct ofe_msg *m, uint32_t delay_ms);
    /* Releases m's per-message data without acking (the broker will
     * redeliver it); used for messages left when a subscription stops. */
    void (*abandon)(void *ctx, void *sctx, struct ofe_msg *m);
    bool (*ready)(void *ctx, char *why, size_t why_size);
    /* Waits up to drain_ms for unconfirmed publishes, fails the rest with
     * OFE_ECLOSED through ofe_pub__done, and frees ctx. Subscriptions are
     * stopped and released before this is called. */
    void (*close)(void *ctx, uint32_t drain_ms);
    const char *(*describe)(void *ctx);
};

/* The registry (pubsub_registry.c). Returns NULL for an unknown name. */
const struct ofe_pubsub_ops *ofe_pubsub__find(const char *name);
extern const struct ofe_pubsub_ops *const ofe_pubsub__registry[];

/* Opens a bus on a given backend (ofe_bus_open resolves the name from the
 * description; the memory backend is opened directly by tests). */
int ofe_bus__open_ops(const struct ofe_pubsub_ops *ops, const void *def,
                      const struct ofe_bus_opts *opts, struct ofe_bus **out, char *errstr,
                      size_t errstr_size);

/* Bus accessors for backends. */
const struct ofe_bus_opts *ofe_bus__opts(const struct ofe_bus *b);
const char *ofe_bus__client_id(const struct ofe_bus *b);
struct ofe_metrics *ofe_bus__metrics(const struct ofe_bus *b);

/* Publish accessors and completion. */
struct ofe_ce *ofe_pub__event(const struct ofe_pub *p);
/* Completes a publish (err 0 = confirmed); frees p. Any thread, once. */
void ofe_pub__done(struct ofe_pub *p, int err, const char *errmsg);
/* A slot for the backend's own use (e.g. a list link or a sequence). */
void **ofe_pub__priv(struct ofe_pub *p);

/* Subscription accessors for backends. */
const struct ofe_sub_opts *ofe_sub__opts(const struct ofe_sub *s);
const char *ofe_sub__consumer(const struct ofe_sub *s);
unsigned ofe_sub__capacity(const struct ofe_sub *s);
/* Waits until capacity > 0, the subscription stops, or timeout_ms passes.
 * Returns the capacity (0 on timeout or stop). */
unsigned ofe_sub__wait_capacity(struct ofe_sub *s, int timeout_ms);
bool ofe_sub__stopping(const struct ofe_sub *s);

/* Messages. */
struct ofe_msg {
    struct ofe_sub *sub;
    struct ofe_ce *ev;      /* owned reference, NULL when undecodable */
    char *error;            /* malloc'd decode error, or NULL */
    unsigned char *payload; /* malloc'd raw payload when undecodable */
    size_t payload_len;
    char *topic; /* malloc'd */
    uint32_t redeliveries;
    uint64_t due_ns;      /* core: local redelivery time */
    struct ofe_msg *next; /* core: lists */
    unsigned char priv[]; /* the backend's per-message data */
};

/* Allocates a message for sub on topic with priv_size bytes of backend
 * data (zeroed). Returns NULL on allocation failure. */
struct ofe_msg *ofe_msg__new(struct ofe_sub *sub, const char *topic, size_t priv_size);
/* Records a decode failure: copies the payload and the reason. */
void ofe_msg__set_invalid(struct ofe_msg *m, const void *payload, size_t len, const char *why);
/* Hands m to the consumer (counts it in flight). When the subscription is
 * stopping, the message is abandoned instead. */
void ofe_sub__deliver(struct ofe_sub *s, struct ofe_msg *m);
/* Frees a message that was never delivered (the backend's data must be
 * released by the backend first). */
void ofe_msg__free(struct ofe_msg *m);

/* Backoff with full jitter for reconnect loops: attempt 0, 1, 2, ... gives
 * a wait in [0, min(cap, base * 2^attempt)] milliseconds. */
uint32_t ofe_pubsub__backoff_ms(unsigned attempt, uint32_t base_ms, uint32_t cap_ms);

#endif
