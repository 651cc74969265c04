/* Durable storage of ofe-eventbus: per stream, an append-only log of
 * segment files holding entries, tombstones and trims, plus a group
 * journal holding consumer-group state; group-commit fsync on its own
 * thread; recovery. The byte layout is in docs/eventbus-format.md.
 *
 * Threads: everything runs on the event loop thread except the fsync
 * thread, which only syncs files it holds references to, unlinks files
 * it is told to after a sync, and publishes the durable sequence number.
 *
 * A store without a data directory keeps its files in memory (tests and
 * fuzzing); it behaves the same, without durability. */
#ifndef OFE_BUS_STORE_H
#define OFE_BUS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ofe/buf.h"
#include "stream.h"

#define BUS_FORMAT_VERSION 1
#define BUS_SEG_MAGIC      "OFEBUSSG"
#define BUS_JOURNAL_MAGIC  "OFEBUSGJ"
#define BUS_SEG_HDR_FIXED  76 /* header bytes before the name */
#define BUS_JOURNAL_HDR    28
#define BUS_REC_HDR        9 /* u32 len, u32 crc, u8 type */
#define BUS_REC_MAX        (1u << 30)
#define BUS_NAME_MAX       65000 /* longest stream name we store */

/* Record types (docs/eventbus-format.md). */
enum {
    BUS_REC_ENTRY = 1,
    BUS_REC_DELETE = 2,
    BUS_REC_TRIM = 3,
    BUS_REC_GROUP_CREATE = 16,
    BUS_REC_GROUP_DESTROY = 17,
    BUS_REC_GROUP_SETID = 18,
    BUS_REC_CONSUMER_CREATE = 19,
    BUS_REC_CONSUMER_DELETE = 20,
    BUS_REC_PEL_SET = 21,
    BUS_REC_PEL_DEL = 22,
    BUS_REC_SNAP_BEGIN = 23,
    BUS_REC_SNAP_END = 24,
};

enum bus_fsync { BUS_FSYNC_ALWAYS = 0, BUS_FSYNC_EVERYSEC, BUS_FSYNC_NO };

struct bus_store_opts {
    const char *dir; /* data directory; NULL = in memory */
    enum bus_fsync fsync;
    uint64_t segment_bytes; /* roll segments at this size; 0 = 64 MiB */
    int notify_fd;          /* eventfd written when the durable seq moves; -1 = none */
    /* fsync latency observer (seconds), called on the fsync thread */
    void (*fsync_observe)(void *arg, double seconds);
    void *observe_arg;
};

struct bus_store;
struct bus_log;

/* Opens (creating) the data directory and locks it (flock on
 * DIR/LOCK). Returns 0, OFE_EIO (errstr says which path and why) or
 * OFE_EEXIST when another process holds the lock. */
int bus_store_open(const struct bus_store_opts *opts, struct bus_store **out, char *errstr,
                   size_t errstr_size);
/* Flushes, syncs (whatever the policy), stops the fsync thread, closes
 * files and frees the store; streams must have been detached (their logs
 * are freed here). NULL is a no-op. */
void bus_store_close(struct bus_store *st);

/* Recovery: rebuilds every stored stream and calls add(arg, stream) for
 * each (the callee owns the stream). Torn or corrupt tails are truncated
 * and reported in the log. Returns 0 or OFE_EIO / OFE_ENOMEM. */
int bus_store_load(struct bus_store *st, int (*add)(void *arg, struct bus_stream *s), void *arg,
                   char *errstr, size_t errstr_size);

/* Gives a new stream its log (directory and first segment). Returns 0 or
 * OFE_EIO / OFE_ENOMEM / OFE_EINVAL (name too long). */
int bus_log_create(struct bus_store *st, struct bus_stream *s, char *errstr, size_t errstr_size);
/* Deletes a stream's files (DEL) and frees its log. */
void bus_log_destroy(struct bus_log *log);
/* Frees the in-memory log of a stream without touching its files. */
void bus_log_free(struct bus_log *log);

/* True when writes can be accepted; else errstr says why (a write or
 * fsync failed earlier). */
bool bus_store_writable(const struct bus_store *st, char *errstr, size_t errstr_size);

/* ---- records (each writes into the log's buffer and returns 0 or
 * OFE_ENOMEM / OFE_EIO; the caller then applies the same change) ---- */

/* One XADD entry; fields are nfields*2 strings (names and values). On
 * success *seg / *off give its location for the index. */
int bus_log_entry(struct bus_log *log, const struct bus_id *id, bool node_start, size_t nfields,
                  const char *const *fv, const size_t *fvlen, uint32_t *seg, uint32_t *off);
int bus_log_delete(struct bus_log *log, const struct bus_id *ids, size_t n);
int bus_log_trim(struct bus_log *log, const struct bus_trim_plan *plan);
int bus_log_group_create(struct bus_log *log, const struct bus_group *g);
int bus_log_group_destroy(struct bus_log *log, const struct bus_group *g);
int bus_log_group_setid(struct bus_log *log, const struct bus_group *g);
int bus_log_consumer_create(struct bus_log *log, const struct bus_consumer *c);
int bus_log_consumer_delete(struct bus_log *log, const struct bus_consumer *c);
/* Pending entries (ids with their state) now owned by consumer c. */
int bus_log_pel_set(struct bus_log *log, const struct bus_consumer *c,
                    struct bus_nack *const *nacks, size_t n);
int bus_log_pel_del(struct bus_log *log, const struct bus_group *g, const struct bus_id *ids,
                    size_t n);

/* ---- reading entries -------------------------------------------------- */

struct bus_reader {
    char *buf;
    size_t cap;
    uint64_t file;   /* id of the file cached, 0 = none */
    uint64_t lo, hi; /* file range in buf */
};
void bus_reader_init(struct bus_reader *rd);
void bus_reader_fini(struct bus_reader *rd);
/* Reads the entry of a slot. *fields points at its RESP array of names and
 * values ("*2\r\n$1\r\nf\r\n$1\r\nv\r\n"), *flen bytes, *nfields pairs;
 * valid until the next read. Returns 0, OFE_EIO, or OFE_EPARSE (checksum or
 * format mismatch: the record is corrupt). */
int bus_log_read(struct bus_log *log, const struct bus_slot *sl, struct bus_reader *rd,
                 const char **fields, size_t *flen, uint32_t *nfields);

/* ---- end of an event loop iteration ----------------------------------- */

/* Writes every buffered record to its file, hands what was written to the
 * fsync thread (policy always) and returns the sequence number that makes
 * all of it durable (0 when nothing was written). Errors are logged and make
 * the store unwritable. */
uint64_t bus_store_flush(struct bus_store *st);
/* The sequence a reply written now must wait for: everything buffered or
 * handed over so far (loop thread). */
uint64_t bus_store_flush_pending(const struct bus_store *st);
/* Removes segments no index slot refers to any more (after trims). */
void bus_log_gc(struct bus_log *log);
/* Highest sequence number known to be durable (any thread). Under
 * everysec/no, every written sequence counts as durable. */
uint64_t bus_store_durable(const struct bus_store *st);
/* Writes and fsyncs everything now, on the calling thread (shutdown);
 * afterwards every written sequence is durable. */
void bus_store_sync_now(struct bus_store *st);
/* True after a failed write or fsync (held replies must not be sent). */
bool bus_store_failed(const struct bus_store *st);

/* Periodic work (called about once a second): everysec syncs, journal
 * compaction. */
void bus_store_cron(struct bus_store *st);

/* ---- retention --------------------------------------------------------- */

struct bus_retention {
    uint64_t max_age_ms;  /* 0 = none */
    uint64_t max_bytes;   /* 0 = none */
    uint64_t max_entries; /* 0 = none */
};
/* Applies retention to one stream: whole old segments are dropped while
 * over max_bytes or older than max_age, then entries are trimmed logically
 * (exact MAXLEN / MINID). Returns the entries removed. */
long long bus_store_retain(struct bus_store *st, struct bus_stream *s,
                           const struct bus_retention *r, uint64_t now_ms);

/* Totals for INFO / metrics. */
struct bus_store_stats {
    uint64_t bytes_on_disk;
    uint64_t segments;
    uint64_t fsyncs;
    uint64_t writes;
};
void bus_store_stats(const struct bus_store *st, struct bus_store_stats *out);
uint64_t bus_log_bytes(const struct bus_log *log);

/* ---- segment files (used by recovery, tests and the fuzz harness) ---- */

/* Scans a segment image: header, then records. apply_rec is called for
 * every valid record (type, payload, len, offset). Stops at the first
 * invalid record. Returns the length of the valid prefix, or 0 when the
 * header itself is invalid; *why describes what stopped the scan (NULL at
 * a clean end). */
struct bus_seg_hdr {
    uint16_t version;
    uint64_t no, created_ms;
    struct bus_id last_id, max_deleted;
    uint64_t entries_added;
    const char *name;
    size_t nlen;
    size_t hdr_len;
};
size_t bus_seg_scan(const unsigned char *data, size_t len, struct bus_seg_hdr *hdr,
                    int (*apply_rec)(void *arg, int type, const unsigned char *p, size_t n,
                                     uint64_t off),
                    void *arg, const char **why);
/* Applies one segment record to a stream (replay). Returns 0, or
 * OFE_EPARSE when the payload is malformed. */
int bus_seg_apply(struct bus_stream *s, int type, const unsigned char *p, size_t n, uint32_t seg,
                  uint32_t off);
/* Applies one journal record to a stream's groups. Returns 0 or
 * OFE_EPARSE. */
int bus_journal_apply(struct bus_stream *s, int type, const unsigned char *p, size_t n);

#endif
