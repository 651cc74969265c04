/* Bump allocator: many small allocations freed together. Used for a CESQL
 * expression's nodes, a header list's strings and a reply being parsed.
 * Not thread-safe; one owner at a time. (An event's own storage, in
 * common/ce.c, stays a bump allocator of its own: its first chunk is part
 * of the event's single malloc, and large data gets a chunk to itself
 * without giving up the current one, on the per-event path.) */
#ifndef OFE_ARENA_H
#define OFE_ARENA_H

#include <stddef.h>

struct ofe_arena_chunk;

struct ofe_arena {
    struct ofe_arena_chunk *head; /* current chunk first */
    char *p, *end;                /* free room of the current chunk */
    size_t total;                 /* bytes of all chunks */
    size_t min;                   /* smallest chunk; 0 = 4 KiB */
};

#define OFE_ARENA_INIT(min_chunk)                                                                  \
    {                                                                                              \
        NULL, NULL, NULL, 0, (min_chunk)                                                           \
    }

/* n bytes aligned for any type (16), or NULL when out of memory. The
 * memory is not cleared. A new chunk is as large as all the others
 * together, so a steady user soon allocates in one chunk. */
void *ofe_arena_alloc(struct ofe_arena *a, size_t n);
/* n bytes with no alignment (strings). */
char *ofe_arena_bytes(struct ofe_arena *a, size_t n);
/* A NUL-terminated copy of n bytes of s. */
char *ofe_arena_strdup(struct ofe_arena *a, const char *s, size_t n);
/* Forgets every allocation. The memory is kept, as one chunk of the total
 * size, when the total is at most keep_max bytes, else freed. */
void ofe_arena_reset(struct ofe_arena *a, size_t keep_max);
/* Frees everything; the arena is empty and usable afterwards. */
void ofe_arena_fini(struct ofe_arena *a);

#endif
