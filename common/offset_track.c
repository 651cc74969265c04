/* Offsets of one partition: commit only the acked prefix (offset_track.h). */
#include <stdlib.h>
#include <string.h>

#include "ofe/offset_track.h"
#include "ofe/err.h"

void ofe_offset_track_init(struct ofe_offset_track *t)
{
    memset(t, 0, sizeof(*t));
    t->point = -1;
    t->last = -1;
}

void ofe_offset_track_fini(struct ofe_offset_track *t)
{
    free(t->off);
    free(t->acked);
    t->off = NULL;
    t->acked = NULL;
    t->cap = t->n = t->head = 0;
}

static int grow(struct ofe_offset_track *t)
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

int ofe_offset_track_push(struct ofe_offset_track *t, int64_t offset, uint64_t *seq)
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

size_t ofe_offset_track_ack(struct ofe_offset_track *t, uint64_t seq)
{
    if (seq < t->seq_head || seq - t->seq_head >= t->n)
        return 0;
    size_t j = (t->head + (size_t)(seq - t->seq_head)) % t->cap;
    if (t->acked[j])
        return 0;
    t->acked[j] = 1;
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

bool ofe_offset_track_seen(const struct ofe_offset_track *t, int64_t offset)
{
    return t->last >= 0 && offset <= t->last;
}
