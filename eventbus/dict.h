/* A hash map from binary-safe string keys to pointers: the keyspace,
 * consumer groups and consumers. Open addressing with linear probing and
 * backward-shift deletion; keys are hashed with SipHash-1-3 under a random
 * per-process key, so clients cannot choose colliding names. Not
 * thread-safe: every dict belongs to the event loop thread. */
#ifndef OFE_BUS_DICT_H
#define OFE_BUS_DICT_H

#include <stddef.h>
#include <stdint.h>

struct bus_dict_ent {
    char *key; /* owned copy, NUL-terminated after klen bytes; NULL = free slot */
    size_t klen;
    uint64_t hash;
    void *val;
};

struct bus_dict {
    struct bus_dict_ent *v;
    size_t cap; /* power of two, or 0 */
    size_t n;
};

void bus_dict_init(struct bus_dict *d);
/* Frees the table and the key copies (not the values). */
void bus_dict_fini(struct bus_dict *d);
/* Returns the value, or NULL when absent. */
void *bus_dict_get(const struct bus_dict *d, const void *key, size_t klen);
/* Returns the stored key copy (stable until the entry is deleted or the
 * dict resized... use only transiently), or NULL. */
struct bus_dict_ent *bus_dict_find(const struct bus_dict *d, const void *key, size_t klen);
/* Inserts or replaces. Returns 0 or OFE_ENOMEM (the dict is unchanged). */
int bus_dict_set(struct bus_dict *d, const void *key, size_t klen, void *val);
/* Removes; returns the old value or NULL. */
void *bus_dict_del(struct bus_dict *d, const void *key, size_t klen);
/* Iteration: for (size_t i = 0; (e = bus_dict_next(d, &i));) ... The dict
 * must not change during iteration. */
struct bus_dict_ent *bus_dict_next(const struct bus_dict *d, size_t *pos);
/* Entries sorted by key bytes (memcmp, shorter first on a tie), as Redis
 * lists groups and consumers. Returns a malloc'd array of d->n pointers
 * (caller frees), or NULL when empty or out of memory. */
struct bus_dict_ent **bus_dict_sorted(const struct bus_dict *d);

/* SipHash-1-3 of data under the process key. */
uint64_t bus_hash(const void *data, size_t len);

#endif
