/* One Kafka consumer group member's partitions: what it handed on from
 * each, what it may commit (the acked prefix, offset_track.h), commits at
 * a pace or at once, and the rebalance steps. Shared by the kafka pub/sub
 * backend and the kafka source, which differ in what they do with a
 * record, not in how its offset is accounted for.
 *
 * Rebalances: on assignment each partition gets a fresh tracker, starting
 * at the member's own acked point when the group refused the commit made
 * when the partition was given up (kafka_resume.h). On revocation the
 * acked points are committed synchronously (also those sent before and not
 * confirmed) and the trackers dropped; acks arriving later are ignored
 * (the next owner delivers those records again). Lost partitions (session
 * expired) are given up without a commit.
 *
 * Locking: the functions named _locked expect the owner's mutex (given to
 * ofe_kafka_member_init) held; the others take it themselves. The
 * rebalance functions run on the thread that polls the consumer. */
#ifndef OFE_KAFKA_MEMBER_H
#define OFE_KAFKA_MEMBER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "ofe/ce.h"
#include "ofe/kafka_resume.h"
#include "ofe/offset_track.h"

struct ofe_kafka_part {
    struct ofe_kafka_part *next;     /* in the assigned list */
    struct ofe_kafka_part *all_next; /* every part still referenced */
    char *topic;
    int32_t partition;
    int refs; /* 1 while assigned, + records handed on and unresolved */
    bool active;
    struct ofe_offset_track t;
    int64_t sent;      /* commit point sent last; -1 none */
    int64_t committed; /* commit point confirmed; -1 none */
};

struct ofe_kafka_member {
    pthread_mutex_t *lock;                    /* the owner's */
    rd_kafka_t *rk;                           /* set once the consumer exists */
    const char *component, *instance, *group; /* log lines */
    unsigned commit_ms;
    /* under lock */
    struct ofe_kafka_part *active, *all;
    size_t tracked; /* offsets handed on and not yet past the acked prefix */
    bool paused;    /* fetching paused (back-pressure) */
    /* the polling thread's */
    uint64_t last_commit;
    struct ofe_kafka_resume resume;
    char fetch_err[256]; /* the last fetch error logged, to log a repeat once */
};

void ofe_kafka_member_init(struct ofe_kafka_member *m, pthread_mutex_t *lock, const char *component,
                           const char *instance, const char *group, unsigned commit_ms);
/* Frees every part; call once the consumer is destroyed. */
void ofe_kafka_member_fini(struct ofe_kafka_member *m);

/* The assigned part of topic[partition], or NULL. */
struct ofe_kafka_part *ofe_kafka_member_find_locked(struct ofe_kafka_member *m, const char *topic,
                                                    int32_t partition);
/* Whether a record is not to be handed on: its partition is not assigned,
 * or the record was handed on already in this assignment (a queue left
 * over from before a rebalance). */
bool ofe_kafka_member_skip_locked(struct ofe_kafka_member *m, const char *topic, int32_t partition,
                                  int64_t offset);
/* Records that the record at offset is handed on: *part and *seq identify
 * it for ofe_kafka_member_resolve_locked. Returns false when it must not
 * be (see ofe_kafka_member_skip_locked) or memory ran out. */
bool ofe_kafka_member_take_locked(struct ofe_kafka_member *m, const char *topic, int32_t partition,
                                  int64_t offset, struct ofe_kafka_part **part, uint64_t *seq);
/* A handed-on record is done: acked (its offset may be committed once the
 * ones before it are) or not (it stays uncommitted: read again after a
 * restart or by the next owner). */
void ofe_kafka_member_resolve_locked(struct ofe_kafka_member *m, struct ofe_kafka_part *part,
                                     uint64_t seq, bool acked);
/* Records handed on from the partitions of parts and not resolved. */
int ofe_kafka_member_unresolved_locked(struct ofe_kafka_member *m,
                                       const rd_kafka_topic_partition_list_t *parts);

/* Commits the points that moved: asynchronously at most every commit_ms,
 * or now and synchronously when sync (then also the points sent before
 * and not confirmed), for the partitions of only (NULL: all). Returns the
 * synchronous commit's error. */
rd_kafka_resp_err_t ofe_kafka_member_commit(struct ofe_kafka_member *m,
                                            const rd_kafka_topic_partition_list_t *only, bool sync);
/* The offset commit callback's outcome (rd_kafka_conf_set_offset_commit_cb). */
void ofe_kafka_member_committed(struct ofe_kafka_member *m, rd_kafka_resp_err_t err,
                                const rd_kafka_topic_partition_list_t *offsets);

/* Pauses (librdkafka drops what it prefetched) or resumes fetching from
 * every assigned partition; partitions assigned while paused start
 * paused. */
void ofe_kafka_member_set_paused(struct ofe_kafka_member *m, bool pause);
bool ofe_kafka_member_paused(struct ofe_kafka_member *m);
/* Logs a fetch error (a message with err set) at warn level, a repeat of
 * the last one not again; ofe_kafka_member_fetch_ok forgets it. */
void ofe_kafka_member_fetch_error(struct ofe_kafka_member *m, const rd_kafka_message_t *msg);
void ofe_kafka_member_fetch_ok(struct ofe_kafka_member *m);

/* Adds a record's headers to h, by reference (valid while the record
 * is). */
void ofe_kafka_message_headers(const rd_kafka_message_t *msg, struct ofe_hdrs *h);

/* The rebalance callback's three cases. */
void ofe_kafka_member_assign(struct ofe_kafka_member *m, rd_kafka_t *rk,
                             rd_kafka_topic_partition_list_t *parts);
void ofe_kafka_member_revoke(struct ofe_kafka_member *m, rd_kafka_t *rk,
                             const rd_kafka_topic_partition_list_t *parts);
void ofe_kafka_member_rebalance_error(struct ofe_kafka_member *m, rd_kafka_t *rk,
                                      rd_kafka_resp_err_t err);

#endif
