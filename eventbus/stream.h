/* The stream model of ofe-eventbus: stream ids, the in-memory index of a
 * stream (entries themselves live in the log on disk, see store.h),
 * consumer groups, consumers and pending entries lists (PEL), with the
 * semantics of Redis 7.0 streams.
 *
 * Every mutation is expressed as a log record (store.h) that is first
 * written and then applied by the same bus_stream_apply_* function that
 * recovery uses, so a replayed log rebuilds exactly the state that was
 * served. Everything here runs on the event loop thread. */
#ifndef OFE_BUS_STREAM_H
#define OFE_BUS_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dict.h"

struct bus_id {
    uint64_t ms, seq;
};

#define BUS_ID_MAX ((struct bus_id){UINT64_MAX, UINT64_MAX})

static inline int bus_id_cmp(const struct bus_id *a, const struct bus_id *b)
{
    if (a->ms != b->ms)
        return a->ms < b->ms ? -1 : 1;
    if (a->seq != b->seq)
        return a->seq < b->seq ? -1 : 1;
    return 0;
}
static inline bool bus_id_zero(const struct bus_id *a)
{
    return a->ms == 0 && a->seq == 0;
}
/* Writes "ms-seq" (no NUL); returns the length; buf >= 42 bytes. */
size_t bus_id_fmt(char *buf, const struct bus_id *id);
/* id + 1 / id - 1; return false on overflow (id is unchanged then). */
bool bus_id_incr(struct bus_id *id);
bool bus_id_decr(struct bus_id *id);

/* One index slot per entry ever appended and not yet trimmed away. */
#define BUS_SLOT_DELETED 0x80000000u /* removed by XDEL or an exact trim */
#define BUS_SLOT_NODE    0x40000000u /* first entry of a node (see below) */
#define BUS_SLOT_DEAD    0x20000000u /* on a node's first slot: node freed by XDEL */
#define BUS_SLOT_SEGMASK 0x1fffffffu /* segment number, modulo 2^29 */

/* Nodes: Redis stores a stream as nodes of up to 100 entries and trims
 * with `~` by whole nodes only. We keep the same boundaries (by entry count;
 * Redis also starts a node at 4 KiB, which we do not emulate) so
 * approximate trimming removes the same entries for small events. */
#define BUS_NODE_MAX_ENTRIES 100

struct bus_slot {
    uint64_t ms, seq;
    uint32_t seg; /* flags | (segment number & BUS_SLOT_SEGMASK) */
    uint32_t off; /* offset of the entry record in its segment */
};

struct bus_consumer;

/* A pending entry. It sits in two treaps at once: the group's PEL
 * (link[0]) and its consumer's PEL (link[1]). */
struct bus_nack {
    struct bus_id id;
    struct bus_consumer *consumer;
    uint64_t delivery_time; /* ms since the epoch */
    uint64_t delivery_count;
    struct bus_nack *link[2][2];
    uint32_t prio;
};

struct bus_group;

struct bus_consumer {
    char *name;
    size_t nlen;
    uint64_t seen_time;
    struct bus_nack *pel; /* treap root, link[1] */
    size_t pel_count;
    uint32_t jid; /* number in the group journal */
    struct bus_group *group;
};

#define BUS_ENTRIES_READ_INVALID (-1)

struct bus_group {
    char *name;
    size_t nlen;
    struct bus_id last_id;
    int64_t entries_read; /* or BUS_ENTRIES_READ_INVALID */
    struct bus_nack *pel; /* treap root, link[0] */
    size_t pel_count;
    struct bus_dict consumers;   /* name -> struct bus_consumer */
    struct bus_dict cons_by_jid; /* 4-byte jid -> consumer (journal replay) */
    uint32_t jid;
    uint32_t next_cid;
    struct bus_stream *stream;
    void *metric; /* pending gauge, owned by the server */
};

struct bus_log; /* store.h */

struct bus_stream {
    char *name;
    size_t nlen;
    struct bus_slot *slots; /* slots[head .. head+n) */
    size_t head, n, cap;
    uint64_t length; /* live entries */
    struct bus_id last_id, max_deleted, first_id;
    uint64_t entries_added;
    uint32_t tail_cnt;      /* slots in the tail node, 0 = next append opens a node */
    struct bus_dict groups; /* name -> struct bus_group */
    struct bus_dict groups_by_jid;
    uint32_t next_gid;
    struct bus_log *log;
    void *waiters; /* blocked clients (server.c) */
    bool ready;    /* has new data for blocked clients this iteration */
    struct bus_stream *ready_next;
};

/* ---- streams -------------------------------------------------------- */

/* Creates an empty stream (no log attached). Returns NULL on allocation
 * failure. */
struct bus_stream *bus_stream_new(const char *name, size_t nlen);
/* Frees the stream, its groups and index (not its log). NULL is a no-op. */
void bus_stream_free(struct bus_stream *s);

static inline struct bus_slot *bus_slot_at(const struct bus_stream *s, size_t i)
{
    return &s->slots[s->head + i];
}
static inline struct bus_id bus_slot_id(const struct bus_slot *sl)
{
    return (struct bus_id){sl->ms, sl->seq};
}
/* Index (relative to head) of the first slot with id >= id; s->n if none. */
size_t bus_stream_lower_bound(const struct bus_stream *s, const struct bus_id *id);
/* Index of the live entry with exactly this id, or SIZE_MAX. */
size_t bus_stream_find(const struct bus_stream *s, const struct bus_id *id);
/* Id of the first / last live entry; false when the stream is empty. */
bool bus_stream_first(const struct bus_stream *s, struct bus_id *out);
bool bus_stream_last(const struct bus_stream *s, struct bus_id *out);
/* Number of nodes (Redis's radix-tree-keys), computed. */
size_t bus_stream_nodes(const struct bus_stream *s);

/* The next id XADD * would use: (now, 0) or (last.ms, last.seq + 1). */
struct bus_id bus_stream_next_id(const struct bus_stream *s, uint64_t now_ms);

/* Appends an index slot for an entry written at (seg, off). node_start says
 * whether it opens a node (decided by bus_stream_node_start). Returns 0 or
 * OFE_ENOMEM. */
bool bus_stream_node_start(const struct bus_stream *s);
int bus_stream_apply_entry(struct bus_stream *s, const struct bus_id *id, bool node_start,
                           uint32_t seg, uint32_t off);
/* XDEL of one id: marks it deleted (freeing its node when it was the node's
 * last live entry). Returns true when a live entry was deleted. Updates
 * max_deleted and first_id. */
bool bus_stream_apply_delete(struct bus_stream *s, const struct bus_id *id);

/* Trimming as Redis's streamTrim. */
enum bus_trim_strategy { BUS_TRIM_NONE = 0, BUS_TRIM_MAXLEN, BUS_TRIM_MINID };
struct bus_trim {
    enum bus_trim_strategy strategy;
    bool approx;
    long long maxlen;
    struct bus_id minid;
    long long limit; /* 0 = unlimited */
};
/* The effect of a trim, computed without changing the stream: slots up to
 * and including remove_through are dropped from the index; live slots up
 * to and including mark_through are marked deleted. */
struct bus_trim_plan {
    bool remove, mark;
    struct bus_id remove_through, mark_through;
    long long deleted; /* entries removed, Redis's return value */
};
void bus_stream_plan_trim(const struct bus_stream *s, const struct bus_trim *t,
                          struct bus_trim_plan *plan);
void bus_stream_apply_trim(struct bus_stream *s, const struct bus_trim_plan *plan);
/* Drops the first k slots (they lie in segments removed by retention):
 * the index head moves past them. Returns the live entries removed. */
long long bus_stream_drop_slots(struct bus_stream *s, size_t k);
/* Recomputes tail_cnt and first_id after recovery. */
void bus_stream_after_load(struct bus_stream *s);

/* Redis's streamRangeHasTombstones / streamEstimateDistanceFromFirstEverEntry. */
bool bus_stream_range_has_tombstones(const struct bus_stream *s, const struct bus_id *start,
                                     const struct bus_id *end);
int64_t bus_stream_estimate_distance(const struct bus_stream *s, const struct bus_id *id);
/* The lag of a group as XINFO GROUPS reports it; false = unknown (nil). */
bool bus_group_lag(const struct bus_stream *s, const struct bus_group *g, int64_t *lag);

/* ---- groups, consumers, PEL ----------------------------------------- */

struct bus_group *bus_group_get(const struct bus_stream *s, const char *name, size_t nlen);
/* Creates a group (jid 0 = assign the next one). NULL on ENOMEM. */
struct bus_group *bus_group_create(struct bus_stream *s, const char *name, size_t nlen,
                                   const struct bus_id *last_id, int64_t entries_read,
                                   uint32_t jid);
void bus_group_destroy(struct bus_stream *s, struct bus_group *g);
struct bus_group *bus_group_by_jid(const struct bus_stream *s, uint32_t jid);

struct bus_consumer *bus_consumer_get(const struct bus_group *g, const char *name, size_t nlen);
struct bus_consumer *bus_consumer_create(struct bus_group *g, const char *name, size_t nlen,
                                         uint64_t seen_time, uint32_t jid);
/* Deletes a consumer and its pending entries; returns how many it had. */
size_t bus_consumer_delete(struct bus_group *g, struct bus_consumer *c);
struct bus_consumer *bus_consumer_by_jid(const struct bus_group *g, uint32_t jid);

struct bus_nack *bus_pel_find(const struct bus_group *g, const struct bus_id *id);
/* Smallest entry with id >= id in the group PEL (which = 0) or a consumer
 * PEL (which = 1, root = consumer->pel). */
struct bus_nack *bus_pel_seek(struct bus_nack *root, int which, const struct bus_id *id);
/* The entry after n in the same tree (by id). */
struct bus_nack *bus_pel_next(struct bus_nack *root, int which, const struct bus_nack *n);
/* Sets or moves a pending entry: creates it when absent, else changes
 * owner, time and count. Returns the entry or NULL on ENOMEM. */
struct bus_nack *bus_pel_set(struct bus_group *g, const struct bus_id *id, struct bus_consumer *c,
                             uint64_t delivery_time, uint64_t delivery_count);
/* Removes an entry; returns true when it was pending. */
bool bus_pel_del(struct bus_group *g, const struct bus_id *id);

#endif
