/* Inside the kafka backend (pubsub_kafka*.c): the offset tracker of one
 * assigned partition and the configuration builder.
 *
 * The tracker decides what may be committed. Messages of a partition are
 * delivered in offset order; each delivered offset enters a window in that
 * order and leaves it from the front only once acked. The commit point is
 * the offset after the last message of the acked prefix, so an acked
 * offset above an unacked one is never committed before the gap closes: a
 * crash redelivers the unacked message and everything after it, never
 * skips it. Offsets need not be contiguous (compaction, transaction
 * markers): the window holds the offsets themselves.
 *
 * Not thread-safe: the caller locks. */
#ifndef OFE_PUBSUB_KAFKA_INT_H
#define OFE_PUBSUB_KAFKA_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

struct ofe_config_kafka_bus;

struct kafka_track {
    int64_t *off;   /* ring of delivered offsets, oldest first */
    uint8_t *acked; /* parallel to off */
    size_t cap, head, n;
    uint64_t seq_head; /* sequence number of the entry at head */
    int64_t point;     /* next offset to commit (last acked prefix + 1); -1: none yet */
    int64_t last;      /* last offset pushed; -1: none */
};

void kafka_track_init(struct kafka_track *t);
void kafka_track_fini(struct kafka_track *t);
/* Records a delivered offset, which must be above every offset pushed
 * before (kafka_track_seen says whether it is). Sets *seq, the handle for
 * kafka_track_ack. Returns 0 or OFE_ENOMEM (nothing recorded). */
int kafka_track_push(struct kafka_track *t, int64_t offset, uint64_t *seq);
/* True when offset was already pushed (at or below the last one). */
bool kafka_track_seen(const struct kafka_track *t, int64_t offset);
/* Marks the entry seq acked and moves the commit point over the acked
 * prefix. Returns how many entries left the window (0 when seq is not in
 * it, e.g. acked twice). */
size_t kafka_track_ack(struct kafka_track *t, uint64_t seq);

/* Roles of a client handle. */
enum kafka_role { KAFKA_PRODUCER, KAFKA_CONSUMER };

/* What a handle needs besides the bus options. */
struct kafka_conf_opts {
    enum kafka_role role;
    const char *client_id;
    const char *group;        /* consumer: group.id */
    const char *offset_reset; /* consumer: "earliest" or "latest" */
    size_t max_bytes;         /* limit of one record */
    uint32_t timeout_ms;      /* producer: message.timeout.ms */
    unsigned max_pending;     /* producer: publishes waiting at most */
};

/* Builds the librdkafka configuration of a handle from the bus options:
 * brokers, client id, security (authType, SASL, TLS, OIDC), compression,
 * size limit, the role's defaults, then every `rdkafka.*` entry verbatim
 * (so they win), then what the backend cannot work without (consumer:
 * group.id, manual commits). Returns a new conf, or NULL with errstr
 * naming the option and carrying librdkafka's own words. */
rd_kafka_conf_t *kafka_conf_build(const struct ofe_config_kafka_bus *kb,
                                  const struct kafka_conf_opts *o, char *errstr,
                                  size_t errstr_size);
/* security.protocol chosen for kb ("plaintext", "sasl_ssl", ...). */
const char *kafka_conf_protocol(const struct ofe_config_kafka_bus *kb);

/* The limit of one record (value + key + headers) when maxMessageBytes is
 * not set: 1 MiB plus room for the headers of a 1 MiB event. */
#define KAFKA_DEFAULT_MAX_BYTES (1024 * 1024 + 64 * 1024)

#endif
