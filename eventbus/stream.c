/* Stream model: index, trimming, tombstones and the consumer-group state,
 * following Redis 7.0's t_stream.c semantics (see stream.h). */
#include "stream.h"

#include <stdlib.h>
#include <string.h>

#include "ofe/err.h"
#include "resp.h"

size_t bus_id_fmt(char *buf, const struct bus_id *id)
{
    size_t n = resp_u64toa(buf, id->ms);
    buf[n++] = '-';
    n += resp_u64toa(buf + n, id->seq);
    return n;
}

bool bus_id_incr(struct bus_id *id)
{
    if (id->seq == UINT64_MAX) {
        if (id->ms == UINT64_MAX)
            return false;
        id->ms++;
        id->seq = 0;
    } else {
        id->seq++;
    }
    return true;
}

bool bus_id_decr(struct bus_id *id)
{
    if (id->seq == 0) {
        if (id->ms == 0)
            return false;
        id->ms--;
        id->seq = UINT64_MAX;
    } else {
        id->seq--;
    }
    return true;
}

/* ---- streams ---------------------------------------------------------- */

struct bus_stream *bus_stream_new(const char *name, size_t nlen)
{
    struct bus_stream *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->name = malloc(nlen + 1);
    if (!s->name) {
        free(s);
        return NULL;
    }
    memcpy(s->name, name, nlen);
    s->name[nlen] = '\0';
    s->nlen = nlen;
    bus_dict_init(&s->groups);
    bus_dict_init(&s->groups_by_jid);
    s->next_gid = 1;
    return s;
}

static void group_free(struct bus_group *g);

void bus_stream_free(struct bus_stream *s)
{
    if (!s)
        return;
    size_t pos = 0;
    struct bus_dict_ent *e;
    while ((e = bus_dict_next(&s->groups, &pos)))
        group_free(e->val);
    bus_dict_fini(&s->groups);
    bus_dict_fini(&s->groups_by_jid);
    free(s->slots);
    free(s->name);
    free(s);
}

size_t bus_stream_lower_bound(const struct bus_stream *s, const struct bus_id *id)
{
    size_t lo = 0, hi = s->n;
    const struct bus_slot *v = s->slots + s->head;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid].ms < id->ms || (v[mid].ms == id->ms && v[mid].seq < id->seq))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

size_t bus_stream_find(const struct bus_stream *s, const struct bus_id *id)
{
    size_t i = bus_stream_lower_bound(s, id);
    if (i < s->n) {
        const struct bus_slot *sl = bus_slot_at(s, i);
        if (sl->ms == id->ms && sl->seq == id->seq && !(sl->seg & BUS_SLOT_DELETED))
            return i;
    }
    return SIZE_MAX;
}

bool bus_stream_first(const struct bus_stream *s, struct bus_id *out)
{
    for (size_t i = 0; i < s->n; i++) {
        const struct bus_slot *sl = bus_slot_at(s, i);
        if (!(sl->seg & BUS_SLOT_DELETED)) {
            *out = bus_slot_id(sl);
            return true;
        }
    }
    return false;
}

bool bus_stream_last(const struct bus_stream *s, struct bus_id *out)
{
    for (size_t i = s->n; i-- > 0;) {
        const struct bus_slot *sl = bus_slot_at(s, i);
        if (!(sl->seg & BUS_SLOT_DELETED)) {
            *out = bus_slot_id(sl);
            return true;
        }
    }
    return false;
}

static bool is_node_start(const struct bus_stream *s, size_t i)
{
    return i == 0 || (bus_slot_at(s, i)->seg & BUS_SLOT_NODE);
}

/* End (exclusive) of the node starting at i. */
static size_t node_end(const struct bus_stream *s, size_t i)
{
    size_t j = i + 1;
    while (j < s->n && !(bus_slot_at(s, j)->seg & BUS_SLOT_NODE))
        j++;
    return j;
}

size_t bus_stream_nodes(const struct bus_stream *s)
{
    size_t k = 0;
    for (size_t i = 0; i < s->n; i = node_end(s, i))
        if (!(bus_slot_at(s, i)->seg & BUS_SLOT_DEAD))
            k++;
    return k;
}

struct bus_id bus_stream_next_id(const struct bus_stream *s, uint64_t now_ms)
{
    if (now_ms > s->last_id.ms)
        return (struct bus_id){now_ms, 0};
    return (struct bus_id){s->last_id.ms, s->last_id.seq + 1};
}

bool bus_stream_node_start(const struct bus_stream *s)
{
    return s->tail_cnt == 0 || s->tail_cnt >= BUS_NODE_MAX_ENTRIES;
}

static int slots_reserve(struct bus_stream *s)
{
    if (s->head + s->n < s->cap)
        return 0;
    if (s->head > 0 && s->head >= s->cap / 2) {
        memmove(s->slots, s->slots + s->head, s->n * sizeof(*s->slots));
        s->head = 0;
        return 0;
    }
    size_t ncap = s->cap ? s->cap * 2 : 64;
    struct bus_slot *nv = realloc(s->slots, ncap * sizeof(*nv));
    if (!nv)
        return OFE_ENOMEM;
    s->slots = nv;
    s->cap = ncap;
    return 0;
}

int bus_stream_apply_entry(struct bus_stream *s, const struct bus_id *id, bool node_start,
                           uint32_t seg, uint32_t off)
{
    if (slots_reserve(s) != 0)
        return OFE_ENOMEM;
    struct bus_slot *sl = &s->slots[s->head + s->n++];
    sl->ms = id->ms;
    sl->seq = id->seq;
    sl->seg = (seg & BUS_SLOT_SEGMASK) | (node_start ? BUS_SLOT_NODE : 0);
    sl->off = off;
    s->tail_cnt = node_start ? 1 : s->tail_cnt + 1;
    s->length++;
    s->entries_added++;
    if (bus_id_cmp(id, &s->last_id) > 0)
        s->last_id = *id;
    if (s->length == 1)
        s->first_id = *id;
    return 0;
}

static void recompute_first(struct bus_stream *s)
{
    if (!s->length || !bus_stream_first(s, &s->first_id))
        s->first_id = (struct bus_id){0, 0};
}

bool bus_stream_apply_delete(struct bus_stream *s, const struct bus_id *id)
{
    size_t i = bus_stream_find(s, id);
    if (i == SIZE_MAX)
        return false;
    bus_slot_at(s, i)->seg |= BUS_SLOT_DELETED;
    s->length--;
    /* Redis frees a node when its last live entry goes. */
    size_t start = i;
    while (!is_node_start(s, start))
        start--;
    size_t end = node_end(s, start);
    size_t live = 0;
    for (size_t j = start; j < end; j++)
        if (!(bus_slot_at(s, j)->seg & BUS_SLOT_DELETED))
            live++;
    if (live == 0) {
        bus_slot_at(s, start)->seg |= BUS_SLOT_DEAD;
        if (end == s->n)
            s->tail_cnt = 0;
    }
    if (bus_id_cmp(id, &s->max_deleted) > 0)
        s->max_deleted = *id;
    if (s->length == 0)
        s->first_id = (struct bus_id){0, 0};
    else if (bus_id_cmp(id, &s->first_id) == 0)
        recompute_first(s);
    return true;
}

void bus_stream_plan_trim(const struct bus_stream *s, const struct bus_trim *t,
                          struct bus_trim_plan *plan)
{
    memset(plan, 0, sizeof(*plan));
    if (t->strategy == BUS_TRIM_NONE)
        return;
    long long length = (long long)s->length;
    long long deleted = 0;
    size_t i = 0;
    while (i < s->n) {
        if (t->strategy == BUS_TRIM_MAXLEN && length <= t->maxlen)
            break;
        size_t end = node_end(s, i);
        long long entries = 0;
        for (size_t j = i; j < end; j++)
            if (!(bus_slot_at(s, j)->seg & BUS_SLOT_DELETED))
                entries++;
        if (t->limit && deleted + entries > t->limit)
            break;
        bool remove_node;
        if (t->strategy == BUS_TRIM_MAXLEN) {
            remove_node = length - entries >= t->maxlen;
        } else {
            struct bus_id last = bus_slot_id(bus_slot_at(s, end - 1));
            remove_node = bus_id_cmp(&last, &t->minid) < 0;
        }
        if (remove_node) {
            plan->remove = true;
            plan->remove_through = bus_slot_id(bus_slot_at(s, end - 1));
            length -= entries;
            deleted += entries;
            i = end;
            continue;
        }
        if (t->approx)
            break;
        for (size_t j = i; j < end; j++) {
            const struct bus_slot *sl = bus_slot_at(s, j);
            struct bus_id cur = bus_slot_id(sl);
            bool stop = t->strategy == BUS_TRIM_MAXLEN ? length <= t->maxlen
                                                       : bus_id_cmp(&cur, &t->minid) >= 0;
            if (stop)
                break;
            if (!(sl->seg & BUS_SLOT_DELETED)) {
                plan->mark = true;
                plan->mark_through = cur;
                length--;
                deleted++;
            }
        }
        break;
    }
    plan->deleted = deleted;
}

void bus_stream_apply_trim(struct bus_stream *s, const struct bus_trim_plan *plan)
{
    if (plan->remove) {
        size_t k = 0;
        while (k < s->n) {
            struct bus_slot *sl = bus_slot_at(s, k);
            struct bus_id cur = bus_slot_id(sl);
            if (bus_id_cmp(&cur, &plan->remove_through) > 0)
                break;
            k++;
        }
        bus_stream_drop_slots(s, k);
    }
    if (plan->mark) {
        for (size_t j = 0; j < s->n; j++) {
            struct bus_slot *sl = bus_slot_at(s, j);
            struct bus_id cur = bus_slot_id(sl);
            if (bus_id_cmp(&cur, &plan->mark_through) > 0)
                break;
            if (!(sl->seg & BUS_SLOT_DELETED)) {
                sl->seg |= BUS_SLOT_DELETED;
                s->length--;
            }
        }
    }
    if (plan->remove || plan->mark)
        recompute_first(s);
}

long long bus_stream_drop_slots(struct bus_stream *s, size_t k)
{
    if (k > s->n)
        k = s->n;
    long long live = 0;
    for (size_t j = 0; j < k; j++)
        if (!(bus_slot_at(s, j)->seg & BUS_SLOT_DELETED))
            live++;
    s->head += k;
    s->n -= k;
    s->length -= (uint64_t)live;
    if (s->n == 0) {
        s->head = 0;
        s->tail_cnt = 0;
        if (s->cap > 1024) {
            free(s->slots);
            s->slots = NULL;
            s->cap = 0;
        }
    } else if (k) {
        /* A head node cut by segment retention keeps its (unflagged) rest
         * as a node of its own. */
        bus_slot_at(s, 0)->seg |= BUS_SLOT_NODE;
    }
    if (live)
        recompute_first(s);
    return live;
}

void bus_stream_after_load(struct bus_stream *s)
{
    s->tail_cnt = 0;
    if (s->n) {
        size_t start = s->n - 1;
        while (!is_node_start(s, start))
            start--;
        if (!(bus_slot_at(s, start)->seg & BUS_SLOT_DEAD))
            s->tail_cnt = (uint32_t)(s->n - start);
    }
    recompute_first(s);
}

bool bus_stream_range_has_tombstones(const struct bus_stream *s, const struct bus_id *start,
                                     const struct bus_id *end)
{
    if (!s->length || bus_id_zero(&s->max_deleted))
        return false;
    if (bus_id_cmp(&s->first_id, &s->max_deleted) > 0)
        return false;
    struct bus_id a = start ? *start : (struct bus_id){0, 0};
    struct bus_id b = end ? *end : BUS_ID_MAX;
    return bus_id_cmp(&a, &s->max_deleted) <= 0 && bus_id_cmp(&s->max_deleted, &b) <= 0;
}

int64_t bus_stream_estimate_distance(const struct bus_stream *s, const struct bus_id *id)
{
    if (!s->entries_added)
        return 0;
    if (!s->length && bus_id_cmp(id, &s->last_id) < 1)
        return (int64_t)s->entries_added;
    int cmp_last = bus_id_cmp(id, &s->last_id);
    if (cmp_last == 0)
        return (int64_t)s->entries_added;
    if (cmp_last > 0)
        return BUS_ENTRIES_READ_INVALID;
    int cmp_id_first = bus_id_cmp(id, &s->first_id);
    int cmp_xdel_first = bus_id_cmp(&s->max_deleted, &s->first_id);
    if (bus_id_zero(&s->max_deleted) || cmp_xdel_first < 0) {
        if (cmp_id_first < 0)
            return (int64_t)(s->entries_added - s->length);
        if (cmp_id_first == 0)
            return (int64_t)(s->entries_added - s->length + 1);
    }
    return BUS_ENTRIES_READ_INVALID;
}

bool bus_group_lag(const struct bus_stream *s, const struct bus_group *g, int64_t *lag)
{
    if (!s->entries_added) {
        *lag = 0;
        return true;
    }
    if (g->entries_read != BUS_ENTRIES_READ_INVALID &&
        !bus_stream_range_has_tombstones(s, &g->last_id, NULL)) {
        *lag = (int64_t)s->entries_added - g->entries_read;
        return true;
    }
    int64_t er = bus_stream_estimate_distance(s, &g->last_id);
    if (er != BUS_ENTRIES_READ_INVALID) {
        *lag = (int64_t)s->entries_added - er;
        return true;
    }
    return false;
}

/* ---- PEL treaps ------------------------------------------------------- */

static uint32_t prng(void)
{
    static uint64_t x = 0x9E3779B97F4A7C15ull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return (uint32_t)(x >> 32);
}

static struct bus_nack *t_insert(struct bus_nack *r, struct bus_nack *n, int t)
{
    if (!r)
        return n;
    int d = bus_id_cmp(&n->id, &r->id) > 0;
    r->link[t][d] = t_insert(r->link[t][d], n, t);
    struct bus_nack *ch = r->link[t][d];
    if (ch->prio > r->prio) {
        r->link[t][d] = ch->link[t][!d];
        ch->link[t][!d] = r;
        return ch;
    }
    return r;
}

static struct bus_nack *t_merge(struct bus_nack *a, struct bus_nack *b, int t)
{
    if (!a)
        return b;
    if (!b)
        return a;
    if (a->prio > b->prio) {
        a->link[t][1] = t_merge(a->link[t][1], b, t);
        return a;
    }
    b->link[t][0] = t_merge(a, b->link[t][0], t);
    return b;
}

static struct bus_nack *t_remove(struct bus_nack *r, const struct bus_id *id, int t)
{
    if (!r)
        return NULL;
    int c = bus_id_cmp(id, &r->id);
    if (c == 0) {
        struct bus_nack *m = t_merge(r->link[t][0], r->link[t][1], t);
        r->link[t][0] = r->link[t][1] = NULL;
        return m;
    }
    r->link[t][c > 0] = t_remove(r->link[t][c > 0], id, t);
    return r;
}

static struct bus_nack *t_find(struct bus_nack *r, const struct bus_id *id, int t)
{
    while (r) {
        int c = bus_id_cmp(id, &r->id);
        if (c == 0)
            return r;
        r = r->link[t][c > 0];
    }
    return NULL;
}

struct bus_nack *bus_pel_seek(struct bus_nack *r, int t, const struct bus_id *id)
{
    struct bus_nack *best = NULL;
    while (r) {
        if (bus_id_cmp(&r->id, id) >= 0) {
            best = r;
            r = r->link[t][0];
        } else {
            r = r->link[t][1];
        }
    }
    return best;
}

struct bus_nack *bus_pel_next(struct bus_nack *root, int t, const struct bus_nack *n)
{
    struct bus_id next = n->id;
    if (!bus_id_incr(&next))
        return NULL;
    return bus_pel_seek(root, t, &next);
}

struct bus_nack *bus_pel_find(const struct bus_group *g, const struct bus_id *id)
{
    return t_find(g->pel, id, 0);
}

struct bus_nack *bus_pel_set(struct bus_group *g, const struct bus_id *id, struct bus_consumer *c,
                             uint64_t delivery_time, uint64_t delivery_count)
{
    struct bus_nack *n = t_find(g->pel, id, 0);
    if (!n) {
        n = calloc(1, sizeof(*n));
        if (!n)
            return NULL;
        n->id = *id;
        n->prio = prng();
        g->pel = t_insert(g->pel, n, 0);
        g->pel_count++;
    } else if (n->consumer != c) {
        n->consumer->pel = t_remove(n->consumer->pel, id, 1);
        n->consumer->pel_count--;
        n->consumer = NULL;
    }
    if (!n->consumer) {
        n->consumer = c;
        c->pel = t_insert(c->pel, n, 1);
        c->pel_count++;
    }
    n->delivery_time = delivery_time;
    n->delivery_count = delivery_count;
    return n;
}

bool bus_pel_del(struct bus_group *g, const struct bus_id *id)
{
    struct bus_nack *n = t_find(g->pel, id, 0);
    if (!n)
        return false;
    g->pel = t_remove(g->pel, id, 0);
    g->pel_count--;
    n->consumer->pel = t_remove(n->consumer->pel, id, 1);
    n->consumer->pel_count--;
    free(n);
    return true;
}

/* ---- groups and consumers --------------------------------------------- */

struct bus_group *bus_group_get(const struct bus_stream *s, const char *name, size_t nlen)
{
    return bus_dict_get(&s->groups, name, nlen);
}

struct bus_group *bus_group_by_jid(const struct bus_stream *s, uint32_t jid)
{
    return bus_dict_get(&s->groups_by_jid, &jid, sizeof(jid));
}

struct bus_group *bus_group_create(struct bus_stream *s, const char *name, size_t nlen,
                                   const struct bus_id *last_id, int64_t entries_read, uint32_t jid)
{
    struct bus_group *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->name = malloc(nlen + 1);
    if (!g->name) {
        free(g);
        return NULL;
    }
    memcpy(g->name, name, nlen);
    g->name[nlen] = '\0';
    g->nlen = nlen;
    g->last_id = *last_id;
    g->entries_read = entries_read;
    g->stream = s;
    g->next_cid = 1;
    bus_dict_init(&g->consumers);
    bus_dict_init(&g->cons_by_jid);
    g->jid = jid ? jid : s->next_gid;
    if (g->jid >= s->next_gid)
        s->next_gid = g->jid + 1;
    if (bus_dict_set(&s->groups, name, nlen, g) != 0) {
        free(g->name);
        free(g);
        return NULL;
    }
    if (bus_dict_set(&s->groups_by_jid, &g->jid, sizeof(g->jid), g) != 0) {
        bus_dict_del(&s->groups, name, nlen);
        free(g->name);
        free(g);
        return NULL;
    }
    return g;
}

static void free_pel(struct bus_nack *n)
{
    if (!n)
        return;
    free_pel(n->link[0][0]);
    free_pel(n->link[0][1]);
    free(n);
}

static void group_free(struct bus_group *g)
{
    free_pel(g->pel);
    size_t pos = 0;
    struct bus_dict_ent *e;
    while ((e = bus_dict_next(&g->consumers, &pos))) {
        struct bus_consumer *c = e->val;
        free(c->name);
        free(c);
    }
    bus_dict_fini(&g->consumers);
    bus_dict_fini(&g->cons_by_jid);
    free(g->name);
    free(g);
}

void bus_group_destroy(struct bus_stream *s, struct bus_group *g)
{
    bus_dict_del(&s->groups, g->name, g->nlen);
    bus_dict_del(&s->groups_by_jid, &g->jid, sizeof(g->jid));
    group_free(g);
}

struct bus_consumer *bus_consumer_get(const struct bus_group *g, const char *name, size_t nlen)
{
    return bus_dict_get(&g->consumers, name, nlen);
}

struct bus_consumer *bus_consumer_by_jid(const struct bus_group *g, uint32_t jid)
{
    return bus_dict_get(&g->cons_by_jid, &jid, sizeof(jid));
}

struct bus_consumer *bus_consumer_create(struct bus_group *g, const char *name, size_t nlen,
                                         uint64_t seen_time, uint32_t jid)
{
    struct bus_consumer *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->name = malloc(nlen + 1);
    if (!c->name) {
        free(c);
        return NULL;
    }
    memcpy(c->name, name, nlen);
    c->name[nlen] = '\0';
    c->nlen = nlen;
    c->seen_time = seen_time;
    c->group = g;
    c->jid = jid ? jid : g->next_cid;
    if (c->jid >= g->next_cid)
        g->next_cid = c->jid + 1;
    if (bus_dict_set(&g->consumers, name, nlen, c) != 0) {
        free(c->name);
        free(c);
        return NULL;
    }
    if (bus_dict_set(&g->cons_by_jid, &c->jid, sizeof(c->jid), c) != 0) {
        bus_dict_del(&g->consumers, name, nlen);
        free(c->name);
        free(c);
        return NULL;
    }
    return c;
}

size_t bus_consumer_delete(struct bus_group *g, struct bus_consumer *c)
{
    size_t had = c->pel_count;
    while (c->pel) {
        struct bus_id id = c->pel->id;
        bus_pel_del(g, &id);
    }
    bus_dict_del(&g->consumers, c->name, c->nlen);
    bus_dict_del(&g->cons_by_jid, &c->jid, sizeof(c->jid));
    free(c->name);
    free(c);
    return had;
}
