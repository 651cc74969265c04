/* Offset tracker of one assigned Kafka partition (pubsub_kafka_int.h):
 * only the offset after the acked prefix of delivered messages is ever
 * committed. */
#include <stdlib.h>
#include <string.h>

#include "ofe/err.h"
#include "pubsub_kafka_int.h"

void kafka_track_init(struct kafka_track *t)
{
    memset(t, 0, sizeof(*t));
    t->point = -1;
    t->last = -1;
}

void kafka_track_fini(struct kafka_track *t)
{
    free(t->off);
    free(t->acked);
    t->off = NULL;
    t->acked = NULL;
    t->cap = t->n = t->head = 0;
}

static int grow(struct kafka_track *t)
{
    size_t cap = t->cap ? t->cap * 2 : 64;
    int64_t *off = malloc(cap * sizeof(*off));
    uint8_t *acked = malloc(cap);
    if (!off || !acked) {
        free(off);
        free(acked);
        return OFE_ENOMEM;
    }
    for (size_t i = 0; i < t->n; i++) {
        size_t j = (t->head + i) % t->cap;
        off[i] = t->off[j];
        acked[i] = t->acked[j];
    }
    free(t->off);
    free(t->acked);
    t->off = off;
    t->acked = acked;
    t->cap = cap;
    t->head = 0;
    return 0;
}

int kafka_track_push(struct kafka_track *t, int64_t offset, uint64_t *seq)
{
    if (t->n == t->cap && grow(t) != 0)
        return OFE_ENOMEM;
    size_t j = (t->head + t->n) % t->cap;
    t->off[j] = offset;
    t->acked[j] = 0;
    *seq = t->seq_head + t->n;
    t->n++;
    t->last = offset;
    return 0;
}

bool kafka_track_seen(const struct kafka_track *t, int64_t offset)
{
    return t->last >= 0 && offset <= t->last;
}

size_t kafka_track_ack(struct kafka_track *t, uint64_t seq)
{
    if (seq < t->seq_head || seq - t->seq_head >= t->n)
        return 0;
    t->acked[(t->head + (size_t)(seq - t->seq_head)) % t->cap] = 1;
    size_t released = 0;
    while (t->n && t->acked[t->head]) {
        t->point = t->off[t->head] + 1;
        t->head = (t->head + 1) % t->cap;
        t->n--;
        t->seq_head++;
        released++;
    }
    return released;
}
