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

#include "ofe/offset_track.h"

struct ofe_config_kafka_bus;

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
