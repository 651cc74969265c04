/* Header lists for the protocol binding codecs: HTTP headers, Kafka
 * headers, MQTT 5 user properties, NATS headers, Redis stream fields.
 *
 * Copied strings go to an arena (ofe/arena.h): they never move, so a
 * pointer handed out stays valid until reset/fini, and reset keeps one
 * chunk big enough for the last round, so a list reused per message stops
 * allocating after the first few messages. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ce_int.h"
#include "ofe/arena.h"
#include "ofe/err.h"

#define HDRS_CHUNK_MIN 512

void ofe_hdrs_init(struct ofe_hdrs *h)
{
    h->v = NULL;
    h->n = h->cap = 0;
    ofe_buf_init(&h->store);
    h->arena = NULL;
}

void ofe_hdrs_fini(struct ofe_hdrs *h)
{
    if (h->arena) {
        ofe_arena_fini(h->arena);
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
    if (h->arena)
        ofe_arena_reset(h->arena, SIZE_MAX);
}

char *ofe_hdrs__alloc(struct ofe_hdrs *h, size_t n)
{
    if (!h->arena) {
        struct ofe_arena *a = malloc(sizeof(*a));
        if (!a)
            return NULL;
        *a = (struct ofe_arena)OFE_ARENA_INIT(HDRS_CHUNK_MIN);
        h->arena = a;
    }
    return ofe_arena_bytes(h->arena, n);
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
