/* `ordering: ordered`: per subscriber, one job in flight per partition key
 * (the `partitionkey` extension; events without it share the key ""), in
 * arrival order. Keys with waiting jobs and nothing in flight sit in a
 * ready list served in FIFO order when a concurrency slot frees. A key
 * that has neither waiting nor running jobs is forgotten, so memory
 * follows the jobs held, which the subscription bounds.
 *
 * Every function here runs with s->lock held. */
#include <stdlib.h>
#include <string.h>

#include "ofe/err.h"
#include "trigger.h"

struct trg_keyq {
    struct trg_keyq *hnext; /* hash chain */
    struct trg_keyq *rnext; /* ready list */
    uint64_t hash;
    bool busy;     /* a job of this key runs */
    bool in_ready; /* listed in s->ready_* */
    struct trg_job *head, *tail;
    char key[];
};

static uint64_t hash_key(const char *k)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (; *k; k++) {
        h ^= (unsigned char)*k;
        h *= 0x100000001b3ull;
    }
    return h;
}

static int grow(struct trg_subscriber *s)
{
    size_t n = s->nbuckets ? s->nbuckets * 2 : 64;
    struct trg_keyq **b = calloc(n, sizeof(*b));
    if (!b)
        return OFE_ENOMEM;
    for (size_t i = 0; i < s->nbuckets; i++) {
        struct trg_keyq *q = s->buckets[i];
        while (q) {
            struct trg_keyq *nx = q->hnext;
            q->hnext = b[q->hash & (n - 1)];
            b[q->hash & (n - 1)] = q;
            q = nx;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->nbuckets = n;
    return 0;
}

static void ready_add(struct trg_subscriber *s, struct trg_keyq *q)
{
    q->rnext = NULL;
    q->in_ready = true;
    if (s->ready_tail)
        s->ready_tail->rnext = q;
    else
        s->ready_head = q;
    s->ready_tail = q;
}

static void forget(struct trg_subscriber *s, struct trg_keyq *q)
{
    struct trg_keyq **pp = &s->buckets[q->hash & (s->nbuckets - 1)];
    while (*pp != q)
        pp = &(*pp)->hnext;
    *pp = q->hnext;
    s->nkeys--;
    free(q);
}

int trg_order_push(struct trg_subscriber *s, struct trg_job *j)
{
    const char *key = j->key ? j->key : TRG_NO_KEY;
    uint64_t h = hash_key(key);
    if (s->nkeys >= s->nbuckets * 2 && grow(s) != 0 && !s->nbuckets)
        return OFE_ENOMEM;
    struct trg_keyq *q = s->buckets[h & (s->nbuckets - 1)];
    while (q && !(q->hash == h && !strcmp(q->key, key)))
        q = q->hnext;
    if (!q) {
        size_t kl = strlen(key);
        q = calloc(1, sizeof(*q) + kl + 1);
        if (!q)
            return OFE_ENOMEM;
        memcpy(q->key, key, kl + 1);
        q->hash = h;
        q->hnext = s->buckets[h & (s->nbuckets - 1)];
        s->buckets[h & (s->nbuckets - 1)] = q;
        s->nkeys++;
    }
    j->next = NULL;
    j->kq = q;
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
    if (!q->busy && !q->in_ready)
        ready_add(s, q);
    return 0;
}

struct trg_job *trg_order_next(struct trg_subscriber *s)
{
    struct trg_keyq *q = s->ready_head;
    if (!q)
        return NULL;
    s->ready_head = q->rnext;
    if (!s->ready_head)
        s->ready_tail = NULL;
    q->in_ready = false;
    struct trg_job *j = q->head;
    q->head = j->next;
    if (!q->head)
        q->tail = NULL;
    j->next = NULL;
    q->busy = true;
    return j;
}

void trg_order_release(struct trg_subscriber *s, struct trg_job *j)
{
    struct trg_keyq *q = j->kq;
    if (!q)
        return;
    j->kq = NULL;
    q->busy = false;
    if (q->head)
        ready_add(s, q);
    else
        forget(s, q);
}

struct trg_job *trg_order_take_all(struct trg_subscriber *s)
{
    struct trg_job *list = NULL, **tail = &list;
    for (size_t i = 0; i < s->nbuckets; i++) {
        struct trg_keyq **pp = &s->buckets[i];
        while (*pp) {
            struct trg_keyq *q = *pp;
            for (struct trg_job *j = q->head; j; j = j->next)
                j->kq = NULL;
            if (q->head) {
                *tail = q->head;
                tail = &q->tail->next;
            }
            q->head = q->tail = NULL;
            q->in_ready = false;
            if (q->busy) {
                pp = &q->hnext;
            } else {
                *pp = q->hnext;
                s->nkeys--;
                free(q);
            }
        }
    }
    s->ready_head = s->ready_tail = NULL;
    return list;
}

void trg_order_fini(struct trg_subscriber *s)
{
    for (size_t i = 0; i < s->nbuckets; i++) {
        struct trg_keyq *q = s->buckets[i];
        while (q) {
            struct trg_keyq *n = q->hnext;
            free(q);
            q = n;
        }
    }
    free(s->buckets);
    s->buckets = NULL;
    s->nbuckets = s->nkeys = 0;
}
