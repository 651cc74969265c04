/* Where a Kafka consumer picks a partition up again when it comes back.
 *
 * A member gives its partitions up on a rebalance after committing their
 * acked prefix. The group coordinator may refuse that commit (the
 * rebalance is already in progress: REBALANCE_IN_PROGRESS, or the
 * generation moved on), and the next owner would then start at the last
 * committed offset and deliver again what this member already had acked.
 * A member that gets such a partition back (the common case: one member
 * joins, the group rebalances twice, the first member keeps half) starts
 * instead at the later of the group's committed offset and its own acked
 * point, and commits that point as soon as it can. Nothing before either
 * point is unprocessed: the committed offset was acked by some member,
 * the acked point by this one.
 *
 * Used by the kafka pub/sub backend and the kafka source. Not
 * thread-safe: the caller locks. */
#ifndef OFE_KAFKA_RESUME_H
#define OFE_KAFKA_RESUME_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

struct ofe_kafka_resume_point;

struct ofe_kafka_resume {
    struct ofe_kafka_resume_point *head;
    size_t n;
};

/* Remembers that offsets below point of topic[partition] were acked here
 * and the commit of point was not confirmed. Bounded: past 4096 points
 * the oldest is forgotten (that partition is then delivered again from
 * its committed offset, as without this). */
void ofe_kafka_resume_note(struct ofe_kafka_resume *r, const char *topic, int32_t partition,
                           int64_t point);

/* For the partitions of an assignment: each one remembered is forgotten,
 * and its offset in parts is set to the later of the group's committed
 * offset (read with rd_kafka_committed within timeout_ms) and the
 * remembered point. When the committed offsets cannot be read, parts is
 * left as it is (librdkafka starts at the committed offset: duplicates,
 * never a gap). Returns how many partitions start past their committed
 * offset. */
int ofe_kafka_resume_apply(struct ofe_kafka_resume *r, rd_kafka_t *rk,
                           rd_kafka_topic_partition_list_t *parts, int timeout_ms);

void ofe_kafka_resume_fini(struct ofe_kafka_resume *r);

#endif
