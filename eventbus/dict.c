#include "dict.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <pthread.h>
#include <time.h>

#include "ofe/err.h"

static uint64_t hkey[2];
static pthread_once_t hkey_once = PTHREAD_ONCE_INIT;

static void hkey_init(void)
{
    if (getrandom(hkey, sizeof(hkey), GRND_NONBLOCK) != (ssize_t)sizeof(hkey)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        hkey[0] = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)ts.tv_sec;
        hkey[1] = (uint64_t)(uintptr_t)&ts ^ 0xC2B2AE3D27D4EB4Full;
    }
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

uint64_t bus_hash(const void *data, size_t len)
{
    pthread_once(&hkey_once, hkey_init);
    const unsigned char *in = data;
    uint64_t k0 = hkey[0], k1 = hkey[1];
    uint64_t v0 = 0x736f6d6570736575ull ^ k0, v1 = 0x646f72616e646f6dull ^ k1;
    uint64_t v2 = 0x6c7967656e657261ull ^ k0, v3 = 0x7465646279746573ull ^ k1;
    uint64_t b = (uint64_t)len << 56;
    size_t left = len & 7;
    const unsigned char *end = in + len - left;
    for (; in != end; in += 8) {
        uint64_t m;
        memcpy(&m, in, 8);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t i = 0; i < left; i++)
        b |= (uint64_t)in[i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

void bus_dict_init(struct bus_dict *d)
{
    memset(d, 0, sizeof(*d));
}

void bus_dict_fini(struct bus_dict *d)
{
    for (size_t i = 0; i < d->cap; i++)
        free(d->v[i].key);
    free(d->v);
    memset(d, 0, sizeof(*d));
}

struct bus_dict_ent *bus_dict_find(const struct bus_dict *d, const void *key, size_t klen)
{
    if (!d->n)
        return NULL;
    uint64_t h = bus_hash(key, klen);
    size_t mask = d->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct bus_dict_ent *e = &d->v[i];
        if (!e->key)
            return NULL;
        if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0)
            return e;
    }
}

void *bus_dict_get(const struct bus_dict *d, const void *key, size_t klen)
{
    struct bus_dict_ent *e = bus_dict_find(d, key, klen);
    return e ? e->val : NULL;
}

static void place(struct bus_dict_ent *v, size_t cap, struct bus_dict_ent *e)
{
    size_t mask = cap - 1;
    size_t i = e->hash & mask;
    while (v[i].key)
        i = (i + 1) & mask;
    v[i] = *e;
}

static int grow(struct bus_dict *d)
{
    size_t ncap = d->cap ? d->cap * 2 : 8;
    struct bus_dict_ent *nv = calloc(ncap, sizeof(*nv));
    if (!nv)
        return OFE_ENOMEM;
    for (size_t i = 0; i < d->cap; i++)
        if (d->v[i].key)
            place(nv, ncap, &d->v[i]);
    free(d->v);
    d->v = nv;
    d->cap = ncap;
    return 0;
}

int bus_dict_set(struct bus_dict *d, const void *key, size_t klen, void *val)
{
    struct bus_dict_ent *e = bus_dict_find(d, key, klen);
    if (e) {
        e->val = val;
        return 0;
    }
    if ((d->n + 1) * 4 > d->cap * 3 && grow(d) != 0)
        return OFE_ENOMEM;
    struct bus_dict_ent ne = {.klen = klen, .hash = bus_hash(key, klen), .val = val};
    ne.key = malloc(klen + 1);
    if (!ne.key)
        return OFE_ENOMEM;
    memcpy(ne.key, key, klen);
    ne.key[klen] = '\0';
    place(d->v, d->cap, &ne);
    d->n++;
    return 0;
}

void *bus_dict_del(struct bus_dict *d, const void *key, size_t klen)
{
    struct bus_dict_ent *e = bus_dict_find(d, key, klen);
    if (!e)
        return NULL;
    void *val = e->val;
    free(e->key);
    size_t mask = d->cap - 1;
    size_t hole = (size_t)(e - d->v);
    /* Backward-shift deletion keeps probe chains intact without tombstones. */
    for (size_t i = (hole + 1) & mask; d->v[i].key; i = (i + 1) & mask) {
        size_t home = d->v[i].hash & mask;
        if (((i - home) & mask) >= ((i - hole) & mask)) {
            d->v[hole] = d->v[i];
            hole = i;
        }
    }
    memset(&d->v[hole], 0, sizeof(d->v[hole]));
    d->n--;
    return val;
}

struct bus_dict_ent *bus_dict_next(const struct bus_dict *d, size_t *pos)
{
    while (*pos < d->cap) {
        struct bus_dict_ent *e = &d->v[(*pos)++];
        if (e->key)
            return e;
    }
    return NULL;
}

static int cmp_ent(const void *a, const void *b)
{
    const struct bus_dict_ent *x = *(struct bus_dict_ent *const *)a;
    const struct bus_dict_ent *y = *(struct bus_dict_ent *const *)b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->key, y->key, n);
    if (c)
        return c;
    return x->klen < y->klen ? -1 : x->klen > y->klen;
}

struct bus_dict_ent **bus_dict_sorted(const struct bus_dict *d)
{
    if (!d->n)
        return NULL;
    struct bus_dict_ent **v = malloc(d->n * sizeof(*v));
    if (!v)
        return NULL;
    size_t k = 0, pos = 0;
    struct bus_dict_ent *e;
    while ((e = bus_dict_next(d, &pos)))
        v[k++] = e;
    qsort(v, k, sizeof(*v), cmp_ent);
    return v;
}
