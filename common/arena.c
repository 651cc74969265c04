/* Bump allocator (ofe/arena.h). */
#include "ofe/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct ofe_arena_chunk {
    struct ofe_arena_chunk *next;
    size_t size;
    _Alignas(16) char mem[];
};

#define ARENA_MIN_DEFAULT 4096

static void free_chunks(struct ofe_arena *a)
{
    for (struct ofe_arena_chunk *c = a->head, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    a->head = NULL;
    a->p = a->end = NULL;
    a->total = 0;
}

/* A new current chunk with room for at least n bytes. */
static int grow(struct ofe_arena *a, size_t n)
{
    size_t size = a->min ? a->min : ARENA_MIN_DEFAULT;
    if (a->total > size)
        size = a->total;
    if (n > size)
        size = n;
    struct ofe_arena_chunk *c = malloc(sizeof(*c) + size);
    if (!c)
        return -1;
    c->next = a->head;
    c->size = size;
    a->head = c;
    a->total += size;
    a->p = c->mem;
    a->end = c->mem + size;
    return 0;
}

char *ofe_arena_bytes(struct ofe_arena *a, size_t n)
{
    if ((!a->p || (size_t)(a->end - a->p) < n) && grow(a, n) != 0)
        return NULL;
    char *r = a->p;
    a->p += n;
    return r;
}

void *ofe_arena_alloc(struct ofe_arena *a, size_t n)
{
    size_t pad = a->p ? (size_t)(-(uintptr_t)a->p & 15) : 0;
    if (!a->p || (size_t)(a->end - a->p) < pad + n) {
        if (grow(a, n) != 0)
            return NULL;
        pad = 0; /* chunks start aligned */
    }
    char *r = a->p + pad;
    a->p = r + n;
    return r;
}

char *ofe_arena_strdup(struct ofe_arena *a, const char *s, size_t n)
{
    char *d = ofe_arena_bytes(a, n + 1);
    if (d) {
        if (n)
            memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

void ofe_arena_reset(struct ofe_arena *a, size_t keep_max)
{
    if (!a->head)
        return;
    size_t total = a->total;
    if (total > keep_max) {
        free_chunks(a);
        return;
    }
    if (a->head->next) {
        /* several chunks: one of the total size instead */
        free_chunks(a);
        grow(a, total); /* when out of memory, the next allocation tries again */
        return;
    }
    a->p = a->head->mem;
    a->end = a->head->mem + a->head->size;
}

void ofe_arena_fini(struct ofe_arena *a)
{
    free_chunks(a);
}
