/* Header lists for the protocol binding codecs: HTTP headers, Kafka
 * headers, MQTT 5 user properties, NATS headers, Redis stream fields.
 *
 * Copied strings go to a chain of chunks that never move, so a pointer
 * handed out stays valid until reset/fini. reset keeps one chunk big
 * enough for the last round, so a list reused per message stops
 * allocating after the first few messages. */
#include <stdlib.h>
#include <string.h>

#include "ce_int.h"
#include "ofe/err.h"

struct hdrs_chunk {
    struct hdrs_chunk *next;
    size_t size;
    _Alignas(8) char mem[];
};

struct hdrs_arena {
    struct hdrs_chunk *head; /* current chunk first */
    char *p, *end;
    size_t total; /* bytes of all chunks */
};

#define HDRS_CHUNK_MIN 512

void ofe_hdrs_init(struct ofe_hdrs *h)
{
    h->v = NULL;
    h->n = h->cap = 0;
    ofe_buf_init(&h->store);
    h->arena = NULL;
}

static void free_chunks(struct hdrs_arena *a)
{
    struct hdrs_chunk *c = a->head;
    while (c) {
        struct hdrs_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->p = a->end = NULL;
    a->total = 0;
}

void ofe_hdrs_fini(struct ofe_hdrs *h)
{
    if (h->arena) {
        free_chunks(h->arena);
        free(h->arena);
    }
    free(h->v);
    ofe_buf_fini(&h->store);
    ofe_hdrs_init(h);
}

void ofe_hdrs_reset(struct ofe_hdrs *h)
{
    h->n = 0;
    ofe_buf_reset(&h->store);
    struct hdrs_arena *a = h->arena;
    if (!a || !a->head)
        return;
    if (a->head->next) {
        /* several chunks: replace them by one of the total size */
        size_t total = a->total;
        free_chunks(a);
        struct hdrs_chunk *c = malloc(sizeof(*c) + total);
        if (!c)
            return; /* the next add allocates again */
        c->next = NULL;
        c->size = total;
        a->head = c;
        a->total = total;
    }
    a->p = a->head->mem;
    a->end = a->head->mem + a->head->size;
}

char *ofe_hdrs__alloc(struct ofe_hdrs *h, size_t n)
{
    struct hdrs_arena *a = h->arena;
    if (!a) {
        a = h->arena = calloc(1, sizeof(*a));
        if (!a)
            return NULL;
    }
    if ((size_t)(a->end - a->p) < n) {
        size_t size = a->total > HDRS_CHUNK_MIN ? a->total : HDRS_CHUNK_MIN;
        if (size < n)
            size = n;
        struct hdrs_chunk *c = malloc(sizeof(*c) + size);
        if (!c)
            return NULL;
        c->next = a->head;
        c->size = size;
        a->head = c;
        a->total += size;
        a->p = c->mem;
        a->end = c->mem + size;
    }
    char *r = a->p;
    a->p += n;
    return r;
}

int ofe_hdrs_add_ref(struct ofe_hdrs *h, const char *name, size_t nlen, const char *value,
                     size_t vlen)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        struct ofe_hdr *v = realloc(h->v, cap * sizeof(*v));
        if (!v)
            return OFE_ENOMEM;
        h->v = v;
        h->cap = cap;
    }
    struct ofe_hdr *e = &h->v[h->n++];
    e->name = name;
    e->name_len = nlen;
    e->value = value;
    e->value_len = vlen;
    return 0;
}

int ofe_hdrs_add_copy(struct ofe_hdrs *h, const char *name, size_t nlen, const char *value,
                      size_t vlen)
{
    if (nlen > SIZE_MAX / 4 || vlen > SIZE_MAX / 4)
        return OFE_ENOMEM;
    char *p = ofe_hdrs__alloc(h, nlen + vlen + 2);
    if (!p)
        return OFE_ENOMEM;
    if (nlen)
        memcpy(p, name, nlen);
    p[nlen] = '\0';
    char *v = p + nlen + 1;
    if (vlen)
        memcpy(v, value, vlen);
    v[vlen] = '\0';
    return ofe_hdrs_add_ref(h, p, nlen, v, vlen);
}

static bool name_eq_ci(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x |= 0x20;
        if (y >= 'A' && y <= 'Z')
            y |= 0x20;
        if (x != y)
            return false;
    }
    return true;
}

const struct ofe_hdr *ofe_hdrs_get(const struct ofe_hdrs *h, const char *name)
{
    if (!h)
        return NULL;
    size_t n = strlen(name);
    for (size_t i = 0; i < h->n; i++)
        if (name_eq_ci(h->v[i].name, h->v[i].name_len, name, n))
            return &h->v[i];
    return NULL;
}
