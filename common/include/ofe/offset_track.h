/* The offsets of one partition (Kafka) handed to consumers, in order. Only
 * the offset after the acked prefix is ever committed, so a crash
 * redelivers from the first unacked message and never skips it, however
 * the acks arrive. Used by the kafka pub/sub backend and the kafka source.
 * Not thread-safe: the caller locks. */
#ifndef OFE_OFFSET_TRACK_H
#define OFE_OFFSET_TRACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ofe_offset_track {
    int64_t *off;   /* ring of delivered offsets, oldest first */
    uint8_t *acked; /* parallel to off */
    size_t cap, head, n;
    uint64_t seq_head; /* sequence number of the entry at head */
    int64_t point;     /* next offset to commit (acked prefix + 1); -1: none yet */
    int64_t last;      /* last offset pushed; -1: none */
};

void ofe_offset_track_init(struct ofe_offset_track *t);
void ofe_offset_track_fini(struct ofe_offset_track *t);
/* Records a delivered offset, which must be above every offset pushed
 * before (ofe_offset_track_seen says whether it is). Sets *seq, the handle
 * for ofe_offset_track_ack. Returns 0 or OFE_ENOMEM (nothing recorded). */
int ofe_offset_track_push(struct ofe_offset_track *t, int64_t offset, uint64_t *seq);
/* True when offset was already pushed (at or below the last one). */
bool ofe_offset_track_seen(const struct ofe_offset_track *t, int64_t offset);
/* Marks the entry seq acked and moves the commit point over the acked
 * prefix. Returns how many entries left the window (0 when seq is not in
 * it or was acked before). */
size_t ofe_offset_track_ack(struct ofe_offset_track *t, uint64_t seq);

#endif
