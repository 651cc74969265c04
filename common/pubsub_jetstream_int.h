/* Between the two files of the jetstream backend: pubsub_jetstream.c (the
 * connection, the stream, publishing) and pubsub_jetstream_sub.c (durable
 * pull consumers, fetching, ack/nack).
 *
 * Naming on the server (docs/backends.md, "NATS JetStream"):
 *   stream   : streamName, default OFE_JS_DEFAULT_STREAM; one per bus.
 *   subjects : "<stream>.<topic>" (the stream holds "<stream>.>").
 *   consumer : "[<durableName>_]<group>_<topic>_<hash8>", characters outside
 *              [A-Za-z0-9_-] replaced by '_', one durable pull consumer per
 *              (group, topic) because nats-server 2.9 filters one subject
 *              per consumer. */
#ifndef OFE_PUBSUB_JETSTREAM_INT_H
#define OFE_PUBSUB_JETSTREAM_INT_H

#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "pubsub_int.h"

#define OFE_JS_DEFAULT_STREAM "OFEVENTS"
#define OFE_JS_NAME_MAX       200 /* longest stream or consumer name we make */

struct jpub;

/* Open-addressing map natsMsg* -> struct jpub* (publishes waiting for their
 * PubAck; the AckHandler gets the natsMsg back). */
struct js_pmap {
    uintptr_t *keys;
    struct jpub **vals;
    size_t cap, n; /* cap is a power of two, 0 when empty */
};

/* One bus. Locking: lock guards every mutable field below it; no cnats
 * call that can block is made with it held. */
struct js_bus {
    struct ofe_bus *bus;
    const char *comp; /* log component (the bus's) */
    char desc[300];

    /* Options, copied at open (the config may go away). */
    char *urls;   /* as given, comma-separated */
    char *stream; /* stream name */
    char *prefix; /* "<stream>." */
    char *durable_prefix;
    int deliver_policy; /* enum ofe_config_deliver_policy */
    int64_t start_sequence;
    int64_t start_time_s, start_time_delta_ms;
    int64_t ack_wait_ms, max_deliver, max_ack_pending, replicas;
    int64_t *backoff_ns;
    int nbackoff;
    bool memory_storage;
    int64_t max_age_ms, max_bytes, max_msgs;
    char *jwt, *seed; /* for the credential callbacks */

    natsOptions *nopts;
    natsConnection *nc;
    jsCtx *js;

    pthread_mutex_t lock;
    pthread_cond_t cond; /* state changes: connection, publishes resolved */
    pthread_t mgmt;
    bool mgmt_started, mgmt_stop;
    atomic_bool closing;    /* set under lock; read without it by js_publish */
    atomic_uint publishers; /* threads inside ops->publish */
    bool connected;
    bool ever_connected;
    uint64_t epoch;    /* disconnections so far */
    bool resend;       /* a reconnect happened: resend publishes whose PubAck is lost */
    bool stream_ok;    /* the stream exists and holds our subjects */
    bool stream_check; /* look at the stream again (after a reconnect, a 503) */
    unsigned stream_attempt;
    uint64_t stream_next_ns;
    uint64_t expiry_ns;    /* no publish sent to cnats expires before (UINT64_MAX: none) */
    uint64_t mgmt_wake_ns; /* when the management thread wakes up next */
    char stream_err[300];
    char async_err[300]; /* last connection error known (cleared on connect) */
    bool closed_cb;      /* the connection's closed callback has run */
    bool published;      /* js_PublishMsgAsync was called at least once */
    int64_t max_payload; /* the server's, 0 until connected (atomic) */

    struct js_pmap map;
    struct jpub *pubs; /* every publish not yet completed (list) */
    unsigned npubs;
    struct jpub *retry; /* waiting to be sent again (list) */
    uint64_t seq;
};

uint64_t js__now_ns(void);
/* Copies src into dst (size > 0), cut to fit, NUL-terminated. */
void js__copy(char *dst, size_t size, const char *src);
/* Checks a topic and writes its subject "<stream>.<topic>" into out.
 * Returns 0 or OFE_EINVAL with errstr. */
int js__subject(const struct js_bus *b, const char *topic, char *out, size_t out_size, char *errstr,
                size_t errstr_size);
/* The text of the last cnats error of this thread (or of status s). */
const char *js__errtext(natsStatus s, char *buf, size_t size);
/* Asks the management thread to look at the stream again (a 503 suggests
 * it is gone). */
void js__stream_suspect(struct js_bus *b);
/* Ready to talk to JetStream: connected and the stream ensured. */
bool js__usable(struct js_bus *b);

/* pubsub_jetstream_sub.c */
int js__subscribe(void *ctx, struct ofe_sub *sub, void **sctx, char *errstr, size_t errstr_size);
void js__stop(void *ctx, void *sctx);
void js__release(void *ctx, void *sctx);
void js__ack(void *ctx, void *sctx, struct ofe_msg *m);
void js__nack(void *ctx, void *sctx, struct ofe_msg *m, uint32_t delay_ms);
void js__abandon(void *ctx, void *sctx, struct ofe_msg *m);
/* A consumer name for (group, topic): see the top of this file. */
void js__consumer_name(const char *prefix, const char *group, const char *topic, char *out,
                       size_t out_size);

#endif
